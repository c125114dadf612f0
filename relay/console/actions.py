"""What an operator does from the console, each written to the audit log, also when it fails.

The relay's own functions do the work (``relay.retry.resend``, ``relay.directory.service``);
this module only adds who asked and records the outcome.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
import structlog
from sqlalchemy import Engine

from relay.config import Settings
from relay.console import audit
from relay.console.roles import User
from relay.directory.service import resume_agency, suspend_agency
from relay.domain.outgoing import Outgoing
from relay.errors import LienthongError, PermanentError
from relay.retry import amqp
from relay.retry.resend import resend

log = structlog.get_logger()


class NotAllowed(PermanentError):
    """The user's role may not do this."""


@dataclass(frozen=True)
class Outcome:
    ok: bool
    changed: int  # deliveries resent, or 1/0 for a state change
    error: str | None = None


def _check(user: User) -> None:
    if not user.may_act:
        raise NotAllowed(f"{user.name} is a {user.role}; only operators may act")


def _record(
    engine: Engine,
    user: User,
    action: str,
    target: str,
    outcome: Outcome,
    client: str | None,
    detail: dict[str, Any],
) -> None:
    with engine.begin() as conn:
        audit.record(
            conn,
            username=user.name,
            action=action,
            target=target,
            outcome=(audit.DONE if outcome.changed else audit.NOTHING)
            if outcome.ok
            else audit.FAILED,
            detail={**detail, **({"error": outcome.error} if outcome.error else {})},
            client=client,
        )


def resend_document(
    settings: Settings,
    engine: Engine,
    user: User,
    document_id: str,
    recipient: str | None,
    *,
    client: str | None = None,
) -> Outcome:
    """Resend the failed deliveries of ``document_id`` (to ``recipient`` only, if given)."""
    _check(user)
    connection: list[pika.BlockingConnection] = []
    channel: list[Any] = []

    def publish(out: Outgoing) -> None:
        # Connect only when there is something to send, as `lienthong resend` does.
        if not channel:
            connection.append(
                amqp.connect(settings.amqp_url, name=f"lienthong console {user.name}")
            )
            channel.append(amqp.open_confirm_channel(connection[0]))
        amqp.publish(channel[0], out)

    resent: list[dict[str, Any]] = []
    try:
        done = resend(engine, document_id, publish, recipient=recipient, by=user.name)
        resent = [{"recipient": r.recipient, "message_id": r.message_id} for r in done]
        outcome = Outcome(ok=True, changed=len(done))
    except LienthongError as e:
        outcome = Outcome(ok=False, changed=0, error=str(e))
    except Exception as e:
        # A request is a boundary: whatever broke, the attempt is on the record and the
        # operator is told, instead of a bare 500 with no audit entry.
        log.exception("console.resend_failed", document_id=document_id, by=user.name)
        outcome = Outcome(ok=False, changed=0, error=f"{type(e).__name__}: {e}")
    finally:
        for c in connection:
            with contextlib.suppress(pika.exceptions.AMQPError):
                c.close()
    _record(
        engine,
        user,
        audit.RESEND,
        document_id,
        outcome,
        client,
        {"recipient": recipient, "resent": resent},
    )
    return outcome


def set_agency_state(
    settings: Settings,
    engine: Engine,
    user: User,
    code: str,
    *,
    suspend: bool,
    client: str | None = None,
) -> Outcome:
    """Suspend or resume an agency (directory and broker rights), on the record."""
    _check(user)
    try:
        change = suspend_agency(settings, code) if suspend else resume_agency(settings, code)
        outcome = Outcome(ok=True, changed=int(change.changed))
    except LienthongError as e:
        outcome = Outcome(ok=False, changed=0, error=str(e))
    except Exception as e:  # a request is a boundary: the attempt stays on the record
        log.exception("console.agency_state_failed", agency=code, by=user.name)
        outcome = Outcome(ok=False, changed=0, error=f"{type(e).__name__}: {e}")
    _record(engine, user, audit.SUSPEND if suspend else audit.RESUME, code, outcome, client, {})
    return outcome
