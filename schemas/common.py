"""Building blocks shared by the document and status models (edXML names in the docstrings)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from schemas.agency_code import OrganId


class WireModel(BaseModel):
    """Base of every wire model: unknown JSON keys are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=False)


class Extension(WireModel):
    """An edXML element the models do not know, kept verbatim so nothing is lost.

    ``parent`` is the path of the element it was found in (``edXML/edXMLEnvelope/…/OtherInfo``),
    ``xml`` the element serialised as it came, ``after`` where it sat among its siblings.
    """

    parent: str
    xml: str
    after: str | None = Field(
        None,
        description="the local name of the known element it followed in its parent ('' when it "
        "came before every known one); None: written at the end of its parent",
    )


class Organization(WireModel):
    """edXML ``From`` / ``To``: an agency and its contact details."""

    organ_id: OrganId = Field(description="OrganId: the agency code")
    organization_in_charge: str | None = None
    organ_name: str | None = None
    organ_add: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None


class StaffInfo(WireModel):
    """edXML ``StaffInfo``: who handled the document or status."""

    department: str | None = None
    staff: str | None = None
    email: str | None = None
    mobile: str | None = None


class ResponseFor(WireModel):
    """edXML ``ResponseFor``: the document a status or a reply refers to.

    In a status package ``organ_id`` is the addressee of the status (the document's sender for
    01…06, 15, 16; the recipient for 13).
    """

    organ_id: OrganId
    code: str | None = None
    promulgation_date: dt.date | None = None
    document_id: str = Field(min_length=1)


class TraceHeader(WireModel):
    """edXML ``TraceHeader``: one hop of the route (agency and time).

    Real packages hold hops without an ``OrganId`` (or with the text ``null``) or without a
    readable time: such a hop is kept, with the missing part ``None``.
    """

    organ_id: OrganId | None = None
    timestamp: dt.datetime | None = None


#: ``as_written`` of a document or status: element path -> text as the sender wrote it.
AS_WRITTEN_DESCRIPTION = (
    "edXML values kept as the sender wrote them, by element path (the path of local names "
    "from the root, a repeated element with its 1-based position, e.g. "
    "'edXML/edXMLEnvelope/edXMLHeader/MessageHeader/PromulgationInfo/PromulgationDate'): a "
    "date in another form than yyyy/MM/dd, an impossible date, a number or code that is not "
    "one. The typed field holds the normalised value (None when there is none); the text is "
    "written back while the typed field still says the same."
)
#: ``attributes`` of a document or status: element path -> attribute name -> value.
ATTRIBUTES_DESCRIPTION = (
    "XML attributes found on known edXML elements, by element path (as for as_written); "
    "names of attributes in a namespace are written '{namespace}name'."
)
