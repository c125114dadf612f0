"""The committed OpenAPI description of the SDK API is the one the code serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapters.vxp.app import ENDPOINTS
from adapters.vxp.openapi import EXAMPLE_PREFIX, openapi_document

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "vxp-openapi.json"


def _calls(document: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """What a vendor codes against: per path and method, the summary, headers and body (the
    rest of the document varies with the FastAPI version that renders it)."""
    return {
        (path, method): (op.get("summary"), op.get("parameters"), op.get("requestBody"))
        for path, methods in document["paths"].items()
        for method, op in methods.items()
    }


def test_the_committed_description_is_current() -> None:
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    generated = json.loads(json.dumps(openapi_document()))
    assert _calls(committed) == _calls(generated), (
        "regenerate it: python -m adapters.vxp.openapi > docs/vxp-openapi.json"
    )


def test_it_describes_every_call_of_the_sdk_with_its_signed_headers() -> None:
    paths = openapi_document()["paths"]
    assert {p.removeprefix(EXAMPLE_PREFIX) for p in paths} == set(ENDPOINTS)
    for path, methods in paths.items():
        assert set(methods) == {"get", "post"}, path
        names = {p["name"] for p in methods["post"]["parameters"]}
        assert {"XroadVnpt-sign-header", "XroadVnpt-hash-header"} <= names
