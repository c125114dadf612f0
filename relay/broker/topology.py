"""Declaring the topology and policies of DESIGN §3, idempotently, through the management API.

Names come from :mod:`schemas.topology`; policies (not queue arguments) carry dead-lettering,
delivery limits, TTL and length limits so operators can change them without redeclaring queues.
"""

from __future__ import annotations

import re
from typing import Any

from relay.broker.management import ManagementClient
from relay.config import Settings
from schemas import topology as t

QUORUM = {"x-queue-type": "quorum"}


#: Dead-lettering that keeps the message until the target queue confirms it (RabbitMQ 3.10+);
#: it needs ``overflow: reject-publish`` on the source queue, or RabbitMQ falls back to
#: at-most-once. Every quorum queue gets an explicit delivery limit with a dead-letter target:
#: from RabbitMQ 4.0 a quorum queue without one *drops* a message after 20 deliveries.
AT_LEAST_ONCE = {"dead-letter-strategy": "at-least-once", "overflow": "reject-publish"}


def policies(settings: Settings) -> dict[str, dict[str, Any]]:
    """Policy name -> body for the management API (also exported to deploy/ definitions)."""
    return {
        t.INBOX_POLICY: {
            "pattern": t.INBOX_PATTERN,
            "apply-to": "queues",
            "priority": 10,
            "definition": {
                # A rejected (requeue=False) or expired delivery goes back to the relay.
                "dead-letter-exchange": t.RETURNED_EXCHANGE,
                "message-ttl": settings.inbox_ttl_ms,
                # Quorum queues count redeliveries; a delivery that keeps crashing its adapter
                # is dead-lettered instead of looping forever.
                "delivery-limit": settings.inbox_delivery_limit,
                **AT_LEAST_ONCE,
            },
        },
        t.OUTBOX_POLICY: {
            "pattern": t.OUTBOX_PATTERN,
            "apply-to": "queues",
            "priority": 10,
            "definition": {
                # Refuse new publishes (the adapter gets a nack and keeps the file spooled)
                # rather than dropping the oldest submissions.
                "max-length-bytes": settings.outbox_max_length_bytes,
                # A submission the relay fails on this often is set aside, and its sender told.
                "delivery-limit": settings.outbox_delivery_limit,
                "dead-letter-exchange": t.FAILED_SUBMISSIONS_EXCHANGE,
                **AT_LEAST_ONCE,
            },
        },
        t.RETURNED_POLICY: {
            "pattern": t.RETURNED_PATTERN,
            "apply-to": "queues",
            "priority": 10,
            "definition": {
                "delivery-limit": settings.dead_letter_delivery_limit,
                "dead-letter-exchange": t.PARKED_EXCHANGE,
                **AT_LEAST_ONCE,
            },
        },
        t.FAILED_SUBMISSIONS_POLICY: {
            "pattern": t.FAILED_SUBMISSIONS_PATTERN,
            "apply-to": "queues",
            "priority": 10,
            "definition": {
                "delivery-limit": settings.dead_letter_delivery_limit,
                "dead-letter-exchange": t.PARKED_EXCHANGE,
                **AT_LEAST_ONCE,
            },
        },
    }


#: Queues of the hub itself: (exchange = queue name, queue arguments). Each exchange is a
#: fanout bound to its queue.
CORE_QUEUES: dict[str, dict[str, Any]] = {
    t.RETURNED_QUEUE: QUORUM,
    t.FAILED_SUBMISSIONS_QUEUE: QUORUM,
    t.PARKED_QUEUE: {"x-queue-type": "classic"},
}


def declare_core(mgmt: ManagementClient, settings: Settings) -> None:
    """The vhost, the exchanges, the hub's own queues and the policies."""
    vhost = settings.vhost
    mgmt.ensure_vhost(vhost)
    mgmt.put_exchange(vhost, t.SUBMIT_EXCHANGE, "topic")
    mgmt.put_exchange(vhost, t.DELIVER_EXCHANGE, "direct")
    for name, arguments in CORE_QUEUES.items():
        mgmt.put_exchange(vhost, name, "fanout")
        mgmt.put_queue(vhost, name, arguments)
        mgmt.bind_queue(vhost, name, name, "")
    for name, body in policies(settings).items():
        mgmt.put_policy(
            vhost,
            name,
            pattern=body["pattern"],
            definition=body["definition"],
            apply_to=body["apply-to"],
            priority=body["priority"],
        )


