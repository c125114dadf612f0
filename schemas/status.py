"""``lienthong.status/1``: a processing status about a document (edXML status package)."""

from __future__ import annotations

import datetime as dt
from typing import Final, Literal

from pydantic import Field

from schemas.common import (
    AS_WRITTEN_DESCRIPTION,
    ATTRIBUTES_DESCRIPTION,
    Extension,
    Organization,
    ResponseFor,
    StaffInfo,
    WireModel,
)
from schemas.status_codes import StatusCode, describe_status

STATUS_SCHEMA: Final = "lienthong.status/1"


class Status(WireModel):
    """A status package: ``sender`` says ``status_code`` about ``response_for.document_id``."""

    schema_: Literal["lienthong.status/1"] = Field(STATUS_SCHEMA, alias="schema")
    sender: Organization = Field(description="edXML From: who reports the status")
    response_for: ResponseFor = Field(description="the document, and the status's addressee")
    staff_info: StaffInfo | None = None
    status_code: StatusCode
    description: str | None = None
    timestamp: dt.datetime
    extensions: list[Extension] = Field(default_factory=list)
    as_written: dict[str, str] = Field(default_factory=dict, description=AS_WRITTEN_DESCRIPTION)
    attributes: dict[str, dict[str, str]] = Field(
        default_factory=dict, description=ATTRIBUTES_DESCRIPTION
    )

    @property
    def document_id(self) -> str:
        return self.response_for.document_id

    @property
    def status_text(self) -> str:
        return describe_status(self.status_code)
