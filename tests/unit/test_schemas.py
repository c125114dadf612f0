from __future__ import annotations

import pytest

from schemas import Attachment, Document, decode_message, is_strict_qcvn102
from schemas.envelope import InvalidMessage, encode_message


def _doc(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "schema": "lienthong.document/1",
        "document_id": "000.00.00.G22,2016/04/08,1234/VPCP-KSTT",
        "sender": {"organ_id": "000.00.00.G22"},
        "recipients": [{"organ_id": "000.00.00.H26"}],
    }
    base.update(kw)
    return base


def test_strict_and_lenient_agency_codes_are_told_apart() -> None:
    assert is_strict_qcvn102("000.00.00.G22")
    assert not is_strict_qcvn102("H01.151.01")


def test_a_bad_agency_code_names_the_field_and_the_value() -> None:
    body = Document.model_validate(_doc()).model_dump_json(by_alias=True)
    body = body.replace("000.00.00.H26", "not a code")
    with pytest.raises(InvalidMessage) as err:
        decode_message(body)
    assert "recipients.0.organ_id" in str(err.value)
    assert "not a code" in str(err.value)


def test_an_unknown_status_code_names_the_field_and_the_value() -> None:
    body = {
        "schema": "lienthong.status/1",
        "sender": {"organ_id": "000.00.00.H26"},
        "response_for": {"organ_id": "000.00.00.G22", "document_id": "X"},
        "status_code": "99",
        "timestamp": "2016-04-08T10:05:00+07:00",
    }
    import json

    with pytest.raises(InvalidMessage) as err:
        decode_message(json.dumps(body))
    assert "status_code" in str(err.value) and "'99'" in str(err.value)


def test_an_attachment_whose_digest_does_not_match_is_refused() -> None:
    att = Attachment.from_bytes("a.pdf", b"%PDF-1.4 hello").model_dump()
    att["sha256"] = "0" * 64
    with pytest.raises(InvalidMessage) as err:
        decode_message(
            Document.model_validate(_doc())
            .model_dump_json(by_alias=True)
            .replace('"attachments":[]', '"attachments":[' + __import__("json").dumps(att) + "]")
        )
    assert "sha256" in str(err.value)


def test_a_document_survives_encoding_and_decoding() -> None:
    doc = Document.model_validate(_doc(attachments=[Attachment.from_bytes("a.txt", b"xin chao")]))
    assert decode_message(encode_message(doc)) == doc


def test_a_large_attachment_is_checked_a_chunk_at_a_time_with_the_same_verdicts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import base64
    import os

    from pydantic import ValidationError

    monkeypatch.setattr("schemas.document.CHECK_WHOLE_UP_TO", 100)
    monkeypatch.setattr("schemas.document.CHECK_CHUNK_CHARS", 8)  # 6 bytes a chunk
    raw = os.urandom(1000)
    good = Attachment.from_bytes("a.pdf", raw).model_dump()
    assert Attachment.model_validate(good).content() == raw

    def refused(**change: object) -> str:
        with pytest.raises(ValidationError) as err:
            Attachment.model_validate({**good, **change})
        return str(err.value)

    data = str(good["data"])
    assert "size is 999" in refused(size=999)
    assert "sha256 is " + "0" * 64 in refused(sha256="0" * 64)
    # a character outside the alphabet, or padding in the middle: refused as base64, as a
    # whole decode refuses them, wherever the chunk boundaries fall
    assert "not valid base64" in refused(data=data[:500] + "!" + data[501:])
    padded_middle = base64.b64encode(raw[:3]).decode() + "QQ==" + base64.b64encode(raw[3:]).decode()
    assert "not valid base64" in refused(data=padded_middle)


def test_checking_a_large_attachment_never_holds_its_decoded_bytes_whole() -> None:
    import os
    import tracemalloc

    att = Attachment.from_bytes("scan.pdf", os.urandom(12 * 1024 * 1024))
    tracemalloc.start()
    try:
        att._data_matches_size_and_digest()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # a chunk's text (1 MiB, and its copy as bytes) and its 768 KiB decoded, not 12 MiB whole
    assert peak < 4 * 1024 * 1024, peak
