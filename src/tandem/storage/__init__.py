"""Persistent state behind one Protocol: :class:`~tandem.storage.base.Storage`, implemented once
(:mod:`tandem.storage.sql`) for SQLite and PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tandem.config import Settings
    from tandem.storage.sql import SQLStorage


async def open_storage(settings: Settings) -> SQLStorage:
    """PostgreSQL when ``settings.database_url`` is set (scale-out), else the embedded SQLite
    file in the data directory; either is brought up to the current schema first (an SQLite
    file that needs it is copied beside itself before). Raises
    :class:`~tandem.exceptions.ConfigError` if it cannot."""
    from tandem.storage.sql import SQLStorage

    if settings.database_url:
        storage = await SQLStorage.connect(
            settings.database_url,
            max_connections=settings.database_pool_size,
            timeout=settings.database_timeout_seconds,
            migration_timeout=settings.database_migration_timeout_seconds,
        )
        storage.vacuum_timeout = settings.database_vacuum_timeout_seconds
    else:
        storage = await SQLStorage.open_sqlite(
            settings.database_path, busy_seconds=settings.sqlite_busy_seconds
        )
    storage.retention_clock_skew = settings.max_retention_clock_skew_seconds
    storage.audit_append_attempts = settings.audit_append_attempts
    return storage
