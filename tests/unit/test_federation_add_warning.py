"""``federation add`` warns about a password written in --amqp-url (it shows in ``ps``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.federation.cli import _warn_password_in_url


def test_a_password_in_the_url_is_warned_about_and_said_to_be_stored(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _warn_password_in_url("amqp://000.00.00.H26:s3cret@national:5672/lienthong", None)
    err = capsys.readouterr().err
    assert "`ps`" in err and "shell history" in err and "--password-file FILE" in err
    assert "stored encrypted" in err and "s3cret" not in err


def test_with_a_password_file_the_one_in_the_url_is_said_to_be_ignored(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _warn_password_in_url("amqp://000.00.00.H26:s3cret@national/lienthong", tmp_path / "f")
    assert "ignored: --password-file is used" in capsys.readouterr().err


@pytest.mark.parametrize(
    "url", ["amqp://000.00.00.H26@national/lienthong", "amqp://national/x", "http://[bad"]
)
def test_no_warning_without_a_password(capsys: pytest.CaptureFixture[str], url: str) -> None:
    _warn_password_in_url(url, None)
    assert capsys.readouterr().err == ""
