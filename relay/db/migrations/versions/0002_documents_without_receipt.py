"""Documents no longer keep a second copy of their receipt; stored bodies compress with lz4.

- Every accepted document's receipt has been stored in ``receipts`` (by its deterministic
  ``receipt_id``) since 0001, and a duplicate submission is now answered from there, so the
  copy in ``documents.receipt`` was written for every document and never needed.
- ``documents.payload`` and ``rejections.body`` hold whole submissions, attachments included
  (a scanned PDF is megabytes): PostgreSQL's default pglz compression of such a value took
  twice as long as writing it. lz4 (PostgreSQL 14+, when built with it; Debian's is) is much
  faster. Where it is not available the columns keep the default, with a notice.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_LZ4 = """
DO $$
BEGIN
    ALTER TABLE documents ALTER COLUMN payload SET COMPRESSION lz4;
    ALTER TABLE rejections ALTER COLUMN body SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    RAISE NOTICE 'lz4 compression is not available; stored bodies keep the default';
END
$$
"""


def upgrade() -> None:
    op.drop_column("documents", "receipt")
    op.execute(_LZ4)


def downgrade() -> None:
    op.add_column(
        "documents",
        sa.Column("receipt", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.execute(
        "UPDATE documents d SET receipt = r.body FROM receipts r"
        " WHERE r.in_reply_to = d.message_id AND r.kind = 'accepted'"
    )
    op.execute(_LZ4.replace("lz4;", "default;"))
