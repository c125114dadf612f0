"""``lienthong agency import FILE.csv`` against the real broker and database."""

from __future__ import annotations

import csv
import json
import random
import secrets
import stat
import time
from pathlib import Path

import pika
import pytest

from relay.broker.management import ManagementClient
from relay.config import Settings
from schemas import topology as t
from tests.conftest import EnvFactory
from tests.integration.test_agency_cli import (
    CREATED,
    new_code,
    remove_created_users,
    run_agency,
    show,
)

pytestmark = pytest.mark.integration

__all__ = ["remove_created_users"]  # the fixture, imported to run here too

DATA = Path(__file__).parent.parent / "data" / "agencies.csv"


def write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["code", "name", "host"])
        writer.writerows(rows)
    return path


def count(settings: Settings) -> int:
    return len(json.loads(run_agency(settings, "list", "--json").stdout))


def test_the_sample_directory_imports_with_broker_objects_for_connected_agencies_only(
    make_env: EnvFactory, management: ManagementClient, tmp_path: Path
) -> None:
    # The sample's real codes with a prefix of this run's own: broker users are global, and a
    # demo (or another hub) on the same broker may own 000.00.00.G22 and friends, which this
    # hub rightly refuses to take over (tests/integration/test_agency_users.py).
    prefix = f"{secrets.randbelow(900) + 100}."
    data = tmp_path / "agencies.csv"
    data.write_text(DATA.read_text(encoding="utf-8").replace("000.", prefix), encoding="utf-8")

    def code(sample: str) -> str:
        return sample.replace("000.", prefix, 1)

    env = make_env()
    secrets_dir = tmp_path / "secrets"
    CREATED.extend(line.split(",")[0] for line in data.read_text(encoding="utf-8").splitlines()[1:])
    result = run_agency(env, "import", str(data), "--password-dir", str(secrets_dir))
    assert "38 new" in result.stdout
    assert "(33 connected, 5 hosted units)" in result.stdout

    files = sorted(p.name for p in secrets_dir.iterdir())
    assert len(files) == 33 and f"{code('000.00.00.H26')}.secret" in files
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in secrets_dir.iterdir())
    assert management.get_user(code("000.00.00.G22")) is not None
    assert management.get_queue(env.vhost, t.inbox_queue(code("000.00.00.H26"))) is not None
    assert management.get_user(code("000.00.01.H26")) is None  # a hosted unit
    assert management.get_queue(env.vhost, t.inbox_queue(code("000.00.01.H26"))) is None
    assert show(env, code("000.00.00.H26"))["hosted_units"] == 5

    again = run_agency(env, "import", str(data), "--password-dir", str(secrets_dir))
    assert "0 new, 0 updated, 38 unchanged" in again.stdout
    assert "broker objects created" not in again.stdout


def test_a_file_with_bad_rows_imports_nothing_and_names_every_bad_row(
    make_env: EnvFactory, tmp_path: Path
) -> None:
    env = make_env()
    good, host = new_code(), new_code()
    path = write_csv(
        tmp_path / "bad.csv",
        [
            (good, "Bộ Tư pháp", ""),
            ("G22", "Văn phòng", ""),
            (new_code(), "", ""),
            (new_code(), "Sở", host),
        ],
    )
    result = run_agency(env, "import", str(path), ok=False)
    assert "3 bad row(s), nothing imported" in result.output
    assert "line 3: code 'G22'" in result.output
    assert "line 4: name '': must not be empty" in result.output
    assert f"line 5: host '{host}': is neither in this file nor in the directory" in result.output
    assert count(env) == 0


