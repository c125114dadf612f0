"""The relay daemon (``lienthong relay run``): consume outboxes, route, persist, publish, confirm.

Modules:

- :mod:`relay.worker.main` — composition root: signals, reconnect backoff, the retry worker
  thread (``relay.retry.worker.RetryWorker`` when installed).
- :mod:`relay.worker.loop` — the pika ``SelectConnection``: one consuming channel for every
  active connected agency's outbox (the directory is polled every ``agency_poll_seconds``), one
  confirm-mode publishing channel, batching, streamed confirms, acks, the pending sweep.
- :mod:`relay.worker.dbthread` — transactions beside the ioloop, several batches per commit
  when the database is the slower side. Two of them: one stores batches, the other records
  confirmed publishes (``queued``) on a connection of its own, so PostgreSQL does both at once.
- :mod:`relay.worker.process` — one batch in one transaction: checks, routing, rows, and what
  to publish per outbox message.
- :mod:`relay.worker.store` — multi-row SQL (``INSERT … SELECT unnest(…) ON CONFLICT DO NOTHING
  RETURNING``).

Choices where DESIGN.md is silent:

- An outbox message is acked only when every copy, forward and receipt it produced is
  confirmed AND its deliveries are recorded ``queued``. A copy the broker returns (no inbox
  queue) or nacks leaves its delivery ``pending`` with ``last_error``; the outbox message is
  acked anyway (the database holds everything to publish it again) and the sweep republishes
  pending deliveries older than ``pending_sweep_seconds`` (``FOR UPDATE SKIP LOCKED``). A
  nacked status forward or receipt, which has no delivery row, hands the outbox message back
  (nack + requeue) so that the duplicate path publishes it again.
- A submission whose ``message_id`` is already stored is a duplicate: it is acked, its pending
  deliveries are published again (unless this relay is still awaiting their confirm), and the
  stored receipt is sent again. The same ``message_id`` from another agency is rejected.
  A duplicate status is recognised by ``events.message_id``; it is forwarded again with the same
  deterministic id and its stored receipt is sent again; the state is not moved twice.
- Receipts have deterministic ids (``receipt_message_id(submission, kind)``), so a receipt sent
  again is recognisably the same; a rejected message without ``message_id`` gets a random one.
- Which delivery a status is about (several submissions may share a DocumentId): see
  :mod:`relay.domain.statuses`. A non-13 status goes to the document's sender through the agency
  that submitted it; a 13 goes to the recipient's inbox (its host for a hosted unit).
- A status during a pending take-back (13) is recorded but does not move the delivery; 16
  returns it to the state remembered in the 13 event (``detail.before_recall``).
- Per-message logs (``document.accepted``, ``status.routed``) are at debug level so that the
  hot path does not write a line per document; rejections, duplicates and lifecycle events are
  at info/warning, bound to ``message_id``, ``document_id``, ``sender`` and ``recipient``.
"""
