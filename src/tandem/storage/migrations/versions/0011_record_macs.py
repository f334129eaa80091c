"""Every audit record carries a MAC with (a subkey of) the audit key, so that records added or
rewritten after the last anchor by someone with write access to the database are caught
(tandem.audit, docs/audit.md): ``audit.mac``, and ``audit_anchors.macs_from``, the record from
which every record carries one (under the anchor's own MAC).

The records and anchors already there are not touched (they are append-only, and the migration
has no key): their ``mac`` is NULL, their ``macs_from`` 0. The first record the upgraded version
writes is anchored in the new format, which says record MACs start there.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    int64: sa.types.TypeEngine[int] = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
    # Plain ADD COLUMNs: the append-only triggers guard rows, not the tables' shape, and a batch
    # copy of either table would have to delete its rows.
    op.add_column("audit", sa.Column("mac", sa.Text()))
    op.add_column(
        "audit_anchors", sa.Column("macs_from", int64, nullable=False, server_default="0")
    )


def downgrade() -> None:
    raise NotImplementedError("Tandem's schema only moves forward; restore a backup instead")
