"""Training before live sessions (issue 16, item 5): each organisation's versioned policy, who
acknowledged which version, training completions, practice sessions and the re-training interval.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _real() -> sa.types.TypeEngine[float]:
    return sa.Double().with_variant(sa.REAL(), "sqlite")


def _flag() -> sa.types.TypeEngine[bool]:
    return sa.Boolean().with_variant(sa.INTEGER(), "sqlite")


def _org() -> sa.Column[str]:
    return sa.Column(
        "org_id", sa.Text(), sa.ForeignKey("orgs.org_id", ondelete="CASCADE"), nullable=False
    )


def _user(primary_key: bool = False) -> sa.Column[str]:
    return sa.Column(
        "username",
        sa.Text(),
        sa.ForeignKey("users.username", ondelete="CASCADE"),
        primary_key=primary_key,
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "training_policies",
        sa.Column(
            "org_id",
            sa.Text(),
            sa.ForeignKey("orgs.org_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", _real(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
    )
    op.create_table(
        "policy_acknowledgements",
        _user(primary_key=True),
        _org(),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("acknowledged_at", _real(), nullable=False),
    )
    op.create_table(
        "training_completions",
        sa.Column("completion_id", sa.Text(), primary_key=True),
        _user(),
        _org(),
        sa.Column("completed_at", _real(), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("session_id", sa.Text(), nullable=False, server_default=""),
        sa.Column("steps", sa.Text(), nullable=False, server_default=""),
    )
    op.create_index(
        "training_completions_user", "training_completions", ["username", "completed_at"]
    )
    op.create_table(
        "practice_sessions",
        sa.Column("session_id", sa.Text(), primary_key=True),
        _user(),
        _org(),
        sa.Column("started_at", _real(), nullable=False),
        sa.Column("ended_at", _real()),
        sa.Column("steps", sa.Text(), nullable=False, server_default=""),
        sa.Column("used", _flag(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "training_settings",
        sa.Column(
            "org_id",
            sa.Text(),
            sa.ForeignKey("orgs.org_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("interval_days", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("Tandem's schema only moves forward; restore a backup instead")
