"""Which log format a ``lienthong`` process uses (lienthong/logs.py, lienthong/cli.py)."""

from __future__ import annotations

import io

import pytest
from click.testing import CliRunner

import lienthong.cli
from lienthong.logs import choose_format, stderr_is_tty


@pytest.mark.parametrize("tty", [True, False])
@pytest.mark.parametrize("explicit", ["json", "console"])
def test_an_explicit_format_always_wins(explicit: str, tty: bool) -> None:
    assert choose_format(explicit, stderr_is_tty=tty) == explicit


def test_unset_a_terminal_gets_console_lines_and_anything_else_json() -> None:
    assert choose_format(None, stderr_is_tty=True) == "console"
    assert choose_format(None, stderr_is_tty=False) == "json"
    assert choose_format("", stderr_is_tty=True) == "console"  # an empty variable is unset


def test_stderr_that_is_no_terminal_or_closed_is_not_a_tty(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert stderr_is_tty() is False
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr("sys.stderr", closed)
    assert stderr_is_tty() is False
    monkeypatch.setattr("sys.stderr", None)
    assert stderr_is_tty() is False


@pytest.mark.parametrize(
    ("env", "args", "tty", "expected"),
    [
        ({"LIENTHONG_LOG_FORMAT": None}, [], True, "console"),
        ({"LIENTHONG_LOG_FORMAT": None}, [], False, "json"),
        ({"LIENTHONG_LOG_FORMAT": "json"}, [], True, "json"),
        ({"LIENTHONG_LOG_FORMAT": "console"}, [], False, "console"),
        ({"LIENTHONG_LOG_FORMAT": None}, ["--log-format", "json"], True, "json"),
    ],
)
def test_the_console_script_passes_the_chosen_format_on(
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str | None],
    args: list[str],
    tty: bool,
    expected: str,
) -> None:
    used: list[str] = []
    monkeypatch.setattr(lienthong.cli, "stderr_is_tty", lambda: tty, raising=False)
    monkeypatch.setattr(lienthong.cli, "configure_logging", lambda _level, fmt: used.append(fmt))
    result = CliRunner().invoke(lienthong.cli.cli, [*args, "edxml", "--help"], env=env)
    assert result.exit_code == 0, result.output
    assert used == [expected]
