"""Issue 13 end to end: a package with many real-world quirks travels A -> relay -> B.

One relay and two adapters (``format = "edxml"``) run as real processes, as in
``test_edxml_exchange.py``. A's DMS drops ``quirks/document_quirks.edxml`` (written for these
tests: unknown elements before the envelope and inside OtherInfo, SOAP-style attributes on
TraceHeaderList, xlink attributes, a dd/MM/yyyy date, empty elements, hops without an agency,
an XML-DSig signature, a raw (unzipped) PDF with a ContentType that disagrees with the
manifest, prefixed AttachmentEncoded, a lower-case system code as a second recipient). B's DMS
finds it in its inbox with every byte of the attachments and every unknown element and
attribute in place; A gets status 01 back, and a status whose DocumentId spells the date with
dashes still finds the document.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import Engine

from adapters.edxml import parse_document, parse_status, read_package
from relay.db.engine import make_engine
from relay.errors import NotFound
from relay.queries.trace import load_trace
from schemas import Document, Status
from tests.adapter_support import AdapterProcess, agency_url, drop, write_config
from tests.relay_support import RelayProcess, add_agency, wait_until
from tests.services import random_code

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

QUIRKS = Path(__file__).resolve().parents[1] / "data" / "edxml" / "quirks"
WAIT = 30.0
XLINK = "{http://www.w3.org/1999/xlink}"


@dataclass
class World:
    a: str
    b: str
    roots: dict[str, Path]
    engine: Engine

    def fixture(self, name: str) -> bytes:
        """A fixture with this world's codes (G22 -> A, H26 -> B)."""
        text = (QUIRKS / name).read_text(encoding="utf-8")
        text = text.replace("000.00.00.G22", self.a).replace("000.00.00.H26", self.b)
        return text.encode("utf-8")

    def received(self, code: str, kind: str) -> list[Path]:
        folder = self.roots[code] / "inbox" / kind
        return sorted(folder.glob("*.edxml")) if folder.is_dir() else []

    def state(self, document_id: str, recipient: str) -> str | None:
        try:
            with self.engine.connect() as conn:
                trace = load_trace(conn, document_id)
        except NotFound:
            return None
        rows = [r for r in trace.submissions[0].recipients if r.recipient == recipient]
        return rows[0].state if rows else None


def _eventually(what: str, probe: Callable[[], Any]) -> Any:
    try:
        return wait_until(probe, timeout=WAIT, interval=0.2)
    except AssertionError as e:
        raise AssertionError(f"{what}: {e}") from None


