"""Operations (issue 18): Decree 30 due times on deliveries, retention of payloads, checkpoints.

- ``deliveries.ack_due_at`` / ``register_due_at``: when the recipient's 01 (Đã đến) and 03 (Đã
  tiếp nhận) are due (``relay/deadlines``); filled by the relay's deadline job, so the hot path
  does not compute calendars. ``urgent`` records which rule gave them. ``overdue_notified_at``:
  the one ``overdue`` receipt per delivery was sent.
- ``documents.priority``: edXML ``OtherInfo/Priority`` (1-4 urgent), written at intake.
- ``documents.code_number`` / ``code_notation`` / ``promulgation_date``: số, ký hiệu and date,
  for the duplicate check of Phụ lục VI III.1.h (``relay/duplicates.py``).
- ``documents.payload_removed_at``: the payload was removed by retention (``relay/retention``);
  the row (metadata) and its timeline stay.
- ``operation_checkpoints``: where a restartable batch job (retention) got to.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: Deliveries whose 01 or 03 may still be awaited (DESIGN §2 states); the overdue index covers
#: only these, so it stays small however many deliveries are done.
AWAITING = "state IN ('pending', 'queued', 'retrying', 'failed', 'delivered')"


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.add_column("deliveries", sa.Column("ack_due_at", ts, nullable=True))
    op.add_column("deliveries", sa.Column("register_due_at", ts, nullable=True))
    op.add_column("deliveries", sa.Column("urgent", sa.Boolean(), nullable=True))
    op.add_column("deliveries", sa.Column("overdue_notified_at", ts, nullable=True))
    op.create_index(
        "ix_deliveries_undated",
        "deliveries",
        ["id"],
        postgresql_where=sa.text("ack_due_at IS NULL"),
    )
    op.create_index(
        "ix_deliveries_awaiting",
        "deliveries",
        ["ack_due_at"],
        postgresql_where=sa.text(AWAITING),
    )
    op.add_column("documents", sa.Column("priority", sa.SmallInteger(), nullable=True))
    op.add_column("documents", sa.Column("code_number", sa.Text(), nullable=True))
    op.add_column("documents", sa.Column("code_notation", sa.Text(), nullable=True))
    op.add_column("documents", sa.Column("promulgation_date", sa.Date(), nullable=True))
    op.create_index(
        "ix_documents_registration",
        "documents",
        ["sender", "code_number", "code_notation", "promulgation_date"],
        postgresql_where=sa.text("code_number IS NOT NULL"),
    )
    op.add_column("documents", sa.Column("payload_removed_at", ts, nullable=True))
    op.create_table(
        "operation_checkpoints",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", ts, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_operation_checkpoints")),
    )


def downgrade() -> None:
    op.drop_table("operation_checkpoints")
    op.drop_column("documents", "payload_removed_at")
    op.drop_index("ix_documents_registration", table_name="documents")
    for column in ("promulgation_date", "code_notation", "code_number", "priority"):
        op.drop_column("documents", column)
    op.drop_index("ix_deliveries_awaiting", table_name="deliveries")
    op.drop_index("ix_deliveries_undated", table_name="deliveries")
    for column in ("overdue_notified_at", "urgent", "register_due_at", "ack_due_at"):
        op.drop_column("deliveries", column)
