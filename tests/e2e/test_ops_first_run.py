"""The first run on a fresh machine (issue 18): RabbitMQ runs, its management plugin was never
enabled. ``lienthong demo`` enables it by itself, or says precisely why it cannot; and it never
touches a RabbitMQ user it did not create.

Runs against a RabbitMQ node of its own (ports 5652, 15652, 25652), never the shared one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from relay.db.engine import make_engine
from tests.ops_private_services import RabbitNode, port_open, rabbitmq_available
from tests.services import Services, unique_name

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not rabbitmq_available(), reason="needs RabbitMQ installed locally"),
]

LIENTHONG = str(Path(sys.executable).parent / "lienthong")
DEMO = [LIENTHONG, "demo"]
AMQP_PORT, MANAGEMENT_PORT, DIST_PORT = 5652, 15652, 25652


@pytest.fixture(scope="module")
def fresh_node() -> Iterator[RabbitNode]:
    node = RabbitNode(
        "lienthong_ops_fresh", AMQP_PORT, DIST_PORT, MANAGEMENT_PORT, management_enabled=False
    ).start()
    try:
        yield node
    finally:
        node.stop()


def demo(
    node: RabbitNode, services: Services, tmp: Path, **env_changes: str
) -> subprocess.CompletedProcess[str]:
    database = unique_name("lienthong_test_firstrun")
    env = {k: v for k, v in node.env().items() if not k.startswith("LIENTHONG_")}
    env.update(
        # rabbitmq-plugins as a person on the node's machine has it (not the su wrapper)
        PATH="/usr/lib/rabbitmq/bin:" + os.environ.get("PATH", ""),
        LIENTHONG_AMQP_URL=node.amqp_url,
        LIENTHONG_MANAGEMENT_URL=node.management_url,
        LIENTHONG_DATABASE_URL=services.database_url_for("postgres"),
    )
    env.update(env_changes)
    try:
        return subprocess.run(
            [*DEMO, "--database", database, "--workdir", str(tmp / "demo"), "--timeout", "150"],
            env=env,
            cwd=tmp,  # where a failing rabbitmq-plugins leaves its erl_crash.dump
            capture_output=True,
            text=True,
            timeout=400,
            check=False,
        )
    finally:
        admin = make_engine(services.database_url_for("postgres"))
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.parametrize(
    ("plugins_file", "expected"),
    [
        # The tool cannot write the node's plugin list (a user without the node's rights).
        ("/nonexistent/enabled_plugins", "enable rabbitmq_management` failed (Could not update"),
        # It can, but cannot reach the node: the change would wait for a restart.
        ("", "could not reach the running RabbitMQ node"),
    ],
)
def test_when_the_plugin_cannot_be_enabled_the_demo_says_why_and_what_to_run(
    fresh_node: RabbitNode, services: Services, tmp_path: Path, plugins_file: str, expected: str
) -> None:
    done = demo(
        fresh_node,
        services,
        tmp_path,
        RABBITMQ_NODENAME="nobody_here@localhost",  # not the node: no cookie, no connection
        RABBITMQ_ENABLED_PLUGINS_FILE=plugins_file or str(tmp_path / "enabled_plugins"),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "RabbitMQ management API is unreachable at http://guest@127.0.0.1:15652" in done.stderr
    assert expected in done.stderr, done.stdout + done.stderr
    assert "sudo rabbitmq-plugins enable rabbitmq_management" in done.stderr
    assert not port_open(MANAGEMENT_PORT)


def test_the_demo_enables_the_management_plugin_and_plays_the_scenario(
    fresh_node: RabbitNode, services: Services, tmp_path: Path
) -> None:
    assert not port_open(MANAGEMENT_PORT)
    done = demo(fresh_node, services, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the management plugin is off: running" in done.stdout
    assert "every delivery is in its expected state" in done.stdout
    # Passwords are random per run, under the work directory only.
    secret = tmp_path / "demo" / "secrets" / "000.00.00.G22.secret"
    assert secret.read_text().startswith("demo-") and oct(secret.stat().st_mode)[-3:] == "600"
    user = httpx.get(f"{fresh_node.management_url}/api/users/000.00.00.G22").json()
    assert "lienthong-demo" in user["tags"]


def test_the_demo_refuses_to_touch_a_user_it_did_not_create(
    fresh_node: RabbitNode, services: Services, tmp_path: Path
) -> None:
    api = f"{fresh_node.management_url}/api/users/000.00.00.G12"
    if not port_open(MANAGEMENT_PORT):
        pytest.skip("needs the management plugin the previous test enabled")
    httpx.delete(api)
    assert httpx.put(api, json={"password": "a-real-agency", "tags": ""}).status_code in (201, 204)
    # A real agency's account has rights on its hub's vhost (here the node's default one).
    rights = {"configure": "", "write": "", "read": "^agency\\.000\\.00\\.00\\.G12\\.inbox$"}
    perms = f"{fresh_node.management_url}/api/permissions/%2F/000.00.00.G12"
    assert httpx.put(perms, json=rights).status_code in (201, 204)
    before = httpx.get(api).json()

    done = demo(fresh_node, services, tmp_path)

    assert done.returncode == 1
    assert "000.00.00.G12 (tags: none; rights on vhost /)" in done.stderr
    assert "the demo leaves them alone" in done.stderr
    after = httpx.get(api).json()
    assert (after["password_hash"], after["tags"]) == (before["password_hash"], before["tags"])
