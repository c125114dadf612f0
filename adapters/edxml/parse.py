"""edXML packages -> ``schemas.Document`` / ``schemas.Status``.

Every element the layout (``names``) knows becomes a model field; every other element is kept
verbatim as an ``Extension`` whose ``parent`` is the slash path of local names from the root
(``edXML/edXMLEnvelope/edXMLHeader/MessageHeader``; a repeated element carries its 1-based
position, ``…/To[2]``). Extensions are listed container by container, in the layout's order, and
within a container in file order, so that writing a model back and reading it again gives an
equal model.
"""

from __future__ import annotations

from typing import Any

from lxml import etree
from pydantic import ValidationError

from adapters.edxml import names, values, xmltext
from adapters.edxml.attachments import Budget, decode_attachment
from adapters.edxml.errors import EdxmlError
from adapters.edxml.names import Group, Scalar, Wrapped
from adapters.edxml.safety import DEFAULT_LIMITS, Limits, parse_xml
from schemas import Attachment, Document, Extension, Status
from schemas.envelope import format_validation_error


def parse_package(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Document | Status:
    """A document or a status package (a status package's MessageHeader has a StatusCode)."""
    root = parse_xml(data, limits)
    if xmltext.local_name(root) != names.ROOT:
        raise EdxmlError(
            f"not an edXML package: the root element is <{xmltext.local_name(root)}>, "
            f"expected <{names.ROOT}>"
        )
    if _is_status(root):
        return _status(root)
    return _document(root, limits)


def parse_document(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Document:
    package = parse_package(data, limits)
    if not isinstance(package, Document):
        raise EdxmlError("expected a document package, got a status package (it has StatusCode)")
    return package


def parse_status(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Status:
    package = parse_package(data, limits)
    if not isinstance(package, Status):
        raise EdxmlError("expected a status package (with StatusCode), got a document package")
    return package


def _children(element: etree._Element) -> list[etree._Element]:
    return [c for c in element if isinstance(c.tag, str)]


def _find(element: etree._Element, *path: str) -> etree._Element | None:
    current: etree._Element | None = element
    for tag in path:
        if current is None:
            return None
        current = next((c for c in _children(current) if xmltext.local_name(c) == tag), None)
    return current


def _is_status(root: etree._Element) -> bool:
    header = _find(root, "edXMLEnvelope", "edXMLHeader", "MessageHeader")
    if header is None:
        raise EdxmlError(
            "not an edXML package: edXML/edXMLEnvelope/edXMLHeader/MessageHeader is missing"
        )
    return _find(header, "StatusCode") is not None


class _Reader:
    """Reads elements into dicts by the layout, collecting unknown elements on the way."""

    def __init__(self) -> None:
        self.extensions: list[Extension] = []

    def group(self, element: etree._Element, group: Group, path: str) -> dict[str, Any]:
        found: dict[str, list[etree._Element]] = {}
        for child in _children(element):
            tag = xmltext.local_name(child)
            spec = group.field_for(tag)
            if spec is None or (not spec.many and tag in found):
                self._keep(child, path)
            else:
                found.setdefault(tag, []).append(child)
        result: dict[str, Any] = {}
        for spec in group.fields:
            elements = found.get(spec.tag)
            if not elements:
                continue
            if spec.many:
                result[spec.key] = [
                    self.value(el, spec.kind, f"{path}/{spec.tag}[{i}]")
                    for i, el in enumerate(elements, 1)
                ]
            else:
                value = self.value(elements[0], spec.kind, f"{path}/{spec.tag}")
                if value is not None:
                    result[spec.key] = value
        return result

    def value(self, element: etree._Element, kind: Scalar | Group | Wrapped, path: str) -> Any:
        if isinstance(kind, Group):
            return self.group(element, kind, path)
        if isinstance(kind, Wrapped):
            return self.wrapped(element, kind, path)
        return self.scalar(element, kind, path)

    def wrapped(self, element: etree._Element, kind: Wrapped, path: str) -> list[Any]:
        items: list[etree._Element] = []
        for child in _children(element):
            if xmltext.local_name(child) == kind.item:
                items.append(child)
            else:
                self._keep(child, path)
        return [
            self.value(el, kind.kind, f"{path}/{kind.item}[{i}]") for i, el in enumerate(items, 1)
        ]

    def scalar(self, element: etree._Element, kind: Scalar, path: str) -> Any:
        if kind == "raw":
            return xmltext.keep(element)
        inner = _children(element)
        if inner:
            raise EdxmlError(
                f"{path}: expected text, found the element <{xmltext.local_name(inner[0])}>"
            )
        text = (element.text or "").strip()
        if kind == "text":
            return text
        if not text:
            return None
        if kind == "int":
            return values.parse_int(text, path)
        if kind == "bool":
            return values.parse_bool(text, path)
        if kind == "date":
            return values.parse_date(text, path)
        return values.parse_timestamp(text, path)

    def _keep(self, element: etree._Element, parent: str) -> None:
        self.extensions.append(Extension(parent=parent, xml=xmltext.keep(element)))


def _validate(model: type[Document] | type[Status], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise EdxmlError(format_validation_error(e)) from e


def _status(root: etree._Element) -> Status:
    reader = _Reader()
    package = reader.group(root, names.STATUS_PACKAGE, names.ROOT)
    message = package.get("envelope", {}).get("header", {}).get("message", {})
    data = dict(message)
    data["extensions"] = reader.extensions
    status: Status = _validate(Status, data)
    return status


def _document(root: etree._Element, limits: Limits) -> Document:
    reader = _Reader()
    package = reader.group(root, names.DOCUMENT_PACKAGE, names.ROOT)
    header = package.get("envelope", {}).get("header", {})
    data = dict(header.get("message", {}))
    trace_list = header.get("trace_list", {})
    if "trace" in trace_list:
        data["trace"] = trace_list["trace"]
    if "business" in trace_list:
        data["business"] = trace_list["business"]
    if "signature" in header:
        data["signature"] = header["signature"]
    manifest = package.get("envelope", {}).get("body", {}).get("manifest", [])
    encoded = package.get("encoded", [])
    data["attachments"] = _attachments(manifest, encoded, Budget(limits))
    data["extensions"] = reader.extensions
    document: Document = _validate(Document, data)
    return document


def _attachments(
    manifest: list[dict[str, Any]], encoded: list[dict[str, Any]], budget: Budget
) -> list[Attachment]:
    """Attachments joined with their manifest entries by ContentId; each needs the other."""
    references: dict[str, dict[str, Any]] = {}
    for i, ref in enumerate(manifest, 1):
        cid = ref.get("content_id") or ""
        if not cid:
            raise EdxmlError(f"edXMLManifest/Reference[{i}]: ContentId is missing")
        if cid in references:
            raise EdxmlError(f"edXMLManifest: ContentId {cid!r} is listed twice")
        references[cid] = ref
    result: list[Attachment] = []
    seen: set[str] = set()
    for i, item in enumerate(encoded, 1):
        cid = item.get("content_id") or ""
        label = item.get("name") or cid or f"#{i}"
        where = f"AttachmentEncoded/Attachment[{i}] ({label})"
        if not cid:
            raise EdxmlError(f"{where}: ContentId is missing")
        if cid in seen:
            raise EdxmlError(f"{where}: ContentId {cid!r} is used by two attachments")
        seen.add(cid)
        entry = references.get(cid)
        if entry is None:
            raise EdxmlError(
                f"{where}: no edXMLManifest Reference has ContentId {cid!r} (every attachment "
                "must be listed in the manifest)"
            )
        name = item.get("name") or entry.get("name")
        if not name:
            raise EdxmlError(f"{where}: AttachmentName is missing (also in the manifest)")
        text = item.get("encoded")
        if not text:
            raise EdxmlError(f"{where}: ContentTransferEncoded is missing or empty")
        raw = decode_attachment(text, where, budget)
        result.append(
            Attachment.from_bytes(
                name,
                raw,
                item.get("content_type") or entry.get("content_type") or "application/octet-stream",
                content_id=cid,
                description=_first(item.get("description"), entry.get("description")),
            )
        )
    missing = [cid for cid in references if cid not in seen]
    if missing:
        raise EdxmlError(
            "edXMLManifest lists "
            + ", ".join(f"{cid!r} ({references[cid].get('name') or 'no name'})" for cid in missing)
            + " but no attachment under AttachmentEncoded carries that ContentId"
        )
    return result


def _first(*candidates: str | None) -> str | None:
    for c in candidates:
        if c is not None:
            return c
    return None
