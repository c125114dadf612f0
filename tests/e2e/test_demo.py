"""``lienthong demo`` as a person runs it: a real process, real services, real child processes."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import text

from relay.broker.management import ManagementClient
from relay.db.engine import make_engine
from tests.services import Services, unique_name

pytestmark = pytest.mark.e2e

LIENTHONG = str(Path(sys.executable).parent / "lienthong")


def _environment(amqp_url: str, database_url: str, management_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIENTHONG_")}
    env.update(
        LIENTHONG_AMQP_URL=amqp_url,
        LIENTHONG_DATABASE_URL=database_url,
        LIENTHONG_MANAGEMENT_URL=management_url,
    )
    return env


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_the_demo_plays_the_scenario_and_every_delivery_ends_in_its_expected_state(
    services: Services, tmp_path: Path
) -> None:
    # A vhost and a database of the test's own, so a developer's `make demo` is not clobbered.
    database = unique_name("lienthong_test_demo")
    vhost = database.replace("_", "-")
    workdir = tmp_path / "demo"
    env = _environment(
        services.amqp_url_for("unused"),
        services.database_url_for("postgres"),
        services.management_url,
    )
    try:
        done = subprocess.run(
            [
                LIENTHONG,
                "demo",
                "--vhost",
                vhost,
                "--database",
                database,
                "--workdir",
                str(workdir),
                "--timeout",
                "150",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=280,
            check=False,
        )
    finally:
        # Deleting a vhost deletes its quorum queues one by one: slow on a busy broker.
        with ManagementClient(services.management_url, timeout=120.0) as patient:
            patient.delete_vhost(vhost)
        admin = make_engine(services.database_url_for("postgres"))
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()
    output = done.stdout + done.stderr
    assert done.returncode == 0, output

    result = json.loads((workdir / "result.json").read_text("utf-8"))
    assert result["ok"] is True
    states = {(d["business_type"], d["recipient"]): d["state"] for d in result["deliveries"]}
    assert states == {
        (0, "000.00.00.H26"): "completed",
        (0, "000.00.21.H26"): "completed",
        (0, "000.00.00.H29"): "completed",
        (0, "000.00.00.G12"): "refused",
        (1, "000.00.00.H29"): "delivered",
    }
    # The final table, as printed.
    table = done.stdout[done.stdout.index("document  ") :]
    assert re.search(
        r"Văn bản mới\s+000\.00\.21\.H26 \(via 000\.00\.00\.H26\)\s+"
        r"Sở Thông tin và Truyền thông Hà Nội\s+completed\s+06 Hoàn thành",
        table,
    )
    assert re.search(
        r"Văn bản mới\s+000\.00\.00\.G12\s+Bộ Thông tin và Truyền thông\s+"
        r"refused\s+02 Từ chối",
        table,
    )
    assert re.search(r"Thu hồi\s+000\.00\.00\.H29\s+UBND Thành phố Hồ Chí Minh\s+delivered", table)
    # The live timeline showed the statuses coming back to Văn phòng Chính phủ.
    assert re.search(r"000\.00\.00\.H29 .*→ 000\.00\.00\.G22\s+04 Phân công", done.stdout)
    # The web console ran on the demo's data, with a login to try it (issue 19).
    assert re.search(r"web console: http://127\.0\.0\.1:\d+/\s+\(user demo, password ", done.stdout)
    # Every process the demo started (relay, web console, four adapters) is gone.
    pids = [int(p) for p in re.findall(r"\bpid (\d+)", done.stdout)]
    assert len(pids) == 6, done.stdout
    alive = [
        p
        for p in pids
        if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]
    assert alive == []


def test_the_demo_fails_within_seconds_naming_an_unreachable_rabbitmq(
    services: Services, tmp_path: Path
) -> None:
    port = _closed_port()
    env = _environment(
        f"amqp://guest:guest@127.0.0.1:{port}/",
        services.database_url_for("postgres"),
        services.management_url,
    )
    started = time.monotonic()
    done = subprocess.run(
        [LIENTHONG, "demo", "--workdir", str(tmp_path / "demo")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode != 0
    assert f"RabbitMQ (AMQP) is unreachable at amqp://guest@127.0.0.1:{port}/" in done.stderr
    assert "rabbitmq-server -detached" in done.stderr
    assert "make up" in done.stderr
    assert "PostgreSQL is unreachable" not in done.stderr
    assert elapsed < 10, f"took {elapsed:.1f}s"
    # Nothing was set up: the workdir was not even created.
    assert not (tmp_path / "demo").exists()
