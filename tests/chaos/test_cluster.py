"""A 3-node RabbitMQ cluster with quorum queues: one node killed under 1,000 documents.

The relay (``LIENTHONG_AMQP_URL``) and the adapter (``amqp_url``) each take one broker URL today
(``pika.URLParameters``; no list of nodes), so they reach the cluster the way a deployment
would put a load balancer in front of it: a proxy that sends each new connection to the first
node that answers. The node killed is the one every connection goes to, so the relay and both
adapters lose their connections and must come back through a surviving node.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.broker.management import ManagementClient
from tests.chaos import ports
from tests.chaos.environments import environment, need
from tests.chaos.scene import scene
from tests.chaos.table import record
from tests.private_services import (
    FailoverProxy,
    RabbitNode,
    rabbit_cluster,
    rabbitmq_available,
)
from tests.services import Services

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.chaos_long]

N = 1000


@pytest.fixture()
def cluster() -> Iterator[list[RabbitNode]]:
    need(rabbitmq_available(), "RabbitMQ")
    with rabbit_cluster(
        ports.CLUSTER_NAMES, ports.CLUSTER_AMQP, ports.CLUSTER_MANAGEMENT, ports.CLUSTER_DIST
    ) as nodes:
        yield nodes


def _queues(node: RabbitNode, vhost: str) -> dict[str, tuple[str, int, str]]:
    """Queue -> (type, number of members, leader or home node), as ``node`` sees them."""
    with ManagementClient(node.management_url) as mgmt:
        queues = mgmt.list_queues(vhost)
    return {
        q["name"]: (
            str(q.get("type")),
            len(q.get("members") or []),
            str(q.get("leader") or q.get("node")),
        )
        for q in queues
    }


@pytest.mark.timeout(900)
def test_one_node_of_a_3_node_cluster_killed_under_1000_documents_loses_nothing(
    services: Services, cluster: list[RabbitNode], tmp_path: Path
) -> None:
    victim, survivor = cluster[0], cluster[1]
    proxy_url = f"amqp://guest:guest@127.0.0.1:{ports.CLUSTER_PROXY}/"
    targets = [("127.0.0.1", node.amqp_port) for node in cluster]
    with (
        FailoverProxy(ports.CLUSTER_PROXY, targets),
        environment(services, amqp_base=proxy_url, management_url=victim.management_url) as make,
        scene(make(), tmp_path) as s,
    ):
        queues = _queues(survivor, s.settings.vhost)
        agencies = {k: v for k, v in queues.items() if s.a.code in k or s.b.code in k}
        assert agencies, queues
        assert all(v[:2] == ("quorum", len(cluster)) for v in agencies.values()), agencies
        quorum = {k: v for k, v in queues.items() if v[0] == "quorum"}
        led = sum(v[2] == victim.node for v in quorum.values())
        others = sorted(f"{k} ({v[0]} on {v[2]})" for k, v in queues.items() if v[0] != "quorum")
        s.send(N)
        assert s.wait_arrived(N // 4, timeout=300), s.logs()
        at_kill = s.dms.arrived()
        victim.kill()
        s.settle(timeout=600)
        alive = s.processes_alive()
        losses = s.connection_losses()
        notes = [
            f"{victim.node} (every client's node) killed at {at_kill}/{N} arrived",
            f"{len(quorum)} quorum queues of {len(cluster)} members, {led} led by it",
            *([f"other queues: {', '.join(others)}"] if others else []),
            "clients via a failover proxy",
            f"connections lost: {losses}",
        ]
        row = record(s.tally("3-node cluster, one node SIGKILLed", "; ".join(notes)))
        assert at_kill < N, "everything arrived before the kill: nothing was tested"
        assert all(alive.values()), alive
        assert all(losses.values()), f"a client never lost its connection: {losses}"
        assert row.clean, s.logs()
