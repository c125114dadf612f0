"""Federation (issue 16): ``federation_links`` to other hubs, ``federation_peers`` that may
push their units here.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
# After main's head (0005): two heads would stop ``alembic upgrade head``.
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "federation_links",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("agency", sa.Text(), nullable=False),
        sa.Column("amqp_url", sa.Text(), nullable=False),
        sa.Column("password", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_federation_links")),
        sa.UniqueConstraint("agency", name=op.f("uq_federation_links_agency")),
    )
    op.create_table(
        "federation_peers",
        sa.Column("agency", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["agency"], ["agencies.code"], name=op.f("fk_federation_peers_agency_agencies")
        ),
        sa.PrimaryKeyConstraint("agency", name=op.f("pk_federation_peers")),
    )


def downgrade() -> None:
    op.drop_table("federation_peers")
    op.drop_table("federation_links")
