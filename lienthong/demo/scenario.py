"""The demo's cast and script: agencies of the 2016 roll-out, the công văn, and what each DMS says.

Agency names come from the directory copy shipped in ``lienthong/data/agencies.csv``. Văn phòng
Chính phủ sends the sample công văn 1234/VPCP-KSTT to UBND TP Hà Nội, a department Hà Nội hosts,
UBND TP Hồ Chí Minh and Bộ Thông tin và Truyền thông; each recipient's DMS answers 03 → 06 after
the adapter's automatic 01, except the ministry, which refuses (02); then Văn phòng Chính phủ
revokes the document at UBND TP Hồ Chí Minh.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from importlib import resources

from schemas import (
    Attachment,
    Business,
    BusinessType,
    Document,
    Organization,
    ResponseFor,
    StaffInfo,
    Status,
)
from schemas.document import (
    Code,
    DocumentType,
    OtherInfo,
    PromulgationInfo,
    SignerInfo,
)

SENDER = "000.00.00.G22"  # Văn phòng Chính phủ
HANOI = "000.00.00.H26"  # UBND Thành phố Hà Nội
HANOI_UNITS = ("000.00.21.H26", "000.00.22.H26")  # Sở TT&TT, Sở Nội vụ Hà Nội (hosted)
HCMC = "000.00.00.H29"  # UBND Thành phố Hồ Chí Minh
MINISTRY = "000.00.00.G12"  # Bộ Thông tin và Truyền thông

#: Agencies that run an adapter of their own, the sender first.
CONNECTED = (SENDER, HANOI, HCMC, MINISTRY)
#: The document's recipients, as the sender addresses them (a hosted unit among them).
RECIPIENTS = (HANOI, HANOI_UNITS[0], HCMC, MINISTRY)
#: What each recipient's DMS answers after the adapter's automatic 01, in order.
ANSWERS: dict[str, tuple[str, ...]] = {
    HANOI: ("03", "04", "05", "06"),
    HANOI_UNITS[0]: ("03", "04", "05", "06"),
    HCMC: ("03", "04", "05", "06"),
    MINISTRY: ("02",),
}
#: DMSes that speak edXML (QCVN 102:2016): the sender drops the công văn as edXML, and Hồ Chí
#: Minh's adapter writes what it receives as edXML and takes its statuses as edXML. The others
#: use JSON, as does the revoke: both formats cross the hub in one run.
EDXML_DMS = frozenset({SENDER, HCMC})
#: How each adapter writes received files (`format` in adapter.toml).
ADAPTER_FORMAT = {SENDER: "json", HANOI: "json", HCMC: "edxml", MINISTRY: "json"}

#: Who the revoke (BussinessDocType 1) is sent to, once every recipient has answered.
REVOKED_AT = HCMC

#: (business type, recipient) -> the delivery state the demo must end with.
EXPECTED_STATES: dict[tuple[int, str], str] = {
    (BusinessType.NEW, HANOI): "completed",
    (BusinessType.NEW, HANOI_UNITS[0]): "completed",
    (BusinessType.NEW, HCMC): "completed",
    (BusinessType.NEW, MINISTRY): "refused",
    (BusinessType.REVOKE, REVOKED_AT): "delivered",
}

DOCUMENT_ID = "000.00.00.G22,2016/04/08,1234/VPCP-KSTT"
NOTATION = "1234/VPCP-KSTT"
PROMULGATED = dt.date(2016, 4, 8)

STATUS_NOTES = {
    "02": "Văn bản không thuộc thẩm quyền giải quyết, đề nghị gửi lại đúng cơ quan",
    "03": "Tiếp nhận văn bản điện tử, vào sổ văn bản đến",
    "04": "Phân công phòng chuyên môn xử lý",
    "05": "Đang xử lý",
    "06": "Đã xử lý xong",
}


@dataclass(frozen=True)
class Agency:
    code: str
    name: str
    host: str | None  # the connected agency that receives for a hosted unit


def directory() -> dict[str, Agency]:
    """The 2016 roll-out directory shipped with the package (code,name,host)."""
    text = resources.files("lienthong").joinpath("data/agencies.csv").read_text("utf-8")
    rows = csv.DictReader(io.StringIO(text))
    return {r["code"]: Agency(r["code"], r["name"], r["host"] or None) for r in rows}


def cast() -> list[Agency]:
    """The agencies the demo provisions: connected ones first, then Hà Nội's hosted units."""
    known = directory()
    wanted = [*CONNECTED, *HANOI_UNITS]
    missing = [c for c in wanted if c not in known]
    if missing:
        raise LookupError(f"lienthong/data/agencies.csv lacks the demo's agencies {missing}")
    return [known[c] for c in wanted]


