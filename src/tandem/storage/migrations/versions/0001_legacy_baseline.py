"""Baseline: the schema as the hand-written migrations left it (SQLite 11, PostgreSQL 5).

A new database runs every old migration; an old one runs those it lacks (found by its old
counter). The counter is then set past any old version, so a Tandem from before Alembic refuses
the database instead of writing to a schema it does not know.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from alembic import op
from sqlalchemy.util import await_only

from tandem.exceptions import ConfigError
from tandem.storage.migrations.legacy import (
    NEWER_THAN_LEGACY,
    POSTGRES_MIGRATIONS,
    SQLITE_MIGRATIONS,
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _sqlite_statements(script: str) -> list[str]:
    """A script's statements (trigger bodies hold semicolons of their own)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    assert not pending.strip(), pending
    return statements


def _sqlite(bind: sa.Connection) -> None:
    version = int(bind.exec_driver_sql("PRAGMA user_version").scalar_one())
    if version > len(SQLITE_MIGRATIONS):
        raise ConfigError("the database was written by a newer Tandem; upgrade first")
    for script in SQLITE_MIGRATIONS[version:]:
        for statement in _sqlite_statements(script):
            bind.exec_driver_sql(statement)
    bind.exec_driver_sql(f"PRAGMA user_version={NEWER_THAN_LEGACY}")


def _postgres(bind: sa.Connection) -> None:
    bind.exec_driver_sql(
        "CREATE TABLE IF NOT EXISTS tandem_schema_version (version integer NOT NULL)"
    )
    version = bind.exec_driver_sql("SELECT max(version) FROM tandem_schema_version").scalar()
    if version is None:
        bind.exec_driver_sql("INSERT INTO tandem_schema_version VALUES (0)")
        version = 0
    if version > len(POSTGRES_MIGRATIONS):
        raise ConfigError("the database was written by a newer Tandem; upgrade first")
    # The old scripts hold several statements each (and function bodies): the driver runs them
    # as they are, in the migration's transaction.
    driver = bind.connection.driver_connection
    assert driver is not None
    for script in POSTGRES_MIGRATIONS[version:]:
        await_only(driver.execute(script))
    bind.execute(
        sa.text("UPDATE tandem_schema_version SET version = :version"),
        {"version": NEWER_THAN_LEGACY},
    )


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _sqlite(bind)
    else:
        _postgres(bind)


def downgrade() -> None:
    raise NotImplementedError("Tandem's schema only moves forward; restore a backup instead")
