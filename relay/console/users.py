"""Console users in PostgreSQL, passwords hashed with argon2id (argon2-cffi's defaults)."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, func, insert, select, update

from relay.console.roles import CLERK, ROLES, User
from relay.db.tables import agencies, console_users
from relay.errors import InvalidInput, NotFound

log = structlog.get_logger()

NAME_PATTERN = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
MIN_PASSWORD_LENGTH = 10

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified when the user name is unknown, so an answer takes as long either way and does
    not tell which names exist (made on first use: hashing costs time, imports must not)."""
    return _hasher.hash("not a password of anyone")


def _user(row: Any) -> User:
    return User(name=row.name, role=row.role, agency=row.agency, disabled=row.disabled)


def check_new_user(name: str, role: str, agency: str | None, password: str) -> None:
    """Refuse, with a message a person can act on, what ``user add`` cannot store."""
    if not NAME_PATTERN.match(name):
        raise InvalidInput(
            f"NAME: {name!r} is not a valid user name (1-64 of letters, digits, '.', '_', '@', '-')"
        )
    if role not in ROLES:
        raise InvalidInput(f"--role: {role!r} is not one of {', '.join(ROLES)}")
    if role == CLERK and agency is None:
        raise InvalidInput("--agency: a clerk belongs to an agency; give its code")
    if role != CLERK and agency is not None:
        raise InvalidInput(f"--agency: only a clerk has an agency (a {role} sees every agency)")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"--password-file: the password has {len(password)} characters; "
            f"use at least {MIN_PASSWORD_LENGTH}"
        )


def add_user(conn: Connection, name: str, role: str, agency: str | None, password: str) -> User:
    check_new_user(name, role, agency, password)
    if (
        agency is not None
        and conn.execute(select(agencies.c.code).where(agencies.c.code == agency)).first() is None
    ):
        raise NotFound(f"--agency: no agency with code {agency!r} in the directory")
    if conn.execute(select(console_users.c.name).where(console_users.c.name == name)).first():
        raise InvalidInput(f"NAME: a user {name!r} exists already")
    conn.execute(
        insert(console_users).values(
            name=name, role=role, agency=agency, password_hash=_hasher.hash(password)
        )
    )
    log.info("console.user_added", user=name, role=role, agency=agency)
    return User(name=name, role=role, agency=agency)


def list_users(conn: Connection) -> Sequence[User]:
    return [_user(r) for r in conn.execute(select(console_users).order_by(console_users.c.name))]


def get_user(conn: Connection, name: str) -> User | None:
    row = conn.execute(select(console_users).where(console_users.c.name == name)).first()
    return _user(row) if row is not None else None


def disable_user(conn: Connection, name: str) -> bool:
    """Disable ``name``; False when it was disabled already."""
    user = get_user(conn, name)
    if user is None:
        raise NotFound(f"NAME: no console user {name!r}")
    if user.disabled:
        return False
    conn.execute(
        update(console_users)
        .where(console_users.c.name == name)
        .values(disabled=True, updated_at=func.now())
    )
    log.info("console.user_disabled", user=name)
    return True


def authenticate(conn: Connection, name: str, password: str) -> User | None:
    """The active user ``name`` if ``password`` is theirs, else None (never says which failed)."""
    row = conn.execute(select(console_users).where(console_users.c.name == name)).first()
    stored = row.password_hash if row is not None else _dummy_hash()
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or row.disabled:
        return None
    if _hasher.check_needs_rehash(stored):
        conn.execute(
            update(console_users)
            .where(console_users.c.name == name)
            .values(password_hash=_hasher.hash(password), updated_at=func.now())
        )
    return _user(row)
