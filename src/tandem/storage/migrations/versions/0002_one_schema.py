"""One schema for both databases: recovery codes in their own table; the same indexes on both,
on every column that lookups and the periodic purge filter on.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# (name, table, columns, partial-index condition or None); IF NOT EXISTS: PostgreSQL had most.
INDEXES = (
    ("logins_username", "logins", ["username"], None),
    ("logins_expires_at", "logins", ["expires_at"], None),
    ("join_codes_session_id", "join_codes", ["session_id"], None),
    ("join_codes_expires_at", "join_codes", ["expires_at"], None),
    ("sessions_ended_at", "sessions", ["ended_at"], "ended_at IS NOT NULL"),
    ("sessions_live", "sessions", ["org_id", "created_at"], "ended_at IS NULL"),
    ("audit_org_seq", "audit", ["org", "seq"], None),
    ("team_members_username", "team_members", ["username"], None),
    ("oidc_pending_expires_at", "oidc_pending", ["expires_at"], None),
    ("recordings_ended_at", "recordings", ["ended_at"], "ended_at IS NOT NULL"),
    ("used_once_expires", "used_once", ["expires_at"], None),
    ("backoff_updated_at", "backoff", ["updated_at"], None),
)


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "recovery_codes",
        sa.Column(
            "username",
            sa.Text(),
            sa.ForeignKey("users.username", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("digest", sa.Text(), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
    )
    rows = bind.exec_driver_sql("SELECT username, recovery_codes FROM users").fetchall()
    codes = []
    for username, stored in rows:
        digests = json.loads(stored) if isinstance(stored, str) else stored
        for position, digest in enumerate(dict.fromkeys(digests)):
            codes.append({"username": username, "digest": digest, "position": position})
    if codes:
        bind.execute(
            sa.text(
                "INSERT INTO recovery_codes (username, digest, position)"
                " VALUES (:username, :digest, :position)"
            ),
            codes,
        )
    op.execute("ALTER TABLE users DROP COLUMN recovery_codes")
    for name, table, columns, where in INDEXES:
        condition: dict[str, Any] = {}
        if where is not None:
            condition[f"{bind.dialect.name}_where"] = sa.text(where)
        op.create_index(name, table, columns, if_not_exists=True, **condition)


def downgrade() -> None:
    raise NotImplementedError("Tandem's schema only moves forward; restore a backup instead")
