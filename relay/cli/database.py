"""Database errors of the operations commands, translated for a person (``trace``,
``failures``, ``resend``, ``overdue``, ``retention run``): unreachable, or not set up yet
(then: run ``lienthong relay setup``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy.exc import OperationalError, ProgrammingError

from relay.errors import ServiceUnavailable

#: SQLSTATE of a missing database and of a missing table.
NOT_SET_UP = {"3D000", "42P01"}
SETUP_HINT = "; run `lienthong relay setup` first (it creates and migrates the database)"


@contextlib.contextmanager
def database_errors() -> Iterator[None]:
    try:
        yield
    except (OperationalError, ProgrammingError) as err:
        orig = err.orig
        first = str(orig or err).strip().splitlines()[0]
        missing = getattr(orig, "sqlstate", None) in NOT_SET_UP or (
            'database "' in str(orig) and "does not exist" in str(orig)
        )
        if missing:
            raise ServiceUnavailable(
                f"the relay's database is not set up ({first}){SETUP_HINT}"
            ) from err
        raise ServiceUnavailable(f"PostgreSQL is unreachable: {first}") from err
