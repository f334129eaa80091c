"""Events with no signed-in actor are counted per interval (issue 14): the ``audit_counts``
table, outside the hash chain, purged past its retention.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    real: sa.types.TypeEngine[float] = sa.Double().with_variant(sa.REAL(), "sqlite")
    int64: sa.types.TypeEngine[int] = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
    op.create_table(
        "audit_counts",
        sa.Column("bucket", real, nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("org", sa.Text(), nullable=False),
        sa.Column("node", sa.Text(), nullable=False),
        sa.Column("count", int64, nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", "action", "org", "node"),
    )


def downgrade() -> None:
    op.drop_table("audit_counts")
