"""Storage semantics on both backends (single-use codes, expiry); SQLite's schema versioning."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tandem.audit import AuditLog, verify
from tandem.config import Settings
from tandem.exceptions import ConfigError, ConflictError, StorageError
from tandem.storage import open_storage
from tandem.storage.base import Storage, TakenCode
from tandem.storage.migrations.legacy import SQLITE_MIGRATIONS
from tandem.storage.sql import (
    BUSY_SECONDS,
    SQLStorage,
    StorageThread,
    _SQLiteCall,
    expire_upgrade_copies,
)
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


async def test_a_call_given_up_before_its_turn_is_never_run(tmp_path: Path) -> None:
    """A storage call cancelled while it waits its turn in the SQLite thread (behind a statement
    waiting for a locked file) is not run when its turn comes: its caller was told it failed."""
    from tests.storage.conftest import migrated_sqlite

    path = migrated_sqlite(tmp_path / "db.sqlite3")
    storage = await SQLStorage.open_sqlite(path)
    grant = of_org("default")
    try:
        shell = sqlite3.connect(path, isolation_level=None)
        try:
            shell.execute("BEGIN EXCLUSIVE")
            first = asyncio.create_task(storage.put_join_code(grant, "d1", "s1", 100.0))
            while storage._sqlite_call is None:  # in the thread, waiting for the lock
                await asyncio.sleep(0.01)
            queued = asyncio.create_task(storage.put_join_code(grant, "d2", "s2", 100.0))
            assert storage._thread is not None
            while storage._thread._calls.qsize() == 0:  # handed to the thread, not yet run
                await asyncio.sleep(0.01)
            queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
        finally:
            shell.close()  # the lock goes: the first call goes on, then the queue's next
        await first
        assert await storage.take_join_code(grant, "d2", 50.0) is None
        assert await storage.take_join_code(grant, "d1", 50.0) == TakenCode("s1", 100.0)
    finally:
        await storage.close()


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


async def test_an_audit_append_given_up_while_the_file_is_locked_never_lands_later(
    tmp_path: Path,
) -> None:
    """The hub keeps a record whose append was given up on (its caller cancelled while the file
    was locked) in the audit backlog, written by the next start: the append itself must not land
    once the lock goes, or the record is on the trail twice. An append with no anchor due (most
    of them) is one INSERT, which committed itself when the lock went."""
    from tests.storage.conftest import migrated_sqlite

    path = migrated_sqlite(tmp_path / "db.sqlite3")
    storage = await SQLStorage.open_sqlite(path)
    try:
        log = AuditLog(storage, bytes(range(32)), anchor_every=1000)
        await log.record(1.0, "sign_in", actor="first", org="default")
        shell = sqlite3.connect(path, isolation_level=None)
        try:
            shell.execute("BEGIN IMMEDIATE")
            appending = asyncio.create_task(
                log.record(2.0, "sign_in", actor="given-up", org="default")
            )
            while storage._sqlite_call is None:  # in the thread, waiting for the lock
                await asyncio.sleep(0.01)
            appending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await appending
        finally:
            shell.close()  # the lock goes: the waiting statement goes on
        # Queued behind it, so answered once that append is over.
        assert [r.actor for r in await storage.audit_records()] == ["first"]
        await log.record(3.0, "sign_in", actor="next", org="default")
        records = await storage.audit_records()
        assert [(r.seq, r.actor) for r in records] == [(1, "first"), (2, "next")]
        assert verify(records, await storage.anchors(), bytes(range(32))).ok
    finally:
        await storage.close()


async def test_a_work_raising_stopiteration_is_answered_not_left_pending(tmp_path: Path) -> None:
    """asyncio refuses StopIteration into a future (TypeError, in the loop's callback): the
    storage call's answer was never set and its caller waited forever."""
    storage = await SQLStorage.open_sqlite(tmp_path / "db.sqlite3")
    try:

        def work(connection: sqlite3.Connection) -> object:
            return next(iter(()))

        answer = asyncio.ensure_future(storage._on_sqlite(work))
        done, _ = await asyncio.wait([answer], timeout=BUSY_SECONDS)
        assert done, "the storage call was never answered"
        with pytest.raises(RuntimeError) as raised:
            answer.result()
        assert isinstance(raised.value.__cause__, StopIteration)
        # The thread goes on.
        await storage.put_join_code(of_org("default"), "digest", "s1", expires_at=100.0)
    finally:
        await storage.close()


async def test_a_call_on_a_closed_storage_is_a_storage_error(tmp_path: Path) -> None:
    """Not an AssertionError (nor, under ``python -O``, an AttributeError on None)."""
    storage = await SQLStorage.open_sqlite(tmp_path / "db.sqlite3")
    queued = [
        asyncio.create_task(storage.put_join_code(of_org("default"), f"d{i}", "s", 100.0))
        for i in range(5)
    ]
    await asyncio.sleep(0)  # each handed to the thread before the close
    await storage.close()
    assert await asyncio.gather(*queued) == [None] * 5  # answered, before the connection closed
    with pytest.raises(StorageError, match="closed"):
        await storage.put_join_code(of_org("default"), "late", "s", 100.0)
    await storage.close()  # twice: nothing more to do


def test_an_answer_to_a_closed_event_loop_leaves_the_thread_serving() -> None:
    """A storage call whose event loop closed before its answer (a CLI's asyncio.run over, a
    test's loop): call_soon_threadsafe raises RuntimeError in the worker thread, which must
    not end the thread and leave every later call pending."""
    thread = StorageThread("tandem-sqlite-test")
    go = threading.Event()
    ran = threading.Event()

    def slow() -> int:
        go.wait()
        ran.set()
        return 1

    async def hand_over() -> None:
        thread.run(_SQLiteCall(), slow)

    asyncio.run(hand_over())  # its loop closed, the call still in the thread
    go.set()
    assert ran.wait(10)

    async def next_call() -> int:
        return await asyncio.wait_for(thread.run(_SQLiteCall(), lambda: 42), 10)

    try:
        assert asyncio.run(next_call()) == 42
    finally:
        thread.shutdown()


async def test_sqlite_s_chain_head_reads_as_the_former_statement_does(tmp_path: Path) -> None:
    """SQLite's chain head (by each index's largest key) gives what the former statement (still
    PostgreSQL's) gives: an empty trail, records with no anchor, two organisations, the last
    anchor past the last record (written by hand: an odd trail)."""
    from tandem.storage.sql import _kept_statements, _SQLiteDb

    key = bytes(range(32))
    storage = await SQLStorage.open_sqlite(tmp_path / "db.sqlite3")
    former, current = _kept_statements(True).chain_head, _kept_statements(False).chain_head
    assert former is not current

    async def heads() -> list[tuple[object, object]]:
        def work(connection: sqlite3.Connection) -> list[tuple[object, object]]:
            db = _SQLiteDb(storage, connection)
            return [
                (
                    [tuple(row) for row in db.execute(former, {"org": org}).rows],
                    [tuple(row) for row in db.execute(current, {"org": org}).rows],
                )
                for org in ("one", "two", "none")
            ]

        return await storage._on_sqlite(work)

    try:
        seen = await heads()
        assert all(old == new == [] for old, new in seen)  # empty: no row
        log = AuditLog(storage, key, anchor_every=3)
        for i in range(7):
            await log.record(1.0 + i, "sign_in", actor=f"u{i}", org="one" if i % 3 else "two")
            seen = await heads()
            assert all(old == new and len(new) == 1 for old, new in seen), seen
        assert seen[0][1][0][2] == 4 and seen[1][1][0][2] == 3 and seen[2][1][0][2] == 0
        last = (await storage.anchors())[-1]

        def odd(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO audit_anchors (seq, hash, mac) VALUES (?, ?, ?)",
                (last.seq + 100, "h", "m"),
            )

        await storage._on_sqlite(odd)
        seen = await heads()
        assert all(old == new and new[0][3] == last.seq + 100 for old, new in seen), seen
    finally:
        await storage.close()


async def test_a_work_s_exception_whose_text_fails_reaches_its_caller(tmp_path: Path) -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise ValueError("no text")

        __repr__ = __str__

    storage = await SQLStorage.open_sqlite(tmp_path / "db.sqlite3")
    try:

        def work(connection: sqlite3.Connection) -> None:
            raise Unprintable()

        with pytest.raises(Unprintable):
            await storage._on_sqlite(work)
        await storage.put_join_code(of_org("default"), "digest", "s1", expires_at=100.0)
    finally:
        await storage.close()


async def test_a_close_given_up_on_still_closes_the_connection_and_ends_the_thread(
    tmp_path: Path,
) -> None:
    """A close cancelled while a call ahead of it waits for a locked file (a stop past its
    deadline): the connection's close was a call of its own, cancelled with it, so it never ran
    and the thread never ended (an open connection, the thread waiting forever)."""
    from tests.storage.conftest import migrated_sqlite

    path = migrated_sqlite(tmp_path / "db.sqlite3")
    storage = await SQLStorage.open_sqlite(path)
    thread = storage._thread
    assert thread is not None
    shell = sqlite3.connect(path, isolation_level=None)
    try:
        shell.execute("BEGIN EXCLUSIVE")
        first = asyncio.create_task(storage.put_join_code(of_org("default"), "d1", "s1", 100.0))
        while storage._sqlite_call is None:  # in the thread, waiting for the lock
            await asyncio.sleep(0.01)
        closing = asyncio.create_task(storage.close())
        await asyncio.sleep(0)  # its close handed to the thread, behind the first call
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
    finally:
        shell.close()  # the lock goes: the first call goes on, then the close
    await first
    await asyncio.to_thread(thread._thread.join, 10)
    assert not thread._thread.is_alive()
    # The last connection closed: SQLite checkpointed the write-ahead log and removed it.
    assert not path.with_name(path.name + "-wal").exists()
