"""Elements kept as text (unknown elements, the header ``Signature``), in a stable form.

They are stored as exclusive XML canonicalisation (C14N): self-contained (every namespace they
use is declared on their first element), without comments, and identical each time the same
element is read, whatever surrounded it, so that read -> write -> read gives the same text.
"""

from __future__ import annotations

from lxml import etree

from adapters.edxml.errors import EdxmlError
from adapters.edxml.safety import parse_fragment


def keep(element: etree._Element) -> str:
    """The element (with its children, without its tail) as canonical XML text."""
    tail = element.tail
    element.tail = None
    try:
        return etree.tostring(element, method="c14n", exclusive=True, with_comments=False).decode(
            "utf-8"
        )
    finally:
        element.tail = tail


def checked(xml: str, what: str) -> str:
    """Kept text from a model (maybe written by hand), parsed safely and canonicalised again."""
    if not xml.strip():
        raise EdxmlError(f"{what}: empty, expected one XML element")
    return keep(parse_fragment(xml, what))


def local_name(element: etree._Element) -> str:
    return etree.QName(element).localname
