"""Elements kept as text (unknown elements, the header ``Signature``), in a stable form.

They are stored as exclusive XML canonicalisation (C14N): self-contained (every namespace they
use is declared on their first element), without comments, and identical each time the same
element is read, whatever surrounded it, so that read -> write -> read gives the same text.
A ``Signature`` and an empty ``DigitalSignature`` are kept as their exact source text instead
(``adapters/edxml/source.py``). Kept text is written back as it is.
"""

from __future__ import annotations

from lxml import etree

from adapters.edxml import names
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


def checked(xml: str, what: str, *, in_envelope: bool) -> str:
    """Kept text from a model (maybe written by hand), to write back as it is: one element,
    parsed as safely as a file, with only the bindings a written package gives it there (the
    QCVN namespace as the default, and ``edXML:`` inside ``edXMLEnvelope``). Read from a file it
    is the canonical form, or a signature's exact source text (``adapters/edxml/source.py``)."""
    if not xml.strip():
        raise EdxmlError(f"{what}: empty, expected one XML element")
    parse_fragment(xml, what, context(in_envelope))
    return xml


def context(in_envelope: bool) -> dict[str | None, str]:
    """The namespace bindings a written package has at a kept element's place."""
    bindings: dict[str | None, str] = {None: names.NAMESPACE}
    if in_envelope:
        bindings[names.PREFIX] = names.NAMESPACE
    return bindings


def local_name(element: etree._Element) -> str:
    return etree.QName(element).localname
