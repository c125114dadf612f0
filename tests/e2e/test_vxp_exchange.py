"""The national SDK's API end to end: two adapters and the relay, both DMSes speaking only SDK.

One relay (publishing the directory) and two adapters run as real processes, each with its
``[vxp]`` HTTP API; the tests call them over real HTTP with :class:`tests.vxp_client.SdkClient`,
which behaves like the SDK (signed headers, raw bodies, unpadded ``hash-file``, empty bodies,
accumulated keys, a frozen timestamp). A sends from its DMS, B receives; C is a recipient
without an adapter; U is a unit A hosts. Run with ``-s`` to see the requests and answers of the
main scenario.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from adapters.edxml import parse_document, parse_status
from relay.db.engine import make_engine
from relay.queries.trace import load_trace
from tests.adapter_support import AdapterProcess, agency_url, write_config
from tests.relay_support import RelayProcess, add_agency, settings_env, wait_until
from tests.services import random_code
from tests.vxp_client import SdkClient, sdk_hex

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "edxml"
ORIGINAL_ID = "000.00.00.G22,2016/04/08,1234/VPCP-KSTT"
WAIT = 40.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Side:
    code: str
    folder: Path
    adapter: AdapterProcess
    systemid: str
    secret: str
    base_url: str

    def client(self, **kwargs: Any) -> SdkClient:
        return SdkClient(self.base_url, self.systemid, self.secret, **kwargs)

    def spooled(self) -> int:
        """Rows in the adapter's spool (what it ever took to send)."""
        with sqlite3.connect(self.folder / "root" / "spool.sqlite3") as db:
            return int(db.execute("SELECT count(*) FROM outgoing").fetchone()[0])


@dataclass
class World:
    a: Side
    b: Side
    c: str
    unit: str
    env: dict[str, str]
    engine: Engine
    settings: Any

    def sample(self, name: str, number: str = "1234") -> bytes:
        text = (SAMPLES / name).read_text(encoding="utf-8")
        for old, new in (
            ("000.00.00.G22", self.a.code),
            ("000.00.00.H26", self.b.code),
            ("000.00.00.H29", self.c),
            ("1234/VPCP-KSTT", f"{number}/VPCP-KSTT"),
        ):
            text = text.replace(old, new)
        return text.encode("utf-8")

    def document_id(self, number: str = "1234") -> str:
        return ORIGINAL_ID.replace("000.00.00.G22", self.a.code).replace("1234", number)


def _eventually(what: str, probe: Callable[[], Any], timeout: float = WAIT) -> Any:
    try:
        return wait_until(probe, timeout=timeout, interval=0.3)
    except AssertionError as e:
        raise AssertionError(f"{what}: {e}") from None


def _start_side(base: Path, settings: Any, agency: Any, prefix: str) -> Side:
    assert agency.password is not None
    folder = base / agency.code
    config = write_config(folder, agency.code, agency_url(settings), agency.password)
    port = free_port()
    systemid = f"dms-{agency.code[-3:].lower()}-{port}"
    secret = f"bí-mật-{port}"  # the secret is used as UTF-8 text
    (folder / "vxp-secret").write_text(secret + "\nsecond line is ignored\n", encoding="utf-8")
    with config.open("a", encoding="utf-8") as f:
        f.write(
            f'\n[vxp]\nlisten = "127.0.0.1:{port}"\npath_prefix = "{prefix}"\n'
            f'systemid = "{systemid}"\nsecret_file = "vxp-secret"\n'
        )
    adapter = AdapterProcess(config, folder / "adapter.log").start()
    side = Side(agency.code, folder, adapter, systemid, secret, f"http://127.0.0.1:{port}{prefix}")
    client = side.client()

    def up() -> bool:
        try:
            return bool(client.count()["status"] == "OK")
        except Exception:
            return False

    try:
        _eventually(f"the SDK API of {agency.code} never answered", up, timeout=60)
    except AssertionError:
        print(adapter.log_text())
        raise
    client.close()
    return side


