"""Secrets the hub must keep in its database, encrypted with a key kept outside it.

The key is a Fernet key (``cryptography``: AES-128-CBC and HMAC-SHA256, authenticated) in the
file named by ``LIENTHONG_SECRET_KEY_FILE`` (its first line), made by ``lienthong relay
make-secret-key FILE``. A stored value says how it is stored: ``fernet:<token>`` is encrypted;
a value without that prefix is plain text (rows written before the key existed), read as it
is. Used for the federation links' passwords (:mod:`relay.federation.store`).

Nothing here logs or puts a secret (plain or token) in an error message.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from relay.config import Settings
from relay.errors import InvalidInput, PermanentError

#: The prefix of an encrypted stored value; anything else is plain text.
PREFIX = "fernet:"
#: The setting naming the key file, as an operator writes it.
SETTING = "LIENTHONG_SECRET_KEY_FILE"
MAKE_KEY = "lienthong relay make-secret-key FILE"


class SecretKeyError(PermanentError):
    """The key is missing, unreadable or not the one a value was encrypted with."""


@dataclass(frozen=True)
class SecretKey:
    """A loaded key and the file it came from (for messages)."""

    fernet: Fernet
    path: Path

    def __repr__(self) -> str:  # never the key itself
        return f"SecretKey(path={str(self.path)!r})"


def make_key_file(path: Path) -> None:
    """Write a new key to ``path`` (mode 0600); an existing file is never replaced (the values
    encrypted with the key in it would become unreadable)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidInput(
            f"FILE: {path} exists already; a new key there would make what its key encrypted "
            "unreadable. Choose another file name"
        ) from None
    except OSError as e:
        raise InvalidInput(f"FILE: cannot create {path}: {e.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # whatever the umask allowed
        os.write(fd, Fernet.generate_key() + b"\n")
        os.fsync(fd)
    except OSError:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    os.close(fd)


def load_key(path: Path) -> SecretKey:
    """The key in the first line of ``path``."""
    try:
        lines = path.read_text("ascii").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not a text file"
        raise SecretKeyError(f"{SETTING}: cannot read the key file {path}: {reason}") from None
    try:
        fernet = Fernet(lines[0].strip() if lines else "")
    except ValueError:
        raise SecretKeyError(
            f"{SETTING}: {path} does not hold a key (its first line must be a Fernet key, "
            f"as `{MAKE_KEY}` writes)"
        ) from None
    return SecretKey(fernet, path)


def key_from_settings(settings: Settings) -> SecretKey | None:
    """The configured key; None when ``LIENTHONG_SECRET_KEY_FILE`` is not set."""
    if not settings.secret_key_file:
        return None
    return load_key(Path(settings.secret_key_file))


def is_encrypted(stored: str) -> bool:
    return stored.startswith(PREFIX)


def encrypt(key: SecretKey, plain: str) -> str:
    """The stored form of ``plain``: ``fernet:<token>`` (a new token each time)."""
    return PREFIX + key.fernet.encrypt(plain.encode("utf-8")).decode("ascii")


def decrypt(key: SecretKey | None, stored: str) -> str:
    """The plain value of ``stored``: plain text as it is, a token opened with ``key``."""
    if not is_encrypted(stored):
        return stored
    if key is None:
        raise SecretKeyError(
            f"it is encrypted and {SETTING} is not set; set it to the key file it was "
            "encrypted with"
        )
    try:
        return key.fernet.decrypt(stored[len(PREFIX) :].encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise SecretKeyError(
            f"the key in {key.path} ({SETTING}) does not open it: it was encrypted with "
            "another key (or the stored value is damaged)"
        ) from None
