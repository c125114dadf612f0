"""Environments for the fault suite: a fresh vhost and database, on the shared services or on
services of the suite's own, removed afterwards (with the agency users made in them)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import text

from relay.broker.management import ManagementClient
from relay.config import Settings
from relay.db.engine import make_engine
from relay.setup import run_setup
from tests.services import Services, unique_name

#: Relay tuning for the suite: it finds new agencies and stale deliveries quickly.
RELAY_TUNING: dict[str, object] = {"agency_poll_seconds": 0.5, "pending_sweep_seconds": 2.0}


EnvMaker = Callable[..., Settings]


@contextlib.contextmanager
def environment(
    services: Services,
    *,
    amqp_base: str | None = None,
    management_url: str | None = None,
    database_url: str | None = None,
) -> Iterator[EnvMaker]:
    """Fresh environments (own vhost, own database) on the shared services unless told
    otherwise; the vhost, the database and the agency users are removed on exit."""
    made: list[Settings] = []

    def make(**overrides: object) -> Settings:
        name = unique_name("lienthong_chaos")
        vhost = name.replace("_", "-")
        amqp = (
            services.amqp_url_for(vhost)
            if amqp_base is None
            else Services(amqp_base, "", "").amqp_url_for(vhost)
        )
        db_url = database_url or services.database_url
        db = Services("", db_url, "").database_url_for(name)
        settings = Settings(
            amqp_url=amqp,
            database_url=db,
            management_url=management_url or services.management_url,
            **{**RELAY_TUNING, **overrides},  # type: ignore[arg-type]
        )
        made.append(settings)
        run_setup(settings)
        return settings

    try:
        yield make
    finally:
        for settings in made:
            _remove(settings)


def _remove(settings: Settings) -> None:
    """Best effort: a private service may already be gone with everything on it."""
    with contextlib.suppress(Exception):
        engine = make_engine(settings.database_url)
        try:
            with engine.connect() as conn:
                codes = list(conn.execute(text("SELECT code FROM agencies")).scalars())
        finally:
            engine.dispose()
        with ManagementClient(settings.management_url, timeout=20) as mgmt:
            for code in codes:
                with contextlib.suppress(Exception):
                    mgmt.delete_user(code)
            mgmt.delete_vhost(settings.vhost)
    with contextlib.suppress(Exception):
        database = settings.database_url.rsplit("/", 1)[1]
        admin = make_engine(settings.database_url.rsplit("/", 1)[0] + "/postgres")
        try:
            with admin.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        finally:
            admin.dispose()


def need(available: bool, what: str) -> None:
    """Skip when a service the suite starts is not installed (fail under ``CI=true``)."""
    if available:
        return
    reason = f"{what} is not installed here; the fault suite starts its own"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)
