"""A customer's export (tandem.subjects.Subjects.export) is one moment's view, on both
databases: the trail it hands out is every record concerning the sessions and recordings it
lists, as they were then.

Found by the second recordings review: the export's look-up read the customer's links, their
sessions, their recordings, then the audit trail, each on its own, before the export's
transaction; what happened between those reads went out listed one way and told the other way
in the trail. Here it happens at the worst moment: just before the look-up reads the trail."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import zipfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tandem.config import Settings
from tandem.exceptions import ConflictError
from tandem.recordings import read_container
from tandem.server import compliance_api
from tandem.storage.base import RecordingRecord, Storage
from tandem.storage.sql import SQLStorage
from tandem.subjects import EXPORT_ATTEMPTS, Subjects
from tests.grants import of_org, owned
from tests.server.test_recording_playback_races import until
from tests.storage.conftest import PG_DSN, fresh_schema, pg_connect
from tests.test_subjects import ADMIN, SUB, World


async def built(storage: Storage) -> World:
    assert isinstance(storage, SQLStorage)
    world = World(storage, X25519PrivateKey.generate())
    await world.build()
    return world


def before_the_trail(
    world: World, meanwhile: Callable[[int], Awaitable[None]], after: bool = False
) -> list[int]:
    """Run ``meanwhile(n)`` as each look-up (the n-th, from 0) is about to read the trail,
    after it read the customer's links, sessions and recordings (``after``: once it has read
    the trail, before the export's transaction); the look-ups counted."""
    read = world.storage.audit_concerning
    calls: list[int] = []

    async def late(grant: Any, subjects: Sequence[str], actors: Sequence[str]) -> Any:
        calls.append(len(calls))
        if not after:
            await meanwhile(calls[-1])
        found = await read(grant, subjects, actors)
        if after:
            await meanwhile(calls[-1])
        return found

    world.storage.audit_concerning = late  # type: ignore[method-assign]
    return calls


def archive_of(archive: bytes) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    """The manifest, the sessions listed and every record handed out (trail and reports)."""
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        manifest = json.loads(opened.read("manifest.json"))
        sessions = json.loads(opened.read("sessions.json"))["linked"]
        records = [
            json.loads(line)
            for name in ("audit.jsonl", "reports.jsonl")
            for line in opened.read(name).decode().splitlines()
        ]
    return manifest, sessions, records


async def test_a_session_begun_during_the_look_up_is_listed_with_its_records(
    storage: Storage,
) -> None:
    """The customer starts a new session (linked to their pseudonym, its records written by
    them) after the look-up read their links, before it read the trail: the archive listed one
    session and handed out the records of two. Now the export finds the customer again and
    lists both, with their records."""
    world = await built(storage)

    async def new_session(n: int) -> None:
        if n == 0:
            await world.session("s2", SUB, "p-first")

    calls = before_the_trail(world, new_session)
    _, archive = await world.subjects.export(ADMIN, SUB, by="sub")
    manifest, sessions, records = archive_of(archive)
    named = {r["subject"] for r in records} | {
        r["subject"] for r in records if r["actor"].startswith("customer:")
    }
    listed = set(sessions) | {r["recording_id"] for r in manifest["recordings"]}
    assert named <= listed, (named, listed)
    assert sorted(sessions) == ["s1", "s2"] and manifest["sessions"] == 2
    assert len(calls) == 2  # found again once
    [exported] = [r for r in await storage.audit_records() if r.action == "subject_exported"]
    assert exported.details["sessions"] == 2
    assert exported.details["audit_records"] == len(records)


async def test_a_left_out_recording_erased_during_the_look_up_is_neither_listed_nor_named(
    storage: Storage,
) -> None:
    """The customer's recording, too large for the archive (listed, to be exported alone), is
    erased after the look-up read it, before it read the trail: the archive listed it, beside
    the trail's record of its erasure, and the export's record named it after
    ``recording_erased``. It is held now as the recordings read are: found gone, nothing goes
    out (409, ask again) and nothing is recorded."""
    world = await built(storage)
    r1 = await storage.get_recording("r1")
    assert r1 is not None
    small = Subjects(storage, world.record, world.clock, max_export_bytes=r1.size - 1)

    async def erase(n: int) -> None:
        if n == 0:
            await world.recordings.erase(ADMIN, "r1")

    before_the_trail(world, erase)
    with pytest.raises(ConflictError, match="erased meanwhile"):
        await small.export(ADMIN, SUB, by="sub")
    actions = [r.action for r in await storage.audit_records()]
    assert actions[-1] == "recording_erased" and "subject_exported" not in actions
    # Asked again: the archive lists no recording, and its record names none.
    _, archive = await small.export(ADMIN, SUB, by="sub")
    manifest, _, records = archive_of(archive)
    assert manifest["recordings"] == [] and manifest["recordings_left_out"] == []
    assert "r1" not in {r["subject"] for r in records}


