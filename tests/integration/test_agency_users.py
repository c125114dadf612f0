"""Agencies' RabbitMQ users: a hub never takes over a user it did not create, gives each of its
own the per-agency limits, closes a suspended agency's connections, and migrates the users and
exchanges of a hub set up by an earlier version (issue 12, items 2, 13, 14 and the limits)."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pika
import pika.exceptions
import pytest
from sqlalchemy import Engine, text

from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.directory.broker_objects import UserNotOurs
from relay.directory.service import add_agency, resume_agency, suspend_agency
from relay.errors import InvalidInput
from relay.setup import run_setup
from schemas import topology as t
from tests.conftest import EnvFactory
from tests.integration.test_agency_cli import new_code, remove_created_users, run_agency

pytestmark = [pytest.mark.integration, pytest.mark.hostile]

__all__ = ["remove_created_users"]  # the fixture, imported to run here too


def secret_file(tmp_path: Path, password: str) -> Path:
    path = tmp_path / f"{uuid.uuid4().hex}.secret"
    path.write_text(password + "\n")
    return path


def connect(settings: Settings, user: str, password: str) -> pika.BlockingConnection:
    params = pika.URLParameters(settings.amqp_url)
    params.credentials = pika.PlainCredentials(user, password)
    params.connection_attempts = 1
    return pika.BlockingConnection(params)


def own_exchange(code: str) -> str:
    return f"lienthong.submit.{code}"


def publish_own(conn: pika.BlockingConnection, code: str) -> None:
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish(
        own_exchange(code),
        code,
        b"{}",
        pika.BasicProperties(user_id=code, message_id=str(uuid.uuid4()), delivery_mode=2),
        mandatory=True,
    )


def test_adding_an_agency_whose_user_this_hub_did_not_create_is_refused_and_changes_nothing(
    env: Settings, management: ManagementClient, tmp_path: Path
) -> None:
    code = new_code()  # also makes the module's clean-up delete the user
    management.put_user(code, "another-hubs-password", "another-application")
    before = management.get_user(code)
    assert before is not None

    refused = run_agency(env, "add", code, "--name", "Bộ Y tế", ok=False)
    assert "was not created by this hub" in refused.output
    with_file = run_agency(
        env,
        "add",
        code,
        "--name",
        "Bộ Y tế",
        "--password-file",
        str(secret_file(tmp_path, "hijack")),
        ok=False,
    )
    assert "was not created by this hub" in with_file.output

    after = management.get_user(code)
    assert after is not None
    assert after["password_hash"] == before["password_hash"]
    assert after["tags"] == before["tags"]
    assert management.user_permissions(code) == []
    assert "no agency with code" in run_agency(env, "show", code, ok=False).output


@pytest.mark.parametrize("tags", ["", "lienthong-hub:gone-{}"])
def test_a_user_left_behind_with_no_rights_and_whose_hub_is_gone_is_taken_over(
    env: Settings, management: ManagementClient, tmp_path: Path, tags: str
) -> None:
    code = new_code()
    management.put_user(code, "old", tags.format(uuid.uuid4().hex))
    add_agency(env, code, "Bộ Văn hóa", password_file=secret_file(tmp_path, "new-pw"))
    user = management.get_user(code)
    assert user is not None and user["tags"] == [t.hub_tag(env.vhost)]
    connect(env, code, "new-pw").close()


def test_a_user_that_another_live_hub_tagged_is_refused(
    env: Settings, management: ManagementClient, make_env: EnvFactory
) -> None:
    other = make_env()
    code = new_code()
    add_agency(other, code, "Bộ Ngoại giao")
    with pytest.raises(UserNotOurs):
        add_agency(env, code, "Bộ Ngoại giao")


def test_importing_agencies_whose_users_this_hub_did_not_create_is_refused(
    env: Settings, management: ManagementClient, tmp_path: Path
) -> None:
    ours, theirs = new_code(), new_code()
    # Another hub of an earlier version (untagged) whose adapter uses this user on its vhost.
    management.put_user(theirs, "another-hubs-password", "")
    management.set_permissions(env.vhost, theirs, configure="^$", write="^$", read="^$")
    before = management.get_user(theirs)
    csv = tmp_path / "agencies.csv"
    csv.write_text(f"code,name\n{ours},Bộ Tư pháp\n{theirs},Bộ Công an\n", encoding="utf-8")
    refused = run_agency(env, "import", str(csv), ok=False)
    assert theirs in refused.output and "did not create" in refused.output
    after = management.get_user(theirs)
    assert after is not None and after["password_hash"] == before["password_hash"]  # type: ignore[index]
    assert management.get_user(ours) is None  # nothing imported, nothing provisioned


def test_a_password_file_still_rotates_the_password_of_this_hubs_own_agency(
    env: Settings, tmp_path: Path
) -> None:
    code = new_code()
    add_agency(env, code, "Bộ Nội vụ", password_file=secret_file(tmp_path, "first-pw"))
    add_agency(env, code, "Bộ Nội vụ", password_file=secret_file(tmp_path, "second-pw"))
    connect(env, code, "second-pw").close()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        connect(env, code, "first-pw")


def test_an_agency_gets_its_connection_and_channel_limits(
    env: Settings, management: ManagementClient, tmp_path: Path
) -> None:
    code = new_code()
    limited = env.model_copy(update={"agency_max_connections": 2, "agency_max_channels": 3})
    add_agency(limited, code, "Bộ Quốc phòng", password_file=secret_file(tmp_path, "pw"))

    open_ = [connect(env, code, "pw"), connect(env, code, "pw")]
    try:
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            open_.append(connect(env, code, "pw"))  # one more than allowed
        channels = [open_[0].channel() for _ in range(3)]
        assert all(ch.is_open for ch in channels)
        with pytest.raises(pika.exceptions.AMQPError):
            open_[1].channel()  # a fourth channel over both connections
    finally:
        for conn in open_:
            if conn.is_open:
                conn.close()
    assert management.user_limits(code) == {"max-connections": 2, "max-channels": 3}


def test_suspending_an_agency_closes_its_open_connections_and_resuming_lets_it_back(
    env: Settings, tmp_path: Path
) -> None:
    code = new_code()
    add_agency(env, code, "Bộ Giáo dục", password_file=secret_file(tmp_path, "pw"))
    conn = connect(env, code, "pw")
    conn.channel().basic_qos(prefetch_count=1)  # the connection works
    suspend_agency(env, code)
    deadline = time.monotonic() + 10
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
        while time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.2)
    assert closed.value.reply_code == 320  # CONNECTION_FORCED

    resume_agency(env, code)
    conn = connect(env, code, "pw")
    try:
        publish_own(conn, code)  # confirmed: raises otherwise
    finally:
        conn.close()


def test_relay_setup_migrates_a_hub_of_the_earlier_topology(
    env: Settings, management: ManagementClient, engine: Engine
) -> None:
    vhost = env.vhost
    code = new_code()
    # What `agency add` of the earlier version left: an untagged user writing the shared
    # topic exchange (topic permission: its code), an outbox bound to it, no exchange of its own.
    management.put_user(code, "old-pw", "")
    management.set_permissions(
        vhost,
        code,
        configure="^$",
        write="^lienthong\\.submit$",
        read="^" + re.escape(t.inbox_queue(code)) + "$",
    )
    management.set_topic_permissions(
        vhost, code, exchange="lienthong.submit", write="^" + re.escape(code) + "$", read="^$"
    )
    for queue in (t.outbox_queue(code), t.inbox_queue(code)):
        management.put_queue(vhost, queue, {"x-queue-type": "quorum"})
    management.bind_queue(vhost, "lienthong.submit", t.outbox_queue(code), code)
    management.bind_queue(vhost, t.DELIVER_EXCHANGE, t.inbox_queue(code), code)
    with pytest.raises(InvalidInput):  # not tagged: the hub refuses to touch it …
        add_agency(env, code, "Bộ Tài nguyên")
    with engine.begin() as conn:  # … so the directory row comes from the earlier version
        conn.execute(
            text("INSERT INTO agencies (code, name, strict_code) VALUES (:c, 'Bộ TN', true)"),
            {"c": code},
        )

    run_setup(env)
    run_setup(env)  # idempotent

    user = management.get_user(code)
    assert user is not None and t.hub_tag(vhost) in user["tags"]
    assert user["password_hash"]  # the adapter keeps its password
    perms = management._request("GET", f"/permissions/{vhost}/{code}")
    assert perms["write"] == "^" + re.escape(own_exchange(code)) + r"(\.urgent)?$"
    assert management._request("GET", f"/topic-permissions/{vhost}/{code}") in (None, [])
    assert management.user_limits(code) == {
        "max-connections": env.agency_max_connections,
        "max-channels": env.agency_max_channels,
    }
    conn = connect(env, code, "old-pw")
    try:
        publish_own(conn, code)
        ch = conn.channel()
        ch.confirm_delivery()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
            ch.basic_publish("lienthong.submit", code, b"{}", pika.BasicProperties(user_id=code))
        assert caught.value.reply_code == 403
    finally:
        if conn.is_open:
            conn.close()


def test_relay_setup_keeps_a_suspended_agency_unable_to_publish(
    env: Settings, management: ManagementClient, tmp_path: Path
) -> None:
    code = new_code()
    add_agency(env, code, "Bộ Nông nghiệp", password_file=secret_file(tmp_path, "pw"))
    suspend_agency(env, code)
    run_setup(env)
    perms = management._request("GET", f"/permissions/{env.vhost}/{code}")
    assert perms["write"] == "^$"
    resume_agency(env, code)
    run_setup(env)
    perms = management._request("GET", f"/permissions/{env.vhost}/{code}")
    assert perms["write"] == "^" + re.escape(own_exchange(code)) + r"(\.urgent)?$"
