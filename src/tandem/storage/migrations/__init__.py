"""The schema's history as Alembic revisions (``versions/``), and the code that runs them.

One history for SQLite and PostgreSQL. The first revision is the bridge from the hand-written
migrations that came before (:mod:`.legacy`): it brings an old database to the last of them, then
Alembic takes over. :func:`upgrade` runs in one transaction, under a lock (SQLite's write lock,
PostgreSQL's advisory lock), so servers starting together migrate once.

A database already at :data:`HEAD` (every start but the first after an upgrade) is checked with
one query, without loading Alembic (a quarter of a second of a process's start-up).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from tandem.exceptions import ConfigError

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

HERE = Path(__file__).parent

HEAD = max(path.name[:4] for path in (HERE / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
"""The newest revision: each revision's id is its file's four-digit prefix and each comes after
the one before (tests/storage/test_legacy_upgrade.py checks both against Alembic's own head)."""


@functools.cache
def script_directory() -> ScriptDirectory:
    """The revisions shipped with this Tandem, read once per process (each read imports every
    revision file again; they do not change while it runs)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(HERE))
    return ScriptDirectory.from_config(config)


def head_revision() -> str:
    head = script_directory().get_current_head()
    assert head is not None
    return head


def current_revision(connection: sa.Connection) -> str | None:
    """The revision the database is at (None: never touched by Alembic)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def at_head(connection: sa.Connection) -> bool:
    """Whether the database is at :data:`HEAD` (one row in Alembic's version table), read
    without Alembic."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return False
    rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version").fetchall()
    return [tuple(row) for row in rows] == [(HEAD,)]


def known_revisions() -> set[str]:
    """Every revision this version of Tandem knows; a database at another one was written by a
    newer Tandem."""
    return {rev.revision for rev in script_directory().walk_revisions()}


def upgrade(connection: sa.Connection, target: str = "head") -> None:
    """Bring the database to ``target`` inside the caller's transaction (call through
    ``AsyncConnection.run_sync`` in ``engine.begin()``). Raises :class:`ConfigError` if the
    database was written by a newer Tandem."""
    if target == "head" and at_head(connection):
        return  # nothing to run
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    if connection.dialect.name == "postgresql":
        # Held to the end of the caller's transaction: one server migrates, the others then
        # find nothing left to do.
        connection.exec_driver_sql(
            "SELECT pg_advisory_xact_lock(hashtext('tandem-migrate:' || current_schema()))"
        )
    script = script_directory()
    context = MigrationContext.configure(
        connection,
        opts={
            "fn": lambda rev, _context: script._upgrade_revs(target, rev),
            "script": script,
        },
    )
    current = context.get_current_revision()
    if current is not None and current not in known_revisions():
        raise ConfigError("the database was written by a newer Tandem; upgrade first")
    with Operations.context(context):
        context.run_migrations()
