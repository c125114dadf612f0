"""``lienthong edxml check``: is a package what lienthong accepts, and what did it notice?

A conformance checker for DMS vendors: each file is read exactly as an adapter's folder
connector reads it (same reader, same limits), and the verdict says accepted or refused,
document or status, every reason for a refusal (XML path, value, what was expected) and every
warning (what was read leniently, and how).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click

from adapters.edxml.errors import EdxmlError
from adapters.edxml.parse import read_package
from adapters.edxml.safety import DEFAULT_LIMITS, Limits


@dataclass
class Verdict:
    """The checker's answer for one file (``--json`` prints these fields)."""

    file: str
    accepted: bool
    #: ``document`` | ``status``, None when the package cannot be read that far.
    kind: str | None
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    document_id: str | None = None


def check_bytes(name: str, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Verdict:
    """The verdict on ``data``, the content of the file called ``name``."""
    try:
        reading = read_package(data, limits)
    except EdxmlError as e:
        return Verdict(name, False, e.kind, reasons=e.reasons, warnings=e.warnings)
    package = reading.package
    return Verdict(
        name, True, reading.kind, warnings=reading.warnings, document_id=package.document_id
    )


def check_file(path: Path, limits: Limits = DEFAULT_LIMITS) -> Verdict:
    try:
        size = path.stat().st_size
        if size > limits.max_bytes:
            return Verdict(
                str(path),
                False,
                None,
                [f"the file is {size} bytes, over the limit of {limits.max_bytes} bytes"],
            )
        data = path.read_bytes()
    except OSError as e:
        return Verdict(str(path), False, None, [f"cannot read the file: {e.strerror or e}"])
    return check_bytes(str(path), data, limits)


def render_text(verdict: Verdict) -> str:
    head = (
        f"{verdict.file}: accepted ({verdict.kind} {verdict.document_id})"
        if verdict.accepted
        else f"{verdict.file}: REFUSED"
    )
    lines = [head]
    lines += [f"  reason: {r}" for r in verdict.reasons]
    lines += [f"  warning: {w}" for w in verdict.warnings]
    return "\n".join(lines)


@click.group()
def edxml() -> None:
    """edXML (QCVN 102:2016) packages: check what lienthong makes of them."""


@edxml.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print a JSON list of verdicts")
def check(files: tuple[Path, ...], as_json: bool) -> None:
    """Check edXML FILES as an adapter reads them: accepted or refused, reasons, warnings.

    Exit status 0 when every file is accepted, 1 otherwise.
    """
    verdicts = [check_file(path) for path in files]
    if as_json:
        click.echo(json.dumps([asdict(v) for v in verdicts], ensure_ascii=False, indent=2))
    else:
        for verdict in verdicts:
            click.echo(render_text(verdict))
    if not all(v.accepted for v in verdicts):
        raise SystemExit(1)
