"""``lienthong console run | user add | user list | user disable``."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType

import click
import structlog

from relay.cli.common import echo_json, friendly_errors, settings_from_env
from relay.console.listen import DEFAULT_LISTEN, bind_listen, parse_listen

log = structlog.get_logger()


@click.group()
def console() -> None:
    """The web console: documents and their statuses, failures, agencies, audit log."""


@console.command("run")
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    metavar="HOST:PORT",
    help="Address to serve on.",
)
@friendly_errors
def run(listen: str) -> None:
    """Serve the console (reads the relay's LIENTHONG_* settings); Ctrl-C stops it."""
    import uvicorn

    from relay.console.app import create_app
    from relay.console.schema import check_schema
    from relay.db.engine import make_engine

    host, port = parse_listen(listen)
    settings = settings_from_env()
    engine = make_engine(settings.database_url, pool_size=5)
    try:
        check_schema(engine)
        app = create_app(settings, engine)
        with bind_listen(listen) as sock:
            click.echo(f"lienthong console on http://{listen}/ (Ctrl-C stops it)", err=True)
            # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again for
            # the previous handler; this one makes that a clean exit (status 0), as for the relay.
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, _stopped)
            config = uvicorn.Config(
                app,
                host=host,
                port=port,
                log_config=None,
                access_log=False,
                server_header=False,
                # X-Forwarded-For/-Proto are believed from a reverse proxy on loopback only
                # (uvicorn's FORWARDED_ALLOW_IPS), so the login limit counts real clients and
                # the cookie is Secure behind an HTTPS proxy.
                proxy_headers=True,
            )
            uvicorn.Server(config).run(sockets=[sock])
    finally:
        engine.dispose()


def _stopped(signum: int, frame: FrameType | None) -> None:
    log.info("console.stopped", signal=signal.Signals(signum).name)


@console.group()
def user() -> None:
    """Console users: operator, clerk (one agency) or auditor."""


@user.command("add")
@click.argument("name")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["operator", "clerk", "auditor"]),
    help="What it may do.",
)
@click.option(
    "--agency", default=None, metavar="CODE", help="A clerk's agency (required for clerks)."
)
@click.option(
    "--password-file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="File whose first line is the password (at least 10 characters).",
)
@friendly_errors
def user_add(name: str, role: str, agency: str | None, password_file: Path) -> None:
    """Add a console user; the password is stored as an argon2 hash."""
    from relay.console import users
    from relay.directory.db import engine_for, transaction
    from relay.directory.passwords import read_password_file

    password = read_password_file(password_file)
    users.check_new_user(name, role, agency, password)
    with engine_for(settings_from_env().database_url) as engine, transaction(engine) as conn:
        added = users.add_user(conn, name, role, agency, password)
    where = f" of {added.agency}" if added.agency else ""
    click.echo(f"added console user {added.name} ({added.role}{where})")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the users as JSON.")
@friendly_errors
def user_list(as_json: bool) -> None:
    """Every console user, with role, agency and whether it is disabled."""
    from relay.console import users
    from relay.directory.db import engine_for, transaction

    with engine_for(settings_from_env().database_url) as engine, transaction(engine) as conn:
        found = users.list_users(conn)
    if as_json:
        echo_json(
            [
                {"name": u.name, "role": u.role, "agency": u.agency, "disabled": u.disabled}
                for u in found
            ]
        )
        return
    if not found:
        click.echo("no console users; add one with `lienthong console user add`")
        return
    click.echo(f"{'NAME':<24} {'ROLE':<9} {'AGENCY':<16} STATE")
    for u in found:
        state = "disabled" if u.disabled else "active"
        click.echo(f"{u.name:<24} {u.role:<9} {u.agency or '-':<16} {state}")


@user.command("disable")
@click.argument("name")
@friendly_errors
def user_disable(name: str) -> None:
    """Disable a console user: it cannot sign in, and its open sessions end at once."""
    from relay.console import users
    from relay.directory.db import engine_for, transaction

    with engine_for(settings_from_env().database_url) as engine, transaction(engine) as conn:
        changed = users.disable_user(conn, name)
    click.echo(f"disabled console user {name}" if changed else f"{name} was already disabled")
