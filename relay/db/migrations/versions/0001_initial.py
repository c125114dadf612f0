"""Initial schema.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

from relay.db.tables import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Before the first release the initial schema is built from the table definitions; it is
    # frozen into explicit operations at release, and later changes get their own revisions.
    metadata.create_all(op.get_bind())


def downgrade() -> None:
    metadata.drop_all(op.get_bind())
