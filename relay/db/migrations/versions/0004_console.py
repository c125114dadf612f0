"""The web console: its users, the audit log of operator actions, document headers, and an
index on ``documents.received_at`` for its lists.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _ts(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)


def upgrade() -> None:
    op.create_index("ix_documents_received_at", "documents", ["received_at"])
    op.create_table(
        "console_users",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("agency", sa.Text(), nullable=True),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(
            ["agency"], ["agencies.code"], name="fk_console_users_agency_agencies"
        ),
        sa.PrimaryKeyConstraint("name", name="pk_console_users"),
    )
    op.create_table(
        "console_audit",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        _ts("at"),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("client", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_console_audit"),
    )
    op.create_index("ix_console_audit_at", "console_audit", ["at"])
    op.create_table(
        "console_document_headers",
        sa.Column("document_pk", sa.BigInteger(), nullable=False),
        sa.Column("code_number", sa.Text(), nullable=True),
        sa.Column("code_notation", sa.Text(), nullable=True),
        sa.Column("priority", sa.SmallInteger(), nullable=True),
        sa.Column("promulgation_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["document_pk"],
            ["documents.id"],
            name="fk_console_document_headers_document_pk_documents",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("document_pk", name="pk_console_document_headers"),
    )
    op.create_index(
        "ix_console_document_headers_code_number", "console_document_headers", ["code_number"]
    )


def downgrade() -> None:
    op.drop_table("console_document_headers")
    op.drop_table("console_audit")
    op.drop_table("console_users")
    op.drop_index("ix_documents_received_at", table_name="documents")
