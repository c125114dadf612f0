"""Text from outside that PostgreSQL (and a person) can hold: NUL and invalid UTF-8 escaped.

AMQP short strings and header values are bytes on the wire: pika hands over ``str`` when they
are valid UTF-8 and ``bytes`` otherwise, and a valid string may still hold NUL characters,
which PostgreSQL ``text`` and ``jsonb`` refuse. One such property must not stop an agency's
flow (issue 12 item 1): the relay refuses the message with a reason naming the property, stores
and sends only the *safe* form (:func:`safe_text`: ``\\x00`` for a NUL, ``\\xff`` for each byte
that is not UTF-8), and keeps the exact bytes losslessly (:func:`raw_bytes`, base64) beside
the stored rejection. Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
from collections.abc import Mapping
from typing import Any

NUL = "\x00"


def flaw(name: str, value: object) -> str | None:
    """Why property ``name`` cannot be taken as text, or None when it can."""
    if isinstance(value, bytes):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return f"{name}: the AMQP property is not valid UTF-8 ({safe_text(value)!r}); send text"
        value = value.decode("utf-8")
    if isinstance(value, str) and (NUL in value or _has_surrogate(value)):
        return (
            f"{name}: the AMQP property contains a NUL character ({safe_text(value)!r}); "
            "remove control characters"
        )
    return None


def _has_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def safe_text(value: str | bytes) -> str:
    """``value`` as text PostgreSQL accepts: a NUL becomes ``\\x00``, a byte that is not UTF-8
    ``\\xNN`` (readable, not reversible: :func:`raw_bytes` keeps the exact value)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "backslashreplace")
    elif _has_surrogate(value):
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return value.replace(NUL, "\\x00")


def optional_text(value: object) -> str | None:
    """:func:`safe_text` of a property or header value (another type as ``str()`` shows it),
    None for None."""
    if value is None:
        return None
    return safe_text(value if isinstance(value, str | bytes) else str(value))


def is_safe(value: object) -> bool:
    return not isinstance(value, bytes) and flaw("", value) is None


def raw_bytes(value: str | bytes) -> str:
    """The exact bytes of ``value`` (UTF-8 for text), base64: what :func:`safe_text` changed."""
    data = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
    return base64.b64encode(data).decode("ascii")


def json_safe(value: Any) -> Any:
    """An AMQP value (header tables, bytes, datetimes, decimals) as JSON PostgreSQL's ``jsonb``
    accepts: every string and key made safe."""
    if isinstance(value, Mapping):
        return {safe_text(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, bytes | str):
        return safe_text(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if value is None or isinstance(value, int | float | bool):
        return value
    return safe_text(str(value))


def raw_of_unsafe(values: Mapping[str, Any]) -> dict[str, str]:
    """For each string or bytes value that :func:`safe_text` would change, its exact bytes."""
    return {
        name: raw_bytes(v)
        for name, v in values.items()
        if isinstance(v, str | bytes) and not is_safe(v)
    }


def has_nul_in_json_strings(value: Any) -> bool:
    """Does a decoded JSON value hold a NUL in any string or key (``\\u0000`` in the text)?"""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(NUL in k or has_nul_in_json_strings(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul_in_json_strings(v) for v in value)
    return False
