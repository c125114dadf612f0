"""Decree 30 deadlines through the relay: ``lienthong overdue``, the metric, one notice each."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time

import pytest
from sqlalchemy import Engine, select, update

from relay.config import Settings
from relay.db.tables import deliveries, documents
from relay.deadlines.calendar import VIETNAM
from relay.deadlines.job import calendar_from
from relay.deadlines.store import fill_all_due_times
from schemas import Receipt, decode_message
from schemas.document import OtherInfo
from tests.ops_support import metrics_port, wait_for_metrics
from tests.relay_support import (
    RelayProcess,
    add_agency,
    drain,
    make_document,
    publish,
    settings_env,
)
from tests.services import random_code

pytestmark = pytest.mark.integration

URGENT_SECONDS = 3.0
RELAY_SETTINGS = {
    "urgent_deadline_seconds": URGENT_SECONDS,
    "deadline_tick_seconds": 0.5,
    "metrics_addr": "127.0.0.1:0",
}


def overdue(settings: Settings, *args: str) -> list[dict[str, object]]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from lienthong.cli import main; main()",
            "overdue",
            "--json",
            *args,
        ],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    found: list[dict[str, object]] = json.loads(out.stdout)
    return found


def receipts_of(kind: str, received: list[object]) -> list[Receipt]:
    found = []
    for r in received:
        msg = decode_message(r.body)  # type: ignore[attr-defined]
        if isinstance(msg, Receipt) and msg.kind.value == kind:
            found.append(msg)
    return found


def test_an_urgent_document_to_an_agency_whose_adapter_is_down_becomes_overdue_once(
    relay_env: Settings, db: Engine
) -> None:
    with RelayProcess(relay_env) as relay:
        port = metrics_port(relay)
        a = add_agency(relay_env, db, random_code())
        b = add_agency(relay_env, db, random_code())  # no adapter reads its inbox
        relay.wait_consuming([a.code, b.code])
        urgent = make_document(a.code, [b.code])
        urgent.other_info = OtherInfo(priority=3)  # Hỏa tốc
        normal = make_document(a.code, [b.code])
        sent_at = time.monotonic()
        publish(a, urgent)
        publish(a, normal)
        assert len(receipts_of("accepted", drain(a, expect=2))) == 2
        early = overdue(relay_env)  # a command that takes seconds to start on a loaded machine
        if time.monotonic() - sent_at < URGENT_SECONDS:  # it read before the due time
            assert early == []

        wait_until = sent_at + URGENT_SECONDS + 1
        time.sleep(max(0.0, wait_until - time.monotonic()))
        found = overdue(relay_env)
        assert [(r["document_id"], r["recipient"], r["awaiting"]) for r in found] == [
            (urgent.document_id, b.code, "01")
        ]
        assert found[0]["urgent"] is True
        assert isinstance(found[0]["late_seconds"], int) and found[0]["late_seconds"] >= 0
        only_b = overdue(relay_env, "--agency", b.code)
        assert [r["document_id"] for r in only_b] == [urgent.document_id]
        assert overdue(relay_env, "--agency", a.code) == []

        # The sender is told once, however many passes the job makes.
        notices = receipts_of("overdue", drain(a, expect=1, timeout=20))
        assert [(n.document_id, n.recipient, n.status_code) for n in notices] == [
            (urgent.document_id, b.code, "01")
        ]
        assert notices[0].reason and "has not sent 01 Đã đến" in notices[0].reason
        time.sleep(2.0)  # four more passes
        assert receipts_of("overdue", drain(a, timeout=2)) == []
        assert overdue(relay_env)[0]["sender_notified"] is True

        wait_for_metrics(port, lambda m: m.get('lienthong_deliveries_overdue{awaiting="01"}') == 1)
        wait_for_metrics(port, lambda m: m.get("lienthong_overdue_notices_total", 0) >= 1)


def test_the_relay_dates_each_delivery_as_it_stores_it(relay_env: Settings, db: Engine) -> None:
    """Due times are in the insert: the deadlines job (its first pass at start-up, the next an
    hour later here) does not have to rewrite the rows."""
    settings = relay_env.model_copy(update={"deadline_tick_seconds": 3600.0})
    with RelayProcess(settings) as relay:
        a = add_agency(settings, db, random_code())
        b = add_agency(settings, db, random_code())
        relay.wait_consuming([a.code, b.code])
        normal = make_document(a.code, [b.code])
        urgent = make_document(a.code, [b.code])
        urgent.other_info = OtherInfo(priority=1)
        publish(a, normal)
        publish(a, urgent)
        drain(a, expect=2)
    calendar = calendar_from(settings)
    with db.connect() as conn:
        rows = {
            r.document_id: r
            for r in conn.execute(
                select(
                    documents.c.document_id,
                    deliveries.c.created_at,
                    deliveries.c.ack_due_at,
                    deliveries.c.register_due_at,
                    deliveries.c.urgent,
                )
                .join(documents, documents.c.id == deliveries.c.document_pk)
                .where(deliveries.c.route_to == b.code)
            )
        }
    day = rows[normal.document_id]
    local = day.created_at.astimezone(VIETNAM).date()
    assert day.urgent is False
    assert day.ack_due_at == day.register_due_at
    assert day.ack_due_at == calendar.end_of_day(calendar.next_working_day(local))
    soon = rows[urgent.document_id]
    assert soon.urgent is True and soon.ack_due_at == soon.register_due_at
    expected = soon.created_at + dt.timedelta(seconds=URGENT_SECONDS)
    assert abs(soon.ack_due_at - expected) < dt.timedelta(seconds=5)  # the batch's clock


def test_a_normal_document_delivered_on_a_friday_evening_is_due_at_the_end_of_monday(
    relay_env: Settings, db: Engine
) -> None:
    with RelayProcess(relay_env) as relay:
        a = add_agency(relay_env, db, random_code())
        b = add_agency(relay_env, db, random_code())
        relay.wait_consuming([a.code, b.code])
        doc = make_document(a.code, [b.code])
        publish(a, doc)
        drain(a, expect=1)
    friday_evening = dt.datetime(2026, 11, 27, 19, 30, tzinfo=VIETNAM)
    holiday_friday = dt.datetime(2026, 4, 24, 19, 30, tzinfo=VIETNAM)  # Monday 27 April is off
    with db.begin() as conn:
        pk = conn.execute(
            select(documents.c.id).where(documents.c.document_id == doc.document_id)
        ).scalar_one()
        conn.execute(
            update(deliveries)
            .where(deliveries.c.document_pk == pk)
            .values(created_at=friday_evening, ack_due_at=None)
        )
    fill_all_due_times(db, calendar_from(relay_env), relay_env.urgent_deadline_seconds)
    with db.begin() as conn:
        row = conn.execute(select(deliveries).where(deliveries.c.document_pk == pk)).one()
        assert row.urgent is False
        assert (
            row.ack_due_at == row.register_due_at == dt.datetime(2026, 11, 30, 17, tzinfo=VIETNAM)
        )
        conn.execute(
            update(deliveries)
            .where(deliveries.c.document_pk == pk)
            .values(created_at=holiday_friday, ack_due_at=None)
        )
    fill_all_due_times(db, calendar_from(relay_env), relay_env.urgent_deadline_seconds)
    with db.connect() as conn:
        row = conn.execute(select(deliveries).where(deliveries.c.document_pk == pk)).one()
        assert row.register_due_at == dt.datetime(2026, 4, 28, 17, tzinfo=VIETNAM)
