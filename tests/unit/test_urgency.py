"""Which submissions take the urgent lane, and the lane's names (issue 18)."""

from __future__ import annotations

import pytest

from schemas import topology as t
from schemas.document import Attachment, OtherInfo
from schemas.envelope import encode_message
from schemas.urgency import is_urgent_document, is_urgent_submission
from tests.relay_support import make_document, make_status


@pytest.mark.parametrize(
    ("priority", "urgent"),
    [(None, False), (0, False), (1, True), (2, True), (3, True), (4, True), (5, False)],
)
def test_priorities_1_to_4_are_urgent(priority: int | None, urgent: bool) -> None:
    doc = make_document("000.00.00.G22", ["000.00.00.H29"])
    if priority is not None:
        doc.other_info = OtherInfo(priority=priority)
    assert is_urgent_document(doc) is urgent
    assert is_urgent_submission(t.TYPE_DOCUMENT, encode_message(doc)) is urgent


def test_a_subject_that_mentions_priority_does_not_make_a_document_urgent() -> None:
    doc = make_document("000.00.00.G22", ["000.00.00.H29"])
    doc.subject = 'Khẩn "priority": 1'
    assert not is_urgent_submission(t.TYPE_DOCUMENT, encode_message(doc))


def test_statuses_and_unreadable_bodies_take_the_ordinary_lane() -> None:
    status = make_status("000.00.00.H29", "000.00.00.G22", "000.00.00.G22,2026/11/30,1/KHAN", "03")
    assert not is_urgent_submission(t.TYPE_STATUS, encode_message(status))
    assert not is_urgent_submission(t.TYPE_DOCUMENT, b'{"priority": 1, not json')
    assert not is_urgent_submission(t.TYPE_DOCUMENT, b'["priority"]')
    assert not is_urgent_submission(t.TYPE_DOCUMENT, b'{"other_info": {"priority": true}}')


def test_the_urgent_lanes_names_belong_to_one_agency_each() -> None:
    code = "000.00.00.G22"
    assert t.outbox_queue(code, urgent=True) == "agency.000.00.00.G22.outbox.urgent"
    assert t.inbox_queue(code, urgent=True) == "agency.000.00.00.G22.inbox.urgent"
    assert t.submit_exchange(code, urgent=True) == "lienthong.submit.000.00.00.G22.urgent"
    assert t.deliver_routing_key(code, urgent=True) == "000.00.00.G22.urgent"
    assert t.agency_of_outbox(t.outbox_queue(code, urgent=True)) == code
    assert t.agency_of_outbox(t.outbox_queue(code)) == code
    assert t.agency_of_outbox(t.inbox_queue(code, urgent=True)) is None


def test_an_urgent_document_sent_in_chunks_follows_its_chunks_in_the_ordinary_lane() -> None:
    """Its chunks go through the ordinary outbox, and the relay refuses a document whose bytes
    it does not hold yet: in the urgent lane the document overtook them (seen in
    tests/e2e/test_bigdocs_crash.py: "the hub holds 8388608 of its 41943040 bytes")."""
    doc = make_document("000.00.00.G22", ["000.00.00.H29"])
    doc.other_info = OtherInfo(priority=1)
    doc.attachments = [
        Attachment(name="scan.pdf", size=40 * 2**20, sha256="a" * 64, data="", transfer="chunks")
    ]
    assert is_urgent_document(doc)
    assert not is_urgent_submission(t.TYPE_DOCUMENT, encode_message(doc))
