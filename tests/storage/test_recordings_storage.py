"""Recordings in storage (both backends): their records, frames, erasure and retention; and the
upgrade of a database from the schema before recordings."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.util.concurrency import await_

from tandem.access import Principal
from tandem.config import Settings
from tandem.exceptions import ConflictError, NotFoundError, StorageError
from tandem.recordings import Recordings
from tandem.storage import open_storage
from tandem.storage.base import (
    HoldRecord,
    OrgRecord,
    RecordingRecord,
    Storage,
)
from tandem.storage.migrations.legacy import (
    NEWER_THAN_LEGACY,
    POSTGRES_MIGRATIONS,
    SQLITE_MIGRATIONS,
)
from tandem.storage.sql import (
    EVERY_RECORDING,
    GATE_BUDGET,
    MANY_READ,
    RECORDING_GATE_CLASS,
    SQLStorage,
    _gate_key,
)
from tests.grants import of_org, owned
from tests.storage.conftest import PG_DSN, fresh_schema, pg_connect

DAY = 86400.0
BIG = bytes(range(256)) * 800  # 200 KiB, every byte value


def recording(
    recording_id: str, org_id: str = "default", started_at: float = 10.0
) -> RecordingRecord:
    return RecordingRecord(
        recording_id=recording_id,
        org_id=org_id,
        session_id=f"s-{recording_id}",
        site_id="demo",
        agent="alice",
        key_id="k1",
        started_at=started_at,
    )


async def test_a_recording_round_trips(storage: Storage) -> None:
    full = RecordingRecord("r1", "default", "s1", "demo", "alice", "key-7", 12.25)
    await storage.add_recording(*owned(full))
    assert await storage.get_recording("r1") == full
    assert await storage.get_recording("nobody") is None
    assert await storage.recording_frames("r1") == []
    assert await storage.recording_frames("nobody") == []


async def test_a_taken_recording_id_is_a_conflict(storage: Storage) -> None:
    await storage.add_recording(*owned(recording("r1")))
    with pytest.raises(ConflictError):
        await storage.add_recording(*owned(dataclasses.replace(recording("r1"), agent="bob")))
    got = await storage.get_recording("r1")
    assert got is not None and got.agent == "alice"


async def test_a_recording_of_an_unknown_organisation_is_refused(storage: Storage) -> None:
    with pytest.raises(NotFoundError):
        await storage.add_recording(*owned(recording("r1", org_id="nobody")))
    assert await storage.get_recording("r1") is None


async def test_an_organisations_recording_key_round_trips(storage: Storage) -> None:
    await storage.add_org(OrgRecord("acme", "Acme", 5.0, 7, recording_key="pub-1"))
    assert await storage.get_org(of_org("acme")) == OrgRecord("acme", "Acme", 5.0, 7, "pub-1")
    await storage.update_org(*owned(OrgRecord("acme", "Acme", 5.0, 7, recording_key="pub-2")))
    org = await storage.get_org(of_org("acme"))
    assert org is not None and org.recording_key == "pub-2"
    await storage.update_org(*owned(OrgRecord("acme", "Acme", 5.0, 7, recording_key=None)))
    org = await storage.get_org(of_org("acme"))
    assert org is not None and org.recording_key is None
    default = await storage.get_org(of_org("default"))
    assert default is not None and default.recording_key is None


async def test_frames_come_back_in_order_byte_for_byte(storage: Storage) -> None:
    await storage.add_recording(*owned(recording("r1")))
    first = [b"\x00", b"\xff\x00\xff", b""]
    second = [BIG, b"\x00" * 3 + b"tail\xff"]
    await storage.append_recording_frames("r1", 0, first)
    await storage.append_recording_frames("r1", 3, second)
    await storage.append_recording_frames("r1", 5, [])  # nothing to add: no change
    frames = await storage.recording_frames("r1")
    assert frames == [*first, *second]
    assert all(type(frame) is bytes for frame in frames)
    got = await storage.get_recording("r1")
    assert got is not None
    assert (got.frames, got.size) == (5, 1 + 3 + 0 + len(BIG) + 8)


async def test_frames_are_ordered_by_number_not_by_arrival(storage: Storage) -> None:
    await storage.add_recording(*owned(recording("r1")))
    await storage.append_recording_frames("r1", 10, [b"c", b"d"])
    await storage.append_recording_frames("r1", 2, [b"a", b"b"])
    assert await storage.recording_frames("r1") == [b"a", b"b", b"c", b"d"]


async def test_a_batch_with_a_taken_number_stores_nothing(storage: Storage) -> None:
    await storage.add_recording(*owned(recording("r1")))
    await storage.append_recording_frames("r1", 0, [b"a", b"b"])
    await storage.append_recording_frames("r1", 3, [b"d"])
    with pytest.raises(ConflictError):
        await storage.append_recording_frames("r1", 2, [b"c", b"clash", b"e"])  # 2, 4 are free
    assert await storage.recording_frames("r1") == [b"a", b"b", b"d"]
    got = await storage.get_recording("r1")
    assert got is not None and (got.frames, got.size) == (3, 3)
    await storage.append_recording_frames("r1", 2, [b"c"])  # the free numbers still are
    await storage.append_recording_frames("r1", 4, [b"e"])
    assert await storage.recording_frames("r1") == [b"a", b"b", b"c", b"d", b"e"]
    got = await storage.get_recording("r1")
    assert got is not None and (got.frames, got.size) == (5, 5)


async def test_a_clash_at_the_end_of_a_batch_rolls_back_its_start(storage: Storage) -> None:
    await storage.add_recording(*owned(recording("r1")))
    await storage.append_recording_frames("r1", 3, [b"three"])
    with pytest.raises(ConflictError):
        await storage.append_recording_frames("r1", 0, [b"zero", b"one", b"two", b"3-again"])
    assert await storage.recording_frames("r1") == [b"three"]
    got = await storage.get_recording("r1")
    assert got is not None and (got.frames, got.size) == (1, 5)


async def test_appending_to_a_missing_recording_is_not_found(storage: Storage) -> None:
    with pytest.raises(NotFoundError):
        await storage.append_recording_frames("nobody", 0, [b"a"])
    assert await storage.recording_frames("nobody") == []
    await storage.add_recording(*owned(recording("r1")))
    assert await storage.delete_recording("r1")
    with pytest.raises(NotFoundError):
        await storage.append_recording_frames("r1", 0, [b"a"])  # erased meanwhile


async def test_concurrent_appends_of_distinct_numbers_all_land(storage: Storage) -> None:
    await storage.add_recording(*owned(recording("r1")))
    await asyncio.gather(
        *(
            storage.append_recording_frames("r1", 2 * i, [bytes([i]), bytes([i, i])])
            for i in range(20)
        )
    )
    got = await storage.get_recording("r1")
    assert got is not None and (got.frames, got.size) == (40, 60)
    frames = await storage.recording_frames("r1")
    assert frames == [frame for i in range(20) for frame in (bytes([i]), bytes([i, i]))]


async def test_ending_a_recording_is_recorded_once(storage: Storage) -> None:
    await storage.add_recording(*owned(recording("r1")))
    await storage.end_recording("r1", 20.5, "stopped")
    await storage.end_recording("r1", 30.0, "session_ended")
    got = await storage.get_recording("r1")
    assert got is not None and (got.ended_at, got.end_reason) == (20.5, "stopped")
    await storage.end_recording("nobody", 1.0, "stopped")  # harmless
    assert await storage.get_recording("nobody") is None


async def test_a_list_holds_only_the_organisations_recordings_newest_first(
    storage: Storage,
) -> None:
    await storage.add_org(OrgRecord("acme", "Acme", 0.0))
    for i, started in enumerate((30.0, 10.0, 50.0, 20.0, 40.0)):
        await storage.add_recording(*owned(recording(f"d{i}", "default", started)))
    await storage.add_recording(*owned(recording("a0", "acme", 100.0)))
    listed = await storage.list_recordings(of_org("default"), 10)
    assert [r.recording_id for r in listed] == ["d2", "d4", "d0", "d3", "d1"]
    assert [r.started_at for r in listed] == [50.0, 40.0, 30.0, 20.0, 10.0]
    assert [r.recording_id for r in await storage.list_recordings(of_org("default"), 2)] == [
        "d2",
        "d4",
    ]
    assert await storage.list_recordings(of_org("acme"), 10) == [recording("a0", "acme", 100.0)]
    assert await storage.list_recordings(of_org("nobody"), 10) == []


async def test_deleting_a_recording_erases_its_frames(storage: Storage) -> None:
    await storage.add_recording(*owned(recording("r1")))
    await storage.add_recording(*owned(recording("r2")))
    await storage.append_recording_frames("r1", 0, [b"a", BIG])
    await storage.append_recording_frames("r2", 0, [b"keep"])
    assert await storage.delete_recording("r1")
    assert not await storage.delete_recording("r1")
    assert await storage.get_recording("r1") is None
    assert await storage.recording_frames("r1") == []
    assert await storage.recording_frames("r2") == [b"keep"]
    # The id may be used again, from frame 0: nothing of the old recording is left behind.
    await storage.add_recording(*owned(recording("r1")))
    await storage.append_recording_frames("r1", 0, [b"fresh"])
    assert await storage.recording_frames("r1") == [b"fresh"]


async def test_purging_follows_each_organisations_retention(storage: Storage) -> None:
    await storage.add_org(OrgRecord("acme", "Acme", 0.0, retention_days=1))
    await storage.add_org(OrgRecord("bank", "Bank", 0.0, retention_days=10))
    ended = {"a-old": ("acme", 100.0), "a-new": ("acme", 5 * DAY), "b-old": ("bank", 100.0)}
    for recording_id, (org, ended_at) in ended.items():
        await storage.add_recording(*owned(recording(recording_id, org, ended_at - 50.0)))
        await storage.append_recording_frames(recording_id, 0, [recording_id.encode(), b"\x00"])
        await storage.end_recording(recording_id, ended_at, "stopped")
    await storage.add_recording(*owned(recording("a-live", "acme", 0.0)))  # never ended
    await storage.append_recording_frames("a-live", 0, [b"live"])
    now = 5 * DAY + 0.5 * DAY  # acme keeps 1 day, bank 10, default 30
    await storage.add_recording(*owned(recording("d-old", "default", 40.0)))
    await storage.end_recording("d-old", 50.0, "stopped")

    purged = await storage.purge_recordings(now)
    assert purged == [
        dataclasses.replace(
            recording("a-old", "acme", 50.0),
            ended_at=100.0,
            end_reason="stopped",
            frames=2,
            size=len(b"a-old") + 1,
        )
    ]
    assert await storage.get_recording("a-old") is None
    assert await storage.recording_frames("a-old") == []
    for kept in ("a-new", "b-old", "a-live", "d-old"):
        assert await storage.get_recording(kept) is not None, kept
    assert await storage.recording_frames("a-live") == [b"live"]
    assert await storage.purge_recordings(now) == []

    later = await storage.purge_recordings(100.0 + 10 * DAY + 1.0)  # bank's 10 days are up
    assert sorted(r.recording_id for r in later) == ["a-new", "b-old"]
    assert await storage.recording_frames("b-old") == []
    assert [r.recording_id for r in await storage.list_recordings(of_org("acme"), 10)] == ["a-live"]
    assert await storage.get_recording("d-old") is not None  # 30 days


async def test_the_retention_boundary_is_exclusive(storage: Storage) -> None:
    await storage.add_org(OrgRecord("acme", "Acme", 0.0, retention_days=2))
    await storage.add_recording(*owned(recording("r1", "acme", 0.0)))
    await storage.end_recording("r1", 1000.0, "stopped")
    assert await storage.purge_recordings(1000.0 + 2 * DAY) == []
    assert [r.recording_id for r in await storage.purge_recordings(1000.0 + 2 * DAY + 1)] == ["r1"]


async def test_purging_expired_sign_ins_leaves_recordings_alone(storage: Storage) -> None:
    await storage.add_recording(*owned(recording("r1")))
    await storage.end_recording("r1", 1.0, "stopped")
    await storage.purge_expired(now=1000 * DAY)
    assert await storage.get_recording("r1") is not None


# Upgrades from the schema before recordings


async def upgraded_keeps_acme_and_records(storage: SQLStorage) -> None:
    """An upgraded database from before recordings still has its organisation 'acme' (added
    before the upgrade) and stores and reads recordings."""
    assert await storage.get_org(of_org("acme")) == OrgRecord("acme", "A", 1.0, 9, None)
    await storage.add_recording(*owned(recording("r1", "acme")))
    await storage.append_recording_frames("r1", 0, [b"\x00\xff"])
    assert await storage.recording_frames("r1") == [b"\x00\xff"]


def test_an_sqlite_database_from_before_recordings_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    for index, migration in enumerate(SQLITE_MIGRATIONS[:-1]):
        db.executescript(f"BEGIN; {migration} PRAGMA user_version={index + 1}; COMMIT;")
    db.execute(
        "INSERT INTO orgs (org_id, name, created_at, retention_days) VALUES ('acme', 'A', 1, 9)"
    )
    db.close()

    async def check() -> None:
        storage = await SQLStorage.open_sqlite(path)
        try:
            await upgraded_keeps_acme_and_records(storage)
        finally:
            await storage.close()

    asyncio.run(check())
    db = sqlite3.connect(path)
    try:
        (version,) = db.execute("PRAGMA user_version").fetchone()
    finally:
        db.close()
    assert version == NEWER_THAN_LEGACY  # past every old version: an old Tandem refuses it


async def test_a_postgres_database_from_before_recordings_is_upgraded(pg_schema: str) -> None:
    db = await pg_connect(pg_schema)
    try:
        async with db.transaction():
            await db.execute("CREATE TABLE tandem_schema_version (version integer NOT NULL)")
            for migration in POSTGRES_MIGRATIONS[:-1]:
                await db.execute(migration)
            await db.execute(
                "INSERT INTO tandem_schema_version VALUES ($1)", len(POSTGRES_MIGRATIONS) - 1
            )
            await db.execute(
                "INSERT INTO orgs (org_id, name, created_at, retention_days)"
                " VALUES ('acme', 'A', 1, 9)"
            )
    finally:
        await db.close()
    storage = await SQLStorage.connect(PG_DSN, schema=pg_schema)
    try:
        await upgraded_keeps_acme_and_records(storage)
    finally:
        await storage.close()
    db = await pg_connect(pg_schema)
    try:
        version = await db.fetchval("SELECT version FROM tandem_schema_version")
        assert version == NEWER_THAN_LEGACY  # past every old version: an old Tandem refuses it
    finally:
        await db.close()


async def test_a_late_frame_cannot_bring_back_an_erased_or_ended_recording(
    storage: Storage,
) -> None:
    # A frame arriving after its recording ended (a process that was taken for lost, and its
    # recording closed ``interrupted`` by another) or was erased is not kept: what the
    # customer's consent covered has ended, and an erasure is not undone.
    for recording_id in ("ended", "erased"):
        await storage.add_recording(*owned(recording(recording_id)))
        await storage.append_recording_frames(recording_id, 0, [b"a"])
        await storage.end_recording(recording_id, 20.0, "stopped_by_customer")
    assert await storage.delete_recording("erased")
    for recording_id in ("ended", "erased"):
        with pytest.raises(NotFoundError):
            await storage.append_recording_frames(recording_id, 1, [b"late"])
    assert await storage.recording_frames("ended") == [b"a"]
    assert await storage.recording_frames("erased") == []
    assert await storage.get_recording("erased") is None
    ended = await storage.get_recording("ended")
    assert ended is not None and (ended.frames, ended.size) == (1, 1)


@pytest.mark.parametrize("kind", ["recording", "session id", "sub"])
async def test_a_hold_placed_after_the_check_keeps_the_recording(
    storage: Storage, kind: str
) -> None:
    # Recordings.erase looks for holds, then erases: a hold placed in between (another admin,
    # another server) is seen in the erasing transaction, as erase_subject sees it.
    await storage.record_session_start(of_org("default"), "s-r1", 10.0, "demo")
    await storage.link_subject(of_org("default"), "c-1", "s-r1", "p-1")
    await storage.add_recording(*owned(recording("r1")))
    await storage.append_recording_frames("r1", 0, [b"kept"])
    await storage.end_recording("r1", 19.0, "stopped")
    hold_kind, target = {
        "recording": ("recording", "r1"),
        "session id": ("subject", "s-r1"),
        "sub": ("subject", "c-1"),
    }[kind]
    assert await storage.put_hold(
        of_org("default"), HoldRecord("default", hold_kind, target, "case", "ada", 30.0)
    )
    with pytest.raises(ConflictError, match="legal hold"):
        await storage.delete_recording("r1")
    assert await storage.get_recording("r1") is not None
    assert await storage.recording_frames("r1") == [b"kept"]
    await storage.delete_hold(of_org("default"), hold_kind, target)
    assert await storage.delete_recording("r1")


@pytest.mark.parametrize("hold", [None, "recording", "sub"])
async def test_a_recording_past_its_retention_is_read_no_more_before_its_purge(
    storage: Storage, hold: str | None
) -> None:
    # A playback (read_recording, given the server's clock) read a recording past its
    # retention until a purge erased it: back-to-back playbacks held it from the purge. Past
    # its retention it is read no more, as if erased; under a legal hold it is kept, and read.
    await storage.add_org(OrgRecord("acme", "Acme", 0.0, retention_days=1))
    await storage.record_session_start(of_org("acme"), "s-r1", 10.0, "demo")
    await storage.link_subject(of_org("acme"), "c-1", "s-r1", "p-1")
    await storage.add_recording(*owned(recording("r1", "acme")))
    await storage.append_recording_frames("r1", 0, [b"one"])
    await storage.end_recording("r1", 1000.0, "stopped")
    if hold is not None:
        target = "r1" if hold == "recording" else "c-1"
        kind = "recording" if hold == "recording" else "subject"
        held = HoldRecord("acme", kind, target, "case", "ada", 30.0)
        assert await storage.put_hold(of_org("acme"), held)
    found = await storage.read_recording("r1", now=1000.0 + DAY)  # its last moment
    assert found is not None and found[1] == [b"one"]
    late = await storage.read_recording("r1", now=1000.0 + DAY + 1)
    if hold is None:
        assert late is None
        assert await storage.get_recording("r1") is not None  # not yet purged
        assert [r.recording_id for r in await storage.purge_recordings(1000.0 + DAY + 1)] == ["r1"]
    else:
        assert late is not None and late[1] == [b"one"]
        assert await storage.purge_recordings(1000.0 + DAY + 1) == []


async def test_a_recording_a_reader_holds_at_every_purge_is_told_to_the_operator(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found by the third recordings review: the purge skips a recording a reader holds
    (``SKIP LOCKED``) and takes it at its next run; a reader that never lets go (a transaction
    left open: a stuck server, a connection pooler's idle session, an operator's ``psql``)
    had it skipped at every run, the recording kept past its retention for as long, and
    nothing said so: no log line, and the compliance check's retention item passed. Each
    purge that leaves one now says which, and :meth:`Storage.overdue_recordings` (read by the
    check) names it until it goes."""
    async with fresh_schema(migrated=True) as schema:
        store = await SQLStorage.connect(PG_DSN, schema=schema)
        db = await pg_connect(schema)
        try:
            await store.add_org(OrgRecord("acme", "Acme", 0.0, retention_days=1))
            for recording_id in ("r1", "r2"):
                await store.add_recording(*owned(recording(recording_id, "acme")))
                await store.end_recording(recording_id, 1000.0, "stopped")
            records: list[str] = []

            async def record(action: str, **fields: object) -> None:
                records.append(f"{action} {fields.get('subject')}")

            purge = Recordings(store, record).purge
            now = 1000.0 + DAY + 1
            async with db.transaction():  # a reader that never lets go
                await db.execute("SELECT 1 FROM recordings WHERE recording_id = 'r1' FOR KEY SHARE")
                with caplog.at_level(logging.WARNING, logger="tandem.recordings"):
                    assert await purge(now) == 1  # r2; r1 skipped
                    assert await purge(now + 60) == 0  # skipped again
                told = [r.getMessage() for r in caplog.records if r.name == "tandem.recordings"]
                assert len(told) == 2 and all("r1" in line for line in told), told
                assert [r.recording_id for r in await store.overdue_recordings(now)] == ["r1"]
            assert await purge(now + 120) == 1
            assert records == ["recording_expired r2", "recording_expired r1"]
            assert await store.overdue_recordings(now + 120) == []
        finally:
            await db.close()
            await store.close()


