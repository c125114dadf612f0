"""Parsing untrusted edXML safely: no DTD, no entities, no network, bounded size and depth.

libxml2 is asked not to load DTDs, resolve entities or use the network. Its ``huge_tree`` guard
is lifted because it caps one text node at 10 MB, and a scanned PDF attachment (base64 text)
is often bigger; the caps here take its place: a document with any DOCTYPE is refused outright
(entity expansion, external entities), and the file size, nesting depth and element count are
capped while parsing, so a hostile file is refused after reading at most ``max_bytes`` and
before building a huge tree.
"""

from __future__ import annotations

import codecs
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


_REFUSAL = (
    "the file declares a DOCTYPE or entities, which edXML packages must not (refused to "
    "protect against entity expansion and external entities)"
)
#: Byte order marks and, without one, the first four bytes of ``<?xm`` (XML 1.0 appendix F).
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00?", "utf-16-be"),
    (b"<\x00?\x00", "utf-16-le"),
    (b"\x4c\x6f\xa7\x94", "cp500"),  # EBCDIC
)
_DECLARED = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
# The prolog ends at the root element's start tag: a "<" not followed by "?" or "!".
_ROOT_START = re.compile(r"<[^?!]")


def _encoding(data: bytes) -> str:
    """The codec the file's bytes are in: its BOM, its first bytes, else its declaration."""
    for signature, codec in _SIGNATURES:
        if data.startswith(signature):
            return codec
    declared = _DECLARED.match(data[:200])
    if declared is not None:
        try:
            return codecs.lookup(declared.group(1).decode("ascii")).name
        except LookupError:
            pass  # libxml2 will refuse an unknown encoding itself
    return "utf-8"


def _refuse_doctype(data: bytes) -> None:
    """HostileInput if the file declares a DOCTYPE or entities, in whatever encoding it is.

    Checked before libxml2 sees the file so an entity bomb never reaches it; the tree's
    docinfo is checked again after parsing (odd spellings). The ASCII bytes are searched
    first (every ASCII-compatible encoding); then the prolog, the only place a DOCTYPE can be,
    is decoded in the file's own encoding (UTF-16/32, EBCDIC…) and searched as text.
    """
    head = data.lower()
    if b"<!doctype" in head or b"<!entity" in head:
        raise HostileInput(_REFUSAL)
    decoder = codecs.getincrementaldecoder(_encoding(data))(errors="replace")
    tail = ""  # the end of the previous chunk, for a word cut in two
    for offset in range(0, len(data), _CHUNK):
        text = tail + decoder.decode(data[offset : offset + _CHUNK])
        root = _ROOT_START.search(text)
        scope = (text if root is None else text[: root.start()]).lower()
        if "<!doctype" in scope or "<!entity" in scope:
            raise HostileInput(_REFUSAL)
        if root is not None:
            return  # a DOCTYPE cannot follow the root element's start
        tail = text[-16:]


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


def parse_fragment(
    xml: str, what: str, bindings: dict[str | None, str] | None = None
) -> etree._Element:
    """One element kept as text (an extension, a signature), parsed as strictly as a file;
    ``bindings``: namespace prefixes bound where it stands (the text itself is not changed)."""
    data = xml.encode("utf-8")
    if bindings:
        declared = " ".join(f'xmlns{":" + p if p else ""}="{uri}"' for p, uri in bindings.items())
        data = f"<context {declared}>".encode() + data + b"</context>"
    try:
        root = parse_xml(data, DEFAULT_LIMITS)
    except EdxmlError as e:
        raise EdxmlError(f"{what}: {e}") from e
    if not bindings:
        return root
    inner = list(root)
    if len(inner) != 1 or (root.text or "").strip() or (inner[0].tail or "").strip():
        raise EdxmlError(f"{what}: expected one XML element")
    return inner[0]
