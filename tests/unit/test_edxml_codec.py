"""The edXML codec against the national-axis samples: parse, render, parse again."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import re
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from adapters.edxml import (
    parse_document,
    parse_package,
    parse_status,
    read_package,
    render_document,
    render_status,
)
from adapters.edxml.errors import EdxmlError
from schemas import (
    Attachment,
    Document,
    Extension,
    Organization,
    Status,
    TraceHeader,
    decode_message,
    encode_message,
)
from schemas.business import BusinessType

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "edxml"
ALL = sorted(SAMPLES.glob("*.edxml"))
NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"


def _render(model: Document | Status) -> bytes:
    return render_document(model) if isinstance(model, Document) else render_status(model)


def _original_pdf(sample: Path) -> bytes:
    """The PDF inside a sample, unzipped here independently of the codec."""
    text = re.search(rb"ContentTransferEncoded[^>]*>([^<]+)<", sample.read_bytes())
    assert text is not None
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(text.group(1)))) as archive:
        return archive.read(archive.namelist()[0])


def test_there_are_thirteen_samples() -> None:
    assert len(ALL) == 13


@pytest.mark.parametrize("sample", ALL, ids=lambda p: p.stem)
def test_every_sample_parses_and_survives_a_round_trip(sample: Path) -> None:
    first = parse_package(sample.read_bytes())
    rendered = _render(first)
    etree.fromstring(rendered)  # well-formed
    second = parse_package(rendered)
    assert second == first
    assert _render(second) == rendered  # and rendering is stable


@pytest.mark.parametrize("sample", [p for p in ALL if p.stem.startswith("status_")])
def test_status_samples_are_statuses_with_their_code(sample: Path) -> None:
    status = parse_status(sample.read_bytes())
    assert status.status_code == sample.stem.split("_")[1]
    assert status.response_for.document_id == "000.00.00.G22,2016/04/08,1234/VPCP-KSTT"


def test_the_new_document_has_every_header_field() -> None:
    doc = parse_document((SAMPLES / "document_new.edxml").read_bytes())
    assert doc.document_id == "000.00.00.G22,2016/04/08,1234/VPCP-KSTT"
    assert doc.sender.organ_id == "000.00.00.G22"
    assert doc.sender.fax is None  # an empty <Fax/> is read as absent (issue 13)
    assert [r.organ_id for r in doc.recipients] == ["000.00.00.H26", "000.00.00.H29"]
    assert doc.code is not None and doc.code.code_number == "1234"
    assert doc.promulgation_info is not None
    assert doc.promulgation_info.promulgation_date == dt.date(2016, 4, 8)
    assert doc.document_type is not None and doc.document_type.type_name == "Công văn"
    assert doc.due_date == dt.date(2016, 4, 30)
    assert doc.other_info is not None and doc.other_info.direction is False
    assert doc.other_info.appendixes == ["Lịch triển khai kết nối giai đoạn 1 và giai đoạn 2"]
    assert doc.to_places == ["UBND các tỉnh, thành phố trực thuộc Trung ương", "Lưu: VT, KSTT"]
    assert doc.steering_type == 1
    assert doc.business.bussiness_doc_type == BusinessType.NEW
    assert doc.business.staff_info is not None and doc.business.staff_info.staff == "Trần Thị B"
    assert doc.signature is not None and "<SignatureValue>UExBQ0VIT0xERVI=" in doc.signature
    assert doc.extensions == []


def test_timestamps_are_vietnam_local_time() -> None:
    doc = parse_document((SAMPLES / "document_new.edxml").read_bytes())
    assert doc.trace == [
        TraceHeader(
            organ_id="000.00.00.G22",
            timestamp=dt.datetime(2016, 4, 8, 2, 15, tzinfo=dt.UTC),
        )
    ]
    assert doc.trace[0].timestamp.utcoffset() == dt.timedelta(hours=7)


def test_a_utc_timestamp_is_written_in_vietnam_time() -> None:
    status = parse_status((SAMPLES / "status_03_acceptance.edxml").read_bytes())
    status.timestamp = dt.datetime(2016, 4, 8, 17, 30, tzinfo=dt.UTC)
    assert b"<edXML:Timestamp>2016/04/09 00:30:00</edXML:Timestamp>" in render_status(status)


def test_the_attachment_is_the_original_pdf() -> None:
    sample = SAMPLES / "document_new.edxml"
    doc = parse_document(sample.read_bytes())
    [attachment] = doc.attachments
    pdf = _original_pdf(sample)
    assert pdf.startswith(b"%PDF")
    assert attachment.content() == pdf
    assert attachment.sha256 == hashlib.sha256(pdf).hexdigest()
    assert attachment.size == len(pdf)
    assert attachment.name == "1234-VPCP-KSTT.pdf"
    assert attachment.content_type == "application/pdf"
    assert attachment.content_id == "cid:1"


def test_rendered_attachments_are_zipped_then_base64() -> None:
    doc = parse_document((SAMPLES / "document_new.edxml").read_bytes())
    root = etree.fromstring(render_document(doc))
    [encoded] = root.iter(f"{{{NS}}}ContentTransferEncoded")
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(encoded.text or ""))) as archive:
        assert archive.read(archive.namelist()[0]) == doc.attachments[0].content()


@pytest.mark.parametrize(
    ("sample", "kind"),
    [
        ("document_revoke", BusinessType.REVOKE),
        ("document_update", BusinessType.UPDATE),
        ("document_replace", BusinessType.REPLACE),
    ],
)
def test_business_types_and_their_details_are_read(sample: str, kind: BusinessType) -> None:
    doc = parse_document((SAMPLES / f"{sample}.edxml").read_bytes())
    assert doc.business_type == kind
    assert doc.response_for[0].document_id == "000.00.00.G22,2016/04/08,1234/VPCP-KSTT"
    if kind == BusinessType.UPDATE:
        info = doc.business.bussiness_document_info
        assert info is not None and info.document_info == 1
        assert [r.organ_id for r in info.receiver_list] == ["000.00.00.H29"]
    if kind == BusinessType.REPLACE:
        [replaced] = doc.business.replacement_info_list
        assert replaced.document_id == "000.00.00.G22,2016/04/08,1234/VPCP-KSTT"
        assert replaced.organ_id_list == ["000.00.00.H26", "000.00.00.H29"]


def _with_unknown_elements(data: bytes) -> bytes:
    text = data.decode("utf-8")
    text = text.replace(
        "<edXML:Subject>",
        '<edXML:Urgency level="2">Hỏa tốc</edXML:Urgency><edXML:Subject>',
    )
    text = text.replace(
        "<edXML:OrganizationInCharge>UBND Thành phố Hồ Chí Minh",
        '<vendor:Note xmlns:vendor="urn:vendor"><vendor:Id>42</vendor:Id></vendor:Note>'
        "<edXML:OrganizationInCharge>UBND Thành phố Hồ Chí Minh",
    )
    text = text.replace("<edXML:Paper>0</edXML:Paper>", "<edXML:Paper>0</edXML:Paper><Extra/>")
    text = text.replace("<AttachmentEncoded>", "<AttachmentEncoded><Checksum>abc</Checksum>")
    return text.encode("utf-8")


def test_unknown_elements_are_kept_and_written_back_in_their_parent() -> None:
    data = _with_unknown_elements((SAMPLES / "document_new.edxml").read_bytes())
    doc = parse_document(data)
    parents = {e.parent.rsplit("/", 1)[-1]: e.xml for e in doc.extensions}
    assert set(parents) == {"MessageHeader", "To[2]", "Bussiness", "AttachmentEncoded"}
    assert "Hỏa tốc" in parents["MessageHeader"]
    assert 'level="2"' in parents["MessageHeader"]
    assert "urn:vendor" in parents["To[2]"]
    rendered = render_document(doc)
    root = etree.fromstring(rendered)
    [urgency] = root.iter(f"{{{NS}}}Urgency")
    assert etree.QName(urgency.getparent()).localname == "MessageHeader"
    [note] = root.iter("{urn:vendor}Note")
    parent = note.getparent()
    assert parent is not None and parent.findtext(f"{{{NS}}}OrganId") == "000.00.00.H29"
    assert parse_document(rendered) == doc


def test_an_extension_whose_parent_is_not_written_goes_to_an_ancestor() -> None:
    doc = parse_document((SAMPLES / "document_new.edxml").read_bytes())
    doc.extensions = [
        Extension(
            parent="edXML/edXMLEnvelope/edXMLHeader/MessageHeader/To[9]", xml="<Kept>x</Kept>"
        )
    ]
    again = parse_document(render_document(doc))
    assert [e.parent for e in again.extensions] == ["edXML/edXMLEnvelope/edXMLHeader/MessageHeader"]


def test_a_document_built_in_json_renders_and_reads_back() -> None:
    doc = Document(
        document_id="000.00.00.G22,2026/11/24,1/VPCP",
        sender=Organization(organ_id="000.00.00.G22"),
        recipients=[Organization(organ_id="000.00.00.H26")],
        attachments=[Attachment.from_bytes("a.txt", b"hello", "text/plain")],
    )
    again = parse_document(render_document(doc))
    assert again.attachments[0].content() == b"hello"
    assert again.attachments[0].content_id == "cid:1"
    assert again.model_copy(update={"attachments": doc.attachments}) == doc


def test_a_date_in_no_known_form_is_kept_as_text_with_a_warning_naming_element_and_value() -> None:
    data = (SAMPLES / "document_new.edxml").read_bytes()
    data = data.replace(b"<edXML:DueDate>2016/04/30", b"<edXML:DueDate>30.04.2016")
    reading = read_package(data)
    assert isinstance(reading.package, Document)
    assert reading.package.due_date is None
    path = "edXML/edXMLEnvelope/edXMLHeader/MessageHeader/DueDate"
    assert reading.package.as_written == {path: "30.04.2016"}
    assert any(
        w.startswith(f"{path}: '30.04.2016' is not a date in a known form")
        for w in reading.warnings
    )
    assert b"<edXML:DueDate>30.04.2016</edXML:DueDate>" in render_document(reading.package)


def test_a_bad_agency_code_names_the_field_and_the_value() -> None:
    data = (SAMPLES / "status_01_inbox.edxml").read_bytes()
    data = data.replace(b"<edXML:OrganId>000.00.00.H26", b"<edXML:OrganId>not a code", 1)
    with pytest.raises(EdxmlError, match=r"MessageHeader/From/OrganId: 'not a code' is not an"):
        parse_status(data)


def test_a_file_that_is_not_edxml_is_refused() -> None:
    with pytest.raises(EdxmlError, match="root element is <html>"):
        parse_package(b"<html><body/></html>")


def test_a_status_keeps_what_its_model_has_no_field_for() -> None:
    data = (SAMPLES / "status_05_processing.edxml").read_bytes().decode("utf-8")
    data = data.replace(
        "</edXML:MessageHeader>",
        "</edXML:MessageHeader><edXML:TraceHeaderList><edXML:TraceHeader>"
        "<edXML:OrganId>000.00.00.H26</edXML:OrganId>"
        "<edXML:Timestamp>2016/04/08 10:05:00</edXML:Timestamp></edXML:TraceHeader>"
        "</edXML:TraceHeaderList><Signature><SignatureValue>QUJD</SignatureValue></Signature>",
    )
    status = parse_status(data.encode("utf-8"))
    assert [e.parent for e in status.extensions] == [
        "edXML/edXMLEnvelope/edXMLHeader",
        "edXML/edXMLEnvelope/edXMLHeader",
    ]
    rendered = render_status(status)
    assert b"<SignatureValue>QUJD</SignatureValue>" in rendered
    assert parse_status(rendered) == status


def test_attachments_with_missing_or_repeated_content_ids_get_unique_ones() -> None:
    doc = Document(
        document_id="000.00.00.G22,2026/11/24,2/VPCP",
        sender=Organization(organ_id="000.00.00.G22"),
        recipients=[Organization(organ_id="000.00.00.H26")],
        attachments=[
            Attachment.from_bytes("a.txt", b"a", content_id="cid:1"),
            Attachment.from_bytes("b.txt", b"b", content_id="cid:1"),
            Attachment.from_bytes("c.txt", b"c"),
        ],
    )
    again = parse_document(render_document(doc))
    assert [(a.name, a.content()) for a in again.attachments] == [
        ("a.txt", b"a"),
        ("b.txt", b"b"),
        ("c.txt", b"c"),
    ]
    assert len({a.content_id for a in again.attachments}) == 3


@pytest.mark.parametrize("sample", ALL, ids=lambda p: p.stem)
def test_a_parsed_package_crosses_the_hub_as_json_unchanged(sample: Path) -> None:
    model = parse_package(sample.read_bytes())
    carried = decode_message(encode_message(model))
    assert carried == model
    assert _render(carried) == _render(model)