def agency_permissions(code: str, *, can_write: bool = True) -> dict[str, str]:
    """Least privilege: write its own submit exchanges, read its own inboxes (each of both
    lanes), configure nothing.

    A suspended agency (``can_write=False``) keeps reading its inbox but can publish nothing.
    The shared ``lienthong.submit`` is not writable by any agency (see :mod:`schemas.topology`).
    """
    lane = "(" + re.escape(t.URGENT_SUFFIX) + ")?$"  # the ordinary and the urgent lane
    return {
        "configure": "^$",
        "write": "^" + re.escape(t.submit_exchange(code)) + lane if can_write else "^$",
        "read": "^" + re.escape(t.inbox_queue(code)) + lane,
    }


def declare_agency_queues(mgmt: ManagementClient, vhost: str, code: str) -> None:
    """The agency's submit exchanges, outbox and inbox quorum queues, and their bindings, for
    the ordinary and the urgent lane (:data:`schemas.topology.URGENT_SUFFIX`).

    Each of the agency's fanout exchanges has exactly one binding, to its own outbox of the same
    lane: whatever routing key or ``CC``/``BCC`` header a publish carries, it can reach no other
    queue. The ordinary outbox is also bound to the relay's ``lienthong.submit`` (the relay
    re-declares that binding itself). All of it is idempotent: ``relay setup`` runs it for every
    agency, which adds the urgent lane to a hub provisioned before it existed.
    """
    mgmt.put_exchange(vhost, t.submit_exchange(code), "fanout")
    mgmt.put_queue(vhost, t.outbox_queue(code), QUORUM)
    mgmt.bind_queue(vhost, t.submit_exchange(code), t.outbox_queue(code), "")
    mgmt.bind_queue(vhost, t.SUBMIT_EXCHANGE, t.outbox_queue(code), t.submit_routing_key(code))
    mgmt.put_queue(vhost, t.inbox_queue(code), QUORUM)
    mgmt.bind_queue(vhost, t.DELIVER_EXCHANGE, t.inbox_queue(code), t.deliver_routing_key(code))
    urgent_outbox, urgent_inbox = (
        t.outbox_queue(code, urgent=True),
        t.inbox_queue(code, urgent=True),
    )
    mgmt.put_exchange(vhost, t.submit_exchange(code, urgent=True), "fanout")
    mgmt.put_queue(vhost, urgent_outbox, QUORUM)
    mgmt.bind_queue(vhost, t.submit_exchange(code, urgent=True), urgent_outbox, "")
    mgmt.put_queue(vhost, urgent_inbox, QUORUM)
    mgmt.bind_queue(
        vhost, t.DELIVER_EXCHANGE, urgent_inbox, t.deliver_routing_key(code, urgent=True)
    )


def grant_agency(mgmt: ManagementClient, vhost: str, code: str, *, can_write: bool = True) -> None:
    """The agency user's permissions in ``vhost``; topic permissions of earlier versions (on the
    shared ``lienthong.submit``) are removed, as agencies no longer write to a topic exchange."""
    mgmt.set_permissions(vhost, code, **agency_permissions(code, can_write=can_write))
    mgmt.clear_topic_permissions(vhost, code)


def provision_agency(
    mgmt: ManagementClient,
    vhost: str,
    code: str,
    password: str,
    *,
    limits: dict[str, int] | None = None,
) -> None:
    """User (named after the code, tagged as this hub's), permissions, limits, queues, exchange
    and bindings."""
    mgmt.put_user(code, password, t.hub_tag(vhost))
    set_agency_limits(mgmt, code, limits or {})
    grant_agency(mgmt, vhost, code)
    declare_agency_queues(mgmt, vhost, code)


def agency_limits(settings: Settings) -> dict[str, int]:
    """Per-user broker limits of every agency, so one agency's reconnect storm (or a leak of
    channels) cannot exhaust the broker's connections or memory for the others."""
    return {
        "max-connections": settings.agency_max_connections,
        "max-channels": settings.agency_max_channels,
    }


def set_agency_limits(mgmt: ManagementClient, code: str, limits: dict[str, int]) -> None:
    for name, value in limits.items():
        mgmt.set_user_limit(code, name, value)
