"""What the relay's parent process loads once for every worker process (:mod:`.supervisor`).

Imported by the parent before it forks any worker: the relay's modules (pika,
SQLAlchemy, psycopg, pydantic and the schemas, structlog…) are then in pages the workers share
with it and with each other, counted once in the relay's PSS rather than once per worker.
``gc.freeze()`` moves those objects out of the collector's generations, so a collection in a
worker does not write to (and so copy) the pages that hold them.

What a worker only loads on first use is loaded here too: the ``holidays`` library imports its
279 country modules when the first calendar is made (each worker's relay loop makes one, for the
deliveries' due times), 0.1 s and 8 MB that every worker had paid for itself after the fork.
"""

from __future__ import annotations

import gc

import relay.worker.main  # noqa: F401  (loaded here for the workers)
from relay.deadlines.calendar import WorkCalendar

WorkCalendar()  # loads the holidays library's country modules

gc.freeze()