async def test_the_trail_handed_out_is_the_one_the_exports_transaction_reads(
    storage: Storage,
) -> None:
    """The customer's page reports (a record by them) after the look-up read the trail: the
    archive hands out the trail as its transaction reads it, that report too, and its record
    counts what it handed out (read before, the trail was an older one than the sessions and
    recordings the transaction held)."""
    world = await built(storage)

    async def report(n: int) -> None:
        await world.record("page_paused", actor="customer:p-first", org="default", subject="s1")

    calls = before_the_trail(world, report, after=True)
    _, archive = await world.subjects.export(ADMIN, SUB, by="sub")
    assert len(calls) == 1  # no need to find the customer again: nothing they had changed
    _, _, records = archive_of(archive)
    assert "page_paused" in {r["action"] for r in records}
    trail = await storage.audit_records()
    [exported] = [r for r in trail if r.action == "subject_exported"]
    before = [r for r in trail if r.seq < exported.seq and r.org == "default"]
    concerning = [r for r in before if r.subject in ("s1", "r1") or r.actor == "customer:p-first"]
    assert sorted(r["seq"] for r in records) == sorted(r.org_seq for r in concerning)
    assert exported.details["audit_records"] == len(records)


async def test_an_export_whose_customer_keeps_changing_is_refused_after_its_attempts(
    storage: Storage,
) -> None:
    """The customer starts a new session after every look-up read the trail: each attempt's
    transaction finds the customer changed; after EXPORT_ATTEMPTS, 409 (ask again), nothing
    given out, nothing recorded."""
    world = await built(storage)

    async def new_session(n: int) -> None:
        await world.session(f"s-new-{n}", SUB, "p-first")

    calls = before_the_trail(world, new_session, after=True)
    with pytest.raises(ConflictError, match="changed while it was exported"):
        await world.subjects.export(ADMIN, SUB, by="sub")
    assert len(calls) == EXPORT_ATTEMPTS
    actions = [r.action for r in await storage.audit_records()]
    assert "subject_exported" not in actions


@pytest.mark.parametrize("attempts", ["1", "5"])
async def test_the_export_attempts_setting_is_how_often_a_changing_customer_is_looked_up(
    attempts: str, storage: Storage
) -> None:
    """``subject_export_attempts`` (TANDEM_SUBJECT_EXPORT_ATTEMPTS) reaches the exports the
    admin API makes (tandem.server.compliance_api): a customer who changes after every look-up
    is looked up that many times, then refused (409), nothing given out or recorded."""
    world = await built(storage)
    settings = Settings.load(
        environ={"TANDEM_SUBJECT_EXPORT_ATTEMPTS": attempts}, data_dir=Path("unused")
    )
    services = SimpleNamespace(
        storage=storage,
        hub=SimpleNamespace(record=world.record, witness=None),
        clock=world.clock,
        settings=settings,
    )
    subjects = compliance_api._subjects(SimpleNamespace(services=services))  # type: ignore[arg-type]

    async def new_session(n: int) -> None:
        await world.session(f"s-new-{n}", SUB, "p-first")

    calls = before_the_trail(world, new_session, after=True)
    with pytest.raises(ConflictError, match="changed while it was exported"):
        await subjects.export(ADMIN, SUB, by="sub")
    assert len(calls) == int(attempts)
    assert "subject_exported" not in [r.action for r in await storage.audit_records()]


async def test_a_running_recording_goes_out_as_its_listing_counts_it(storage: Storage) -> None:
    """The customer's live session records on; a frame is stored after the look-up read the
    recording (and the trail), before the export's transaction read its frames: the archive's
    file said one frame in its header and carried two. It carries those its header counts."""
    world = await built(storage)
    await storage.record_session_start(of_org("default"), "s3", world.now, "demo")
    await storage.link_subject(of_org("default"), SUB, "s3", "p-first")
    running = RecordingRecord(
        recording_id="r3",
        org_id="default",
        session_id="s3",
        site_id="demo",
        agent="alice",
        key_id="k1",
        started_at=world.now,
    )
    await storage.add_recording(*owned(running))
    await storage.append_recording_frames("r3", 0, [b"\x01first"])

    async def recorded_on(n: int) -> None:
        if n == 0:
            await storage.append_recording_frames("r3", 1, [b"\x01second"])

    before_the_trail(world, recorded_on, after=True)
    _, archive = await world.subjects.export(ADMIN, SUB, by="sub")
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        header, frames = read_container(opened.read("recordings/r3.tandemrec"))
    assert header["frames"] == len(frames) == 1 and frames == [b"\x01first"]


