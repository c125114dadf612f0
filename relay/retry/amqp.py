"""pika at the edge of the retry worker: connect, publish with confirms, translate errors."""

from __future__ import annotations

import time

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.adapters.utils.connection_workflow import AMQPConnectorException

from relay.broker.errors import unreachable
from relay.domain.outgoing import Outgoing
from relay.errors import PermanentError, ServiceUnavailable, TransientError
from schemas import topology as t


class Unroutable(PermanentError):
    """The broker had no queue for the message (``mandatory``): the inbox does not exist."""


class NotConfirmed(TransientError):
    """The broker refused (nacked) the message; publishing it again may work."""


def connect(amqp_url: str, *, name: str) -> pika.BlockingConnection:
    params = pika.URLParameters(amqp_url)
    params.heartbeat = 30
    params.blocked_connection_timeout = 60
    params.client_properties = {"connection_name": name}
    try:
        return pika.BlockingConnection(params)
    # A stalled handshake raises AMQPConnectorException, which is not an AMQPError; pika
    # defines it in its connection workflow module, not in pika.exceptions.
    except (pika.exceptions.AMQPError, AMQPConnectorException, OSError) as e:
        raise ServiceUnavailable(unreachable(amqp_url, e)) from e


def publish(channel: BlockingChannel, out: Outgoing) -> None:
    """Publish ``out`` to its inbox and wait for the broker's confirm.

    ``mandatory=True``: a message that no queue takes is returned and raised as Unroutable
    instead of vanishing (a missing inbox must not look like a delivery).
    """
    props = pika.BasicProperties(
        content_type=t.CONTENT_TYPE,
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=out.message_id,
        type=out.message_type,
        correlation_id=out.correlation_id,
        headers=dict(out.headers),
        timestamp=int(time.time()),
    )
    try:
        channel.basic_publish(
            t.DELIVER_EXCHANGE, out.routing_key, out.body, properties=props, mandatory=True
        )
    except pika.exceptions.UnroutableError as e:
        raise Unroutable(
            f"no inbox takes messages for {out.route_to!r} (routing key {out.routing_key!r})"
        ) from e
    except pika.exceptions.NackError as e:
        raise NotConfirmed(f"the broker refused message {out.message_id}") from e
    except pika.exceptions.AMQPError as e:
        raise ServiceUnavailable(f"RabbitMQ connection lost ({type(e).__name__}: {e})") from e


def open_confirm_channel(conn: pika.BlockingConnection) -> BlockingChannel:
    ch = conn.channel()
    ch.confirm_delivery()
    return ch