async def test_a_server_whose_clock_is_behind_plays_nothing_a_purge_found_expired(
    storage: Storage,
) -> None:
    """Found by the third recordings review: a playback is refused past the retention by the
    playing server's own clock. The purge (on a server whose clock is right) left a recording
    past its retention (a legal hold, lifted just after; or a reader holding it), and a server
    of the cluster whose clock is behind went on playing it, and giving it out in customers'
    exports, for as long as its clock was behind (its back-to-back playbacks holding it from
    the next purge meanwhile). The purges' clock is the least any reader goes by now, up to
    max_retention_clock_skew_seconds ahead of the reader's own (one far ahead, a server's
    clock set wrong, would otherwise refuse every recording for as long)."""
    await storage.add_org(OrgRecord("acme", "Acme", 0.0, retention_days=1))
    await storage.record_session_start(of_org("acme"), "s-r1", 10.0, "demo")
    for recording_id, ended_at in (("r1", 1000.0), ("r2", 1000.0 + DAY)):
        await storage.add_recording(*owned(recording(recording_id, "acme", ended_at - 10)))
        await storage.append_recording_frames(recording_id, 0, [b"one"])
        await storage.end_recording(recording_id, ended_at, "stopped")
    expiry = 1000.0 + DAY
    for recording_id in ("r1", "r2"):
        held = HoldRecord("acme", "recording", recording_id, "case", "ada", 30.0)
        assert await storage.put_hold(of_org("acme"), held)
    assert await storage.read_recording("r1", now=expiry - 30) is not None  # nothing known yet
    assert await storage.purge_recordings(expiry + 60) == []  # a right clock's: held
    await storage.delete_hold(of_org("acme"), "recording", "r1")
    for behind in (30.0, 120.0, 3000.0):  # this server's clock, behind the purge's
        mine = expiry + 60 - behind
        assert await storage.read_recording("r1", now=mine) is None, behind
        listed = await storage.recordings_of_sessions(of_org("acme"), ["s-r1", "s-r2"], mine)
        assert [r.recording_id for r in listed] == ["r2"], behind
    assert await storage.get_recording("r1") is not None  # not purged yet, refused
    # A purge whose clock is set far ahead (100 days) is believed only so far ahead.
    purged = await storage.purge_recordings(100 * DAY)  # r2 still held
    assert [r.recording_id for r in purged] == ["r1"]
    await storage.delete_hold(of_org("acme"), "recording", "r2")
    r2_expiry = expiry + DAY
    far = r2_expiry - storage.retention_clock_skew - 10
    assert await storage.read_recording("r2", now=far) is not None
    assert await storage.read_recording("r2", now=far + 20) is None


