"""Which delivery a status is about, and who it goes to (DESIGN §2 step 5).

A status names a document by its edXML ``DocumentId``; several submissions may share one (a
revoke or an update repeats the id of the document it changes). The rules, in order:

- 13 (take back) comes from the document's sender: the delivery is the one of the sender's
  document to ``response_for.organ_id``; the status goes to that recipient.
- every other code comes from a recipient: the delivery is the one addressed to the status's
  sender; the status goes to the document's sender (through the agency that submitted it).
- among several matching submissions, a 01 prefers one not yet delivered (each package gets
  its own 01 from the adapter), every other code prefers the original (business type 0);
  then the newest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from relay.domain.intake import Refusal
from relay.domain.states import DELIVERED, PROGRESS_RANK, RECALL


@dataclass(frozen=True)
class DeliveryRef:
    """A delivery with what the status rules need of its document."""

    delivery_id: int
    document_pk: int
    document_sender: str
    submitted_by: str
    business_type: int
    recipient: str
    route_to: str
    state: str


@dataclass(frozen=True)
class StatusRoute:
    delivery: DeliveryRef
    addressee: str  # the agency code the status is for (maybe a hosted unit)
    route_to: str  # the connected agency whose inbox receives it


def _preference(code: str, ref: DeliveryRef) -> tuple[int, int]:
    if code == "01":
        not_yet = PROGRESS_RANK.get(ref.state, 99) < PROGRESS_RANK[DELIVERED]
        return (0 if not_yet else 1, -ref.document_pk)
    return (0 if ref.business_type == 0 else 1, -ref.document_pk)


def route_status(
    *,
    document_id: str,
    code: str,
    status_sender: str,
    addressee: str,
    candidates: Sequence[DeliveryRef],
    document_known: bool,
) -> StatusRoute | Refusal:
    """The delivery status ``code`` from ``status_sender`` is about, or why it is refused.

    ``candidates`` are the deliveries of every submission with ``document_id``.
    """
    if not document_known:
        return Refusal(f"response_for.document_id: no document {document_id!r} is known")
    if code == RECALL:
        matches = [
            c for c in candidates if c.document_sender == status_sender and c.recipient == addressee
        ]
        if not matches:
            return Refusal(
                f"sender.organ_id: {status_sender!r} did not send document {document_id!r} to "
                f"{addressee!r}, so it cannot ask to take it back (13)"
            )
        best = min(matches, key=lambda c: _preference(code, c))
        return StatusRoute(delivery=best, addressee=best.recipient, route_to=best.route_to)
    matches = [c for c in candidates if c.recipient == status_sender]
    if not matches:
        return Refusal(
            f"sender.organ_id: {status_sender!r} is not a recipient of document "
            f"{document_id!r}, so it cannot report status {code} about it"
        )
    preferred = [c for c in matches if c.document_sender == addressee] or matches
    best = min(preferred, key=lambda c: _preference(code, c))
    return StatusRoute(delivery=best, addressee=best.document_sender, route_to=best.submitted_by)