@pytest.fixture(scope="module")
def world(make_env: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = make_env(directory_publish_seconds=0.5)
    engine = make_engine(settings.database_url)
    codes = [random_code() for _ in range(3)]
    agencies = [add_agency(settings, engine, code) for code in codes]
    unit = random_code()
    add_agency(settings, engine, unit, name="Sở Nội vụ (đơn vị do A phục vụ)", host=codes[0])
    base = tmp_path_factory.mktemp("vxp")
    relay = RelayProcess(settings).start()
    sides: list[Side] = []
    try:
        relay.wait_consuming(codes)
        sides.append(_start_side(base, settings, agencies[0], "/XrdAdapter/adapter"))
        sides.append(_start_side(base, settings, agencies[1], ""))
        yield World(
            a=sides[0],
            b=sides[1],
            c=codes[2],
            unit=unit,
            env=settings_env(settings),
            engine=engine,
            settings=settings,
        )
    finally:
        for side in sides:
            side.adapter.stop()
        relay.stop()
        engine.dispose()


def _listed(client: SdkClient, messagetype: str, sender: str | None = None) -> list[Any]:
    answer = client.received(messagetype)
    assert answer["status"] == "OK", answer
    items: list[Any] = answer["data"]
    return [i for i in items if sender is None or i["from"] == sender]


def _package_of(client: SdkClient, doc_id: str) -> bytes:
    answer = client.get_edoc(doc_id)
    assert answer["status"] == "OK", answer
    return base64.b64decode(answer["data"])


def test_a_document_with_an_attachment_goes_from_one_sdk_dms_to_the_other_and_statuses_return(
    world: World,
) -> None:
    a, b = world.a.client(), world.b.client()
    package = world.sample("document_new.edxml", "1501")
    document_id = world.document_id("1501")
    sent_attachment = parse_document(package).attachments[0]

    first = a.send_edoc(package, sender=world.a.code, to=[world.b.code, world.c])
    assert first["status"] == "OK" and first["ErrorCode"] == "0", first
    doc_id = first["DocId"]
    # The SDK retries (up to 5 times): the same package from the same system, same DocId.
    assert a.send_edoc(package, sender=world.a.code)["DocId"] == doc_id
    assert a.send_edoc(package, form="multipart")["DocId"] == doc_id

    [item] = _eventually("B's DMS never saw the document", lambda: _listed(b, "edoc"))
    assert item["from"] == world.a.code and item["to"] == world.b.code
    assert item["status"] == "initial" and item["messageType"] == "edoc"
    fetched = _package_of(b, item["docId"])
    assert b.download(item["docId"]) == fetched
    received = parse_document(fetched)
    assert received.document_id == document_id
    [attachment] = received.attachments
    assert attachment.sha256 == sent_attachment.sha256
    assert hashlib.sha256(attachment.content()).hexdigest() == sent_attachment.sha256
    assert b.count()["count"] == 1

    assert b.update_status(item["docId"], "done")["status"] == "OK"
    assert _listed(b, "edoc") == []  # acked done: never listed again
    assert b.count()["count"] == 0

    # B's DMS also sends its own 01 (some do): the adapter already sent one, so it answers
    # with that one's DocId and forwards nothing (A must see a single 01 below).
    own_01 = b.send_edoc(
        world.sample("status_01_inbox.edxml", "1501"), messagetype="status", sender=world.b.code
    )
    assert own_01["status"] == "OK", own_01
    acceptance = world.sample("status_03_acceptance.edxml", "1501")
    answer = b.send_edoc(acceptance, messagetype="status", sender=world.b.code)
    assert answer["status"] == "OK", answer

    def statuses_at_a() -> list[Any]:
        items = _listed(a, "status", world.b.code)
        return items if len(items) >= 2 else []

    listed = _eventually("A's DMS never saw 01 and 03", statuses_at_a)
    codes = []
    for entry in listed:
        status = parse_status(_package_of(a, entry["docId"]))
        assert status.document_id == document_id
        codes.append(status.status_code)
        assert a.update_status(entry["docId"], "done")["status"] == "OK"
    assert codes == ["01", "03"]

    rows = a.sent_list(doc_id)
    assert rows["status"] == "OK", rows
    by_code = {r["toCode"]: r for r in rows["data"]}
    assert by_code[world.b.code]["sendStatus"] == "done"
    assert by_code[world.b.code]["receiveStatus"] == "03"
    assert by_code[world.b.code]["senderDocId"] == doc_id
    assert set(by_code) == {world.b.code, world.c}

    time.sleep(2)  # anything sent twice would have arrived by now
    assert _listed(b, "edoc") == [] and b.count()["count"] == 0
    assert _listed(a, "status", world.b.code) == []
    with world.engine.connect() as conn:
        trace = load_trace(conn, document_id)
    assert len(trace.submissions) == 1  # the retried sendEdoc was submitted once
    [to_b] = [r for r in trace.submissions[0].recipients if r.recipient == world.b.code]
    assert to_b.state == "accepted"  # 01 then 03
    print("\n" + a.transcript() + "\n" + b.transcript())
    a.close()
    b.close()


def test_refused_calls_say_why_and_nothing_reaches_the_other_side(world: World) -> None:
    a, b = world.a.client(), world.b.client()
    spooled = world.a.spooled()
    package = world.sample("document_new.edxml", "1502")

    wrong = a.send_edoc(package, secret="wrong secret")
    assert (wrong["status"], wrong["ErrorCode"]) == ("FAIL", "401")
    assert "wrong secret" in wrong["ErrorDesc"]
    tampered = a.send_edoc(package.replace(b"1502", b"1503", 1), hash_file=sdk_hex(package))
    assert (tampered["status"], tampered["ErrorCode"]) == ("FAIL", "409")
    from_c = world.sample("document_new.edxml", "1504").replace(
        world.a.code.encode(), world.c.encode()
    )
    foreign = a.send_edoc(from_c)
    assert (foreign["status"], foreign["ErrorCode"]) == ("FAIL", "403")
    assert foreign["ErrorDesc"] == (
        f"Don vi gui {world.c} khong dung voi ma da dang ky: {world.a.systemid}"
    )
    unknown = b.update_status("00000000-0000-0000-0000-000000000000", "done")
    assert (unknown["status"], unknown["ErrorCode"]) == ("FAIL", "404")

    assert world.a.spooled() == spooled
    time.sleep(2)
    assert _listed(b, "edoc", world.a.code) == []
    a.close()
    b.close()


def test_a_unit_a_hosts_sends_once_the_relay_published_the_directory(world: World) -> None:
    a, b = world.a.client(), world.b.client()

    def knows_the_unit() -> bool:
        rows = a.call("/getAgenciesList")["data"]
        return any(r["code"] == world.unit and r["pid"] == world.a.code for r in rows)

    _eventually("A never learned the directory", knows_the_unit)
    text = world.sample("document_new.edxml", "1505").decode("utf-8")
    # The unit signs the package as its sender (From) but goes through A's adapter.
    text = text.replace(
        f"<edXML:OrganId>{world.a.code}</edXML:OrganId>",
        f"<edXML:OrganId>{world.unit}</edXML:OrganId>",
        1,
    )
    answer = a.send_edoc(text.encode("utf-8"), sender=world.unit)
    assert answer["status"] == "OK", answer
    [item] = _eventually("B never got the unit's document", lambda: _listed(b, "edoc", world.unit))
    assert b.update_status(item["docId"], "done")["status"] == "OK"

    # A unit added to the directory later is published again and may send at once.
    later = random_code()
    add_agency(world.settings, world.engine, later, name="Sở mới", host=world.a.code)
    text = text.replace(world.unit, later).replace("1505", "1507")

    def sent_by_later_unit() -> bool:
        return bool(a.send_edoc(text.encode("utf-8"), sender=later)["status"] == "OK")

    _eventually("the new unit was never allowed to send", sent_by_later_unit)
    [item] = _eventually("B never got the new unit's document", lambda: _listed(b, "edoc", later))
    assert b.update_status(item["docId"], "done")["status"] == "OK"
    a.close()
    b.close()


def test_b_killed_between_listing_and_ack_lists_it_again_and_a_gets_one_01(world: World) -> None:
    a, b = world.a.client(), world.b.client()
    package = world.sample("document_new.edxml", "1506")
    document_id = world.document_id("1506")
    assert a.send_edoc(package)["status"] == "OK"
    [before] = _eventually("B never saw the document", lambda: _listed(b, "edoc"))
    world.b.adapter.kill()  # SIGKILL between getReceivedEdocList and updateStatus
    world.b.adapter.start()

    def listed_again() -> list[Any]:
        try:
            return _listed(b, "edoc")
        except Exception:
            return []

    [after] = _eventually("B's restarted adapter did not list it", listed_again, timeout=60)
    assert after["docId"] == before["docId"]
    assert b.update_status(after["docId"], "done")["status"] == "OK"
    assert b.update_status(after["docId"], "done")["status"] == "OK"

    def arrivals() -> list[str]:
        found = []
        for entry in _listed(a, "status", world.b.code):
            status = parse_status(_package_of(a, entry["docId"]))
            if status.document_id == document_id:
                found.append(entry["docId"])
        return found

    _eventually("A never got the 01", arrivals)
    time.sleep(2)
    ones = arrivals()
    assert len(ones) == 1, ones
    for doc_id in ones:
        a.update_status(doc_id, "done")
    a.close()
    b.close()
