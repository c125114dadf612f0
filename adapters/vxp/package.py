"""The edXML package out of a ``sendEdoc`` request body, in each form clients of the axis use.

The SDK itself posts the file's bytes as the raw body (``application/octet-stream``); other
clients post ``multipart/form-data`` with one part ``file_doc`` (taken in :mod:`adapters.vxp.app`)
or base64 text of the file. A body is taken as XML when it starts with ``<`` (after a UTF-8 byte
order mark and blanks), else as base64 text of XML.
"""

from __future__ import annotations

import binascii

import pybase64

from adapters.vxp.answers import BadRequest

_BOM = b"\xef\xbb\xbf"


def looks_like_xml(data: bytes) -> bool:
    head = data[:4096].lstrip()
    return head.startswith(b"<") or head.startswith(_BOM)


def package_from_text(body: bytes) -> bytes:
    """The package from a raw body: the XML itself, or base64 text of it."""
    if not body.strip():
        raise BadRequest(
            "the request has no package: send the edXML file as the request body "
            "(application/octet-stream), as the multipart part 'file_doc', or as base64 text"
        )
    if looks_like_xml(body):
        return body
    text = b"".join(body.split())  # base64 may be wrapped in lines
    if text.startswith(b'"') and text.endswith(b'"'):
        text = text[1:-1]  # a JSON string of the base64 text
    try:
        decoded = pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if decoded and looks_like_xml(decoded):
        return decoded
    raise BadRequest(
        "the request body is neither an edXML file nor base64 text of one (it does not start "
        "with '<'); send the .edxml file's bytes"
    )
