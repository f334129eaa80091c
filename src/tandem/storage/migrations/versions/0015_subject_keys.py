"""Each customer link's ``sub`` in NFC (``subject_sessions.subject_key``), indexed: what a data
subject request looks a customer up by, so that every canonically equivalent spelling of a
``sub`` finds them. Tokens' ``sub``s are stored in NFC since the leftovers review, but an older
version stored them as the site wrote them, and requests were looked up in NFC, in NFD and as
typed only: a ``sub`` stored in a form that is neither (partly composed: a precomposed letter
beside a combining mark) was found only when typed exactly, and an erasure typed otherwise
silently missed the person (tandem.subjects, docs/compliance.md).

The links already there get their key here, computed in Python (neither database normalises
Unicode the same way, SQLite not at all); most are NFC already and are set in one statement.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_BATCH = 500


def upgrade() -> None:
    op.add_column("subject_sessions", sa.Column("subject_key", sa.Text(), nullable=True))
    db = op.get_bind()
    db.execute(sa.text("UPDATE subject_sessions SET subject_key = subject"))
    other = [
        {"sid": str(session_id), "key": unicodedata.normalize("NFC", str(subject))}
        for session_id, subject in db.execute(
            sa.text("SELECT session_id, subject FROM subject_sessions")
        )
        if unicodedata.normalize("NFC", str(subject)) != subject
    ]
    update = sa.text("UPDATE subject_sessions SET subject_key = :key WHERE session_id = :sid")
    for start in range(0, len(other), _BATCH):
        db.execute(update, other[start : start + _BATCH])
    op.create_index("subject_sessions_org_key", "subject_sessions", ["org_id", "subject_key"])


def downgrade() -> None:
    raise NotImplementedError("Tandem's schema only moves forward; restore a backup instead")
