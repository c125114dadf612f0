"""The route of a package in its edXML ``TraceHeaderList``: one TraceHeader per hop.

How the route is recorded (no change to the relay is needed):

1. The sending side: when an edXML file is read from a DMS's outbox, a TraceHeader for the
   sending agency (the package's ``From``) with the current time is appended, unless the DMS
   already stamped that agency as the last hop (as the national axis samples do).
2. The relay never parses XML; it tells each copy's route in the AMQP headers it sets
   (``schemas.topology.HEADER_SENDER``: the connected agency whose outbox it came from;
   ``HEADER_RECIPIENT``: the agency it is addressed to, maybe a hosted unit).
3. The receiving side, when it writes the delivered package as edXML, appends the hub hop
   (the relay taking the package from the sender's outbox, named after that connected agency)
   and the receiver's hop (the addressed agency), both at the time of reception.

So a package that A sent to B reads ``A (DMS), A (hub), B`` in B's inbox.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from adapters.edxml.values import VIETNAM, now
from schemas import Document, TraceHeader, validate_agency_code
from schemas import topology as t


def stamp_submission(document: Document, agency: str, at: dt.datetime | None = None) -> Document:
    """``document`` with the sender's hop appended (kept as is if it is already the last)."""
    if document.trace and document.trace[-1].organ_id == agency:
        return document
    hop = TraceHeader(organ_id=agency, timestamp=at or now())
    return document.model_copy(update={"trace": [*document.trace, hop]})


def stamp_delivery(
    document: Document, headers: Mapping[str, object], at: dt.datetime | None = None
) -> Document:
    """``document`` with the hub hop and the receiver appended, from the delivery's headers.

    Headers that are missing or do not hold an agency code add no hop. ``at`` (the time of
    reception; now if not given) is written in Vietnam's time, to the second.
    """
    when = at.astimezone(VIETNAM).replace(microsecond=0) if at is not None else now()
    hops = list(document.trace)
    for name in (t.HEADER_SENDER, t.HEADER_RECIPIENT):
        code = _code(headers.get(name))
        if code is not None:
            hops.append(TraceHeader(organ_id=code, timestamp=when))
    return document.model_copy(update={"trace": hops})


def _code(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    try:
        return validate_agency_code(value)
    except ValueError:
        return None
