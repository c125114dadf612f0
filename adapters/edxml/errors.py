"""The one error of the edXML codec: ``str()`` says what is wrong, for the person who sent it."""

from __future__ import annotations

from collections.abc import Sequence

from schemas.errors import InvalidInput


class EdxmlError(InvalidInput, ValueError):
    """An edXML package that cannot be read or a model that cannot be written as edXML.

    ``reasons`` lists every problem found (one line each); ``str()`` joins them. ``kind``
    (``document`` | ``status``) and ``warnings`` are set once the package was read far enough.
    """

    def __init__(self, message: str, reasons: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.reasons: list[str] = list(reasons) if reasons else [message]
        self.kind: str | None = None
        self.warnings: list[str] = []


class HostileInput(EdxmlError):
    """Input refused for safety: DTD/entities, too deep, too big, a zip bomb."""
