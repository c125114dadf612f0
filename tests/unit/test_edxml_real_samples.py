"""Issue 13: every real third-party package beside the clone is read as its README expects.

The files live in ``../shared/samples/real/`` (relative to the repository's root; CI has them
beside the clone). They are third-party files and never copied into this repository. Each
README row says what a conformant reader does: ``accept`` (with warnings where noted),
``refuse`` with a reason naming the line (not well-formed), or, for an undeclared well-known
prefix, refuse naming it *or* recover leniently with a warning (lienthong recovers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.edxml import render_document, render_status
from adapters.edxml.check import Verdict, check_file
from adapters.edxml.parse import read_package
from schemas import Document, decode_message, encode_message

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "samples" / "real"
ABSENT = f"{REAL} is absent: the real third-party samples sit beside the clone (CI has them)"


@dataclass(frozen=True)
class Row:
    file: str
    expect: str


def _rows() -> dict[str, Row]:
    """The README table's rows: file -> its ``expect`` column."""
    rows = {}
    for line in (REAL / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 6 and cells[0].startswith("`") and cells[0].endswith(".edxml`"):
            rows[cells[0].strip("`")] = Row(cells[0].strip("`"), cells[-1])
    return rows


def _files() -> list[str]:
    return sorted(p.name for p in REAL.glob("*.edxml")) if REAL.is_dir() else []


@pytest.fixture(scope="module")
def rows() -> dict[str, Row]:
    if not REAL.is_dir():
        pytest.skip(ABSENT)
    return _rows()


def test_the_real_samples_are_there_and_each_has_a_readme_row(rows: dict[str, Row]) -> None:
    assert _files(), f"no *.edxml in {REAL}"
    assert sorted(rows) == _files()


@pytest.mark.parametrize("name", _files() or [pytest.param("-", marks=pytest.mark.skip(ABSENT))])
def test_a_real_package_is_read_as_its_readme_row_expects(name: str, rows: dict[str, Row]) -> None:
    expect = rows[name].expect
    verdict = check_file(REAL / name)
    if expect.startswith("accept"):
        assert verdict.accepted, verdict.reasons
        assert verdict.kind == "document"
        if "warn" in expect:
            assert verdict.warnings, f"{name}: the README expects warnings ({expect})"
        _expected_warnings(name, expect, verdict)
    elif "refuse" in expect and "recover leniently" in expect:
        # An undeclared prefix: lienthong recovers, saying which prefix and on which line.
        assert verdict.accepted, verdict.reasons
        assert any(re.search(r"line \d+: the prefix \w+: is used", w) for w in verdict.warnings)
    elif "semantic refuse" in expect:
        assert not verdict.accepted
        assert verdict.kind == "document"  # read far enough to tell
        assert any("is not a date in a known form" in w for w in verdict.warnings)
        assert not any("well-formed" in r for r in verdict.reasons), verdict.reasons
        assert any("is not an agency code" in r for r in verdict.reasons)
        assert any("not valid base64" in r for r in verdict.reasons)
    elif "refuse" in expect:
        assert not verdict.accepted
        assert any(re.search(r"not well-formed XML: .*line \d+", r) for r in verdict.reasons)
    else:
        pytest.fail(f"{name}: unknown expectation {expect!r}")


def _expected_warnings(name: str, expect: str, verdict: Verdict) -> None:
    text = "\n".join(verdict.warnings)
    if "no OrganName" in expect:
        assert "no OrganName" in text
    if "not zipped" in expect:
        assert "not zipped" in text
    if "corrupt PDF" in expect:
        assert "U+FFFD" in text
    if "date format" in expect:
        assert "not in the standard form yyyy/MM/dd" in text


@pytest.mark.parametrize("name", _files() or [pytest.param("-", marks=pytest.mark.skip(ABSENT))])
def test_every_real_package_accepted_survives_read_wire_write_read(name: str) -> None:
    try:
        package = read_package((REAL / name).read_bytes()).package
    except ValueError:
        pytest.skip(f"{name} is refused (see the test above)")
    wire = decode_message(encode_message(package))
    assert isinstance(wire, type(package))
    written = render_document(wire) if isinstance(wire, Document) else render_status(wire)  # type: ignore[arg-type]
    again = read_package(written).package
    assert again == package
    if isinstance(package, Document):
        assert [a.content() for a in again.attachments] == [
            a.content() for a in package.attachments
        ]
        assert again.signature == package.signature
