"""``python -m tests.bench.urgent_adapter``: an urgent copy behind a backlog in an agency's inbox.

The adapter's half of the urgent-lanes measurement (issue 18; :mod:`tests.bench.urgent` is the
relay's half). With B's adapter stopped, ``--backlog`` ordinary document copies are put in B's
inbox as the relay would publish them, then one urgent copy (``Priority`` 1, Khẩn) routed as the
relay routes an urgent document; B's adapter starts (in a thread, default settings). Reported:
the urgent copy's position in B's received-item store (the order the adapter recorded them) and
its latency from the adapter's start, beside the time for the whole backlog.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

import pika
from sqlalchemy import text

from lienthong.logs import configure_logging
from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.db.engine import make_engine
from relay.setup import run_setup
from schemas import topology as t
from schemas.document import OtherInfo
from schemas.envelope import encode_message
from tests.adapter_support import adapter_thread, agency_url, make_document, write_config
from tests.bench.env import services_from_env
from tests.relay_support import add_agency
from tests.services import random_code


def _publish(channel: object, routing_key: str, body: bytes, message_id: str, code: str) -> None:
    channel.basic_publish(  # type: ignore[attr-defined]
        t.DELIVER_EXCHANGE,
        routing_key,
        body,
        pika.BasicProperties(
            message_id=message_id,
            type=t.TYPE_DOCUMENT,
            delivery_mode=2,
            content_type=t.CONTENT_TYPE,
            headers={t.HEADER_RECIPIENT: code},
        ),
        mandatory=True,
    )


def urgent_routing_key(code: str) -> str:
    """Where the relay publishes an urgent document's copy for ``code``."""
    return t.deliver_routing_key(code, urgent=True)


def main(argv: list[str] | None = None) -> dict[str, object]:
    p = argparse.ArgumentParser(prog="python -m tests.bench.urgent_adapter", description=__doc__)
    p.add_argument("--backlog", type=int, default=5000)
    p.add_argument("--timeout", type=float, default=300.0)
    args = p.parse_args(argv)
    configure_logging("warning", "console")
    services = services_from_env()
    name = f"lienthong_bench_urgent_adapter_{uuid.uuid4().hex[:8]}"
    settings = Settings(
        amqp_url=services.amqp_url_for(name.replace("_", "-")),
        database_url=services.database_url_for(name),
        management_url=services.management_url,
        metrics_addr="",
        log_level="warning",
    )
    run_setup(settings)
    engine = make_engine(settings.database_url)
    a_code, b_code = random_code(), random_code()
    b = add_agency(settings, engine, b_code)
    assert b.password is not None
    ordinary = make_document(a_code, [b_code])
    urgent = make_document(a_code, [b_code], document_id=f"{a_code},2026/11/30,1/KHAN")
    urgent.other_info = OtherInfo(priority=1)
    urgent_mid = str(uuid.uuid4())
    conn = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
    ch = conn.channel()
    ch.confirm_delivery()
    body = encode_message(ordinary)
    for _ in range(args.backlog):
        _publish(ch, t.deliver_routing_key(b_code), body, str(uuid.uuid4()), b_code)
    _publish(ch, urgent_routing_key(b_code), encode_message(urgent), urgent_mid, b_code)
    conn.close()
    result: dict[str, object] = {"backlog": args.backlog}
    with tempfile.TemporaryDirectory(prefix="lienthong-bench-urgent-") as tmp:
        config = write_config(Path(tmp), b_code, agency_url(settings), b.password)
        with adapter_thread(config) as adapter:
            started = time.monotonic()
            urgent_at: float | None = None
            position: int | None = None
            total = 0
            while time.monotonic() - started < args.timeout:
                time.sleep(0.02)
                spool_path = adapter.config.spool_path
                if not spool_path.exists():
                    continue
                db = sqlite3.connect(f"file:{spool_path}?mode=ro", uri=True, timeout=10)
                try:
                    total = db.execute("SELECT count(*) FROM received_items").fetchone()[0]
                    if urgent_at is None:
                        row = db.execute(
                            "SELECT seq FROM received_items WHERE message_id = ?", (urgent_mid,)
                        ).fetchone()
                        if row is not None:
                            urgent_at = time.monotonic() - started
                            position = db.execute(
                                "SELECT count(*) FROM received_items WHERE seq <= ?", (row[0],)
                            ).fetchone()[0]
                except sqlite3.OperationalError:  # the adapter has not created its tables yet
                    pass
                finally:
                    db.close()
                if total >= args.backlog + 1 and urgent_at is not None:
                    break
            everything = time.monotonic() - started
    engine.dispose()
    with ManagementClient(services.management_url, timeout=120) as mgmt:
        mgmt.delete_vhost(settings.vhost)
        mgmt.delete_user(b_code)
    admin = make_engine(services.database_url_for("postgres"))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
    if urgent_at is None:
        raise SystemExit(f"the urgent copy was not recorded in {args.timeout} s ({total} were)")
    result |= {
        "urgent_position_in_received_store": position,
        "urgent_latency_from_adapter_start_seconds": round(urgent_at, 2),
        "whole_backlog_seconds": round(everything, 2),
        "recorded": total,
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
