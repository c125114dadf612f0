"""What the relay's fork server loads once for every worker process (:mod:`.supervisor`).

Imported by the ``forkserver`` process before it forks any worker: the relay's modules (pika,
SQLAlchemy, psycopg, pydantic and the schemas, structlog…) are then in pages the workers share
with it and with each other, counted once in the relay's PSS rather than once per worker.
``gc.freeze()`` moves those objects out of the collector's generations, so a collection in a
worker does not write to (and so copy) the pages that hold them.
"""

from __future__ import annotations

import gc

import relay.worker.main  # noqa: F401  (loaded here for the workers)

gc.freeze()
