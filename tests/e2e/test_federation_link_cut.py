"""Exactly once across a federation link (issue 16): 300 documents up, 300 statuses down, the
link cut by a TCP proxy mid-stream each way and restored, the provincial relay restarted while
it is cut; every message arrives once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine, func, select

from relay.db.engine import make_engine
from relay.db.tables import documents, events
from relay.federation.service import add_link, show_link
from schemas import topology as t
from tests.conftest import EnvFactory
from tests.federation_support import tcp_proxy
from tests.integration.conftest import FAST_RELAY
from tests.relay_support import (
    RelayProcess,
    add_agency,
    drain,
    make_document,
    make_status,
    publish_many,
)
from tests.services import random_code

# A fault case of two minutes: `make chaos` runs it, `make test` does not (README, Tests).
pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.chaos_long]

#: This suite's own ports (5701-5704 are the federation tests').
PROXY_PORT = 5701
COUNT = 300


def _wait(what: str, predicate: Callable[[], bool], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _count(engine: Engine, query: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())  # type: ignore[call-overload]


def test_the_link_cut_mid_stream_and_restored_delivers_300_documents_and_statuses_once(
    make_env: EnvFactory,
) -> None:
    provincial = make_env().model_copy(update=FAST_RELAY)
    national = make_env().model_copy(update=FAST_RELAY)
    p_db = make_engine(provincial.database_url)
    n_db = make_engine(national.database_url)
    broker = urlsplit(national.amqp_url)
    try:
        link = add_agency(national, n_db, random_code(), name="trục tỉnh")
        ministry = add_agency(national, n_db, random_code(), name="Bộ")
        department = add_agency(provincial, p_db, random_code(), name="Sở")
        add_agency(national, n_db, department.code, host=link.code)
        assert link.password is not None
        via_proxy = f"amqp://{link.code}:{link.password}@127.0.0.1:{PROXY_PORT}{broker.path}"
        with (
            tcp_proxy(PROXY_PORT, (broker.hostname or "127.0.0.1", broker.port or 5672)) as proxy,
            RelayProcess(national),
            RelayProcess(provincial) as p_relay,
        ):
            add_link(provincial, "national", via_proxy, link.code, None)
            p_relay.wait_for_log('"federation.link_up"', timeout=120)

            # -- up: 300 documents, the link cut after some went through ------------------
            sent = [make_document(department.code, [ministry.code]) for _ in range(COUNT)]
            publish_many(department, sent)
            came_up = select(func.count()).where(documents.c.submitted_by == link.code)
            _wait("documents going up", lambda: _count(n_db, came_up) >= 20)
            proxy.cut()
            at_cut = _count(n_db, came_up)
            time.sleep(3)
            backlog = show_link(provincial, "national")
            p_relay.stop()  # the provincial hub restarted while its link is cut
            p_relay.start()
            time.sleep(2)
            proxy.restore()
            _wait("all documents on the national hub", lambda: _count(n_db, came_up) >= COUNT)
            got = drain(ministry, expect=COUNT, timeout=120)
            got += drain(ministry, timeout=10, quiet=3)
            copies = [r for r in got if r.type == t.TYPE_DOCUMENT]
            ids = [json.loads(r.body)["document_id"] for r in copies]
            print(
                f"\nup: {at_cut} of {COUNT} documents on the national hub when the link was cut; "
                f"backlog then: {backlog['here']['to_send']}; the other hub: {backlog['there']}; "
                f"ministry's inbox got {len(copies)} copies: "
                f"{len({r.message_id for r in copies})} distinct messages, "
                f"{len(set(ids))} documents"
            )
            assert at_cut < COUNT
            assert "error" in backlog["there"]
            assert sorted(ids) == sorted(d.document_id for d in sent)

            # -- down: 300 statuses 01, the link cut after some went through --------------
            publish_many(
                ministry,
                [make_status(ministry.code, department.code, d.document_id, "01") for d in sent],
            )
            came_down = select(func.count()).where(
                events.c.kind == "status", events.c.actor == ministry.code
            )
            _wait("statuses coming down", lambda: _count(p_db, came_down) >= 20)
            proxy.cut()
            at_cut = _count(p_db, came_down)
            time.sleep(3)
            proxy.restore()
            _wait("all statuses on the provincial hub", lambda: _count(p_db, came_down) >= COUNT)
            back = drain(department, expect=2 * COUNT, timeout=120)
            back += drain(department, timeout=10, quiet=3)
            # A copy redelivered with the same message id is one message: the adapter's store
            # recognises it (DESIGN §2 step 4); a second *message* would have another id.
            copies = [r for r in back if r.type == t.TYPE_STATUS]
            statuses = {
                r.message_id: json.loads(r.body)["response_for"]["document_id"] for r in copies
            }
            print(
                f"down: {at_cut} of {COUNT} statuses on the provincial hub when the link was cut; "
                f"department's inbox got {len(copies)} copies of statuses 01: "
                f"{len(statuses)} distinct messages, about {len(set(statuses.values()))} documents"
            )
            assert at_cut < COUNT
            assert sorted(statuses.values()) == sorted(d.document_id for d in sent)
            assert _count(p_db, came_down) == COUNT
    finally:
        p_db.dispose()
        n_db.dispose()
