"""Delivery states (DESIGN §2): how a status moves a delivery, forward only.

A delivery is one document x recipient. Its state moves along the progress chain
``pending → queued → delivered (01) → accepted (03) → assigned (04) → processing (05) →
completed (06)``; ``refused`` (02) ends it; the sender's take-back request (13) puts it in
``recall_requested``, which the recipient answers with 15 (``recalled``) or 16. A 16 returns
the delivery to the state it had before the *first* 13 of the take-back, raised by any progress
the recipient reported while the request was pending (05 then 13, 13, 06, 16 ends
``completed``): a repeated 13 never replaces what was remembered, and nothing moves backwards.
``retrying`` and ``failed`` belong to the retry worker and rank with ``queued``: any status
from the recipient proves it got the document after all.

A late or out-of-order status never moves a delivery backwards; it is recorded in the timeline
only. The functions here are pure: the worker loads the current state, asks, and stores. The
state lists the SQL needs (``REACHED_STATES``, ``RETURNABLE_STATES``, ``OPEN_STATES``) are
built here too, so that no query spells a state of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

PENDING: Final = "pending"
QUEUED: Final = "queued"
RETRYING: Final = "retrying"
FAILED: Final = "failed"
DELIVERED: Final = "delivered"
ACCEPTED: Final = "accepted"
ASSIGNED: Final = "assigned"
PROCESSING: Final = "processing"
COMPLETED: Final = "completed"
REFUSED: Final = "refused"
RECALL_REQUESTED: Final = "recall_requested"
RECALLED: Final = "recalled"

#: Position on the progress chain; a status only moves a delivery to a higher rank.
PROGRESS_RANK: Final[dict[str, int]] = {
    PENDING: 0,
    QUEUED: 1,
    RETRYING: 1,
    FAILED: 1,
    DELIVERED: 2,
    ACCEPTED: 3,
    ASSIGNED: 4,
    PROCESSING: 5,
    COMPLETED: 6,
}

#: The state each progress status code moves a delivery to.
PROGRESS_STATUS: Final[dict[str, str]] = {
    "01": DELIVERED,
    "03": ACCEPTED,
    "04": ASSIGNED,
    "05": PROCESSING,
    "06": COMPLETED,
}

REFUSE: Final = "02"
RECALL: Final = "13"
RECALL_AGREED: Final = "15"
RECALL_REFUSED: Final = "16"

#: States no status moves out of (except 15/16 answering a recall request).
FINAL_STATES: Final = frozenset({COMPLETED, REFUSED, RECALLED})

ALL_STATES: Final = frozenset(PROGRESS_RANK) | {REFUSED, RECALL_REQUESTED, RECALLED}

#: States in which the recipient's adapter has the document (status 01 or later).
REACHED_STATES: Final = frozenset(
    {st for st, rank in PROGRESS_RANK.items() if rank >= PROGRESS_RANK[DELIVERED]}
    | {REFUSED, RECALL_REQUESTED, RECALLED}
)

#: States from which a copy that comes back from the inbox is a failed attempt to count.
#: ``pending`` too: the copy was published, its confirm just had not been recorded yet.
RETURNABLE_STATES: Final = frozenset({PENDING, QUEUED})

#: A confirmed publish to the recipient's inbox moves a delivery from ``pending`` to ``queued``
#: and moves nothing else: a status (01…) or the retry worker may already have overtaken the
#: confirm. The one definition of that rule; :func:`relay.worker.store.mark_queued` applies it
#: in SQL.
CONFIRM_MOVES_FROM: Final = PENDING
CONFIRM_MOVES_TO: Final = QUEUED

#: States in which the hub still owes the recipient the document (``failures`` shows the last
#: two).
OPEN_STATES: Final = frozenset({PENDING, QUEUED, RETRYING})


@dataclass(frozen=True)
class Transition:
    """What a status does to a delivery: the new state and whether it moved."""

    state: str
    moved: bool
    #: for a 13 that moved: the state to return to if the recipient answers 16
    before_recall: str | None = None


def _stay(current: str) -> Transition:
    return Transition(state=current, moved=False)


def after_status(current: str, code: str, *, before_recall: str | None = None) -> Transition:
    """The delivery's state after status ``code`` arrives while it is in ``current``.

    ``before_recall`` is what a pending take-back request (13) remembers: the state before its
    first 13, raised by progress reported since. It is where a 16 returns the delivery to
    (``delivered`` if unknown). While a take-back is pending, every transition carries the
    remembered state forward in ``before_recall`` (raised by a progress status), so the caller
    only ever needs the latest one.
    """
    if current == RECALL_REQUESTED and code not in (RECALL_AGREED, RECALL_REFUSED):
        # Recorded, not moved: but progress raises where a refusal (16) will return to.
        kept = before_recall if before_recall in PROGRESS_RANK else DELIVERED
        assert kept is not None
        target = PROGRESS_STATUS.get(code)
        if target is not None and PROGRESS_RANK[target] > PROGRESS_RANK[kept]:
            kept = target
        return Transition(state=current, moved=False, before_recall=kept)
    if code in PROGRESS_STATUS:
        target = PROGRESS_STATUS[code]
        if current in PROGRESS_RANK and PROGRESS_RANK[target] > PROGRESS_RANK[current]:
            return Transition(state=target, moved=True)
        return _stay(current)
    if code == REFUSE:
        if current in PROGRESS_RANK and current != COMPLETED:
            return Transition(state=REFUSED, moved=True)
        return _stay(current)
    if code == RECALL:
        if current in PROGRESS_RANK and current != COMPLETED:
            return Transition(state=RECALL_REQUESTED, moved=True, before_recall=current)
        return _stay(current)
    if code == RECALL_AGREED:
        if current == RECALL_REQUESTED:
            return Transition(state=RECALLED, moved=True)
        return _stay(current)
    if code == RECALL_REFUSED:
        if current == RECALL_REQUESTED:
            back = before_recall if before_recall in PROGRESS_RANK else DELIVERED
            assert back is not None
            return Transition(state=back, moved=True)
        return _stay(current)
    # Unknown codes are recorded by the caller but never move a delivery.
    return _stay(current)
