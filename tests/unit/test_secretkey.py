"""A federation link's password at rest (relay/secretkey.py): encrypted with the key of
LIENTHONG_SECRET_KEY_FILE, told apart from plain text by its prefix, and never in a message."""

from __future__ import annotations

import stat
import threading
from pathlib import Path
from typing import Any, cast

import pytest
import structlog
from click.testing import CliRunner
from sqlalchemy import Engine

from relay import secretkey
from relay.cli.relay import relay
from relay.config import Settings
from relay.errors import InvalidInput
from relay.federation.link import LinkRunner
from relay.federation.store import Link
from relay.secretkey import SecretKeyError

PASSWORD = "Mật-khẩu:của/trục tỉnh"  # not ASCII, with what a URL would escape


def _key(tmp_path: Path, name: str = "secret.key") -> Path:
    path = tmp_path / name
    secretkey.make_key_file(path)
    return path


def test_a_password_is_stored_as_a_prefixed_token_that_the_key_opens(tmp_path: Path) -> None:
    key = secretkey.load_key(_key(tmp_path))
    stored = secretkey.encrypt(key, PASSWORD)
    assert stored.startswith("fernet:") and secretkey.is_encrypted(stored)
    assert PASSWORD not in stored
    assert secretkey.decrypt(key, stored) == PASSWORD
    assert secretkey.encrypt(key, PASSWORD) != stored  # a new token each time


def test_a_value_without_the_prefix_is_plain_text_read_as_it_is(tmp_path: Path) -> None:
    assert not secretkey.is_encrypted(PASSWORD)
    assert secretkey.decrypt(None, PASSWORD) == PASSWORD
    assert secretkey.decrypt(secretkey.load_key(_key(tmp_path)), PASSWORD) == PASSWORD


def test_another_key_or_no_key_is_a_clear_error_without_the_secret(tmp_path: Path) -> None:
    stored = secretkey.encrypt(secretkey.load_key(_key(tmp_path, "a.key")), PASSWORD)
    other = secretkey.load_key(_key(tmp_path, "b.key"))
    with pytest.raises(SecretKeyError) as wrong:
        secretkey.decrypt(other, stored)
    assert "LIENTHONG_SECRET_KEY_FILE" in str(wrong.value) and "b.key" in str(wrong.value)
    assert "another key" in str(wrong.value)
    with pytest.raises(SecretKeyError) as missing:
        secretkey.decrypt(None, stored)
    assert "LIENTHONG_SECRET_KEY_FILE is not set" in str(missing.value)
    for e in (wrong.value, missing.value):
        assert PASSWORD not in str(e) and stored[7:20] not in str(e)
    with pytest.raises(SecretKeyError, match="damaged"):
        secretkey.decrypt(other, "fernet:not-a-token")


def test_the_key_file_is_made_0600_and_never_replaced(tmp_path: Path) -> None:
    path = _key(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_bytes()
    with pytest.raises(InvalidInput, match="exists already"):
        secretkey.make_key_file(path)
    assert path.read_bytes() == first
    assert first.strip().decode() not in repr(secretkey.load_key(path))


def test_a_missing_or_wrong_key_file_says_which_setting_and_how_to_make_one(
    tmp_path: Path,
) -> None:
    with pytest.raises(SecretKeyError, match="LIENTHONG_SECRET_KEY_FILE: cannot read"):
        secretkey.load_key(tmp_path / "nowhere.key")
    bad = tmp_path / "bad.key"
    bad.write_text("not a key\n")
    with pytest.raises(SecretKeyError, match="make-secret-key"):
        secretkey.load_key(bad)
    assert secretkey.key_from_settings(Settings(secret_key_file="")) is None


def test_relay_make_secret_key_writes_a_key_and_refuses_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "hub.key"
    made = CliRunner().invoke(relay, ["make-secret-key", str(path)])
    assert made.exit_code == 0, made.output
    assert "LIENTHONG_SECRET_KEY_FILE=" in made.output
    secretkey.load_key(path)  # a usable key
    key = path.read_text().strip()
    assert key not in made.output
    again = CliRunner().invoke(relay, ["make-secret-key", str(path)])
    assert again.exit_code == 1 and "exists already" in again.output
    assert path.read_text().strip() == key


def _link(stored: str) -> Link:
    return Link(
        name="national", agency="000.00.00.H26", amqp_url="amqp://x/", stored_password=stored
    )


def test_a_link_names_itself_and_the_setting_when_its_password_cannot_be_read(
    tmp_path: Path,
) -> None:
    stored = secretkey.encrypt(secretkey.load_key(_key(tmp_path, "a.key")), PASSWORD)
    link = _link(stored)
    assert PASSWORD not in repr(link) and stored not in repr(link)
    assert link.password(Settings(secret_key_file=str(tmp_path / "a.key"))) == PASSWORD
    assert _link(PASSWORD).password(Settings(secret_key_file="")) == PASSWORD
    for settings in (
        Settings(secret_key_file=str(_key(tmp_path, "b.key"))),
        Settings(secret_key_file=""),
        Settings(secret_key_file=str(tmp_path / "gone.key")),
    ):
        with pytest.raises(SecretKeyError) as e:
            link.password(settings)
        assert "federation link 'national'" in str(e.value)
        assert "LIENTHONG_SECRET_KEY_FILE" in str(e.value)


def test_the_relay_does_not_start_a_link_it_cannot_open_and_says_so_once(tmp_path: Path) -> None:
    stored = secretkey.encrypt(secretkey.load_key(_key(tmp_path, "a.key")), PASSWORD)
    settings = Settings(secret_key_file=str(_key(tmp_path, "b.key")))
    runner = LinkRunner(settings, threading.Event(), cast(Engine, None))
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):  # three polls
            runner._reconcile(cast(Engine, None), {"national": _link(stored)})
    assert runner.running == {}
    errors: list[dict[str, Any]] = [e for e in logs if e["event"] == "federation.link_not_started"]
    assert len(errors) == 1
    assert errors[0]["log_level"] == "error" and errors[0]["link"] == "national"
    assert "LIENTHONG_SECRET_KEY_FILE" in errors[0]["error"]
    assert "exc_info" not in errors[0]
    assert all(PASSWORD not in str(e) and stored not in str(e) for e in logs)
