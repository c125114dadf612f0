"""One transaction per directory operation, with database errors translated at the edge."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from relay.db.engine import make_engine
from relay.errors import InvalidInput, PermanentError, ServiceUnavailable


@contextlib.contextmanager
def engine_for(database_url: str) -> Iterator[Engine]:
    """A short-lived engine for one command (a CLI process does one operation)."""
    engine = make_engine(database_url, pool_size=1)
    try:
        yield engine
    finally:
        engine.dispose()


@contextlib.contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """Commit when the block ends normally, roll back otherwise."""
    try:
        with engine.begin() as conn:
            yield conn
    except OperationalError as e:
        raise ServiceUnavailable(
            f"PostgreSQL at {engine.url.render_as_string(hide_password=True)} failed: "
            f"{str(e.orig).strip() if e.orig else e}{_not_set_up_hint(e)}"
        ) from e
    except IntegrityError as e:
        raise InvalidInput(f"the directory refused the change: {str(e.orig).strip()}") from e
    except SQLAlchemyError as e:
        hint = _not_set_up_hint(e)
        if hint:
            first = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
            raise PermanentError(f"the relay's database is not set up ({first}){hint}") from e
        raise PermanentError(f"directory query failed: {e}") from e


#: SQLSTATE of a missing database and of a missing table (PostgreSQL error codes).
_NOT_SET_UP = {"3D000", "42P01"}


def _not_set_up_hint(e: SQLAlchemyError) -> str:
    """For a database or table that does not exist: what to run first (issue 18)."""
    orig = getattr(e, "orig", None)
    missing_database = 'database "' in str(orig) and "does not exist" in str(orig)
    if getattr(orig, "sqlstate", None) in _NOT_SET_UP or missing_database:
        return "; run `lienthong relay setup` first (it creates and migrates the database)"
    return ""
