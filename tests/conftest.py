"""Shared fixtures: real services per DESIGN §7, a vhost and a database of each run's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, text

from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.db.engine import make_engine
from relay.setup import run_setup
from tests.services import Services, find_services, unique_name


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
def make_env(services: Services, management: ManagementClient) -> Iterator[EnvFactory]:
    """Build a fresh, set-up environment (own vhost + own database); all removed at the end."""
    created: list[tuple[str, str]] = []

    def factory(**overrides: object) -> Settings:
        name = unique_name("lienthong_test")
        vhost = name.replace("_", "-")
        settings = Settings(
            amqp_url=services.amqp_url_for(vhost),
            database_url=services.database_url_for(name),
            management_url=services.management_url,
            **overrides,  # type: ignore[arg-type]
        )
        created.append((vhost, name))
        run_setup(settings)
        return settings

    yield factory

    admin = make_engine(services.database_url_for("postgres"))
    try:
        with admin.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            for vhost, database in created:
                management.delete_vhost(vhost)
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def env(make_env: EnvFactory) -> Settings:
    """The run's shared environment: tests in it use random agency codes to stay apart."""
    return make_env()


@pytest.fixture(scope="session")
def engine(env: Settings) -> Iterator[Engine]:
    eng = make_engine(env.database_url)
    yield eng
    eng.dispose()
