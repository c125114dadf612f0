"""``relay.worker.store.load_routing``: a batch's directory entries, their hosts and the hub's
links in one statement, the same as reading them table by table."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from sqlalchemy import Connection, Engine, insert, select

from relay.db.tables import agencies, federation_links
from relay.domain.routing import MAX_HOST_DEPTH, Entry
from relay.federation.store import federation_links as read_links
from relay.worker import store
from tests.services import random_code

pytestmark = pytest.mark.integration


def _reference_directory(conn: Connection, codes: Iterable[str]) -> dict[str, Entry]:
    """What the relay read before: one ``IN`` query per level of hosts."""
    found: dict[str, Entry] = {}
    wanted = set(codes)
    for _ in range(MAX_HOST_DEPTH + 1):
        wanted -= found.keys()
        if not wanted:
            break
        rows = conn.execute(
            select(agencies.c.code, agencies.c.host, agencies.c.state).where(
                agencies.c.code.in_(sorted(wanted))
            )
        ).all()
        for code, host, state in rows:
            found[code] = Entry(code=code, host=host, state=state)
        wanted = {e.host for e in found.values() if e.host is not None} - found.keys()
    return found


def _add(conn: Connection, code: str, host: str | None = None, state: str = "active") -> None:
    conn.execute(
        insert(agencies).values(code=code, name=code, host=host, state=state, strict_code=True)
    )


def test_routing_reads_hosts_to_the_routing_depth_and_the_links_by_name(db: Engine) -> None:
    chain = [random_code() for _ in range(MAX_HOST_DEPTH + 3)]  # chain[i] is hosted by i+1
    x, y = random_code(), random_code()  # hosted by each other: the depth ends it
    suspended, alone, unknown = random_code(), random_code(), random_code()
    upstream, second, third = random_code(), random_code(), random_code()
    with db.begin() as conn:
        for i, code in enumerate(chain):
            _add(conn, code, chain[i + 1] if i + 1 < len(chain) else None)
        _add(conn, x, y)
        _add(conn, y, x)
        _add(conn, suspended, state="suspended")
        for code in (alone, upstream, second, third):
            _add(conn, code)
        # the first by name is upstream, in the database's order of names
        for name, agency in (("link-b", third), ("link-a", upstream), ("link-c", second)):
            conn.execute(
                insert(federation_links).values(
                    name=name, agency=agency, amqp_url="amqp://h/", password="p"
                )
            )

    codes = [chain[0], x, suspended, alone, unknown, alone]
    with db.begin() as conn:
        directory, links = store.load_routing(conn, codes)
        assert directory == _reference_directory(conn, codes)
        assert links == read_links(conn)
        names = conn.execute(select(federation_links.c.agency).order_by(federation_links.c.name))
        assert links.upstream == names.scalars().first()

    assert set(directory) == {*chain[: MAX_HOST_DEPTH + 1], x, y, suspended, alone}
    assert directory[chain[0]] == Entry(code=chain[0], host=chain[1], state="active")
    assert directory[suspended].state == "suspended"
    assert links.codes == {upstream, second, third}
    assert links.upstream == upstream


def test_routing_without_codes_or_links(db: Engine) -> None:
    with db.begin() as conn:
        conn.execute(federation_links.delete())
        assert store.load_routing(conn, []) == ({}, read_links(conn))
        assert read_links(conn).upstream is None
