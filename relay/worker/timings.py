"""Where one batch's time goes on its way through a worker (the ``relay.flight`` debug line).

A batch passes six stages between its first message arriving and its outbox messages being
acked; each is timed with :func:`time.monotonic` in the thread where it ends:

==============  ==========================================================================
``gather``      its first message arrived → the batch was handed to the database thread
``wait_db``     handed over → its transaction began (behind the batches before it)
``store``       its transaction: routing, the rows, the commit (and any work it shares
                the transaction with: the database thread merges what waits)
``to_publish``  committed → the connection's thread published it (the ioloop's turn)
``confirm``     published → the broker confirmed its last publish
``record``      confirmed → ``queued`` recorded on the second database thread, then acked
==============  ==========================================================================

Logged once per batch at debug level, so a slow relay can say which stage it waits in
(``python -m tests.bench.flights <relay log>`` sums a log's lines). Pure: no clock is read
here; callers pass the times.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The stages, in order, as the ``relay.flight`` line names them (``<stage>_ms``).
STAGES = ("gather", "wait_db", "store", "to_publish", "confirm", "record")


@dataclass(slots=True)
class BatchTimes:
    """Monotonic times (seconds) of one batch; 0.0 where a stage has not ended yet."""

    arrived: float  # its first message was taken in
    flushed: float  # handed to the database thread
    began: float = 0.0  # its transaction began
    stored: float = 0.0  # its transaction committed and gave its connection back
    published: float = 0.0  # the connection's thread published what it produced
    confirmed: float = 0.0  # the broker confirmed the last of it

    def stages_ms(self, acked: float) -> dict[str, float]:
        """Each stage's duration in milliseconds (rounded to 0.1), the batch acked at
        ``acked``; empty when a stage has no time (0.0), so a batch timed only in part gives
        no figures rather than wrong ones."""
        marks = (
            self.arrived,
            self.flushed,
            self.began,
            self.stored,
            self.published,
            self.confirmed,
            acked,
        )
        if any(m <= 0.0 for m in marks):
            return {}
        return {
            f"{name}_ms": round((end - start) * 1000.0, 1)
            for name, start, end in zip(STAGES, marks, marks[1:], strict=False)
        }
