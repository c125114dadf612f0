"""The relay daemon (``lienthong relay run``): consume outboxes, route, persist, publish, confirm.

Modules:

- :mod:`relay.worker.main` — composition root: builds the engines (the loop's and each side
  worker's), signals, reconnect backoff, the retry worker thread.
- :mod:`relay.worker.amqp` — the AMQP seam: every pika internal the relay relies on (frame
  gathering, publish encoding, zero-copy bodies, the counters, ``_on_deliver``), pinned by
  ``tests/unit/test_publish_frames.py`` and ``tests/integration/test_amqp_seam_broker.py``.
- :mod:`relay.worker.confirms` — pure bookkeeping of publisher confirms, what a confirm means
  for each publish, and the one ack/hold decision about outbox messages (``verdict``).
- :mod:`relay.worker.loop` — ``RelayLoop``, one pika ``SelectConnection``'s lifetime, made of
  one module per concept over the state they share (:mod:`relay.worker.loopstate`):
  :mod:`~relay.worker.lifecycle` (connection, channels, stop), :mod:`~relay.worker.outboxes`
  (one consuming channel for every active connected agency's outbox, the directory polled every
  ``agency_poll_seconds``, declaring, pausing intake), :mod:`~relay.worker.batching`,
  :mod:`~relay.worker.transaction` (a batch on the database thread),
  :mod:`~relay.worker.publishing` (confirm-mode publishing, streamed confirms, acks) and
  :mod:`~relay.worker.sweep` (the pending sweep).
- :mod:`relay.worker.intake` — pure rules: when intake pauses and resumes, the prefetch after a
  pause, when gathered messages go as a batch.
- :mod:`relay.worker.dbthread` — transactions beside the ioloop, several batches per commit
  when the database is the slower side. Two of them: one stores batches, the other records
  confirmed publishes (``queued``), polls the directory and sweeps, on a connection of its own,
  so PostgreSQL does both at once and the ioloop never waits for it. They wait out a
  PostgreSQL outage (backoff, logged once) and run the same work again, and retry a deadlocked
  transaction, instead of dropping the broker connection.
- :mod:`relay.worker.large` — the turn the worker processes take to store a large document (one
  at a time, kept until its connection is given back).
- :mod:`relay.worker.process` — one batch in one transaction: checks, routing, rows, and what
  to publish per outbox message.
- :mod:`relay.worker.store` — multi-row SQL (``INSERT … SELECT unnest(…) ON CONFLICT DO NOTHING
  RETURNING``).

Choices where DESIGN.md is silent:

- An outbox message is acked only when every copy, forward and receipt it produced is
  confirmed AND its deliveries are recorded ``queued``. A copy the broker nacks leaves its
  delivery ``pending`` with ``last_error``; the outbox message is
  acked anyway (the database holds everything to publish it again) and the sweep republishes
  pending deliveries older than ``pending_sweep_seconds`` (``FOR UPDATE SKIP LOCKED``). A
  returned (unroutable) copy goes to the retry schedule instead (issue 12 item 6). A returned
  or nacked status forward or receipt, which has no delivery row, is kept in ``bounces`` and
  retried by the schedule; the outbox message is acked, never requeued.
- A submission whose ``message_id`` is already stored is a duplicate: it is acked, its pending
  deliveries are published again (unless this relay is still awaiting their confirm), and the
  stored receipt is sent again. The same ``message_id`` from another agency is a submission of
  its own.
  A duplicate status is recognised by ``events.message_id``; it is forwarded again with the same
  deterministic id and its stored receipt is sent again; the state is not moved twice.
- Receipts have deterministic ids (``receipt_message_id(submission, kind, by=agency)``), so a
  receipt sent again is recognisably the same; a rejected message without ``message_id`` gets a
  random one. Every hub id includes its kind and the submitting agency
  (:func:`relay.domain.outgoing.hub_id`); a submission and a status are deduplicated per sender,
  so one agency reusing another's ids changes nothing for the other (issue 12 item 4). A
  duplicate is answered with the receipt stored for it, found by (agency, in_reply_to, kind).
- A message in agency B's outbox whose ``user_id`` is another agency is answered to that
  agency (never to B) and kept; a property or text PostgreSQL cannot hold (NUL, not UTF-8) is
  refused with safe text and kept losslessly (:mod:`relay.domain.safe_text`); a message the
  relay cannot process at all is rejected with a log reference, never retried in a loop.
- Which delivery a status is about (several submissions may share a DocumentId): see
  :mod:`relay.domain.statuses`. A non-13 status goes to the document's sender through the agency
  that submitted it; a 13 goes to the recipient's inbox (its host for a hosted unit).
- A status during a pending take-back (13) is recorded but does not move the delivery; it
  raises the state remembered (``detail.before_recall``, carried by every status event of the
  take-back), and 16 returns the delivery there (:mod:`relay.domain.states`).
- Per-message logs (``document.accepted``, ``status.routed``) are at debug level so that the
  hot path does not write a line per document; rejections, duplicates and lifecycle events are
  at info/warning, bound to ``message_id``, ``document_id``, ``sender`` and ``recipient``.
"""
