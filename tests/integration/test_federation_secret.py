"""A federation link's password at rest (relay/secretkey.py), on the real PostgreSQL and broker:
stored encrypted by ``federation add``, a plain-text row of an earlier version encrypted by
``relay setup`` and still opening, a wrong or missing key a clear error that stops that link
only, and the password (plain or token) in no output and no log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog
from click.testing import CliRunner, Result
from sqlalchemy import Engine, select, update

from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.db.engine import make_engine
from relay.db.tables import federation_links
from relay.federation.cli import federation
from relay.secretkey import make_key_file
from relay.setup import run_setup
from tests.conftest import EnvFactory
from tests.relay_support import Agency, RelayProcess, add_agency
from tests.services import random_code

pytestmark = pytest.mark.integration


@dataclass
class Two:
    here: Settings  # the provincial hub, with the run's key
    here_db: Engine
    link: Agency  # this hub's agency on the national hub


@pytest.fixture(scope="module")
def two(make_env: EnvFactory, management: ManagementClient) -> Iterator[Two]:
    here, there = make_env(), make_env()
    here_db, there_db = make_engine(here.database_url), make_engine(there.database_url)
    link = add_agency(there, there_db, random_code(), name="trục tỉnh")
    try:
        yield Two(here, here_db, link)
    finally:
        here_db.dispose()
        there_db.dispose()
        management.delete_user(link.code)


def run(settings: Settings, *args: str, key: str | None = None, ok: bool = True) -> Result:
    env = {
        "LIENTHONG_AMQP_URL": settings.amqp_url,
        "LIENTHONG_DATABASE_URL": settings.database_url,
        "LIENTHONG_MANAGEMENT_URL": settings.management_url,
        "LIENTHONG_SECRET_KEY_FILE": settings.secret_key_file if key is None else key,
    }
    with structlog.testing.capture_logs():
        result = CliRunner().invoke(federation, list(args), env=env, catch_exceptions=False)
    assert (result.exit_code == 0) is ok, result.output
    return result


def _add(two: Two, tmp_path: Path, *, key: str | None = None, ok: bool = True) -> Result:
    assert two.link.amqp_url is not None and two.link.password is not None
    secret = tmp_path / "link.secret"
    secret.write_text(two.link.password + "\n")
    url = two.link.amqp_url.replace(f":{two.link.password}", "")
    return run(
        two.here, "add", "national", "--amqp-url", url, "--agency", two.link.code,
        "--password-file", str(secret), key=key, ok=ok,
    )  # fmt: skip


def _stored(two: Two) -> str | None:
    with two.here_db.connect() as conn:
        return conn.execute(
            select(federation_links.c.password).where(federation_links.c.name == "national")
        ).scalar_one_or_none()


def _set_stored(two: Two, value: str) -> None:
    with two.here_db.begin() as conn:
        conn.execute(
            update(federation_links)
            .where(federation_links.c.name == "national")
            .values(password=value)
        )


def _no_secret_in(two: Two, text: str, stored: str | None = None) -> None:
    assert two.link.password is not None
    assert two.link.password not in text
    if stored is not None:
        assert stored.removeprefix("fernet:")[:24] not in text


@pytest.fixture
def added(two: Two, tmp_path: Path) -> str:
    """The link added with the run's key (again: its password replaced); what the row stores."""
    out = _add(two, tmp_path).output
    stored = _stored(two)
    assert stored is not None
    _no_secret_in(two, out, stored)
    return stored


def test_the_row_keeps_the_password_encrypted_and_the_link_opens(two: Two, added: str) -> None:
    assert two.link.password is not None
    assert two.link.password not in added
    assert added.startswith("fernet:")

    shown = run(two.here, "show", "national").output
    _no_secret_in(two, shown, added)
    assert "password:    encrypted" in shown
    # the other hub's inbox was reached with the decrypted password
    assert f"to bring in: agency.{two.link.code}.inbox: 0 messages" in shown
    as_json = json.loads(run(two.here, "show", "national", "--json").output)
    assert as_json["password_stored"] == "encrypted" and "error" not in as_json["there"]
    _no_secret_in(two, run(two.here, "list", "--json").output, added)


