"""``python -m tests.bench.urgent``: an urgent document behind a backlog of ordinary ones.

The relay's half of the urgent lanes of issue 18 (:mod:`tests.bench.urgent_adapter` is the
adapter's): the relay is stopped while agency A queues ``--backlog`` ordinary documents to B and
then one urgent one (``Priority`` 1, Khẩn), each to the submit exchange A's adapter would choose
(:func:`schemas.urgency.is_urgent_submission`); the relay starts; a consumer reads B's inboxes
(ordinary and urgent) as fast as it can. Reported: the urgent document's position among what B
received and its latency from the relay's start, beside the time for the whole backlog. Before
the urgent lanes, outboxes and inboxes were single FIFO quorum queues (no priorities before
RabbitMQ 4.0): the urgent document came out last, 5,001 of 5,001.

``--urgent-after N``: the urgent document is published only once B has received N copies, while
the relay is in the middle of the backlog (its prefetch full of ordinary messages); its latency
is then counted from its publish.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from typing import Any

import pika
from sqlalchemy import text

from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.db.engine import make_engine
from relay.setup import run_setup
from schemas import topology as t
from schemas.document import OtherInfo
from schemas.envelope import encode_message
from schemas.urgency import is_urgent_submission
from tests.bench.env import services_from_env
from tests.relay_support import (
    RelayProcess,
    add_agency,
    agency_channel,
    connect,
    make_document,
    publish_many,
)


def main(argv: list[str] | None = None) -> dict[str, object]:
    p = argparse.ArgumentParser(prog="python -m tests.bench.urgent", description=__doc__)
    p.add_argument("--backlog", type=int, default=5000)
    p.add_argument("--urgent-after", type=int, default=0, metavar="N")
    args = p.parse_args(argv)
    services = services_from_env()
    name = f"lienthong_bench_urgent_{uuid.uuid4().hex[:8]}"
    settings = Settings(
        amqp_url=services.amqp_url_for(name.replace("_", "-")),
        database_url=services.database_url_for(name),
        management_url=services.management_url,
        metrics_addr="",
        log_level="warning",
    )
    run_setup(settings)
    engine = make_engine(settings.database_url)
    a = add_agency(settings, engine, "000.00.00.G22")
    b = add_agency(settings, engine, "000.00.00.H29")
    ordinary = [encode_message(make_document(a.code, [b.code])) for _ in range(args.backlog)]
    urgent = make_document(a.code, [b.code], document_id=f"{a.code},2026/11/30,1/KHAN")
    urgent.other_info = OtherInfo(priority=1)
    publish_many(a, ordinary)
    urgent_body = encode_message(urgent)

    def publish_urgent() -> float:
        with agency_channel(a) as ach:
            ach.basic_publish(
                t.submit_exchange(
                    a.code, urgent=is_urgent_submission(t.TYPE_DOCUMENT, urgent_body)
                ),
                "",
                urgent_body,
                properties=pika.BasicProperties(
                    message_id=str(uuid.uuid4()),
                    type=t.TYPE_DOCUMENT,
                    user_id=a.code,
                    delivery_mode=2,
                    content_type=t.CONTENT_TYPE,
                ),
                mandatory=True,
            )
        return time.monotonic()

    if not args.urgent_after:
        publish_urgent()
    assert b.amqp_url is not None
    conn = connect(b.amqp_url)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=1000)
    received: list[tuple[float, bytes]] = []

    def on_message(channel: Any, method: Any, _props: Any, body: bytes) -> None:
        channel.basic_ack(method.delivery_tag)
        received.append((time.monotonic(), body))

    for queue in (t.inbox_queue(b.code), t.inbox_queue(b.code, urgent=True)):
        ch.basic_consume(queue, on_message)
    with RelayProcess(settings, log_level="warning").start(wait=False) as relay:
        started = time.monotonic()
        urgent_at = None
        published_at = started
        before_publish = 0
        last = started
        while len(received) < args.backlog + 1:
            if args.urgent_after and published_at == started and len(received) >= args.urgent_after:
                published_at, before_publish = publish_urgent(), len(received)
            seen = len(received)
            conn.process_data_events(time_limit=0.5)
            if len(received) > seen:
                last = time.monotonic()
            elif time.monotonic() - last > 60:
                raise SystemExit(f"the inbox stayed empty for 60 s:\n{relay.log_text()[-3000:]}")
        everything = time.monotonic() - started
    conn.close()
    for position, (at, body) in enumerate(received, 1):
        if urgent.document_id.encode() in body:
            urgent_at, urgent_position = at - published_at, position
            break
    engine.dispose()
    with ManagementClient(services.management_url, timeout=120) as mgmt:
        mgmt.delete_vhost(settings.vhost)
        for code in (a.code, b.code):
            mgmt.delete_user(code)
    admin = make_engine(services.database_url_for("postgres"))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
    assert urgent_at is not None
    result = {
        "backlog": args.backlog,
        **({"copies_received_before_its_publish": before_publish} if args.urgent_after else {}),
        "urgent_position_in_inbox": urgent_position,
        (
            "urgent_latency_from_its_publish_seconds"
            if args.urgent_after
            else "urgent_latency_from_relay_start_seconds"
        ): round(urgent_at, 2),
        "whole_backlog_seconds": round(everything, 2),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
