"""The console needs the relay's database with its own tables (migration 0004) and the header
columns of ``documents`` (migration 0005)."""

from __future__ import annotations

from sqlalchemy import Engine, inspect
from sqlalchemy.exc import OperationalError

from relay.db.tables import console_audit, console_users, documents
from relay.errors import PermanentError, ServiceUnavailable


def check_schema(engine: Engine) -> None:
    """Fail with what to do when the database is unreachable or not migrated."""
    try:
        with engine.connect() as conn:
            inspector = inspect(conn)
            present = set(inspector.get_table_names())
            columns = (
                {c["name"] for c in inspector.get_columns(documents.name)}
                if documents.name in present
                else set()
            )
    except OperationalError as e:
        raise ServiceUnavailable(
            f"PostgreSQL at {engine.url.render_as_string(hide_password=True)} is unreachable: "
            f"{str(e.orig).strip() if e.orig else e}"
        ) from e
    missing = [
        f"{t.name} table"
        for t in (documents, console_users, console_audit)
        if t.name not in present
    ]
    if documents.name in present and documents.c.due_date.name not in columns:
        missing.append(f"{documents.name}.{documents.c.due_date.name} column")
    if missing:
        raise PermanentError(
            f"the database has no {', '.join(missing)}; run `lienthong relay setup` "
            "(it migrates the database) and start the console again"
        )
