"""Server processes register themselves with a heartbeat (crash recovery, tandem.processes);
running recordings are indexed for its sweep.

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


def upgrade() -> None:
    real: sa.types.TypeEngine[float] = sa.Double().with_variant(sa.REAL(), "sqlite")
    op.create_table(
        "processes",
        sa.Column("node", sa.Text(), primary_key=True),
        sa.Column("identity", sa.Text(), nullable=False),
        sa.Column("started_at", real, nullable=False),
        sa.Column("heartbeat_at", real, nullable=False),
    )
    # Crash recovery looks through running recordings every heartbeat.
    op.create_index(
        "recordings_running",
        "recordings",
        ["session_id"],
        postgresql_where=sa.text("ended_at IS NULL"),
        sqlite_where=sa.text("ended_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("recordings_running", table_name="recordings")
    op.drop_table("processes")
