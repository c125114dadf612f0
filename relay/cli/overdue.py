"""``lienthong overdue``: deliveries whose 01 or 03 is past its Decree 30 due time."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from relay.cli.common import echo_json, friendly_errors, settings_from_env
from relay.cli.database import database_errors


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.option(
    "--agency",
    metavar="CODE",
    help="Only deliveries this agency has to answer (addressed to it or to a unit it hosts).",
)
@friendly_errors
def overdue(as_json: bool, agency: str | None) -> None:
    """Deliveries past due, with how late (the longest overdue first).

    Due times (Decree 30/2020): an urgent document's (Priority 1-4) 01 and 03 within
    LIENTHONG_URGENT_DEADLINE_SECONDS of delivery, others' by the end of the next working day
    (Vietnamese calendar). Deliveries without due times yet get them first.
    """
    from relay.db.engine import make_engine
    from relay.deadlines.calendar import VIETNAM, describe_lateness
    from relay.deadlines.job import calendar_from
    from relay.deadlines.store import fill_all_due_times, overdue_deliveries

    settings = settings_from_env()
    engine = make_engine(settings.database_url, pool_size=1)
    now = dt.datetime.now(dt.UTC)
    try:
        with database_errors():
            fill_all_due_times(engine, calendar_from(settings), settings.urgent_deadline_seconds)
            with engine.connect() as conn:
                found = overdue_deliveries(conn, now, agency=agency)
    finally:
        engine.dispose()
    rows: list[dict[str, Any]] = [
        {
            "document_id": o.document_id,
            "submission_id": o.submission_id,
            "sender": o.sender,
            "recipient": o.recipient,
            "route_to": o.route_to,
            "state": o.state,
            "awaiting": o.status_code,
            "urgent": o.urgent,
            "due_at": o.due_at.astimezone(VIETNAM).isoformat(timespec="seconds"),
            "late_seconds": round(o.late(now).total_seconds()),
            "late": describe_lateness(o.late(now)),
            "sender_notified": o.notified,
        }
        for o in found
    ]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No delivery is overdue.")
        return
    for r in rows:
        via = f" via {r['route_to']}" if r["route_to"] != r["recipient"] else ""
        kind = "urgent" if r["urgent"] else "normal"
        click.echo(
            f"{r['late']:>16} late  {r['recipient']}{via} owes {r['awaiting']} for "
            f"{r['document_id']} from {r['sender']} ({kind}, due {r['due_at']}, {r['state']})"
        )
    click.echo(f"{len(rows)} overdue deliver{'ies' if len(rows) != 1 else 'y'}")
