"""``lienthong trace | failures | resend``: what operators use to follow and repair deliveries."""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
from typing import Any

import click
import pika
import pika.exceptions

from relay.cli.common import echo_json, friendly_errors, settings_from_env
from relay.cli.database import database_errors
from relay.domain import states


def _when(value: dt.datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _event_line(e: Any) -> str:
    parts = [_when(e.at), f"{e.kind:<16}"]
    if e.status_code:
        parts.append(f"{e.status_code} {e.status}")
    if e.staff:
        parts.append(f"cán bộ: {e.staff}")
    if e.actor:
        parts.append(f"({e.actor})")
    if e.description and e.description != e.status:
        parts.append(f"- {e.description}")
    return "  ".join(parts)


def _failed_attempts(n: int) -> str:
    """``deliveries.attempts`` counts copies that came back (relay/retry), not publishes: the
    first publish is "attempt 1" in the timeline, so say nothing while none has failed."""
    return f"  failed attempts {n}" if n else ""


@click.command()
@click.argument("document_id")
@click.option("--json", "as_json", is_flag=True, help="Print the timeline as JSON.")
@friendly_errors
def trace(document_id: str, as_json: bool) -> None:
    """The whole timeline of a document, per recipient (times in UTC)."""
    from relay.db.engine import make_engine
    from relay.federation.store import id_there
    from relay.queries.trace import load_trace

    engine = make_engine(settings_from_env().database_url, pool_size=1)
    try:
        with database_errors(), engine.connect() as conn:
            result = load_trace(conn, document_id)
    finally:
        engine.dispose()
    if as_json:
        echo_json(result.as_json())
        return
    n = len(result.submissions)
    click.echo(f"Document {result.document_id}: {n} submission{'s' if n != 1 else ''}")
    for i, s in enumerate(result.submissions, 1):
        click.echo("")
        click.echo(
            f"Submission {i}/{n}  {s.message_id}  {s.business} ({s.business_type})  "
            f"from {s.sender} via {s.submitted_by}  received {_when(s.received_at)}"
        )
        if s.submitted_by in result.hubs:  # relay/federation: it came from another hub
            click.echo(
                f"  came from another hub: {s.submitted_by} is {result.hubs[s.submitted_by]['is']}"
            )
        if s.subject:
            click.echo(f"  Trích yếu: {s.subject}")
        for e in s.events:
            click.echo("  " + _event_line(e))
        for rc in s.receipts:
            extra = f" for {rc['recipient']}" if rc.get("recipient") else ""
            click.echo(f"  {_when(rc['at'])}  receipt {rc['kind']}{extra} to {rc['agency']}")
        for r in s.recipients:
            via = f" via {r.route_to}" if r.route_to != r.recipient else ""
            click.echo(
                f"  Recipient {r.recipient}{via}: {r.state.upper()}"
                + _failed_attempts(r.attempts)
                + (f"  next attempt {_when(r.next_attempt_at)}" if r.next_attempt_at else "")
            )
            hub = result.hubs.get(r.route_to)
            if hub is not None:  # relay/federation: it went on to another hub
                there = id_there(hub["direction"], s.submitted_by, s.message_id)
                click.echo(
                    f"    went on to another hub: {r.route_to} is {hub['is']}; there: {there}"
                )
            if r.last_error and r.state in (states.RETRYING, states.FAILED):
                click.echo(f"    last error: {r.last_error}")
            for e in r.events:
                click.echo("    " + _event_line(e))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.option("--limit", default=1000, show_default=True, help="At most this many deliveries.")
@friendly_errors
def failures(as_json: bool, limit: int) -> None:
    """Deliveries that failed or are retrying, statuses and receipts that came back and are
    retrying or failed, and destinations that are down."""
    from relay.db.engine import make_engine
    from relay.queries.failures import load_failures

    engine = make_engine(settings_from_env().database_url, pool_size=1)
    try:
        with database_errors(), engine.connect() as conn:
            result = load_failures(conn, limit=limit)
    finally:
        engine.dispose()
    if as_json:
        echo_json(result.as_json())
        return
    for d in result.destinations_down:
        click.echo(
            f"DESTINATION DOWN {d.code} since {_when(d.down_since)}: {d.held} deliveries held, "
            f"last probe {_when(d.last_probe_at)}; last error: {d.last_error}"
        )
    for m in result.messages:
        nxt = _when(m.next_attempt_at) if m.state == states.RETRYING else "-"
        click.echo(
            f"{m.state.upper()} {m.message_type} {m.message_id} to {m.route_to} "
            f"(about submission {m.correlation_id or '-'}): {m.attempts} failed attempts, "
            f"next {nxt}; last error: {m.last_error or '-'}"
        )
    if not result.deliveries:
        click.echo("no failed or retrying deliveries")
        return
    click.echo(
        f"{'STATE':<9} {'DOCUMENT':<40} {'RECIPIENT':<16} {'FAILED ATTEMPTS':>15}  "
        f"{'NEXT ATTEMPT':<24} LAST ERROR"
    )
    for f in result.deliveries:
        state = "held" if f.held else f.state
        nxt = "held (destination down)" if f.held else _when(f.next_attempt_at)
        click.echo(
            f"{state:<9} {f.document_id:<40} {f.recipient:<16} {f.attempts:>15}  "
            f"{nxt:<24} {f.last_error or '-'}"
        )


@click.command()
@click.argument("document_id")
@click.option("--recipient", default=None, metavar="CODE", help="Only this recipient.")
@click.option("--by", default=None, metavar="NAME", help="Who resends (default: your login).")
@click.option("--json", "as_json", is_flag=True, help="Print what was resent as JSON.")
@friendly_errors
def resend(document_id: str, recipient: str | None, by: str | None, as_json: bool) -> None:
    """Re-drive the failed deliveries of a document (same message ids; safe to run twice)."""
    from relay.db.engine import make_engine
    from relay.domain.outgoing import Outgoing
    from relay.retry import amqp
    from relay.retry.resend import resend as do_resend

    settings = settings_from_env()
    operator = by or _login()
    engine = make_engine(settings.database_url, pool_size=1)
    connection: list[pika.BlockingConnection] = []
    channel: list[Any] = []

    def publish(out: Outgoing) -> None:
        # Connect only when there is something to send: "nothing to resend" needs no broker.
        if not channel:
            connection.append(amqp.connect(settings.amqp_url, name="lienthong resend"))
            channel.append(amqp.open_confirm_channel(connection[0]))
        amqp.publish(channel[0], out)

    try:
        with database_errors():
            done = do_resend(engine, document_id, publish, recipient=recipient, by=operator)
    finally:
        engine.dispose()
        for c in connection:
            with contextlib.suppress(pika.exceptions.AMQPError):
                c.close()
    if as_json:
        echo_json([r.__dict__ for r in done])
        return
    if not done:
        click.echo(
            f"nothing to resend: {document_id} has no failed delivery"
            + (f" to {recipient}" if recipient else "")
        )
        return
    for r in done:
        click.echo(
            f"resent {r.document_id} to {r.recipient} (message id {r.message_id}, "
            f"after {r.previous_attempts} failed attempts) by {operator}"
        )


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"
