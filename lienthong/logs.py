"""structlog set-up, done once by the console script before any command runs."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

#: Loggers are made once, on first use (a process configures logging once, before any command).
#: Tests that run a command in-process turn it off (tests/conftest.py): a logger cached during
#: one test would keep that test's level filter and output for every later test.
CACHE_LOGGERS = True


#: The formats ``configure_logging`` knows.
FORMATS = ("json", "console")


def choose_format(explicit: str | None, stderr_is_tty: bool) -> str:
    """The log format a process uses: the one asked for (``--log-format`` or
    ``LIENTHONG_LOG_FORMAT``) if any; otherwise ``console`` for a person at a terminal (stderr
    is a TTY) and ``json`` for everything else: daemons under systemd or compose, pipes, files.
    """
    if explicit:
        return explicit
    return "console" if stderr_is_tty else "json"


def stderr_is_tty() -> bool:
    """Whether stderr is a terminal (False when it is closed or replaced by something else)."""
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):  # closed
        return False


def configure_logging(
    level: str = "info", fmt: str = "json", fields: Mapping[str, str] | None = None
) -> None:
    """JSON lines (or console lines) on stderr; stdout stays for command output.

    ``fields`` go into every line of the process, whatever thread writes it (a relay worker
    process adds ``worker``).
    """
    lvl = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=lvl, stream=sys.stderr, format="%(message)s")
    for noisy in ("pika", "httpx", "alembic", "httpcore"):
        logging.getLogger(noisy).setLevel(max(lvl, logging.WARNING))
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            *([_add_fields(dict(fields))] if fields else []),
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        # one write per line (message and newline together), so the lines of several
        # relay worker processes sharing stderr never interleave
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=CACHE_LOGGERS,
    )


def _add_fields(fields: dict[str, str]) -> structlog.types.Processor:
    def add(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
        for key, value in fields.items():
            event.setdefault(key, value)
        return event

    return add
