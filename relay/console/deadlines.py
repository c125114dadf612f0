"""Overdue marks on a document page: the one place the page asks (:func:`overdue`).

A recipient's row is marked overdue when either deadline has passed:

- Decree 30's due times of its 01 (Đã đến) and 03 (Đã tiếp nhận), which the relay keeps on
  each delivery (``deliveries.ack_due_at`` / ``register_due_at``, ``relay/deadlines``): the
  rule of ``lienthong overdue`` (:func:`relay.deadlines.store.late_status`);
- the document's ``DueDate`` (hạn xử lý, ``documents.due_date``): the recipient has neither
  finished (06) nor refused (02) it after that day, in Vietnam's time.
"""

from __future__ import annotations

import datetime as dt

from relay.deadlines.calendar import VIETNAM
from relay.deadlines.store import late_status
from relay.domain.states import FINAL_STATES


def overdue(
    state: str,
    due_date: dt.date | None,
    now: dt.datetime,
    *,
    ack_due_at: dt.datetime | None = None,
    register_due_at: dt.datetime | None = None,
) -> bool:
    """True when the delivery in ``state`` is late with its 01 or 03, or open past
    ``due_date``."""
    if late_status(state, ack_due_at, register_due_at, now) is not None:
        return True
    today = now.astimezone(VIETNAM).date()
    return due_date is not None and today > due_date and state not in FINAL_STATES
