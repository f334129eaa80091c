"""Issue 14 hardening: identity provider accounts are bound by an admin as (issuer, subject)
pairs; an admin's password reset makes the next sign-in choose a new password; a site's origin
is verified (proved by its organisation or approved by the operator) before its pages start
sessions.

``users.oidc_subject`` held a bare subject, bound on first sign-in to whichever account the
provider's ``preferred_username`` named (issue 14: an admin's own provider could take over any
account of the organisation). Those bindings are not trusted and are cleared: an admin binds
each account again (docs/administration.md).

Sites that exist already were registered under the old rules and stay verified; new ones an
organisation's admin registers start unverified.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    flag = sa.Boolean().with_variant(sa.INTEGER(), "sqlite")
    # A plain ADD COLUMN (never a batch copy of the table: dropping the old users table would
    # take its team memberships and recovery codes along, ON DELETE CASCADE).
    op.add_column(
        "users",
        sa.Column("password_change_required", flag, nullable=False, server_default=sa.false()),
    )
    op.add_column("sites", sa.Column("verified", flag, nullable=False, server_default=sa.true()))
    # Bindings of the new kind are JSON arrays [issuer, subject]; older ones are bare subjects.
    op.execute(sa.text("UPDATE users SET oidc_subject = NULL WHERE oidc_subject NOT LIKE '[%'"))


def downgrade() -> None:
    raise NotImplementedError("Tandem's schema only moves forward; restore a backup instead")
