"""The relay's worker processes find loaded what they use: nothing heavy is imported after the
fork, where each worker would pay for it on its own (relay/worker/preload.py)."""

from __future__ import annotations

import subprocess
import sys

_CHECK = """
import sys
import relay.worker.preload
before = set(sys.modules)
import datetime as dt
from relay.deadlines.calendar import WorkCalendar
WorkCalendar().is_working_day(dt.date(2026, 9, 2))
print(sorted(set(sys.modules) - before))
"""


def test_a_workers_calendar_imports_nothing_the_preload_did_not() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _CHECK], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout[:500]
