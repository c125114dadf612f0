"""An agency's own RabbitMQ credentials can do what DESIGN §3 allows and nothing else.

Each refusal comes from RabbitMQ itself: the channel is closed with the AMQP reply code.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from relay.config import Settings
from relay.directory.service import add_agency, resume_agency, suspend_agency
from schemas import topology as t
from tests.integration.test_agency_cli import new_code, remove_created_users

pytestmark = pytest.mark.integration

__all__ = ["remove_created_users"]  # the fixture, imported to run here too

ACCESS_REFUSED = 403
PRECONDITION_FAILED = 406


@dataclass(frozen=True)
class Provisioned:
    code: str
    password: str


@pytest.fixture(scope="module")
def two_agencies(env: Settings, tmp_path_factory: pytest.TempPathFactory) -> list[Provisioned]:
    made = []
    for _ in range(2):
        code = new_code()
        secret = tmp_path_factory.mktemp("secrets") / f"{code}.secret"
        password = uuid.uuid4().hex
        secret.write_text(password)
        add_agency(env, code, f"Cơ quan {code}", password_file=secret)
        made.append(Provisioned(code, password))
    return made


def connect(settings: Settings, user: str, password: str) -> pika.BlockingConnection:
    params = pika.URLParameters(settings.amqp_url)
    params.credentials = pika.PlainCredentials(user, password)
    params.connection_attempts = 1
    params.blocked_connection_timeout = 10
    return pika.BlockingConnection(params)


@pytest.fixture
def channel(env: Settings, two_agencies: list[Provisioned]) -> Iterator[BlockingChannel]:
    a = two_agencies[0]
    connection = connect(env, a.code, a.password)
    ch = connection.channel()
    ch.confirm_delivery()
    yield ch
    if connection.is_open:
        connection.close()


def publish(
    ch: BlockingChannel, routing_key: str, user_id: str, exchange_of: str | None = None
) -> None:
    """Publish to the submit exchange of ``exchange_of`` (default: the agency ``routing_key``)."""
    ch.basic_publish(
        t.submit_exchange(exchange_of or routing_key),
        routing_key,
        b'{"probe": true}',
        pika.BasicProperties(
            delivery_mode=2, message_id=str(uuid.uuid4()), type=t.TYPE_DOCUMENT, user_id=user_id
        ),
        mandatory=True,
    )


def refused(call: Callable[[], object], code: int) -> str:
    """Run ``call`` and return the broker's reply text, checking its reply code."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
        call()
    assert caught.value.reply_code == code, caught.value.reply_text
    return str(caught.value.reply_text)


def outbox_count(env: Settings, code: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(env.amqp_url))
    try:
        frame = connection.channel().queue_declare(t.outbox_queue(code), passive=True)
        return int(frame.method.message_count)
    finally:
        connection.close()


def test_an_agency_publishes_to_its_own_submit_exchange(
    env: Settings, two_agencies: list[Provisioned], channel: BlockingChannel
) -> None:
    a = two_agencies[0]
    before = outbox_count(env, a.code)
    publish(channel, a.code, a.code)  # confirmed, routed: raises otherwise
    assert outbox_count(env, a.code) == before + 1


def test_publishing_to_another_agencys_submit_exchange_is_refused(
    two_agencies: list[Provisioned], channel: BlockingChannel
) -> None:
    b = two_agencies[1]
    text = refused(lambda: publish(channel, b.code, two_agencies[0].code), ACCESS_REFUSED)
    assert "ACCESS_REFUSED" in text


def test_the_shared_submit_exchange_is_no_longer_writable_by_an_agency(
    two_agencies: list[Provisioned], channel: BlockingChannel
) -> None:
    a = two_agencies[0]
    text = refused(
        lambda: channel.basic_publish(
            t.SUBMIT_EXCHANGE, a.code, b"{}", pika.BasicProperties(user_id=a.code)
        ),
        ACCESS_REFUSED,
    )
    assert t.SUBMIT_EXCHANGE in text


def test_publishing_with_another_agencys_user_id_is_refused(
    two_agencies: list[Provisioned], channel: BlockingChannel
) -> None:
    a, b = two_agencies
    text = refused(lambda: publish(channel, a.code, b.code, a.code), PRECONDITION_FAILED)
    assert "PRECONDITION_FAILED" in text and "user_id" in text


def test_an_agency_reads_its_own_inbox_but_not_another_agencys(
    two_agencies: list[Provisioned], channel: BlockingChannel
) -> None:
    a, b = two_agencies
    channel.basic_get(t.inbox_queue(a.code), auto_ack=False)  # allowed
    text = refused(
        lambda: channel.basic_consume(t.inbox_queue(b.code), lambda *args: None),
        ACCESS_REFUSED,
    )
    assert "ACCESS_REFUSED" in text


def test_an_agency_cannot_declare_a_queue(channel: BlockingChannel) -> None:
    refused(lambda: channel.queue_declare("agency.rogue.inbox", durable=True), ACCESS_REFUSED)


def test_an_agency_cannot_delete_its_own_or_another_queue(
    env: Settings, two_agencies: list[Provisioned]
) -> None:
    a, b = two_agencies
    for queue in (t.inbox_queue(a.code), t.outbox_queue(b.code)):
        connection = connect(env, a.code, a.password)
        try:
            ch = connection.channel()
            refused(lambda: ch.queue_delete(queue), ACCESS_REFUSED)  # noqa: B023
        finally:
            if connection.is_open:
                connection.close()


def test_a_suspended_agency_cannot_publish_until_it_is_resumed(
    env: Settings, tmp_path: Path
) -> None:
    code, password = new_code(), uuid.uuid4().hex
    secret = tmp_path / "secret"
    secret.write_text(password)
    add_agency(env, code, "Bộ Tài chính", password_file=secret)
    suspend_agency(env, code)
    connection = connect(env, code, password)
    try:
        ch = connection.channel()
        ch.confirm_delivery()
        refused(lambda: publish(ch, code, code), ACCESS_REFUSED)
    finally:
        if connection.is_open:
            connection.close()
    resume_agency(env, code)
    connection = connect(env, code, password)
    try:
        ch = connection.channel()
        ch.confirm_delivery()
        publish(ch, code, code)
    finally:
        connection.close()