def test_without_a_key_a_link_is_refused_with_what_to_do(two: Two, tmp_path: Path) -> None:
    before = _stored(two)
    out = _add(two, tmp_path, key="", ok=False).output
    assert "LIENTHONG_SECRET_KEY_FILE is not set" in out
    assert "lienthong relay make-secret-key" in out
    _no_secret_in(two, out)
    assert _stored(two) == before  # nothing stored


def test_a_plain_text_row_keeps_working_and_setup_encrypts_it_once(
    two: Two, added: str, tmp_path: Path
) -> None:
    assert two.link.password is not None
    _set_stored(two, two.link.password)  # as an earlier version stored it

    # Read as it is, key or no key; `show` says it is plain text.
    for key in (None, ""):
        shown = run(two.here, "show", "national", key=key).output
        assert "PLAIN TEXT" in shown and "relay setup" in shown
        assert f"to bring in: agency.{two.link.code}.inbox: 0 messages" in shown
        _no_secret_in(two, shown)

    with structlog.testing.capture_logs() as logs:
        run_setup(two.here.model_copy(update={"secret_key_file": ""}))  # no key: left, named
    warned = [e for e in logs if e["event"] == "federation.password_unencrypted"]
    assert [e["links"] for e in warned] == [["national"]]
    assert _stored(two) == two.link.password

    with structlog.testing.capture_logs() as logs:
        run_setup(two.here)
    encrypted = _stored(two)
    assert encrypted is not None and encrypted.startswith("fernet:")
    assert two.link.password not in encrypted
    assert [e["links"] for e in logs if e["event"] == "federation.passwords_encrypted"] == [
        ["national"]
    ]
    for event in logs:
        _no_secret_in(two, str(event), encrypted)

    run_setup(two.here)  # idempotent: an encrypted password is left as it is
    assert _stored(two) == encrypted
    shown = run(two.here, "show", "national").output
    assert "password:    encrypted" in shown
    assert f"to bring in: agency.{two.link.code}.inbox: 0 messages" in shown


def test_a_wrong_or_missing_key_is_a_clear_error_naming_the_link_and_the_setting(
    two: Two, added: str, tmp_path: Path
) -> None:
    wrong = tmp_path / "other.key"
    make_key_file(wrong)
    for key, says in ((str(wrong), "does not open it"), ("", "is not set")):
        shown = run(two.here, "show", "national", key=key).output
        assert "federation link 'national': cannot read its password" in shown
        assert says in shown and "LIENTHONG_SECRET_KEY_FILE" in shown
        _no_secret_in(two, shown, added)
        pushed = run(two.here, "sync-directory", "national", key=key, ok=False).output
        assert "federation link 'national': cannot read its password" in pushed
        assert "Traceback" not in pushed
        _no_secret_in(two, pushed, added)

    # setup says so too, and leaves the row alone
    with structlog.testing.capture_logs() as logs:
        run_setup(two.here.model_copy(update={"secret_key_file": str(wrong)}))
    unreadable = [e for e in logs if e["event"] == "federation.password_unreadable"]
    assert [(e["link"], e["log_level"]) for e in unreadable] == [("national", "error")]
    assert "does not open it" in unreadable[0]["error"]
    assert _stored(two) == added


def test_the_relay_with_a_wrong_key_runs_without_the_link_and_says_why(
    two: Two, added: str, tmp_path: Path
) -> None:
    wrong = tmp_path / "other.key"
    make_key_file(wrong)
    with RelayProcess(two.here.model_copy(update={"secret_key_file": str(wrong)})) as relay:
        relay.wait_for_log('"federation.link_not_started"', timeout=30)
        text = relay.log_text()
        line = next(x for x in text.splitlines() if "federation.link_not_started" in x)
        event = json.loads(line)
        assert event["level"] == "error" and event["link"] == "national"
        assert "LIENTHONG_SECRET_KEY_FILE" in event["error"] and "does not open" in event["error"]
        assert "federation.link_started" not in text and "Traceback" not in text
        _no_secret_in(two, text, added)
        assert relay.running()  # the rest of the relay runs

    with RelayProcess(two.here) as relay:  # the right key: the link runs
        relay.wait_for_log('"federation.link_up"', timeout=60)
        _no_secret_in(two, relay.log_text(), added)
