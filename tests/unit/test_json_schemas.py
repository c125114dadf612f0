"""The committed JSON Schemas (``schemas/json/``) match the pydantic models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas.export import MODELS, expected_files, file_name, json_schema

COMMITTED = Path(__file__).parents[2] / "schemas" / "json"
REGENERATE = "run `make schemas` (python -m schemas.export schemas/json) and commit the result"


def test_exactly_one_committed_schema_per_wire_message() -> None:
    committed = sorted(p.name for p in COMMITTED.glob("*.schema.json"))
    assert committed == sorted(expected_files()), REGENERATE


@pytest.mark.parametrize("name", sorted(expected_files()))
def test_the_committed_schema_has_not_drifted_from_the_model(name: str) -> None:
    path = COMMITTED / name
    assert path.exists(), f"{path} is missing: {REGENERATE}"
    assert path.read_text(encoding="utf-8") == expected_files()[name], (
        f"{path} differs from the model: {REGENERATE}"
    )


@pytest.mark.parametrize("schema", sorted(MODELS))
def test_field_names_are_the_wire_names_and_the_kind_is_fixed(schema: str) -> None:
    generated = json_schema(schema, MODELS[schema])
    assert "schema" in generated["properties"]  # the alias, not the Python name schema_
    assert "schema_" not in generated["properties"]
    assert generated["properties"]["schema"].get("const") == schema


def test_file_names_follow_the_schema_value() -> None:
    assert file_name("lienthong.document/1") == "lienthong.document-1.schema.json"


def test_committed_files_are_valid_json() -> None:
    for path in COMMITTED.glob("*.schema.json"):
        assert json.loads(path.read_text(encoding="utf-8"))["$schema"].startswith("https://")
