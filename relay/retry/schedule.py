"""The persisted retry schedule: publish due retries, probe destinations that are down.

No row lock is held while the broker confirms (issue 12 item 12): due rows are *claimed* in a
short transaction (``FOR UPDATE SKIP LOCKED``, then their ``next_attempt_at`` is pushed
``CLAIM_LEASE_SECONDS`` ahead, so no other relay takes them meanwhile), published with
confirms outside any transaction, and the outcome is recorded in another short transaction. A
crash after the publish and before the record leaves the row due again when the lease ends, so
it is published again with the same message id, which the recipient's adapter recognises: at
least once, never lost. Recording is forward only: a delivery the recipient reported on while
its copy was out keeps what it reached.
"""

from __future__ import annotations

import dataclasses

import structlog
from sqlalchemy import Connection, Engine

from relay.config import Settings
from relay.domain import receipt_groups, states
from relay.domain.events import DESTINATION_UP, PROBE_PUBLISHED, RETRY_PUBLISHED
from relay.domain.outgoing import Outgoing, delivery
from relay.retry import bounces, outbox, store
from relay.retry.amqp import NotConfirmed, Unroutable
from relay.retry.policy import REACHED_STATES
from relay.retry.returns import PublishFn, apply_return
from schemas import topology as t
from schemas.urgency import is_urgent_priority

log = structlog.get_logger()


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
        urgent=is_urgent_priority(d.priority),  # in the lane the first copy took (DESIGN §3)
    )


#: How long a claimed row is left alone by the other relays while it is being published.
CLAIM_LEASE_SECONDS = 60.0


def _record(
    engine: Engine,
    settings: Settings,
    due: store.Due,
    outcome: Exception | None,
    owed: list[Outgoing],
    *,
    kind: str,
) -> bool:
    """Record one publish of a claimed delivery in a transaction of its own; True if it went
    out. An unroutable copy counts as a failed attempt (as if published and returned at once);
    the ``delivery_failed`` receipt of a last attempt, committed and marked as owed, is added
    to ``owed`` for the caller to publish with the pass's others."""
    d = due.delivery
    receipts: list[Outgoing] = []
    with engine.begin() as conn:
        current = store.lock_delivery(conn, d.message_id)
        if current is None or current.state not in (states.RETRYING, states.FAILED):
            # A status overtook the copy: the delivery is not moved back, but the attempt that
            # reached the recipient is on its timeline all the same.
            if outcome is None and current is not None:
                _published(conn, d, kind)
            return outcome is None
        if isinstance(outcome, Unroutable):
            _, receipts = apply_return(
                conn, settings, dataclasses.replace(current, state=states.QUEUED), str(outcome)
            )
    if isinstance(outcome, Unroutable):
        owed.extend(receipts)
        return False
    with engine.begin() as conn:
        if outcome is not None:
            return False  # not confirmed: the lease ends and the schedule tries again
        store.mark_queued(conn, d.id)
        _published(conn, d, kind)
    return True


def _published(conn: Connection, d: store.Delivery, kind: str) -> None:
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


def _publish_one(publish: PublishFn, due: store.Due) -> Exception | None:
    """Publish outside any transaction; what went wrong, if it was the message's fault."""
    try:
        publish(outgoing(due))
    except (Unroutable, NotConfirmed) as e:
        return e
    return None


def publish_due(engine: Engine, settings: Settings, publish: PublishFn) -> int:
    """Publish the retries whose time has come (deliveries, then bounced statuses and
    receipts); returns how many were claimed. The copies of one document share its one
    payload object; a tick loads at most :data:`relay.retry.store.PASS_MAX_BYTES` of
    documents, and what does not fit stays due for the next tick (not leased)."""
    with engine.begin() as conn:
        claimed = store.claim_due(conn, settings.retry_batch_size)
        store.lease(conn, [c.delivery.id for c in claimed], CLAIM_LEASE_SECONDS)
        due_bounces = bounces.claim_due(conn, settings.retry_batch_size, CLAIM_LEASE_SECONDS)
    owed: list[Outgoing] = []
    for due in claimed:
        # A lost broker connection raises from here: the rest stay leased and come back, and
        # the receipts owed so far are published again by republish_receipts.
        _record(engine, settings, due, _publish_one(publish, due), owed, kind=RETRY_PUBLISHED)
    # The delivery_failed receipts of the pass's last attempts, their failures committed, go
    # out together: a destination whose inbox is gone fails many deliveries in one pass.
    send_receipts(engine, settings, owed, publish)
    for b in due_bounces:
        _send_bounce(engine, settings, b.outgoing, publish, bounce_id=b.id)
    return len(claimed) + len(due_bounces)


