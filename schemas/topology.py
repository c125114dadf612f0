"""RabbitMQ names, defined once (DESIGN §3). Queue names read well in the management UI."""

from __future__ import annotations

import re

#: Adapters publish here; routing key = their own agency code.
SUBMIT_EXCHANGE = "lienthong.submit"
#: The relay publishes deliveries, statuses and receipts here; routing key = inbox owner's code.
DELIVER_EXCHANGE = "lienthong.deliver"
#: Dead-letter target of every inbox (exchange and queue of the same name).
RETURNED_EXCHANGE = "lienthong.returned"
RETURNED_QUEUE = "lienthong.returned"

OUTBOX_POLICY = "lienthong-outbox"
INBOX_POLICY = "lienthong-inbox"
RETURNED_POLICY = "lienthong-returned"
OUTBOX_PATTERN = r"^agency\..+\.outbox$"
INBOX_PATTERN = r"^agency\..+\.inbox$"
RETURNED_PATTERN = r"^lienthong\.returned$"

#: AMQP ``type`` property values.
TYPE_DOCUMENT = "document"
TYPE_STATUS = "status"
TYPE_RECEIPT = "receipt"

#: Headers the relay sets on what it publishes to an inbox.
HEADER_SUBMISSION_ID = "x-lienthong-submission-id"  # the sender's submission message_id
HEADER_RECIPIENT = "x-lienthong-recipient"  # the agency code as addressed (maybe a hosted unit)
HEADER_SENDER = "x-lienthong-sender"  # the connected agency that submitted it

CONTENT_TYPE = "application/json"


def outbox_queue(code: str) -> str:
    return f"agency.{code}.outbox"


def inbox_queue(code: str) -> str:
    return f"agency.{code}.inbox"


def submit_routing_key(code: str) -> str:
    return code


def deliver_routing_key(code: str) -> str:
    return code


def agency_of_outbox(queue: str) -> str | None:
    """The agency code owning an outbox queue name, or None if it is not one."""
    m = re.fullmatch(r"agency\.(.+)\.outbox", queue)
    return m.group(1) if m else None
