"""The plug-in point for file formats: read what a DMS drops, write what it picks up."""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Mapping

from schemas import Document, Receipt, Status
from schemas.errors import InvalidInput


class FormatError(InvalidInput, ValueError):
    """A file that cannot be read; ``str()`` says what is wrong, for the person who sent it."""


class FileFormat(abc.ABC):
    """One format of the folder connector (``json``, ``edxml``)."""

    #: The name used in the adapter config (``format = "…"``).
    name: str
    #: File suffix, with the dot (``.json``).
    suffix: str

    @abc.abstractmethod
    def read(self, data: bytes) -> Document | Status:
        """Parse a file dropped into ``outbox/``; raise FormatError with a clear reason."""

    def read_with_warnings(self, data: bytes) -> tuple[Document | Status, list[str]]:
        """``read``, with what was noticed on the way (read leniently; never a reason to stop).

        Formats with a lenient reader (edXML) override this; the others notice nothing.
        """
        return self.read(data), []

    @abc.abstractmethod
    def write_document(self, document: Document) -> bytes:
        """Render a received document for ``inbox/documents/``."""

    def write_delivered_document(
        self, document: Document, headers: Mapping[str, object], at: dt.datetime | None = None
    ) -> bytes:
        """Render a document delivered by the relay; ``headers`` are the delivery's AMQP headers,
        ``at`` the time it was received (now if not given), so that writing it again writes the
        same bytes.

        Formats that record the route (edXML's TraceHeaderList) override this; the others
        write the document as it is.
        """
        return self.write_document(document)

    @abc.abstractmethod
    def write_status(self, status: Status) -> bytes:
        """Render a received status for ``inbox/statuses/``."""

    def write_receipt(self, receipt: Receipt) -> bytes:
        """Receipts have no edXML form: they are written as JSON whatever the format."""
        return receipt.model_dump_json(by_alias=True, indent=2).encode("utf-8")
