"""No route an agency's own credentials can try puts a message anywhere but its own outbox.

RabbitMQ before 4.0.3 does not check topic permissions against the ``CC``/``BCC`` headers, so a
shared topic exchange let agency A write into agency B's outbox (issue 12, item 2). Every
exchange A might publish to is tried with every way of naming B; each publish must be refused
by the broker or land in A's own outbox, and nothing may reach another queue. The urgent lane
(issue 18: ``lienthong.submit.<code>.urgent``, ``agency.<code>.outbox.urgent`` and
``agency.<code>.inbox.urgent``) is tried and watched the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pika.exceptions
import pytest

from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.directory.service import add_agency
from schemas import topology as t
from tests.integration.test_agency_cli import new_code, remove_created_users

pytestmark = [pytest.mark.integration, pytest.mark.hostile]

__all__ = ["remove_created_users"]  # the fixture, imported to run here too

ACCEPTED, REFUSED, UNROUTABLE = "accepted", "refused", "unroutable"


@dataclass(frozen=True)
class Pair:
    a: str
    a_password: str
    b: str


@pytest.fixture(scope="module")
def pair(env: Settings, tmp_path_factory: pytest.TempPathFactory) -> Pair:
    codes = []
    password = uuid.uuid4().hex
    for _ in range(2):
        code = new_code()
        secret: Path = tmp_path_factory.mktemp("secrets") / f"{code}.secret"
        secret.write_text(password)
        add_agency(env, code, f"Cơ quan {code}", password_file=secret)
        codes.append(code)
    return Pair(codes[0], password, codes[1])


@pytest.fixture
def connection(env: Settings, pair: Pair) -> Iterator[pika.BlockingConnection]:
    params = pika.URLParameters(env.amqp_url)
    params.credentials = pika.PlainCredentials(pair.a, pair.a_password)
    params.connection_attempts = 1
    conn = pika.BlockingConnection(params)
    yield conn
    if conn.is_open:
        conn.close()


def attempt(
    conn: pika.BlockingConnection, user: str, exchange: str, key: str, headers: dict[str, object]
) -> str:
    """Publish once (confirmed, mandatory) on a fresh channel; what the broker did with it."""
    ch = conn.channel()
    ch.confirm_delivery()
    props = pika.BasicProperties(
        delivery_mode=2,
        message_id=str(uuid.uuid4()),
        type=t.TYPE_DOCUMENT,
        user_id=user,
        headers=headers or None,
    )
    try:
        ch.basic_publish(exchange, key, b'{"probe": true}', props, mandatory=True)
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code in (403, 404), e.reply_text
        return REFUSED
    except pika.exceptions.UnroutableError:
        ch.close()
        return UNROUTABLE
    ch.close()
    return ACCEPTED


def counts(mgmt: ManagementClient, env: Settings, queues: list[str]) -> dict[str, int]:
    params = pika.URLParameters(env.amqp_url)
    params.connection_attempts = 1
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        return {q: int(ch.queue_declare(q, passive=True).method.message_count) for q in queues}
    finally:
        conn.close()


def test_no_exchange_key_or_header_lets_an_agency_reach_another_agencys_queues(
    env: Settings, management: ManagementClient, pair: Pair, connection: pika.BlockingConnection
) -> None:
    a, b = pair.a, pair.b
    watched = [
        t.outbox_queue(a),
        t.outbox_queue(b),
        t.inbox_queue(a),
        t.inbox_queue(b),
        t.outbox_queue(a, urgent=True),
        t.outbox_queue(b, urgent=True),
        t.inbox_queue(a, urgent=True),
        t.inbox_queue(b, urgent=True),
        t.RETURNED_QUEUE,
    ]
    exchanges = [
        "lienthong.submit",  # the shared exchange of earlier versions
        f"lienthong.submit.{a}",
        f"lienthong.submit.{b}",
        f"lienthong.submit.{a}.urgent",
        f"lienthong.submit.{b}.urgent",
        "",  # the default exchange: routing key = a queue name
        t.DELIVER_EXCHANGE,
        t.RETURNED_EXCHANGE,
        "amq.direct",
        "amq.topic",
        "amq.fanout",
        "amq.headers",
        "amq.match",
        "amq.rabbitmq.trace",
    ]
    routes: list[tuple[str, dict[str, object]]] = [
        (a, {}),
        (b, {}),
        (t.outbox_queue(b), {}),
        (t.inbox_queue(b), {}),
        (t.inbox_queue(a), {}),
        (t.outbox_queue(a), {}),
        (t.outbox_queue(b, urgent=True), {}),
        (t.inbox_queue(b, urgent=True), {}),
        (t.inbox_queue(a, urgent=True), {}),
        (t.outbox_queue(a, urgent=True), {}),
        (f"{a}.urgent", {}),
        (f"{b}.urgent", {}),
        (a, {"CC": [b]}),
        (a, {"CC": [f"{b}.urgent"], "BCC": [t.outbox_queue(b, urgent=True)]}),
        (a, {"BCC": [b]}),
        (a, {"CC": [t.outbox_queue(b)], "BCC": [t.inbox_queue(b)]}),
        ("#", {}),
    ]
    before = counts(management, env, watched)
    outcomes: dict[tuple[str, str, str], str] = {}
    for exchange in exchanges:
        for key, headers in routes:
            outcome = attempt(connection, a, exchange, key, headers)
            outcomes[(exchange, key, repr(headers))] = outcome
    after = counts(management, env, watched)

    accepted = [k for k, v in outcomes.items() if v == ACCEPTED]
    changed = {q: after[q] - before[q] for q in watched if after[q] != before[q]}
    # Only A's own outboxes may have grown, each by exactly what the broker accepted through
    # the submit exchange of its lane.
    expected = {
        t.outbox_queue(a, urgent=urgent): n
        for urgent in (False, True)
        if (n := sum(1 for x, _, _ in accepted if x == t.submit_exchange(a, urgent=urgent)))
    }
    assert changed == expected, (changed, accepted)
    # Every accepted publish went through one of A's own submit exchanges.
    assert {exchange for exchange, _, _ in accepted} <= {
        t.submit_exchange(a),
        t.submit_exchange(a, urgent=True),
    }, accepted
    assert expected.get(t.outbox_queue(a, urgent=True)), "A could not use its own urgent lane"


def test_an_agency_cannot_declare_or_bind_exchanges_to_make_its_own_route(
    pair: Pair, connection: pika.BlockingConnection
) -> None:
    a, b = pair.a, pair.b
    tries = [
        lambda ch: ch.exchange_declare(
            f"rogue.{a}", "fanout", arguments={"alternate-exchange": t.submit_exchange(b)}
        ),
        lambda ch: ch.exchange_bind(t.submit_exchange(b), t.submit_exchange(a)),
        lambda ch: ch.exchange_bind(t.submit_exchange(a), t.submit_exchange(b)),
        lambda ch: ch.queue_bind(t.outbox_queue(b), t.submit_exchange(a)),
        lambda ch: ch.queue_bind(t.outbox_queue(b), "amq.fanout"),
        lambda ch: ch.queue_bind(t.outbox_queue(b, urgent=True), t.submit_exchange(a, urgent=True)),
        lambda ch: ch.exchange_bind(t.submit_exchange(b, urgent=True), t.submit_exchange(a)),
        lambda ch: ch.queue_bind(t.inbox_queue(b, urgent=True), t.submit_exchange(a)),
    ]
    for call in tries:
        ch = connection.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
            call(ch)
        assert caught.value.reply_code == 403, caught.value.reply_text


def test_an_agencys_submit_exchange_has_no_alternate_exchange_and_one_binding(
    env: Settings, management: ManagementClient, pair: Pair
) -> None:
    for code in (pair.a, pair.b):
        for urgent in (False, True):
            name = t.submit_exchange(code, urgent=urgent)
            exchange = management.get_exchange(env.vhost, name)
            assert exchange is not None, f"{name} is missing"
            assert exchange["arguments"] == {}
            assert "alternate-exchange" not in (exchange.get("effective_policy_definition") or {})
            bindings = management.exchange_bindings(env.vhost, name)
            assert [(x["destination"], x["destination_type"]) for x in bindings] == [
                (t.outbox_queue(code, urgent=urgent), "queue")
            ]
