"""The relay's database work, batched: multi-row statements inside the caller's transaction.

Every function takes a SQLAlchemy ``Connection`` already in a transaction (``engine.begin()``),
so one batch of outbox messages is one transaction. Inserts use ``ON CONFLICT DO NOTHING …
RETURNING`` so a submission seen twice is recognised by what did *not* come back.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert

from relay.db.tables import agencies, deliveries, documents, events, receipts, rejections
from relay.domain import events as ev
from relay.domain.routing import MAX_HOST_DEPTH, Entry
from relay.domain.states import CONFIRM_MOVES_FROM, CONFIRM_MOVES_TO, PENDING, RETRYING
from relay.domain.statuses import DeliveryRef
from relay.federation.store import Links

_PG_TYPES = {
    "Text": "text",
    "BigInteger": "bigint",
    "Integer": "integer",
    "SmallInteger": "smallint",
    "LargeBinary": "bytea",
    "JSONB": "jsonb",
    "DateTime": "timestamptz",
    "Date": "date",
    "Boolean": "boolean",
}


#: Rows whose ``bytea`` values average this many bytes or more are sent one row per statement
#: (pipelined) instead of as arrays: a ``bytea[]`` of large payloads is built by psycopg in
#: Python and again by PostgreSQL before ``unnest`` copies each element out. Per row, arrays
#: against one row per statement: four 1.4 MB payloads 10-12.5 ms against 3.4-3.7 ms (client
#: CPU 2.7-3.2 against 0.8-1.0 ms); 256 KiB ~1.1 against ~1.0 ms; 16-64 KiB about even;
#: 250 rows of 2 KiB 27-45 against 38-56 us, where one statement wins.
ROW_BY_ROW_BYTES = 64 * 1024


def bulk_insert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    on_conflict: str = "",
    returning: Sequence[str] = (),
) -> list[Any]:
    """``INSERT … SELECT * FROM unnest(array, array, …)``: one short statement for many rows.

    Each column travels as ONE array parameter, so the SQL text stays the same whatever the
    batch size: no giant ``VALUES`` list to build, parse and plan (that dominated the profile).
    Rows whose ``bytea`` values average :data:`ROW_BY_ROW_BYTES` or more go one row per
    statement instead, in one pipeline, each value a parameter of its own.
    """
    if not rows:
        return []
    cols = [(name, _PG_TYPES[type(table.c[name].type).__name__]) for name in rows[0]]
    names = ", ".join(name for name, _ in cols)
    by_row = _bytea_bytes(rows, cols) >= ROW_BY_ROW_BYTES * len(rows)
    tail = f" {on_conflict}" if on_conflict else ""
    if returning:
        tail += f" RETURNING {', '.join(returning)}"
    # Straight to psycopg, in the caller's transaction, with BINARY parameters: text arrays in
    # the text format are escaped element by element (a regex per JSON string), which cost more
    # than the whole insert.
    raw: Any = conn.connection.driver_connection
    if by_row:
        values = ", ".join(_cast(pg, array=False) for _, pg in cols)
        sql = f"INSERT INTO {table.name} ({names}) VALUES ({values}){tail}"
        params = [[_param(r.get(name), pg) for name, pg in cols] for r in rows]
        with raw.cursor() as cur:
            cur.executemany(sql, params, returning=bool(returning))
            found: list[Any] = []
            while returning:
                found.extend(cur.fetchall())
                if not cur.nextset():
                    break
            return found
    columns = [[_param(r.get(name), pg) for r in rows] for name, pg in cols]
    casts = ", ".join(_cast(pg, array=True) for _, pg in cols)
    sql = f"INSERT INTO {table.name} ({names}) SELECT * FROM unnest({casts}){tail}"
    with raw.cursor() as cur:
        cur.execute(sql, columns)
        return list(cur.fetchall()) if returning else []


def _bytea_bytes(rows: Sequence[dict[str, Any]], cols: list[tuple[str, str]]) -> int:
    binary = [name for name, pg in cols if pg == "bytea"]
    return sum(len(r.get(name) or b"") for r in rows for name in binary)


def _cast(pg: str, *, array: bool) -> str:
    brackets = "[]" if array else ""
    if pg == "jsonb":  # JSON travels as text and is cast
        return f"CAST(CAST(%b AS text{brackets}) AS jsonb{brackets})"
    return f"CAST(%b AS {pg}{brackets})"


def _param(value: Any, pg: str) -> Any:
    """JSON text (str) is stored as is; anything else is encoded here."""
    if pg == "jsonb" and value is not None and not isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return value


#: The directory entries of a batch's codes and of their hosts (up to the routing depth), and
#: the hub's federation links, in one round trip. Plain SQL on the driver's cursor with one
#: array parameter: built with SQLAlchemy's expanding ``IN``, the directory query alone was a
#: fifth of a worker's database-thread time at 1,000 documents a second (compiled again for
#: every batch, its text a new one for every number of codes), and the hosts and the links
#: were a round trip each.
_ROUTING = (
    "WITH RECURSIVE found(code, host, state, depth) AS ("
    " SELECT code, host, state, 0 FROM agencies WHERE code = ANY(CAST(%b AS text[]))"
    " UNION ALL"
    " SELECT a.code, a.host, a.state, f.depth + 1"
    " FROM agencies a JOIN found f ON a.code = f.host"
    f" WHERE f.depth < {MAX_HOST_DEPTH})"
    " SELECT DISTINCT 'agency', code, host, state FROM found"
    " UNION ALL SELECT 'link', name, agency, NULL FROM federation_links"
    " ORDER BY 1, 2"  # the links by name, as federation_links reads them: the first is upstream
)


def load_routing(conn: Connection, codes: Iterable[str]) -> tuple[dict[str, Entry], Links]:
    """The directory entries of ``codes`` and of their hosts (up to the routing depth), and
    the hub's links (:func:`relay.federation.store.federation_links`), in one statement."""
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cur:
        rows = cur.execute(_ROUTING, (sorted(set(codes)),)).fetchall()
    found: dict[str, Entry] = {}
    links: list[tuple[str, str]] = []
    for what, code, host, state in rows:
        if what == "agency":
            found[code] = Entry(code=code, host=host, state=state)
        else:
            links.append((code, host))  # (name, agency), by name
    return found, Links(
        codes=frozenset(agency for _, agency in links),
        upstream=links[0][1] if links else None,
    )