async def test_a_retention_shortened_while_a_recording_is_kept_refuses_it_at_once(
    storage: Storage,
) -> None:
    """Tried by the third recordings review (held): retention is read at each read, not when
    the recording was made, so shortening it refuses what is past the new one at once, and the
    next purge erases it; lengthening it gives back only what no purge erased."""
    await storage.add_org(OrgRecord("acme", "Acme", 0.0, retention_days=30))
    await storage.add_recording(*owned(recording("r1", "acme")))
    await storage.end_recording("r1", 1000.0, "stopped")
    now = 1000.0 + 2 * DAY
    assert await storage.read_recording("r1", now=now) is not None
    await storage.update_org(*owned(OrgRecord("acme", "Acme", 0.0, retention_days=1)))
    assert await storage.read_recording("r1", now=now) is None
    await storage.update_org(*owned(OrgRecord("acme", "Acme", 0.0, retention_days=30)))
    assert await storage.read_recording("r1", now=now) is not None
    await storage.update_org(*owned(OrgRecord("acme", "Acme", 0.0, retention_days=1)))
    assert [r.recording_id for r in await storage.purge_recordings(now)] == ["r1"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_the_retention_clock_skew_setting_bounds_how_far_the_purges_clock_is_believed(
    backend: str, tmp_path: Path
) -> None:
    """``max_retention_clock_skew_seconds`` (TANDEM_MAX_RETENTION_CLOCK_SKEW_SECONDS) reaches
    the storage a server opens: a purge ran with a clock 2 minutes ahead of this server's,
    past a recording's retention; by default (an hour) this server refuses the recording;
    set to a minute, it believes the purge only a minute ahead and still plays it."""

    async def judged(skew: str | None, schema: str | None) -> bool:
        environ = {} if skew is None else {"TANDEM_MAX_RETENTION_CLOCK_SKEW_SECONDS": skew}
        url = f"{PG_DSN}?search_path={schema}" if schema else None
        settings = Settings.load(environ=environ, data_dir=tmp_path / "data", database_url=url)
        storage = await open_storage(settings)
        try:
            if await storage.get_recording("r1") is None:
                await storage.add_org(OrgRecord("acme", "Acme", 0.0, retention_days=1))
                await storage.add_recording(*owned(recording("r1", "acme", 990.0)))
                await storage.end_recording("r1", 1000.0, "stopped")
                held = HoldRecord("acme", "recording", "r1", "case", "ada", 30.0)
                assert await storage.put_hold(of_org("acme"), held)
                # The purge's clock, past the retention (the hold keeps the recording).
                assert await storage.purge_recordings(1000.0 + DAY + 60) == []
                await storage.delete_hold(of_org("acme"), "recording", "r1")
            mine = 1000.0 + DAY - 60  # this server's clock: 2 minutes behind the purge's
            return await storage.read_recording("r1", now=mine) is not None
        finally:
            await storage.close()

    async with contextlib.AsyncExitStack() as stack:
        schema = None
        if backend == "postgres":
            schema = await stack.enter_async_context(fresh_schema(migrated=True))
        assert not await judged(None, schema)  # the default: an hour ahead believed
        assert not await judged("3600", schema)
        assert await judged("60", schema)  # a minute: the purge's clock believed only so far
        assert await judged("0", schema)  # this server's own clock alone


async def test_the_list_of_recordings_leaves_out_those_past_their_retention(
    storage: Storage,
) -> None:
    """Found by the third recordings review (left then): a recording past its retention (no
    legal hold) was refused for playback, download and export, but the console's list (and
    ``GET /api/recordings/{id}``) still showed who recorded whom, when, on which site, until the
    purge erased it. It is left out of the list and looked up as erased (404) from the moment
    its retention ends, as its content is, by the purges' clock too when that is ahead; a
    running one, one within its retention and one under a legal hold are listed."""
    now = [1000.0 + DAY]
    recordings = Recordings(storage, _unrecorded, clock=lambda: now[0])
    auditor = Principal(username="aud", display_name="Aud", role="auditor", org="acme")
    await storage.add_org(OrgRecord("acme", "Acme", 0.0, retention_days=1))
    for recording_id, ended_at in (("r-old", 1000.0), ("r-held", 1000.0), ("r-new", 2000.0)):
        await storage.add_recording(*owned(recording(recording_id, "acme", ended_at - 10)))
        await storage.end_recording(recording_id, ended_at, "stopped")
    await storage.add_recording(*owned(recording("r-live", "acme", 5.0)))
    held = HoldRecord("acme", "recording", "r-held", "case", "ada", 30.0)
    assert await storage.put_hold(of_org("acme"), held)

    async def listed() -> set[str]:
        return {r.recording_id for r in await recordings.list(auditor)}

    everything = {"r-old", "r-held", "r-new", "r-live"}
    assert await listed() == everything  # r-old's last moment
    assert (await recordings.get(auditor, "r-old")).recording_id == "r-old"
    now[0] += 1
    assert await listed() == everything - {"r-old"}
    with pytest.raises(NotFoundError):
        await recordings.get(auditor, "r-old")
    assert await storage.get_recording("r-old") is not None  # not purged yet: left out
    assert (await recordings.get(auditor, "r-held")).recording_id == "r-held"
    # A purge whose clock is ahead found r-new expired (held then, the hold lifted since):
    # a server whose clock is behind lists it no more either.
    held = HoldRecord("acme", "recording", "r-new", "case", "ada", 30.0)
    assert await storage.put_hold(of_org("acme"), held)
    purged = await storage.purge_recordings(2000.0 + DAY + 60)
    assert [r.recording_id for r in purged] == ["r-old"]
    await storage.delete_hold(of_org("acme"), "recording", "r-new")
    now[0] = 2000.0 + DAY - 60
    assert await listed() == {"r-held", "r-live"}
    with pytest.raises(NotFoundError):
        await recordings.get(auditor, "r-new")


async def _unrecorded(*args: object, **fields: object) -> None:
    """Records nothing (the list and the look-up of a recording record nothing)."""


@pytest.mark.parametrize("erasure", ["recording", "subject"])
async def test_an_erasure_among_back_to_back_playbacks_is_done_in_turn(
    erasure: str, storage: Storage
) -> None:
    """Three auditors' consoles play one recording back to back while an admin erases it (or
    its customer): the erasure is done (on PostgreSQL the gates queue it behind only the reads
    under way when it asked: row locks alone let every later reader in ahead of it, until its
    database timeout; on SQLite storage calls run one at a time, in turn), and no read begun
    after it returned gives anything out. (Three readers seldom keep a row locked without a
    gap, so this passed before the gates too: what shows the queue is
    tests/server/test_recording_lock_races.py::test_a_playback_begun_while_an_erasure_waits_never_goes_ahead_of_it.)"""
    await storage.add_org(OrgRecord("acme", "Acme", 0.0, retention_days=30))
    await storage.record_session_start(of_org("acme"), "s-r1", 10.0, "demo")
    await storage.add_recording(*owned(recording("r1", "acme")))
    await storage.append_recording_frames("r1", 0, [b"one", b"two"])
    await storage.end_recording("r1", 1000.0, "stopped")
    await storage.record_session_end("s-r1", 1000.0, "customer_left", "Alice")
    going, erased = asyncio.Event(), asyncio.Event()
    reads: list[tuple[bool, bool]] = []  # (begun after the erasure returned, given out)

    async def replaying() -> None:
        while not erased.is_set() or len(reads) < 12:
            after = erased.is_set()
            got = await storage.read_recording("r1", now=2000.0)
            assert got is None or got[1] == [b"one", b"two"]
            reads.append((after, got is not None))
            if len(reads) >= 6:
                going.set()

    players = [asyncio.create_task(replaying()) for _ in range(3)]
    try:
        await going.wait()  # the playbacks are going
        if erasure == "recording":
            assert await storage.delete_recording("r1")
        else:
            done = await storage.erase_subject(of_org("acme"), "s-r1", ["s-r1"])
            assert done.recordings == ("r1",)
        erased.set()
    finally:
        erased.set()
        await asyncio.gather(*players)
    assert any(given for after, given in reads if not after)
    assert not [given for after, given in reads if after and given]
    assert await storage.get_recording("r1") is None


async def _recordings_beyond_the_lock_table(db: asyncpg.Connection, count: int = 0) -> int:
    """Copies of recording ``r0`` (its session, its organisation), ``count`` of them, or as
    many as three times the database's lock table holds (``max_locks_per_transaction`` for each
    connection it allows: a transaction taking one advisory lock each runs out of shared memory
    well before); how many recordings there are now."""
    if not count:
        room = await db.fetchval(
            "SELECT current_setting('max_locks_per_transaction')::int"
            " * (current_setting('max_connections')::int"
            " + current_setting('max_prepared_transactions')::int)"
        )
        count = 3 * int(room)
    columns = [
        str(row[0])
        for row in await db.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'recordings'"
            " ORDER BY ordinal_position"
        )
    ]
    chosen = ", ".join("'r' || g" if c == "recording_id" else f'r."{c}"' for c in columns)
    named = ", ".join(f'"{c}"' for c in columns)
    await db.execute(
        f"INSERT INTO recordings ({named}) SELECT {chosen} FROM recordings r,"
        f" generate_series(1, {count}) g WHERE r.recording_id = 'r0'"
    )
    return int(await db.fetchval("SELECT count(*) FROM recordings"))


