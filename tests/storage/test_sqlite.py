"""Storage semantics on both backends (single-use codes, expiry); SQLite's schema versioning."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from tandem.audit import AuditLog, verify
from tandem.config import Settings
from tandem.exceptions import ConfigError, ConflictError, StorageError
from tandem.storage import open_storage
from tandem.storage.base import Storage, TakenCode
from tandem.storage.migrations.legacy import SQLITE_MIGRATIONS
from tandem.storage.sql import BUSY_SECONDS, SQLStorage, expire_upgrade_copies
from tests.grants import of_org


async def test_join_code_is_taken_once(storage: Storage) -> None:
    await storage.put_join_code(of_org("default"), "digest", "s1", expires_at=100.0)
    assert await storage.take_join_code(of_org("default"), "digest", now=1.0) == TakenCode(
        "s1", 100.0
    )
    assert await storage.take_join_code(of_org("default"), "digest", now=1.0) is None


async def test_concurrent_takes_of_one_code_succeed_once(storage: Storage) -> None:
    await storage.put_join_code(of_org("default"), "digest", "s1", expires_at=100.0)
    results = await asyncio.gather(
        *(storage.take_join_code(of_org("default"), "digest", 1.0) for _ in range(20))
    )
    assert results.count(TakenCode("s1", 100.0)) == 1 and results.count(None) == 19


async def test_expired_code_is_not_returned(storage: Storage) -> None:
    await storage.put_join_code(of_org("default"), "digest", "s1", expires_at=100.0)
    assert await storage.take_join_code(of_org("default"), "digest", now=100.0) is None


async def test_live_code_collision_is_an_error(storage: Storage) -> None:
    """A conflict, which the hub answers by drawing another code (not a crash)."""
    await storage.put_join_code(of_org("default"), "digest", "s1", expires_at=100.0)
    with pytest.raises(ConflictError):
        await storage.put_join_code(of_org("default"), "digest", "s2", expires_at=100.0)


async def test_purge_removes_expired_codes(storage: Storage) -> None:
    await storage.put_join_code(of_org("default"), "old", "s1", expires_at=10.0)
    await storage.put_join_code(of_org("default"), "new", "s2", expires_at=1000.0)
    await storage.purge_expired(now=50.0)
    await storage.put_join_code(of_org("default"), "old", "s3", expires_at=1000.0)  # free again
    taken = await storage.take_join_code(of_org("default"), "new", now=50.0)
    assert taken is not None and taken.session_id == "s2"


async def test_session_end_is_recorded_once(storage: Storage) -> None:
    await storage.record_session_start(of_org("default"), "s1", 1.0)
    await storage.record_session_end("s1", 2.0, "stopped", "Alice")
    await storage.record_session_end("s1", 3.0, "agent_lost", None)
    record = await storage.get_session("s1")
    assert record is not None and (record.ended_at, record.end_reason) == (2.0, "stopped")


def test_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(ConfigError, match="newer Tandem"):
        asyncio.run(SQLStorage.open_sqlite(path))


async def test_a_newer_database_is_refused_without_a_copy_at_each_start(tmp_path: Path) -> None:
    """A database a newer Tandem migrated is refused before the pre-upgrade copy: a server
    restarted in a loop on it (systemd) wrote a full copy of the database at every start."""
    path = tmp_path / "db.sqlite3"
    await (await SQLStorage.open_sqlite(path)).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    db.close()
    for _ in range(2):
        with pytest.raises(ConfigError, match="newer Tandem"):
            await SQLStorage.open_sqlite(path)
    assert list(tmp_path.glob("db.sqlite3.*.bak")) == []


def test_unwritable_location_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot open the database"):
        asyncio.run(SQLStorage.open_sqlite(blocker / "db.sqlite3"))


async def test_an_sqlite_file_is_copied_before_it_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path) as db:
        for migration in SQLITE_MIGRATIONS[:10]:
            db.executescript(migration)
        db.execute("PRAGMA user_version=10")
        db.execute(
            "INSERT INTO users (username, display_name, role, password_hash, created_at,"
            " recovery_codes) VALUES ('old', 'Old', 'agent', 'h', 0, '[\"c1\", \"c2\"]')"
        )
    db.close()
    storage = await SQLStorage.open_sqlite(path)
    try:
        user = await storage.get_user("old")
        assert user is not None and user.recovery_codes == ("c1", "c2")  # moved to their table
        assert await storage.use_second_factor("old", None, "c1")
    finally:
        await storage.close()
    (backup,) = tmp_path.glob("db.sqlite3.*.bak")
    assert backup.stat().st_mode & 0o077 == 0
    old = sqlite3.connect(backup)
    try:
        assert old.execute("PRAGMA user_version").fetchone() == (10,)
    finally:
        old.close()
    await (await SQLStorage.open_sqlite(path)).close()  # up to date: no second copy
    assert len(list(tmp_path.glob("db.sqlite3.*.bak"))) == 1


async def test_an_upgrade_copy_cut_short_is_never_left_under_a_copy_s_name(tmp_path: Path) -> None:
    """A start stopped (SIGTERM or Ctrl-C end it at once, tandem.cli) or killed while it copies
    the file before an upgrade: the copy is written under a ``.partial`` name and renamed once
    whole, so no truncated file is named as a copy to restore from; the next open deletes the
    leftover (customers' data nothing else would expire)."""
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path) as db:
        for migration in SQLITE_MIGRATIONS[:10]:
            db.executescript(migration)
        db.execute("PRAGMA user_version=10")
    db.close()
    cut_short = tmp_path / "db.sqlite3.20200101T000000Z.bak.partial"
    cut_short.write_bytes(b"SQLite format 3\x00" + b"\x00" * 84)  # a copy's first page, no more
    other = tmp_path / "other.sqlite3.20200101T000000Z.bak.partial"  # another file's: kept
    other.write_bytes(b"")
    await (await SQLStorage.open_sqlite(path)).close()
    assert not cut_short.exists()
    assert other.exists()
    (backup,) = tmp_path.glob("db.sqlite3.*.bak")
    assert list(tmp_path.glob("db.sqlite3.*.partial")) == []
    old = sqlite3.connect(backup)
    try:
        assert old.execute("PRAGMA user_version").fetchone() == (10,)
    finally:
        old.close()


