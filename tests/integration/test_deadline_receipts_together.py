"""A pass of the deadlines job tells each sender about its overdue deliveries in one
``lienthong.receipts/1`` message, not one message per notice (relay/periodic.py).

Real RabbitMQ and PostgreSQL, an environment of the module's own (a pass looks at every
delivery of the database); the job's clock is a month ahead, so every delivery is overdue.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, insert

from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.db.engine import make_engine
from relay.db.tables import agencies
from relay.deadlines.job import DeadlineJob
from relay.periodic import ReceiptPublisher
from schemas import topology as t
from tests.conftest import EnvFactory
from tests.retry_support import Agency, add_agency, inbox_receipts, submit_many
from tests.services import random_code

pytestmark = pytest.mark.integration

N = 6


@pytest.fixture(scope="module")
def own_env(make_env: EnvFactory) -> Settings:
    return make_env()


@pytest.fixture(scope="module")
def own_db(own_env: Settings) -> Iterator[Engine]:
    eng = make_engine(own_env.database_url)
    yield eng
    eng.dispose()


def a_month_on() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=30)


def run_pass(settings: Settings, db: Engine) -> int:
    publisher = ReceiptPublisher(settings)
    try:
        return DeadlineJob(settings, db, publisher, clock=a_month_on).run_once().notified
    finally:
        publisher.close()


def overdue_notices(settings: Settings, agency: Agency) -> list[tuple[str, list[str]]]:
    """(message type, kinds of the receipts it carries) of each message in the inbox."""
    return [
        (kind, [r.kind.value for r in found]) for kind, found in inbox_receipts(settings, agency)
    ]


def test_a_senders_overdue_notices_of_one_pass_go_as_one_message(
    own_env: Settings, own_db: Engine, management: ManagementClient
) -> None:
    sender = add_agency(own_env, own_db, management)
    recipient = add_agency(own_env, own_db, management)
    submit_many(own_db, own_env, sender.code, recipient.code, N)

    assert run_pass(own_env, own_db) == N

    assert overdue_notices(own_env, sender) == [(t.TYPE_RECEIPTS, ["overdue"] * N)]
    assert run_pass(own_env, own_db) == 0  # told once


def test_with_group_receipts_off_each_overdue_notice_goes_alone(
    own_env: Settings, own_db: Engine, management: ManagementClient
) -> None:
    settings = own_env.model_copy(update={"group_receipts": False})
    sender = add_agency(settings, own_db, management)
    recipient = add_agency(settings, own_db, management)
    submit_many(own_db, settings, sender.code, recipient.code, N)

    assert run_pass(settings, own_db) == N

    assert overdue_notices(settings, sender) == [(t.TYPE_RECEIPT, ["overdue"])] * N


def test_a_group_to_an_inbox_that_is_gone_is_dropped_as_a_lone_notice_is(
    own_env: Settings, own_db: Engine, management: ManagementClient
) -> None:
    gone = random_code()  # in the directory, but its inbox does not exist
    with own_db.begin() as conn:
        conn.execute(insert(agencies).values(code=gone, name=f"Test {gone}", strict_code=True))
    recipient = add_agency(own_env, own_db, management)
    submit_many(own_db, own_env, gone, recipient.code, N)

    assert run_pass(own_env, own_db) == N  # nobody to tell: said in the log, not retried
    assert run_pass(own_env, own_db) == 0