def active_connected_agencies(conn: Connection) -> set[str]:
    """Codes whose outbox the relay consumes: connected (no host) and active."""
    rows = conn.execute(
        select(agencies.c.code).where(agencies.c.host.is_(None), agencies.c.state == "active")
    )
    return set(rows.scalars())


def insert_documents(
    conn: Connection, rows: Sequence[dict[str, Any]]
) -> dict[tuple[str, str], int]:
    """Insert new documents; (submitted_by, message_id) -> id for those not already there."""
    found = bulk_insert(
        conn,
        documents,
        rows,
        on_conflict="ON CONFLICT (submitted_by, message_id) DO NOTHING",
        returning=("submitted_by", "message_id", "id"),
    )
    return {(by, submission_id): pk for by, submission_id, pk in found}


@dataclass(frozen=True)
class StoredDocument:
    pk: int
    message_id: str
    submitted_by: str


def existing_documents(
    conn: Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], StoredDocument]:
    """Stored submissions by (submitted_by, message_id)."""
    if not keys:
        return {}
    rows = conn.execute(
        select(
            documents.c.message_id,
            documents.c.id,
            documents.c.submitted_by,
        ).where(tuple_(documents.c.submitted_by, documents.c.message_id).in_(list(keys)))
    )
    return {
        (by, submission_id): StoredDocument(pk=pk, message_id=submission_id, submitted_by=by)
        for submission_id, pk, by in rows
    }


def stored_receipts(
    conn: Connection, keys: Sequence[tuple[str, str]], kind: str
) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
    """The newest receipt of ``kind`` sent to each (agency, in_reply_to): (receipt_id, body).

    Found by what it answers rather than by a recomputed id, so that a receipt stored under
    an earlier id scheme is sent again as it was."""
    if not keys:
        return {}
    rows = conn.execute(
        select(receipts.c.agency, receipts.c.in_reply_to, receipts.c.receipt_id, receipts.c.body)
        .where(
            tuple_(receipts.c.agency, receipts.c.in_reply_to).in_(list(set(keys))),
            receipts.c.kind == kind,
        )
        .order_by(receipts.c.id)
    )
    return {(agency, submission_id): (rid, body) for agency, submission_id, rid, body in rows}