@pytest.mark.parametrize("reader", ["erasure", "export"])
async def test_a_customer_with_more_recordings_than_the_lock_table_holds_is_erased_and_exported(
    reader: str,
) -> None:
    """Found by the review of the recordings' gates (PostgreSQL advisory locks): the erasure of
    a customer took one exclusive gate per recording, and their export one shared gate per
    recording it held or listed, each an entry of PostgreSQL's shared lock table
    (``max_locks_per_transaction`` times the connections, 6 400 by default): a customer
    recorded more often than that (a shared account, years of sessions) could not be erased,
    nor exported (*out of shared memory*, 503, at every try), and while it tried, every other
    transaction of the cluster needing a lock could fail the same way. A transaction takes at
    most GATE_BUDGET gates and two wide locks now, whatever the number of recordings
    (``test_a_transaction_takes_at_most_its_budget_of_gates``)."""
    async with fresh_schema(migrated=True) as schema:
        store = await SQLStorage.connect(PG_DSN, schema=schema)
        db = await pg_connect(schema)
        try:
            await store.add_org(OrgRecord("acme", "Acme", 0.0, retention_days=30))
            await store.record_session_start(of_org("acme"), "s-r0", 10.0, "demo")
            await store.add_recording(*owned(recording("r0", "acme")))
            await store.append_recording_frames("r0", 0, [b"one"])
            await store.end_recording("r0", 1000.0, "stopped")
            await store.record_session_end("s-r0", 1000.0, "customer_left", "Alice")
            count = await _recordings_beyond_the_lock_table(db)
            if reader == "erasure":
                done = await store.erase_subject(of_org("acme"), "s-r0", ["s-r0"])
                assert len(done.recordings) == count
                assert await db.fetchval("SELECT count(*) FROM recordings") == 0
            else:
                ids = [str(r[0]) for r in await db.fetch("SELECT recording_id FROM recordings")]
                read = await store.read_for_export(["s-r0"], ["r0"], listed_ids=ids)
                assert read is not None and read.frames == [[b"one"]]
        finally:
            await db.close()
            await store.close()


