"""``lienthong federation add/list/show/remove/peer`` against the real broker and database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog
from click.testing import CliRunner, Result
from sqlalchemy import Engine

from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.db.engine import make_engine
from relay.federation.cli import federation
from tests.conftest import EnvFactory
from tests.relay_support import Agency, add_agency
from tests.services import random_code

pytestmark = pytest.mark.integration


@dataclass
class Two:
    here: Settings  # the provincial hub
    there: Settings  # the national hub
    here_db: Engine
    link: Agency  # this hub's agency on the national hub


@pytest.fixture(scope="module")
def two(make_env: EnvFactory, management: ManagementClient) -> Iterator[Two]:
    here, there = make_env(), make_env()
    here_db, there_db = make_engine(here.database_url), make_engine(there.database_url)
    link = add_agency(there, there_db, random_code(), name="trục tỉnh")
    try:
        yield Two(here, there, here_db, link)
    finally:
        here_db.dispose()
        there_db.dispose()
        management.delete_user(link.code)


def run(settings: Settings, *args: str, ok: bool = True) -> Result:
    env = {
        "LIENTHONG_AMQP_URL": settings.amqp_url,
        "LIENTHONG_DATABASE_URL": settings.database_url,
        "LIENTHONG_MANAGEMENT_URL": settings.management_url,
        "LIENTHONG_SECRET_KEY_FILE": settings.secret_key_file,
    }
    with structlog.testing.capture_logs():
        result = CliRunner().invoke(federation, list(args), env=env, catch_exceptions=False)
    assert (result.exit_code == 0) is ok, result.output
    return result


def _url(two: Two, *, password: bool = True) -> str:
    assert two.link.amqp_url is not None and two.link.password is not None
    return two.link.amqp_url if password else two.link.amqp_url.replace(f":{two.link.password}", "")


def test_a_link_is_added_listed_shown_and_removed(two: Two, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    assert two.link.password is not None
    secret.write_text(two.link.password + "\n")
    added = run(
        two.here, "add", "national", "--amqp-url", _url(two, password=False),
        "--agency", two.link.code, "--password-file", str(secret),
    )  # fmt: skip
    assert "added" in added.stdout and "accepts" in added.stdout
    assert two.link.password not in added.stdout  # never printed back

    listed = json.loads(run(two.here, "list", "--json").stdout)
    assert [(k["name"], k["agency"], k["upstream"]) for k in listed] == [
        ("national", two.link.code, True)
    ]
    assert all(two.link.password not in k["amqp_url"] for k in listed)

    shown = run(two.here, "show", "national").stdout
    assert f"agency.{two.link.code}.inbox" in shown and "to bring in:" in shown
    assert f"agency.{two.link.code}.inbox.urgent" in shown  # what waits in the urgent lane too

    gone = run(two.here, "remove", "national").stdout
    assert "removed" in gone and "suspended" in gone
    assert json.loads(run(two.here, "list", "--json").stdout) == []
    assert "no federation link 'national'" in run(two.here, "show", "national", ok=False).output


def test_a_link_cannot_take_the_code_of_an_agency_of_this_hub(two: Two, tmp_path: Path) -> None:
    own = add_agency(two.here, two.here_db, random_code(), name="Sở")
    assert own.password is not None
    secret = tmp_path / "secret"
    secret.write_text(own.password)
    no_user = _url(two).replace(f"{two.link.code}:{two.link.password}@", "")
    out = run(
        two.here, "add", "clash", "--amqp-url", no_user, "--agency", own.code,
        "--password-file", str(secret), ok=False,
    ).output  # fmt: skip
    assert "is an agency of this hub's directory" in out


def test_bad_link_settings_are_refused_with_what_to_fix(two: Two) -> None:
    bad_url = run(
        two.here, "add", "national", "--amqp-url", "http://x", "--agency", two.link.code, ok=False
    ).output
    assert "--amqp-url" in bad_url and "amqp://" in bad_url
    no_password = run(
        two.here, "add", "national", "--amqp-url", _url(two, password=False),
        "--agency", two.link.code, ok=False,
    ).output  # fmt: skip
    assert "--password-file" in no_password
    other_user = run(
        two.here, "add", "national", "--amqp-url", _url(two), "--agency", random_code(), ok=False
    ).output
    assert "must be the same" in other_user
    bad_name = run(
        two.here, "add", "National Hub", "--amqp-url", _url(two), "--agency", two.link.code,
        ok=False,
    ).output  # fmt: skip
    assert "not a link name" in bad_name


def test_only_a_connected_agency_can_be_made_a_peer_hub(two: Two) -> None:
    assert "is a peer hub" in run(two.there, "peer", "add", two.link.code).stdout
    assert two.link.code in run(two.there, "peer", "list").stdout
    assert "no agency" in run(two.there, "peer", "add", random_code(), ok=False).output
    assert "no longer" in run(two.there, "peer", "remove", two.link.code).stdout