def document_senders(conn: Connection, document_ids: Sequence[str]) -> dict[str, set[str]]:
    """Who sent the stored documents with these DocumentIds (edXML ``From``)."""
    if not document_ids:
        return {}
    out: dict[str, set[str]] = {}
    rows = conn.execute(
        select(documents.c.document_id, documents.c.sender)
        .where(documents.c.document_id.in_(list(document_ids)))
        .distinct()
    )
    for did, sender in rows:
        out.setdefault(did, set()).add(sender)
    return out


def insert_deliveries(
    conn: Connection, rows: Sequence[dict[str, Any]]
) -> dict[tuple[int, str], int]:
    """Insert deliveries; (document_pk, recipient) -> id of each inserted row."""
    found = bulk_insert(
        conn,
        deliveries,
        rows,
        on_conflict="ON CONFLICT DO NOTHING",
        returning=("document_pk", "recipient", "id"),
    )
    return {(pk, rcpt): did for pk, rcpt, did in found}


@dataclass(frozen=True)
class PendingDelivery:
    """A delivery to publish (again): everything the copy needs."""

    delivery_id: int
    document_pk: int
    document_id: str
    message_id: str  # the copy's id, as stored
    submission_id: str
    submitted_by: str
    recipient: str
    route_to: str
    payload: bytes
    #: the document's edXML priority: an urgent document's copy goes to the urgent lane
    priority: int | None = None


def _pending_select() -> Any:
    """Pending deliveries without their payload: a document's payload is read once for all
    its deliveries (:func:`_with_payloads`), not once per recipient."""
    return select(
        deliveries.c.id,
        deliveries.c.document_pk,
        documents.c.document_id,
        deliveries.c.message_id,
        documents.c.message_id,
        documents.c.submitted_by,
        deliveries.c.recipient,
        deliveries.c.route_to,
        documents.c.priority,
    ).join(documents, documents.c.id == deliveries.c.document_pk)


def _with_payloads(conn: Connection, rows: Iterable[Any]) -> list[PendingDelivery]:
    """The rows as deliveries, each document's payload fetched once and shared by all of its
    deliveries (a 20 MB document to 95 agencies is 20 MB here, not 1.9 GB)."""
    rows = list(rows)
    pks = sorted({r[1] for r in rows})
    payloads: dict[int, bytes] = {}
    if pks:
        for pk, payload in conn.execute(
            select(documents.c.id, documents.c.payload).where(documents.c.id.in_(pks))
        ):
            payloads[pk] = bytes(payload)
    return [
        PendingDelivery(
            delivery_id=r[0],
            document_pk=r[1],
            document_id=r[2],
            message_id=r[3],
            submission_id=r[4],
            submitted_by=r[5],
            recipient=r[6],
            route_to=r[7],
            payload=payloads[r[1]],
            priority=r[8],
        )
        for r in rows
    ]


def pending_deliveries_of(conn: Connection, document_pks: Sequence[int]) -> list[PendingDelivery]:
    """Deliveries of these documents still ``pending`` (committed, publish not confirmed)."""
    if not document_pks:
        return []
    rows = conn.execute(
        _pending_select()
        .where(deliveries.c.document_pk.in_(list(document_pks)), deliveries.c.state == PENDING)
        .order_by(deliveries.c.id)
    )
    return _with_payloads(conn, rows)


