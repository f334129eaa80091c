"""The audit table loses ``audit_at``, its index by time.

Every index of the table is written at every append (on SQLite, a page of the write-ahead log
each at every commit, and the B-tree work before): issue 12 measured each at about 6 µs of
SQLite's CPU an append, on an append the old storage layer did in about 20 µs of SQL. That one
served only ``tandem audit export --since`` (an operator's command; a SIEM follows the trail by
``--after``, a position), which reads the table in one pass in the chain's order instead: no
busy read used it (tests/storage/test_audit_plans.py). Dropping it takes no time to speak of
(on PostgreSQL it waits for the table's open transactions, as any schema change does).

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # IF EXISTS: a database an operator already took it out of is upgraded all the same.
    op.execute("DROP INDEX IF EXISTS audit_at")


def downgrade() -> None:
    raise NotImplementedError("Tandem's schema only moves forward; restore a backup instead")
