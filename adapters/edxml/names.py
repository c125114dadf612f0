"""The edXML layout: which element holds which model field, in the order they are written.

Elements are matched by local name only (every prefixed and unprefixed element of a package is
in the QCVN 102:2016 namespace, and vendors differ in prefixes). Field keys are the model's
snake_case names (``OrganId`` -> ``organ_id``, ``From`` -> ``sender``, ``To`` -> ``recipients``).
The same tables drive reading and writing, so both stay in step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

NAMESPACE = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
PREFIX = "edXML"

#: ``docid`` is a DocumentId (``OrganId,yyyy/MM/dd,notation``), read with its date normalised.
Scalar: TypeAlias = Literal["text", "int", "bool", "date", "datetime", "docid", "raw"]


@dataclass(frozen=True)
class Group:
    """An element with child elements, read into a dict."""

    fields: tuple[Field, ...]

    def field_for(self, tag: str) -> Field | None:
        for f in self.fields:
            if f.tag == tag:
                return f
        return None


@dataclass(frozen=True)
class Wrapped:
    """A list element (``ToPlaces``, ``ReceiverList``…) whose ``item`` children form a list."""

    item: str
    kind: Scalar | Group


@dataclass(frozen=True)
class Field:
    """One child element: its local name, the dict key, its kind, whether it repeats."""

    tag: str
    key: str
    kind: Scalar | Group | Wrapped
    many: bool = False
    attributes: tuple[tuple[str, str], ...] = field(default=())


def _g(*fields: Field) -> Group:
    return Group(tuple(fields))


def _t(tag: str, key: str, kind: Scalar = "text") -> Field:
    return Field(tag, key, kind)


ORGANIZATION = _g(
    _t("OrganId", "organ_id"),
    _t("OrganizationInCharge", "organization_in_charge"),
    _t("OrganName", "organ_name"),
    _t("OrganAdd", "organ_add"),
    _t("Email", "email"),
    _t("Telephone", "telephone"),
    _t("Fax", "fax"),
    _t("Website", "website"),
)

STAFF_INFO = _g(
    _t("Department", "department"),
    _t("Staff", "staff"),
    _t("Email", "email"),
    _t("Mobile", "mobile"),
)

RESPONSE_FOR = _g(
    _t("OrganId", "organ_id"),
    _t("Code", "code"),
    _t("PromulgationDate", "promulgation_date", "date"),
    _t("DocumentId", "document_id", "docid"),
)

TRACE_HEADER = _g(_t("OrganId", "organ_id"), _t("Timestamp", "timestamp", "datetime"))

DOCUMENT_HEADER = _g(
    Field("From", "sender", ORGANIZATION),
    Field("To", "recipients", ORGANIZATION, many=True),
    _t("DocumentId", "document_id", "docid"),
    Field("Code", "code", _g(_t("CodeNumber", "code_number"), _t("CodeNotation", "code_notation"))),
    Field(
        "PromulgationInfo",
        "promulgation_info",
        _g(_t("Place", "place"), _t("PromulgationDate", "promulgation_date", "date")),
    ),
    Field(
        "DocumentType",
        "document_type",
        _g(
            _t("Type", "type", "int"),
            _t("TypeDetail", "type_detail", "int"),
            _t("TypeName", "type_name"),
        ),
    ),
    _t("Subject", "subject"),
    _t("Content", "content"),
    Field(
        "SignerInfo",
        "signer_info",
        _g(_t("Competence", "competence"), _t("Position", "position"), _t("FullName", "full_name")),
    ),
    _t("DueDate", "due_date", "date"),
    Field(
        "OtherInfo",
        "other_info",
        _g(
            _t("Priority", "priority", "int"),
            _t("SphereOfPromulgation", "sphere_of_promulgation"),
            _t("TyperNotation", "typer_notation"),
            _t("PromulgationAmount", "promulgation_amount", "int"),
            _t("PageAmount", "page_amount", "int"),
            _t("Direction", "direction", "bool"),
            Field("Appendixes", "appendixes", Wrapped("Appendix", "text")),
        ),
    ),
    Field("ResponseFor", "response_for", RESPONSE_FOR, many=True),
    _t("SteeringType", "steering_type", "int"),
    Field("ToPlaces", "to_places", Wrapped("Place", "text")),
)

BUSINESS = _g(
    _t("DocumentId", "document_id", "docid"),
    _t("BussinessDocType", "bussiness_doc_type", "int"),
    _t("BussinessDocReason", "bussiness_doc_reason"),
    _t("Paper", "paper", "int"),
    Field(
        "BussinessDocumentInfo",
        "bussiness_document_info",
        _g(
            _t("DocumentInfo", "document_info", "int"),
            _t("DocumentReceiver", "document_receiver", "int"),
            Field(
                "ReceiverList",
                "receiver_list",
                Wrapped(
                    "Receiver",
                    _g(_t("OrganId", "organ_id"), _t("ReceiverType", "receiver_type", "int")),
                ),
            ),
        ),
    ),
    Field(
        "ReplacementInfoList",
        "replacement_info_list",
        Wrapped(
            "ReplacementInfo",
            _g(
                _t("DocumentId", "document_id"),
                Field("OrganIdList", "organ_id_list", Wrapped("OrganId", "text")),
            ),
        ),
    ),
    Field("StaffInfo", "staff_info", STAFF_INFO),
)

TRACE_HEADER_LIST = _g(
    Field("TraceHeader", "trace", TRACE_HEADER, many=True),
    Field("Bussiness", "business", BUSINESS),
)

REFERENCE = _g(
    _t("ContentId", "content_id"),
    _t("ContentType", "content_type"),
    _t("Description", "description"),
    _t("AttachmentName", "name"),
)

ATTACHMENT = _g(
    _t("ContentId", "content_id"),
    _t("AttachmentName", "name"),
    _t("Description", "description"),
    _t("ContentType", "content_type"),
    _t("ContentTransferEncoded", "encoded"),
)

#: A document package, from the root element down.
DOCUMENT_PACKAGE = _g(
    Field(
        "edXMLEnvelope",
        "envelope",
        _g(
            Field(
                "edXMLHeader",
                "header",
                _g(
                    Field("MessageHeader", "message", DOCUMENT_HEADER),
                    Field("TraceHeaderList", "trace_list", TRACE_HEADER_LIST),
                    _t("Signature", "signature", "raw"),
                ),
            ),
            Field(
                "edXMLBody",
                "body",
                _g(
                    Field(
                        "edXMLManifest",
                        "manifest",
                        Wrapped("Reference", REFERENCE),
                        attributes=(("version", "1.0"),),
                    )
                ),
            ),
        ),
    ),
    Field("AttachmentEncoded", "encoded", Wrapped("Attachment", ATTACHMENT)),
)

STATUS_HEADER = _g(
    Field("From", "sender", ORGANIZATION),
    Field("ResponseFor", "response_for", RESPONSE_FOR),
    Field("StaffInfo", "staff_info", STAFF_INFO),
    _t("StatusCode", "status_code"),
    _t("Description", "description"),
    _t("Timestamp", "timestamp", "datetime"),
)

#: A status package: only a header; anything else is kept as an extension.
STATUS_PACKAGE = _g(
    Field(
        "edXMLEnvelope",
        "envelope",
        _g(Field("edXMLHeader", "header", _g(Field("MessageHeader", "message", STATUS_HEADER)))),
    ),
)

ROOT = "edXML"
#: Prefixes some vendors use without declaring them, and the namespace each always means. A
#: package using one undeclared is read with it bound there, with a warning.
WELL_KNOWN_PREFIXES: dict[str, str] = {
    "xlink": "http://www.w3.org/1999/xlink",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "xsd": "http://www.w3.org/2001/XMLSchema",
}
#: Prefixes bound when a package uses them undeclared: the well-known ones and the standard's
#: own ``edXML:`` (used outside the subtree that declares it, as on ``AttachmentEncoded``).
BINDABLE_PREFIXES: dict[str, str] = {**WELL_KNOWN_PREFIXES, PREFIX: NAMESPACE}
#: The namespace of the older "2803" edXML, which this reader does not read.
NAMESPACE_2803 = "http://www.inetcloud.vn/ns/edxml"
SOAP_NAMESPACES = frozenset(
    {"http://schemas.xmlsoap.org/soap/envelope/", "http://www.w3.org/2003/05/soap-envelope"}
)
#: Elements that declare the ``edXML`` prefix for their subtree, as the national axis writes
#: packages; everything else is in the default namespace declared on the root.
PREFIXED_SUBTREES = frozenset({"edXMLEnvelope", "ContentTransferEncoded"})
