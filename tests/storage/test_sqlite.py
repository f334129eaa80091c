"""Storage semantics on both backends (single-use codes, expiry); SQLite's schema versioning."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tandem.exceptions import ConfigError, TandemError
from tandem.storage.base import Storage
from tandem.storage.sqlite import SQLiteStorage


async def test_join_code_is_taken_once(storage: Storage) -> None:
    await storage.put_join_code("digest", "s1", expires_at=100.0)
    assert await storage.take_join_code("digest", now=1.0) == "s1"
    assert await storage.take_join_code("digest", now=1.0) is None


async def test_concurrent_takes_of_one_code_succeed_once(storage: Storage) -> None:
    await storage.put_join_code("digest", "s1", expires_at=100.0)
    results = await asyncio.gather(*(storage.take_join_code("digest", 1.0) for _ in range(20)))
    assert results.count("s1") == 1


async def test_expired_code_is_not_returned(storage: Storage) -> None:
    await storage.put_join_code("digest", "s1", expires_at=100.0)
    assert await storage.take_join_code("digest", now=100.0) is None


async def test_live_code_collision_is_an_error(storage: Storage) -> None:
    await storage.put_join_code("digest", "s1", expires_at=100.0)
    with pytest.raises(TandemError):
        await storage.put_join_code("digest", "s2", expires_at=100.0)


async def test_purge_removes_expired_codes(storage: Storage) -> None:
    await storage.put_join_code("old", "s1", expires_at=10.0)
    await storage.put_join_code("new", "s2", expires_at=1000.0)
    await storage.purge_expired(now=50.0)
    await storage.put_join_code("old", "s3", expires_at=1000.0)  # free again
    assert await storage.take_join_code("new", now=50.0) == "s2"


async def test_session_end_is_recorded_once(storage: Storage) -> None:
    await storage.record_session_start("s1", 1.0)
    await storage.record_session_end("s1", 2.0, "stopped", "Alice")
    await storage.record_session_end("s1", 3.0, "agent_lost", None)
    record = await storage.get_session("s1")
    assert record is not None and (record.ended_at, record.end_reason) == (2.0, "stopped")


def test_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(ConfigError, match="newer Tandem"):
        SQLiteStorage(path)


def test_unwritable_location_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot open the database"):
        SQLiteStorage(blocker / "db.sqlite3")
