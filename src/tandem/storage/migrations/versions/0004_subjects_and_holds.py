"""Data subject requests and legal holds (issue 16): which customer (``sub``) each session
served, under a pseudonym the audit trail uses; holds on recordings and subjects.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _real() -> sa.types.TypeEngine[float]:
    return sa.Double().with_variant(sa.REAL(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "subject_sessions",
        sa.Column("session_id", sa.Text(), primary_key=True),
        sa.Column(
            "org_id",
            sa.Text(),
            sa.ForeignKey("orgs.org_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("pseudonym", sa.Text(), nullable=False),
    )
    op.create_index("subject_sessions_org_subject", "subject_sessions", ["org_id", "subject"])
    op.create_table(
        "legal_holds",
        sa.Column(
            "org_id",
            sa.Text(),
            sa.ForeignKey("orgs.org_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("kind", sa.Text(), primary_key=True),
        sa.Column("target", sa.Text(), primary_key=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_by", sa.Text(), nullable=False),
        sa.Column("placed_at", _real(), nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("Tandem's schema only moves forward; restore a backup instead")
