"""One error hierarchy: every exception class the project defines derives from
:class:`schemas.errors.LienthongError` (a built-in base such as ``ValueError`` may come
second, where callers or pydantic catch it)."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.errors import LienthongError as RelayRoot
from schemas.errors import LienthongError

ROOT = Path(__file__).parents[2]
PACKAGES = ("schemas", "relay", "adapters", "lienthong")
#: Files that run something when imported (Alembic's environment) are only parsed.
NOT_IMPORTED = {"relay/db/migrations/env.py"}


def defined_classes() -> Iterator[tuple[str, str]]:
    """(module, class name) of every top-level or nested class defined in the packages."""
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in NOT_IMPORTED or "/migrations/versions/" in rel:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            module = module.removesuffix(".__init__")
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.bases:
                    yield module, node.name


def exception_classes() -> list[type[BaseException]]:
    found = []
    for module, name in defined_classes():
        cls = getattr(importlib.import_module(module), name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return found


def test_the_relay_and_the_schemas_share_one_root() -> None:
    assert RelayRoot is LienthongError


def test_the_walk_finds_the_exceptions_of_every_layer() -> None:
    names = {cls.__qualname__ for cls in exception_classes()}
    # one of each package: the walk must not silently find nothing
    assert {"InvalidMessage", "EdxmlError", "Unroutable", "AddressError"} <= names


@pytest.mark.parametrize("cls", exception_classes(), ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_every_exception_the_project_defines_derives_from_the_root(
    cls: type[BaseException],
) -> None:
    assert issubclass(cls, LienthongError), [b.__name__ for b in cls.__mro__]
