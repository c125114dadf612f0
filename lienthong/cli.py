"""``lienthong``: one console script; each command group lives next to what it drives."""

from __future__ import annotations

import functools
import sys

import click

from lienthong import relay_workers
from lienthong.logs import FORMATS, choose_format, configure_logging, stderr_is_tty


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    envvar="LIENTHONG_LOG_LEVEL",
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option(
    "--log-format",
    default=None,
    envvar="LIENTHONG_LOG_FORMAT",
    type=click.Choice(FORMATS),
    help="Log lines on stderr. [default: console when stderr is a terminal, else json]",
)
@click.pass_context
def cli(ctx: click.Context, log_level: str, log_format: str | None) -> None:
    """lienthong: the document exchange hub (trục liên thông văn bản)."""
    # Unset: console lines for a person at a terminal, JSON lines for daemons (no TTY).
    fmt = choose_format(log_format, stderr_is_tty())
    configure_logging(log_level, fmt)
    # Relay worker processes (spawned) set up their logs with this, given extra fields: the
    # relay never imports this package (dependencies point inward).
    obj = ctx.ensure_object(dict)
    obj["configure_logging"] = functools.partial(configure_logging, log_level, fmt)
    # The multi-process relay's parent, exec'd by 'relay run' (see lienthong.relay_workers).
    obj["relay_workers_argv"] = relay_workers.command(log_level, fmt)


def _register() -> None:
    from adapters.cli import adapter
    from adapters.edxml.check import edxml
    from lienthong.demo import demo
    from relay.cli.agency import agency
    from relay.cli.operations import failures, resend, trace
    from relay.cli.overdue import overdue
    from relay.cli.relay import relay
    from relay.cli.retention import retention
    from relay.console.cli import console
    from relay.federation.cli import federation

    for command in (
        relay,
        agency,
        adapter,
        edxml,
        trace,
        failures,
        resend,
        demo,
        console,
        federation,
    ):
        cli.add_command(command)
    cli.add_command(overdue)
    cli.add_command(retention)


_register()


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