async def test_a_reader_whose_server_stops_mid_read_holds_no_erasure_for_ever() -> None:
    """Found by the review of the recordings' gates: a server that stops in the middle of a
    playback's transaction, its connection left open (a paused container or VM, a process
    stopped, a network partition PostgreSQL only notices after TCP keep-alive's two hours),
    held the recording's gate and row for as long: every erasure of it failed after its
    database timeout (503, again at every try), and each playback asked while one waited
    queued behind it. PostgreSQL now ends such a transaction once it has waited for its
    client twice as long as one statement may take (``idle_in_transaction_session_timeout``,
    twice the reader's ``database_timeout_seconds``): the erasure, waiting longer, goes
    through, and the stopped reader, when it goes on, fails and gives out nothing."""
    async with fresh_schema(migrated=True) as schema:
        reader = await SQLStorage.connect(PG_DSN, schema=schema, timeout=1.0)
        eraser = await SQLStorage.connect(PG_DSN, schema=schema, timeout=10.0)
        db = await pg_connect(schema)
        try:
            await eraser.add_org(OrgRecord("acme", "Acme", 0.0, retention_days=30))
            await eraser.add_recording(*owned(recording("r1", "acme")))
            await eraser.append_recording_frames("r1", 0, [b"one"])
            await eraser.end_recording("r1", 1000.0, "stopped")
            stopped, resumed = asyncio.Event(), asyncio.Event()
            gate = reader._recording_gate

            def stopping(*args: object, **kwargs: object) -> None:
                gate(*args, **kwargs)  # type: ignore[arg-type]
                stopped.set()
                await_(resumed.wait())  # the server stops here, its transaction open

            reader._recording_gate = stopping  # type: ignore[assignment,method-assign]
            reading = asyncio.create_task(reader.read_recording("r1", now=2000.0))
            await stopped.wait()
            assert await db.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            )
            assert await eraser.delete_recording("r1")  # failed: StorageError after 10 s
            resumed.set()
            with pytest.raises(StorageError):
                await reading
            assert await eraser.get_recording("r1") is None
        finally:
            resumed.set()
            await db.close()
            await reader.close()
            await eraser.close()


