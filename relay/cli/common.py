"""Helpers shared by the relay's commands: settings, error translation, JSON output."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from relay.config import Settings, load_settings
from relay.errors import LienthongError

F = TypeVar("F", bound=Callable[..., Any])


def settings_from_env() -> Settings:
    return load_settings()


def friendly_errors(func: F) -> F:
    """Turn the project's errors into a one-line message and exit status 1 (2 for bad input)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LienthongError as e:
            raise click.ClickException(str(e)) from e

    return wrapper  # type: ignore[return-value]


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