def claim_stale_pending(
    conn: Connection, older_than_s: float, limit: int, max_bytes: int
) -> list[PendingDelivery]:
    """Pending deliveries untouched for ``older_than_s``, claimed for republishing: at most
    ``limit`` of them, and documents of at most ``max_bytes`` of payload between them (the
    first document always, however large), so one sweep holds a bounded number of bytes.

    ``FOR UPDATE SKIP LOCKED`` lets several relays sweep at once without taking the same rows;
    touching ``updated_at`` keeps the next sweep off them until they are stale again. Rows left
    out by ``max_bytes`` stay stale and are taken by the next sweep.
    """
    cutoff = func.now() - dt.timedelta(seconds=older_than_s)
    candidates = conn.execute(
        select(deliveries.c.id, deliveries.c.document_pk, func.octet_length(documents.c.payload))
        .join(documents, documents.c.id == deliveries.c.document_pk)
        .where(deliveries.c.state == PENDING, deliveries.c.updated_at < cutoff)
        .order_by(deliveries.c.id)
        .limit(limit)
        .with_for_update(of=deliveries, skip_locked=True)
    ).all()
    ids: list[int] = []
    seen: set[int] = set()
    held = 0
    for did, pk, size in candidates:
        if pk not in seen:
            if seen and held + size > max_bytes:
                continue  # the next sweep; a later, smaller document may still fit
            seen.add(pk)
            held += size
        ids.append(did)
    if not ids:
        return []
    conn.execute(update(deliveries).where(deliveries.c.id.in_(ids)).values(updated_at=func.now()))
    rows = conn.execute(_pending_select().where(deliveries.c.id.in_(ids)).order_by(deliveries.c.id))
    return _with_payloads(conn, rows)


_MARK_QUEUED = (
    "WITH moved AS ("
    " UPDATE deliveries SET state = %s, updated_at = now(), last_error = NULL"
    " WHERE id = ANY(CAST(%b AS bigint[])) AND state = %s)"
    " INSERT INTO events (document_pk, delivery_id, kind, at)"
    f" SELECT document_pk, id, '{ev.QUEUED}', %s FROM deliveries"
    " WHERE id = ANY(CAST(%b AS bigint[]))"
)


def mark_queued(conn: Connection, delivery_ids: Sequence[int], published_at: dt.datetime) -> None:
    """Confirmed publishes: pending → queued (forward only), and a ``queued`` event each.

    The event is recorded even when the delivery moved on before the confirm came (its return,
    or even its 01, can beat the confirm), stamped with when it was published, so the timeline
    always shows the attempt before what followed it. One statement, one round trip.
    """
    if not delivery_ids:
        return
    ids = list(delivery_ids)
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cur:
        cur.execute(_MARK_QUEUED, (CONFIRM_MOVES_TO, ids, CONFIRM_MOVES_FROM, published_at, ids))


def note_publish_failure(conn: Connection, failures: dict[int, str]) -> None:
    """Deliveries whose publish was returned or nacked stay pending; say why."""
    if not failures:
        return
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id == bindparam("did"), deliveries.c.state == PENDING)
        .values(last_error=bindparam("err"), updated_at=func.now()),
        [{"did": did, "err": err} for did, err in failures.items()],
    )


def hand_to_retry(conn: Connection, delivery_ids: Iterable[int]) -> None:
    """Deliveries the broker returned as unroutable (no inbox): the retry schedule takes them
    now (``retrying``, due at once); its attempt counts, backs off and finally fails them."""
    ids = sorted(delivery_ids)
    if not ids:
        return
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(ids), deliveries.c.state == PENDING)
        .values(state=RETRYING, next_attempt_at=func.now(), updated_at=func.now())
    )


def status_candidates(
    conn: Connection, document_ids: Sequence[str]
) -> tuple[dict[str, list[DeliveryRef]], set[str]]:
    """Deliveries of every submission of these documents (locked), and which ids are known."""
    if not document_ids:
        return {}, set()
    ids = list(set(document_ids))
    rows = conn.execute(
        select(
            documents.c.document_id,
            deliveries.c.id,
            documents.c.id,
            documents.c.sender,
            documents.c.submitted_by,
            documents.c.business_type,
            deliveries.c.recipient,
            deliveries.c.route_to,
            deliveries.c.state,
        )
        .join(documents, documents.c.id == deliveries.c.document_pk)
        .where(documents.c.document_id.in_(ids))
        .order_by(deliveries.c.id)
        .with_for_update(of=deliveries)
    ).all()
    out: dict[str, list[DeliveryRef]] = {}
    for r in rows:
        out.setdefault(r[0], []).append(
            DeliveryRef(
                delivery_id=r[1],
                document_pk=r[2],
                document_sender=r[3],
                submitted_by=r[4],
                business_type=r[5],
                recipient=r[6],
                route_to=r[7],
                state=r[8],
            )
        )
    known = set(out)
    missing = [d for d in ids if d not in known]
    if missing:
        known |= set(
            conn.execute(
                select(documents.c.document_id).where(documents.c.document_id.in_(missing))
            ).scalars()
        )
    return out, known


