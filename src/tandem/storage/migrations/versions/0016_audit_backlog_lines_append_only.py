"""The notes of audit backlog lines written (``audit_backlog_lines``) are append-only, guarded as
the audit records and anchors are: no UPDATE, DELETE, replacing INSERT or (PostgreSQL) TRUNCATE.

Revision 0014 left them an ordinary table: a note deleted (or its line number changed) lets the
file put back write its lines to the trail again at the next start. ``tandem audit verify``
names the second copy (each record says which line it came from), but the database refused the
audit records' own rewrites at the statement and did not refuse this one (tandem.audit_backlog,
docs/audit.md).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_SQLITE = (
    "CREATE TRIGGER audit_backlog_lines_no_update BEFORE UPDATE ON audit_backlog_lines"
    " BEGIN SELECT RAISE(ABORT, 'the audit backlog notes are append-only'); END",
    "CREATE TRIGGER audit_backlog_lines_no_delete BEFORE DELETE ON audit_backlog_lines"
    " BEGIN SELECT RAISE(ABORT, 'the audit backlog notes are append-only'); END",
    # INSERT OR REPLACE deletes the row in the way without firing delete triggers.
    "CREATE TRIGGER audit_backlog_lines_no_replace BEFORE INSERT ON audit_backlog_lines"
    " WHEN EXISTS (SELECT 1 FROM audit_backlog_lines"
    " WHERE file_id = NEW.file_id AND line = NEW.line)"
    " BEGIN SELECT RAISE(ABORT, 'the audit backlog notes are append-only'); END",
)

_POSTGRES = (
    # tandem_audit_append_only(): the audit records' and anchors' guard (the baseline).
    "CREATE TRIGGER audit_backlog_lines_append_only BEFORE UPDATE OR DELETE ON audit_backlog_lines"
    " FOR EACH ROW EXECUTE FUNCTION tandem_audit_append_only()",
    "CREATE TRIGGER audit_backlog_lines_no_truncate BEFORE TRUNCATE ON audit_backlog_lines"
    " FOR EACH STATEMENT EXECUTE FUNCTION tandem_audit_append_only()",
)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in _SQLITE if sqlite else _POSTGRES:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("Tandem's schema only moves forward; restore a backup instead")
