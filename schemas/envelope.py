"""Encoding and decoding of wire messages: JSON bodies told apart by their ``schema`` field."""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter, ValidationError

from schemas.document import Document
from schemas.errors import InvalidInput
from schemas.receipt import Receipt, Receipts
from schemas.status import Status

WireMessage = Document | Status | Receipt

_MODELS: dict[str, type[Document] | type[Status] | type[Receipt]] = {
    "lienthong.document/1": Document,
    "lienthong.status/1": Status,
    "lienthong.receipt/1": Receipt,
}

#: AMQP ``type`` property for each model.
MESSAGE_TYPES: dict[type[Any], str] = {Document: "document", Status: "status", Receipt: "receipt"}

_BY_TYPE: dict[str, type[Document] | type[Status] | type[Receipt]] = {
    "document": Document,
    "status": Status,
    "receipt": Receipt,
}


class InvalidMessage(InvalidInput, ValueError):
    """A body that is not a valid wire message; ``str()`` says what and where, for a person."""


def format_validation_error(e: ValidationError) -> str:
    """One line per problem: ``field.path: message (got value)``."""
    lines = []
    for err in e.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(message)"
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        if isinstance(value, dict | list):
            lines.append(f"{loc}: {msg}")
        else:
            lines.append(f"{loc}: {msg} (got {shown})")
    return "; ".join(lines)


def decode_message(body: bytes | str, expect: str | None = None) -> WireMessage:
    """Parse a JSON body into its model, chosen by its ``schema`` field.

    ``expect`` ("document", "status", "receipt") additionally requires that kind.
    Raises InvalidMessage with a reason a person can act on.
    """
    fast = _BY_TYPE.get(expect) if expect is not None else None
    if fast is not None:
        # The common case in one pass (pydantic parses and validates the JSON itself). Only
        # ``schema`` by its alias is accepted here and it must be present, so anything this
        # accepts the path below accepts too, with the same result; anything else (invalid,
        # or merely unusual) goes down that path, which says what is wrong exactly as before.
        try:
            message = fast.model_validate_json(body, by_alias=True, by_name=False)
        except ValidationError:
            pass
        else:
            if "schema_" in message.model_fields_set:
                return message
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidMessage(f"body is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise InvalidMessage("body must be a JSON object with a 'schema' field")
    schema = data.get("schema")
    model = _MODELS.get(schema) if isinstance(schema, str) else None
    if model is None:
        known = ", ".join(_MODELS)
        raise InvalidMessage(
            f"schema: unknown or missing schema {schema!r}; expected one of {known}"
        )
    if expect is not None and MESSAGE_TYPES[model] != expect:
        raise InvalidMessage(
            f"schema: {schema!r} is a {MESSAGE_TYPES[model]}, but this message is a {expect}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise InvalidMessage(format_validation_error(e)) from e


def split_receipts(body: bytes | str) -> list[Receipt]:
    """The receipts of a ``lienthong.receipts/1`` body (AMQP ``type`` ``receipts``), each to be
    handled as if it had come alone. Raises InvalidMessage with a reason a person can act on."""
    try:
        return Receipts.model_validate_json(body, by_alias=True, by_name=False).receipts
    except ValidationError as e:
        raise InvalidMessage(format_validation_error(e)) from e


def encode_message(message: WireMessage) -> bytes:
    """The JSON body of ``message`` (UTF-8, field ``schema`` first)."""
    return message.model_dump_json(by_alias=True, exclude_none=False).encode("utf-8")


def message_type(message: WireMessage) -> str:
    return MESSAGE_TYPES[type(message)]


_ANY = TypeAdapter(WireMessage)
