"""Receipts the hub stored but has not yet seen confirmed: ``receipts.publish_pending_since``.

A ``delivery_failed`` receipt is stored in the transaction that fails the delivery and published
after the commit. A relay killed between the two left it stored and never sent. The column marks
such a receipt until the broker has confirmed it; the retry schedule publishes again any receipt
still marked ``LIENTHONG_RECEIPT_REPUBLISH_SECONDS`` after it was marked
(:mod:`relay.retry.outbox`). Existing rows are left unmarked (NULL): nothing says which of them
went out, and none is sent again.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "receipts", sa.Column("publish_pending_since", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_receipts_publish_pending",
        "receipts",
        ["publish_pending_since"],
        postgresql_where=sa.text("publish_pending_since IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_receipts_publish_pending", table_name="receipts")
    op.drop_column("receipts", "publish_pending_since")
