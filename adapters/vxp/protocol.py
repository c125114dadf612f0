"""The SDK's request headers: signed parameters, HMAC verification, ``hash-file``, dates.

Every parameter of a call travels as ``XroadVnpt-<name>``; the signed set is the JSON object
text in ``XroadVnpt-sign-header`` and ``XroadVnpt-hash-header`` is the lower-case hex
HMAC-SHA256 of exactly those bytes, keyed with the UTF-8 bytes of the shared secret. Parameters
are read from that JSON only (a loose header is unsigned), with names taken case-insensitively
and the ``XroadVnpt-`` prefix dropped: ``docId``, ``docid`` and ``XroadVnpt-DocId`` are one name.
Keys a call does not use (the SDK never clears its parameter map) are ignored, and the
timestamp is not checked for freshness (the SDK fixes it when its client object is created).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from adapters.vxp.answers import BadRequest, BadSignature

PREFIX = "xroadvnpt-"
SIGN_HEADER = "xroadvnpt-sign-header"
SIGN_KEYS_HEADER = "xroadvnpt-sign-header-key"
HASH_HEADER = "xroadvnpt-hash-header"
#: ``fromDate`` / ``toDate`` of ``getReceivedEdocList`` (the axis's Java ``dd/MM/yyyy HH:mm:ss``).
DATE_FORMATS = ("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y")
#: The axis runs on Vietnam time; dates given and shown are read in it.
ICT = dt.timezone(dt.timedelta(hours=7), "ICT")


def param_name(name: str) -> str:
    """``XroadVnpt-docId`` -> ``docid``: the key parameters are looked up by."""
    lowered = name.strip().lower()
    return lowered.removeprefix(PREFIX)


@dataclass(frozen=True)
class SignedCall:
    """The verified parameters of one call (names normalised by :func:`param_name`)."""

    params: Mapping[str, str]

    def get(self, name: str) -> str | None:
        value = self.params.get(param_name(name))
        if value is None:
            return None
        value = value.strip()
        return value or None

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise BadRequest(
                f"the parameter XroadVnpt-{name} is missing from the signed headers "
                f"(XroadVnpt-sign-header); set it in the SDK call"
            )
        return value

    @property
    def systemid(self) -> str | None:
        return self.get("systemid")


def header(raw: Iterable[tuple[bytes, bytes]], name: str) -> bytes | None:
    """The first header called ``name`` (case-insensitive), as the bytes that came."""
    wanted = name.lower().encode("ascii")
    for key, value in raw:
        if key.lower() == wanted:
            return value
    return None


def signature(text: bytes, secret: str) -> str:
    """The HMAC-SHA256 the SDK puts in ``XroadVnpt-hash-header`` (lower-case hex)."""
    return hmac.new(secret.encode("utf-8"), text, hashlib.sha256).hexdigest()


def parse_signed(signed_text: bytes) -> dict[str, str]:
    """The JSON object text of ``XroadVnpt-sign-header`` as normalised parameters."""
    try:
        data = json.loads(signed_text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRequest(
            f"XroadVnpt-sign-header is not a JSON object text in UTF-8 ({e}); the SDK sends "
            '{"XroadVnpt-<name>":"<value>",…}'
        ) from e
    if not isinstance(data, dict):
        raise BadRequest("XroadVnpt-sign-header must be a JSON object of header names and values")
    params: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        params[param_name(str(key))] = text
    return params


def verify(raw: Iterable[tuple[bytes, bytes]], *, secret: str, systemid: str) -> SignedCall:
    """Check the call's signature against ``secret`` and its system id; its parameters.

    Raises :class:`BadSignature` with what to fix when the signed set is missing, the HMAC does
    not match, or the call names another system.
    """
    headers = list(raw)
    signed = header(headers, SIGN_HEADER)
    given = header(headers, HASH_HEADER)
    if signed is None or given is None:
        missing = [
            n
            for n, v in (("XroadVnpt-sign-header", signed), ("XroadVnpt-hash-header", given))
            if v is None
        ]
        raise BadSignature(
            f"the request is not signed: {' and '.join(missing)} missing; use the national "
            "SDK (or sign the XroadVnpt-* headers the same way)"
        )
    expected = signature(signed, secret)
    mac = given.strip().lower()
    if not hmac.compare_digest(expected.encode("ascii"), mac):
        params = _params_or_empty(signed)
        caller = params.get("systemid")
        if caller is not None and caller != systemid:
            raise BadSignature(
                f"system id {caller!r} is not the one this adapter serves ({systemid!r}); "
                "set the system id of the SDK to the one given by the hub's operators"
            )
        raise BadSignature(
            f"wrong secret: XroadVnpt-hash-header does not match the signed headers for system "
            f"id {caller or systemid!r}; set the SDK's secret key to the one given by the "
            "hub's operators"
        )
    params = parse_signed(signed)
    caller = params.get("systemid")
    if caller is not None and caller.strip() != systemid:
        raise BadSignature(
            f"system id {caller!r} is not the one this adapter serves ({systemid!r}); set the "
            "system id of the SDK to the one given by the hub's operators"
        )
    return SignedCall(params)


def _params_or_empty(signed: bytes) -> dict[str, str]:
    try:
        return parse_signed(signed)
    except BadRequest:
        return {}


def sdk_hex(digest: bytes) -> str:
    """Hex as the SDK renders it: each byte without its leading zero (``0e`` -> ``e``)."""
    return "".join(f"{b:x}" for b in digest)


def hash_file_matches(given: str, data: bytes) -> bool:
    """True when ``given`` is the SHA-256 of ``data`` in the SDK's form or in plain hex."""
    return hash_digest_matches(given, hashlib.sha256(data).digest())


