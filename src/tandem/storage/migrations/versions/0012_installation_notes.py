"""What a server noticed about the installation, shared by every server on the database: a
reverse proxy's header seen while no public origin was set was noted in each server's own data
directory, so on a cluster the compliance check of a server that saw none still passed
(tandem.config.PROXY_NOTE).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    real: sa.types.TypeEngine[float] = sa.Double().with_variant(sa.REAL(), "sqlite")
    op.create_table(
        "installation_notes",
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("noted_at", real, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("installation_notes")
