"""RabbitMQ names, defined once (DESIGN §3). Queue names read well in the management UI."""

from __future__ import annotations

import re

#: The relay's own topic exchange into the outboxes (routing key = agency code). No agency may
#: write to it: RabbitMQ before 4.0.3 does not check topic permissions against ``CC``/``BCC``
#: headers, so a shared exchange would let one agency route into another's outbox.
SUBMIT_EXCHANGE = "lienthong.submit"
#: Prefix of each agency's own submit exchange (see :func:`submit_exchange`).
SUBMIT_EXCHANGE_PREFIX = "lienthong.submit."
#: The relay publishes deliveries, statuses and receipts here; routing key = inbox owner's code.
DELIVER_EXCHANGE = "lienthong.deliver"
#: Dead-letter target of every inbox (exchange and queue of the same name).
RETURNED_EXCHANGE = "lienthong.returned"
RETURNED_QUEUE = "lienthong.returned"
#: Dead-letter target of every outbox (exchange and queue of the same name): submissions the
#: relay failed to handle too many times. The relay reads it and tells each sender (a
#: ``rejected`` receipt); see :mod:`relay.retry.deadletters`.
FAILED_SUBMISSIONS_EXCHANGE = "lienthong.failed-submissions"
FAILED_SUBMISSIONS_QUEUE = "lienthong.failed-submissions"
#: Dead-letter target of ``lienthong.returned`` and ``lienthong.failed-submissions``: kept for an
#: operator. A classic queue: it counts no deliveries, so RabbitMQ never drops from it (a
#: quorum queue past its delivery limit drops, and dead-lettering back into a queue a message
#: came from is a cycle RabbitMQ drops too).
PARKED_EXCHANGE = "lienthong.parked"
PARKED_QUEUE = "lienthong.parked"

#: RabbitMQ user tag marking the agency users a hub created, one per hub (its vhost): a hub
#: never takes over a user without it (users are broker-wide, vhosts are not).
HUB_TAG_PREFIX = "lienthong-hub:"

OUTBOX_POLICY = "lienthong-outbox"
INBOX_POLICY = "lienthong-inbox"
RETURNED_POLICY = "lienthong-returned"
FAILED_SUBMISSIONS_POLICY = "lienthong-failed-submissions"
#: Each pattern covers the ordinary and the urgent queue of every agency (same limits).
OUTBOX_PATTERN = r"^agency\..+\.outbox(\.urgent)?$"
INBOX_PATTERN = r"^agency\..+\.inbox(\.urgent)?$"
RETURNED_PATTERN = r"^lienthong\.returned$"
FAILED_SUBMISSIONS_PATTERN = r"^lienthong\.failed-submissions$"

#: AMQP ``type`` property values.
TYPE_DOCUMENT = "document"
TYPE_STATUS = "status"
TYPE_RECEIPT = "receipt"
#: several receipts for one agency in one message (``lienthong.receipts/1``)
TYPE_RECEIPTS = "receipts"

#: Headers the relay sets on what it publishes to an inbox.
HEADER_SUBMISSION_ID = "x-lienthong-submission-id"  # the sender's submission message_id
HEADER_RECIPIENT = "x-lienthong-recipient"  # the agency code as addressed (maybe a hosted unit)
HEADER_SENDER = "x-lienthong-sender"  # the connected agency that submitted it

CONTENT_TYPE = "application/json"

#: Suffix of an agency's urgent-lane objects (issue 18): ``agency.<code>.outbox.urgent``,
#: ``agency.<code>.inbox.urgent``, ``lienthong.submit.<code>.urgent`` and the routing key
#: ``<code>.urgent`` on ``lienthong.deliver``. Quorum queues have no priorities before RabbitMQ
#: 4.0, so urgent documents get queues of their own, consumed first (DESIGN §3). Agency codes
#: are digits and capital letters, so no code ends with it and no name can mean two agencies.
URGENT_SUFFIX = ".urgent"


def hub_tag(vhost: str) -> str:
    return HUB_TAG_PREFIX + vhost


def _lane(urgent: bool) -> str:
    return URGENT_SUFFIX if urgent else ""


def outbox_queue(code: str, *, urgent: bool = False) -> str:
    return f"agency.{code}.outbox" + _lane(urgent)


def inbox_queue(code: str, *, urgent: bool = False) -> str:
    return f"agency.{code}.inbox" + _lane(urgent)


def submit_exchange(code: str, *, urgent: bool = False) -> str:
    """The fanout exchange an agency's adapter publishes to; only its own outbox (of the same
    lane) is bound to it, so no routing key or ``CC``/``BCC`` header can take a message
    anywhere else."""
    return SUBMIT_EXCHANGE_PREFIX + code + _lane(urgent)


def submit_routing_key(code: str) -> str:
    return code


def deliver_routing_key(code: str, *, urgent: bool = False) -> str:
    return code + _lane(urgent)


def agency_of_outbox(queue: str) -> str | None:
    """The agency code owning an outbox queue name (either lane), or None if it is not one."""
    m = re.fullmatch(r"agency\.(.+?)\.outbox(?:\.urgent)?", queue)
    return m.group(1) if m else None
