"""``lienthong``: one console script; each command group lives next to what it drives."""

from __future__ import annotations

import functools
import sys

import click

from lienthong import relay_workers
from lienthong.logs import configure_logging


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
    default="json",
    show_default=True,
    envvar="LIENTHONG_LOG_FORMAT",
    type=click.Choice(["json", "console"]),
)
@click.pass_context
def cli(ctx: click.Context, log_level: str, log_format: str) -> None:
    """lienthong: the document exchange hub (trục liên thông văn bản)."""
    configure_logging(log_level, log_format)
    # Relay worker processes (spawned) set up their logs with this, given extra fields: the
    # relay never imports this package (dependencies point inward).
    obj = ctx.ensure_object(dict)
    obj["configure_logging"] = functools.partial(configure_logging, log_level, log_format)
    # The multi-process relay's parent, exec'd by 'relay run' (see lienthong.relay_workers).
    obj["relay_workers_argv"] = relay_workers.command(log_level, log_format)


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
