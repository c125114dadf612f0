"""Two hubs, one network (issue 16): a provincial hub linked to a national hub.

Each hub has its own vhost, database and ``lienthong relay run``; the provincial relay runs the
link (agency ``H26`` on the national hub). Agencies talk to their own hub only.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from relay.config import Settings
from relay.db.engine import make_engine
from relay.db.tables import agencies, deliveries, documents, federation_links
from relay.domain import states as st
from relay.federation.service import add_link, remove_link, set_peer, sync_directory
from schemas import Receipt, Status, decode_message
from schemas import topology as t
from schemas.document import OtherInfo
from tests.conftest import EnvFactory
from tests.integration.conftest import FAST_RELAY
from tests.relay_support import (
    Agency,
    Received,
    RelayProcess,
    add_agency,
    drain,
    make_document,
    make_status,
    publish,
)
from tests.services import random_code


@dataclass
class Hubs:
    provincial: Settings
    national: Settings
    link: Agency  # the provincial hub's agency on the national hub
    department: Agency  # on the provincial hub; hosted by ``link`` on the national hub
    ministry: Agency  # on the national hub
    p_relay: RelayProcess
    n_relay: RelayProcess


@pytest.fixture(scope="module")
def hubs(make_env: EnvFactory) -> Iterator[Hubs]:
    provincial = make_env().model_copy(update=FAST_RELAY)
    national = make_env().model_copy(update=FAST_RELAY)
    p_db = make_engine(provincial.database_url)
    n_db = make_engine(national.database_url)
    try:
        link = add_agency(national, n_db, random_code(), name="UBND tỉnh (trục tỉnh)")
        ministry = add_agency(national, n_db, random_code(), name="Bộ")
        department = add_agency(provincial, p_db, random_code(), name="Sở")
        add_agency(national, n_db, department.code, host=link.code)
        assert link.amqp_url is not None
        add_link(provincial, "national", link.amqp_url, link.code, None)
        # The link runs with its password stored encrypted (the run's LIENTHONG_SECRET_KEY_FILE).
        with p_db.connect() as conn:
            stored = conn.execute(select(federation_links.c.password)).scalar_one()
        assert link.password is not None and link.password not in stored
        assert stored.startswith("fernet:")
        with RelayProcess(national) as n_relay, RelayProcess(provincial) as p_relay:
            p_relay.wait_for_log('"federation.link_up"', timeout=120)
            yield Hubs(provincial, national, link, department, ministry, p_relay, n_relay)
    finally:
        p_db.dispose()
        n_db.dispose()


def _statuses(received: list[Received]) -> list[Status]:
    return [
        m
        for m in (decode_message(r.body) for r in received if r.type == t.TYPE_STATUS)
        if isinstance(m, Status)
    ]


def _until(agency: Agency, want: int, kind: str, timeout: float = 30.0) -> list[Received]:
    got: list[Received] = []
    for _ in range(int(timeout / 2)):
        got += drain(agency, timeout=2.0, quiet=1.0)
        if len([r for r in got if r.type == kind]) >= want:
            break
    return got


def test_a_department_writes_to_a_ministry_and_sees_its_01_and_03(hubs: Hubs) -> None:
    doc = make_document(hubs.department.code, [hubs.ministry.code])
    publish(hubs.department, doc)

    arrived = _until(hubs.ministry, 1, t.TYPE_DOCUMENT)
    docs = [r for r in arrived if r.type == t.TYPE_DOCUMENT]
    assert len(docs) == 1
    assert json.loads(docs[0].body)["sender"]["organ_id"] == hubs.department.code

    publish(
        hubs.ministry, make_status(hubs.ministry.code, hubs.department.code, doc.document_id, "01")
    )
    publish(
        hubs.ministry, make_status(hubs.ministry.code, hubs.department.code, doc.document_id, "03")
    )
    back = _until(hubs.department, 2, t.TYPE_STATUS)
    codes = sorted(s.status_code for s in _statuses(back) if s.document_id == doc.document_id)
    assert codes == ["01", "03"]
    receipts = [Receipt.model_validate_json(r.body) for r in back if r.type == t.TYPE_RECEIPT]
    mine = [r for r in receipts if r.document_id == doc.document_id]
    assert mine and mine[0].recipients[0].reason is not None
    assert mine[0].recipients[0].reason.startswith("upstream:")


def test_a_ministry_writes_to_a_department_and_sees_its_01(hubs: Hubs) -> None:
    doc = make_document(hubs.ministry.code, [hubs.department.code])
    publish(hubs.ministry, doc)
    arrived = _until(hubs.department, 1, t.TYPE_DOCUMENT)
    docs = [r for r in arrived if r.type == t.TYPE_DOCUMENT]
    assert [json.loads(d.body)["document_id"] for d in docs] == [doc.document_id]

    publish(
        hubs.department,
        make_status(hubs.department.code, hubs.ministry.code, doc.document_id, "01"),
    )
    back = _until(hubs.ministry, 1, t.TYPE_STATUS)
    assert [(s.status_code, s.sender.organ_id) for s in _statuses(back)] == [
        ("01", hubs.department.code)
    ]


def test_an_urgent_document_crosses_the_link_in_its_urgent_lane(hubs: Hubs) -> None:
    # The provincial relay puts the copy for the national hub in the link agency's urgent
    # inbox; the link must take it from there too (it read only the ordinary one).
    doc = make_document(hubs.department.code, [hubs.ministry.code])
    doc.other_info = OtherInfo(priority=1)  # hỏa tốc
    publish(hubs.department, doc)
    got: list[Received] = []
    for _ in range(15):
        got += drain(hubs.ministry, timeout=2.0, quiet=1.0, urgent=True)
        if any(r.type == t.TYPE_DOCUMENT for r in got):
            break
    docs = [json.loads(r.body)["document_id"] for r in got if r.type == t.TYPE_DOCUMENT]
    assert docs == [doc.document_id], "the urgent document never reached the ministry"


def test_a_code_unknown_on_both_hubs_is_refused_to_the_sender_not_bounced(hubs: Hubs) -> None:
    nowhere = random_code()
    doc = make_document(hubs.department.code, [nowhere])
    publish(hubs.department, doc)
    back = _until(hubs.department, 1, t.TYPE_STATUS)
    refusals = [s for s in _statuses(back) if s.document_id == doc.document_id]
    assert [(s.status_code, s.sender.organ_id) for s in refusals] == [("02", nowhere)]
    assert refusals[0].description is not None
    assert "không có trong danh bạ" in refusals[0].description
    # Each hub recorded the document once: it was not bounced back down and sent up again.
    for settings in (hubs.provincial, hubs.national):
        assert _documents_named(settings, doc.document_id) == 1


def _documents_named(settings: Settings, document_id: str) -> int:
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(documents.c.document_id == document_id)
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _directory(settings: Settings) -> dict[str, str | None]:
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(agencies.c.code, agencies.c.host))
            return {code: host for code, host in rows}
    finally:
        engine.dispose()


def test_sync_directory_pushes_the_units_once_the_national_hub_makes_the_link_a_peer(
    hubs: Hubs,
) -> None:
    p_db = make_engine(hubs.provincial.database_url)
    n_db = make_engine(hubs.national.database_url)
    try:
        commune = add_agency(hubs.provincial, p_db, random_code(), name="UBND xã")
        ward = add_agency(hubs.provincial, p_db, random_code(), host=commune.code)
        taken = add_agency(hubs.national, n_db, random_code(), name="Bộ khác")
        add_agency(hubs.provincial, p_db, taken.code, host=commune.code)
    finally:
        p_db.dispose()
        n_db.dispose()

    sync_directory(hubs.provincial, "national")  # not a peer yet: refused
    hubs.p_relay.wait_for_log("is not a peer hub here", timeout=30)
    assert commune.code not in _directory(hubs.national)

    assert set_peer(hubs.national, hubs.link.code, True)
    mark = hubs.p_relay.log_path.stat().st_size
    sync_directory(hubs.provincial, "national")
    hubs.p_relay.wait_for_log("units added", timeout=30, since=mark)
    national = _directory(hubs.national)
    assert national[commune.code] == hubs.link.code
    assert national[ward.code] == hubs.link.code
    assert national[hubs.department.code] == hubs.link.code
    assert national[taken.code] is None  # a connected agency there stays its own
    assert f"refused ({taken.code}" in hubs.p_relay.log_text(mark)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _route_states(settings: Settings, document_id: str) -> list[tuple[str, str]]:
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(deliveries.c.route_to, deliveries.c.state)
                .join(documents, documents.c.id == deliveries.c.document_pk)
                .where(documents.c.document_id == document_id)
            )
            return [(route_to, state) for route_to, state in rows]
    finally:
        engine.dispose()


def test_a_link_removed_and_added_again_delivers_what_waited_in_its_inbox(hubs: Hubs) -> None:
    # The national hub moved: the link's URL no longer answers and what goes up waits in the
    # link agency's inbox here. The documented change: remove the link, add it with the new
    # URL. (Last in the module: it leaves the link as the fixture made it.)
    url = hubs.link.amqp_url
    assert url is not None and ":5672/" in url
    mark = hubs.p_relay.log_path.stat().st_size
    remove_link(hubs.provincial, "national")
    hubs.p_relay.wait_for_log('"federation.link_stopped"', since=mark, timeout=30)
    mark = hubs.p_relay.log_path.stat().st_size
    stale = add_link(
        hubs.provincial, "national", url.replace(":5672/", f":{_free_port()}/"),
        hubs.link.code, None,
    )  # fmt: skip
    assert stale.resumed_agency_of == "national" and stale.reachable is not None
    hubs.p_relay.wait_for_log('"federation.link_down"', since=mark, timeout=30)

    doc = make_document(hubs.department.code, [hubs.ministry.code])
    publish(hubs.department, doc)
    for _ in range(60):
        if _route_states(hubs.provincial, doc.document_id) == [(hubs.link.code, st.QUEUED)]:
            break
        time.sleep(0.5)
    assert _route_states(hubs.provincial, doc.document_id) == [(hubs.link.code, st.QUEUED)]
    assert not [r for r in drain(hubs.ministry, timeout=3.0) if r.type == t.TYPE_DOCUMENT]

    remove_link(hubs.provincial, "national")
    moved = add_link(hubs.provincial, "national", url, hubs.link.code, None)
    assert moved.resumed_agency_of == "national" and moved.reachable is None
    arrived = _until(hubs.ministry, 1, t.TYPE_DOCUMENT, timeout=60)
    docs = [json.loads(r.body)["document_id"] for r in arrived if r.type == t.TYPE_DOCUMENT]
    assert docs == [doc.document_id], "what waited in the link's inbox never reached the ministry"
    drain(hubs.department)  # its receipt (upstream:), so nothing is left for another test
