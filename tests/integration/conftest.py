"""Fixtures of the relay's integration tests: a module's own environment, database, relay."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from relay.config import Settings
from relay.db.engine import make_engine
from tests.conftest import EnvFactory
from tests.relay_support import RelayProcess

#: Quick polling, so a test does not wait seconds for the relay to find a new agency.
FAST_RELAY = {"agency_poll_seconds": 0.2, "batch_wait_ms": 5}


@pytest.fixture(scope="module")
def relay_env(make_env: EnvFactory, request: pytest.FixtureRequest) -> Settings:
    """The module's environment; a module sets ``RELAY_SETTINGS = {...}`` to change more."""
    extra = getattr(request.module, "RELAY_SETTINGS", {})
    return make_env().model_copy(update={**FAST_RELAY, **extra})


@pytest.fixture(scope="module")
def db(relay_env: Settings) -> Iterator[Engine]:
    eng = make_engine(relay_env.database_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def relay(relay_env: Settings) -> Iterator[RelayProcess]:
    with RelayProcess(relay_env) as proc:
        yield proc
