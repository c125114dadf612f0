"""A new user's first steps (issue 18): ``agency add`` before ``relay setup`` says what to do."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from relay.db.engine import make_engine
from tests.services import Services, unique_name

pytestmark = pytest.mark.integration

LIENTHONG = [sys.executable, "-c", "from lienthong.cli import main; main()"]


@pytest.fixture
def empty_database(services: Services) -> Iterator[str]:
    name = unique_name("lienthong_test_empty")
    admin = make_engine(services.database_url_for("postgres"))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def agency_add(
    services: Services, database: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    secret = tmp_path / "H41.secret"
    secret.write_text("a-password\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "LIENTHONG_AMQP_URL": services.amqp_url_for("lienthong-never-set-up"),
        "LIENTHONG_MANAGEMENT_URL": services.management_url,
        "LIENTHONG_DATABASE_URL": services.database_url_for(database),
    }
    return subprocess.run(
        [
            *LIENTHONG,
            "agency",
            "add",
            "000.00.00.H41",
            "--name",
            "Nghệ An",
            "--password-file",
            secret,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_agency_add_on_a_missing_database_says_to_run_relay_setup_first(
    services: Services, tmp_path: Path
) -> None:
    done = agency_add(services, unique_name("lienthong_test_missing"), tmp_path)
    assert done.returncode == 1
    assert "does not exist" in done.stderr
    assert "run `lienthong relay setup` first" in done.stderr


def test_agency_add_on_a_database_never_set_up_says_to_run_relay_setup_first(
    services: Services, empty_database: str, tmp_path: Path
) -> None:
    done = agency_add(services, empty_database, tmp_path)
    assert done.returncode == 1
    assert "run `lienthong relay setup` first" in done.stderr
    # PostgreSQL answered: the database is missing, not the server
    assert "unreachable" not in done.stderr


DOCUMENT = "000.00.00.H41,2026/11/30,15/UBND-VX"


@pytest.mark.parametrize(
    "command",
    [
        ["overdue"],
        ["retention", "run", "--days", "30"],
        ["trace", DOCUMENT],
        ["failures"],
        ["resend", DOCUMENT],
    ],
)
def test_the_operations_commands_on_a_missing_database_say_to_run_relay_setup(
    services: Services, command: list[str]
) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "LIENTHONG_DATABASE_URL": services.database_url_for(unique_name("lienthong_missing")),
    }
    done = subprocess.run(
        [*LIENTHONG, *command], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "run `lienthong relay setup` first" in done.stderr
    # PostgreSQL answered: the database is missing, not the server
    assert "unreachable" not in done.stderr
