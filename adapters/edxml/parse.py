"""edXML packages -> ``schemas.Document`` / ``schemas.Status``: liberal in what is read.

Every element the layout (``names``) knows becomes a model field, found by local name wherever
it sits among its siblings; every other element is kept verbatim as an ``Extension`` whose
``parent`` is the slash path of local names from the root
(``edXML/edXMLEnvelope/edXMLHeader/MessageHeader``; a repeated element carries its 1-based
position, ``…/To[2]``). Extensions are listed container by container, in the layout's order, and
within a container in file order, so that writing a model back and reading it again gives an
equal model. Attributes on known elements are kept in ``attributes`` by the same paths.

What real document systems send is read, kept and reported as a warning, never refused and
never silently changed (see :func:`read_package` and README "edXML for DMS vendors"): dates in
other forms or impossible ones, numbers that are not numbers (kept as text in ``as_written``),
empty elements (read as absent), hops without an agency, attachments that are not zipped, an
undeclared ``xlink:``-like prefix. What cannot make a package (no sender, no recipient, an
attachment that is not base64, a value that is not an agency code) is refused, with every
reason found at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from pydantic import ValidationError

from adapters.edxml import names, values, xmltext
from adapters.edxml.attachments import Budget, decode_attachment
from adapters.edxml.errors import EdxmlError, HostileInput
from adapters.edxml.names import Field, Group, Scalar, Wrapped
from adapters.edxml.safety import DEFAULT_LIMITS, Limits, parse_xml
from adapters.edxml.source import SourceText
from schemas import Attachment, Document, Extension, Status

_HEADER = f"{names.ROOT}/edXMLEnvelope/edXMLHeader"
_MESSAGE = f"{_HEADER}/MessageHeader"
_UNBOUND = re.compile(
    r"Namespace prefix (?P<prefix>[\w.-]+) (?:for \S+ )?on \S+ is not defined, line (?P<line>\d+)"
)
_ROOT_TAG = re.compile(rb"<(?![?!])[^\s/>]+")
#: Repeated elements that are never read as absent when empty (see ``_Reader.group``).
_NEVER_ABSENT = frozenset({"To"})


@dataclass
class PackageReading:
    """A package read leniently: the model and what was noticed on the way."""

    package: Document | Status
    warnings: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "document" if isinstance(self.package, Document) else "status"


def read_package(data: bytes, limits: Limits = DEFAULT_LIMITS) -> PackageReading:
    """A document or a status package (a status package's MessageHeader has a StatusCode),
    with its warnings; EdxmlError (``reasons``: every problem) when it cannot be read."""
    warnings: list[str] = []
    root, data = _parse_binding_well_known_prefixes(data, limits, warnings)
    _check_root(root, warnings)
    status = _is_status(root)
    source = SourceText(root, data)
    try:
        if status:
            return PackageReading(_status(root, warnings, source), warnings)
        return PackageReading(_document(root, limits, warnings, source), warnings)
    except EdxmlError as e:
        e.kind = "status" if status else "document"
        e.warnings = warnings
        raise


def parse_package(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Document | Status:
    """The model of a package (its warnings dropped: use :func:`read_package` to see them)."""
    return read_package(data, limits).package


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


def _parse_binding_well_known_prefixes(
    data: bytes, limits: Limits, warnings: list[str]
) -> tuple[etree._Element, bytes]:
    """The root of ``data``, and the bytes it was read from. A package that uses a well-known
    prefix (``xlink:``) without declaring it is read with that prefix bound to its usual
    namespace, with a warning: the VNPT SDK's own test package does this, its meaning is not in
    doubt, and a DMS built on that SDK would otherwise be cut off for a missing attribute. Any
    other unbound prefix is refused with the reason libxml2 gives (prefix and line)."""
    bound: set[str] = set()
    while True:
        try:
            return parse_xml(data, limits), data
        except HostileInput:
            raise
        except EdxmlError as e:
            match = _UNBOUND.search(str(e))
            if match is None:
                raise
            prefix = match["prefix"]
            namespace = names.BINDABLE_PREFIXES.get(prefix)
            patched = None if namespace is None or prefix in bound else _declare(data, prefix)
            if patched is None:
                raise
            warnings.append(
                f"line {match['line']}: the prefix {prefix}: is used but never declared; read "
                f'as {namespace} (declare xmlns:{prefix}="{namespace}")'
            )
            bound.add(prefix)
            data = patched


def _declare(data: bytes, prefix: str) -> bytes | None:
    """``data`` with ``xmlns:prefix`` declared on its root element (ASCII-compatible text only)."""
    if b"\x00" in data[:4]:
        return None
    match = _ROOT_TAG.search(data)
    if match is None:
        return None
    declaration = f' xmlns:{prefix}="{names.BINDABLE_PREFIXES[prefix]}"'.encode("ascii")
    return data[: match.end()] + declaration + data[match.end() :]


def _check_root(root: etree._Element, warnings: list[str]) -> None:
    qname = etree.QName(root)
    if qname.namespace == names.NAMESPACE_2803:
        raise EdxmlError(
            f"the package is in the older '2803' edXML format (namespace {qname.namespace}), "
            f"which lienthong does not read; send a QCVN 102:2016 package (namespace "
            f"{names.NAMESPACE})"
        )
    if qname.namespace in names.SOAP_NAMESPACES:
        raise EdxmlError(
            f"the file is a SOAP envelope (<{qname.localname}> in {qname.namespace}), not an "
            "edXML package; drop the edXML package itself (what the SOAP Body carries)"
        )
    if qname.localname != names.ROOT:
        raise EdxmlError(
            f"not an edXML package: the root element is <{qname.localname}>, "
            f"expected <{names.ROOT}>"
        )
    if qname.namespace != names.NAMESPACE:
        warnings.append(
            f"line {root.sourceline}: the root element is in namespace {qname.namespace!r}, "
            f"expected {names.NAMESPACE}; read by local names"
        )


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
    """Reads elements into dicts by the layout, collecting on the way unknown elements,
    attributes, texts to keep as written, warnings and errors."""

    def __init__(self, warnings: list[str], source: SourceText | None = None) -> None:
        self.source = source
        self.extensions: list[Extension] = []
        self.as_written: dict[str, str] = {}
        self.attributes: dict[str, dict[str, str]] = {}
        self.warnings = warnings
        self.errors: list[str] = []

    def group(self, element: etree._Element, group: Group, path: str) -> dict[str, Any]:
        found: dict[str, list[etree._Element]] = {}
        known: list[str] = []  # the known siblings met so far, in file order
        unknown: list[tuple[Extension, int]] = []  # each with how many known ones preceded it
        for child in _children(element):
            tag = xmltext.local_name(child)
            spec = group.field_for(tag)
            if spec is None or (not spec.many and tag in found):
                unknown.append((self._keep(child, path), len(known)))
            else:
                found.setdefault(tag, []).append(child)
                known.append(tag)
        result: dict[str, Any] = {}
        for spec in group.fields:
            elements = found.get(spec.tag)
            if not elements:
                continue
            if spec.many:
                items = []
                for i, el in enumerate(elements, 1):
                    item_path = f"{path}/{spec.tag}[{i}]"
                    self._attributes(el, item_path, spec.attributes)
                    item = self.value(el, spec.kind, item_path, spec.tag)
                    # An empty <ResponseFor/> is absent; an empty <To> is a recipient without
                    # a code, refused by validation rather than dropped unseen.
                    if item != {} or spec.tag in _NEVER_ABSENT:
                        items.append(item)
                result[spec.key] = items
            else:
                child_path = f"{path}/{spec.tag}"
                self._attributes(elements[0], child_path, spec.attributes)
                value = self.value(elements[0], spec.kind, child_path, spec.tag)
                # An empty element (<ResponseFor/>, <DueDate></DueDate>) is read as absent.
                if value is not None and value != {}:
                    result[spec.key] = value
        # Where each unknown element goes back: after the last known sibling before it that
        # will be written again (an empty one is not), so that a second reading says the same.
        written = {spec.tag for spec in group.fields if self._written(spec, result, path)}
        for extension, preceding in unknown:
            extension.after = next((t for t in reversed(known[:preceding]) if t in written), "")
        return result

    def _written(self, spec: Field, result: dict[str, Any], path: str) -> bool:
        if result.get(spec.key) not in (None, [], {}):
            return True
        child = f"{path}/{spec.tag}"
        return child in self.as_written or any(
            e.parent == child or e.parent.startswith(child + "/") for e in self.extensions
        )

    def value(
        self, element: etree._Element, kind: Scalar | Group | Wrapped, path: str, tag: str
    ) -> Any:
        if isinstance(kind, Group):
            return self.group(element, kind, path)
        if isinstance(kind, Wrapped):
            return self.wrapped(element, kind, path)
        return self.scalar(element, kind, path, tag)

    def wrapped(self, element: etree._Element, kind: Wrapped, path: str) -> list[Any]:
        items: list[etree._Element] = []
        for child in _children(element):
            if xmltext.local_name(child) == kind.item:
                items.append(child)
            else:
                self._keep(child, path)
        result = []
        for i, el in enumerate(items, 1):
            item_path = f"{path}/{kind.item}[{i}]"
            self._attributes(el, item_path, ())
            item = self.value(el, kind.kind, item_path, kind.item)
            if item is not None and item != {}:  # an empty <Appendix/> is read as absent
                result.append(item)
        return result

    def scalar(self, element: etree._Element, kind: Scalar, path: str, tag: str) -> Any:
        if kind == "raw":  # the header Signature: byte for byte when it can be
            exact = self.source.exact(element) if self.source is not None else None
            return exact if exact is not None else xmltext.keep(element)
        inner = _children(element)
        if inner:
            self.errors.append(
                f"{path} (line {element.sourceline}): expected text, found the element "
                f"<{xmltext.local_name(inner[0])}>"
            )
            return None
        text = (element.text or "").strip()
        if not text:
            return None
        reading = values.read_scalar(kind, text, path, tag)
        if reading.keep:
            self.as_written[path] = text
        if reading.warning:
            self.warnings.append(reading.warning)
        return reading.value

    def _attributes(
        self, element: etree._Element, path: str, fixed: tuple[tuple[str, str], ...]
    ) -> None:
        found = {str(k): str(v) for k, v in element.attrib.items() if (k, v) not in fixed}
        if found:
            self.attributes[path] = found

    def _keep(self, element: etree._Element, parent: str) -> Extension:
        exact = None
        empty = not len(element) and not (element.text or "").strip()
        if xmltext.local_name(element) == "DigitalSignature" and empty and self.source is not None:
            exact = self.source.exact(element)  # kept byte for byte, as a Signature
        extension = Extension(
            parent=parent, xml=exact if exact is not None else xmltext.keep(element)
        )
        self.extensions.append(extension)
        return extension


def _validate(model: type[Document] | type[Status], data: dict[str, Any], errors: list[str]) -> Any:
    try:
        result = model.model_validate(data)
    except ValidationError as e:
        errors.extend(_reasons(e, data.get("as_written", {})))
        result = None
    if errors:
        raise EdxmlError("; ".join(errors), errors)
    return result


def _reasons(e: ValidationError, as_written: dict[str, str]) -> list[str]:
    """One line per problem: the XML path, what is wrong, the value."""
    lines = []
    for err in e.errors(include_url=False):
        where = _xml_path(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if where in as_written:  # a required value whose text could not be read
            lines.append(f"{where}: {as_written[where]!r} cannot be read as this element's value")
            continue
        value = err.get("input")
        if isinstance(value, dict | list):
            lines.append(f"{where}: {msg}")
        else:
            shown = repr(value)
            lines.append(f"{where}: {msg} (got {shown[:77] + '...' if len(shown) > 80 else shown})")
    return lines


#: The model's top-level keys, found in these groups of the layout.
_TOP = {
    **{f.key: (_MESSAGE, f) for f in names.STATUS_HEADER.fields},
    **{f.key: (_MESSAGE, f) for f in names.DOCUMENT_HEADER.fields},
    **{f.key: (f"{_HEADER}/TraceHeaderList", f) for f in names.TRACE_HEADER_LIST.fields},
}


def _xml_path(loc: tuple[int | str, ...]) -> str:
    """``("recipients", 0, "organ_id")`` -> ``…/MessageHeader/To[1]/OrganId``."""
    if not loc or not isinstance(loc[0], str) or loc[0] not in _TOP:
        return ".".join(str(p) for p in loc) or "(package)"
    base, spec = _TOP[loc[0]]
    path = f"{base}/{spec.tag}"
    kind: Any = spec.kind
    for part in loc[1:]:
        if isinstance(part, int):
            path += f"[{part + 1}]"
            if isinstance(kind, Wrapped):
                path = path.removesuffix(f"[{part + 1}]") + f"/{kind.item}[{part + 1}]"
                kind = kind.kind
            continue
        group = kind if isinstance(kind, Group) else None
        found = next((f for f in group.fields if f.key == part), None) if group else None
        if found is None:
            return ".".join(str(p) for p in loc)
        path += f"/{found.tag}"
        kind = found.kind
    return path


def _organization_warnings(data: dict[str, Any], path: str, warnings: list[str]) -> None:
    if isinstance(data, dict) and data.get("organ_id") and not data.get("organ_name"):
        warnings.append(
            f"{path}: no OrganName for {data['organ_id']!r} (the recipient's DMS shows no name)"
        )


def _status(root: etree._Element, warnings: list[str], source: SourceText) -> Status:
    reader = _Reader(warnings, source)
    reader._attributes(root, names.ROOT, ())
    package = reader.group(root, names.STATUS_PACKAGE, names.ROOT)
    message = package.get("envelope", {}).get("header", {}).get("message", {})
    _organization_warnings(message.get("sender", {}), f"{_MESSAGE}/From", warnings)
    data = dict(message)
    data["extensions"] = reader.extensions
    data["as_written"] = reader.as_written
    data["attributes"] = reader.attributes
    status: Status = _validate(Status, data, reader.errors)
    return status


def _document(
    root: etree._Element, limits: Limits, warnings: list[str], source: SourceText
) -> Document:
    reader = _Reader(warnings, source)
    reader._attributes(root, names.ROOT, ())
    package = reader.group(root, names.DOCUMENT_PACKAGE, names.ROOT)
    header = package.get("envelope", {}).get("header", {})
    data = dict(header.get("message", {}))
    _organization_warnings(data.get("sender", {}), f"{_MESSAGE}/From", warnings)
    for i, recipient in enumerate(data.get("recipients", []), 1):
        _organization_warnings(recipient, f"{_MESSAGE}/To[{i}]", warnings)
    trace_list = header.get("trace_list", {})
    if "trace" in trace_list:
        data["trace"] = _hops(trace_list["trace"], reader)
    if "business" in trace_list:
        data["business"] = trace_list["business"]
        own = data["business"].get("document_id")
        if own and data.get("document_id") and own != data["document_id"]:
            warnings.append(
                f"{_HEADER}/TraceHeaderList/Bussiness/DocumentId: {own!r} differs from "
                f"MessageHeader/DocumentId {data['document_id']!r}; both kept"
            )
    if "signature" in header:
        data["signature"] = header["signature"]
    manifest = package.get("envelope", {}).get("body", {}).get("manifest", [])
    encoded = package.get("encoded", [])
    data["attachments"] = _attachments(manifest, encoded, Budget(limits), reader)
    data["extensions"] = reader.extensions
    data["as_written"] = reader.as_written
    data["attributes"] = reader.attributes
    document: Document = _validate(Document, data, reader.errors)
    return document


def _hops(hops: list[dict[str, Any]], reader: _Reader) -> list[dict[str, Any]]:
    """TraceHeaders; one without an OrganId (or with the text ``null``) is kept without one."""
    for i, hop in enumerate(hops, 1):
        where = f"{_HEADER}/TraceHeaderList/TraceHeader[{i}]"
        code = hop.get("organ_id")
        if code is not None and code.lower() == "null":
            del hop["organ_id"]
            reader.as_written[f"{where}/OrganId"] = code
            reader.warnings.append(f"{where}/OrganId: {code!r} read as no agency")
        elif code is None:
            reader.warnings.append(f"{where}: no OrganId; the hop is kept without an agency")
    return hops


def _cid(value: str) -> str:
    """A ContentId as matched between manifest and attachment: ``cid:`` and ``<>`` dropped."""
    return value.strip().removeprefix("cid:").strip("<>")


def _attachments(
    manifest: list[dict[str, Any]],
    encoded: list[dict[str, Any]],
    budget: Budget,
    reader: _Reader,
) -> list[Attachment]:
    """Attachments joined with their manifest entries by ContentId; each needs the other."""
    errors, warnings = reader.errors, reader.warnings
    references: dict[str, dict[str, Any]] = {}
    for i, ref in enumerate(manifest, 1):
        written = ref.get("content_id") or ""
        cid = _cid(written)
        if not cid:
            errors.append(f"edXMLManifest/Reference[{i}]: ContentId is missing")
        elif cid in references:
            errors.append(f"edXMLManifest: ContentId {written!r} is listed twice")
        else:
            references[cid] = ref
    result: list[Attachment] = []
    seen: set[str] = set()
    for i, item in enumerate(encoded, 1):
        written = item.get("content_id") or ""
        cid = _cid(written)
        label = item.get("name") or written or f"#{i}"
        where = f"AttachmentEncoded/Attachment[{i}] ({label})"
        if not cid:
            errors.append(f"{where}: ContentId is missing")
            continue
        if cid in seen:
            errors.append(f"{where}: ContentId {written!r} is used by two attachments")
            continue
        seen.add(cid)
        entry = references.get(cid)
        if entry is None:
            errors.append(
                f"{where}: no edXMLManifest Reference has ContentId {written!r} (every attachment "
                "must be listed in the manifest)"
            )
            continue
        name = item.get("name") or entry.get("name")
        text = item.get("encoded")
        if not name:
            errors.append(f"{where}: AttachmentName is missing (also in the manifest)")
        if not text:
            errors.append(f"{where}: ContentTransferEncoded is missing or empty")
        if not name or not text:
            continue
        try:
            raw = decode_attachment(text, where, budget, warnings)
        except HostileInput:
            raise
        except EdxmlError as e:
            errors.append(str(e))
            continue
        declared, listed = item.get("content_type"), entry.get("content_type")
        if declared and listed and declared != listed:
            warnings.append(
                f"{where}: ContentType is {declared!r} but the manifest says {listed!r}; "
                f"kept {declared!r}, the bytes as sent"
            )
        result.append(
            Attachment.from_bytes(
                name,
                raw,
                declared or listed or "application/octet-stream",
                content_id=item.get("content_id") or entry.get("content_id"),
                description=_first(item.get("description"), entry.get("description")),
            )
        )
    missing = [cid for cid in references if cid not in seen]
    if missing:
        errors.append(
            "edXMLManifest lists "
            + ", ".join(
                f"{references[c].get('content_id')!r} ({references[c].get('name') or 'no name'})"
                for c in missing
            )
            + " but no attachment under AttachmentEncoded carries that ContentId"
        )
    return result


def _first(*candidates: str | None) -> str | None:
    for c in candidates:
        if c is not None:
            return c
    return None
