"""``relay setup``: create the database if missing, migrate it, declare the broker topology."""

from __future__ import annotations

import structlog
from sqlalchemy import Engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from relay import secretkey
from relay.broker.management import ManagementClient
from relay.broker.topology import (
    agency_limits,
    agency_permissions,
    declare_agency_queues,
    declare_core,
    grant_agency,
    set_agency_limits,
)
from relay.config import Settings
from relay.db import migrate
from relay.db.engine import make_engine
from relay.db.tables import agencies
from relay.directory import broker_objects
from relay.directory.model import ACTIVE
from relay.errors import ServiceUnavailable
from relay.federation import store as links

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


def migrate_agencies(mgmt: ManagementClient, settings: Settings, states: dict[str, str]) -> None:
    """Bring every connected agency to the current topology, idempotently.

    Each gets its own submit exchange bound to its outbox. Its user, when this hub created it
    (tagged; untagged users of earlier versions whose only rights are on this vhost are adopted),
    gets the current permissions (write only its own exchange; the shared ``lienthong.submit``
    no longer) and the per-agency limits. Users of other hubs are left alone; a missing user is
    named in a warning (``relay.user_missing``), since setup cannot know its password.
    """
    vhost = settings.vhost
    adopted = broker_objects.adopt_untagged(mgmt, vhost, list(states))
    if adopted:
        log.info("relay.users_adopted", vhost=vhost, count=len(adopted))
    users = {u["name"]: u for u in mgmt.list_users()}
    limits = agency_limits(settings)
    # One read of each kind, so a hub of thousands of agencies is only written where it differs.
    granted = mgmt.vhost_permissions(vhost)
    with_topic = mgmt.vhost_topic_permissions(vhost)
    current_limits = mgmt.all_user_limits()
    for code, state in states.items():
        declare_agency_queues(mgmt, vhost, code)
        user = users.get(code)
        if user is None:
            # Only the broker (as a hash) and the agency know its password: say what to run.
            log.warning(
                "relay.user_missing",
                agency=code,
                hint=f"its adapter cannot log in: run `lienthong agency add {code} --name NAME "
                "--password-file FILE` again, with its name in the directory (`lienthong agency "
                f"show {code}`) and the agency's password, or restore the broker's definitions",
            )
            continue
        if not broker_objects.owned_by(user, vhost):
            log.warning("relay.user_not_ours", agency=code, vhost=vhost)
            continue
        if current_limits.get(code) != limits:
            set_agency_limits(mgmt, code, limits)
        wanted = agency_permissions(code, can_write=state == ACTIVE)
        have = {k: granted.get(code, {}).get(k) for k in wanted}
        if have != wanted or code in with_topic:
            grant_agency(mgmt, vhost, code, can_write=state == ACTIVE)


def protect_link_passwords(engine: Engine, settings: Settings) -> None:
    """Encrypt the federation links' passwords stored in plain text (links recorded before
    ``LIENTHONG_SECRET_KEY_FILE`` was set), with that key; idempotent. Without a key they are
    named in a warning. A key that cannot be loaded, or that does not open a stored password,
    is logged as an error, not raised: the links concerned do not start, the rest of the hub
    does (``relay run`` logs ``federation.link_not_started`` for each)."""
    try:
        key = secretkey.key_from_settings(settings)
    except secretkey.SecretKeyError as e:
        log.error("federation.secret_key_unusable", error=str(e))
        return
    try:
        with engine.begin() as conn:
            if key is None:
                plain = links.plain_text_passwords(conn)
                if plain:
                    log.warning(
                        "federation.password_unencrypted",
                        links=plain,
                        hint=f"make a key with `{secretkey.MAKE_KEY}`, set "
                        f"{secretkey.SETTING} and run lienthong relay setup again",
                    )
                return
            done = links.encrypt_plain_passwords(conn, key)
            stored = links.all_links(conn)
    except SQLAlchemyError as e:
        raise ServiceUnavailable(f"PostgreSQL query failed: {e}") from e
    if done:
        log.info("federation.passwords_encrypted", links=done)
    for link in stored:
        try:
            link.password(settings)
        except secretkey.SecretKeyError as e:
            log.error("federation.password_unreadable", link=link.name, error=str(e))


def run_setup(settings: Settings) -> None:
    ensure_database(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        migrate_database(engine)
        protect_link_passwords(engine, settings)
        with ManagementClient(settings.management_url) as mgmt:
            declare_core(mgmt, settings)
            # Re-declare every connected agency's queues, so setup repairs a broker that lost them.
            try:
                with engine.connect() as conn:
                    rows = conn.execute(
                        select(agencies.c.code, agencies.c.state).where(agencies.c.host.is_(None))
                    ).all()
            except SQLAlchemyError as e:
                raise ServiceUnavailable(f"PostgreSQL query failed: {e}") from e
            codes = [row.code for row in rows]
            migrate_agencies(mgmt, settings, {row.code: row.state for row in rows})
        log.info("relay.setup_done", vhost=settings.vhost, agencies=len(codes))
    finally:
        engine.dispose()
