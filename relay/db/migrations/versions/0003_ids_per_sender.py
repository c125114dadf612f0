"""Submissions and statuses are deduplicated per sender, not across the whole hub.

An agency chooses its own ``message_id``; another agency choosing the same one (by accident or
to interfere) must neither be taken for a copy of it nor make it look like one (issue 12 item
4). ``documents.message_id`` is unique per ``submitted_by`` now, and a status event's
``message_id`` per ``actor`` (the status's sender: the agency or a unit it hosts, each known to
one adapter only). Ids already stored keep their meaning: nothing is rewritten.

``bounces`` holds statuses and receipts that came back (dead-lettered from an inbox, or
unroutable because the inbox is missing) with their retry schedule, so that they are retried
like deliveries and what finally fails is reported (issue 12 items 5 and 6).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bounces",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("message_type", sa.Text(), nullable=False),
        sa.Column("route_to", sa.Text(), nullable=False),
        sa.Column("correlation_id", sa.Text(), nullable=True),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.Text(), server_default=sa.text("'retrying'"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounces")),
        sa.UniqueConstraint("message_id", name=op.f("uq_bounces_message_id")),
    )
    op.create_index(
        "ix_bounces_due",
        "bounces",
        ["next_attempt_at"],
        postgresql_where=sa.text("state = 'retrying'"),
    )
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
    op.drop_index("ix_bounces_due", table_name="bounces")
    op.drop_table("bounces")
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
