"""``relay setup``: create the database if missing, migrate it, declare the broker topology."""

from __future__ import annotations

import structlog
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from relay.broker.management import ManagementClient
from relay.broker.topology import declare_agency_queues, declare_core
from relay.config import Settings
from relay.db import migrate
from relay.db.engine import make_engine
from relay.db.tables import agencies
from relay.errors import ServiceUnavailable

log = structlog.get_logger()


def ensure_database(url: str) -> None:
    """Create the database named in ``url`` if it does not exist (needs CREATEDB)."""
    target = make_url(url)
    admin = make_engine(target.set(database="postgres").render_as_string(hide_password=False))
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}
            ).first()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
                log.info("database.created", database=target.database)
    except OperationalError as e:
        raise ServiceUnavailable(
            f"PostgreSQL at {target.render_as_string(hide_password=True)} is unreachable: "
            f"{str(e.orig).strip() if e.orig else e}"
        ) from e
    finally:
        admin.dispose()


def migrate_database(engine: Engine) -> None:
    try:
        migrate.upgrade(engine)
    except OperationalError as e:
        raise ServiceUnavailable(f"PostgreSQL is unreachable: {e.orig}") from e


def run_setup(settings: Settings) -> None:
    ensure_database(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        migrate_database(engine)
        with ManagementClient(settings.management_url) as mgmt:
            declare_core(mgmt, settings)
            # Re-declare every connected agency's queues, so setup repairs a broker that lost them.
            try:
                with engine.connect() as conn:
                    codes = (
                        conn.execute(
                            agencies.select()
                            .with_only_columns(agencies.c.code)
                            .where(agencies.c.host.is_(None))
                        )
                        .scalars()
                        .all()
                    )
            except SQLAlchemyError as e:
                raise ServiceUnavailable(f"PostgreSQL query failed: {e}") from e
            for code in codes:
                declare_agency_queues(mgmt, settings.vhost, code)
        log.info("relay.setup_done", vhost=settings.vhost, agencies=len(codes))
    finally:
        engine.dispose()
