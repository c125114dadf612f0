"""The words and the pace of the hub's transfer timeout (issue 17), without services."""

from __future__ import annotations

import datetime as dt
import hashlib

from relay.blobs.expiry import _words, check_interval
from relay.blobs.store import Chunked, chunked_attachments
from relay.config import Settings
from relay.retry.store import Delivery, Stale
from schemas import Attachment
from schemas.envelope import encode_message
from tests.relay_support import attachment, make_document

SHA = hashlib.sha256(b"scan").hexdigest()


def _payload() -> bytes:
    doc = make_document("000.00.00.G22", ["000.00.00.H26"])
    doc.attachments = [
        attachment("note.pdf"),  # inline: not a chunked transfer
        Attachment(name="scan.pdf", size=209_715_200, sha256=SHA, data="", transfer="chunks"),
    ]
    return encode_message(doc)


def test_a_stored_document_names_only_its_chunked_attachments() -> None:
    assert chunked_attachments(_payload()) == [Chunked("scan.pdf", 209_715_200, SHA)]
    assert chunked_attachments(b"") == []  # a payload retention emptied names none
    assert chunked_attachments(b"[1, 2]") == []


def test_the_sweep_runs_at_most_every_minute_and_four_times_per_timeout() -> None:
    assert check_interval(Settings(transfer_timeout_hours=72)) == 60.0
    assert check_interval(Settings(transfer_timeout_hours=4 / 3600)) == 1.0


def test_the_sender_is_told_who_what_since_when_and_what_to_do() -> None:
    queued = dt.datetime(2026, 11, 27, 9, 30, tzinfo=dt.UTC)
    stale = Stale(
        delivery=Delivery(
            id=1,
            document_pk=1,
            recipient="000.01.00.H26",
            route_to="000.00.00.H26",
            message_id="m",
            state="queued",
            attempts=0,
            submission_id="s",
            document_id="000.00.00.G22,2026/11/27,9001/VP",
            sender="000.00.00.G22",
            submitted_by="000.00.00.G22",
        ),
        queued_at=queued,
        payload=_payload(),
    )
    error, told, detail = _words(stale, Settings(transfer_timeout_hours=72))
    assert error.startswith("transfer timed out: 000.00.00.H26 did not finish")
    for words in (
        "000.01.00.H26 did not receive document '000.00.00.G22,2026/11/27,9001/VP'",
        f"'scan.pdf' (209,715,200 bytes, SHA-256 {SHA})",
        "within 72 h after the document was queued for it (2026-11-27 09:30 UTC)",
        "does not know how much of it arrived",
        "send the document again",
    ):
        assert words in told
    assert "note.pdf" not in told
    assert detail["attachments"] == [{"name": "scan.pdf", "size": 209_715_200, "sha256": SHA}]
