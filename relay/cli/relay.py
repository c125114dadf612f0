"""``lienthong relay setup`` and ``lienthong relay run``."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from relay.cli.common import friendly_errors, settings_from_env
from relay.cli.monitoring import monitoring


@click.group()
def relay() -> None:
    """The hub: set it up, run it."""


@relay.command()
@friendly_errors
def setup() -> None:
    """Migrate the database and declare topology and policies (idempotent)."""
    from relay.setup import run_setup

    settings = settings_from_env()
    run_setup(settings)
    click.echo(f"relay set up: database migrated, topology declared in vhost {settings.vhost!r}")


@relay.command(name="make-secret-key")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@friendly_errors
def make_secret_key(file: Path) -> None:
    """Write a new secret key to FILE (mode 0600; an existing FILE is never replaced).

    Set LIENTHONG_SECRET_KEY_FILE=FILE for the relay and the lienthong commands: the federation
    links' passwords are then stored encrypted with it (`lienthong relay setup` encrypts those
    stored before). Keep the file, and a copy, outside the database and its backups: without
    it the links cannot log in.
    """
    from relay.secretkey import make_key_file

    make_key_file(file)
    click.echo(
        f"secret key written to {file} (mode 0600); set LIENTHONG_SECRET_KEY_FILE={file} for "
        "the relay and the lienthong commands, then run lienthong relay setup"
    )


@relay.command()
@friendly_errors
def run() -> None:
    """Run the relay daemon until SIGTERM/SIGINT.

    With LIENTHONG_WORKERS > 1 it runs that many worker processes, each consuming a share of
    the agencies' outboxes.
    """
    settings = settings_from_env()
    obj = click.get_current_context().find_root().obj or {}
    argv = obj.get("relay_workers_argv")
    if settings.workers > 1 and argv:
        # The console script's parent of the worker processes (it serves the metrics too),
        # without the rest of the console script in memory: same process id, same environment.
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(argv[0], argv)
    from relay.metrics.endpoint import multiprocess_dir

    if settings.workers == 1:
        with monitoring(settings):  # LIENTHONG_METRICS_ADDR: /metrics, /healthz, /readyz
            from relay.worker.main import run_relay

            run_relay(settings)
            return
    from relay.worker.supervisor import run_workers

    with multiprocess_dir(settings):  # the endpoint is served once the workers are forked
        serve = functools.partial(monitoring, settings)
        status = run_workers(settings, obj.get("configure_logging"), serve=serve)
    if status:
        raise SystemExit(status)
