"""Dependencies point inward (DESIGN §6): a walk over the imports fails on a violation.

- ``schemas`` imports nothing of the project and nothing but pydantic, the standard library and
  pybase64 (a faster base64 decoder for attachments);
- ``relay/domain`` (pure rules) imports neither pika nor SQLAlchemy (nor psycopg);
- ``adapters`` never imports ``relay``;
- ``relay`` never imports ``lienthong`` (the console script, which composes everything);
- engines and broker connections of the relay daemon are built in its composition root
  (``relay/worker/main.py``) and the loop that reconnects (``relay/worker/loop.py``), never
  inside the services they are handed to (``relay/worker``, ``relay/retry``, ``relay/domain``).
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


#: Modules of ``lienthong`` that the relay and the adapters share and that import nothing of
#: the project themselves (leaves placed in the top package; checked below).
SHARED_LEAVES = {"lienthong.monitoring"}


def full_imports(source: str) -> Iterator[tuple[int, str]]:
    """(line, dotted module) of every absolute import in ``source``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.lineno, node.module


def test_the_relay_never_imports_the_console_script_above_it() -> None:
    found = []
    for path in sorted((ROOT / "relay").rglob("*.py")):
        for line, module in full_imports(path.read_text(encoding="utf-8")):
            if module.split(".")[0] == "lienthong" and module not in SHARED_LEAVES:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert found == []


@pytest.mark.parametrize("leaf", sorted(SHARED_LEAVES))
def test_a_shared_leaf_of_the_top_package_imports_nothing_of_the_project(leaf: str) -> None:
    path = ROOT / (leaf.replace(".", "/") + ".py")
    project = {"lienthong", "relay", "adapters", "schemas"}
    assert [m for _, m in full_imports(path.read_text()) if m.split(".")[0] in project] == []


#: Calls that build an engine or a broker connection.
BUILDERS = {"make_engine", "create_engine", "BlockingConnection", "SelectConnection"}
BUILDERS |= {"RelayConnection"}
#: Where the relay daemon may build them: its composition root, and the loop that opens a new
#: connection each time it reconnects (the retry worker's broker edge does the same).
MAY_BUILD = {"relay/worker/main.py", "relay/worker/loop.py", "relay/retry/amqp.py"}


def builds(source: str) -> Iterator[tuple[int, str]]:
    """(line, name) of every call in ``source`` to one of :data:`BUILDERS`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            f = node.func
            name = (
                f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            )
            if name in BUILDERS:
                yield node.lineno, name


def build_violations(*folders: str) -> list[str]:
    found = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel not in MAY_BUILD:
                found += [f"{rel}:{line} builds {name}" for line, name in builds(path.read_text())]
    return found


def test_the_relay_daemons_engines_and_connections_are_built_in_its_composition_root() -> None:
    assert build_violations("relay/worker", "relay/retry", "relay/domain") == []


def test_the_build_walk_finds_engines_and_connections() -> None:
    source = "e = make_engine(url)\nc = pika.BlockingConnection(p)\nx = other(1)\n"
    assert list(builds(source)) == [(1, "make_engine"), (2, "BlockingConnection")]


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
