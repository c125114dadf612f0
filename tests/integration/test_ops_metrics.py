"""The relay's /metrics, /healthz and /readyz (issue 18)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine

from relay.config import Settings
from relay.setup import run_setup
from tests.ops_private_services import PostgresCluster, postgres_available
from tests.ops_support import metrics_port, scrape, wait_for_metrics
from tests.relay_support import RelayProcess, add_agency, drain, make_document, make_status, publish
from tests.services import random_code

pytestmark = pytest.mark.integration

#: The brief's own PostgreSQL port for this test (the shared cluster is never stopped).
PRIVATE_PG_PORT = 5451

ACCEPTED = 'lienthong_documents_accepted_total{business_type="0"}'
ACKED = 'lienthong_statuses_accepted_total{status_code="01"}'
E2E = "lienthong_delivery_acknowledged_seconds_count"
BATCHES = "lienthong_relay_batch_seconds_count"


def test_the_counters_move_when_a_document_passes_through_two_workers(
    relay_env: Settings, db: Engine
) -> None:
    settings = relay_env.model_copy(update={"metrics_addr": "127.0.0.1:0", "workers": 2})
    with RelayProcess(settings) as relay:
        port = metrics_port(relay)
        a = add_agency(settings, db, random_code())
        b = add_agency(settings, db, random_code())
        relay.wait_consuming([a.code, b.code], timeout=40)
        before = wait_for_metrics(port, lambda m: ACCEPTED in m and E2E in m)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200

        doc = make_document(a.code, [b.code])
        publish(a, doc)
        assert [r.type for r in drain(b, expect=1)] == ["document"]
        publish(b, make_status(b.code, a.code, doc.document_id, "01"))

        after = wait_for_metrics(
            port,
            lambda m: (
                m[ACCEPTED] == before[ACCEPTED] + 1
                and m.get(ACKED, 0) == before.get(ACKED, 0) + 1
                and m[E2E] == before[E2E] + 1
            ),
        )
        # Both workers' batches are summed by the parent (prometheus multiprocess mode).
        assert after[BATCHES] >= 2
        assert after['lienthong_deliveries{state="delivered"}'] >= 1
        assert after["lienthong_delivery_acknowledged_seconds_sum"] > 0
        assert after["lienthong_metrics_database_up"] == 1
        assert relay.stop() == 0


@pytest.mark.skipif(not postgres_available(), reason="needs pg_createcluster (postgresql-common)")
def test_healthz_says_postgresql_is_down_while_it_is_stopped_then_recovers(
    relay_env: Settings,
) -> None:
    cluster = PostgresCluster("lienthong_ops_health", PRIVATE_PG_PORT).create()
    try:
        settings = relay_env.model_copy(
            update={
                "metrics_addr": "127.0.0.1:0",
                "database_url": cluster.url.rsplit("/", 1)[0] + "/lienthong_health",
            }
        )
        run_setup(settings)
        with RelayProcess(settings) as relay:
            port = metrics_port(relay)
            url = f"http://127.0.0.1:{port}"
            assert httpx.get(f"{url}/healthz").text == "ok\n"

            cluster.stop()
            down = httpx.get(f"{url}/healthz", timeout=15)
            assert down.status_code == 503
            assert (
                f"PostgreSQL is unreachable at postgresql+psycopg://postgres@127.0.0.1:{PRIVATE_PG_PORT}"
                in down.text
            )
            assert httpx.get(f"{url}/readyz", timeout=15).status_code == 503
            assert scrape(port)["lienthong_metrics_database_up"] == 0

            cluster.start()
            back = httpx.get(f"{url}/healthz", timeout=15)
            assert (back.status_code, back.text) == (200, "ok\n")
    finally:
        cluster.drop()
