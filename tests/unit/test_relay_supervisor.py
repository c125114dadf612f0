"""How the relay's worker processes start (no services needed)."""

from __future__ import annotations

import gc
import importlib
import sys

from relay.worker import supervisor


def test_the_parent_loads_the_relay_and_freezes_it_before_forking_the_workers() -> None:
    importlib.import_module(supervisor.PRELOAD)
    # what a worker runs is in the parent already: a forked worker shares those pages
    assert "relay.worker.main" in sys.modules and "relay.worker.loop" in sys.modules
    # and they are out of the collector's reach (a collection would write to, so copy, them)
    assert gc.get_freeze_count() > 0
