"""``schemas.Document`` / ``schemas.Status`` -> edXML packages.

Elements are written in the layout's order (``names``), prefixed as the national axis writes
them. Kept elements (extensions, the Signature) are written back verbatim in the element they
were found in, after the known element they followed (``Extension.after``; at its end when that
is not known); one whose parent is not written (say ``…/To[3]`` of a model with two
recipients) goes into its nearest written ancestor rather than being dropped. Attachments are
zipped and base64-encoded again, each with its manifest entry.

What the reader kept is written back: a value's text as the sender wrote it (``as_written``,
while the typed field still reads the same from it; a changed field is written in the
standard's form), and the attributes found on known elements (``attributes``).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from lxml import etree

from adapters.edxml import names, values, xmltext
from adapters.edxml.attachments import encode_attachment
from adapters.edxml.errors import EdxmlError
from adapters.edxml.names import Field, Group, Scalar, Wrapped
from schemas import Document, Extension, Status

_PLACEHOLDER = re.compile(rb"<!--lienthong-kept-(\d+)-->")


def render_document(document: Document) -> bytes:
    """The edXML document package for ``document``."""
    message = document.model_dump(
        mode="python",
        exclude={
            "schema_",
            "trace",
            "business",
            "signature",
            "attachments",
            "extensions",
            "as_written",
            "attributes",
        },
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
    return _Writer(document.extensions, document.as_written, document.attributes).write(
        names.DOCUMENT_PACKAGE, package
    )


def render_status(status: Status) -> bytes:
    """The edXML status package for ``status``."""
    message = status.model_dump(
        mode="python", exclude={"schema_", "extensions", "as_written", "attributes"}
    )
    package = {"envelope": {"header": {"message": message}}}
    return _Writer(status.extensions, status.as_written, status.attributes).write(
        names.STATUS_PACKAGE, package
    )


class _Writer:
    def __init__(
        self,
        extensions: list[Extension],
        as_written: dict[str, str],
        attributes: dict[str, dict[str, str]],
    ) -> None:
        self.as_written = as_written
        self.attributes = attributes
        self.kept: list[bytes] = []
        #: parent path -> (placeholder index, ``after``) of the kept elements still to write.
        self.pending: dict[str, list[tuple[int, str | None]]] = {}
        self.written: dict[str, etree._Element] = {}
        for i, ext in enumerate(extensions):
            xml = xmltext.checked(
                ext.xml, f"extensions[{i}].xml", in_envelope=_in_envelope(ext.parent)
            )
            self.pending.setdefault(ext.parent, []).append((self._hold(xml), ext.after))

    def _hold(self, xml: str) -> int:
        self.kept.append(xml.encode("utf-8"))
        return len(self.kept) - 1

    def write(self, layout: Group, package: dict[str, Any]) -> bytes:
        nsmap: dict[str | None, str] = {None: names.NAMESPACE}
        # Namespaced attributes get their usual prefix, declared once on the root.
        used = {etree.QName(name).namespace for attrs in self.attributes.values() for name in attrs}
        for prefix, namespace in names.WELL_KNOWN_PREFIXES.items():
            if namespace in used:
                nsmap[prefix] = namespace
        root = etree.Element(_qname(names.ROOT), nsmap=nsmap)  # type: ignore[arg-type]
        self._set_attributes(root, names.ROOT)
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
        self._kept_into(element, path, after="")
        for spec in layout.fields:
            self._field(element, spec, data.get(spec.key), path)
            self._kept_into(element, path, after=spec.tag)
        self._kept_into(element, path)

    def _field(self, element: etree._Element, spec: Field, value: Any, path: str) -> None:
        if spec.many:
            for i, item in enumerate(value or [], 1):
                item_path = f"{path}/{spec.tag}[{i}]"
                child = self._child(element, spec.tag, spec.attributes, item_path)
                self.value(child, spec.kind, item, item_path)
            return
        child_path = f"{path}/{spec.tag}"
        absent = value is None or (isinstance(spec.kind, Wrapped) and not value)
        kept = child_path in self.as_written or self._has_kept_under(child_path)
        if absent and not kept:
            return
        child = self._child(element, spec.tag, spec.attributes, child_path)
        self.value(child, spec.kind, value, child_path)

    def value(
        self, element: etree._Element, kind: Scalar | Group | Wrapped, value: Any, path: str
    ) -> None:
        if isinstance(kind, Group):
            self.group(element, kind, value or {}, path)
        elif isinstance(kind, Wrapped):
            self.written[path] = element
            for i, item in enumerate(value or [], 1):
                item_path = f"{path}/{kind.item}[{i}]"
                child = self._child(element, kind.item, (), item_path)
                self.value(child, kind.kind, item, item_path)
            self._kept_into(element, path)
        elif kind == "raw":
            xml = xmltext.checked(value, path, in_envelope=_in_envelope(path))
            parent = element.getparent()
            assert parent is not None
            parent.replace(element, etree.Comment(f"lienthong-kept-{self._hold(xml)}"))
        elif value is not None or path in self.as_written:
            try:
                element.text = self._text(kind, value, path)
            except ValueError as e:  # lxml refuses control characters and the like
                raise EdxmlError(f"{path}: {value!r} cannot be written as XML ({e})") from e

    def _text(self, kind: Scalar, value: Any, path: str) -> str:
        """The sender's text while it still reads as ``value``, else the standard's form."""
        written = self.as_written.get(path)
        if written is not None and (
            value is None or values.read_scalar(kind, written, path).value == value
        ):
            return written
        return _scalar_text(kind, value)

    def _child(
        self,
        parent: etree._Element,
        tag: str,
        attributes: tuple[tuple[str, str], ...],
        path: str,
    ) -> etree._Element:
        nsmap = {names.PREFIX: names.NAMESPACE} if tag in names.PREFIXED_SUBTREES else None
        child = etree.SubElement(parent, _qname(tag), nsmap=nsmap)
        for key, val in attributes:
            child.set(key, val)
        self._set_attributes(child, path)
        return child

    def _set_attributes(self, element: etree._Element, path: str) -> None:
        for key, val in self.attributes.get(path, {}).items():
            try:
                element.set(key, val)
            except ValueError as e:
                raise EdxmlError(f"{path}: attribute {key!r}={val!r} cannot be written: {e}") from e

    def _kept_into(self, element: etree._Element, path: str, *, after: str | None = None) -> None:
        """Kept elements of ``path`` that go here: those that followed the known element
        ``after`` ('' = before every known one); with no ``after``, all that are left."""
        waiting = self.pending.get(path, [])
        here = [i for i, a in waiting if after is None or a == after]
        left = [(i, a) for i, a in waiting if after is not None and a != after]
        if left:
            self.pending[path] = left
        else:
            self.pending.pop(path, None)
        for index in here:
            element.append(etree.Comment(f"lienthong-kept-{index}"))

    def _place_orphans(self, root: etree._Element) -> None:
        for path in list(self.pending):
            ancestor = path
            while ancestor not in self.written and "/" in ancestor:
                ancestor = ancestor.rsplit("/", 1)[0]
            target = self.written.get(ancestor, root)
            for index, _ in self.pending.pop(path):
                target.append(etree.Comment(f"lienthong-kept-{index}"))


def _in_envelope(path: str) -> bool:
    """Whether ``path`` is inside ``edXMLEnvelope``, where ``edXML:`` is bound."""
    return path.startswith(f"{names.ROOT}/edXMLEnvelope")


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
