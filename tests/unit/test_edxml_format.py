"""The edXML file format of the folder connector, and the route kept in TraceHeaderList."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from adapters.edxml import parse_document
from adapters.edxml.trace import stamp_delivery, stamp_submission
from adapters.formats.base import FormatError
from adapters.formats.edxml import EdxmlFormat
from adapters.formats.registry import format_for_file, get_format
from schemas import Document, Extension, Status, decode_message, encode_message
from schemas import topology as t

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "edxml"
AT = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)


def _sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_the_registry_finds_the_edxml_format_by_name_and_suffix() -> None:
    assert isinstance(get_format("edxml"), EdxmlFormat)
    assert isinstance(format_for_file("cv-1234.EDXML"), EdxmlFormat)
    assert EdxmlFormat.name == "edxml" and EdxmlFormat.suffix == ".edxml"


def test_reading_a_status_package_gives_a_status() -> None:
    status = EdxmlFormat().read(_sample("status_13_cancellation.edxml"))
    assert isinstance(status, Status) and status.status_code == "13"


def test_a_document_already_stamped_by_its_sender_keeps_its_trace() -> None:
    document = EdxmlFormat().read(_sample("document_new.edxml"))
    assert isinstance(document, Document)
    assert [h.organ_id for h in document.trace] == ["000.00.00.G22"]


def test_the_sending_side_adds_its_trace_header_when_missing() -> None:
    data = _sample("document_new.edxml")
    start = data.index(b"<edXML:TraceHeader>")
    end = data.index(b"</edXML:TraceHeader>") + len(b"</edXML:TraceHeader>")
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    document = EdxmlFormat().read(data[:start] + data[end:])
    assert isinstance(document, Document)
    [hop] = document.trace
    assert hop.organ_id == "000.00.00.G22"
    assert hop.timestamp >= before


def test_stamping_the_submission_appends_another_agency() -> None:
    document = parse_document(_sample("document_new.edxml"))
    stamped = stamp_submission(document, "000.00.00.H41", AT)
    assert [(h.organ_id, h.timestamp) for h in stamped.trace][-1] == ("000.00.00.H41", AT)
    assert len(document.trace) == 1  # the original is not changed


def test_the_delivered_package_shows_the_relays_route() -> None:
    document = parse_document(_sample("document_new.edxml"))
    headers: dict[str, object] = {
        t.HEADER_SENDER: b"000.00.00.G22",
        t.HEADER_RECIPIENT: "000.00.00.H26",
        t.HEADER_SUBMISSION_ID: "x",
    }
    stamped = stamp_delivery(document, headers, AT)
    assert [h.organ_id for h in stamped.trace] == [
        "000.00.00.G22",
        "000.00.00.G22",
        "000.00.00.H26",
    ]
    written = EdxmlFormat().write_delivered_document(document, headers)
    again = parse_document(written)
    assert [h.organ_id for h in again.trace] == [h.organ_id for h in stamped.trace]
    assert b"<edXML:OrganId>000.00.00.H26</edXML:OrganId>" in written


def test_route_headers_that_are_missing_or_not_codes_add_no_hop() -> None:
    document = parse_document(_sample("document_new.edxml"))
    stamped = stamp_delivery(document, {t.HEADER_SENDER: "not a code"}, AT)
    assert stamped.trace == document.trace


def test_a_document_the_format_cannot_write_is_a_format_error() -> None:
    document = parse_document(_sample("document_new.edxml"))
    document.subject = "bell \x07 character"
    with pytest.raises(FormatError, match="Subject"):
        EdxmlFormat().write_document(document)


def test_a_broken_kept_element_is_a_format_error() -> None:
    status = EdxmlFormat().read(_sample("status_01_inbox.edxml"))
    assert isinstance(status, Status)
    status.extensions = [Extension(parent="edXML", xml="<open>")]
    with pytest.raises(FormatError, match=r"extensions\[0\]\.xml"):
        EdxmlFormat().write_status(status)


def test_a_quirky_package_crosses_the_connector_and_the_wire_intact() -> None:
    """What the e2e test shows with processes, here without a broker: A's outbox reader ->
    the JSON the relay validates -> B's inbox writer -> B's DMS reads the same package."""
    data = _sample("quirks/document_quirks.edxml")
    fmt = EdxmlFormat()
    sent, warnings = fmt.read_with_warnings(data)
    assert isinstance(sent, Document) and warnings
    on_the_wire = decode_message(encode_message(sent), expect="document")
    assert isinstance(on_the_wire, Document)
    headers: dict[str, object] = {
        t.HEADER_SENDER: "000.00.00.G22",
        t.HEADER_RECIPIENT: "000.00.00.H26",
    }
    written = fmt.write_delivered_document(on_the_wire, headers)
    arrived = parse_document(written)
    assert [a.content() for a in arrived.attachments] == [a.content() for a in sent.attachments]
    assert arrived.extensions == sent.extensions
    assert arrived.attributes == sent.attributes
    assert arrived.as_written == sent.as_written
    assert arrived.signature == sent.signature
    assert arrived.recipient_codes() == ["000.00.00.H26", "vxp.saas.03"]
    assert [h.organ_id for h in arrived.trace] == [
        None,
        None,
        "000.00.00.G22",
        "000.00.00.G22",
        "000.00.00.H26",
    ]
