"""A temporary password expires: each account keeps when its password was set
(``password_set_at``) and who chose a temporary one (``password_set_by``).

A temporary password (an admin's new account or reset, the operator's ``tandem user passwd``)
signs in only ``temporary_password_seconds`` (72 hours) after it was set; an account made and
never claimed no longer keeps a usable password for ever (tandem.auth.sign_in, docs/security.md).
The owner is shown whose temporary password a change replaced.

The temporary passwords already there were set at a time nobody kept: they count from the
upgrade, so that each still has its full lifetime (an admin's reset of yesterday is not refused
at once); the passwords owners chose keep no time (they do not expire) and no chooser.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    real: sa.types.TypeEngine[float] = sa.Double().with_variant(sa.REAL(), "sqlite")
    flag = sa.Boolean().with_variant(sa.INTEGER(), "sqlite")
    # Taken as they are when there already (a schema rewound to an earlier revision and
    # upgraded again, as 0017 takes its indexes).
    there = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("users")}
    if "password_set_at" not in there:
        op.add_column("users", sa.Column("password_set_at", real))
    if "password_set_by" not in there:
        op.add_column("users", sa.Column("password_set_by", sa.Text()))
    users = sa.table(
        "users",
        sa.column("password_change_required", flag),
        sa.column("password_set_at", real),
    )
    op.execute(
        users.update()
        .where(users.c.password_change_required == sa.true(), users.c.password_set_at.is_(None))
        .values(password_set_at=time.time())
    )


def downgrade() -> None:
    raise NotImplementedError("Tandem's schema only moves forward; restore a backup instead")
