"""``python -m lienthong.relay_workers LEVEL FORMAT``: the parent of a multi-process relay.

``lienthong relay run`` with ``LIENTHONG_WORKERS`` > 1 replaces itself (``exec``, same process
id, so systemd and signals see no difference) with this module, so that the process that only
supervises holds what supervising needs rather than every command of the console script; the
workers are forked from it (they share the pages of what it loaded). Settings come from the
environment, as for ``lienthong relay run``.
"""

from __future__ import annotations

import functools
import sys

from lienthong.logs import configure_logging
from relay.cli.monitoring import monitoring
from relay.config import load_settings
from relay.metrics.endpoint import multiprocess_dir
from relay.worker.supervisor import run_workers


def command(log_level: str, log_format: str) -> list[str]:
    """The argv that runs this module with these log options (for ``os.execv``)."""
    return [sys.executable, "-m", __name__, log_level, log_format]


def main(argv: list[str]) -> int:
    log_level, log_format = argv
    configure_logging(log_level, log_format)
    settings = load_settings()
    # LIENTHONG_METRICS_ADDR: /metrics, /healthz, /readyz, served once the workers are forked
    with multiprocess_dir(settings):
        return run_workers(
            settings,
            functools.partial(configure_logging, log_level, log_format),
            serve=functools.partial(monitoring, settings),
        )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
