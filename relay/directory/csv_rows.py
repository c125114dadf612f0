"""Reading and checking a directory CSV (``code,name,host``, UTF-8). Pure: no I/O but the text.

Every bad row is reported, with its line number, the field and the value, before anything is
imported.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass

from relay.directory.model import Agency
from relay.directory.validation import code_problem, name_problem
from relay.errors import InvalidInput

HEADER = ("code", "name", "host")
#: The ``host`` column may be left out when every row is a connected agency.
SHORT_HEADER = ("code", "name")


@dataclass(frozen=True)
class CsvRow:
    line: int
    code: str
    name: str
    host: str | None


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    value: str
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field} {self.value!r}: {self.problem}"


class CsvInvalid(InvalidInput):
    """The file has bad rows; nothing was imported."""

    def __init__(self, source: str, errors: list[RowError]) -> None:
        self.errors = errors
        lines = "\n".join(f"  {e}" for e in errors)
        super().__init__(f"{source}: {len(errors)} bad row(s), nothing imported:\n{lines}")


def decode(data: bytes, source: str) -> str:
    """UTF-8 text (a leading byte-order mark is allowed); a bad byte is reported by line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise CsvInvalid(
            source,
            [
                RowError(
                    line,
                    "encoding",
                    data[e.start : e.start + 4].hex(" "),
                    "is not UTF-8; save the file as UTF-8",
                )
            ],
        ) from e


@dataclass
class ParsedCsv:
    rows: list[CsvRow]  # the rows whose fields are all valid
    errors: list[RowError]
    #: valid codes on rows that are bad for another reason (so that a host naming one of them
    #: is not also reported as unknown)
    other_codes: set[str]


def parse_rows(text: str, source: str = "CSV") -> list[CsvRow]:
    """The rows of ``text``, each field checked; raises CsvInvalid listing every bad row."""
    parsed = read_rows(text, source)
    if parsed.errors:
        raise CsvInvalid(source, parsed.errors)
    return parsed.rows


def read_rows(text: str, source: str = "CSV") -> ParsedCsv:
    """The rows of ``text`` with every field checked; only a bad header raises CsvInvalid."""
    other_codes: set[str] = set()
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    errors: list[RowError] = []
    rows: list[CsvRow] = []
    first_seen: dict[str, int] = {}
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise CsvInvalid(source, [RowError(1, "header", "", f"unreadable: {e}")]) from e
    columns = tuple(h.strip().lower() for h in header or ())
    if columns not in (HEADER, SHORT_HEADER):
        raise CsvInvalid(
            source,
            [RowError(1, "header", ",".join(header or ()), "expected 'code,name,host'")],
        )
    width = len(columns)
    end = reader.line_num
    while True:
        start = end + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            errors.append(RowError(reader.line_num, "row", "", f"unreadable CSV: {e}"))
            break
        end = reader.line_num
        if not "".join(fields).strip():
            continue  # blank line
        if len(fields) > width or len(fields) < 2:
            errors.append(
                RowError(
                    start,
                    "row",
                    ",".join(fields),
                    f"has {len(fields)} field(s), expected {width} ({','.join(columns)})",
                )
            )
            continue
        code = fields[0].strip()
        name = fields[1].strip()
        host = fields[2].strip() if len(fields) > 2 else ""
        bad = False
        problem = code_problem(code)
        if problem is not None:
            errors.append(RowError(start, "code", code, _short(problem)))
            bad = True
        problem = name_problem(name)
        if problem is not None:
            errors.append(RowError(start, "name", name, problem))
            bad = True
        if host:
            problem = code_problem(host)
            if problem is not None:
                errors.append(RowError(start, "host", host, _short(problem)))
                bad = True
            elif host == code:
                errors.append(
                    RowError(
                        start,
                        "host",
                        host,
                        "is the agency itself; leave host empty for a connected agency",
                    )
                )
                bad = True
        if bad:
            if code_problem(code) is None:
                other_codes.add(code)
        else:
            if code in first_seen:
                errors.append(
                    RowError(
                        start, "code", code, f"appears twice (first on line {first_seen[code]})"
                    )
                )
                continue
            first_seen[code] = start
            rows.append(CsvRow(start, code, name, host or None))
    return ParsedCsv(rows, errors, other_codes)


def _short(problem: str) -> str:
    # validate_agency_code says "'X' is not an agency code: expected …"; the value is shown
    # already, keep the explanation.
    return problem.split(": ", 1)[1] if ": " in problem else problem


def outside_hosts(rows: Iterable[CsvRow]) -> set[str]:
    """Hosts named by rows but not defined in the file (to be looked up in the directory)."""
    rows = list(rows)
    codes = {r.code for r in rows}
    return {r.host for r in rows if r.host is not None and r.host not in codes}


def check_hosts(rows: list[CsvRow], directory: Mapping[str, Agency], source: str = "CSV") -> None:
    """Raise CsvInvalid unless every host is a connected agency (see :func:`host_errors`)."""
    errors = host_errors(rows, directory)
    if errors:
        raise CsvInvalid(source, errors)


def host_errors(
    rows: list[CsvRow], directory: Mapping[str, Agency], other_codes: Set[str] = frozenset()
) -> list[RowError]:
    """Every host must be a connected agency, in the file or (if not there) in the directory.

    ``other_codes`` are codes defined on rows that are bad for another reason: a host naming
    one of them is not reported again.
    """
    in_file = {r.code: r for r in rows}
    errors: list[RowError] = []
    for row in rows:
        if row.host is None:
            continue
        host_row = in_file.get(row.host)
        if host_row is not None:
            if host_row.host is not None:
                errors.append(
                    RowError(
                        row.line,
                        "host",
                        row.host,
                        f"is itself hosted by {host_row.host!r} (line {host_row.line}); "
                        "a host must be a connected agency",
                    )
                )
            continue
        if row.host in other_codes:
            continue
        known = directory.get(row.host)
        if known is None:
            errors.append(
                RowError(row.line, "host", row.host, "is neither in this file nor in the directory")
            )
        elif known.host is not None:
            errors.append(
                RowError(
                    row.line,
                    "host",
                    row.host,
                    f"is hosted by {known.host!r} in the directory; a host must be a connected "
                    "agency",
                )
            )
    return errors
