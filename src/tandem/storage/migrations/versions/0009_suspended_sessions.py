"""Sessions handed over to the next process by a stopping server (issue 13: a SIGTERM restart
lets both sides reconnect to the next process; tandem.hub).

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
    real: sa.types.TypeEngine[float] = sa.Double().with_variant(sa.REAL(), "sqlite")
    count: sa.types.TypeEngine[int] = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
    op.create_table(
        "suspended_sessions",
        sa.Column("session_id", sa.Text(), primary_key=True),
        sa.Column(
            "org_id",
            sa.Text(),
            sa.ForeignKey("orgs.org_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("site_id", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("agent", sa.Text()),
        sa.Column("agent_username", sa.Text(), nullable=False),
        sa.Column("agent_login", sa.Text(), nullable=False),
        sa.Column("resume_digest", sa.Text(), nullable=False),
        sa.Column("agent_resume_digest", sa.Text(), nullable=False),
        sa.Column("created_at", real, nullable=False),
        sa.Column("code_expires_at", real, nullable=False),
        sa.Column("last_activity", real, nullable=False),
        sa.Column("suspended_at", real, nullable=False),
        sa.Column("expires_at", real, nullable=False),
        sa.Column("handshakes_from_customer", count, nullable=False),
        sa.Column("handshakes_from_agent", count, nullable=False),
        sa.Column("team_policies", sa.Text(), nullable=False),
    )
    op.create_index("suspended_sessions_expires_at", "suspended_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("suspended_sessions_expires_at", table_name="suspended_sessions")
    op.drop_table("suspended_sessions")
