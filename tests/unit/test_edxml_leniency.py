"""Issue 13: the reader accepts what real document systems send, keeps it and says so.

The fixtures under ``tests/data/edxml/quirks/`` were written for these tests; each reproduces
quirks seen in real packages (see ``../shared/samples/real/README.md``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from lxml import etree

from adapters.edxml import (
    EdxmlError,
    PackageReading,
    read_package,
    render_document,
    render_status,
)
from adapters.edxml.values import VIETNAM, read_date, read_timestamp
from schemas import Document, Status, decode_message, encode_message

QUIRKS = Path(__file__).resolve().parents[1] / "data" / "edxml" / "quirks"
HEADER = "edXML/edXMLEnvelope/edXMLHeader"
MESSAGE = f"{HEADER}/MessageHeader"
XLINK = "{http://www.w3.org/1999/xlink}"


def _read(name: str) -> PackageReading:
    return read_package((QUIRKS / name).read_bytes())


def _document(name: str) -> tuple[Document, list[str]]:
    reading = _read(name)
    assert isinstance(reading.package, Document)
    return reading.package, reading.warnings


def _written_again(package: Document | Status) -> Document | Status:
    """read -> wire (JSON) -> write -> read."""
    wire = decode_message(encode_message(package))
    assert isinstance(wire, Document | Status)
    out = render_document(wire) if isinstance(wire, Document) else render_status(wire)
    return read_package(out).package


def _warned(warnings: list[str], *words: str) -> bool:
    return any(all(w in line for w in words) for line in warnings)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2016/04/08", dt.date(2016, 4, 8)),
        ("08/04/2016", dt.date(2016, 4, 8)),  # dd/MM/yyyy, never MM/dd
        ("2016-04-08", dt.date(2016, 4, 8)),
        ("2016/4/8", dt.date(2016, 4, 8)),
        ("2016-04-08 17:00:00", dt.date(2016, 4, 8)),
        ("08/04/2016 17:00", dt.date(2016, 4, 8)),
        ("2016-04-08T17:00:00", dt.date(2016, 4, 8)),
    ],
)
def test_dates_are_read_in_the_forms_real_files_use(text: str, expected: dt.date) -> None:
    reading = read_date(text, "X")
    assert reading.value == expected
    assert reading.keep == (text != "2016/04/08")


@pytest.mark.parametrize("text", ["2014/02/30", "31/04/2016", "30.04.2016", "ngày 8 tháng 4"])
def test_a_date_that_is_impossible_or_in_no_known_form_is_kept_as_text(text: str) -> None:
    reading = read_date(text, "X")
    assert reading.value is None
    assert reading.keep
    assert reading.warning is not None and text in reading.warning


@pytest.mark.parametrize(
    "text",
    ["2016/04/08 09:15:00", "2016-04-08 09:15:00", "08/04/2016 09:15:00", "2016-04-08T02:15:00Z"],
)
def test_timestamps_are_read_in_the_forms_real_files_use(text: str) -> None:
    assert read_timestamp(text, "X").value == dt.datetime(2016, 4, 8, 9, 15, tzinfo=VIETNAM)


def test_a_package_with_many_quirks_is_accepted_with_a_warning_for_each() -> None:
    doc, warnings = _document("document_quirks.edxml")
    assert doc.promulgation_info is not None
    assert doc.promulgation_info.promulgation_date == dt.date(2016, 4, 8)
    assert doc.as_written[f"{MESSAGE}/PromulgationInfo/PromulgationDate"] == "08/04/2016"
    assert _warned(warnings, "PromulgationDate", "'08/04/2016'", "yyyy/MM/dd")
    # Agency codes of every shape the axis uses; the reader never refuses one.
    assert doc.recipient_codes() == ["000.00.00.H26", "vxp.saas.03"]
    # Missing OrganName / OrganizationInCharge: accepted, the missing name is reported.
    assert doc.sender.organ_name is None and doc.sender.organization_in_charge is None
    assert _warned(warnings, f"{MESSAGE}/From", "no OrganName")
    # Elements in any order: DocumentId last, ToPlaces before OtherInfo, Bussiness first.
    assert doc.document_id == "000.00.00.G22,2016/04/08,77/QUIRK-VP"
    assert doc.to_places == ["Lưu: VT"]
    assert doc.business.bussiness_doc_reason == "Văn bản điện tử mới"
    # Empty elements are absent.
    assert doc.due_date is None
    assert doc.response_for == []
    assert doc.recipients[0].organ_add is None
    # Hops without an agency are kept without one.
    assert [hop.organ_id for hop in doc.trace] == [None, None, "000.00.00.G22"]
    assert doc.trace[0].timestamp == dt.datetime(2016, 4, 8, 8, 59, tzinfo=VIETNAM)
    assert _warned(warnings, "TraceHeader[1]/OrganId", "'null'")
    assert _warned(warnings, "TraceHeader[2]", "no OrganId")
    # Priority 4 and SteeringType 0 are known values, kept as given without a warning.
    assert doc.other_info is not None and doc.other_info.priority == 4
    assert doc.steering_type == 0
    assert not _warned(warnings, "Priority") and not _warned(warnings, "SteeringType")


def test_attachments_are_zip_or_raw_by_their_bytes_never_by_content_type() -> None:
    doc, warnings = _document("document_quirks.edxml")
    raw, zipped = doc.attachments
    # Raw base64 of a PDF, declared application/octet-stream, manifest says application/pdf.
    assert raw.content().startswith(b"%PDF-1.4") and raw.content().endswith(b"%%EOF\n")
    assert raw.content_type == "application/octet-stream"
    assert raw.content_id == "att-1"  # matched with the manifest's "cid:att-1"
    assert _warned(warnings, "van-ban.pdf", "not zipped", "kept as sent")
    assert _warned(warnings, "van-ban.pdf", "'application/octet-stream'", "'application/pdf'")
    # Prefixed edXML:AttachmentEncoded / edXML:Attachment are read like unprefixed ones.
    assert zipped.name == "phu-luc.txt"
    assert zipped.content() == "Phụ lục: danh sách đơn vị\n".encode()


def test_a_corrupt_pdf_is_kept_as_sent_with_a_warning() -> None:
    data = (QUIRKS / "document_quirks.edxml").read_bytes()
    doc, _ = _document("document_quirks.edxml")
    damaged = doc.attachments[0].content().replace(b"Catalog", "\ufffd".encode() * 2)
    import base64

    start = data.index(b">", data.index(b"<edXML:ContentTransferEncoded>")) + 1
    end = data.index(b"</edXML:ContentTransferEncoded>", start)
    reading = read_package(data[:start] + base64.b64encode(damaged) + data[end:])
    assert isinstance(reading.package, Document)
    assert reading.package.attachments[0].content() == damaged
    assert _warned(reading.warnings, "van-ban.pdf", "2 U+FFFD", "probably corrupt")


def test_a_zip_of_several_files_is_kept_whole_as_the_attachment() -> None:
    import base64
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.txt", b"a")
        archive.writestr("b.txt", b"b")
    data = (QUIRKS / "document_quirks.edxml").read_bytes()
    start = data.index(b">", data.index(b"<edXML:ContentTransferEncoded>")) + 1
    end = data.index(b"</edXML:ContentTransferEncoded>", start)
    reading = read_package(data[:start] + base64.b64encode(buffer.getvalue()) + data[end:])
    assert isinstance(reading.package, Document)
    assert reading.package.attachments[0].content() == buffer.getvalue()
    assert _warned(reading.warnings, "holds 2 files", "kept as the attachment")


def test_unknown_elements_attributes_and_the_signature_are_kept_and_written_back() -> None:
    doc, _ = _document("document_quirks.edxml")
    parents = {ext.parent for ext in doc.extensions}
    assert {"edXML", f"{HEADER}", f"{MESSAGE}/OtherInfo"} <= parents
    assert any("qUiRkS-bOuNdArY-01" in ext.xml for ext in doc.extensions)
    assert any("DigitalSignature" in ext.xml for ext in doc.extensions)
    assert doc.attributes[f"{HEADER}/TraceHeaderList"] == {
        "id": "th-1",
        "version": "1.0",
        "mustUnderstand": "1",
        "actor": "http://schemas.xmlsoap.org/soap/actor/next",
    }
    reference = "edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference[1]"
    assert doc.attributes[reference] == {f"{XLINK}href": "cid:att-1", f"{XLINK}type": "simple"}
    assert doc.signature is not None
    assert 'xmlns:ds="http://www.w3.org/2000/09/xmldsig#"' in doc.signature
    assert "UVVJUktTLVNJR05BVFVSRQ==" in doc.signature

    written = render_document(doc)
    root = etree.fromstring(written)
    # Written back in place: before the envelope, and in OtherInfo after Direction.
    assert [etree.QName(c).localname for c in root] == [
        "Boundary",
        "ContentId",
        "edXMLEnvelope",
        "AttachmentEncoded",
    ]
    other_info = root.find(".//{*}OtherInfo")
    assert other_info is not None
    assert [etree.QName(c).localname for c in other_info] == ["Priority", "Direction", "VendorFlag"]
    trace_list = root.find(".//{*}TraceHeaderList")
    assert trace_list is not None and trace_list.get("mustUnderstand") == "1"
    ref = root.find(".//{*}Reference")
    assert ref is not None and ref.get(f"{XLINK}href") == "cid:att-1"
    assert b"xmlns:xlink=" in written and b"ns0:" not in written
    assert b"<edXML:PromulgationDate>08/04/2016</edXML:PromulgationDate>" in written
    assert b"<edXML:OrganId>null</edXML:OrganId>" in written
    assert doc.signature.encode() in written


@pytest.mark.parametrize(
    "name",
    [
        "document_quirks.edxml",
        "document_odd_values.edxml",
        "document_unbound_xlink.edxml",
        "status_dashed_document_id.edxml",
    ],
)
def test_read_wire_write_read_gives_an_equal_package(name: str) -> None:
    package = _read(name).package
    assert _written_again(package) == package


def test_values_that_are_not_what_their_element_expects_are_kept_as_written() -> None:
    doc, warnings = _document("document_odd_values.edxml")
    assert doc.promulgation_info is not None
    assert doc.promulgation_info.promulgation_date is None
    assert doc.as_written[f"{MESSAGE}/PromulgationInfo/PromulgationDate"] == "2016/02/30"
    assert _warned(warnings, "'2016/02/30' is not a real date")
    assert doc.other_info is not None and doc.other_info.priority == 7
    assert _warned(warnings, "Priority", "7 is not a known Priority", "0 Thường")
    assert doc.steering_type is None
    assert doc.as_written[f"{MESSAGE}/SteeringType"] == "2(Chỉ đạo)"
    assert doc.other_info.direction is None
    assert doc.due_date == dt.date(2016, 4, 30)
    written = render_document(doc)
    assert "<edXML:SteeringType>2(Chỉ đạo)</edXML:SteeringType>".encode() in written
    assert b"<edXML:PromulgationDate>2016/02/30</edXML:PromulgationDate>" in written


def test_a_value_changed_after_reading_is_written_in_the_standard_form() -> None:
    doc, _ = _document("document_quirks.edxml")
    assert doc.promulgation_info is not None
    changed = doc.promulgation_info.model_copy(update={"promulgation_date": dt.date(2016, 5, 1)})
    written = render_document(doc.model_copy(update={"promulgation_info": changed}))
    assert b"<edXML:PromulgationDate>2016/05/01</edXML:PromulgationDate>" in written


def test_a_status_whose_document_id_has_a_dashed_date_names_the_document_as_sent() -> None:
    reading = _read("status_dashed_document_id.edxml")
    status = reading.package
    assert isinstance(status, Status)
    sent, _ = _document("document_quirks.edxml")
    assert status.document_id == sent.document_id
    assert _warned(reading.warnings, "ResponseFor/DocumentId", "dashes")
    # The recipient of the status still reads what its sender wrote.
    assert b"000.00.00.G22,2016-04-08,77/QUIRK-VP" in render_status(status)


def test_an_undeclared_xlink_prefix_is_read_bound_to_its_namespace_with_a_warning() -> None:
    doc, warnings = _document("document_unbound_xlink.edxml")
    reference = "edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference[1]"
    assert doc.attributes[reference] == {f"{XLINK}href": "cid:1"}
    assert _warned(warnings, "line 79", "xlink:", "never declared")


def test_an_undeclared_prefix_that_is_not_well_known_is_refused_naming_prefix_and_line() -> None:
    data = (QUIRKS / "document_unbound_xlink.edxml").read_bytes().replace(b"xlink:", b"foo:")
    with pytest.raises(EdxmlError, match=r"prefix foo .*line 79"):
        read_package(data)


def test_a_package_in_the_older_2803_format_is_refused_saying_so() -> None:
    with pytest.raises(EdxmlError, match=r"older '2803' edXML format"):
        _read("format_2803.edxml")


def test_a_soap_envelope_is_refused_saying_so() -> None:
    with pytest.raises(EdxmlError, match=r"SOAP envelope"):
        _read("soap_envelope.edxml")


def test_placeholder_text_is_not_an_agency_code_and_every_reason_is_given() -> None:
    data = (QUIRKS / "document_quirks.edxml").read_bytes()
    data = data.replace(
        b"<edXML:OrganId>000.00.00.G22</edXML:OrganId>",
        "<edXML:OrganId>Mã định danh</edXML:OrganId>".encode(),
        1,
    )
    data = data.replace(
        b"<edXML:OrganId>vxp.saas.03</edXML:OrganId>", b"<edXML:OrganId></edXML:OrganId>"
    )
    with pytest.raises(EdxmlError) as caught:
        read_package(data)
    assert caught.value.reasons == [
        f"{MESSAGE}/From/OrganId: 'Mã định danh' is not an agency code: it holds spaces or "
        "control characters; expected a code such as '000.00.00.G22' (got 'Mã định danh')",
        f"{MESSAGE}/To[2]/OrganId: Field required",
    ]


def test_a_status_without_a_readable_timestamp_is_refused_naming_the_element() -> None:
    data = (QUIRKS / "status_dashed_document_id.edxml").read_bytes()
    data = data.replace(b"08/04/2016 10:30:00", "hôm nay".encode())
    with pytest.raises(EdxmlError) as caught:
        read_package(data)
    assert caught.value.reasons == [
        f"{MESSAGE}/Timestamp: 'hôm nay' cannot be read as this element's value"
    ]
