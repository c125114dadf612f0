"""The hub's agencies page counts what waits in both lanes of an agency's queues (DESIGN §3):
an urgent copy waiting in ``agency.<code>.inbox.urgent`` is waiting all the same."""

from __future__ import annotations

import datetime as dt

import pika
import pytest
from sqlalchemy import Engine

from relay.config import Settings
from relay.console.hub import load_agencies
from schemas import topology as t
from tests.relay_support import add_agency, connect, wait_until
from tests.services import random_code

pytestmark = pytest.mark.integration


def _put(settings: Settings, queue: str, n: int) -> None:
    conn = connect(settings.amqp_url)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        for _ in range(n):
            ch.basic_publish("", queue, b"{}", pika.BasicProperties(delivery_mode=2))
    finally:
        conn.close()


def test_the_agencies_page_counts_the_urgent_lanes_too(relay_env: Settings, db: Engine) -> None:
    a = add_agency(relay_env, db, random_code())
    _put(relay_env, t.inbox_queue(a.code), 2)
    _put(relay_env, t.inbox_queue(a.code, urgent=True), 1)
    _put(relay_env, t.outbox_queue(a.code, urgent=True), 4)

    seen: list[tuple[int | None, int | None]] = []

    def counts() -> bool:
        with db.connect() as conn:
            found = load_agencies(
                conn,
                management_url=relay_env.management_url,
                vhost=relay_env.vhost,
                now=dt.datetime.now(dt.UTC),
            )
        mine = next(x for x in found.agencies if x.code == a.code)
        seen.append((mine.inbox, mine.outbox))
        return seen[-1] == (3, 4)  # the management API refreshes its counts every few seconds

    try:
        wait_until(counts, timeout=30, interval=1.0)
    except AssertionError:
        raise AssertionError(f"(inbox, outbox) counted as {seen[-1]}, not (3, 4)") from None
