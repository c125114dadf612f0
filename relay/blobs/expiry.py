"""Chunked transfers that never finish (issue 17): the delivery fails and its sender is told.

A recipient's adapter asks for the chunks of a delivered document until it has them all, then
answers 01. One that never finishes (stopped for good, its disk full, a bug) would ask forever,
and the sender would never learn. So a delivery of a document with chunked attachments that is
still ``queued`` ``LIENTHONG_TRANSFER_TIMEOUT_HOURS`` after it was queued (the time its state
last changed: a ``resend`` starts the clock again) is failed through the retry worker's own path
(:func:`relay.retry.returns.fail_delivery`): ``failed`` with the reason in the operators'
failures list, a ``failed`` event on the document's timeline, and a ``delivery_failed`` receipt
to the submitting agency naming the recipient and the attachments. From then on the recipient's
requests for those chunks are answered with ``chunk_refused`` (:mod:`relay.blobs.service`), on
which its adapter abandons the transfer. An operator may still ``resend`` the delivery.

Only ``queued`` deliveries are timed: ``pending`` and ``retrying`` ones have not reached the
recipient's inbox yet, and the retry schedule already gives up on those after
``LIENTHONG_RETRY_MAX_ATTEMPTS``. Every relay's retry worker runs the sweep (rows are claimed
with ``SKIP LOCKED``), at most every :func:`check_interval` seconds.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import structlog
from sqlalchemy import Engine

from relay.blobs.store import chunked_attachments
from relay.config import Settings
from relay.domain.outgoing import Outgoing
from relay.retry import store
from relay.retry.returns import PublishFn, fail_delivery
from relay.retry.schedule import send_receipts

log = structlog.get_logger()

#: Stale deliveries failed per transaction (a sweep takes as many transactions as it needs,
#: until a batch comes back short: one cut by ``store.PASS_MAX_BYTES`` of payloads ends the
#: sweep too, and the next sweep takes the rest).
BATCH: Final = 100
#: The sweep runs at most this often (seconds), or four times per timeout if that is shorter.
MAX_CHECK_SECONDS: Final = 60.0


def check_interval(settings: Settings) -> float:
    """Seconds between two sweeps: a transfer fails at most a quarter of its timeout late."""
    return min(MAX_CHECK_SECONDS, settings.transfer_timeout_hours * 3600 / 4)


def _hours(settings: Settings) -> str:
    """The timeout in words (a test sets it to seconds)."""
    hours = settings.transfer_timeout_hours
    if hours >= 1:
        return f"{hours:g} h"
    if hours * 60 >= 1:
        return f"{hours * 60:.0f} min"
    return f"{hours * 3600:.0f} s"


def _words(stale: store.Stale, settings: Settings) -> tuple[str, str, dict[str, Any]]:
    """(the error operators see, the reason the sender reads, the event's detail)."""
    d = stale.delivery
    files = chunked_attachments(stale.payload)
    listed = ", ".join(f.words() for f in files) or "its attachments"
    since = stale.queued_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    error = (
        f"transfer timed out: {d.route_to} did not finish receiving the chunks of {listed} "
        f"within {_hours(settings)} after the document was queued for it ({since}); no 01 came"
    )
    told = (
        f"{d.recipient} did not receive document {d.document_id!r}: its adapter "
        f"({d.route_to}) did not finish downloading {listed} from the hub within "
        f"{_hours(settings)} after the document was queued for it ({since}); the hub does not "
        f"know how much of it arrived. The hub has given up this transfer and refuses the "
        f"recipient's further requests for these chunks. Ask {d.recipient} to check that its "
        f"adapter is running and has disk space for the file, then send the document again "
        f"(or ask the hub's operators to resend it)."
    )
    detail = {
        "transfer_timeout_hours": settings.transfer_timeout_hours,
        "queued_at": stale.queued_at.isoformat(),
        "attachments": [{"name": f.name, "size": f.size, "sha256": f.sha256} for f in files],
    }
    return error, told, detail


def expire_transfers(engine: Engine, settings: Settings, publish: PublishFn) -> int:
    """Fail every delivery whose chunked transfer timed out; returns how many. Each batch is
    committed before its receipts are published (a receipt no inbox takes is kept and retried
    by the bounce schedule, as for any ``delivery_failed``; one the relay stopped before
    publishing is published again by :func:`relay.retry.schedule.republish_receipts`)."""
    older_than = settings.transfer_timeout_hours * 3600
    failed = 0
    while True:
        outs: list[Outgoing] = []
        with engine.begin() as conn:
            stale = store.lock_stale_chunked(conn, older_than, BATCH)
            for s in stale:
                error, told, detail = _words(s, settings)
                outs.append(
                    fail_delivery(
                        conn,
                        s.delivery,
                        attempts=s.delivery.attempts,
                        error=error,
                        description=error,
                        told=told,
                        detail=detail,
                    )
                )
        send_receipts(engine, settings, outs, publish)
        failed += len(stale)
        if len(stale) < BATCH:
            if failed:
                log.warning("transfers.expired", deliveries=failed, timeout=_hours(settings))
            return failed