async def test_a_recording_past_its_retention_goes_out_in_no_customer_export(
    storage: Storage,
) -> None:
    """Found by the third recordings review: a recording past its organisation's retention
    (no legal hold) is played and downloaded no more (404, as erased) before the purge erases
    it, but the customer's export still read it whole into the archive, and held it (a key
    share lock) against the purge meanwhile. It goes out in no export now, is listed in none
    and named in no record of one, as if the purge had erased it; one under a legal hold
    still goes."""
    world = await built(storage)
    world.now += 31 * 86400.0  # the default retention is 30 days; r1 ended at T0 + 50
    _, archive = await world.subjects.export(ADMIN, SUB, by="sub")
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        names = opened.namelist()
        listed = json.loads(opened.read("manifest.json"))
    assert not [name for name in names if name.startswith("recordings/")], names
    assert "r1" not in json.dumps(listed)
    exported = [r for r in await storage.audit_records() if r.action == "subject_exported"]
    assert exported[-1].details["recording_ids"] == [] and exported[-1].details["recordings"] == 0
    # Under a legal hold it is kept, and goes out.
    await world.subjects.place_hold(ADMIN, "recording", "r1", "litigation")
    _, archive = await world.subjects.export(ADMIN, SUB, by="sub")
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert "recordings/r1.tandemrec" in opened.namelist()


async def test_playbacks_replayed_during_an_export_never_make_it_retry(storage: Storage) -> None:
    """Tried by the third recordings review (held): someone with playback rights replays the
    customer's recording without a pause, so the trail concerning the customer grows between
    every look-up and its transaction, to have every attempt found changed and the customer's
    export refused (409) for ever. The trail is not part of what must be the same: it is read
    in the transaction, so the export goes out at the first attempt, with the playbacks
    recorded up to that read."""
    world = await built(storage)

    async def replayed(n: int) -> None:
        await world.record("recording_played", actor="aud", org="default", subject="r1")

    calls = before_the_trail(world, replayed, after=True)
    _, archive = await world.subjects.export(ADMIN, SUB, by="sub")
    assert len(calls) == 1
    _, _, records = archive_of(archive)
    assert [r["action"] for r in records].count("recording_played") == 1


async def test_an_export_holding_an_expired_session_never_holds_the_sessions_purge(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found by the third recordings review: a customer's export holds the sessions it lists
    (a key share lock) until its record is committed, and the purge of ended sessions past
    retention waited for it. PostgreSQL lets a new key share lock in ahead of a DELETE waiting
    for an old one, so one organisation's admin exporting a customer whose session is past
    retention, two exports overlapping at all times, kept the installation's purge (every
    organisation's sessions, sign-ins and join codes, one transaction) waiting until its
    database timeout failed it, every run. The purge skips a session held now (``SKIP
    LOCKED``), says so in the log, and takes it at its next run."""
    caplog.set_level(logging.WARNING, logger="tandem.storage")
    async with fresh_schema(migrated=True) as schema:
        store = await SQLStorage.connect(PG_DSN, schema=schema)
        db = await pg_connect(schema)
        watcher = await pg_connect(schema)
        try:
            for session_id in ("s-held", "s-free"):
                await store.record_session_start(of_org("default"), session_id, 10.0, "demo")
                await store.link_subject(of_org("default"), SUB, session_id, "p-first")
                await store.record_session_end(session_id, 20.0, "customer_left", "Alice")
            now = 20.0 + 31 * 86400.0
            async with db.transaction():  # the export's hold on what it lists
                await db.execute("SELECT 1 FROM sessions WHERE session_id = 's-held' FOR KEY SHARE")
                purge = asyncio.create_task(store.purge_expired(now))
                waiting = (
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE 'DELETE FROM sessions%'"
                )

                async def settled() -> bool:
                    return purge.done() or bool(await watcher.fetchval(waiting))

                await until(settled, "the purge neither ended nor waited")
                assert purge.done(), "the purge waits for the export"
                assert await purge == [("default", "s-free")]
                told = [
                    r.getMessage() for r in caplog.records if "left to the next" in r.getMessage()
                ]
                assert len(told) == 1 and "s-held" in told[0], told
            assert await store.purge_expired(now + 60) == [("default", "s-held")]
            assert await store.subject_sessions(of_org("default"), SUB) == []
        finally:
            await watcher.close()
            await db.close()
            await store.close()
