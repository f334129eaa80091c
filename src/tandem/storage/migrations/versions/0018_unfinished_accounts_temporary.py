"""Accounts not set up yet get a temporary password: every account without a second factor of
its own (no authenticator, not made ``--no-mfa``) must choose a new password at its next
password sign-in.

Since this version an account an admin (or the operator) creates is its owner's: the password
the creator typed is temporary and the owner sets up the authenticator after choosing its own
(tandem.directory.Directory.add_user, docs/security.md). Accounts an admin made before it kept
the admin's password and waited for whoever signed in first with it to set up the second
factor: the admin could still do that after the upgrade, and own the account for good. Their
password is now temporary as a new account's is: the admin's password reaches only the form
that chooses another, and the authenticator is set up after it. An account whose owner already
chose a password but has no authenticator (never set up, or removed by an admin's reset)
chooses one more; accounts with an authenticator and ``--no-mfa`` ones are left as they are.
Sign-ins through the organisation's identity provider are not concerned (they need no password).

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    flag = sa.Boolean().with_variant(sa.INTEGER(), "sqlite")
    users = sa.table(
        "users",
        sa.column("totp_secret", sa.Text()),
        sa.column("mfa_exempt", flag),
        sa.column("password_change_required", flag),
    )
    op.execute(
        users.update()
        .where(users.c.totp_secret.is_(None), users.c.mfa_exempt == sa.false())
        .values(password_change_required=sa.true())
    )


def downgrade() -> None:
    raise NotImplementedError("Tandem's schema only moves forward; restore a backup instead")