class Gated:
    """A storage's gates, watched: the backend of the transaction that takes them (its pid), and
    with ``pause``, that transaction stopped right after taking them, its locks held, until
    :attr:`resumed` is set."""

    def __init__(self, store: SQLStorage, *, pause: bool) -> None:
        self.asked, self.stopped, self.resumed = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self.pid = 0
        gate = store._recording_gate

        def watched(db: Any, recording_ids: Any, *, exclusive: bool) -> None:
            self.pid = int(db.execute(sa.select(sa.func.pg_backend_pid())).rows[0][0])
            self.asked.set()
            gate(db, recording_ids, exclusive=exclusive)
            if pause:
                self.stopped.set()
                await_(self.resumed.wait())

        store._recording_gate = watched  # type: ignore[assignment,method-assign]

    async def locks(self, db: asyncpg.Connection, *, granted: bool = True) -> set[tuple[int, str]]:
        rows = await db.fetch(
            "SELECT objid, mode FROM pg_locks WHERE locktype = 'advisory' AND classid = $1"
            " AND pid = $2 AND granted = $3",
            RECORDING_GATE_CLASS,
            self.pid,
            granted,
        )
        return {(int(row[0]), str(row[1])) for row in rows}


async def _many_recordings(store: SQLStorage, db: asyncpg.Connection) -> list[str]:
    """Recording ``r0`` of customer session ``s-r0`` and copies of it: more gates' worth than a
    transaction takes one by one (:data:`GATE_BUDGET`); their ids."""
    await store.add_org(OrgRecord("acme", "Acme", 0.0, retention_days=30))
    await store.record_session_start(of_org("acme"), "s-r0", 10.0, "demo")
    await store.add_recording(*owned(recording("r0", "acme")))
    await store.append_recording_frames("r0", 0, [b"one"])
    await store.end_recording("r0", 1000.0, "stopped")
    await store.record_session_end("s-r0", 1000.0, "customer_left", "Alice")
    await _recordings_beyond_the_lock_table(db, 4 * GATE_BUDGET)
    ids = sorted(str(row[0]) for row in await db.fetch("SELECT recording_id FROM recordings"))
    assert len({_gate_key(i) for i in ids}) > GATE_BUDGET
    return ids


