"""The demo's RabbitMQ users on a broker shared with other demos and a real hub
(lienthong/demo/users.py, README "make demo"): the demo takes over its own users, left by a
demo on another vhost, and leaves a real hub's users alone; the hub leaves the demo's alone."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from lienthong.demo import users
from lienthong.demo.errors import DemoFailed
from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.directory.broker_objects import UserNotOurs
from relay.directory.service import add_agency
from schemas import topology as t
from tests.conftest import EnvFactory
from tests.integration.test_agency_cli import new_code, remove_created_users
from tests.integration.test_agency_users import connect, secret_file

pytestmark = pytest.mark.integration

__all__ = ["remove_created_users"]  # the fixture, imported to run here too


def left_by_an_earlier_demo(
    management: ManagementClient, make_env: EnvFactory, tmp_path: Path
) -> tuple[str, Settings]:
    """A user an earlier demo made on a vhost of its own: ``agency add`` there, then tagged."""
    earlier = make_env()
    code = new_code()
    add_agency(earlier, code, "Bộ Nội vụ", password_file=secret_file(tmp_path, "earlier"))
    users.mark_as_the_demos(management, [code])
    return code, earlier


def test_a_demo_takes_over_the_users_a_demo_left_on_another_vhost(
    env: Settings, management: ManagementClient, make_env: EnvFactory, tmp_path: Path
) -> None:
    code, earlier = left_by_an_earlier_demo(management, make_env, tmp_path)
    management.delete_vhost(earlier.vhost)  # the earlier demo's test removed its vhost

    users.refuse_foreign_users(management, [code], env.vhost)
    users.claim_the_demos(management, [code], env.vhost)
    add_agency(env, code, "Bộ Nội vụ", password_file=secret_file(tmp_path, "this-run"))
    users.mark_as_the_demos(management, [code])

    user = management.get_user(code)
    assert user is not None and sorted(user["tags"]) == sorted(
        [users.DEMO_TAG, t.hub_tag(env.vhost)]
    )
    connect(env, code, "this-run").close()


def test_a_demo_takes_over_its_users_while_another_demos_vhost_is_still_there(
    env: Settings, management: ManagementClient, make_env: EnvFactory, tmp_path: Path
) -> None:
    code, _ = left_by_an_earlier_demo(management, make_env, tmp_path)  # `make demo`'s, kept
    users.refuse_foreign_users(management, [code], env.vhost)
    users.claim_the_demos(management, [code], env.vhost)
    add_agency(env, code, "Bộ Nội vụ", password_file=secret_file(tmp_path, "this-run"))
    connect(env, code, "this-run").close()


def test_a_real_hubs_user_stops_the_demo_and_the_hub_refuses_the_demos(
    env: Settings, management: ManagementClient, make_env: EnvFactory, tmp_path: Path
) -> None:
    hub = make_env()
    real = new_code()
    add_agency(hub, real, "UBND Tỉnh Nghệ An", password_file=secret_file(tmp_path, "real"))
    before = management.get_user(real)
    with pytest.raises(DemoFailed, match=f"{real} \\(tags: {t.hub_tag(hub.vhost)}; rights on"):
        users.refuse_foreign_users(management, [real], env.vhost)
    users.claim_the_demos(management, [real], env.vhost)  # not the demo's: left alone
    assert management.get_user(real) == before

    demos, _ = left_by_an_earlier_demo(management, make_env, tmp_path)
    with pytest.raises(UserNotOurs):
        add_agency(hub, demos, "Bộ Nội vụ", password_file=secret_file(tmp_path, uuid.uuid4().hex))
