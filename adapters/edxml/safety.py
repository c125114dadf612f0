"""Parsing untrusted edXML safely: no DTD, no entities, no network, bounded size and depth.

libxml2 is asked not to load DTDs, resolve entities or use the network. Its ``huge_tree`` guard
is lifted because it caps one text node at 10 MB, and a scanned PDF attachment (base64 text)
is often bigger; the caps here take its place: a document with any DOCTYPE is refused outright
(entity expansion, external entities), and the file size, nesting depth and element count are
capped while parsing, so a hostile file is refused after reading at most ``max_bytes`` and
before building a huge tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from adapters.edxml.errors import EdxmlError, HostileInput

_CHUNK = 64 * 1024
# Words in libxml2's messages when one of its own safety limits stops a file.
_LIBXML2_LIMITS = ("huge", "amplification", "limit exceeded")


@dataclass(frozen=True)
class Limits:
    """Caps applied to one edXML file; the defaults fit real packages with a wide margin."""

    #: The whole file, and so every text node in it (attachments are base64 text).
    max_bytes: int = 64 * 1024 * 1024
    #: Nesting depth of elements (a package is about 8 deep; a signature about 7 more).
    max_depth: int = 64
    #: Elements in the file (a package with a few attachments has about a hundred).
    max_elements: int = 100_000
    #: Bytes of one unzipped attachment.
    max_attachment_bytes: int = 200 * 1024 * 1024
    #: Bytes of all unzipped attachments of one package.
    max_total_attachment_bytes: int = 400 * 1024 * 1024
    #: Unzipped/zipped ratio refused once an attachment passes ``ratio_floor`` bytes. Deflate
    #: tops out near 1032:1, so a bomb shows a ratio far above what real files reach.
    max_ratio: int = 100
    ratio_floor: int = 1024 * 1024


DEFAULT_LIMITS = Limits()


def _refuse_doctype(data: bytes) -> None:
    # Checked on the bytes first so an entity bomb is refused before libxml2 sees it; the
    # tree's docinfo is checked again after parsing (other encodings, odd spellings).
    head = data.lower()
    if b"<!doctype" in head or b"<!entity" in head:
        raise HostileInput(
            "the file declares a DOCTYPE or entities, which edXML packages must not (refused to "
            "protect against entity expansion and external entities)"
        )


def parse_xml(data: bytes, limits: Limits = DEFAULT_LIMITS) -> etree._Element:
    """The root element of ``data``; HostileInput or EdxmlError with a clear reason."""
    if len(data) > limits.max_bytes:
        raise HostileInput(
            f"the file is {len(data)} bytes, over the limit of {limits.max_bytes} bytes"
        )
    _refuse_doctype(data)
    parser = etree.XMLPullParser(
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=True,
        remove_comments=True,
        remove_pis=True,
    )
    depth = 0
    elements = 0
    try:
        for offset in range(0, max(len(data), 1), _CHUNK):
            parser.feed(data[offset : offset + _CHUNK])
            for event, element in parser.read_events():
                if event == "end":
                    depth -= 1
                    continue
                if not isinstance(element, etree._Element):
                    continue
                depth += 1
                elements += 1
                if depth > limits.max_depth:
                    raise HostileInput(
                        f"elements are nested more than {limits.max_depth} deep "
                        f"(at <{etree.QName(element).localname}>)"
                    )
                if elements > limits.max_elements:
                    raise HostileInput(f"the file holds more than {limits.max_elements} elements")
        closed = parser.close()
    except etree.XMLSyntaxError as e:
        reason = str(e)
        if "depth" in reason.lower():
            raise HostileInput(f"elements are nested too deep ({reason})") from e
        if any(word in reason.lower() for word in _LIBXML2_LIMITS):
            raise HostileInput(f"the file exceeds a parser limit: {reason}") from e
        # lxml appends "(<string>, line N)": the line is already in libxml2's own message.
        reason = re.sub(r"\s*\(<string>, line \d+\)$", "", reason)
        raise EdxmlError(f"the file is not well-formed XML: {reason}") from e
    tree = closed.getroottree()
    if getattr(tree.docinfo, "doctype", "") or tree.docinfo.internalDTD is not None:
        raise HostileInput("the file declares a DOCTYPE, which edXML packages must not")
    return closed


def parse_fragment(xml: str, what: str) -> etree._Element:
    """One element kept as text (an extension, a signature), parsed as strictly as a file."""
    try:
        return parse_xml(xml.encode("utf-8"), DEFAULT_LIMITS)
    except EdxmlError as e:
        raise EdxmlError(f"{what}: {e}") from e
