"""The migrations build exactly the schema that ``relay/db/tables.py`` describes."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from relay.db import migrate
from relay.db.tables import metadata

pytestmark = pytest.mark.integration


def test_the_migrated_database_matches_the_table_definitions(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == [], f"tables.py and the migrations differ; add a revision for: {diff}"


def test_migrating_twice_changes_nothing(engine: Engine) -> None:
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
