"""edXML (QCVN 102:2016) packages <-> the wire models, losslessly and safely.

``read_package`` reads an untrusted file (no DTD, bounded size/depth, zip-bomb-proof
attachments) into a ``schemas.Document`` or ``schemas.Status`` with the warnings of a lenient
reading (``parse_package``: the model only); ``render_document`` / ``render_status`` write them
back. Elements the models do not know are kept as extensions, attributes and texts as written.
"""

from __future__ import annotations

from adapters.edxml.errors import EdxmlError, HostileInput
from adapters.edxml.parse import (
    PackageReading,
    parse_document,
    parse_package,
    parse_status,
    read_package,
)
from adapters.edxml.render import render_document, render_status
from adapters.edxml.safety import DEFAULT_LIMITS, Limits

__all__ = [
    "DEFAULT_LIMITS",
    "EdxmlError",
    "HostileInput",
    "Limits",
    "PackageReading",
    "parse_document",
    "parse_package",
    "parse_status",
    "read_package",
    "render_document",
    "render_status",
]
