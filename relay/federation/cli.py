"""``lienthong federation …``: links from this hub to another hub (issue 16)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from relay.cli.common import echo_json, friendly_errors, settings_from_env


@click.group()
def federation() -> None:
    """Links to another hub: add, list, show, remove, sync-directory."""


@federation.command()
@click.argument("name")
@click.option(
    "--amqp-url",
    required=True,
    help="The other hub's broker, e.g. amqp://000.00.00.H26@national-hub:5672/lienthong "
    "(a password in it is taken, with a warning: prefer --password-file).",
)
@click.option(
    "--agency",
    required=True,
    metavar="CODE",
    help="This hub's agency code on the other hub (its RabbitMQ user there).",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The password the other hub gave CODE (first line), instead of one in --amqp-url.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@friendly_errors
def add(name: str, amqp_url: str, agency: str, password_file: Path | None, as_json: bool) -> None:
    """Link this hub to another one as its agency CODE.

    Whatever an agency of this hub sends to a code this hub's directory does not serve goes to
    the other hub; what the other hub delivers to CODE comes in here. The running relay starts
    the link within seconds. Adding the same link again is harmless (a new --password-file
    replaces the password). To change a link (its URL, its name), remove it and add it again
    with the same CODE: the new link takes over the suspended agency the removed one left, and
    delivers what waited in its inbox. The password is stored encrypted with the key in
    LIENTHONG_SECRET_KEY_FILE (made by `lienthong relay make-secret-key FILE`); without it the
    link is refused.
    """
    from relay.federation.service import add_link

    _warn_password_in_url(amqp_url, password_file)
    added = add_link(settings_from_env(), name, amqp_url, agency, password_file)
    link = added.link
    if as_json:
        echo_json(
            {
                "name": link.name,
                "agency": link.agency,
                "amqp_url": link.amqp_url,
                "created": added.created,
                "reachable": added.reachable is None,
                "problem": added.reachable,
                "resumed_agency_of": added.resumed_agency_of,
            }
        )
        return
    what = "added" if added.created else "already there (password refreshed)"
    click.echo(f"federation link {link.name!r}: {what}; agency {link.agency} at {link.amqp_url}")
    if added.resumed_agency_of is not None:
        click.echo(
            f"  {link.agency} was the agency of the removed link {added.resumed_agency_of!r}: "
            "active again here; what waits in its inbox goes out through this link"
        )
    if added.reachable is None:
        click.echo(f"  the other hub accepts {link.agency} and has its inbox")
    else:
        click.echo(f"  warning: {added.reachable}; the relay keeps trying", err=True)


def _warn_password_in_url(amqp_url: str, password_file: Path | None) -> None:
    try:
        in_url = urlsplit(amqp_url).password
    except ValueError:
        return  # not a URL: add_link says so
    if not in_url:
        return
    used = (
        "it is ignored: --password-file is used"
        if password_file is not None
        else "it is taken and stored encrypted"
    )
    click.echo(
        "warning: --amqp-url holds a password (" + used + "), and a password on the command "
        "line shows in `ps` and in the shell history; write it on the first line of a file "
        "readable only by you and pass --password-file FILE instead",
        err=True,
    )


@federation.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@friendly_errors
def list_(as_json: bool) -> None:
    """List this hub's federation links."""
    from relay.federation.service import list_links

    links = list_links(settings_from_env())
    if as_json:
        echo_json(links)
        return
    for k in links:
        role = "upstream" if k["upstream"] else "standby"
        click.echo(f"{k['name']:<16} {k['agency']:<16} {role:<9} {k['amqp_url']}")
    click.echo(f"{len(links)} links")


def _queue(data: dict[str, Any] | None) -> str:
    if data is None:
        return "missing"
    if "error" in data:
        return f"{data.get('queue', '')} unavailable ({data['error']})"
    return f"{data['queue']}: {data['messages']} messages, {data['consumers']} consumers"


@federation.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@friendly_errors
def show(name: str, as_json: bool) -> None:
    """Show link NAME and its backlog each way."""
    from relay.federation.service import show_link

    data = show_link(settings_from_env(), name)
    if as_json:
        echo_json(data)
        return
    click.echo(f"name:        {data['name']}")
    click.echo(f"agency:      {data['agency']} (state here: {data['state']})")
    click.echo(f"other hub:   {data['amqp_url']}")
    click.echo(f"upstream:    {'yes' if data['upstream'] else 'no'}")
    if data["password_stored"] == "encrypted":
        click.echo("password:    encrypted (key: LIENTHONG_SECRET_KEY_FILE)")
    else:
        click.echo(
            "password:    stored in PLAIN TEXT; set LIENTHONG_SECRET_KEY_FILE (lienthong relay "
            "make-secret-key FILE) and run lienthong relay setup to encrypt it"
        )
    here = data["here"]
    if "error" in here:
        click.echo(f"here:        unavailable ({here['error']})")
    else:
        click.echo(f"to send:     {_queue(here['to_send'])}")
        if here.get("to_send_urgent") is not None:
            click.echo(f"  urgent:    {_queue(here['to_send_urgent'])}")
        click.echo(f"taken in:    {_queue(here['taken_in'])}")
    click.echo(f"to bring in: {_queue(data['there'])}")


@federation.command()
@click.argument("name")
@friendly_errors
def remove(name: str) -> None:
    """Remove link NAME: the relay stops it, its agency here is suspended (its backlog stays).

    To change a link, add it again afterwards with the same --agency: the new link takes the
    suspended agency over and delivers its backlog.
    """
    from relay.federation.service import remove_link

    link = remove_link(settings_from_env(), name)
    click.echo(
        f"federation link {link.name!r} removed; agency {link.agency} suspended here "
        f"(what waits in {link.agency}'s inbox stays there; `lienthong federation add NAME "
        f"--agency {link.agency} …` takes it over and delivers it)"
    )


@federation.command(name="sync-directory")
@click.argument("name")
@friendly_errors
def sync_directory(name: str) -> None:
    """Push this hub's units to the hub of link NAME as units hosted by the link's agency there.

    That hub takes them if its operator made the agency a peer (`federation peer add CODE`
    there); its answer comes back as a receipt the link logs (federation.receipt).
    """
    from relay.federation.service import sync_directory as push

    pushed = push(settings_from_env(), name)
    click.echo(
        f"{pushed.units} units sent to {pushed.link.amqp_url} as units hosted by "
        f"{pushed.link.agency} (message {pushed.message_id}); its receipt comes back through "
        "the link"
    )


@federation.group()
def peer() -> None:
    """Agencies of this hub that are other hubs and may push their units here."""


@peer.command(name="add")
@click.argument("code")
@friendly_errors
def peer_add(code: str) -> None:
    """Allow connected agency CODE (another hub) to push its units as its hosted units."""
    from relay.federation.service import set_peer

    changed = set_peer(settings_from_env(), code, True)
    click.echo(f"{code} is a peer hub" + ("" if changed else " already"))


@peer.command(name="remove")
@click.argument("code")
@friendly_errors
def peer_remove(code: str) -> None:
    """No longer take directory pushes from CODE (the units it pushed stay)."""
    from relay.federation.service import set_peer

    changed = set_peer(settings_from_env(), code, False)
    click.echo(f"{code} is no longer a peer hub" if changed else f"{code} was not a peer hub")


@peer.command(name="list")
@friendly_errors
def peer_list() -> None:
    """List the peer hubs."""
    from relay.federation.service import list_peers

    found = list_peers(settings_from_env())
    for code in found:
        click.echo(code)
    click.echo(f"{len(found)} peer hubs")
