"""``lienthong federation add/list/show/remove/peer`` against the real broker and database."""

from __future__ import annotations

import json
import re
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
from schemas import topology as t
from tests.conftest import EnvFactory
from tests.relay_support import Agency, add_agency, set_agency_state
from tests.services import random_code

pytestmark = pytest.mark.integration


@dataclass
class Two:
    here: Settings  # the provincial hub
    there: Settings  # the national hub
    here_db: Engine
    there_db: Engine
    link: Agency  # this hub's agency on the national hub


@pytest.fixture(scope="module")
def two(make_env: EnvFactory, management: ManagementClient) -> Iterator[Two]:
    here, there = make_env(), make_env()
    here_db, there_db = make_engine(here.database_url), make_engine(there.database_url)
    link = add_agency(there, there_db, random_code(), name="trục tỉnh")
    try:
        yield Two(here, there, here_db, there_db, link)
    finally:
        here_db.dispose()
        there_db.dispose()
        management.delete_user(link.code)


def run(settings: Settings, *args: str, ok: bool | None = True) -> Result:
    env = {
        "LIENTHONG_AMQP_URL": settings.amqp_url,
        "LIENTHONG_DATABASE_URL": settings.database_url,
        "LIENTHONG_MANAGEMENT_URL": settings.management_url,
        "LIENTHONG_SECRET_KEY_FILE": settings.secret_key_file,
    }
    with structlog.testing.capture_logs():
        result = CliRunner().invoke(federation, list(args), env=env, catch_exceptions=False)
    assert ok is None or (result.exit_code == 0) is ok, result.output
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


def _write_permission(management: ManagementClient, settings: Settings, code: str) -> str:
    return str(management._request("GET", f"/permissions/{settings.vhost}/{code}")["write"])


def _password_file(tmp_path: Path, agency: Agency) -> str:
    assert agency.password is not None
    path = tmp_path / f"{agency.code}.secret"
    path.write_text(agency.password + "\n")
    return str(path)


def _moved(url: str) -> str:
    """The same broker under another address (a link's new URL)."""
    assert "@127.0.0.1:" in url
    return url.replace("@127.0.0.1:", "@localhost:")


def test_a_removed_link_is_added_again_with_a_new_url(
    two: Two, tmp_path: Path, management: ManagementClient
) -> None:
    # The documented way to change a link: remove it, add it again. Its agency was left
    # suspended here by the remove; the new link takes it over and makes it active again.
    there = add_agency(two.there, two.there_db, random_code(), name="trục tỉnh (mới)")
    assert there.amqp_url is not None and there.password is not None
    old_url = there.amqp_url.replace(f":{there.password}", "")
    secret = _password_file(tmp_path, there)
    try:
        run(two.here, "add", "moving", "--amqp-url", old_url, "--agency", there.code,
            "--password-file", secret)  # fmt: skip
        changed = run(
            two.here, "add", "moving", "--amqp-url", _moved(old_url), "--agency", there.code,
            "--password-file", secret, ok=False,
        ).output  # fmt: skip
        assert "to change it, remove it (lienthong federation remove moving)" in changed
        removed = run(two.here, "remove", "moving").stdout
        assert f"--agency {there.code}" in removed and "takes it over" in removed
        assert _write_permission(management, two.here, there.code) == "^$"

        again = run(
            two.here, "add", "moving", "--amqp-url", _moved(old_url), "--agency", there.code,
            "--password-file", secret, "--json",
        )  # fmt: skip
        added = json.loads(again.stdout)
        assert (added["created"], added["reachable"]) == (True, True)
        assert added["resumed_agency_of"] == "moving"
        listed = json.loads(run(two.here, "list", "--json").stdout)
        assert [(k["agency"], k["amqp_url"]) for k in listed if k["name"] == "moving"] == [
            (there.code, _moved(old_url))
        ]
        shown = json.loads(run(two.here, "show", "moving", "--json").stdout)
        assert shown["state"] == "active"
        own_exchange = "^" + re.escape(t.submit_exchange(there.code)) + r"(\.urgent)?$"
        assert _write_permission(management, two.here, there.code) == own_exchange
    finally:
        run(two.here, "remove", "moving", ok=None)
        management.delete_user(there.code)


def test_a_removed_link_is_taken_over_by_a_link_of_another_name(
    two: Two, tmp_path: Path, management: ManagementClient
) -> None:
    there = add_agency(two.there, two.there_db, random_code(), name="trục tỉnh (đổi tên)")
    assert there.amqp_url is not None
    secret = _password_file(tmp_path, there)
    try:
        run(two.here, "add", "old-name", "--amqp-url", there.amqp_url, "--agency", there.code,
            "--password-file", secret)  # fmt: skip
        run(two.here, "remove", "old-name")
        out = run(
            two.here, "add", "new-name", "--amqp-url", there.amqp_url, "--agency", there.code,
            "--password-file", secret,
        ).stdout  # fmt: skip
        assert "added" in out and "removed link 'old-name'" in out and "active again" in out
        listed = json.loads(run(two.here, "list", "--json").stdout)
        assert [k["name"] for k in listed if k["agency"] == there.code] == ["new-name"]
    finally:
        run(two.here, "remove", "new-name", ok=None)
        management.delete_user(there.code)


def test_a_suspended_agency_that_was_never_a_link_is_still_refused(
    two: Two, tmp_path: Path
) -> None:
    # Suspended like a removed link's agency, and even named like one: still this hub's own.
    own = add_agency(two.here, two.here_db, random_code(), name="Federation link moving")
    set_agency_state(two.here_db, own.code, "suspended")
    no_user = _url(two).replace(f"{two.link.code}:{two.link.password}@", "")
    out = run(
        two.here, "add", "clash", "--amqp-url", no_user, "--agency", own.code,
        "--password-file", _password_file(tmp_path, own), ok=False,
    ).output  # fmt: skip
    assert f"--agency: {own.code} is an agency of this hub's directory" in out
    listed = json.loads(run(two.here, "list", "--json").stdout)
    assert own.code not in [k["agency"] for k in listed]


def test_a_password_in_the_url_is_taken_with_a_warning(
    two: Two, management: ManagementClient
) -> None:
    there = add_agency(two.there, two.there_db, random_code(), name="trục tỉnh (URL)")
    assert there.amqp_url is not None and there.password is not None
    try:
        result = run(
            two.here, "add", "inline", "--amqp-url", there.amqp_url, "--agency", there.code
        )
        assert "added" in result.stdout and "accepts" in result.stdout
        assert "`ps`" in result.stderr and "shell history" in result.stderr
        assert "--password-file" in result.stderr
        assert there.password not in result.output
    finally:
        run(two.here, "remove", "inline", ok=None)
        management.delete_user(there.code)


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
