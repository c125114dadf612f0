"""The broker side of a connected agency: user, permissions, limits, queues, backlog.

RabbitMQ users are broker-wide, not per vhost: a hub only ever changes users it created, which
carry its tag (:func:`schemas.topology.hub_tag`). A user of the same name without it belongs to
another hub, the demo or some other application, and is refused with :class:`UserNotOurs`.
"""

from __future__ import annotations

from typing import Any

from relay.broker.management import ManagementClient, user_tags
from relay.broker.topology import (
    declare_agency_queues,
    grant_agency,
    provision_agency,
    set_agency_limits,
)
from relay.errors import InvalidInput
from schemas import topology as t

QUEUE_FIELDS = ("messages", "messages_ready", "messages_unacknowledged", "consumers")


class UserNotOurs(InvalidInput):
    """A RabbitMQ user of the agency's name exists and this hub did not create it."""

    def __init__(self, code: str, vhost: str, tags: list[str]) -> None:
        self.code = code
        super().__init__(
            f"code: a RabbitMQ user {code!r} already exists on this broker and was not created "
            f"by this hub (vhost {vhost!r}; its tags: {', '.join(tags) or 'none'}), so its "
            "password and rights are left alone. If it belongs to another hub or application, "
            "give this hub its own broker or the agency another code; if it is a user this hub "
            f"made before users were tagged, run `lienthong relay setup` to adopt it; otherwise "
            f"delete it (rabbitmqctl delete_user {code}) and add the agency again"
        )


def owned_by(user: dict[str, Any], vhost: str) -> bool:
    return t.hub_tag(vhost) in user_tags(user)


def abandoned(mgmt: ManagementClient, user: dict[str, Any]) -> bool:
    """A user that can reach nothing, so giving it a new password locks nobody out: it has no
    permissions on any vhost, no tag but hubs' tags, and the vhosts of those hubs are gone.
    Test runs, demos and hubs of earlier versions leave such users behind when their vhost is
    deleted (RabbitMQ keeps users when it deletes a vhost)."""
    tags = user_tags(user)
    hubs = [tag.removeprefix(t.HUB_TAG_PREFIX) for tag in tags if tag.startswith(t.HUB_TAG_PREFIX)]
    if len(hubs) != len(tags):  # an administrator, a management user, another application's
        return False
    if mgmt.user_permissions(str(user["name"])):
        return False
    return not any(mgmt.vhost_exists(hub) for hub in hubs)


def check_not_foreign(mgmt: ManagementClient, vhost: str, code: str) -> bool:
    """Whether this hub's user for ``code`` exists; UserNotOurs when another's does. An
    abandoned user (see :func:`abandoned`) counts as none: provisioning takes it over."""
    user = mgmt.get_user(code)
    if user is None:
        return False
    if owned_by(user, vhost):
        return True
    if abandoned(mgmt, user):
        return False
    raise UserNotOurs(code, vhost, user_tags(user))


def provision(
    mgmt: ManagementClient,
    vhost: str,
    code: str,
    password: str | None,
    limits: dict[str, int] | None = None,
) -> None:
    """User named after ``code``, least-privilege permissions, limits, exchange, queues.

    With ``password=None`` the user must exist already: its password is left as it is and only
    permissions, limits, queues and bindings are (re)declared, which repairs a half-provisioned
    agency. The caller checks first that the user is not another hub's.
    """
    if password is None:
        set_agency_limits(mgmt, code, limits or {})
        grant_agency(mgmt, vhost, code)
        declare_agency_queues(mgmt, vhost, code)
    else:
        provision_agency(mgmt, vhost, code, password, limits=limits)


def user_exists(mgmt: ManagementClient, code: str) -> bool:
    return mgmt.get_user(code) is not None


def set_write_allowed(mgmt: ManagementClient, vhost: str, code: str, allowed: bool) -> None:
    """Take away (suspend) or give back (resume) the agency's right to publish.

    On suspension its open connections are closed too: RabbitMQ caches permission checks per
    channel, so a channel opened before the change could go on publishing.
    """
    grant_agency(mgmt, vhost, code, can_write=allowed)
    if not allowed:
        mgmt.close_user_connections(code, "agency suspended by the hub operator")


def adopt_untagged(mgmt: ManagementClient, vhost: str, codes: list[str]) -> list[str]:
    """Tag as this hub's the agency users made before users were tagged: those without any
    hub's tag whose only permissions are on this hub's vhost. Returns the adopted codes."""
    adopted = []
    users = {u["name"]: user_tags(u) for u in mgmt.list_users()}
    for code in codes:
        tags = users.get(code)
        if tags is None or any(tag.startswith(t.HUB_TAG_PREFIX) for tag in tags):
            continue
        vhosts = {p["vhost"] for p in mgmt.user_permissions(code)}
        if vhosts == {vhost}:
            mgmt.add_user_tag(code, t.hub_tag(vhost))
            adopted.append(code)
    return adopted


def backlog(mgmt: ManagementClient, vhost: str, code: str) -> dict[str, Any]:
    """Messages waiting in the agency's inbox and outbox, each lane (``inbox_urgent``,
    ``outbox_urgent``: DESIGN §3) on its own; None for a queue that is missing."""
    result: dict[str, Any] = {}
    lanes = [
        (f"{kind}{'_urgent' if urgent else ''}", queue_of(code, urgent=urgent))
        for kind, queue_of in (("inbox", t.inbox_queue), ("outbox", t.outbox_queue))
        for urgent in (False, True)
    ]
    for kind, name in lanes:
        queue = mgmt.get_queue(vhost, name)
        result[kind] = (
            None if queue is None else {"queue": name, **{f: queue.get(f) for f in QUEUE_FIELDS}}
        )
    return result
