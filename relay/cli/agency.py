"""``lienthong agency …``: the agency directory and broker provisioning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from relay.cli.common import echo_json, friendly_errors, settings_from_env


@click.group()
def agency() -> None:
    """The agency directory: add, import, list, show, suspend, resume."""


@agency.command()
@click.argument("code")
@click.option("--name", required=True, help="The agency's name, e.g. 'Văn phòng Chính phủ'.")
@click.option("--host", metavar="CODE", help="For a hosted unit: the connected agency serving it.")
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="RabbitMQ password of a connected agency (first line); generated when omitted.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def add(code: str, name: str, host: str | None, password_file: Path | None, as_json: bool) -> None:
    """Add agency CODE to the directory.

    A connected agency (no --host) gets a RabbitMQ user named CODE (tagged as this hub's),
    least-privilege permissions, connection and channel limits, its own submit exchange, and
    its inbox and outbox queues. A generated password is printed once. Adding the same agency
    again is harmless; different data is an error. A RabbitMQ user CODE that this hub did not
    create is refused, never taken over.
    """
    from relay.directory.service import add_agency

    result = add_agency(settings_from_env(), code, name, host=host, password_file=password_file)
    a = result.agency
    if as_json:
        echo_json(
            {
                **a.to_json(),
                "created": result.created,
                "provisioned": result.provisioned,
                "password": result.generated_password,
            }
        )
        return
    what = "added" if result.created else "already in the directory (unchanged)"
    kind = f"hosted by {a.host}" if a.host else "connected"
    click.echo(f"{a.code} {a.name!r}: {what}, {kind}")
    if result.provisioned:
        click.echo(
            f"  RabbitMQ user {a.code!r}, exchange lienthong.submit.{a.code}, "
            f"queues agency.{a.code}.inbox/outbox: ready"
        )
    if result.generated_password is not None:
        click.echo(
            f"  password (shown once, keep it in the adapter's password_file): "
            f"{result.generated_password}"
        )


@agency.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--no-provision",
    is_flag=True,
    help="Load the directory only; create no RabbitMQ users or queues.",
)
@click.option(
    "--password-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write each new connected agency's password to DIR/<code>.secret (mode 0600); "
    "an existing file there is used as the password.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@friendly_errors
def import_(file: Path, no_provision: bool, password_dir: Path | None, as_json: bool) -> None:
    """Load FILE (CSV with header code,name,host; UTF-8) into the directory.

    Every row is checked first; any bad row is reported with its line, field and value and
    nothing is imported. Existing agencies are updated. New connected agencies get their
    RabbitMQ user and queues (passwords printed once unless --password-dir).
    """
    from relay.directory.bulk import import_agencies

    result = import_agencies(
        settings_from_env(), file, provision=not no_provision, password_dir=password_dir
    )
    if as_json:
        data: dict[str, Any] = result.to_json()
        data["passwords"] = result.passwords
        echo_json(data)
        return
    click.echo(
        f"imported {result.rows} rows from {file} in {result.seconds:.2f}s: "
        f"{result.inserted} new, {result.updated} updated, {result.unchanged} unchanged "
        f"({result.connected} connected, {result.hosted} hosted units)"
    )
    if result.provisioned:
        click.echo(f"broker objects created for {len(result.provisioned)} connected agencies")
    if result.secret_files:
        click.echo(f"passwords written to {password_dir}/<code>.secret")
    for code, password in result.passwords.items():
        click.echo(f"  {code} password (shown once): {password}")
    if result.not_provisioned:
        click.echo(
            f"{len(result.not_provisioned)} new connected agencies have no broker objects yet; "
            "run `lienthong agency add CODE --name NAME` for each to provision it"
        )


@agency.command(name="list")
@click.option("--host", metavar="CODE", help="Only the units hosted by this agency.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many rows.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@friendly_errors
def list_(host: str | None, limit: int | None, as_json: bool) -> None:
    """List the agencies in the directory, ordered by code."""
    from relay.directory.service import list_agencies

    found = list_agencies(settings_from_env(), host=host, limit=limit)
    if as_json:
        echo_json([a.to_json() for a in found])
        return
    for a in found:
        kind = f"hosted by {a.host}" if a.host else "connected"
        click.echo(f"{a.code:<16} {a.state:<9} {kind:<26} {a.name}")
    click.echo(f"{len(found)} agencies")


@agency.command()
@click.argument("code")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@friendly_errors
def show(code: str, as_json: bool) -> None:
    """Show agency CODE: directory entry, hosted units, and its inbox/outbox backlog."""
    from relay.directory.service import show_agency

    data = show_agency(settings_from_env(), code)
    if as_json:
        echo_json(data)
        return
    click.echo(f"code:          {data['code']}")
    click.echo(f"name:          {data['name']}")
    click.echo(
        f"kind:          {data['kind']}" + (f" (hosted by {data['host']})" if data["host"] else "")
    )
    click.echo(f"state:         {data['state']}")
    click.echo(f"strict code:   {'yes' if data['strict_code'] else 'no'} (QCVN 102:2016)")
    click.echo(f"hosted units:  {data['hosted_units']}")
    click.echo(f"created:       {data['created_at']}")
    click.echo(f"updated:       {data['updated_at']}")
    broker = data.get("broker")
    if broker is None:
        return
    if "error" in broker:
        click.echo(f"broker:        unavailable ({broker['error']})")
        return
    click.echo(
        f"broker user:   {'present' if broker['user'] else 'missing'} (vhost {broker['vhost']})"
    )
    for kind in ("inbox", "outbox"):
        q = broker[kind]
        if q is None:
            click.echo(f"{kind + ':':<15}missing")
        elif q["messages"] is None:
            click.echo(f"{kind + ':':<15}{q['queue']}: no statistics yet")
        else:
            click.echo(
                f"{kind + ':':<15}{q['queue']}: {q['messages']} messages "
                f"({q['messages_ready']} ready, {q['messages_unacknowledged']} unacked), "
                f"{q['consumers']} consumer(s)"
            )


@agency.command()
@click.argument("code")
@friendly_errors
def suspend(code: str) -> None:
    """Stop routing to and from agency CODE; a connected agency also loses its publish right."""
    from relay.directory.service import suspend_agency

    change = suspend_agency(settings_from_env(), code)
    click.echo(f"{code}: suspended" if change.changed else f"{code}: already suspended")


@agency.command()
@click.argument("code")
@friendly_errors
def resume(code: str) -> None:
    """Route to and from agency CODE again (and give back its publish right)."""
    from relay.directory.service import resume_agency

    change = resume_agency(settings_from_env(), code)
    click.echo(f"{code}: active again" if change.changed else f"{code}: already active")
