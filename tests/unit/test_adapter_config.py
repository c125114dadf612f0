"""The adapter's TOML config: validated at start, errors name the key and the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.config import ConfigError, load_config


def _write(tmp_path: Path, body: str, secret: str | None = "s3cret") -> Path:
    if secret is not None:
        (tmp_path / "G22.secret").write_text(secret + "\n")
    path = tmp_path / "adapter.toml"
    path.write_text(body)
    return path


GOOD = """
agency = "000.00.00.G22"
amqp_url = "amqp://127.0.0.1:5672/lienthong"
password_file = "G22.secret"
root = "data/G22"
format = "json"
"""


def test_a_good_config_reads_the_password_file_and_resolves_paths_next_to_it(
    tmp_path: Path,
) -> None:
    config = load_config(_write(tmp_path, GOOD))
    assert config.agency == "000.00.00.G22"
    assert config.root == tmp_path / "data" / "G22"
    assert config.credentials() == ("000.00.00.G22", "s3cret")
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('agency = "000.00.00.G22"', 'agency = "g22"'), "agency: 'g22' is not an agency code"),
        (('format = "json"', 'format = "xml"'), "format:"),
        (("root = ", "rot = "), "root: required key is missing"),
        (('format = "json"', 'format = "json"\npoll_seconds = 0'), "poll_seconds:"),
        (('format = "json"', 'format = "json"\ncolour = "red"'), "colour: unknown key"),
        (
            ('amqp_url = "amqp://127.0.0.1:5672/lienthong"', 'amqp_url = "http://x/"'),
            "amqp_url: expected amqp://",
        ),
    ],
)
def test_a_bad_key_is_named_with_its_value(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, GOOD.replace(*change)))
    assert expected in str(e.value)


def test_a_missing_password_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"password_file: cannot read .*G22.secret"):
        load_config(_write(tmp_path, GOOD, secret=None))


def test_a_url_without_credentials_needs_a_password_file(tmp_path: Path) -> None:
    body = GOOD.replace('password_file = "G22.secret"\n', "")
    with pytest.raises(ConfigError, match=r"amqp_url: .* has no user:password"):
        load_config(_write(tmp_path, body))


def test_credentials_in_the_url_must_be_the_agencys_and_are_never_shown(tmp_path: Path) -> None:
    body = GOOD.replace("amqp://127.0.0.1", "amqp://guest:hunter2@127.0.0.1").replace(
        'password_file = "G22.secret"\n', ""
    )
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path, body))
    assert "'guest' is not the agency '000.00.00.G22'" in str(e.value)
    assert "hunter2" not in str(e.value)
    ok = body.replace("guest:", "000.00.00.G22:")
    config = load_config(_write(tmp_path, ok))
    assert config.credentials() == ("000.00.00.G22", "hunter2")
    assert "hunter2" not in config.safe_url()


def test_a_file_that_is_not_toml_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "agency = \n"))