@pytest.mark.parametrize("reader", ["erasure", "export"])
async def test_a_transaction_takes_at_most_its_budget_of_gates(reader: str) -> None:
    """Found by review: with the recordings' 1 024 gates shared, a customer's erasure or export
    still took a gate for each of their recordings' keys, up to 1 024 entries of PostgreSQL's
    shared lock table (``max_locks_per_transaction``, 64 by default, times the connections, for
    the whole cluster): a few large customers erased or exported at once filled it, and every
    other transaction of the cluster needing a lock failed (*out of shared memory*) while they
    ran. One naming more than GATE_BUDGET gates now takes a wide lock instead."""
    async with fresh_schema(migrated=True) as schema:
        store = await SQLStorage.connect(PG_DSN, schema=schema)
        db = await pg_connect(schema)
        gated = Gated(store, pause=True)
        try:
            ids = await _many_recordings(store, db)
            if reader == "erasure":
                task = asyncio.create_task(store.erase_subject(of_org("acme"), "s-r0", ["s-r0"]))
                expected = {(EVERY_RECORDING, "ExclusiveLock")}
            else:
                task = asyncio.create_task(store.read_for_export(["s-r0"], ["r0"], listed_ids=ids))
                expected = {(EVERY_RECORDING, "ShareLock"), (MANY_READ, "ShareLock")}
            await gated.stopped.wait()
            assert await gated.locks(db) == expected
            gated.resumed.set()
            if reader == "erasure":
                assert len((await task).recordings) == len(ids)
                assert await db.fetchval("SELECT count(*) FROM recordings") == 0
            else:
                read = await task
                assert read is not None and read.frames == [[b"one"]]
        finally:
            gated.resumed.set()
            await db.close()
            await store.close()


# (what is held first, what comes second and must wait for it, what the second then finds)
QUEUED = [
    ("export of many", "erasure of one of them", "erased after the export"),
    ("erasure of one", "export of many", "the export finds it gone"),
    ("erasure of many", "playback of one of them", "the playback finds it gone"),
    ("playback of one", "erasure of many", "erased after the playback"),
    ("erasure of one", "playback of it", "the playback finds it gone"),
]


