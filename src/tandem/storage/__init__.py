"""Persistent state behind one Protocol: :class:`~tandem.storage.base.Storage`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tandem.config import Settings
    from tandem.storage.base import Storage


async def open_storage(settings: Settings) -> Storage:
    """PostgreSQL when ``settings.database_url`` is set (scale-out), else the embedded SQLite
    file in the data directory. Raises :class:`~tandem.exceptions.ConfigError` if it cannot."""
    if settings.database_url:
        from tandem.storage.postgres import PostgresStorage

        return await PostgresStorage.connect(settings.database_url)
    from tandem.storage.sqlite import SQLiteStorage

    return SQLiteStorage(settings.database_path)
