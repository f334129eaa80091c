"""Indexes of the audit trail by account: an organisation's records by actor and by subject
(``audit_org_actor``, ``audit_org_subject``), each in time order.

An agent's sign-in now shows the agent what happened to its account lately (its sign-ins, and
the resets, bindings and other changes an admin or the operator made to it: the takeover an
admin could otherwise make unseen by the account's owner; tandem.auth.account_activity,
docs/security.md). Without them each sign-in read every record of its organisation's window.

Building an index blocks every write to the audit table until it is built: on PostgreSQL a few
seconds a million records, while the other servers of a rolling upgrade wait with their
sign-ins and joins. An operator with a large trail builds them beforehand, without blocking
(``CREATE INDEX CONCURRENTLY``, docs/operations.md); an index of that name already there is
taken as it is (``IF NOT EXISTS``).

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("audit_org_actor", "audit", ["org", "actor", "at"], if_not_exists=True)
    op.create_index("audit_org_subject", "audit", ["org", "subject", "at"], if_not_exists=True)


def downgrade() -> None:
    raise NotImplementedError("Tandem's schema only moves forward; restore a backup instead")