@pytest.mark.parametrize(("first", "second", "found"), QUEUED)
async def test_readers_and_erasures_of_many_recordings_queue_behind_each_other(
    first: str, second: str, found: str
) -> None:
    """The wide locks keep the gates' promise: an erasure waits for every reader of what it
    erases, and a reader asked after an erasure waits for it and finds what it erased gone,
    whichever of the two names more recordings than GATE_BUDGET gates."""
    async with fresh_schema(migrated=True) as schema:
        one = await SQLStorage.connect(PG_DSN, schema=schema)
        other = await SQLStorage.connect(PG_DSN, schema=schema)
        db = await pg_connect(schema)
        held, waiting = Gated(one, pause=True), Gated(other, pause=False)
        try:
            ids = await _many_recordings(one, db)
            target = ids[len(ids) // 2]

            def run(store: SQLStorage, what: str) -> asyncio.Task[Any]:
                calls = {
                    "export of many": lambda: store.read_for_export(
                        ["s-r0"], ["r0"], listed_ids=ids
                    ),
                    "erasure of one": lambda: store.delete_recording(target),
                    "erasure of one of them": lambda: store.delete_recording(target),
                    "erasure of many": lambda: store.erase_subject(
                        of_org("acme"), "s-r0", ["s-r0"]
                    ),
                    "playback of one": lambda: store.read_recording(target, now=2000.0),
                    "playback of one of them": lambda: store.read_recording(target, now=2000.0),
                    "playback of it": lambda: store.read_recording(target, now=2000.0),
                }
                return asyncio.create_task(calls[what]())

            before = run(one, first)
            await held.stopped.wait()
            after = run(other, second)
            await waiting.asked.wait()
            while not await waiting.locks(db, granted=False):  # queued behind the first
                assert not after.done(), await after
                await asyncio.sleep(0.01)  # polling PostgreSQL's view of the queue
            assert not after.done()
            held.resumed.set()
            first_result, second_result = await before, await after
            if found.startswith("erased after"):
                assert first_result is not None
                assert second_result
                assert await one.get_recording(target) is None
            else:
                assert first_result
                assert second_result is None  # nothing read of what was erased
        finally:
            held.resumed.set()
            await db.close()
            await one.close()
            await other.close()


def _as_before_the_wide_locks(store: SQLStorage) -> None:
    """``store`` takes the recordings' gates as a server of the version before the wide locks
    did (a cluster mid-upgrade): a gate per key, however many, and no wide lock."""

    def gate(db: Any, recording_ids: Any, *, exclusive: bool) -> None:
        lock = sa.func.pg_advisory_xact_lock if exclusive else sa.func.pg_advisory_xact_lock_shared
        for key in sorted({_gate_key(recording_id) for recording_id in recording_ids}):
            db.execute(sa.select(lock(sa.literal(RECORDING_GATE_CLASS), sa.literal(key))))

    store._recording_gate = gate  # type: ignore[assignment,method-assign]


# (the old server's, held once it took its gates; the new server's, which goes ahead of it)
MIXED = [
    ("playback of one", "erasure of many"),
    ("erasure of many", "export of many"),
    ("erasure of many", "playback of one"),
]


@pytest.mark.parametrize(("old", "new"), MIXED)
async def test_servers_before_and_after_the_wide_locks_never_read_what_was_erased(
    old: str, new: str
) -> None:
    """Review (a cluster mid-upgrade): a server of the version before takes only gates, one
    after takes a wide lock for many, and the two share no lock: the new one's transaction is
    not queued behind the old one's (the gates' order is lost while both versions run; a reader
    of few takes the same gates on both, and is queued). What
    is read and erased stays right: the rows' own locks (a reader's key share lock, which the
    erasure's DELETE waits for) keep a reader from what an erasure deleted, and an erasure
    from a recording under a read, whichever server each runs on."""
    async with fresh_schema(migrated=True) as schema:
        before_upgrade = await SQLStorage.connect(PG_DSN, schema=schema)
        upgraded = await SQLStorage.connect(PG_DSN, schema=schema)
        db = await pg_connect(schema)
        _as_before_the_wide_locks(before_upgrade)
        held, waiting = Gated(before_upgrade, pause=True), Gated(upgraded, pause=False)
        try:
            ids = await _many_recordings(before_upgrade, db)
            target = ids[len(ids) // 2]

            def run(store: SQLStorage, what: str) -> asyncio.Task[Any]:
                calls = {
                    "playback of one": lambda: store.read_recording(target, now=2000.0),
                    "erasure of many": lambda: store.erase_subject(
                        of_org("acme"), "s-r0", ["s-r0"]
                    ),
                    "export of many": lambda: store.read_for_export(
                        ["s-r0"], ["r0"], listed_ids=ids
                    ),
                }
                return asyncio.create_task(calls[what]())

            first = run(before_upgrade, old)
            await held.stopped.wait()
            if new == "playback of one":
                # A reader of few takes the gates both versions name alike: queued as before.
                second_task = run(upgraded, new)
                await waiting.asked.wait()
                while not await waiting.locks(db, granted=False):
                    assert not second_task.done(), await second_task
                    await asyncio.sleep(0.01)  # polling PostgreSQL's view of the queue
                held.resumed.set()
                first_result, second = await first, await second_task
                assert len(first_result.recordings) == len(ids)
                assert second is None  # the playback finds it gone
            else:
                # Not queued behind the old server's gates: done while they are held.
                second = await run(upgraded, new)
                held.resumed.set()
                first_result = await first
                if old == "playback of one":
                    assert second and len(second.recordings) == len(ids)
                    assert first_result is None  # nothing read of what was erased
                else:
                    assert second is not None  # read whole before the erasure deleted it
                    assert len(first_result.recordings) == len(ids)
            assert await db.fetchval("SELECT count(*) FROM recordings") == 0
        finally:
            held.resumed.set()
            await db.close()
            await before_upgrade.close()
            await upgraded.close()