def hash_digest_matches(given: str, digest: bytes) -> bool:
    """True when ``given`` is the SHA-256 ``digest`` in the SDK's form or in plain hex."""
    value = given.strip().lower().encode("ascii", "replace")
    return hmac.compare_digest(value, sdk_hex(digest).encode("ascii")) or hmac.compare_digest(
        value, digest.hex().encode("ascii")
    )


def parse_to(value: str | None) -> list[str]:
    """``to``: a JSON text (``["000.00.00.H41"]`` or ``"\\"000.00.00.H29\\""``) or plain codes."""
    if value is None or not value.strip():
        return []
    text = value.strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = text
    if isinstance(data, str):
        data = [c for c in data.replace(";", ",").split(",")]
    if not isinstance(data, list):
        raise BadRequest(f"XroadVnpt-to: expected a JSON list of agency codes, got {value!r}")
    return [str(c).strip().strip('"') for c in data if str(c).strip().strip('"')]


def parse_date(name: str, value: str | None) -> dt.datetime | None:
    """``fromDate``/``toDate`` (``dd/MM/yyyy HH:mm:ss``, Vietnam time) as an aware datetime."""
    if value is None:
        return None
    for fmt in DATE_FORMATS:
        try:
            return dt.datetime.strptime(value.strip(), fmt).replace(tzinfo=ICT)
        except ValueError:
            continue
    raise BadRequest(f"XroadVnpt-{name}: expected dd/MM/yyyy HH:mm:ss, got {value!r}")


def parse_int(name: str, value: str | None, default: int, *, low: int, high: int) -> int:
    """A paging number; absent or empty gives ``default``; out of range is an error."""
    if value is None:
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise BadRequest(f"XroadVnpt-{name}: expected a whole number, got {value!r}") from None
    if not low <= number <= high:
        raise BadRequest(f"XroadVnpt-{name}: expected {low}..{high}, got {number}")
    return number


def show_time(value: dt.datetime) -> str:
    """A time as the SDK's lists show it: ``dd/MM/yyyy HH:mm:ss`` in Vietnam time."""
    return value.astimezone(ICT).strftime("%d/%m/%Y %H:%M:%S")
