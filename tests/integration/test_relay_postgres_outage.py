"""Issue 12 items 9 and 10 through a running relay: PostgreSQL stopped under load is waited out
on the same broker connection (no reconnect loop, no requeue), logged once, and everything
arrives once when it is back.

Runs on a PostgreSQL cluster of its own (``pg_createcluster``, port 5461) that it stops and
starts; the shared one is never touched. Skipped where the cluster tools are missing or the
tests do not run as root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.db.engine import make_engine
from relay.setup import run_setup
from tests.relay_support import RelayProcess, add_agency, drain, make_document, publish_many
from tests.services import Services, random_code, unique_name

pytestmark = pytest.mark.integration

CLUSTER, PORT, VERSION = "trustrelay", 5461, "15"


def _pg(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=120)


@pytest.fixture()
def own_postgres() -> Iterator[str]:
    if shutil.which("pg_createcluster") is None or os.geteuid() != 0:
        pytest.skip("needs pg_createcluster (postgresql-common) and root to stop a cluster")
    _pg("pg_createcluster", VERSION, CLUSTER, "--port", str(PORT))
    try:
        with open(f"/etc/postgresql/{VERSION}/{CLUSTER}/pg_hba.conf", "w") as f:
            f.write("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        _pg("pg_ctlcluster", VERSION, CLUSTER, "start")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{PORT}/{unique_name('lienthong_outage')}"
    finally:
        subprocess.run(
            ["pg_dropcluster", "--stop", VERSION, CLUSTER], capture_output=True, timeout=120
        )


def test_a_postgresql_outage_keeps_the_broker_connection_and_loses_nothing(
    services: Services, management: ManagementClient, own_postgres: str
) -> None:
    vhost = unique_name("lienthong-outage").replace("_", "-")
    settings = Settings(
        amqp_url=services.amqp_url_for(vhost),
        database_url=own_postgres,
        management_url=services.management_url,
        agency_poll_seconds=0.2,
        batch_wait_ms=5,
    )
    run_setup(settings)
    engine = make_engine(own_postgres)
    a = add_agency(settings, engine, random_code())
    b = add_agency(settings, engine, random_code())
    try:
        with RelayProcess(settings) as relay:
            relay.wait_consuming([a.code, b.code])
            before = [make_document(a.code, [b.code]) for _ in range(20)]
            publish_many(a, before)
            assert len(drain(b, expect=20, timeout=30)) == 20

            _pg("pg_ctlcluster", VERSION, CLUSTER, "stop", "-m", "fast")
            during = [make_document(a.code, [b.code]) for _ in range(30)]
            publish_many(a, during)
            time.sleep(12)  # down for a while, under load
            assert relay.running()
            _pg("pg_ctlcluster", VERSION, CLUSTER, "start")

            copies = drain(b, expect=30, timeout=60)
            ids = sorted(json.loads(c.body)["document_id"] for c in copies)
            assert ids == sorted(d.document_id for d in during)  # all, once
            assert drain(b, timeout=2) == []  # and nothing twice
            log = relay.log_text()
        assert log.count('"relay.database_down"') == 1, log[-4000:]
        assert log.count('"relay.database_back"') == 1, log[-4000:]
        assert '"relay.connection_abandoned"' not in log, log[-4000:]
        assert log.count('"retry.schedule_failed"') <= 1, log[-4000:]
        assert log.count('"relay.started"') == 1, log[-4000:]  # one broker connection
    finally:
        engine.dispose()
        management.delete_vhost(vhost)
        for user in (a.code, b.code):
            management.delete_user(user)


def test_the_retry_worker_holds_returns_through_an_outage_without_reconnecting(
    services: Services, management: ManagementClient, own_postgres: str
) -> None:
    import threading
    import uuid

    import pika
    import structlog
    from sqlalchemy import select

    from relay.db.tables import bounces
    from relay.retry.worker import RetryWorker
    from schemas import topology as t
    from tests.relay_support import connect

    vhost = unique_name("lienthong-outage").replace("_", "-")
    settings = Settings(
        amqp_url=services.amqp_url_for(vhost),
        database_url=own_postgres,
        management_url=services.management_url,
        retry_tick_seconds=0.1,
    )
    run_setup(settings)
    engine = make_engine(own_postgres)
    stop = threading.Event()
    worker = RetryWorker(settings, engine)
    try:
        with structlog.testing.capture_logs() as logs:
            thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
            thread.start()
            time.sleep(2)
            _pg("pg_ctlcluster", VERSION, CLUSTER, "stop", "-m", "fast")
            # a status an adapter rejected, as RabbitMQ dead-letters it
            mid = str(uuid.uuid4())
            conn = connect(settings.amqp_url)
            try:
                conn.channel().basic_publish(
                    "",
                    t.RETURNED_QUEUE,
                    b'{"schema": "lienthong.status/1"}',
                    properties=pika.BasicProperties(
                        message_id=mid,
                        type=t.TYPE_STATUS,
                        delivery_mode=2,
                        headers={
                            "x-first-death-reason": "rejected",
                            "x-first-death-queue": "agency.000.00.00.G22.inbox",
                        },
                    ),
                )
            finally:
                conn.close()
            time.sleep(8)
            _pg("pg_ctlcluster", VERSION, CLUSTER, "start")

            def recorded() -> bool:
                try:
                    with engine.connect() as db:
                        return (
                            db.execute(
                                select(bounces.c.id).where(bounces.c.message_id == mid)
                            ).first()
                            is not None
                        )
                except Exception:
                    return False

            deadline = time.monotonic() + 40
            while not recorded() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert recorded()
            # The held return is recorded before the worker checks the database once more and
            # says it is back: wait for that line rather than race it (seen under load).
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any(
                e["event"] == "retry.database_back" for e in logs
            ):
                time.sleep(0.2)
        events = [e["event"] for e in logs]
        assert "retry.worker_interrupted" not in events, events
        assert events.count("retry.database_down") == 1, events
        assert events.count("retry.database_back") == 1, events
    finally:
        stop.set()
        engine.dispose()
        management.delete_vhost(vhost)
