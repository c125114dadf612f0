"""``schemas.Document`` / ``schemas.Status`` -> edXML packages.

Elements are written in the layout's order (``names``), prefixed as the national axis writes
them. Kept elements (extensions, the Signature) are written back verbatim at the end of the
element they were found in; one whose parent is not written (say ``…/To[3]`` of a model with two
recipients) goes into its nearest written ancestor rather than being dropped. Attachments are
zipped and base64-encoded again, each with its manifest entry.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from lxml import etree

from adapters.edxml import names, values, xmltext
from adapters.edxml.attachments import encode_attachment
from adapters.edxml.errors import EdxmlError
from adapters.edxml.names import Group, Scalar, Wrapped
from schemas import Document, Extension, Status

_PLACEHOLDER = re.compile(rb"<!--lienthong-kept-(\d+)-->")


def render_document(document: Document) -> bytes:
    """The edXML document package for ``document``."""
    message = document.model_dump(
        mode="python",
        exclude={"schema_", "trace", "business", "signature", "attachments", "extensions"},
    )
    trace_list: dict[str, Any] = {
        "trace": [t.model_dump(mode="python") for t in document.trace],
        "business": document.business.model_dump(mode="python"),
    }
    manifest: list[dict[str, Any]] = []
    encoded: list[dict[str, Any]] = []
    # A missing or repeated ContentId gets a fresh one: in edXML each must be unique.
    taken = {a.content_id for a in document.attachments if a.content_id}
    emitted: set[str] = set()
    counter = 0
    for attachment in document.attachments:
        cid = attachment.content_id
        if not cid or cid in emitted:
            counter += 1
            while f"cid:{counter}" in taken:
                counter += 1
            cid = f"cid:{counter}"
            taken.add(cid)
        emitted.add(cid)
        entry = {
            "content_id": cid,
            "content_type": attachment.content_type,
            "description": attachment.description,
            "name": attachment.name,
        }
        manifest.append(entry)
        encoded.append(
            entry | {"encoded": encode_attachment(attachment.name, attachment.content())}
        )
    package = {
        "envelope": {
            "header": {
                "message": message,
                "trace_list": trace_list,
                "signature": document.signature,
            },
            "body": {"manifest": manifest},
        },
        "encoded": encoded or None,
    }
    return _Writer(document.extensions).write(names.DOCUMENT_PACKAGE, package)


def render_status(status: Status) -> bytes:
    """The edXML status package for ``status``."""
    message = status.model_dump(mode="python", exclude={"schema_", "extensions"})
    package = {"envelope": {"header": {"message": message}}}
    return _Writer(status.extensions).write(names.STATUS_PACKAGE, package)


class _Writer:
    def __init__(self, extensions: list[Extension]) -> None:
        self.kept: list[bytes] = []
        self.pending: dict[str, list[int]] = {}
        self.written: dict[str, etree._Element] = {}
        for i, ext in enumerate(extensions):
            xml = xmltext.checked(ext.xml, f"extensions[{i}].xml")
            self.pending.setdefault(ext.parent, []).append(self._hold(xml))

    def _hold(self, xml: str) -> int:
        self.kept.append(xml.encode("utf-8"))
        return len(self.kept) - 1

    def write(self, layout: Group, package: dict[str, Any]) -> bytes:
        root = etree.Element(_qname(names.ROOT), nsmap={None: names.NAMESPACE})  # type: ignore[dict-item]
        self.group(root, layout, package, names.ROOT)
        self._place_orphans(root)
        etree.indent(root, space=" ")
        out = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        return _PLACEHOLDER.sub(lambda m: self.kept[int(m.group(1))], out)

    def _has_kept_under(self, path: str) -> bool:
        return any(p == path or p.startswith(path + "/") for p in self.pending)

    def group(
        self, element: etree._Element, layout: Group, data: dict[str, Any], path: str
    ) -> None:
        self.written[path] = element
        for spec in layout.fields:
            value = data.get(spec.key)
            if spec.many:
                for i, item in enumerate(value or [], 1):
                    child = self._child(element, spec.tag, spec.attributes)
                    self.value(child, spec.kind, item, f"{path}/{spec.tag}[{i}]")
                continue
            child_path = f"{path}/{spec.tag}"
            absent = value is None or (isinstance(spec.kind, Wrapped) and not value)
            if absent and not self._has_kept_under(child_path):
                continue
            child = self._child(element, spec.tag, spec.attributes)
            self.value(child, spec.kind, value, child_path)
        self._kept_into(element, path)

    def value(
        self, element: etree._Element, kind: Scalar | Group | Wrapped, value: Any, path: str
    ) -> None:
        if isinstance(kind, Group):
            self.group(element, kind, value or {}, path)
        elif isinstance(kind, Wrapped):
            self.written[path] = element
            for i, item in enumerate(value or [], 1):
                child = self._child(element, kind.item, ())
                self.value(child, kind.kind, item, f"{path}/{kind.item}[{i}]")
            self._kept_into(element, path)
        elif kind == "raw":
            xml = xmltext.checked(value, path)
            parent = element.getparent()
            assert parent is not None
            parent.replace(element, etree.Comment(f"lienthong-kept-{self._hold(xml)}"))
        elif value is not None:
            try:
                element.text = _scalar_text(kind, value)
            except ValueError as e:  # lxml refuses control characters and the like
                raise EdxmlError(f"{path}: {value!r} cannot be written as XML ({e})") from e

    def _child(
        self, parent: etree._Element, tag: str, attributes: tuple[tuple[str, str], ...]
    ) -> etree._Element:
        nsmap = {names.PREFIX: names.NAMESPACE} if tag in names.PREFIXED_SUBTREES else None
        child = etree.SubElement(parent, _qname(tag), nsmap=nsmap)
        for key, val in attributes:
            child.set(key, val)
        return child

    def _kept_into(self, element: etree._Element, path: str) -> None:
        for index in self.pending.pop(path, []):
            element.append(etree.Comment(f"lienthong-kept-{index}"))

    def _place_orphans(self, root: etree._Element) -> None:
        for path in list(self.pending):
            ancestor = path
            while ancestor not in self.written and "/" in ancestor:
                ancestor = ancestor.rsplit("/", 1)[0]
            target = self.written.get(ancestor, root)
            for index in self.pending.pop(path):
                target.append(etree.Comment(f"lienthong-kept-{index}"))


def _qname(tag: str) -> str:
    return f"{{{names.NAMESPACE}}}{tag}"


def _scalar_text(kind: Scalar, value: Any) -> str:
    if kind == "date":
        if not isinstance(value, dt.date):
            raise EdxmlError(f"expected a date, got {value!r}")
        return values.format_date(value)
    if kind == "datetime":
        if not isinstance(value, dt.datetime):
            raise EdxmlError(f"expected a timestamp, got {value!r}")
        return values.format_timestamp(value)
    if kind == "bool":
        return values.format_bool(bool(value))
    if kind == "int":
        return str(int(value))
    return str(value)
