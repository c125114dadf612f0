"""The hub's content-addressed store of large attachments, in chunk rows (issue 17).

``blob_chunks`` holds the bytes of attachments that travel in chunks, keyed by (submitting
agency, SHA-256 of the attachment, offset). The data column is ``STORAGE EXTERNAL``: scanned
documents do not compress, and PostgreSQL would otherwise try (and fail) to compress every
chunk before storing it out of line.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blob_chunks",
        sa.Column("submitted_by", sa.Text(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column(
            "stored_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("submitted_by", "sha256", "offset", name="pk_blob_chunks"),
    )
    op.execute("ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("blob_chunks")
