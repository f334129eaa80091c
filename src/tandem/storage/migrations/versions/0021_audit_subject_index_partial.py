"""``audit_org_subject`` holds only the records that name a subject (``WHERE subject <> ''``).

Most records name none (every sign-in), and each was written into the index all the same: one
index more for every append than it needs (issue 12: SQLite's audit append measured 1.22-1.31
times the old layer's, most of the gap the two account-activity indexes of revision 0017). The
reads of the index (an account's activity, the records concerning a data subject) ask for
``subject <> ''`` in so many words, as SQLite and PostgreSQL need to use a partial index.

Rebuilding the index blocks every write to the audit table until it is built (on PostgreSQL, a
few seconds a million records). An operator with a large trail builds it beforehand, without
blocking, under another name and swaps it in (docs/operations.md); an ``audit_org_subject``
already partial is taken as it is.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def _partial(bind: sa.Connection) -> bool | None:
    """Whether ``audit_org_subject`` is already partial (None: there is none). On PostgreSQL an
    index a failed ``CREATE INDEX CONCURRENTLY`` left behind (``INVALID``, never read) is not:
    it is built again."""
    if bind.dialect.name == "sqlite":
        row = bind.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :name"),
            {"name": "audit_org_subject"},
        ).first()
        return None if row is None else " WHERE " in str(row[0]).upper()
    row = bind.execute(
        sa.text(
            "SELECT i.indpred IS NOT NULL AND i.indisvalid FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname = :name AND c.relnamespace = current_schema()::regnamespace"
        ),
        {"name": "audit_org_subject"},
    ).first()
    return None if row is None else bool(row[0])


def upgrade() -> None:
    partial = _partial(op.get_bind())
    if partial:
        return
    if partial is not None:
        op.drop_index("audit_org_subject", table_name="audit")
    named = sa.text("subject <> ''")
    op.create_index(
        "audit_org_subject",
        "audit",
        ["org", "subject", "at"],
        postgresql_where=named,
        sqlite_where=named,
    )


def downgrade() -> None:
    raise NotImplementedError("Tandem's schema only moves forward; restore a backup instead")
