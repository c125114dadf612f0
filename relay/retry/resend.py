"""``lienthong resend``: an operator re-drives failed deliveries, same message id, on the record.

No row lock is held while the broker confirms (issue 12 item 12): the failed rows are claimed
in a short transaction (``retrying``, attempts reset, a ``resent`` event naming the operator,
next attempt one lease ahead), then published with confirms, then each confirmed copy is marked
``queued`` in a transaction of its own. Run twice, the second run finds nothing failed and
changes nothing. A copy the broker refuses stays ``retrying``: the retry schedule sends it when
the lease ends, so a resend is never lost half way.

Memory is bounded by bytes (issue 14): the rows are claimed and published in batches of
submissions of at most :data:`relay.retry.store.PASS_MAX_BYTES` of payload (the first whatever
its size), each payload read once and shared by its copies. A document submitted once is one
batch; a run stopped between batches leaves the later ones ``failed``, for the next run.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy import Connection, Engine, select

from relay.db.tables import deliveries, documents
from relay.domain.events import RESENT, RETRY_PUBLISHED
from relay.errors import NotFound
from relay.retry import store
from relay.retry.returns import PublishFn
from relay.retry.schedule import CLAIM_LEASE_SECONDS, outgoing
from schemas import topology as t

log = structlog.get_logger()


@dataclass(frozen=True)
class Resent:
    document_id: str
    submission_id: str
    recipient: str
    route_to: str
    message_id: str
    previous_attempts: int


def resend(
    engine: Engine,
    document_id: str,
    publish: PublishFn,
    *,
    recipient: str | None = None,
    by: str,
) -> list[Resent]:
    """Publish the failed deliveries of ``document_id`` again; what was resent (maybe nothing)."""
    done: list[Resent] = []
    taken: set[int] = set()
    while True:
        with engine.begin() as conn:
            if not taken:
                _check(conn, document_id, recipient)
            claimed = store.lock_failed(conn, document_id, recipient, exclude=taken)
            for due in claimed:
                d = due.delivery
                store.schedule_retry(
                    conn, d.id, attempts=0, error="resent by an operator", delay=CLAIM_LEASE_SECONDS
                )
                store.add_event(
                    conn,
                    kind=RESENT,
                    document_pk=d.document_pk,
                    delivery_id=d.id,
                    actor=by,
                    description=f"resent by {by} after {d.attempts} failed attempts",
                    detail={"by": by, "previous_attempts": d.attempts},
                )
        if not claimed:
            return done
        taken.update(due.delivery.id for due in claimed)
        done.extend(_publish(engine, claimed, publish, by=by))
        del claimed  # its payloads go before the next batch is read


def _check(conn: Connection, document_id: str, recipient: str | None) -> None:
    """NotFound unless ``document_id`` is known (and ``recipient`` is one of its recipients)."""
    recipients = set(
        conn.execute(
            select(deliveries.c.recipient)
            .join(documents, documents.c.id == deliveries.c.document_pk)
            .where(documents.c.document_id == document_id)
        ).scalars()
    )
    if (
        not recipients
        and conn.execute(
            select(documents.c.id).where(documents.c.document_id == document_id).limit(1)
        ).first()
        is None
    ):
        raise NotFound(f"document_id: no document {document_id!r} is known to the relay")
    if recipient is not None and recipient not in recipients:
        known = ", ".join(sorted(recipients)) or "none"
        raise NotFound(
            f"--recipient: {recipient!r} is not a recipient of {document_id!r} "
            f"(recipients: {known})"
        )


def _publish(
    engine: Engine, claimed: list[store.Due], publish: PublishFn, *, by: str
) -> list[Resent]:
    """Publish a claimed batch, each confirmed copy marked ``queued``; what was resent."""
    done: list[Resent] = []
    for due in claimed:
        d = due.delivery
        publish(outgoing(due))  # a lost broker raises: the rest are due when the lease ends
        with engine.begin() as conn:
            store.mark_queued(conn, d.id)
            store.add_event(
                conn,
                kind=RETRY_PUBLISHED,
                document_pk=d.document_pk,
                delivery_id=d.id,
                actor=d.route_to,
                description=f"attempt 1 (resend) published to {t.inbox_queue(d.route_to)}",
                detail={"attempt": 1, "resend": True},
            )
        log.info(
            "delivery.resent",
            message_id=d.message_id,
            document_id=d.document_id,
            agency=d.route_to,
            by=by,
        )
        done.append(
            Resent(
                document_id=d.document_id,
                submission_id=d.submission_id,
                recipient=d.recipient,
                route_to=d.route_to,
                message_id=d.message_id,
                previous_attempts=d.attempts,
            )
        )
    return done
