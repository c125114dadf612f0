"""The first look at an outbox message: envelope checks and decoding (DESIGN §2 step 2).

Pure: the worker passes what the broker told it; the answer is a decoded message or a reason
a person can act on.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas import Document, Status
from schemas import topology as t
from schemas.envelope import InvalidMessage, decode_message


@dataclass(slots=True)
class Envelope:
    """What the relay knows about an outbox message before reading its body."""

    owner: str  # the connected agency owning the outbox queue it came from
    message_id: str | None
    user_id: str | None
    message_type: str | None
    body: bytes


@dataclass(frozen=True)
class Refusal:
    reason: str


def read_submission(env: Envelope, max_bytes: int) -> Document | Status | Refusal:
    """The decoded document or status, or why it is refused."""
    if len(env.body) > max_bytes:
        return Refusal(
            f"message is {len(env.body)} bytes, larger than the limit of {max_bytes} bytes"
        )
    if not env.user_id:
        return Refusal(
            "user_id: the AMQP user_id property is missing; the adapter must set it to its "
            f"own agency code ({env.owner})"
        )
    if env.user_id != env.owner:
        return Refusal(
            f"user_id: {env.user_id!r} does not own queue {t.outbox_queue(env.owner)!r} "
            f"(expected {env.owner!r})"
        )
    if not env.message_id:
        return Refusal("message_id: the AMQP message_id property is missing; set a UUID")
    if len(env.message_id) > 200:
        return Refusal(f"message_id: {env.message_id[:40]!r}… is longer than 200 characters")
    expect = env.message_type
    if expect is not None and expect not in (t.TYPE_DOCUMENT, t.TYPE_STATUS):
        return Refusal(
            f"type: {expect!r} cannot be submitted; use {t.TYPE_DOCUMENT!r} or {t.TYPE_STATUS!r}"
        )
    try:
        message = decode_message(env.body, expect=expect)
    except InvalidMessage as e:
        return Refusal(str(e))
    if not isinstance(message, Document | Status):
        return Refusal("schema: a receipt cannot be submitted; send a document or a status")
    return message
