"""The SDK's headers: signed parameters, HMAC, unpadded ``hash-file`` (hypothesis properties)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.vxp.answers import BadRequest, BadSignature
from adapters.vxp.package import package_from_text
from adapters.vxp.protocol import (
    hash_file_matches,
    parse_date,
    parse_int,
    parse_to,
    sdk_hex,
    signature,
    verify,
)

SECRET = "bí-mật của hệ thống"
SYSTEM = "dms-h41"

# Parameter names as clients write them: letters, digits and dashes (HTTP token characters).
names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True).filter(
    lambda n: n.lower() not in ("systemid",)
)
values = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=40)


def signed_request(
    params: dict[str, str], *, secret: str = SECRET, system: str = SYSTEM
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers as the SDK sends them (raw bytes, as the ASGI server hands them over)."""
    signed = {"XroadVnpt-systemid": system}
    signed.update({f"XroadVnpt-{k}": v for k, v in params.items()})
    text = json.dumps(signed, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    mac = hmac.new(secret.encode("utf-8"), text, hashlib.sha256).hexdigest().encode()
    headers = [(f"xroadvnpt-{k}".lower().encode(), v.encode("utf-8")) for k, v in signed.items()]
    headers += [(b"xroadvnpt-sign-header", text), (b"xroadvnpt-hash-header", mac)]
    return headers, text


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(names, values, max_size=12))
def test_every_signed_parameter_set_verifies_and_reads_back_case_insensitively(
    params: dict[str, str],
) -> None:
    headers, _ = signed_request(params)
    call = verify(headers, secret=SECRET, systemid=SYSTEM)
    last: dict[str, str] = {}
    for name, value in params.items():  # a later duplicate in another case wins, as in JSON
        last[name.lower()] = value
    for name, value in last.items():
        expected = value.strip() or None
        assert call.get(name) == expected
        assert call.get(name.upper()) == expected
        assert call.get(f"XroadVnpt-{name}") == expected
    assert call.systemid == SYSTEM


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(names, values, max_size=8), st.data())
def test_any_change_to_the_signed_text_is_refused(
    params: dict[str, str], data: st.DataObject
) -> None:
    headers, text = signed_request(params)
    position = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    flipped = bytes([text[position] ^ data.draw(st.integers(min_value=1, max_value=255))])
    tampered = text[:position] + flipped + text[position + 1 :]
    headers = [(k, tampered if k == b"xroadvnpt-sign-header" else v) for k, v in headers]
    with pytest.raises((BadSignature, BadRequest)):
        verify(headers, secret=SECRET, systemid=SYSTEM)


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=30).filter(lambda s: s != SECRET))
def test_a_wrong_secret_is_refused_saying_so(other: str) -> None:
    headers, _ = signed_request({"docId": "1"}, secret=other)
    with pytest.raises(BadSignature, match="wrong secret"):
        verify(headers, secret=SECRET, systemid=SYSTEM)


def test_another_system_id_is_refused_naming_both() -> None:
    headers, _ = signed_request({"docId": "1"}, system="dms-x")
    with pytest.raises(BadSignature, match="'dms-x' is not the one this adapter serves"):
        verify(headers, secret=SECRET, systemid=SYSTEM)


def test_an_unsigned_request_is_refused() -> None:
    with pytest.raises(BadSignature, match="not signed"):
        verify([(b"xroadvnpt-docid", b"1")], secret=SECRET, systemid=SYSTEM)


def test_the_real_signed_set_of_vxp_md_reads_as_expected() -> None:
    text = (
        b'{"XroadVnpt-systemid":"dms-g22","XroadVnpt-servicetype":"eDoc",'
        b'"XroadVnpt-messagetype":"edoc","XroadVnpt-hash-file":"f1ebebfb",'
        b'"XroadVnpt-from":"000.00.00.G22","XroadVnpt-to":"\\"000.00.00.H29\\"",'
        b'"XroadVnpt-timestamp":"30112026T121727+0530",'
        b'"XroadVnpt-Content-Type":"application/octet-stream"}'
    )
    headers = [
        (b"xroadvnpt-sign-header", text),
        (b"xroadvnpt-hash-header", signature(text, "s3cret").upper().encode()),
    ]
    call = verify(headers, secret="s3cret", systemid="dms-g22")
    assert call.get("from") == "000.00.00.G22"
    assert parse_to(call.get("to")) == ["000.00.00.H29"]
    assert call.get("content-type") == "application/octet-stream"


def test_hash_file_is_compared_in_the_sdks_unpadded_hex() -> None:
    # Find a package whose digest has a byte below 0x10, so the two forms differ.
    data = next(
        d
        for d in (str(i).encode() for i in range(1000))
        if any(b < 16 for b in hashlib.sha256(d).digest())
    )
    digest = hashlib.sha256(data).digest()
    assert len(sdk_hex(digest)) < 64
    assert hash_file_matches(sdk_hex(digest), data)
    assert hash_file_matches(digest.hex(), data)  # plain hex is accepted too
    assert hash_file_matches(sdk_hex(digest).upper(), data)
    assert not hash_file_matches(sdk_hex(digest), data + b" ")


@given(st.binary(max_size=200))
def test_sdk_hex_drops_only_leading_zeros_of_each_byte(data: bytes) -> None:
    digest = hashlib.sha256(data).digest()
    rendered = sdk_hex(digest)
    assert rendered == "".join(hex(b)[2:] for b in digest)
    assert 32 <= len(rendered) <= 64
    assert hash_file_matches(rendered, data)


@pytest.mark.parametrize(
    ("value", "codes"),
    [
        ('["000.00.00.H41"]', ["000.00.00.H41"]),
        ('"\\"000.00.00.H29\\""', ["000.00.00.H29"]),
        ('"000.00.00.H29"', ["000.00.00.H29"]),
        ("000.00.00.H29,000.00.00.H41", ["000.00.00.H29", "000.00.00.H41"]),
        (None, []),
        ("", []),
    ],
)
def test_to_is_read_in_each_form_clients_send(value: str | None, codes: list[str]) -> None:
    assert parse_to(value) == codes


def test_dates_and_paging_say_what_is_wrong() -> None:
    assert parse_date("fromDate", "30/11/2026 08:00:00") is not None
    with pytest.raises(BadRequest, match="fromDate: expected dd/MM/yyyy"):
        parse_date("fromDate", "2026-11-30")
    assert parse_int("pageSize", None, 50, low=1, high=100) == 50
    with pytest.raises(BadRequest, match="pageSize: expected a whole number"):
        parse_int("pageSize", "ten", 50, low=1, high=100)


def test_the_package_is_taken_as_xml_or_as_base64_text_of_xml() -> None:
    xml = b'<?xml version="1.0"?><edXML/>'
    assert package_from_text(xml) == xml
    assert package_from_text(b"\xef\xbb\xbf" + xml) == b"\xef\xbb\xbf" + xml
    assert package_from_text(base64.encodebytes(xml)) == xml
    with pytest.raises(BadRequest, match="no package"):
        package_from_text(b"")
    with pytest.raises(BadRequest, match="neither an edXML file nor base64"):
        package_from_text(b"{}")