def route_of(agencies: list[Agency], code: str) -> str:
    """The connected agency whose adapter receives for ``code``."""
    for a in agencies:
        if a.code == code:
            return a.host or a.code
    raise LookupError(f"{code} is not one of the demo's agencies")


def _org(agency: Agency) -> Organization:
    return Organization(
        organ_id=agency.code, organization_in_charge=agency.name, organ_name=agency.name
    )


def _attachment() -> Attachment:
    # A tiny but well-formed one-page PDF, so the attachment path (size, SHA-256) is exercised.
    pdf = (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
        b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\n"
        b"trailer<</Root 1 0 R>>\n%%EOF\n"
    )
    return Attachment.from_bytes(
        "1234-VPCP-KSTT.pdf",
        pdf,
        "application/pdf",
        content_id="cid:1",
        description="Công văn số 1234/VPCP-KSTT",
    )


def new_document(agencies: list[Agency]) -> Document:
    """The sample công văn (lienthong/data/document_new.edxml) in its JSON form."""
    by_code = {a.code: a for a in agencies}
    return Document(
        document_id=DOCUMENT_ID,
        sender=_org(by_code[SENDER]),
        recipients=[_org(by_code[c]) for c in RECIPIENTS],
        code=Code(code_number="1234", code_notation="VPCP-KSTT"),
        promulgation_info=PromulgationInfo(place="Hà Nội", promulgation_date=PROMULGATED),
        document_type=DocumentType(type=1, type_detail=0, type_name="Công văn"),
        subject="V/v liên thông văn bản điện tử với Văn phòng Chính phủ qua Trục liên thông",
        content="Đề nghị các cơ quan khẩn trương liên thông văn bản điện tử với Văn phòng "
        "Chính phủ qua Trục liên thông theo Nghị quyết 36a/NQ-CP.",
        signer_info=SignerInfo(
            competence="KT. BỘ TRƯỞNG, CHỦ NHIỆM",
            position="Phó Chủ nhiệm",
            full_name="Nguyễn Văn A",
        ),
        due_date=dt.date(2016, 4, 30),
        other_info=OtherInfo(
            priority=1,
            sphere_of_promulgation="Liên thông văn bản quốc gia",
            typer_notation="KSTT",
            promulgation_amount=2,
            page_amount=1,
        ),
        steering_type=1,
        to_places=["UBND các tỉnh, thành phố trực thuộc Trung ương", "Lưu: VT, KSTT"],
        business=Business(
            document_id=DOCUMENT_ID,
            bussiness_doc_type=BusinessType.NEW,
            bussiness_doc_reason="Văn bản điện tử mới",
            paper=0,
            staff_info=StaffInfo(department="Văn thư", staff="Trần Thị B"),
        ),
        attachments=[_attachment()],
    )


def revoke_document(agencies: list[Agency]) -> Document:
    """Thu hồi (BussinessDocType 1) of the công văn, addressed to one recipient only."""
    by_code = {a.code: a for a in agencies}
    revoke = new_document(agencies).model_dump(by_alias=True)
    revoke.update(
        recipients=[_org(by_code[REVOKED_AT]).model_dump()],
        content=None,
        attachments=[],
        business=Business(
            document_id=DOCUMENT_ID,
            bussiness_doc_type=BusinessType.REVOKE,
            bussiness_doc_reason="Thu hồi văn bản điện tử",
            staff_info=StaffInfo(department="Văn thư", staff="Trần Thị B"),
        ).model_dump(),
    )
    return Document.model_validate(revoke)


def status(agencies: list[Agency], recipient: str, code: str) -> Status:
    """The status ``recipient``'s DMS reports to the sender about the công văn."""
    by_code = {a.code: a for a in agencies}
    return Status(
        sender=_org(by_code[recipient]),
        response_for=ResponseFor(
            organ_id=SENDER, code=NOTATION, promulgation_date=PROMULGATED, document_id=DOCUMENT_ID
        ),
        staff_info=StaffInfo(department="Văn thư", staff="Văn thư đơn vị"),
        status_code=code,
        description=STATUS_NOTES.get(code),
        timestamp=dt.datetime.now(dt.UTC),
    )
