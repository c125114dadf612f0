"""The edXML format of the folder connector: QCVN 102:2016 packages in and out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from adapters.edxml import (
    DEFAULT_LIMITS,
    EdxmlError,
    Limits,
    read_package,
    render_document,
    render_status,
)
from adapters.edxml.trace import stamp_delivery, stamp_submission
from adapters.formats.base import FileFormat, FormatError
from schemas import Document, Status


class EdxmlFormat(FileFormat):
    """``*.edxml`` document and status packages (see :mod:`adapters.edxml`)."""

    name = "edxml"
    suffix = ".edxml"

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits

    def read(self, data: bytes) -> Document | Status:
        """A package dropped by the DMS; a document gets its sender's TraceHeader."""
        return self.read_with_warnings(data)[0]

    def read_with_warnings(self, data: bytes) -> tuple[Document | Status, list[str]]:
        """The package and the warnings of the lenient reader (``lienthong edxml check``)."""
        try:
            reading = read_package(data, self.limits)
        except EdxmlError as e:
            raise FormatError(f"edXML: {e}") from e
        package = reading.package
        if isinstance(package, Document):
            package = stamp_submission(package, package.sender.organ_id)
        return package, reading.warnings

    def write_document(self, document: Document) -> bytes:
        try:
            return render_document(document)
        except EdxmlError as e:
            raise FormatError(f"edXML: {e}") from e

    def write_delivered_document(
        self, document: Document, headers: Mapping[str, object], at: dt.datetime | None = None
    ) -> bytes:
        """A document as delivered: the relay's route (delivery headers) added to its trace,
        the hub's and the receiver's hops at ``at``, the time of reception."""
        return self.write_document(stamp_delivery(document, headers, at))

    def write_status(self, status: Status) -> bytes:
        try:
            return render_status(status)
        except EdxmlError as e:
            raise FormatError(f"edXML: {e}") from e
