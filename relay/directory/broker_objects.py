"""The broker side of a connected agency: user, permissions, queues, backlog."""

from __future__ import annotations

from typing import Any

from relay.broker.management import ManagementClient
from relay.broker.topology import (
    agency_permissions,
    agency_topic_permissions,
    declare_agency_queues,
    provision_agency,
)
from schemas import topology as t

QUEUE_FIELDS = ("messages", "messages_ready", "messages_unacknowledged", "consumers")


def provision(mgmt: ManagementClient, vhost: str, code: str, password: str | None) -> None:
    """User named after ``code``, least-privilege permissions, inbox/outbox and bindings.

    With ``password=None`` the user must exist already: its password is left as it is and only
    permissions, queues and bindings are (re)declared, which repairs a half-provisioned agency.
    """
    if password is None:
        mgmt.set_permissions(vhost, code, **agency_permissions(code))
        mgmt.set_topic_permissions(vhost, code, **agency_topic_permissions(code))
        declare_agency_queues(mgmt, vhost, code)
    else:
        provision_agency(mgmt, vhost, code, password)


def user_exists(mgmt: ManagementClient, code: str) -> bool:
    return mgmt.get_user(code) is not None


def set_write_allowed(mgmt: ManagementClient, vhost: str, code: str, allowed: bool) -> None:
    """Take away (suspend) or give back (resume) the agency's right to publish."""
    mgmt.set_permissions(vhost, code, **agency_permissions(code, can_write=allowed))


def backlog(mgmt: ManagementClient, vhost: str, code: str) -> dict[str, Any]:
    """Messages waiting in the agency's inbox and outbox (None for a queue that is missing)."""
    result: dict[str, Any] = {}
    for kind, name in (("inbox", t.inbox_queue(code)), ("outbox", t.outbox_queue(code))):
        queue = mgmt.get_queue(vhost, name)
        result[kind] = (
            None if queue is None else {"queue": name, **{f: queue.get(f) for f in QUEUE_FIELDS}}
        )
    return result
