"""The demo's RabbitMQ users: the demo only ever touches users it created itself.

RabbitMQ users are broker-wide, and the demo's agencies carry real agency codes (users are
named after codes), so on a hub's broker the users ``000.00.00.G22``… may be real agencies'
accounts. The demo marks the users it creates with the tag :data:`DEMO_TAG` (kept, with the
password hash, by every later change) and, before anything else, refuses to run if a user of
one of its codes exists without it — or without the hub tag of the demo's own vhost
(``lienthong-hub:<vhost>``, :func:`schemas.topology.hub_tag`, set by ``agency add``) — and with
rights on another vhost. Its own users, left by a demo on another vhost (a test's, one that is
gone), it claims for this run's vhost (:func:`claim_the_demos`), so that ``agency add`` takes
them over as this hub's. Passwords are random per run and written only under the demo's work
directory.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from lienthong.demo.errors import DemoFailed
from relay.broker.management import ManagementClient, user_tags
from schemas import topology as t

DEMO_TAG: Final = "lienthong-demo"


def is_the_demos(user: dict[str, Any], vhost: str) -> bool:
    tags = user_tags(user)
    return DEMO_TAG in tags or t.hub_tag(vhost) in tags


def refuse_foreign_users(mgmt: ManagementClient, codes: Iterable[str], vhost: str) -> None:
    """DemoFailed naming every user of the demo's codes that the demo did not create.

    An untagged user with rights on no vhost but the demo's is a leftover of a demo from
    before users were tagged (or of a test whose vhost is gone): it is nobody's account and
    is taken over. One with rights anywhere else may be a real agency's, and is refused.
    """
    foreign = []
    for code in codes:
        user = mgmt.get_user(code)
        if user is None or is_the_demos(user, vhost):
            continue
        elsewhere = sorted({str(p.get("vhost")) for p in mgmt.user_permissions(code)} - {vhost})
        if elsewhere:
            foreign.append(
                f"{code} (tags: {', '.join(user_tags(user)) or 'none'}; "
                f"rights on vhost {', '.join(elsewhere)})"
            )
    if foreign:
        raise DemoFailed(
            "this RabbitMQ already has users named after the demo's agencies that the demo did "
            f"not create: {'; '.join(foreign)}. They may be real agencies' accounts, so the "
            "demo leaves them alone and stops here. Run the demo against a broker of its own "
            "(LIENTHONG_AMQP_URL, LIENTHONG_MANAGEMENT_URL), or, if they are leftovers of "
            f"something else, delete them (rabbitmqctl delete_user CODE)."
        )


def claim_the_demos(mgmt: ManagementClient, codes: Iterable[str], vhost: str) -> None:
    """Tag the demo's own users (:data:`DEMO_TAG`) as the hub of ``vhost``'s, in place of the
    hub tags of the vhosts earlier demos ran on, so ``agency add`` there takes them over."""
    for code in codes:
        user = mgmt.get_user(code)
        if user is None or DEMO_TAG not in user_tags(user):
            continue
        others = [x for x in user_tags(user) if not x.startswith(t.HUB_TAG_PREFIX)]
        mgmt.set_user_tags(code, [*others, t.hub_tag(vhost)])


def mark_as_the_demos(mgmt: ManagementClient, codes: Iterable[str]) -> None:
    """Add :data:`DEMO_TAG` to the demo's users, keeping their password hash and other tags."""
    for code in codes:
        if mgmt.get_user(code) is not None:
            mgmt.add_user_tag(code, DEMO_TAG)
