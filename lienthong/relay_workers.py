"""``python -m lienthong.relay_workers LEVEL FORMAT``: the parent of a multi-process relay.

``lienthong relay run`` with ``LIENTHONG_WORKERS`` > 1 replaces itself (``exec``, same process
id, so systemd and signals see no difference) with this module, so that the process that only
supervises holds what supervising needs (about 27 MB) rather than every command of the console
script (about 80 MB). Settings come from the environment, as for ``lienthong relay run``.
"""

from __future__ import annotations

import functools
import sys

from lienthong.logs import configure_logging
from relay.config import load_settings
from relay.db.engine import disposing, monitoring_engine
from relay.metrics.endpoint import serving_metrics
from relay.metrics.health import CHECK_TIMEOUT_SECONDS
from relay.worker.supervisor import run_workers


def command(log_level: str, log_format: str) -> list[str]:
    """The argv that runs this module with these log options (for ``os.execv``)."""
    return [sys.executable, "-m", __name__, log_level, log_format]


def main(argv: list[str]) -> int:
    log_level, log_format = argv
    configure_logging(log_level, log_format)
    settings = load_settings()
    with (
        disposing(monitoring_engine(settings.database_url, CHECK_TIMEOUT_SECONDS)) as engine,
        serving_metrics(settings, engine),  # LIENTHONG_METRICS_ADDR: /metrics, /healthz, /readyz
    ):
        return run_workers(settings, functools.partial(configure_logging, log_level, log_format))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
