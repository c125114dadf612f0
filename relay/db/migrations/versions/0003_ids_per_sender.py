"""Submissions and statuses are deduplicated per sender, not across the whole hub.

An agency chooses its own ``message_id``; another agency choosing the same one (by accident or
to interfere) must neither be taken for a copy of it nor make it look like one (issue 12 item
4). ``documents.message_id`` is unique per ``submitted_by`` now, and a status event's
``message_id`` per ``actor`` (the status's sender: the agency or a unit it hosts, each known to
one adapter only). Ids already stored keep their meaning: nothing is rewritten.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("uq_documents_message_id", "documents", type_="unique")
    op.create_unique_constraint(
        "uq_documents_submitted_by_message_id", "documents", ["submitted_by", "message_id"]
    )
    op.create_index("ix_documents_message_id", "documents", ["message_id"])
    op.drop_index("uq_events_message_id", table_name="events")
    op.create_index(
        "uq_events_actor_message_id",
        "events",
        ["actor", "message_id"],
        unique=True,
        postgresql_where=sa.text("message_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_events_actor_message_id", table_name="events")
    op.create_index(
        "uq_events_message_id",
        "events",
        ["message_id"],
        unique=True,
        postgresql_where=sa.text("message_id IS NOT NULL"),
    )
    op.drop_index("ix_documents_message_id", table_name="documents")
    op.drop_constraint("uq_documents_submitted_by_message_id", "documents", type_="unique")
    op.create_unique_constraint("uq_documents_message_id", "documents", ["message_id"])
