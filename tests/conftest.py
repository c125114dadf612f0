"""Shared fixtures: real services per DESIGN §7, a vhost and a database of each run's own."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from cryptography.fernet import Fernet
from sqlalchemy import Engine, text

from lienthong import logs
from relay.broker.management import ManagementClient, user_tags
from relay.config import Settings
from relay.db.engine import make_engine
from relay.setup import run_setup
from schemas import topology as t
from tests.services import Services, find_services, unique_name


def pytest_configure(config: pytest.Config) -> None:
    """No relay a test starts serves /metrics on the default 127.0.0.1:9464 (a second one would
    fail to bind it): the settings and every process started from the tests inherit this.
    Tests of the endpoint give a port of their own."""
    os.environ.setdefault("LIENTHONG_METRICS_ADDR", "")


#: Test files that share something of fixed name outside the per-test vhosts and databases:
#: under pytest-xdist (``make test`` runs two workers) each group runs on one worker, one file
#: after another. Every other file runs whole on one worker (its module fixtures once), which is
#: enough for a file that starts services on ports only it uses (TLS, the metrics test's
#: PostgreSQL cluster, the federation link proxies).
SHARED = {
    # The nodes chaos5 (started once per process) and chaos6, the ports of tests/chaos/ports.py.
    "chaos": ("tests/chaos/",),
    # The demo's vhost, database and RabbitMQ users.
    "demo": (
        "tests/e2e/test_demo.py",
        "tests/e2e/test_ops_first_run.py",
        "tests/integration/test_demo_users.py",
    ),
    # The PostgreSQL cluster ``trustrelay`` on port 5461.
    "trustrelay": (
        "tests/integration/test_relay_database_outage.py",
        "tests/integration/test_relay_postgres_outage.py",
    ),
}


def xdist_scope(nodeid: str) -> str:
    """The scope of a test under pytest-xdist: its SHARED group, or else its file."""
    path = nodeid.split("::")[0]
    return next((g for g, paths in SHARED.items() if path.startswith(paths)), path)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: no error without it
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Whole files to each worker, each SHARED group to one (xdist's own ``loadgroup`` is of no
    help here: with pytest 9.2 it no longer sees the groups it writes into node ids)."""
    from xdist.scheduler import LoadScopeScheduling

    class ByFile(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_scope(nodeid)

    return ByFile(config, log)


@pytest.fixture(autouse=True)
def _structlog_per_test(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A command run in-process (``CliRunner``) configures structlog for the whole process: a
    level filter, and loggers cached on first use that ``structlog.testing.capture_logs`` can no
    longer reach. Each test runs without that cache and ends with structlog's defaults back."""
    monkeypatch.setattr(logs, "CACHE_LOGGERS", False)
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    with find_services() as found:
        yield found


@pytest.fixture(scope="session")
def management(services: Services) -> Iterator[ManagementClient]:
    with ManagementClient(services.management_url) as client:
        yield client


EnvFactory = Callable[[], Settings]


@pytest.fixture(scope="session")
def secret_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A secret key (LIENTHONG_SECRET_KEY_FILE) for every environment of the run: federation
    links are stored encrypted, as ``federation add`` requires."""
    path = tmp_path_factory.mktemp("secret") / "secret.key"
    path.write_bytes(Fernet.generate_key() + b"\n")
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def _environments(
    services: Services, management: ManagementClient, secret_key_file: Path
) -> Iterator[EnvFactory]:
    """A factory of fresh, set-up environments (own vhost + own database), removed on exit.

    Every quorum queue holds a few file handles in RabbitMQ, and a broker started with the
    usual ``ulimit -n 1024`` stalls new connections once they run out, so environments are
    removed as soon as the tests that made them are done, not at the end of the run.
    """
    created: list[tuple[str, str]] = []
    key = secret_key_file

    def factory(**overrides: object) -> Settings:
        name = unique_name("lienthong_test")
        vhost = name.replace("_", "-")
        settings = Settings(
            amqp_url=services.amqp_url_for(vhost),
            database_url=services.database_url_for(name),
            management_url=services.management_url,
            # No /metrics endpoint unless a test asks: parallel runs would fight over one port.
            # Federation links' passwords encrypted with the run's key (relay/secretkey.py).
            **{"metrics_addr": "", "secret_key_file": str(key), **overrides},  # type: ignore[arg-type]
        )
        created.append((vhost, name))
        run_setup(settings)
        return settings

    try:
        yield factory
    finally:
        admin = make_engine(services.database_url_for("postgres"))
        try:
            with admin.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                for vhost, database in created:
                    management.delete_vhost(vhost)
                    # Users are broker-wide: deleting the vhost leaves them behind. Every agency
                    # user a hub provisions carries the hub's tag, so the run's users go too.
                    for user in management.list_users():
                        if t.hub_tag(vhost) in user_tags(user):
                            management.delete_user(user["name"])
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        finally:
            admin.dispose()


@pytest.fixture(scope="module")
def make_env(
    services: Services, management: ManagementClient, secret_key_file: Path
) -> Iterator[EnvFactory]:
    """Fresh environments for one test module, removed when the module is done."""
    with _environments(services, management, secret_key_file) as factory:
        yield factory


@pytest.fixture(scope="session")
def env(
    services: Services, management: ManagementClient, secret_key_file: Path
) -> Iterator[Settings]:
    """The run's shared environment: tests in it use random agency codes to stay apart."""
    with _environments(services, management, secret_key_file) as factory:
        yield factory()


@pytest.fixture(scope="session")
def engine(env: Settings) -> Iterator[Engine]:
    eng = make_engine(env.database_url)
    yield eng
    eng.dispose()
