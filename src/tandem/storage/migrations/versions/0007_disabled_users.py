"""Accounts can be disabled (issue 15, item 8): ``users.disabled``, false for every existing
account.

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
    flag: sa.types.TypeEngine[bool] = sa.Boolean().with_variant(sa.INTEGER(), "sqlite")
    # A plain ADD COLUMN, never a batch copy of the table (see 0003: dropping the old users
    # table would take its team memberships and recovery codes along, ON DELETE CASCADE).
    op.add_column("users", sa.Column("disabled", flag, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    raise NotImplementedError("Tandem's schema only moves forward; restore a backup instead")
