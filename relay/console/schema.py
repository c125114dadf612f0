"""The console needs the relay's database with its own tables (migration 0004)."""

from __future__ import annotations

from sqlalchemy import Engine, inspect
from sqlalchemy.exc import OperationalError

from relay.db.tables import console_audit, console_document_headers, console_users
from relay.errors import PermanentError, ServiceUnavailable


def check_schema(engine: Engine) -> None:
    """Fail with what to do when the database is unreachable or not migrated."""
    try:
        with engine.connect() as conn:
            present = set(inspect(conn).get_table_names())
    except OperationalError as e:
        raise ServiceUnavailable(
            f"PostgreSQL at {engine.url.render_as_string(hide_password=True)} is unreachable: "
            f"{str(e.orig).strip() if e.orig else e}"
        ) from e
    missing = [
        t.name
        for t in (console_users, console_audit, console_document_headers)
        if t.name not in present
    ]
    if missing:
        raise PermanentError(
            f"the database has no {', '.join(missing)} table; run `lienthong relay setup` "
            "(it migrates the database) and start the console again"
        )