async def test_two_processes_appending_to_one_file_keep_one_valid_chain(tmp_path: Path) -> None:
    # Two storages on one file are two servers' connections: neither locks the chain, so they
    # race for each record's number; the loser of each race reads the new head and goes on.
    key = bytes(range(32))
    one = await SQLStorage.open_sqlite(tmp_path / "db.sqlite3")
    two = await SQLStorage.open_sqlite(tmp_path / "db.sqlite3")
    try:
        logs = [AuditLog(one, key, anchor_every=7), AuditLog(two, key, anchor_every=7)]
        await asyncio.gather(
            *(
                logs[i % 2].record(1000.0 + i, "sign_in", actor=f"u{i}", n=i, org="default")
                for i in range(80)
            )
        )
        records, anchors = await one.audit_records(), await two.anchors()
    finally:
        await one.close()
        await two.close()
    assert [r.seq for r in records] == list(range(1, 81))
    assert sorted(r.details["n"] for r in records) == list(range(80))  # type: ignore[type-var]
    assert [a.seq for a in anchors] == [1, 7, 14, 21, 28, 35, 42, 49, 56, 63, 70, 77]
    verdict = verify(records, anchors, key)
    assert verdict.ok, verdict.problem


async def test_the_busy_timeout_is_the_setting_and_a_locked_write_fails_after_it(
    tmp_path: Path,
) -> None:
    """``sqlite_busy_seconds``: a write waits that long for another connection's write lock (an
    operator's shell), then fails with StorageError, not the default 10 s."""
    settings = Settings.load(environ={"TANDEM_SQLITE_BUSY_SECONDS": "0.5"}, data_dir=tmp_path)
    storage = await open_storage(settings)
    try:
        other = sqlite3.connect(settings.database_path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            started = time.monotonic()
            with pytest.raises(StorageError):
                await storage.put_join_code(of_org("default"), "digest", "s1", expires_at=100.0)
            waited = time.monotonic() - started
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert 0.45 <= waited < BUSY_SECONDS, waited
        # The lock gone, writes pass again.
        await storage.put_join_code(of_org("default"), "digest", "s1", expires_at=100.0)
    finally:
        await storage.close()
    with pytest.raises(ConfigError, match="sqlite_busy_seconds"):
        Settings.load(environ={}, data_dir=tmp_path, sqlite_busy_seconds=0)


def test_a_copy_that_cannot_go_leaves_the_others_going(tmp_path: Path) -> None:
    # The hub's purge tick calls this before the recordings' purge: one copy whose name is no
    # time, or that cannot be removed, must neither raise nor keep the other copies.
    database = tmp_path / "db.sqlite3"
    database.write_bytes(b"")
    old = tmp_path / "db.sqlite3.20200101T000000Z.bak"
    old.write_bytes(b"customers")
    no_time = tmp_path / "db.sqlite3.20201399T999999Z.bak"
    no_time.write_bytes(b"operator's")
    stuck = tmp_path / "db.sqlite3.20200102T000000Z.bak"
    stuck.mkdir()  # unlink() fails on it (a copy it may not remove)
    (stuck / "inside").write_bytes(b"")
    assert expire_upgrade_copies(database, time.time()) == [old]
    assert not old.exists() and no_time.exists() and stuck.exists()


async def test_a_write_given_up_while_the_file_is_locked_never_lands_later(
    tmp_path: Path,
) -> None:
    """The SQLite thread is a daemon that goes on with a statement waiting for a locked file
    after its caller stopped waiting (a stop past its deadline cuts the hand-over that wrote
    it). Once the lock goes, that transaction must not commit: its caller was told it failed
    (the cut session audited ``session_not_handed_over``), and it would have been stored
    handed over, resumable, all the same."""
    from tests.storage.conftest import migrated_sqlite
    from tests.storage.test_suspended_sessions import handed_over

    path = migrated_sqlite(tmp_path / "db.sqlite3")
    storage = await SQLStorage.open_sqlite(path)
    try:
        await storage.record_session_start(of_org("default"), "s1", 50.0, "demo", "old")
        shell = sqlite3.connect(path, isolation_level=None)
        try:
            shell.execute("BEGIN EXCLUSIVE")
            suspending = asyncio.create_task(storage.suspend_session(handed_over("s1")))
            while storage._sqlite_call is None:  # in the thread, waiting for the lock
                await asyncio.sleep(0.01)
            suspending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await suspending
        finally:
            shell.close()  # the lock goes: the waiting statement goes on
        # Queued behind it, so answered once that transaction is over.
        assert await storage.get_suspended("s1") is None
        record = await storage.get_session("s1")
        assert record is not None and record.node == "old"
    finally:
        await storage.close()