def test_hosts_may_come_from_the_directory_and_reimport_updates_names(
    make_env: EnvFactory, tmp_path: Path
) -> None:
    env = make_env()
    host, unit = new_code(), new_code()
    run_agency(env, "add", host, "--name", "UBND Tỉnh Quảng Ninh")
    path = write_csv(tmp_path / "units.csv", [(unit, "Sở Tư pháp", host)])
    assert "1 new" in run_agency(env, "import", str(path)).stdout
    assert show(env, unit)["host"] == host

    write_csv(path, [(unit, "Sở Tư pháp Quảng Ninh", host)])
    assert "0 new, 1 updated" in run_agency(env, "import", str(path)).stdout
    assert show(env, unit)["name"] == "Sở Tư pháp Quảng Ninh"

    # The host cannot become a hosted unit while the directory has units under it.
    other = new_code()
    run_agency(env, "add", other, "--name", "UBND Tỉnh khác")
    write_csv(path, [(host, "UBND Tỉnh Quảng Ninh", other)])
    refused = run_agency(env, "import", str(path), ok=False)
    assert f"'{host}' cannot become a hosted unit" in refused.output
    assert show(env, host)["host"] is None


def test_without_provisioning_new_connected_agencies_get_no_broker_objects(
    make_env: EnvFactory, management: ManagementClient, tmp_path: Path
) -> None:
    env = make_env()
    first, second = new_code(), new_code()
    path = write_csv(tmp_path / "two.csv", [(first, "Bộ Y tế", ""), (second, "Bộ Tài chính", "")])
    result = run_agency(env, "import", str(path), "--no-provision")
    assert "2 new connected agencies have no broker objects yet" in result.stdout
    assert management.get_user(first) is None and management.get_user(second) is None

    # `agency add` with the same data provisions one afterwards ...
    added = run_agency(env, "add", first, "--name", "Bộ Y tế")
    assert "password (shown once" in added.stdout
    assert management.get_user(first) is not None
    # ... and importing again without --no-provision provisions those still without a user.
    again = run_agency(env, "import", str(path))
    assert "broker objects created for 1 connected agencies" in again.stdout
    assert f"{second} password (shown once)" in again.stdout
    assert f"{first} password" not in again.stdout
    assert management.get_queue(env.vhost, t.inbox_queue(second)) is not None


def test_a_hundred_thousand_rows_import_quickly_and_each_is_found(
    make_env: EnvFactory, tmp_path: Path
) -> None:
    env = make_env()
    hosts = [f"000.00.00.K{i:02d}" for i in range(50)]
    rows = [(h, f"UBND Tỉnh số {i}", "") for i, h in enumerate(hosts)]
    rows += [
        (
            f"{i // 10000:03d}.{i // 100 % 100:02d}.{i % 100:02d}.A{i % 50:02d}",
            f"Đơn vị số {i}, xã/phường",
            hosts[i % 50],
        )
        for i in range(100_000 - len(hosts))
    ]
    path = write_csv(tmp_path / "100k.csv", rows)

    started = time.perf_counter()
    result = run_agency(env, "import", str(path), "--no-provision")
    elapsed = time.perf_counter() - started
    print(f"\nagency import of 100,000 rows: {elapsed:.2f}s wall ({result.stdout.splitlines()[0]})")
    assert "100000 new" in result.stdout
    assert elapsed < 60

    for code, name, host in random.sample(rows, 5):
        found = show(env, code)
        assert (found["name"], found["host"] or "") == (name, host)
    assert show(env, hosts[7])["hosted_units"] == (100_000 - 50) // 50


def test_a_password_already_in_the_password_dir_is_the_one_set(
    make_env: EnvFactory, tmp_path: Path
) -> None:
    env = make_env()
    code = new_code()
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / f"{code}.secret").write_text("chosen-by-the-operator\n")
    path = write_csv(tmp_path / "one.csv", [(code, "Bộ Giáo dục và Đào tạo", "")])
    result = run_agency(env, "import", str(path), "--password-dir", str(secrets_dir))
    assert "password (shown once)" not in result.stdout

    params = pika.URLParameters(env.amqp_url)
    params.credentials = pika.PlainCredentials(code, "chosen-by-the-operator")
    pika.BlockingConnection(params).close()  # ProbableAuthenticationError if not set
