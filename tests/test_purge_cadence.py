"""The periodic purge of expired rows runs on its own cadence (a Settings field), not every tick."""

from __future__ import annotations

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


async def test_expired_rows_are_purged_once_per_interval_not_every_tick(tmp_path: Path) -> None:
    storage = await SQLStorage.open_sqlite(migrated_sqlite(tmp_path / "db.sqlite3"))
    now = [1000.0]
    settings = Settings.load(environ={}, data_dir=tmp_path, purge_interval_seconds=60.0)
    hub = SessionHub(
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
