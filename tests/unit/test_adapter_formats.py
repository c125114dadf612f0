"""Choosing a file format by suffix or name; edXML is loaded lazily."""

from __future__ import annotations

import sys

import pytest

from adapters.formats import registry
from adapters.formats.base import FormatError
from adapters.formats.json import JsonFormat
from schemas.envelope import encode_message
from tests.adapter_support import make_document


def test_json_files_are_read_by_the_json_format() -> None:
    fmt = registry.format_for_file("cv.JSON")
    assert isinstance(fmt, JsonFormat)
    document = make_document("000.00.00.G22", ["000.00.00.H41"])
    assert fmt.read(encode_message(document)) == document


def test_a_receipt_cannot_be_sent_from_the_outbox() -> None:
    body = b'{"schema": "lienthong.receipt/1", "kind": "accepted", "in_reply_to": "m"}'
    with pytest.raises(FormatError, match="cannot be sent by an agency"):
        JsonFormat().read(body)


def test_only_known_suffixes_and_no_dot_files_are_candidates() -> None:
    assert registry.is_candidate("a.json") and registry.is_candidate("a.edxml")
    assert not registry.is_candidate(".a.json")
    assert not registry.is_candidate("a.json.part")
    assert not registry.is_candidate("json")


def test_an_unavailable_edxml_format_rejects_edxml_files_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry, "_cache", {})
    monkeypatch.setitem(sys.modules, "adapters.formats.edxml", None)  # import fails
    with pytest.raises(FormatError, match="edXML format is not available"):
        registry.format_for_file("cv.edxml")
