"""Write the JSON Schemas of the wire messages, for DMS vendors who do not use Python.

``python -m schemas.export schemas/json`` (``make schemas``) writes one file per message kind,
named after its ``schema`` value (``lienthong.document/1`` -> ``lienthong.document-1.schema.json``).
The committed files are checked against the models by ``tests/unit/test_json_schemas.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.document import DOCUMENT_SCHEMA, Document
from schemas.receipt import RECEIPT_SCHEMA, RECEIPTS_SCHEMA, Receipt, Receipts
from schemas.status import STATUS_SCHEMA, Status

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

MODELS: dict[str, type[BaseModel]] = {
    DOCUMENT_SCHEMA: Document,
    STATUS_SCHEMA: Status,
    RECEIPT_SCHEMA: Receipt,
    RECEIPTS_SCHEMA: Receipts,
}


def file_name(schema: str) -> str:
    """``lienthong.document/1`` -> ``lienthong.document-1.schema.json``."""
    return schema.replace("/", "-") + ".schema.json"


def json_schema(schema: str, model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of ``model`` as messages carry it (field names by alias)."""
    body = model.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": JSON_SCHEMA_DIALECT, **body}


def render(schema: str, model: type[BaseModel]) -> str:
    return json.dumps(json_schema(schema, model), ensure_ascii=False, indent=2) + "\n"


def expected_files() -> dict[str, str]:
    """File name -> content, for every wire message kind."""
    return {file_name(schema): render(schema, model) for schema, model in MODELS.items()}


def export(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in expected_files().items():
        path = directory / name
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("directory", type=Path, help="where to write the *.schema.json files")
    args = parser.parse_args(argv)
    for path in export(args.directory):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
