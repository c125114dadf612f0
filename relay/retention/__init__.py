"""Retention: the hub keeps documents' payloads only as long as a delivery may need them.

``lienthong retention run`` and the relay's periodic job (``LIENTHONG_RETENTION_DAYS`` > 0,
every ``LIENTHONG_RETENTION_INTERVAL_SECONDS``) empty ``documents.payload`` (the body as
received, attachments included: nearly all of the database's size) and stamp
``payload_removed_at``; the document row (its metadata) and its timeline (``events``,
``receipts``, ``deliveries``) stay, so ``lienthong trace`` still tells the whole story.

A payload is removed when

- the document is older than ``LIENTHONG_RETENTION_DAYS`` and no delivery still needs it, or
- at any age, a take-back was accepted (13 → 15, ``recalled``) for one of its recipients and no
  delivery still needs it: the hub keeps no copy of a document taken back.

A delivery needs the payload while the hub may publish it again: ``pending`` (not yet
confirmed), ``queued`` (in the inbox, not acknowledged; it comes back to the relay if it
expires or cannot be stored), ``retrying``, ``failed`` (an operator may resend it) and
``recall_requested`` (the recipient may refuse the take-back). Once the recipient has answered
01 or later, refused it (02) or agreed to a take-back (15), the hub never sends it again.

Attachments that travel in chunks (issue 17) live apart, in ``blob_chunks``, keyed by the
submitting agency and the attachment's SHA-256; the same rows serve every document of that
agency naming the attachment. They follow the same rule: when a batch empties payloads, the
chunks of the attachments those documents named are deleted in the same transaction, unless a
document of the same agency that keeps its payload still names them. Chunks older than
``LIENTHONG_RETENTION_DAYS`` that no document keeping its payload names (uploaded for a
document that never came, or refused) are deleted at the end of a run that reached the end.

The work goes in small batches of document ids (``LIENTHONG_RETENTION_BATCH_SIZE``), one short
transaction each, with the position saved in ``operation_checkpoints``: a run that is stopped
resumes where it was; a run that reaches the end starts the next one from the beginning.
PostgreSQL returns the space of emptied payloads (TOAST) to reuse after (auto)vacuum.
"""
