"""The schema's history as Alembic revisions (``versions/``), and the code that runs them.

One history for SQLite and PostgreSQL. The first revision is the bridge from the hand-written
migrations that came before (:mod:`.legacy`): it brings an old database to the last of them, then
Alembic takes over. :func:`upgrade` runs in one transaction, under a lock (SQLite's write lock,
PostgreSQL's advisory lock), so servers starting together migrate once.
"""

from __future__ import annotations

import functools
from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from tandem.exceptions import ConfigError

HERE = Path(__file__).parent


@functools.cache
def script_directory() -> ScriptDirectory:
    """The revisions shipped with this Tandem, read once per process (each read imports every
    revision file again; they do not change while it runs)."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    return ScriptDirectory.from_config(config)


def head_revision() -> str:
    head = script_directory().get_current_head()
    assert head is not None
    return head


def current_revision(connection: sa.Connection) -> str | None:
    """The revision the database is at (None: never touched by Alembic)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: sa.Connection, target: str = "head") -> None:
    """Bring the database to ``target`` inside the caller's transaction (call through
    ``AsyncConnection.run_sync`` in ``engine.begin()``). Raises :class:`ConfigError` if the
    database was written by a newer Tandem."""
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
    if current is not None and current not in {rev.revision for rev in script.walk_revisions()}:
        raise ConfigError("the database was written by a newer Tandem; upgrade first")
    with Operations.context(context):
        context.run_migrations()
