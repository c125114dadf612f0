"""The README's path for a new agency works when followed literally (issue 18).

The commands between ``<!-- readme-path:begin -->`` and ``<!-- readme-path:end -->`` in
README.md run in order, in one bash, from the repository's root, as a person would paste them;
only the addresses change (the test's broker, a vhost and a database of its own), and HOME is
a temporary folder (the path works in ``~/lienthong-try``).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import text

from relay.broker.management import ManagementClient
from relay.db.engine import make_engine
from tests.services import Services, unique_name

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CODES = ("000.00.00.H41", "000.00.00.G13")
DOCUMENT_ID = "000.00.00.H41,2026/11/30,15/UBND-VX"


def readme_commands() -> str:
    readme = (ROOT / "README.md").read_text("utf-8")
    found = re.search(
        r"<!-- readme-path:begin -->\s*```sh\n(.*?)```\s*<!-- readme-path:end -->", readme, re.S
    )
    assert found, "README.md has no readme-path block"
    return found.group(1)


def test_the_readme_block_is_there_and_uses_the_default_addresses() -> None:
    script = readme_commands()
    for needle in (
        "make install",
        "lienthong relay setup",
        "lienthong relay run",
        "--password-file H41.secret",
        "127.0.0.1:5672/lienthong",
        "127.0.0.1:15672",
        "127.0.0.1:5432/lienthong",
    ):
        assert needle in script
    assert script.index("\nlienthong relay setup") < script.index("\nlienthong agency add")


def _cleanup(services: Services, vhost: str, database: str) -> None:
    with ManagementClient(services.management_url, timeout=120.0) as mgmt:
        mgmt.delete_vhost(vhost)
        for code in CODES:  # users are broker-wide: leave none behind
            mgmt.delete_user(code)
    admin = make_engine(services.database_url_for("postgres"))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    admin.dispose()


def test_a_new_user_following_the_readme_gets_a_document_across(
    services: Services, tmp_path: Path
) -> None:
    database = unique_name("lienthong_test_readme")
    vhost = database.replace("_", "-")
    amqp = urlsplit(services.amqp_url)
    mgmt = urlsplit(services.management_url)
    with httpx.Client() as client:  # the test broker must not hold real agencies' users
        for code in CODES:
            user = client.get(f"{services.management_url}/api/users/{code}")
            if user.status_code == 200:
                pytest.skip(f"the test broker already has a user {code}; not touching it")
    script = (
        readme_commands()
        .replace("127.0.0.1:5672/lienthong", f"127.0.0.1:{amqp.port}/{vhost}")
        .replace("127.0.0.1:15672", f"127.0.0.1:{mgmt.port}")
        .replace("127.0.0.1:5432/lienthong", f"127.0.0.1:5432/{database}")
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIENTHONG_", "VIRTUAL_ENV"))}
    env.update(HOME=str(tmp_path), LIENTHONG_METRICS_ADDR="")
    try:
        done = subprocess.run(
            ["bash", "-e", "-c", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
        )
        work = tmp_path / "lienthong-try"
        logs = {p.name: p.read_text()[-2000:] for p in work.glob("*.log")}
        assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:], logs)
        assert len(list((work / "G13" / "inbox" / "documents").glob("*.json"))) == 1, logs
        assert list((work / "H41" / "inbox" / "receipts").glob("*.json")), logs
        assert f"Document {DOCUMENT_ID}" in done.stdout
        assert "Recipient 000.00.00.G13" in done.stdout
    finally:
        _cleanup(services, vhost, database)
