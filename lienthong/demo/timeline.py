"""The live timeline: one line per event, seconds since the document was sent, who, what."""

from __future__ import annotations

import time
from collections.abc import Callable

import click


class Timeline:
    def __init__(self, names: dict[str, str], echo: Callable[[str], None] = click.echo) -> None:
        self.names = names
        self.echo = echo
        self.started = time.monotonic()

    def restart(self) -> None:
        self.started = time.monotonic()

    def who(self, code: str) -> str:
        name = self.names.get(code, "")
        if len(name) > 35:
            name = name[:34] + "…"
        return f"{code} {name}"

    def event(self, actor: str, what: str) -> None:
        """``actor`` is an agency code (shown with its name) or a word such as ``relay``."""
        label = self.who(actor) if actor in self.names else actor
        elapsed = time.monotonic() - self.started
        self.echo(f"{elapsed:6.1f}s  {label:<49}  {what}")

    def note(self, what: str) -> None:
        self.echo(f"         {what}")
