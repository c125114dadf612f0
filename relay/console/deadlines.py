"""Overdue marks: a recipient that has neither finished nor refused a document past its due date.

The hook for deadlines kept elsewhere: :func:`overdue` is the one place the document page asks,
so a per-agency deadline (time to 01/03) can be added here without touching the pages.
"""

from __future__ import annotations

import datetime as dt

from relay.domain.states import FINAL_STATES


def overdue(state: str, due_date: dt.date | None, today: dt.date) -> bool:
    """True when ``due_date`` (edXML DueDate, hạn xử lý) has passed and the delivery is open."""
    return due_date is not None and today > due_date and state not in FINAL_STATES
