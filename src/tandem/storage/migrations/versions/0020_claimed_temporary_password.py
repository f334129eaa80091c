"""The password a claim replaced stays refused (``claimed_password_hash``), and every password
there counts from the upgrade (``password_set_at``).

Whoever knew a temporary password (its chooser, anyone it was shown to) claimed it before the
owner and then, in the owner's name, changed the password back to it: the owner signed in with
it as told, was never asked to choose its own (it was no longer temporary), and the password
stayed one others knew. The temporary password a claim replaced is kept (its hash) and refused
as a new password (tandem.auth.change_password).

Revision 0019 gave the temporary passwords there the upgrade's time and left the owners' own
with none. During a rolling upgrade a server still running the version before 0019 resets a
password writing no time, and the upgraded servers counted it from the account's creation:
for an account made long ago, expired at once. Every password still without a time gets the
upgrade's (the owners' own do not expire; a reset such a server makes counts from it).

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    real: sa.types.TypeEngine[float] = sa.Double().with_variant(sa.REAL(), "sqlite")
    # Taken as it is when there already (a schema rewound to an earlier revision and upgraded
    # again, as 0019 takes its columns).
    there = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("users")}
    if "claimed_password_hash" not in there:
        op.add_column("users", sa.Column("claimed_password_hash", sa.Text()))
    users = sa.table("users", sa.column("password_set_at", real))
    op.execute(
        users.update().where(users.c.password_set_at.is_(None)).values(password_set_at=time.time())
    )


def downgrade() -> None:
    raise NotImplementedError("Tandem's schema only moves forward; restore a backup instead")
