"""RabbitMQ passwords of connected agencies: read from a file, or generated and handed out once."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from relay.errors import InvalidInput

#: 32 URL-safe characters (192 bits), easy to paste into an adapter's ``password_file``.
PASSWORD_BYTES = 24


def generate() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def read_password_file(path: Path) -> str:
    """The password in ``path`` (first line, surrounding whitespace removed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InvalidInput(f"--password-file: cannot read {str(path)!r}: {e.strerror}") from e
    lines = text.strip().splitlines()
    password = lines[0].strip() if lines else ""
    if not password:
        raise InvalidInput(f"--password-file: {str(path)!r} is empty")
    return password


def secret_path(directory: Path, code: str) -> Path:
    return directory / f"{code}.secret"


def write_secret(directory: Path, code: str, password: str) -> Path:
    """Write ``DIR/<code>.secret`` readable by its owner only (mode 0600), atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    target = secret_path(directory, code)
    tmp = directory / f".{code}.secret.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (password + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    return target
