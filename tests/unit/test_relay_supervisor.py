"""How the relay's worker processes start (no services needed)."""

from __future__ import annotations

import multiprocessing.spawn
import sys

from relay.worker import supervisor


def test_a_spawned_worker_runs_the_supervisor_module_not_the_console_script() -> None:
    main = sys.modules["__main__"]
    before = getattr(main, "__spec__", None)
    with supervisor._spawned_import_this_module():
        data = multiprocessing.spawn.get_preparation_data("lienthong-relay-1")
    assert data.get("init_main_from_name") == "relay.worker.supervisor"
    assert "init_main_from_path" not in data
    assert getattr(main, "__spec__", None) is before  # put back for everything else
