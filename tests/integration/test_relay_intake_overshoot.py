"""Large documents after small ones: what a prefetch grown on the small ones lets the broker push
to a relay worker (issue 14, DESIGN §11 "Memory bounded by bytes").

Each outbox holds a backlog of small documents followed by large ones when one relay worker
starts: the consumers regrow to the full prefetch on the small ones, and every ack of a batch
of small ones frees credit the broker fills with large ones at once, before the worker has read
the first of them. The figures (the most bytes held, from ``relay.intake_paused`` /
``relay.intake_resumed``; the worker's PSS sampled every 20 ms, its VmHWM) are printed
(``pytest -s``); the production-sized cases run only when asked::

    LIENTHONG_MEASURE_OVERSHOOT=1 .venv/bin/pytest -s \
        tests/integration/test_relay_intake_overshoot.py

(``LIENTHONG_OVERSHOOT_TRACE=1`` prints every pause and resume too.)
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from relay.config import Settings
from relay.db.engine import make_engine
from relay.db.tables import deliveries
from schemas.envelope import encode_message
from tests.conftest import EnvFactory
from tests.relay_support import (
    RelayProcess,
    add_agency,
    attachment,
    make_document,
    publish_many,
    wait_until,
)
from tests.services import random_code

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


@dataclass(frozen=True)
class Backlog:
    senders: int
    small: int  # 2 KiB documents per outbox, first
    large: int  # then this many large ones per outbox
    attachment: int  # bytes of each large document's attachment (base64 on the wire: 4/3)
    bound: int  # intake_max_bytes
    #: mixed instead: the large ones each after this many small ones, all along the backlog
    every: int = 0


@dataclass
class Figures:
    large_size: int  # bytes of one large document on the wire
    held_peak: int  # the most bytes held, from relay.intake_paused/resumed
    pauses: int
    regrows: int  # pauses followed at once by a resume (a restart with a larger prefetch)
    pss_peak: int  # sampled from /proc/PID/smaps_rollup, bytes (0: not readable)
    vm_hwm: int  # the worker's peak RSS, bytes
    seconds: float

    def show(self, case: Backlog) -> str:
        return (
            f"{case.senders} outboxes x ({case.small} x 2 KiB + {case.large} x "
            f"{self.large_size / 1e6:.2f} MB), intake_max_bytes {case.bound / MiB:g} MiB: "
            f"held peak {self.held_peak / 1e6:.1f} MB ({self.held_peak / case.bound:.2f} x bound), "
            f"{self.pauses} pauses ({self.regrows} regrows), PSS peak {self.pss_peak / 1e6:.1f} "
            f"MB, VmHWM {self.vm_hwm / 1e6:.1f} MB, {self.seconds:.1f} s"
        )


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_backlog(env: Settings, db: Engine, case: Backlog) -> Figures:
    """Queue the backlog, start one relay worker, wait until every document is delivered;
    the figures of the run."""
    b = add_agency(env, db, random_code())
    senders = [add_agency(env, db, random_code()) for _ in range(case.senders)]
    payload = os.urandom(case.attachment)
    large_size = 0
    for a in senders:
        docs = [make_document(a.code, [b.code]) for _ in range(case.small)]
        for n in range(case.large):
            doc = make_document(a.code, [b.code])
            doc.attachments = [attachment("scan.pdf", payload)]
            large_size = len(encode_message(doc))
            if case.every:
                docs.insert((n + 1) * (case.every + 1) - 1, doc)
            else:
                docs.append(doc)
        publish_many(a, docs)
    total = case.senders * (case.small + case.large)

    def delivered() -> bool:
        with db.connect() as conn:
            n = conn.execute(
                select(func.count()).where(
                    deliveries.c.route_to == b.code, deliveries.c.state == "queued"
                )
            ).scalar_one()
        return bool(n == total)

    pss_peak = 0
    done = threading.Event()
    began = time.monotonic()
    with RelayProcess(env, log_level="debug") as relay:
        assert relay.proc is not None
        pid = relay.proc.pid

        def sample() -> None:
            nonlocal pss_peak
            while not done.wait(0.02):
                pss_peak = max(pss_peak, _pss(pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            wait_until(delivered, timeout=180, interval=0.2)
        finally:
            done.set()
            sampler.join()
        seconds = time.monotonic() - began
        vm_hwm = _status_kb(pid, "VmHWM")
        log = relay.log_text()
    lines = [json.loads(line) for line in log.splitlines() if '"relay.intake_' in line]
    events = [p["event"] for p in lines]
    if os.environ.get("LIENTHONG_OVERSHOOT_TRACE"):
        for p in lines:
            print({k: v for k, v in p.items() if k not in ("logger", "level")})
    regrows = sum(
        1
        for first, then in itertools.pairwise(lines)
        if first["event"] == "relay.intake_paused"
        and then["event"] == "relay.intake_resumed"
        and then["held_peak_bytes"] == first["held_bytes"]
        and then["held_bytes"] == first["held_bytes"]
    )
    return Figures(
        large_size=large_size,
        held_peak=max((p["held_peak_bytes"] for p in lines), default=0),
        pauses=events.count("relay.intake_paused"),
        regrows=regrows,
        pss_peak=pss_peak,
        vm_hwm=vm_hwm,
        seconds=seconds,
    )


@pytest.fixture()
def db(make_env: EnvFactory) -> Iterator[tuple[Settings, Engine]]:
    env = make_env()
    eng = make_engine(env.database_url)
    yield env, eng
    eng.dispose()


#: Scaled down from 2 KiB documents followed by 1 MiB attachments against 16 MiB: the consumers
#: regrow on the small ones (to 51 each: 1 MiB over five outboxes), and 51 of the large ones per
#: outbox would be 7 x the bound.
SCALED = Backlog(senders=4, small=600, large=40, attachment=100 * 1024, bound=1 * MiB)


def test_large_documents_after_small_ones_pause_intake_and_are_all_delivered(
    db: tuple[Settings, Engine],
) -> None:
    """Every document is delivered (``run_backlog`` waits for all of them) through the pauses
    the large ones cause; what the worker held is printed, not asserted: RabbitMQ bounds what it
    pushes by count only, and it pushes a consumer's free credit as soon as an ack frees it
    (2.1-13.9 x the bound in seven runs, with or without a pause on the first large one)."""
    env, eng = db
    case = SCALED
    env = env.model_copy(
        update={"agency_poll_seconds": 0.2, "intake_max_bytes": case.bound, "workers": 1}
    )
    got = run_backlog(env, eng, case)
    print(got.show(case))
    assert got.pauses > got.regrows, "never paused: the case did not reach the bound"


#: The gap as it would be seen in production: 1 MiB PDF attachments (1.4 MB documents) after
#: 2 KiB ones, against the default 16 MiB. Measured only when asked (about 170 MB queued):
#: LIENTHONG_MEASURE_OVERSHOOT=1 pytest -s -k 1mib
MEASURED = Backlog(senders=4, small=1000, large=30, attachment=MiB, bound=16 * MiB)


@pytest.mark.skipif(
    not os.environ.get("LIENTHONG_MEASURE_OVERSHOOT"), reason="a measurement, when asked"
)
def test_measured_overshoot_of_1mib_attachments_after_2kib_documents(
    db: tuple[Settings, Engine],
) -> None:
    env, eng = db
    case = MEASURED
    env = env.model_copy(
        update={"agency_poll_seconds": 0.2, "intake_max_bytes": case.bound, "workers": 1}
    )
    print(run_backlog(env, eng, case).show(case))


#: Mostly small documents, one of 200 KB (150 KiB attached) after every 50: how often intake
#: pauses in a mixed stream (LIENTHONG_MEASURE_OVERSHOOT=1 pytest -s -k mixed).
MIXED = Backlog(senders=4, small=2000, large=40, attachment=150 * 1024, bound=16 * MiB, every=50)


@pytest.mark.skipif(
    not os.environ.get("LIENTHONG_MEASURE_OVERSHOOT"), reason="a measurement, when asked"
)
def test_measured_pauses_in_a_mixed_stream(db: tuple[Settings, Engine]) -> None:
    env, eng = db
    case = MIXED
    env = env.model_copy(
        update={"agency_poll_seconds": 0.2, "intake_max_bytes": case.bound, "workers": 1}
    )
    print(run_backlog(env, eng, case).show(case))
