"""Fault cases that take a service away mid-stream: the broker restarted, PostgreSQL stopped.

Both services are the test's own (``tests/private_services.py``), never the shared ones.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos import ports
from tests.chaos.environments import environment, need
from tests.chaos.scene import scene
from tests.chaos.table import record
from tests.private_services import (
    PostgresCluster,
    RabbitNode,
    postgres_available,
    postgres_cluster,
    rabbit_node,
    rabbitmq_available,
)
from tests.services import Services

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

N = 300
BROKER_DOWN_SECONDS = 10.0
DATABASE_DOWN_SECONDS = 30.0


@pytest.fixture()
def restarted_node() -> Iterator[RabbitNode]:
    need(rabbitmq_available(), "RabbitMQ")
    name, amqp, mgmt, dist = ports.RESTARTED_BROKER
    with rabbit_node(name, amqp, mgmt, dist) as node:
        yield node


@pytest.fixture()
def own_postgres() -> Iterator[PostgresCluster]:
    need(postgres_available(), "PostgreSQL's pg_createcluster")
    with postgres_cluster("lienthong_chaos", ports.POSTGRES) as cluster:
        yield cluster


def _lines(path: Path, *events: str) -> int:
    text = path.read_text(errors="replace") if path.exists() else ""
    return sum(text.count(f'"{e}"') for e in events)


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "how",
    ["stop", pytest.param("SIGKILL", marks=pytest.mark.chaos_long)],
)
def test_the_broker_restarted_mid_stream_loses_nothing_and_hands_nothing_twice(
    services: Services, restarted_node: RabbitNode, tmp_path: Path, how: str
) -> None:
    """``stop``: a clean shutdown (``rabbitmqctl stop``); ``SIGKILL``: the node dies at once and
    recovers its quorum queues from their logs when it starts again."""
    node = restarted_node
    with (
        environment(
            services, amqp_base=node.amqp_url(), management_url=node.management_url
        ) as make,
        scene(make(), tmp_path) as s,
    ):
        # Half the documents before the outage and half while the broker is down: those cannot
        # leave A's outbox until it is back, so the restart is always on the path (a fast relay
        # once moved all 300 into B's prefetch before the stop, and nothing was tested).
        s.send(N // 2)
        assert s.wait_arrived(N // 8, timeout=180), s.logs()
        at_stop = s.dms.arrived()
        if how == "stop":
            node.stop()
        else:
            node.kill()
        s.send(N - N // 2)
        time.sleep(BROKER_DOWN_SECONDS)
        node.start()
        back = time.time()
        at_start = s.dms.arrived()
        s.settle(timeout=300)
        alive = s.processes_alive()
        losses = s.connection_losses()
        relay_back = s.relay_back_after(back)
        row = record(
            s.tally(
                f"RabbitMQ node restarted mid-stream ({how})",
                f"stopped at {at_stop}/{N} arrived, down {BROKER_DOWN_SECONDS:.0f}s; "
                f"{at_start}/{N} when it started again, "
                f"relay consuming again {relay_back or -1:.1f}s after it was back; "
                f"connections lost: {losses}",
            )
        )
        assert at_start < N, "everything arrived before the broker was back: nothing was tested"
        assert all(alive.values()), alive
        assert all(losses.values()), f"a client never lost its connection: {losses}"
        assert row.clean, s.logs()


@pytest.mark.chaos_long
@pytest.mark.timeout(600)
def test_postgresql_stopped_for_30_s_mid_stream_the_relay_stays_and_everything_arrives_once(
    services: Services, broker_node: RabbitNode, own_postgres: PostgresCluster, tmp_path: Path
) -> None:
    with (
        environment(
            services,
            amqp_base=broker_node.amqp_url(),
            management_url=broker_node.management_url,
            database_url=own_postgres.url(),
        ) as make,
        scene(make(), tmp_path) as s,
    ):
        s.send(N // 2)
        assert s.wait_arrived(N // 8, timeout=180), s.logs()
        at_stop = s.dms.arrived()
        log = s.relay.log_path
        before = _lines(log, "relay.connection_abandoned", "relay.reconnecting")
        size = log.stat().st_size
        own_postgres.stop()
        s.send(N - N // 2)  # these reach the relay only with PostgreSQL down
        down_until = time.monotonic() + DATABASE_DOWN_SECONDS
        exited_during_outage = False
        while time.monotonic() < down_until:
            exited_during_outage |= not s.relay.running()
            time.sleep(0.5)
        during = _lines(log, "relay.connection_abandoned", "relay.reconnecting") - before
        log_kb = (log.stat().st_size - size) / 1024
        arrived_during = s.dms.arrived() - at_stop
        at_start = s.dms.arrived()
        own_postgres.start()
        s.settle(timeout=300)
        alive = s.processes_alive()
        row = record(
            s.tally(
                "PostgreSQL stopped 30 s mid-stream",
                f"stopped at {at_stop}/{N} arrived ({arrived_during} more arrived meanwhile); "
                f"relay {'EXITED' if exited_during_outage else 'stayed up'}, "
                f"{during} broker reconnect lines, {log_kb:.0f} KB of log in the outage",
            )
        )
        assert at_start < N, "everything arrived before the database was back: nothing was tested"
        assert not exited_during_outage, s.logs()
        assert all(alive.values()), alive
        assert row.clean, s.logs()
