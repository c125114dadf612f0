"""Dependencies point inward (DESIGN §6): a walk over the imports fails on a violation.

- ``schemas`` imports nothing of the project and nothing but pydantic, the standard library and
  pybase64 (a faster base64 decoder for attachments);
- ``relay/domain`` (pure rules) imports neither pika nor SQLAlchemy (nor psycopg);
- ``adapters`` never imports ``relay``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SCHEMAS_MAY_IMPORT = set(sys.stdlib_module_names) | {
    "pydantic",
    "pydantic_core",
    "pybase64",
    "schemas",
}


def imports(source: str, package: str) -> Iterator[tuple[int, str]]:
    """(line, absolute top-level module) for every import in ``source`` (relative ones resolve
    to ``package``, whose top level they share)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                yield node.lineno, package.split(".")[0]
            elif node.module:
                yield node.lineno, node.module.split(".")[0]


def violations(
    folder: str, forbidden: set[str] | None = None, allowed: set[str] | None = None
) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        rel = path.relative_to(ROOT)
        package = ".".join(rel.with_suffix("").parts)
        for line, module in imports(path.read_text(encoding="utf-8"), package):
            bad = (forbidden is not None and module in forbidden) or (
                allowed is not None and module not in allowed
            )
            if bad:
                found.append(f"{rel}:{line} imports {module}")
    return found


def test_schemas_depend_on_pydantic_pybase64_and_the_standard_library_only() -> None:
    assert violations("schemas", allowed=SCHEMAS_MAY_IMPORT) == []


def test_the_relays_domain_rules_import_no_broker_or_database_library() -> None:
    assert violations("relay/domain", forbidden={"pika", "sqlalchemy", "psycopg", "httpx"}) == []


def test_adapters_never_import_the_relay() -> None:
    assert violations("adapters", forbidden={"relay"}) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import pika\n", "pika"),
        ("from sqlalchemy.orm import Session\n", "sqlalchemy"),
        ("def f():\n    from relay.config import Settings\n", "relay"),  # nested imports too
        ("from . import helpers\n", "adapters"),
    ],
)
def test_the_walk_finds_every_kind_of_import(source: str, expected: str) -> None:
    assert expected in {module for _, module in imports(source, "adapters.folder")}


def test_a_violation_is_reported_with_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "adapters").mkdir()
    (tmp_path / "adapters" / "bad.py").write_text("import os\nfrom relay.errors import X\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert violations("adapters", forbidden={"relay"}) == ["adapters/bad.py:2 imports relay"]
