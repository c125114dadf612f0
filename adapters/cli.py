"""``lienthong adapter run | send``."""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from types import FrameType

import click
import structlog

from adapters.broker import BrokerUnavailable, send_pending
from adapters.config import AdapterConfig, ConfigError, load_config
from adapters.daemon import Adapter, AdapterFailed, AlreadyRunning, root_lock
from adapters.formats.base import FormatError
from adapters.outbox import read_bounded, submit
from adapters.spool import Spool, SpoolError
from lienthong.monitoring import AddressError

log = structlog.get_logger()

config_option = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="the adapter's TOML file (agency, amqp_url, password_file, root, format)",
)


def quiet_pika() -> None:
    """pika logs every failed connection attempt at ERROR; the adapter reports an outage once
    itself (``adapter.broker_down`` / ``adapter.broker_back``), so pika's own lines are muted."""
    logging.getLogger("pika").setLevel(logging.CRITICAL + 1)


def _load(path: Path) -> AdapterConfig:
    try:
        return load_config(path)
    except ConfigError as e:
        raise click.ClickException(str(e)) from e


@click.group()
def adapter() -> None:
    """The agency daemon next to a DMS."""


@adapter.command()
@config_option
def run(config_path: Path) -> None:
    """Run the adapter daemon: folder connector, spool, broker; SIGTERM/SIGINT stop it."""
    config = _load(config_path)
    quiet_pika()
    try:
        daemon = Adapter(config)
    except FormatError as e:
        raise click.ClickException(f"format: {e}") from e

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("adapter.stopping", agency=config.agency, signal=signal.Signals(signum).name)
        daemon.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        daemon.run()
    except (AlreadyRunning, AdapterFailed, SpoolError, AddressError) as e:
        raise click.ClickException(str(e)) from e


@adapter.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@config_option
@click.option(
    "--no-publish",
    is_flag=True,
    help="only spool it; do not try to publish now even when no daemon is running",
)
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def send(file: Path, config_path: Path, no_publish: bool, as_json: bool) -> None:
    """Submit one document or status file (.json or .edxml) through the adapter's spool.

    Prints the submission's message_id. Exits 0 once the file is durably spooled; it is sent
    now when no adapter daemon runs on this root, otherwise by the daemon.
    """
    config = _load(config_path)
    quiet_pika()
    config.root.mkdir(parents=True, exist_ok=True)
    try:
        data = read_bounded(file, config.max_file_bytes)  # a huge file is refused unread
    except FormatError as e:
        raise click.ClickException(f"{file.name} was not sent: {e}") from e
    except OSError as e:
        raise click.ClickException(f"cannot read {str(file)!r}: {e.strerror}") from e
    try:
        with Spool(config.spool_path) as spool:
            try:
                entry, created = submit(spool, file.name, data, max_bytes=config.max_file_bytes)
            except FormatError as e:
                raise click.ClickException(f"{file.name} was not sent: {e}") from e
            state = "spooled" if created else "already_spooled"
            detail = None
            if entry.sent_at is not None:
                state = "already_sent"
            elif not no_publish:
                with root_lock(config) as locked:
                    if not locked:
                        detail = "the running adapter daemon will send it"
                    else:
                        try:
                            send_pending(config, spool)
                        except BrokerUnavailable as e:
                            detail = f"not sent yet, broker unavailable: {e}"
                        refreshed = spool.get(entry.message_id)
                        if refreshed is not None and refreshed.sent_at is not None:
                            state = "sent"
    except SpoolError as e:
        raise click.ClickException(str(e)) from e
    if as_json:
        click.echo(
            json.dumps(
                {
                    "message_id": entry.message_id,
                    "state": state,
                    "document_id": entry.document_id,
                    "message_type": entry.message_type,
                    "detail": detail,
                },
                ensure_ascii=False,
            )
        )
    else:
        click.echo(entry.message_id)
        explanation = {
            "spooled": "spooled",
            "already_spooled": "this file was spooled before (same name and content)",
            "already_sent": "this file was already sent earlier (same name and content)",
            "sent": "sent",
        }[state]
        click.echo(f"{file.name}: {explanation}" + (f"; {detail}" if detail else ""), err=True)
    sys.exit(0)
