"""Each audit record's position in its organisation's trail (``audit.org_seq``): the chain's
one numbering, which an organisation's auditors read, told them how many records every other
organisation wrote between theirs, and when (tandem.audit.AuditRecord.org_seq, docs/audit.md).

The records already there are numbered here, per organisation in the order of the chain, as
the chain decides (``tandem audit verify`` checks each position against it). The rows are
append-only: the guard against UPDATE is lifted for that one statement, in the migration's
transaction, and put back. The position is unique per organisation, which also replaces the
index on (org, seq): an organisation's records are now read by position.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# UPDATE ... FROM: PostgreSQL, and SQLite from 3.33 (2020). One pass over the trail, however
# long, where a count per record would read each organisation's records once per record.
_NUMBER = (
    "UPDATE audit SET org_seq = numbered.position FROM ("
    "SELECT seq, row_number() OVER (PARTITION BY org ORDER BY seq) AS position FROM audit"
    ") AS numbered WHERE audit.seq = numbered.seq"
)


def upgrade() -> None:
    int64: sa.types.TypeEngine[int] = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
    op.add_column("audit", sa.Column("org_seq", int64, nullable=False, server_default="0"))
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER audit_no_update")
        op.execute(_NUMBER)
        op.execute(
            "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
            " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
        )
    else:
        op.execute("ALTER TABLE audit DISABLE TRIGGER audit_append_only")
        op.execute(_NUMBER)
        op.execute("ALTER TABLE audit ENABLE TRIGGER audit_append_only")
    op.create_index("audit_org_position", "audit", ["org", "org_seq"], unique=True)
    op.drop_index("audit_org_seq", table_name="audit")


def downgrade() -> None:
    raise NotImplementedError("Tandem's schema only moves forward; restore a backup instead")
