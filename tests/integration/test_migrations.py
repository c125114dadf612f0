"""The migrations build exactly the schema that ``relay/db/tables.py`` describes, and move the
rows they must."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text

from relay.db import migrate
from relay.db.engine import make_engine
from relay.db.tables import metadata
from tests.services import Services, unique_name

pytestmark = pytest.mark.integration


def test_the_migrated_database_matches_the_table_definitions(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == [], f"tables.py and the migrations differ; add a revision for: {diff}"


def test_migrating_twice_changes_nothing(engine: Engine) -> None:
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


@pytest.fixture
def empty_engine(services: Services) -> Iterator[Engine]:
    name = unique_name("lienthong_test_migrate")
    admin = make_engine(services.database_url_for("postgres"))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(services.database_url_for(name))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_0009_marks_the_agencies_of_present_and_removed_links(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine, "0008")
    rows = [  # code, name, host, state
        ("000.00.00.H26", "UBND tỉnh", None, "active"),  # a link's, renamed by the operator
        ("000.00.00.H27", "Federation link old", None, "suspended"),  # a removed link's
        ("000.00.00.H28", "Sở Tư pháp", None, "suspended"),  # an ordinary suspended agency
        ("000.00.00.H29", "Federation link x", None, "active"),  # not left by `remove`
        ("000.00.00.H30", "Federation link y", "000.00.00.H28", "suspended"),  # hosted
    ]
    with empty_engine.begin() as conn:
        for code, name, host, state in rows:
            conn.execute(
                text(
                    "INSERT INTO agencies (code, name, host, state, strict_code)"
                    " VALUES (:code, :name, :host, :state, true)"
                ),
                {"code": code, "name": name, "host": host, "state": state},
            )
        conn.execute(
            text(
                "INSERT INTO federation_links (name, agency, amqp_url, password)"
                " VALUES ('national', '000.00.00.H26', 'amqp://h@n/x', 'fernet:x')"
            )
        )
    migrate.upgrade(empty_engine)
    with empty_engine.connect() as conn:
        marked = {
            code: link
            for code, link in conn.execute(text("SELECT code, federation_link FROM agencies"))
        }
    assert marked == {
        "000.00.00.H26": "national",
        "000.00.00.H27": "old",
        "000.00.00.H28": None,
        "000.00.00.H29": None,
        "000.00.00.H30": None,
    }
