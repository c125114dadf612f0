"""``agency import``: load a whole directory CSV in one transaction, fast.

The rows are checked first (all errors reported, nothing imported), then copied into a temporary
table with PostgreSQL ``COPY`` and merged with one ``INSERT … ON CONFLICT``. Connected agencies
that are new to the directory (or were hosted units) get their broker objects, unless
``provision=False``; hosted units need none.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Connection, text

from relay.broker.management import ManagementClient
from relay.broker.topology import agency_limits
from relay.config import Settings
from relay.directory import broker_objects, passwords, repository
from relay.directory.csv_rows import (
    CsvInvalid,
    CsvRow,
    ParsedCsv,
    RowError,
    decode,
    host_errors,
    outside_hosts,
    read_rows,
)
from relay.directory.db import engine_for, transaction
from relay.errors import InvalidInput
from schemas import is_strict_qcvn102

log = structlog.get_logger()

_CREATE = """
CREATE TEMPORARY TABLE agency_import (
    line integer NOT NULL,
    code text PRIMARY KEY,
    name text NOT NULL,
    host text,
    strict_code boolean NOT NULL
) ON COMMIT DROP
"""
_COPY = "COPY agency_import (line, code, name, host, strict_code) FROM STDIN"

#: Units the directory already has under a host that this file turns into a hosted unit.
_ORPHANED = text("""
SELECT i.line, i.code AS host, i.host AS new_host, a.code AS unit
FROM agency_import i
JOIN agencies a ON a.host = i.code
WHERE i.host IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM agency_import u WHERE u.code = a.code)
ORDER BY i.line, a.code
LIMIT 1000
""")

#: Connected agencies in the file that have no broker objects yet: new, or hosted until now.
_TO_PROVISION = text("""
SELECT i.code
FROM agency_import i
LEFT JOIN agencies a ON a.code = i.code
WHERE i.host IS NULL AND (a.code IS NULL OR a.host IS NOT NULL)
ORDER BY i.line
""")

_UPSERT = text("""
WITH merged AS (
    INSERT INTO agencies (code, name, host, strict_code)
    SELECT code, name, host, strict_code FROM agency_import
    ON CONFLICT (code) DO UPDATE
        SET name = EXCLUDED.name,
            host = EXCLUDED.host,
            strict_code = EXCLUDED.strict_code,
            updated_at = now()
        WHERE (agencies.name, agencies.host) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.host)
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) AS inserted,
       count(*) FILTER (WHERE NOT inserted) AS updated
