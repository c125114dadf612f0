"""``lienthong agency add/list/show/suspend/resume`` against the real broker and database."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import pytest
import structlog
from click.testing import CliRunner, Result

from relay.broker.management import ManagementClient
from relay.cli.agency import agency
from relay.config import Settings
from schemas import topology as t
from tests.services import random_code

pytestmark = pytest.mark.integration

#: Agency codes whose RabbitMQ users the tests created; users are broker-wide (not per vhost),
#: so they are deleted when the module ends.
CREATED: list[str] = []


def new_code() -> str:
    code = random_code()
    CREATED.append(code)
    return code


@pytest.fixture(scope="module", autouse=True)
def remove_created_users(management: ManagementClient) -> Iterator[None]:
    yield
    for code in CREATED:
        management.delete_user(code)
    CREATED.clear()


def run_agency(settings: Settings, *args: str, ok: bool = True) -> Result:
    """Invoke ``lienthong agency ARGS`` with ``settings`` as its environment."""
    env = {
        "LIENTHONG_AMQP_URL": settings.amqp_url,
        "LIENTHONG_DATABASE_URL": settings.database_url,
        "LIENTHONG_MANAGEMENT_URL": settings.management_url,
    }
    with structlog.testing.capture_logs():  # keep log lines out of the captured stdout
        result = CliRunner().invoke(agency, list(args), env=env, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code != 0, result.output
    return result


def show(settings: Settings, code: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(run_agency(settings, "show", code, "--json").stdout)
    return data


def test_adding_a_connected_agency_creates_its_user_queues_and_prints_the_password_once(
    env: Settings, management: ManagementClient
) -> None:
    code = new_code()
    first = run_agency(env, "add", code, "--name", "Văn phòng Chính phủ")
    assert "password (shown once" in first.stdout
    password = first.stdout.rsplit(": ", 1)[1].strip()
    assert len(password) >= 24
    assert management.get_user(code) is not None
    assert management.get_queue(env.vhost, t.inbox_queue(code)) is not None
    assert management.get_queue(env.vhost, t.outbox_queue(code)) is not None

    again = run_agency(env, "add", code, "--name", "Văn phòng Chính phủ")
    assert "unchanged" in again.stdout
    assert "password" not in again.stdout  # the password is kept, not replaced


def test_adding_with_a_password_file_uses_that_password(
    env: Settings, tmp_path: Path, management: ManagementClient
) -> None:
    code = new_code()
    secret = tmp_path / "pw"
    secret.write_text("correct horse battery staple\n")
    result = run_agency(env, "add", code, "--name", "Bộ Nội vụ", "--password-file", str(secret))
    assert "password" not in result.stdout
    params = pika.URLParameters(env.amqp_url)
    params.credentials = pika.PlainCredentials(code, "correct horse battery staple")
    connection = pika.BlockingConnection(params)  # refused (ProbableAuthenticationError) if wrong
    connection.close()
    params.credentials = pika.PlainCredentials(code, "wrong")
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(params)


def test_readding_an_agency_with_other_data_is_refused_and_changes_nothing(
    env: Settings,
) -> None:
    code = new_code()
    run_agency(env, "add", code, "--name", "Bộ Xây dựng")
    refused = run_agency(env, "add", code, "--name", "Bộ Công Thương", ok=False)
    assert f"code: '{code}' is already in the directory" in refused.output
    assert show(env, code)["name"] == "Bộ Xây dựng"


def test_a_hosted_unit_needs_a_connected_host_and_gets_no_broker_objects(
    env: Settings, management: ManagementClient
) -> None:
    host, unit, sub = new_code(), new_code(), new_code()
    missing = run_agency(env, "add", unit, "--name", "Sở", "--host", host, ok=False)
    assert f"--host: no agency with code '{host}'" in missing.output

    run_agency(env, "add", host, "--name", "UBND Tỉnh")
    run_agency(env, "add", unit, "--name", "Sở Nội vụ", "--host", host)
    assert management.get_user(unit) is None
    assert management.get_queue(env.vhost, t.inbox_queue(unit)) is None

    nested = run_agency(env, "add", sub, "--name", "Phòng", "--host", unit, ok=False)
    assert "a host must be a connected agency" in nested.output

    shown = show(env, host)
    assert shown["hosted_units"] == 1
    assert shown["broker"]["user"] is True
    assert shown["broker"]["inbox"]["queue"] == t.inbox_queue(host)
    unit_shown = show(env, unit)
    assert (unit_shown["kind"], unit_shown["route_to"]) == ("hosted", host)
    assert "broker" not in unit_shown

    listed = json.loads(run_agency(env, "list", "--host", host, "--json").stdout)
    assert [a["code"] for a in listed] == [unit]


def test_a_bad_code_is_refused_naming_the_field_and_the_value(env: Settings) -> None:
    result = run_agency(env, "add", "G22", "--name", "Văn phòng", ok=False)
    assert "code: 'G22' is not an agency code" in result.output


def test_showing_an_unknown_agency_fails(env: Settings) -> None:
    code = new_code()
    result = run_agency(env, "show", code, ok=False)
    assert f"no agency with code '{code}'" in result.output


def test_suspend_and_resume_change_the_state_and_the_publish_right(
    env: Settings, management: ManagementClient
) -> None:
    code = new_code()
    run_agency(env, "add", code, "--name", "UBND Tỉnh Nghệ An")

    def write_permission() -> str:
        perms = management._request("GET", f"/permissions/{env.vhost}/{code}")
        return str(perms["write"])

    own_exchange = "^" + re.escape(t.submit_exchange(code)) + r"(\.urgent)?$"
    assert write_permission() == own_exchange
    assert "suspended" in run_agency(env, "suspend", code).stdout
    assert show(env, code)["state"] == "suspended"
    assert write_permission() == "^$"
    assert "already suspended" in run_agency(env, "suspend", code).stdout

    assert "active again" in run_agency(env, "resume", code).stdout
    assert show(env, code)["state"] == "active"
    assert write_permission() == own_exchange


def test_list_shows_added_agencies(env: Settings) -> None:
    code = new_code()
    run_agency(env, "add", code, "--name", "Ủy ban Dân tộc")
    listed = run_agency(env, "list").stdout
    assert code in listed and "Ủy ban Dân tộc" in listed


def test_the_console_script_runs_the_agency_commands_with_json_on_stdout(env: Settings) -> None:
    code = new_code()
    environ = {
        **os.environ,
        "LIENTHONG_AMQP_URL": env.amqp_url,
        "LIENTHONG_DATABASE_URL": env.database_url,
        "LIENTHONG_MANAGEMENT_URL": env.management_url,
    }
    script = str(Path(sys.executable).with_name("lienthong"))
    added = subprocess.run(
        [script, "agency", "add", code, "--name", "Bộ Ngoại giao", "--json"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["password"]  # logs go to stderr, stdout stays JSON
    missing = subprocess.run(
        [script, "agency", "show", new_code()],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode != 0
    assert "no agency with code" in missing.stderr
