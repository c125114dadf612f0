"""The edXML status codes (``StatusCode`` of a status package) and their meaning."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

#: code -> Vietnamese description, as a person reads it in the DMS.
STATUS_CODES: dict[str, str] = {
    "01": "Đã đến",
    "02": "Từ chối",
    "03": "Đã tiếp nhận",
    "04": "Phân công",
    "05": "Đang xử lý",
    "06": "Hoàn thành",
    "13": "Lấy lại",
    "15": "Đồng ý",
    "16": "Từ chối cập nhật/lấy lại",
}

#: Codes sent by the sender of the document rather than by a recipient.
SENDER_STATUS_CODES = frozenset({"13"})


def describe_status(code: str) -> str:
    """The Vietnamese description of ``code``; unknown codes are shown, never hidden."""
    return STATUS_CODES.get(code, f"Mã trạng thái không xác định ({code})")


def validate_status_code(code: str) -> str:
    if code not in STATUS_CODES:
        known = ", ".join(STATUS_CODES)
        raise ValueError(f"unknown status code {code!r}; known codes are {known}")
    return code


StatusCode = Annotated[str, AfterValidator(validate_status_code)]
