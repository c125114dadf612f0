"""edXML (QCVN 102:2016) packages <-> the wire models, losslessly and safely.

``parse_package`` reads an untrusted file (no DTD, bounded size/depth, zip-bomb-proof
attachments) into a ``schemas.Document`` or ``schemas.Status``; ``render_document`` /
``render_status`` write them back. Elements the models do not know are kept as extensions.
"""

from __future__ import annotations

from adapters.edxml.errors import EdxmlError, HostileInput
from adapters.edxml.parse import parse_document, parse_package, parse_status
from adapters.edxml.render import render_document, render_status
from adapters.edxml.safety import DEFAULT_LIMITS, Limits

__all__ = [
    "DEFAULT_LIMITS",
    "EdxmlError",
    "HostileInput",
    "Limits",
    "parse_document",
    "parse_package",
    "parse_status",
    "render_document",
    "render_status",
]
