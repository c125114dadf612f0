"""A password in ``amqp_url`` never appears in an error about the adapter's configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.config import ConfigError, load_config

SECRET = "Hb7-s3cret-pw"

BASE = """
agency = "000.00.00.G22"
root = "data/G22"
"""


@pytest.mark.parametrize(
    "line",
    [
        f'amqp_url = "http://000.00.00.G22:{SECRET}@broker.gov.vn/lienthong"',  # wrong scheme
        f'amqp_url = "amqps://000.00.00.G22:{SECRET}@/lienthong"',  # no host
        f'amqp_url = "000.00.00.G22:{SECRET}@broker.gov.vn:5671/lienthong"',  # no scheme
        f'amqp_url = "amqps://000.00.00.G22:{SECRET}@broker.gov.vn:56x1/lienthong"',  # bad port
        f'amqp_url = "amqps://000.00.00.G22:{SECRET}/x@broker.gov.vn/lienthong"',  # '/' in it
        f'amqp_url = "amqps://000.00.00.G99:{SECRET}@broker.gov.vn/lienthong"',  # other user
        f'amqp_uri = "amqps://000.00.00.G22:{SECRET}@broker.gov.vn/lienthong"',  # typo'd key
    ],
)
def test_an_invalid_amqp_url_is_reported_without_its_password(tmp_path: Path, line: str) -> None:
    path = tmp_path / "adapter.toml"
    path.write_text(BASE + line + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "amqp_ur" in message  # the key is still named
    assert SECRET not in message and SECRET[:6] not in message, message
