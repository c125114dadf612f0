"""The demo's RabbitMQ users: the demo only ever touches users it created itself.

RabbitMQ users are broker-wide, and the demo's agencies carry real agency codes (users are
named after codes), so on a hub's broker the users ``000.00.00.G22``… may be real agencies'
accounts. The demo marks the users it creates with the tag :data:`DEMO_TAG` (kept, with the
password hash, by every later change) and, before anything else, refuses to run if a user of
one of its codes exists without it — or without the hub tag of the demo's own vhost
(``lienthong-hub:<vhost>``, set by ``agency add`` on a hub that tags its users) — and with
rights on another vhost. Passwords are random per run and written only under the demo's work
directory.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import quote

from lienthong.demo.errors import DemoFailed
from relay.broker.management import ManagementClient

DEMO_TAG: Final = "lienthong-demo"
HUB_TAG_PREFIX: Final = "lienthong-hub:"


def tags_of(user: dict[str, Any]) -> list[str]:
    """A user's tags: a list since RabbitMQ 3.9, a comma-separated string before."""
    tags = user.get("tags") or []
    if isinstance(tags, str):
        tags = tags.split(",")
    return [str(t).strip() for t in tags if str(t).strip()]


def is_the_demos(user: dict[str, Any], vhost: str) -> bool:
    tags = tags_of(user)
    return DEMO_TAG in tags or f"{HUB_TAG_PREFIX}{vhost}" in tags


def _vhosts_of(mgmt: ManagementClient, code: str) -> list[str]:
    perms: list[dict[str, Any]] = (
        mgmt._request("GET", f"/users/{quote(code, safe='')}/permissions") or []
    )
    return sorted({str(p.get("vhost")) for p in perms})


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
        elsewhere = [v for v in _vhosts_of(mgmt, code) if v != vhost]
        if elsewhere:
            foreign.append(
                f"{code} (tags: {', '.join(tags_of(user)) or 'none'}; "
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


def mark_as_the_demos(mgmt: ManagementClient, codes: Iterable[str]) -> None:
    """Add :data:`DEMO_TAG` to the demo's users, keeping their password hash and other tags."""
    for code in codes:
        user = mgmt.get_user(code)
        if user is None or DEMO_TAG in tags_of(user):
            continue
        # The same PUT as ManagementClient.add_user_tag on branch trust-broker (use that once
        # merged): the password hash is sent back so the password does not change.
        mgmt._request(
            "PUT",
            f"/users/{quote(code, safe='')}",
            {
                "password_hash": user["password_hash"],
                "hashing_algorithm": user.get(
                    "hashing_algorithm", "rabbit_password_hashing_sha256"
                ),
                "tags": ",".join([*tags_of(user), DEMO_TAG]),
            },
        )