def send_all(engine: Engine, settings: Settings, outs: list[Outgoing], publish: PublishFn) -> None:
    """Publish statuses or receipts; one that no inbox takes is kept and retried (bounces)."""
    for out in outs:
        _send_bounce(engine, settings, out, publish, bounce_id=None)


def send_receipts(
    engine: Engine, settings: Settings, outs: list[Outgoing], publish: PublishFn
) -> None:
    """Publish receipts stored marked as owed (:mod:`relay.retry.outbox`), then clear their
    marks in one transaction: each was confirmed by the broker or is kept by the bounce
    schedule. With ``group_receipts`` the receipts to one agency go as one
    ``lienthong.receipts/1`` message (:mod:`relay.domain.receipt_groups`, as the worker groups
    a batch's): one confirm per agency, not per receipt. A group no inbox takes (or the broker
    refuses) is sent again receipt by receipt like :func:`send_all`, so each one no inbox takes
    gets a bounce row of its own. A crash before the marks are cleared leaves them all for
    :func:`republish_receipts` (same receipt ids; the adapter records a receipt once per id)."""
    if not outs:
        return
    if settings.group_receipts:
        for message in receipt_groups.messages(outs):
            if message.grouped:
                _send_group(engine, settings, message, publish)
            else:
                send_all(engine, settings, message.receipts, publish)
    else:
        send_all(engine, settings, outs, publish)
    with engine.begin() as conn:
        outbox.mark_published(conn, [out.message_id for out in outs])


def _send_group(
    engine: Engine, settings: Settings, message: receipt_groups.Message, publish: PublishFn
) -> None:
    try:
        publish(message.outgoing)
    except (Unroutable, NotConfirmed) as e:
        log.warning(
            "receipts.group_not_taken",
            message_id=message.outgoing.message_id,
            agency=message.outgoing.route_to,
            receipts=len(message.receipts),
            reason=str(e),
        )
        send_all(engine, settings, message.receipts, publish)


def republish_receipts(engine: Engine, settings: Settings, publish: PublishFn) -> int:
    """Publish again the receipts stored but still not confirmed
    ``receipt_republish_seconds`` after they were stored (their relay stopped in between);
    returns how many were claimed."""
    with engine.begin() as conn:
        owed = outbox.claim_unpublished(
            conn, settings.retry_batch_size, settings.receipt_republish_seconds
        )
    for out in owed:
        log.warning("receipt.republished", message_id=out.message_id, agency=out.route_to)
    send_receipts(engine, settings, owed, publish)
    return len(owed)


def _send_bounce(
    engine: Engine,
    settings: Settings,
    out: Outgoing,
    publish: PublishFn,
    *,
    bounce_id: int | None,
) -> None:
    try:
        publish(out)
    except (Unroutable, NotConfirmed) as e:
        with engine.begin() as conn:
            bounces.record(conn, settings, out, str(e))
        return
    if bounce_id is not None:
        with engine.begin() as conn:
            bounces.mark_sent(conn, bounce_id)
        log.info("bounce.published", message_id=out.message_id, agency=out.route_to)


def probe_destinations(engine: Engine, settings: Settings, publish: PublishFn) -> None:
    """For each destination that is down: bring it back up, or send one probe per interval.

    The probes of one pass load each document's payload once, and documents of at most
    :data:`relay.retry.store.PASS_MAX_BYTES` between them: a destination whose probe does not
    fit is probed by the next pass."""
    claimed: list[store.Delivery] = []
    budget = store.PayloadBudget()
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
            probe = store.claim_probe(conn, dest.code, budget)
            if probe is None:
                continue  # nothing held for it, or this pass holds enough bytes already
            # Claimed for one probe interval: set_probe's time keeps the next pass off it.
            store.set_probe(conn, dest.code, probe.id)
            claimed.append(probe)
        probes = store.with_payloads(conn, claimed)
    owed: list[Outgoing] = []
    for due in probes:
        _record(engine, settings, due, _publish_one(publish, due), owed, kind=PROBE_PUBLISHED)
    send_receipts(engine, settings, owed, publish)


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
