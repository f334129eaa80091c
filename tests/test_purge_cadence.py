"""The periodic purge of expired rows runs on its own cadence (a Settings field), not every tick."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from tandem import crypto
from tandem.audit import AuditLog, load_or_create_key
from tandem.config import Settings
from tandem.exceptions import TandemError
from tandem.fanout.memory import MemoryFanout
from tandem.hub import SessionHub
from tandem.lockout import SharedBackoff
from tandem.storage.sql import SQLStorage
from tests.conftest import migrated_sqlite
from tests.grants import of_org


def hub_for(storage: SQLStorage, settings: Settings, now: list[float]) -> SessionHub:
    return SessionHub(
        settings=settings,
        storage=storage,
        fanout=MemoryFanout(),
        audit=AuditLog(storage, load_or_create_key(settings.audit_key_path)),
        box=crypto.SecretBox(settings.secrets_key_path),
        join_backoff=SharedBackoff(storage, 5, 2.0, 600.0, 3600.0),
        join_org_backoff=SharedBackoff(storage, 50, 2.0, 600.0, 3600.0),
        clock=lambda: now[0],
        entropy=crypto.system_entropy,
    )


async def test_expired_rows_are_purged_once_per_interval_not_every_tick(tmp_path: Path) -> None:
    storage = await SQLStorage.open_sqlite(migrated_sqlite(tmp_path / "db.sqlite3"))
    now = [1000.0]
    settings = Settings.load(environ={}, data_dir=tmp_path, purge_interval_seconds=60.0)
    hub = hub_for(storage, settings, now)
    try:
        await hub.tick()  # the first tick purges
        await storage.put_join_code(of_org("default"), "old", "s1", expires_at=1001.0)
        now[0] = 1030.0
        await hub.tick()
        with pytest.raises(TandemError, match="collision"):  # expired, but not purged yet
            await storage.put_join_code(of_org("default"), "old", "s2", expires_at=2000.0)
        now[0] = 1061.0
        await hub.tick()
        # Purged: free again.
        await storage.put_join_code(of_org("default"), "old", "s3", expires_at=2000.0)
    finally:
        await storage.close()


def recordings_purged_at(database: Path) -> float:
    """The clock of the latest recordings' retention purge, as it noted it in the database."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        [(noted,)] = db.execute(
            "SELECT noted_at FROM installation_notes WHERE name = 'recordings_purged_at'"
        ).fetchall()
    return float(noted)


@pytest.mark.parametrize(("interval", "purged_at_1061"), [(None, 1061.0), (600.0, 1000.0)])
async def test_recordings_past_retention_are_looked_for_every_recording_purge_seconds(
    tmp_path: Path, interval: float | None, purged_at_1061: float
) -> None:
    """``recording_purge_seconds`` (a code constant of a minute before) sets how often the
    recordings' retention purge runs: by default at the first tick and a minute on; set to ten
    minutes, the tick a minute on purges expired rows (their own interval) but not recordings,
    which wait for the tick ten minutes on."""
    database = migrated_sqlite(tmp_path / "db.sqlite3")
    storage = await SQLStorage.open_sqlite(database)
    now = [1000.0]
    settings = Settings.load(
        environ={}, data_dir=tmp_path, recording_purge_seconds=interval, purge_interval_seconds=60.0
    )
    hub = hub_for(storage, settings, now)
    try:
        await hub.tick()  # the first tick purges
        assert recordings_purged_at(database) == 1000.0
        now[0] = 1061.0
        await hub.tick()
        assert recordings_purged_at(database) == purged_at_1061
        now[0] = 1601.0
        await hub.tick()
        assert recordings_purged_at(database) == 1601.0
    finally:
        await storage.close()
