"""The persisted retry schedule: publish due retries, probe destinations that are down.

Each pass is one transaction: rows are claimed with ``FOR UPDATE SKIP LOCKED``, published with
confirms, marked ``queued`` and committed. A crash after the publish and before the commit
leaves the row due, so it is published again with the same message id, which the recipient's
adapter recognises: at least once, never lost.
"""

from __future__ import annotations

import dataclasses

import structlog
from sqlalchemy import Connection, Engine

from relay.config import Settings
from relay.domain import states
from relay.domain.outgoing import Outgoing, delivery
from relay.retry import store
from relay.retry.amqp import Unroutable
from relay.retry.policy import REACHED_STATES
from relay.retry.returns import DESTINATION_UP, PublishFn, apply_return
from schemas import topology as t

log = structlog.get_logger()

RETRY_PUBLISHED = "retry_published"
PROBE_PUBLISHED = "probe_published"

#: Down destinations looked at per pass (there are few; this only bounds one pass).
PROBE_BATCH = 50


def outgoing(due: store.Due) -> Outgoing:
    """The copy of the delivery, identical to the first one (same message id, same body)."""
    d = due.delivery
    return delivery(
        submission_id=d.submission_id,
        sender=d.submitted_by,
        recipient=d.recipient,
        route_to=d.route_to,
        message_type=t.TYPE_DOCUMENT,
        body=due.payload,
        message_id=d.message_id,  # as stored: a delivery made before issue 12 keeps its id
    )


def _send(
    conn: Connection, settings: Settings, due: store.Due, publish: PublishFn, *, kind: str
) -> bool:
    """Publish one claimed delivery and record it; an unroutable copy counts as a failed try."""
    d = due.delivery
    try:
        publish(outgoing(due))
    except Unroutable as e:
        # As if the copy had been published and returned at once: one attempt spent.
        apply_return(conn, settings, dataclasses.replace(d, state=states.QUEUED), str(e))
        return False
    store.mark_queued(conn, d.id)
    attempt = d.attempts + 1
    store.add_event(
        conn,
        kind=kind,
        document_pk=d.document_pk,
        delivery_id=d.id,
        actor=d.route_to,
        description=f"attempt {attempt} published to {t.inbox_queue(d.route_to)}",
        detail={"attempt": attempt},
    )
    log.info(
        "delivery.retry_published" if kind == RETRY_PUBLISHED else "destination.probe_published",
        message_id=d.message_id,
        document_id=d.document_id,
        agency=d.route_to,
        attempt=attempt,
    )
    return True


def publish_due(engine: Engine, settings: Settings, publish: PublishFn) -> int:
    """Publish the retries whose time has come; returns how many were claimed."""
    with engine.begin() as conn:
        claimed = store.claim_due(conn, settings.retry_batch_size)
        for due in claimed:
            _send(conn, settings, due, publish, kind=RETRY_PUBLISHED)
    return len(claimed)


def probe_destinations(engine: Engine, settings: Settings, publish: PublishFn) -> None:
    """For each destination that is down: bring it back up, or send one probe per interval."""
    with engine.begin() as conn:
        for dest in store.lock_down_destinations(conn, PROBE_BATCH):
            why = _back_up(conn, settings, dest)
            if why is not None:
                released = store.mark_up(conn, dest.code)
                store.add_event(
                    conn,
                    kind=DESTINATION_UP,
                    actor=dest.code,
                    description=f"destination {dest.code} is back ({why}); "
                    f"{released} held deliveries released",
                    detail={"destination": dest.code, "released": released, "why": why},
                )
                log.warning("destination.up", agency=dest.code, released=released, why=why)
                continue
            if dest.last_probe_at is not None and (
                store.seconds_since(conn, dest.last_probe_at) < settings.destination_probe_seconds
            ):
                continue
            if dest.probe_delivery_id is not None and (
                store.delivery_state(conn, dest.probe_delivery_id) == states.QUEUED
            ):
                continue  # the probe is out and not back yet; _back_up decides when it is over
            probe = store.claim_probe(conn, dest.code)
            if probe is None:
                continue
            if _send(conn, settings, probe, publish, kind=PROBE_PUBLISHED):
                store.set_probe(conn, dest.code, probe.delivery.id)


def _back_up(conn: Connection, settings: Settings, dest: store.Destination) -> str | None:
    """Why ``dest`` counts as up again, or None while it is still down."""
    if dest.down_since is not None and store.reached_since(conn, dest.code, dest.down_since):
        return "a delivery reached it"
    if dest.probe_delivery_id is not None:
        state = store.delivery_state(conn, dest.probe_delivery_id)
        if state in REACHED_STATES:
            return "the probe reached it"
        quiet = settings.destination_probe_seconds
        if (
            state == states.QUEUED
            and dest.last_probe_at is not None
            and store.seconds_since(conn, dest.last_probe_at) >= quiet
        ):
            # Returns may be queued up behind a burst: only a destination from which nothing
            # at all came back for a whole probe interval counts as taking its deliveries.
            last = store.seconds_since_last_return(conn, dest.code)
            if last is None or last >= quiet:
                return "the probe was not returned"
    if store.held_deliveries(conn, dest.code) == 0:
        return "nothing is held for it"
    return None
