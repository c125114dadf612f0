"""Phụ lục VI III.1.h: which documents are possible duplicates (relay/duplicates.py)."""

from __future__ import annotations

import datetime as dt

from relay.duplicates import DuplicateDetector, reason, registration_columns, registration_key
from schemas import Document


def doc(document_id: str, number: str | None = "15", date: str | None = "2026-11-30") -> Document:
    data: dict[str, object] = {
        "document_id": document_id,
        "sender": {"organ_id": "000.00.00.H41"},
        "recipients": [{"organ_id": "000.00.00.G22"}],
        "code": {"code_number": number, "code_notation": "UBND-VX"},
    }
    if date:
        data["promulgation_info"] = {"promulgation_date": date}
    return Document.model_validate(data)


class NoEarlier(DuplicateDetector):
    """The detector without a database: nothing was stored before this batch."""

    def __init__(self) -> None:
        self._seen = {}


def test_the_key_is_sender_number_notation_and_date() -> None:
    assert registration_key(doc("a")) == (
        "000.00.00.H41",
        "15",
        "UBND-VX",
        dt.date(2026, 11, 30),
    )
    assert registration_columns(doc("a"))["promulgation_date"] == dt.date(2026, 11, 30)


def test_a_document_without_number_or_date_is_never_flagged() -> None:
    d = NoEarlier()
    assert registration_key(doc("a", number=None)) is None
    assert registration_key(doc("a", date=None)) is None
    assert d.check(doc("a", date=None)) is None
    assert d.check(doc("b", date=None)) is None


def test_another_document_id_with_the_same_number_and_date_is_flagged() -> None:
    d = NoEarlier()
    assert d.check(doc("first")) is None
    assert d.check(doc("second")) == "first"
    assert "already sent as document 'first'" in reason(doc("second"), "first")


def test_the_same_document_id_again_is_not_a_duplicate() -> None:
    d = NoEarlier()
    assert d.check(doc("same")) is None
    assert d.check(doc("same")) is None  # a revoke or an update of it


def test_another_date_or_number_is_another_document() -> None:
    d = NoEarlier()
    assert d.check(doc("a")) is None
    assert d.check(doc("b", date="2026-12-01")) is None
    assert d.check(doc("c", number="16")) is None
