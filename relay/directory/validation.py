"""Checks on one agency's fields; messages name the field and the value."""

from __future__ import annotations

import re

from relay.errors import InvalidInput
from schemas import validate_agency_code

MAX_NAME_LENGTH = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def code_problem(value: str) -> str | None:
    """Why ``value`` is not an acceptable agency code, or None when it is."""
    try:
        validate_agency_code(value)
    except ValueError as e:
        return str(e)
    return None


def name_problem(value: str) -> str | None:
    if not value.strip():
        return "must not be empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"is longer than {MAX_NAME_LENGTH} characters"
    if _CONTROL.search(value):
        return "contains control characters"
    return None


def check_code(field: str, value: str) -> str:
    problem = code_problem(value)
    if problem is not None:
        raise InvalidInput(f"{field}: {problem}")
    return value


def check_name(field: str, value: str) -> str:
    problem = name_problem(value)
    if problem is not None:
        raise InvalidInput(f"{field}: {value!r} {problem}")
    return value.strip()
