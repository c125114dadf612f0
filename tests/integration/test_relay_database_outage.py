"""Issue 12 item 10: the relay's database thread waits for PostgreSQL instead of giving the
broker everything back, and retries a deadlocked transaction instead of reconnecting.

The outage test stops a PostgreSQL cluster of its own (``pg_createcluster``, port 5461), never
the shared one; it is skipped where the cluster tools are missing or not run as root."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from psycopg import errors as pg_errors
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from relay.config import Settings
from relay.db.engine import make_engine
from relay.worker.dbthread import DbThread, Failure, classify
from relay.worker.main import build_engine
from tests.services import Services

pytestmark = pytest.mark.integration

CLUSTER, PORT, VERSION = "trustrelay", 5461, "15"


class Recorder:
    """What the database thread posts back to the ioloop, and the errors it reports."""

    def __init__(self) -> None:
        self.results: list[Any] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def post(self, fn: Callable[[], None]) -> None:
        with self.lock:
            fn()

    def done(self, result: Any) -> None:
        self.results.append(result)

    def error(self, why: str) -> None:
        self.errors.append(why)


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _pg(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=120)


@pytest.fixture()
def own_cluster() -> Iterator[str]:
    if shutil.which("pg_createcluster") is None or os.geteuid() != 0:
        pytest.skip("needs pg_createcluster (postgresql-common) and root to stop a cluster")
    _pg("pg_createcluster", VERSION, CLUSTER, "--port", str(PORT))
    try:
        conf = f"/etc/postgresql/{VERSION}/{CLUSTER}/pg_hba.conf"
        with open(conf, "w") as f:
            f.write("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        _pg("pg_ctlcluster", VERSION, CLUSTER, "start")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{PORT}/postgres"
    finally:
        subprocess.run(
            ["pg_dropcluster", "--stop", VERSION, CLUSTER], capture_output=True, timeout=120
        )


def test_a_postgresql_outage_is_waited_out_and_the_same_work_runs_once_it_is_back(
    own_cluster: str,
) -> None:
    engine = make_engine(own_cluster, pool_size=1)
    rec = Recorder()
    thread = DbThread(engine, rec.post, rec.error)
    thread.start()
    try:
        with structlog.testing.capture_logs() as logs:
            _pg("pg_ctlcluster", VERSION, CLUSTER, "stop", "-m", "fast")
            thread.submit(lambda conn: conn.execute(text("SELECT 42")).scalar_one(), rec.done)
            assert _wait(lambda: thread.waiting, 20), "the thread never noticed the outage"
            time.sleep(3)  # down for a while: several attempts, one log line
            assert rec.errors == [] and rec.results == []
            _pg("pg_ctlcluster", VERSION, CLUSTER, "start")
            assert _wait(lambda: rec.results == [42], 40), (rec.results, rec.errors)
        assert rec.errors == []
        events = [e["event"] for e in logs]
        assert events.count("relay.database_down") == 1, events
        assert events.count("relay.database_back") == 1, events
    finally:
        thread.stop(timeout=10)
        engine.dispose()


@pytest.fixture(scope="module")
def shared_engine(services: Services) -> Iterator[Engine]:
    eng = make_engine(services.database_url_for("postgres"), pool_size=1)
    yield eng
    eng.dispose()


def _drop_its_connection_then_work_again(
    services: Services, shared_engine: Engine, *, idle_seconds: float = 0.0
) -> tuple[Recorder, int, list[dict[str, Any]]]:
    """A database thread on the relay loop's engine runs a piece of work; its pooled connection
    stays idle ``idle_seconds``, PostgreSQL drops it (what a restart or an idle timeout does),
    and the thread runs a second piece. Returns the recorder, the first backend's pid and what
    was logged around the second piece."""
    engine = build_engine(Settings(database_url=services.database_url_for("postgres")))
    rec = Recorder()
    thread = DbThread(engine, rec.post, rec.error)
    backend_pid = text("SELECT pg_backend_pid()")
    thread.start()
    try:
        thread.submit(lambda conn: conn.execute(backend_pid).scalar_one(), rec.done)
        assert _wait(lambda: bool(rec.results or rec.errors), 10), "the first work never ran"
        (first,) = rec.results
        time.sleep(idle_seconds)
        with shared_engine.begin() as admin:
            assert admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first}).scalar()
        with structlog.testing.capture_logs() as logs:
            thread.submit(lambda conn: conn.execute(backend_pid).scalar_one(), rec.done)
            assert _wait(lambda: len(rec.results) == 2 or bool(rec.errors), 30), rec.results
    finally:
        thread.stop(timeout=10)
        engine.dispose()
    return rec, first, logs


def test_a_connection_the_server_dropped_fails_one_transaction_which_runs_again_on_a_new_one(
    services: Services, shared_engine: Engine
) -> None:
    """The relay loop's engine sends no ping before a transaction (one round trip per batch
    saved): a pooled connection PostgreSQL has dropped meanwhile fails the transaction's first
    statement, and the database thread must take that for an outage, not give the work up."""
    rec, first, logs = _drop_its_connection_then_work_again(services, shared_engine)
    assert rec.errors == [], rec.errors
    assert rec.results[1] != first, "the work ran again on a new connection"
    events = [e["event"] for e in logs]
    # no ping hid the dropped connection: the thread saw it, waited, and ran the work again
    assert events.count("relay.database_down") == 1, events
    assert events.count("relay.database_back") == 1, events


def test_an_old_pooled_connection_is_replaced_before_use_so_a_quiet_drop_goes_unnoticed(
    services: Services, shared_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the ping, a connection dropped while the relay was quiet (a firewall's idle
    timeout over a night) is replaced at checkout once it is RECYCLE_SECONDS old: no outage."""
    monkeypatch.setattr("relay.db.engine.RECYCLE_SECONDS", 1)
    rec, first, logs = _drop_its_connection_then_work_again(
        services,
        shared_engine,
        idle_seconds=1.5,  # older than RECYCLE_SECONDS then
    )
    assert rec.errors == [] and rec.results[1] != first
    assert [e["event"] for e in logs if e["event"].startswith("relay.database")] == []


def test_a_deadlocked_transaction_is_run_again_not_taken_for_a_lost_database(
    shared_engine: Engine,
) -> None:
    rec = Recorder()
    thread = DbThread(shared_engine, rec.post, rec.error)
    tries: list[int] = []

    def work(conn: Connection) -> str:
        tries.append(1)
        if len(tries) == 1:  # what PostgreSQL raises when it breaks a deadlock
            raise OperationalError("UPDATE …", {}, pg_errors.DeadlockDetected("deadlock detected"))
        return "committed"

    thread.start()
    try:
        thread.submit(work, rec.done)
        assert _wait(lambda: bool(rec.results or rec.errors), 10)
    finally:
        thread.stop(timeout=10)
    assert rec.errors == [] and rec.results == ["committed"] and len(tries) == 2


def test_errors_are_told_apart() -> None:
    deadlock = OperationalError("x", {}, pg_errors.DeadlockDetected("deadlock detected"))
    serial = OperationalError("x", {}, pg_errors.SerializationFailure("could not serialize"))
    lost = OperationalError("x", {}, pg_errors.OperationalError("server closed the connection"))
    timeout = OperationalError("x", {}, pg_errors.QueryCanceled("statement timeout"))
    assert classify(deadlock) is Failure.CONFLICT
    assert classify(serial) is Failure.CONFLICT
    assert classify(lost) is Failure.UNREACHABLE
    assert classify(timeout) is Failure.FATAL
