"""Which lines of which audit backlog file were written to the trail (``audit_backlog_lines``).

A line of the data directory's ``audit-backlog.jsonl`` carried a MAC over its number and its
record, which bound it to neither its file nor whether it was written already: a whole earlier
file put back, or one copied from another server's data directory (the same audit key), was
written to the trail again at the next start. Each file now has a random id under every line's
MAC, and each line written is noted here in the transaction that writes its record, so a line
noted already is refused and reported, never written twice (tandem.audit_backlog, docs/audit.md).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    int64: sa.types.TypeEngine[int] = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
    op.create_table(
        "audit_backlog_lines",
        sa.Column("file_id", sa.Text(), nullable=False),
        sa.Column("line", int64, nullable=False, autoincrement=False),
        sa.Column("seq", int64, nullable=False),
        sa.PrimaryKeyConstraint("file_id", "line"),
    )


def downgrade() -> None:
    raise NotImplementedError("Tandem's schema only moves forward; restore a backup instead")
