"""tests.bench.flights: a relay log's relay.flight lines, summed per stage."""

from __future__ import annotations

import json

from relay.worker.timings import STAGES
from tests.bench.flights import read, read_runs, render


def _line(documents: int, **ms: float) -> str:
    entry = {"event": "relay.flight", "documents": documents, "level": "debug"}
    entry.update({f"{s}_ms": ms.get(s, 1.0) for s in STAGES})
    return json.dumps(entry)


def test_only_flight_lines_count_and_each_stage_keeps_every_batch() -> None:
    log = [
        _line(3, store=100.0, confirm=40.0),
        '{"event": "relay.batch", "size": 3, "publishes": 4}',
        "not json at all",
        '{"event": "relay.outbox_consumed", "note": "\\"relay.flight\\" quoted"}',
        _line(1, store=20.0, confirm=60.0),
    ]
    flights = read(log)
    assert (flights.batches, flights.documents) == (2, 4)
    assert flights.stages["store"] == [100.0, 20.0]
    assert flights.stages["confirm"] == [40.0, 60.0]
    assert flights.stages["gather"] == [1.0, 1.0]


def test_the_summary_names_the_stage_the_documents_waited_in() -> None:
    text = render(read([_line(2, store=90.0), _line(2, store=70.0)]))
    store = next(row for row in text.splitlines() if row.startswith("store"))
    # p50 80, mean 80, max 90; 160 of the 170 ms summed over both batches (5 stages of 1 ms)
    assert store.split() == ["store", "80.0", "80.0", "89.0", "90.0", "94.1%"]
    assert text.startswith("2 batches, 4 documents (2.0 a batch)")


def test_a_log_without_flights_says_why() -> None:
    assert "log level debug" in render(read(['{"event": "relay.started"}']))


def test_each_run_of_the_relay_is_summed_apart() -> None:
    started = '{"event": "relay.workers_started", "workers": 2}'
    log = [started, _line(3), started, started, _line(1), _line(2)]
    runs = read_runs(log)
    assert [(r.batches, r.documents) for r in runs] == [(1, 3), (2, 3)]
    assert (read(log).batches, read(log).documents) == (3, 6)
