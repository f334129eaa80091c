"""Recordings in storage (both backends): their records, frames, erasure and retention; and the
upgrade of a database from the schema before recordings."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
from pathlib import Path

import pytest

from tandem.exceptions import ConflictError, NotFoundError
from tandem.recordings import Recordings
from tandem.storage.base import (
    MAX_RETENTION_CLOCK_SKEW_SECONDS,
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
from tandem.storage.sql import SQLStorage
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
    MAX_RETENTION_CLOCK_SKEW_SECONDS ahead of the reader's own (one far ahead, a server's
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
    far = r2_expiry - MAX_RETENTION_CLOCK_SKEW_SECONDS - 10
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
