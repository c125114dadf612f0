"""Failed deliveries: returns, the retry schedule, destination health, resend (DESIGN §2 step 6).

How it behaves (the choices DESIGN leaves open, written down here):

- **Returns.** A recipient's adapter that cannot store a delivery rejects it without requeue; a
  delivery nobody takes before the inbox TTL expires, or that is redelivered past the quorum
  ``delivery-limit``, is dead-lettered too. All of them arrive on ``lienthong.returned`` with
  their original properties; ``message_id`` names the delivery. The reason shown to operators
  comes from ``x-death`` / ``x-first-death-reason`` (``rejected``, ``expired``,
  ``delivery_limit``). Returned statuses and receipts are kept in ``bounces`` and retried with
  the same policy (:mod:`relay.retry.bounces`); ids that match no delivery are stored in
  ``rejections`` with the reason and acked.
- **Attempts.** ``deliveries.attempts`` counts copies that came back. After a return the next
  attempt waits a delay drawn with full jitter from ``[0, min(cap, base·2^(attempts-1))]``
  (``LIENTHONG_RETRY_BASE_SECONDS`` = 30, ``LIENTHONG_RETRY_MAX_SECONDS`` = 3600). When
  ``attempts`` reaches ``LIENTHONG_RETRY_MAX_ATTEMPTS`` (8) the delivery is ``failed`` and the
  submitting agency gets a ``delivery_failed`` receipt naming the recipient and the last reason.
  A copy that no inbox takes (unroutable) counts as an attempt too, whether the relay or the
  schedule published it (the relay hands such a delivery to the schedule at once), and the
  ``delivery_failed`` receipt of a last unroutable attempt is published like any other.
- **The delivery_failed receipt** is stored marked as owed (``receipts.publish_pending_since``)
  in the transaction that fails the delivery and published after the commit; the mark is
  cleared once the broker confirmed it. One still marked ``LIENTHONG_RECEIPT_REPUBLISH_SECONDS``
  (60) later (its relay was killed in between) is published again by the schedule, same id
  (:mod:`relay.retry.outbox`).
- **The schedule** is ``deliveries.next_attempt_at`` in PostgreSQL. Every relay runs a retry
  worker that looks for due rows every ``LIENTHONG_RETRY_TICK_SECONDS`` (0.5) and claims them
  with ``FOR UPDATE SKIP LOCKED``, so several relays share one schedule and a stopped relay
  loses nothing. A retry is published with the original delivery message id, so an adapter that
  did store an earlier copy drops it.
- **Destinations.** When ``LIENTHONG_DESTINATION_DOWN_AFTER`` (5) *different* deliveries to one
  inbox came back within ``LIENTHONG_DESTINATION_WINDOW_SECONDS`` (600) and none of them has
  reached the DMS since, the destination is marked down: one ``destination_down`` event and one
  warning log, its retries are held (no attempt is spent while it is down; ``failures`` shows
  them as held), and one probe delivery is sent every ``LIENTHONG_DESTINATION_PROBE_SECONDS``
  (60). It is up again, and everything held is released at once, when the probe or any other
  delivery to it reaches its DMS (status 01 or later), or when a probe stays in the inbox for a
  whole probe interval without coming back. Counting different deliveries keeps a single
  document the recipient cannot take from marking the recipient down: it fails on its own.
- **Resend** (``lienthong resend``) publishes failed deliveries again with their message ids,
  resets their attempts, and records ``resent`` with the operator's name; a second run finds
  nothing failed and changes nothing.
- **No lock across a confirm.** The schedule, the probes and resend claim rows in short
  transactions (``SKIP LOCKED``, then a lease of ``CLAIM_LEASE_SECONDS`` on ``next_attempt_at``),
  publish outside any transaction, and record each outcome in another; a crash in between
  leaves the row due when the lease ends (at least once, same message id).
- **Bytes, not counts** (issue 14). A tick of the schedule, a pass of probes and a batch of
  resend or of the stale-chunked sweep read each document's payload once, shared by all of its
  copies, and load at most ``store.PASS_MAX_BYTES`` (32 MiB) of documents, the first whatever
  its size; a delivery that does not fit is not claimed (nor leased) and goes with the next.

Timeline events written here: ``returned``, ``retry_scheduled``, ``retry_held``, ``failed``,
``retry_published``, ``probe_published``, ``return_ignored``, ``destination_down``,
``destination_up``, ``resent``.
"""
