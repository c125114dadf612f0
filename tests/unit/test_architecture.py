"""Dependencies point inward (DESIGN §6): a walk over the imports fails on a violation.

- ``schemas`` imports nothing of the project and nothing but pydantic, the standard library and
  pybase64 (a faster base64 decoder for attachments);
- ``relay/domain`` (pure rules) imports neither pika nor SQLAlchemy (nor psycopg);
- ``adapters`` never imports ``relay``;
- ``relay`` never imports ``lienthong`` (the console script, which composes everything);
- ``adapters`` and ``schemas`` import of ``lienthong`` only its shared leaves (like ``relay``);
- nothing in ``relay/worker`` imports upward: neither the console script's commands
  (``relay.cli``, ``relay.console``, ``relay.setup``) nor, below the daemon's composition root,
  the root and what it composes (``relay.worker.main``, ``.supervisor``, ``.preload``,
  ``.loop``); its pure bookkeeping (acks, confirms, intake rules, partition) imports neither pika
  nor SQLAlchemy;
- engines and broker connections are built in composition roots (the relay daemon's
  ``relay/worker/main.py``, the console script's commands) and in the few edges that reconnect
  (:data:`MAY_BUILD` says which and why), never inside the services they are handed to.
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


#: What sits above ``relay/worker``: the console script's commands, which compose the daemon.
ABOVE_THE_WORKER = ("relay.cli", "relay.console", "relay.setup")
#: The daemon's composition root and what it composes: only they import these.
WORKER_ROOTS = {
    "relay.worker.main": {"relay/worker/supervisor.py", "relay/worker/preload.py"},
    "relay.worker.supervisor": set(),
    "relay.worker.preload": set(),
    "relay.worker.loop": {"relay/worker/main.py"},
}
#: The worker's pure bookkeeping: no broker or database library.
WORKER_PURE = ("acks", "confirms", "intake", "partition")


def dotted_imports(source: str, package: str) -> Iterator[tuple[int, str]]:
    """(line, dotted module) of every import in ``source``, relative ones resolved in
    ``package`` (the dotted name of the module's package)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                names = [module] if node.module else [f"{module}.{a.name}" for a in node.names]
                for name in names:
                    yield node.lineno, name
            elif node.module:
                yield node.lineno, node.module
                for alias in node.names:  # ``from relay.worker import loop``
                    yield node.lineno, f"{node.module}.{alias.name}"


def worker_upward_imports(root: Path) -> list[str]:
    found = []
    for path in sorted((root / "relay/worker").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        package = ".".join(path.relative_to(root).parent.parts)
        for line, module in dotted_imports(path.read_text(encoding="utf-8"), package):
            above = any(module == m or module.startswith(m + ".") for m in ABOVE_THE_WORKER)
            importers = WORKER_ROOTS.get(module)
            if above or (importers is not None and rel not in importers):
                found.append(f"{rel}:{line} imports {module}")
            if path.stem in WORKER_PURE and module.split(".")[0] in {
                "pika",
                "sqlalchemy",
                "psycopg",
            }:
                found.append(f"{rel}:{line} imports {module} (pure bookkeeping)")
    return found


def test_nothing_in_the_relay_worker_imports_upward() -> None:
    assert worker_upward_imports(ROOT) == []


@pytest.mark.parametrize(
    ("where", "source"),
    [
        ("batching.py", "from relay.cli import relay\n"),
        ("sweep.py", "def f():\n    from relay.worker.main import run_relay\n"),
        ("publishing.py", "from . import loop\n"),
        ("outboxes.py", "from relay.worker import supervisor\n"),
        ("intake.py", "import pika\n"),
    ],
)
def test_an_upward_import_in_the_relay_worker_is_reported(
    tmp_path: Path, where: str, source: str
) -> None:
    (tmp_path / "relay/worker").mkdir(parents=True)
    (tmp_path / "relay/worker" / where).write_text(source)
    found = worker_upward_imports(tmp_path)
    assert found and all(f.startswith(f"relay/worker/{where}:") for f in found), found


#: Modules of ``lienthong`` that the relay and the adapters share and that import nothing of
#: the project but its error hierarchy (leaves placed in the top package; checked below).
SHARED_LEAVES = {"lienthong.monitoring"}


def full_imports(source: str) -> Iterator[tuple[int, str]]:
    """(line, dotted module) of every absolute import in ``source``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.lineno, node.module


@pytest.mark.parametrize("folder", ["relay", "adapters", "schemas"])
def test_nothing_below_the_console_script_imports_it(folder: str) -> None:
    """``lienthong`` composes the relay and the adapters; only its shared leaves point down."""
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for line, module in full_imports(path.read_text(encoding="utf-8")):
            if module.split(".")[0] == "lienthong" and module not in SHARED_LEAVES:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert found == []


@pytest.mark.parametrize("leaf", sorted(SHARED_LEAVES))
def test_a_shared_leaf_of_the_top_package_imports_nothing_of_the_project(leaf: str) -> None:
    """Nothing but the error hierarchy at the bottom (``schemas.errors``)."""
    path = ROOT / (leaf.replace(".", "/") + ".py")
    project = {"lienthong", "relay", "adapters", "schemas"}
    imported = [m for _, m in full_imports(path.read_text()) if m.split(".")[0] in project]
    assert [m for m in imported if m != "schemas.errors"] == []


#: Calls that build an engine or a broker connection.
BUILDERS = {"make_engine", "create_engine", "monitoring_engine"}
BUILDERS |= {"BlockingConnection", "SelectConnection", "RelayConnection"}
ANY = frozenset(BUILDERS)
#: Where engines and connections may be built (a path, or a folder ending in ``/``), and which.
#: Everything else receives them: the daemon's services (relay loop, retry workers, periodic
#: jobs, directory publisher, federation links, metrics) get theirs from its composition root.
MAY_BUILD: dict[str, frozenset[str]] = {
    # the relay daemon's composition root
    "relay/worker/main.py": ANY,
    # the loop opens a new connection each time it reconnects
    "relay/worker/lifecycle.py": frozenset({"RelayConnection"}),
    # the blocking broker edge of the retry workers, the jobs and the directory publisher
    "relay/retry/amqp.py": frozenset({"BlockingConnection"}),
    # the builders themselves
    "relay/db/engine.py": frozenset({"create_engine", "make_engine"}),
    # the console script's commands: each is the composition root of what it runs
    "relay/cli/": ANY,
    "relay/console/cli.py": ANY,
    "relay/setup.py": ANY,
    # one short-lived engine per directory command (``engine_for``)
    "relay/directory/db.py": frozenset({"make_engine"}),
    # the other hub: the `federation` commands check it, each link's pump reconnects to it
    "relay/federation/service.py": frozenset({"BlockingConnection"}),
    "relay/federation/link.py": frozenset({"BlockingConnection"}),
    # /healthz: the broker check opens its one kept connection (again when it was lost)
    "relay/metrics/health.py": frozenset({"BlockingConnection"}),
    # the adapter's broker thread reconnects
    "adapters/broker.py": frozenset({"BlockingConnection"}),
}


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


def may_build(rel: str, name: str) -> bool:
    return any(
        name in allowed and (rel == where or (where.endswith("/") and rel.startswith(where)))
        for where, allowed in MAY_BUILD.items()
    )


def build_violations(*folders: str) -> list[str]:
    found = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            found += [
                f"{rel}:{line} builds {name}"
                for line, name in builds(path.read_text(encoding="utf-8"))
                if not may_build(rel, name)
            ]
    return found


def test_engines_and_connections_are_built_in_composition_roots_only() -> None:
    assert build_violations("relay", "adapters") == []


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