def before_recall_of(conn: Connection, delivery_id: int) -> str | None:
    """What the pending take-back of a delivery remembers (:func:`states.after_status`): the
    newest status event that carries a ``before_recall`` (the first 13 sets it, every status
    recorded while the take-back is pending carries it forward)."""
    row = conn.execute(
        select(events.c.detail)
        .where(
            events.c.delivery_id == delivery_id,
            events.c.kind == ev.STATUS,
            events.c.detail["before_recall"].astext.is_not(None),
        )
        .order_by(events.c.id.desc())
        .limit(1)
    ).first()
    if row is None or not isinstance(row[0], dict):
        return None
    value = row[0].get("before_recall")
    return value if isinstance(value, str) else None


def insert_status_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[tuple[str, str]]:
    """Insert status events; the (actor, message_id) pairs that were new (a duplicate status
    returns none)."""
    if not rows:
        return set()
    found = bulk_insert(
        conn,
        events,
        _same_keys(rows),
        on_conflict="ON CONFLICT (actor, message_id) WHERE message_id IS NOT NULL DO NOTHING",
        returning=("actor", "message_id"),
    )
    return {(actor, submission_id) for actor, submission_id in found}


def _same_keys(rows: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
    if not rows or all(r.keys() == rows[0].keys() for r in rows):
        return rows  # the usual case: nothing to fill in
    keys: dict[str, None] = {}
    for r in rows:
        keys.update(dict.fromkeys(r))
    return [{k: r.get(k) for k in keys} for r in rows]


def insert_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    bulk_insert(conn, events, _same_keys(rows))


def set_states(conn: Connection, states: dict[int, str]) -> None:
    if not states:
        return
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id == bindparam("did"))
        .values(state=bindparam("new_state"), updated_at=func.now()),
        [{"did": did, "new_state": s} for did, s in states.items()],
    )


def insert_receipts(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Store receipts as sent; the receipt ids that were new."""
    if not rows:
        return set()
    found = bulk_insert(
        conn,
        receipts,
        rows,
        on_conflict="ON CONFLICT (receipt_id) DO NOTHING",
        returning=("receipt_id",),
    )
    return {rid for (rid,) in found}


def receipt_bodies(conn: Connection, receipt_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not receipt_ids:
        return {}
    rows = conn.execute(
        select(receipts.c.receipt_id, receipts.c.body).where(
            receipts.c.receipt_id.in_(list(receipt_ids))
        )
    )
    return {rid: body for rid, body in rows}


def insert_rejections(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(rejections), list(rows))


def earlier_deliveries(
    conn: Connection, refs: Sequence[tuple[str, str, int, str]]
) -> list[tuple[int, int, int]]:
    """Deliveries of earlier documents referenced by revoke/update/replace submissions.

    ``refs`` are (referenced document_id, recipient, new document pk, its sender); the answer
    holds (index into ``refs``, delivery id, document pk) for each matching earlier delivery
    of the same sender: nobody changes another sender's documents.
    """
    out: list[tuple[int, int, int]] = []
    for n, (ref_id, recipient, new_pk, sender) in enumerate(refs):
        rows = conn.execute(
            select(deliveries.c.id, deliveries.c.document_pk)
            .join(documents, documents.c.id == deliveries.c.document_pk)
            .where(
                and_(
                    documents.c.document_id == ref_id,
                    documents.c.sender == sender,
                    documents.c.id < new_pk,
                    deliveries.c.recipient == recipient,
                )
            )
        )
        out.extend((n, did, pk) for did, pk in rows)
    return out


def statuses_seen(conn: Connection, message_ids: Sequence[str]) -> set[tuple[str, str]]:
    """The (actor, message_id) of the recorded events that carry one of these message ids."""
    if not message_ids:
        return set()
    rows = conn.execute(
        select(events.c.actor, events.c.message_id).where(
            events.c.message_id.in_(list(message_ids))
        )
    )
    return {(actor, submission_id) for actor, submission_id in rows}
