"""``lienthong federation sync-directory``: a hub pushes its units to the hub above (issue 16).

The provincial hub publishes its directory (``lienthong.directory/1``, as the relay publishes to
adapters) to its outbox on the national hub, as its agency there. The national relay takes it
only from an agency its operator made a *peer* (``lienthong federation peer add CODE``): each
unit becomes (or stays) a hosted unit of that agency; a code the national directory has as a
connected agency or as another agency's unit is left alone and reported, so no agency can take
over another's entries. Units of the peer missing from the push are left as they are.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Iterable
from typing import Final

from sqlalchemy import Connection, delete, insert, select, update

from relay.db.tables import agencies, federation_peers
from relay.directory.validation import code_problem, name_problem
from relay.domain.intake import Envelope, Refusal
from relay.domain.outgoing import receipt_uuid
from schemas import Receipt, ReceiptKind
from schemas.agency_code import is_strict_qcvn102
from schemas.directory import DirectorySnapshot

#: A pushed directory decompresses to at most this (the national directory is ~10 MiB).
MAX_DIRECTORY_BYTES: Final = 256 * 1024 * 1024
#: Refused codes named in the receipt (the rest are counted).
NAMED: Final = 20


def peers(conn: Connection) -> frozenset[str]:
    return frozenset(conn.execute(select(federation_peers.c.agency)).scalars())


def add_peer(conn: Connection, code: str) -> bool:
    if code in peers(conn):
        return False
    conn.execute(insert(federation_peers).values(agency=code))
    return True


def remove_peer(conn: Connection, code: str) -> bool:
    return (
        conn.execute(delete(federation_peers).where(federation_peers.c.agency == code)).rowcount > 0
    )


def _decode(body: bytes) -> DirectorySnapshot:
    if body[:2] == b"\x1f\x8b":
        inflater = zlib.decompressobj(wbits=31)
        data = inflater.decompress(body, MAX_DIRECTORY_BYTES)
        if inflater.unconsumed_tail:
            raise ValueError(f"it decompresses to more than {MAX_DIRECTORY_BYTES} bytes")
        body = data
    return DirectorySnapshot.model_validate_json(body, by_alias=True)


def apply_push(conn: Connection, env: Envelope, now: dt.datetime) -> Receipt | Refusal:
    """Take the directory ``env.owner`` pushed, in the batch's transaction; the receipt for it."""
    owner = env.owner
    if env.flaw is not None or "\x00" in (env.message_id or "") + (env.user_id or ""):
        return Refusal(env.flaw or "message_id/user_id: a NUL character cannot be stored")
    if env.user_id != owner:
        return Refusal(
            f"user_id: a directory for {owner} must be published by {owner}, not {env.user_id!r}",
            publisher=env.user_id,
        )
    if owner not in peers(conn):
        return Refusal(
            f"type: 'directory': {owner} is not a peer hub here, so it may not push its units; "
            f"the operator of this hub allows it with `lienthong federation peer add {owner}`"
        )
    if not env.message_id:
        return Refusal("message_id: the AMQP message_id property is missing; set a UUID")
    try:
        snapshot = _decode(env.body)
    except (ValueError, zlib.error, EOFError) as e:
        return Refusal(f"body: not a lienthong.directory/1 snapshot: {e}")
    added, updated, unchanged, refused = _upsert(conn, owner, snapshot)
    named = ", ".join(code for code, _ in refused[:NAMED])
    more = f" and {len(refused) - NAMED} more" if len(refused) > NAMED else ""
    reason = (
        f"directory: {added} units added, {updated} updated, {unchanged} unchanged as units "
        f"hosted by {owner}"
        + (f"; {len(refused)} refused ({named}{more}): {refused[0][1]}" if refused else "")
    )
    return Receipt(
        at=now,
        receipt_id=receipt_uuid(env.message_id, ReceiptKind.ACCEPTED.value, by=owner),
        kind=ReceiptKind.ACCEPTED,
        in_reply_to=env.message_id,
        sender=owner,
        reason=reason,
    )


def _upsert(
    conn: Connection, owner: str, snapshot: DirectorySnapshot
) -> tuple[int, int, int, list[tuple[str, str]]]:
    entries = {e.code: e for e in snapshot.agencies if e.code != owner}
    existing = {
        code: (name, host, state)
        for code, name, host, state in conn.execute(
            select(agencies.c.code, agencies.c.name, agencies.c.host, agencies.c.state).where(
                agencies.c.code.in_(sorted(entries))
            )
        )
    }
    added = updated = unchanged = 0
    refused: list[tuple[str, str]] = []
    new_rows = []
    for code, e in entries.items():
        problem = code_problem(code) or name_problem(e.name)
        state = e.state if e.state in ("active", "suspended") else "active"
        if problem is not None:
            refused.append((code, problem))
            continue
        found = existing.get(code)
        if found is None:
            new_rows.append(
                {
                    "code": code,
                    "name": e.name,
                    "host": owner,
                    "state": state,
                    "strict_code": is_strict_qcvn102(code),
                }
            )
            added += 1
        elif found[1] != owner:
            whose = f"a unit of {found[1]}" if found[1] else "a connected agency"
            refused.append((code, f"already in this hub's directory as {whose}"))
        elif (found[0], found[2]) == (e.name, state):
            unchanged += 1
        else:
            conn.execute(
                update(agencies)
                .where(agencies.c.code == code)
                .values(name=e.name, state=state, updated_at=dt.datetime.now(dt.UTC))
            )
            updated += 1
    _insert(conn, new_rows)
    return added, updated, unchanged, refused


def _insert(conn: Connection, rows: Iterable[dict[str, object]]) -> None:
    rows = list(rows)
    if rows:
        conn.execute(insert(agencies), rows)
