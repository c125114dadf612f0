"""Wire models shared by the relay, the adapters and outside DMS vendors.

This package depends on pydantic only: nothing of the project is imported here.
"""

from __future__ import annotations

from schemas.agency_code import (
    AgencyCode,
    OrganId,
    is_strict_qcvn102,
    validate_agency_code,
    validate_organ_id,
)
from schemas.business import BusinessType
from schemas.common import Extension, Organization, ResponseFor, StaffInfo, TraceHeader
from schemas.document import Attachment, Business, Document
from schemas.envelope import WireMessage, decode_message, encode_message, split_receipts
from schemas.receipt import (
    Receipt,
    ReceiptKind,
    Receipts,
    RecipientOutcome,
    RecipientResult,
    join_receipts,
)
from schemas.status import Status
from schemas.status_codes import STATUS_CODES, StatusCode, describe_status

__all__ = [
    "STATUS_CODES",
    "AgencyCode",
    "Attachment",
    "Business",
    "BusinessType",
    "Document",
    "Extension",
    "OrganId",
    "Organization",
    "Receipt",
    "ReceiptKind",
    "Receipts",
    "RecipientOutcome",
    "RecipientResult",
    "ResponseFor",
    "StaffInfo",
    "Status",
    "StatusCode",
    "TraceHeader",
    "WireMessage",
    "decode_message",
    "describe_status",
    "encode_message",
    "is_strict_qcvn102",
    "join_receipts",
    "split_receipts",
    "validate_agency_code",
    "validate_organ_id",
]
