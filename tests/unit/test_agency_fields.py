"""Checks on a single agency's fields name the field and the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.directory import passwords
from relay.directory.model import Agency
from relay.directory.validation import check_code, check_name
from relay.errors import InvalidInput


def test_a_bad_agency_code_names_the_field_and_the_value() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_code("--host", "000-00-00-G22")
    assert str(caught.value).startswith("--host: '000-00-00-G22' is not an agency code")


def test_a_good_agency_code_is_returned_unchanged() -> None:
    assert check_code("code", "000.00.00.G22") == "000.00.00.G22"


def test_an_empty_name_names_the_field() -> None:
    with pytest.raises(InvalidInput, match="--name: '  ' must not be empty"):
        check_name("--name", "  ")


def test_a_hosted_unit_routes_to_its_host_and_a_connected_agency_to_itself() -> None:
    unit = Agency("000.00.01.H26", "Unit", "000.00.00.H26", "active", True)
    host = Agency("000.00.00.H26", "Host", None, "active", True)
    assert (unit.route_to, unit.connected) == ("000.00.00.H26", False)
    assert (host.route_to, host.connected) == ("000.00.00.H26", True)


def test_a_secret_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = passwords.write_secret(tmp_path / "secrets", "000.00.00.G22", "s3cret")
    assert path.name == "000.00.00.G22.secret"
    assert path.stat().st_mode & 0o777 == 0o600
    assert passwords.read_password_file(path) == "s3cret"


def test_an_empty_password_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "pw"
    empty.write_text("\n")
    with pytest.raises(InvalidInput, match=r"--password-file: .* is empty"):
        passwords.read_password_file(empty)


def test_generated_passwords_differ() -> None:
    assert passwords.generate() != passwords.generate()
