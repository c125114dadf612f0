"""A federation link's agency stays marked as one: ``agencies.federation_link``.

``lienthong federation remove`` deletes the link's row and leaves its agency suspended here (what
waits in its inbox stays visible and resendable). ``federation add`` must then tell that agency
apart from an ordinary agency of the directory with the same code: it takes over the first and
refuses the second. The column names the link that last used the agency and is kept when the
link is removed. Backfilled for the links there are, and for the agencies of links removed
before this revision: suspended, connected, not a link's now, and still bearing the name
``federation add`` gave them (``Federation link <name>``; an operator would have had to give an
ordinary agency that very name, and still run ``federation add`` with its code, for it to be
taken over).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("agencies", sa.Column("federation_link", sa.Text(), nullable=True))
    op.execute(
        "UPDATE agencies a SET federation_link = l.name FROM federation_links l"
        " WHERE a.code = l.agency"
    )
    op.execute(
        "UPDATE agencies SET federation_link = substr(name, length('Federation link ') + 1)"
        " WHERE federation_link IS NULL AND host IS NULL AND state = 'suspended'"
        " AND name ~ '^Federation link [a-z0-9][a-z0-9_-]{0,31}$'"
        " AND code NOT IN (SELECT agency FROM federation_links)"
    )


def downgrade() -> None:
    op.drop_column("agencies", "federation_link")