FROM merged
""")


@dataclass
class ImportResult:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    connected: int = 0
    hosted: int = 0
    provisioned: list[str] = field(default_factory=list)
    not_provisioned: list[str] = field(default_factory=list)
    #: generated passwords to show once (only when no password directory was given)
    passwords: dict[str, str] = field(default_factory=dict)
    secret_files: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "connected": self.connected,
            "hosted": self.hosted,
            "provisioned": self.provisioned,
            "not_provisioned": self.not_provisioned,
            "secret_files": [str(p) for p in self.secret_files],
            "seconds": round(self.seconds, 3),
        }


def read_csv(path: Path) -> ParsedCsv:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"FILE: cannot read {str(path)!r}: {e.strerror}") from e
    return read_rows(decode(data, str(path)), str(path))


def _copy_rows(conn: Connection, rows: list[CsvRow]) -> None:
    driver: Any = conn.connection.driver_connection  # psycopg.Connection
    with driver.cursor() as cur:
        cur.execute(_CREATE)
        with cur.copy(_COPY) as copy:
            for r in rows:
                copy.write_row((r.line, r.code, r.name, r.host, is_strict_qcvn102(r.code)))


def _orphan_errors(conn: Connection) -> list[RowError]:
    return [
        RowError(
            row.line,
            "host",
            row.new_host,
            f"{row.host!r} cannot become a hosted unit: the directory has {row.unit!r} "
            f"hosted by it (list that unit in the file with its new host)",
        )
        for row in conn.execute(_ORPHANED)
    ]


def _passwords_for(
    codes: list[str], password_dir: Path | None, result: ImportResult
) -> dict[str, str]:
    """A password per code: an existing ``DIR/<code>.secret`` is reused; new ones are written
    there (mode 0600) before the broker is touched, or kept to be printed once."""
    chosen: dict[str, str] = {}
    for code in codes:
        if password_dir is not None:
            path = passwords.secret_path(password_dir, code)
            if path.exists():
                chosen[code] = passwords.read_password_file(path)
            else:
                chosen[code] = passwords.generate()
                passwords.write_secret(password_dir, code, chosen[code])
            result.secret_files.append(path)
        else:
            chosen[code] = result.passwords[code] = passwords.generate()
    return chosen


def provision_targets(
    rows: list[CsvRow], new_connected: Iterable[str], users: Set[str]
) -> list[str]:
    """The connected agencies of the file that get broker objects and a new password.

    Those new to the directory (or hosted units until now) and those without a RabbitMQ user
    (e.g. loaded earlier with ``--no-provision``), in file order. Agencies already in the
    directory with a user are left alone, so their adapters keep working.
    """
    new = set(new_connected)
    return [r.code for r in rows if r.host is None and (r.code in new or r.code not in users)]


def _provision(
    conn: Connection,
    mgmt: ManagementClient,
    settings: Settings,
    vhost: str,
    rows: list[CsvRow],
    new_connected: list[str],
    password_dir: Path | None,
    result: ImportResult,
) -> None:
    users = {u["name"]: u for u in mgmt.list_users()}
    ours = {name for name, u in users.items() if broker_objects.owned_by(u, vhost)}
    targets = provision_targets(rows, new_connected, ours)
    # Users are broker-wide: a user this hub did not create is never taken over.
    foreign = [
        code
        for code in targets
        if code in users and code not in ours and not broker_objects.abandoned(mgmt, users[code])
    ]
    if foreign:
        shown = ", ".join(foreign[:20]) + (
            f" (and {len(foreign) - 20} more)" if len(foreign) > 20 else ""
        )
        raise InvalidInput(
            f"{len(foreign)} connected agencies have a RabbitMQ user this hub (vhost {vhost!r}) "
            f"did not create: {shown}; nothing imported. Their passwords are left alone: give "
            "this hub its own broker or these agencies other codes, run `lienthong relay setup` "
            "to adopt users this hub made before users were tagged, or delete the users"
        )
    chosen = _passwords_for(targets, password_dir, result)
    limits = agency_limits(settings)
    suspended = {a.code for a in repository.get_many(conn, targets).values() if a.suspended}
    for code in targets:
        broker_objects.provision(mgmt, vhost, code, chosen[code], limits)
        if code in suspended:
            broker_objects.set_write_allowed(mgmt, vhost, code, False)
        result.provisioned.append(code)


def import_agencies(
    settings: Settings,
    path: Path,
    *,
    provision: bool = True,
    password_dir: Path | None = None,
) -> ImportResult:
    """Check every row of ``path``, then upsert them all in one transaction."""
    started = time.perf_counter()
    source = str(path)
    parsed = read_csv(path)
    rows = parsed.rows
    result = ImportResult(rows=len(rows))
    result.hosted = sum(1 for r in rows if r.host is not None)
    result.connected = result.rows - result.hosted

    with engine_for(settings.database_url) as engine, transaction(engine) as conn:
        directory = repository.get_many(conn, outside_hosts(rows))
        errors = parsed.errors + host_errors(rows, directory, parsed.other_codes)
        if errors:
            raise CsvInvalid(source, sorted(errors, key=lambda e: e.line))
        _copy_rows(conn, rows)
        orphans = _orphan_errors(conn)
        if orphans:
            raise CsvInvalid(source, orphans)
        new_connected = list(conn.execute(_TO_PROVISION).scalars())
        counts = conn.execute(_UPSERT).one()
        result.inserted, result.updated = int(counts.inserted), int(counts.updated)
        result.unchanged = result.rows - result.inserted - result.updated
        if provision and result.connected:
            with ManagementClient(settings.management_url) as mgmt:
                _provision(
                    conn, mgmt, settings, settings.vhost, rows, new_connected, password_dir, result
                )
        else:
            result.not_provisioned = new_connected
    result.seconds = time.perf_counter() - started
    log.info(
        "agency.imported",
        rows=result.rows,
        inserted=result.inserted,
        updated=result.updated,
        provisioned=len(result.provisioned),
        seconds=round(result.seconds, 3),
    )
    return result
