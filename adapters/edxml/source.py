"""The exact source text of elements a package must keep byte for byte.

Issue 13: a ``Signature`` (QCVN or XML-DSig namespace) and an empty ``DigitalSignature`` are
kept as the sender wrote them, comments, whitespace, quoting and all, and written back
unchanged (a signature is over bytes a re-serialisation would change). lxml gives no byte
offsets, so the file is read once more with expat, whose events carry them; the n-th element
of both parsers is the same element (document order).

The slice is used only when it means the same where it is written back: the file is UTF-8 and
the slice read alone, with only the bindings a written package gives it there
(``xmltext.context``), names the same element. Otherwise (an ``xmlns:ds`` declared on
the root, say) the caller keeps the self-contained canonical form.
"""

from __future__ import annotations

import re
import xml.parsers.expat

from lxml import etree

from adapters.edxml import xmltext
from adapters.edxml.errors import EdxmlError
from adapters.edxml.safety import parse_fragment

_DECLARED = re.compile(rb"^\s*<\?xml[^>]*encoding\s*=\s*[\"']([^\"']+)[\"']")


def _utf8(data: bytes) -> bool:
    declared = _DECLARED.match(data.removeprefix(b"\xef\xbb\xbf"))
    return declared is None or declared.group(1).lower() in (b"utf-8", b"utf8")


class SourceText:
    """Source slices of the elements of one parsed file (expat runs on first use only)."""

    def __init__(self, root: etree._Element, data: bytes) -> None:
        self._root = root
        self._data = data
        self._spans: list[tuple[int, int]] | None = None
        self._order: dict[etree._Element, int] | None = None

    def exact(self, element: etree._Element) -> str | None:
        """The element's text exactly as in the file, or None when it cannot stand in for it
        (see the module docstring)."""
        if not _utf8(self._data):
            return None
        if self._spans is None:
            try:
                self._spans = _spans(self._data)
            except xml.parsers.expat.ExpatError:
                self._spans = []
            self._order = {e: i for i, e in enumerate(self._root.iter(etree.Element))}
        assert self._order is not None
        index = self._order.get(element)
        if index is None or index >= len(self._spans):
            return None
        start, end = self._spans[index]
        in_envelope = any(
            etree.QName(a).localname == "edXMLEnvelope" for a in element.iterancestors()
        )
        try:
            text = self._data[start:end].decode("utf-8")
            copy = parse_fragment(text, "", xmltext.context(in_envelope))
        except (UnicodeDecodeError, EdxmlError):
            return None
        return text if copy.tag == element.tag else None


def _spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) byte offsets of every element, in document order."""
    parser = xml.parsers.expat.ParserCreate()
    spans: list[tuple[int, int]] = []
    open_: list[int] = []
    last_start: list[int | None] = [None]  # the element whose start was the last event

    def start(_name: str, _attrs: dict[str, str]) -> None:
        spans.append((parser.CurrentByteIndex, -1))
        open_.append(len(spans) - 1)
        last_start[0] = len(spans) - 1

    def end(_name: str) -> None:
        i = open_.pop()
        at = parser.CurrentByteIndex
        if last_start[0] == i and data[at - 2 : at] == b"/>":  # <x/>: the event is after it
            spans[i] = (spans[i][0], at)
        else:  # the event is at its end tag
            spans[i] = (spans[i][0], data.index(b">", at) + 1)
        last_start[0] = None

    def other(*_args: object) -> None:
        last_start[0] = None

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = other
    parser.CommentHandler = other
    parser.ProcessingInstructionHandler = other
    parser.Parse(data, True)
    return spans
