"""The adapter's ``[vxp]`` section: the contract of issue 15, validated at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.config import AdapterConfig, ConfigError, load_config

BASE = """
agency = "000.00.00.H41"
amqp_url = "amqp://127.0.0.1:5672/lienthong"
password_file = "H41.secret"
root = "data"
"""
VXP = """
[vxp]
listen      = "127.0.0.1:8280"
path_prefix = "/XrdAdapter/adapter"
systemid    = "dms-h41"
secret_file = "H41.vxp-secret"
"""


def _load(
    tmp_path: Path, body: str, secret: str | None = "khoá bí mật\nignored\n"
) -> AdapterConfig:
    (tmp_path / "H41.secret").write_text("amqp-password\n")
    if secret is not None:
        (tmp_path / "H41.vxp-secret").write_text(secret, encoding="utf-8")
    path = tmp_path / "adapter.toml"
    path.write_text(body, encoding="utf-8")
    return load_config(path)


def test_the_sdk_connector_is_off_unless_configured(tmp_path: Path) -> None:
    config = _load(tmp_path, BASE)
    assert config.vxp is None


def test_the_vxp_section_of_the_issue_reads_as_written(tmp_path: Path) -> None:
    config = _load(tmp_path, BASE + VXP)
    vxp = config.vxp
    assert vxp is not None and vxp.secret is not None
    assert (vxp.host, vxp.port, vxp.path_prefix, vxp.systemid) == (
        "127.0.0.1",
        8280,
        "/XrdAdapter/adapter",
        "dms-h41",
    )
    assert vxp.secret_file == tmp_path / "H41.vxp-secret"
    assert vxp.secret.get_secret_value() == "khoá bí mật"  # the first line, as UTF-8 text
    assert "khoá" not in repr(config)


def test_path_prefix_is_optional(tmp_path: Path) -> None:
    config = _load(tmp_path, BASE + VXP.replace('path_prefix = "/XrdAdapter/adapter"\n', ""))
    assert config.vxp is not None and config.vxp.path_prefix == ""


@pytest.mark.parametrize(
    ("change", "secret", "expected"),
    [
        (("127.0.0.1:8280", "8280"), "s", "vxp.listen: expected host:port"),
        (("127.0.0.1:8280", "127.0.0.1:99999"), "s", "vxp.listen: expected host:port"),
        (('"/XrdAdapter/adapter"', '"XrdAdapter"'), "s", "vxp.path_prefix: expected"),
        (('systemid    = "dms-h41"\n', ""), "s", "vxp.systemid: required key is missing"),
        (("systemid", "system_id"), "s", "vxp.system_id: unknown key"),
        (("listen", "listen"), None, "vxp.secret_file: cannot read"),
        (("listen", "listen"), "\n", "vxp.secret_file: the first line of"),
    ],
)
def test_a_wrong_vxp_key_stops_the_adapter_naming_it(
    tmp_path: Path, change: tuple[str, str], secret: str | None, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        _load(tmp_path, BASE + VXP.replace(*change), secret)
