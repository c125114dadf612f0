"""The header fields the relay stores as ``documents`` columns at intake
(relay/document_headers.py): the console shows and searches them, deadlines and the duplicate
check read them."""

from __future__ import annotations

import datetime as dt

import pytest

from relay.document_headers import header_columns
from relay.duplicates import registration_key
from schemas import Document


def document(**fields: object) -> Document:
    return Document.model_validate(
        {
            "document_id": "000.00.00.H41,2016/04/08,1234/VPCP-KSTT",
            "sender": {"organ_id": "000.00.00.H41"},
            "recipients": [{"organ_id": "000.00.00.G22"}],
            **fields,
        }
    )


def test_the_header_fields_of_a_submission_are_its_columns() -> None:
    doc = document(
        code={"code_number": " 1234 ", "code_notation": "VPCP-KSTT"},
        promulgation_info={"place": "Hà Nội", "promulgation_date": "2016-04-08"},
        other_info={"priority": 3},
        due_date="2016-04-20",
    )
    columns = header_columns(doc)
    assert columns == {
        "priority": 3,
        "code_number": "1234",
        "code_notation": "VPCP-KSTT",
        "promulgation_date": dt.date(2016, 4, 8),
        "due_date": dt.date(2016, 4, 20),
    }
    # the duplicate check looks the stored values up
    assert registration_key(doc) == (
        "000.00.00.H41",
        columns["code_number"],
        columns["code_notation"],
        columns["promulgation_date"],
    )


def test_a_number_without_a_date_is_still_shown_and_searched() -> None:
    doc = document(code={"code_number": "77", "code_notation": "STP-VP"})
    assert header_columns(doc)["code_number"] == "77" and registration_key(doc) is None


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"code": {"code_number": "  ", "code_notation": ""}},
        {"other_info": {"priority": 70000}},  # beyond smallint: no priority the standard knows
    ],
)
def test_missing_or_blank_fields_are_null(fields: dict[str, object]) -> None:
    assert set(header_columns(document(**fields)).values()) == {None}