@pytest.fixture(scope="module")
def world(make_env: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = make_env()
    engine = make_engine(settings.database_url)
    codes = [random_code() for _ in range(2)]
    agencies = [add_agency(settings, engine, code) for code in codes]
    base = tmp_path_factory.mktemp("edxml-real-world")
    relay = RelayProcess(settings).start()
    adapters: list[AdapterProcess] = []
    roots: dict[str, Path] = {}
    try:
        relay.wait_consuming(codes)
        for agency in agencies:
            assert agency.password is not None
            folder = base / agency.code
            config = write_config(
                folder, agency.code, agency_url(settings), agency.password, format="edxml"
            )
            adapters.append(AdapterProcess(config, folder / "adapter.log").start())
            roots[agency.code] = folder / "root"
        yield World(a=codes[0], b=codes[1], roots=roots, engine=engine)
    finally:
        for adapter in adapters:
            adapter.stop()
        relay.stop()
        engine.dispose()


@pytest.fixture(scope="module")
def sent(world: World) -> Document:
    """The quirky package as A's DMS wrote it (read by the same reader)."""
    data = world.fixture("document_quirks.edxml")
    drop(world.roots[world.a] / "outbox", "quirks.edxml", data)
    package = read_package(data).package
    assert isinstance(package, Document)
    return package


@pytest.fixture(scope="module")
def arrived(world: World, sent: Document) -> bytes:
    """The file B's DMS finds in its inbox."""
    files = _eventually("B never got the document", lambda: world.received(world.b, "documents"))
    [path] = files
    data: bytes = path.read_bytes()
    return data


def test_the_attachments_arrive_byte_for_byte(sent: Document, arrived: bytes) -> None:
    document = parse_document(arrived)
    assert [(a.name, a.content()) for a in document.attachments] == [
        (a.name, a.content()) for a in sent.attachments
    ]
    raw_pdf = document.attachments[0]
    assert raw_pdf.content().startswith(b"%PDF-1.4")
    assert raw_pdf.content_type == "application/octet-stream"  # as the sender declared it


def test_unknown_elements_attributes_and_values_as_written_arrive_in_place(
    world: World, sent: Document, arrived: bytes
) -> None:
    document = parse_document(arrived)
    assert document.document_id == sent.document_id
    assert document.extensions == sent.extensions
    assert document.attributes == sent.attributes
    assert document.signature == sent.signature
    assert document.as_written == sent.as_written
    root = etree.fromstring(arrived)
    # The unknown elements before the envelope are still before it.
    assert [etree.QName(c).localname for c in root][:3] == [
        "Boundary",
        "ContentId",
        "edXMLEnvelope",
    ]
    assert root.findtext("{*}Boundary") == "qUiRkS-bOuNdArY-01"
    assert root.find(".//{*}OtherInfo/{*}VendorFlag") is not None
    assert root.find(".//{*}edXMLHeader/{*}DigitalSignature") is not None
    trace_list = root.find(".//{*}TraceHeaderList")
    assert trace_list is not None and trace_list.get("actor", "").endswith("/actor/next")
    reference = root.find(".//{*}edXMLManifest/{*}Reference")
    assert reference is not None and reference.get(f"{XLINK}href") == "cid:att-1"
    assert root.findtext(".//{*}PromulgationInfo/{*}PromulgationDate") == "08/04/2016"
    # The route: the sender's hops as sent (two without an agency), then the hub and B.
    assert [h.organ_id for h in document.trace] == [None, None, world.a, world.a, world.b]


def test_a_gets_status_01_and_a_receipt_naming_the_unknown_recipient(
    world: World, sent: Document, arrived: bytes
) -> None:
    def statuses() -> list[Status]:
        found = [parse_status(p.read_bytes()) for p in world.received(world.a, "statuses")]
        return [s for s in found if s.document_id == sent.document_id]

    [status] = _eventually("A never got status 01", statuses)
    assert status.status_code == "01"
    assert status.sender.organ_id == world.b
    receipts_dir = world.roots[world.a] / "inbox" / "receipts"

    def accepted() -> list[dict[str, Any]]:
        paths = sorted(receipts_dir.glob("*.json")) if receipts_dir.is_dir() else []
        found = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
        return [r for r in found if r.get("document_id") == sent.document_id]

    [receipt] = _eventually("A never got the receipt", accepted)
    outcomes = {r["code"]: r["outcome"] for r in receipt["recipients"]}
    assert outcomes == {world.b: "queued", "vxp.saas.03": "unknown_recipient"}


def test_a_status_with_a_dashed_document_id_finds_its_document(
    world: World, sent: Document, arrived: bytes
) -> None:
    _eventually(
        "the delivery was never recorded as delivered",
        lambda: world.state(sent.document_id, world.b) == "delivered",
    )
    drop(
        world.roots[world.b] / "outbox",
        "03-dashed.edxml",
        world.fixture("status_dashed_document_id.edxml"),
    )

    def acceptance() -> list[Status]:
        found = [parse_status(p.read_bytes()) for p in world.received(world.a, "statuses")]
        return [s for s in found if s.status_code == "03"]

    [status] = _eventually("A never got status 03", acceptance)
    assert status.document_id == sent.document_id
    _eventually(
        "the relay did not record 03 on the document",
        lambda: world.state(sent.document_id, world.b) == "accepted",
    )
