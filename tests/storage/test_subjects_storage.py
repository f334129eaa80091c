"""Subjects and legal holds in storage (both backends): a subject keeps one pseudonym, erasure
removes its sessions, recordings, frames and links in one go, and held data outlives retention."""

from __future__ import annotations

import io
import json
import sqlite3
import zipfile
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tandem.audit import AuditLog
from tandem.directory import operator
from tandem.storage.base import HoldRecord, OrgRecord, RecordingRecord, Storage, subject_key
from tandem.storage.schema import recording_frames, recordings, sessions, subject_sessions
from tandem.storage.sql import SQLStorage
from tandem.subjects import Subjects
from tests.conftest import migrated_sqlite
from tests.grants import of_org, owned

DAY = 86400.0


async def test_a_subject_keeps_one_pseudonym_per_organisation(storage: Storage) -> None:
    assert await storage.link_subject(of_org("default"), "c-1", "s1", "p-a") == "p-a"
    assert await storage.link_subject(of_org("default"), "c-1", "s2", "p-b") == "p-a"
    await storage.record_session_start(of_org("default"), "s1", 10.0, "demo")
    await storage.record_session_start(of_org("default"), "s2", 20.0, "demo")
    assert await storage.subject_sessions(of_org("default"), "c-1") == [
        ("s1", "p-a"),
        ("s2", "p-a"),
    ]
    assert await storage.subject_of_session("s2") == ("default", "c-1", "p-a")
    assert await storage.subject_sessions(of_org("default"), "c-2") == []


async def test_erasing_a_subject_takes_its_sessions_recordings_and_links(
    storage: Storage,
) -> None:
    for sid, sub in (("s1", "c-1"), ("s2", "c-2")):
        await storage.record_session_start(of_org("default"), sid, 10.0, "demo")
        await storage.link_subject(of_org("default"), sub, sid, f"p-{sub}")
        await storage.record_session_end(sid, 20.0, "customer_left", "Alice")
        await storage.add_recording(
            *owned(RecordingRecord(f"r-{sid}", "default", sid, "demo", "alice", "k1", 11.0))
        )
        await storage.append_recording_frames(f"r-{sid}", 0, [b"\x01frame"])
    erased = await storage.erase_subject(of_org("default"), "c-1", ["s1"])
    assert (erased.sessions, erased.recordings, erased.links) == (("s1",), ("r-s1",), 1)
    assert await storage.get_session("s1") is None
    assert await storage.recording_frames("r-s1") == []
    assert await storage.subject_sessions(of_org("default"), "c-1") == []
    assert await storage.get_session("s2") is not None
    assert await storage.recordings_of_sessions(of_org("default"), ["s1", "s2"]) == [
        await storage.get_recording("r-s2")
    ]


async def test_held_recordings_and_sessions_outlive_retention(storage: Storage) -> None:
    for sid in ("s1", "s2", "s3"):
        await storage.record_session_start(of_org("default"), sid, 10.0, "demo")
        await storage.link_subject(of_org("default"), f"c-{sid}", sid, f"p-{sid}")
        await storage.record_session_end(sid, 20.0, "customer_left", "Alice")
        await storage.add_recording(
            *owned(RecordingRecord(f"r-{sid}", "default", sid, "demo", "alice", "k1", 11.0))
        )
        await storage.end_recording(f"r-{sid}", 19.0, "stopped")
    assert await storage.put_hold(
        of_org("default"), HoldRecord("default", "subject", "c-s1", "case", "ada", 30.0)
    )
    assert await storage.put_hold(
        of_org("default"), HoldRecord("default", "recording", "r-s2", "case", "ada", 30.0)
    )
    assert not await storage.put_hold(
        of_org("default"), HoldRecord("default", "recording", "r-s2", "x", "ada", 31.0)
    )
    later = 10_000 * DAY
    purged = await storage.purge_recordings(later)
    await storage.purge_expired(later)
    assert [r.recording_id for r in purged] == ["r-s3"]
    assert [s is not None for s in [await storage.get_session(s) for s in ("s1", "s2", "s3")]] == [
        True,
        True,
        False,
    ]
    assert await storage.subject_sessions(of_org("default"), "c-s3") == []  # gone with its session
    assert await storage.subject_sessions(of_org("default"), "c-s1") == [("s1", "p-s1")]  # held
    lifted = await storage.delete_hold(of_org("default"), "subject", "c-s1")
    assert lifted is not None and lifted.reason == "case"
    assert await storage.delete_hold(of_org("default"), "subject", "c-s1") is None
    assert [r.recording_id for r in await storage.purge_recordings(later)] == ["r-s1"]
    assert [h.target for h in await storage.list_holds(of_org("default"))] == ["r-s2"]


async def test_a_subject_hold_on_a_tokenless_sessions_id_keeps_it_past_retention(
    storage: Storage,
) -> None:
    """A session started without a customer token has no ``sub``: the session is its own
    customer, and a subject hold names it by its id. Another organisation's hold on the same
    string keeps nothing of this one's."""
    await storage.add_org(OrgRecord("acme", "Acme", 0.0))
    for sid in ("s1", "s2", "s3"):
        await storage.record_session_start(of_org("default"), sid, 10.0, "demo")
        await storage.record_session_end(sid, 20.0, "customer_left", "Alice")
        await storage.add_recording(
            *owned(RecordingRecord(f"r-{sid}", "default", sid, "demo", "alice", "k1", 11.0))
        )
        await storage.end_recording(f"r-{sid}", 19.0, "stopped")
    assert await storage.put_hold(
        of_org("default"), HoldRecord("default", "subject", "s1", "case", "ada", 30.0)
    )
    assert await storage.put_hold(
        of_org("acme"), HoldRecord("acme", "subject", "s2", "case", "ada", 30.0)
    )
    later = 10_000 * DAY
    assert [r.recording_id for r in await storage.purge_recordings(later)] == ["r-s2", "r-s3"]
    await storage.purge_expired(later)
    assert [await storage.get_session(s) is not None for s in ("s1", "s2", "s3")] == [
        True,
        False,
        False,
    ]
    assert await storage.delete_hold(of_org("default"), "subject", "s1") is not None
    assert [r.recording_id for r in await storage.purge_recordings(later)] == ["r-s1"]
    await storage.purge_expired(later)
    assert await storage.get_session("s1") is None


CUSTOMER = "erase-me-7f3a9c@example.com"
FRAME = b"\x01recorded-frame-5d1e" * 8


def _on_disk(directory: Path, *marks: bytes) -> list[str]:
    """Files of the data directory that hold any of ``marks`` (the database, its WAL)."""
    return sorted(
        f"{file.name}: {mark!r}"
        for file in directory.iterdir()
        for mark in marks
        if mark in file.read_bytes()
    )


async def _recorded_customer(store: SQLStorage, session_id: str, sub: str, ended: float) -> None:
    await store.record_session_start(of_org("default"), session_id, ended - 10, "demo")
    await store.link_subject(of_org("default"), sub, session_id, f"p-{sub}")
    await store.record_session_end(session_id, ended, "customer_left", "Alice")
    recording = RecordingRecord(
        f"r-{session_id}", "default", session_id, "demo", "alice", "k1", ended - 9
    )
    await store.add_recording(*owned(recording))
    await store.append_recording_frames(f"r-{session_id}", 0, [FRAME + session_id.encode()])
    await store.end_recording(f"r-{session_id}", ended - 1, "stopped_by_customer")


@pytest.mark.parametrize("how", ["subject", "recording", "retention"])
async def test_what_is_erased_leaves_the_data_directory_of_a_running_server(
    tmp_path: Path, how: str
) -> None:
    """SQLite in WAL mode: ``secure_delete`` overwrote an erased row in the database, but the
    pages that held it stayed in the ``-wal`` file while the server ran (the customer's id and
    the recording's frames, readable there and in any backup of the data directory)."""
    store = await SQLStorage.open_sqlite(migrated_sqlite(tmp_path / "db.sqlite3"))
    try:
        await _recorded_customer(store, "s1", CUSTOMER, 100.0)
        kept = FRAME + b"s2"
        await _recorded_customer(store, "s2", "someone-else", 100.0 + 25 * DAY)
        marks = (CUSTOMER.encode(), FRAME + b"s1")
        assert _on_disk(tmp_path, *marks)  # written: in the WAL, at least
        if how == "subject":
            await store.erase_subject(of_org("default"), CUSTOMER, ["s1"])
            marks = (CUSTOMER.encode(), FRAME + b"s1")
        elif how == "recording":
            assert await store.delete_recording("r-s1")
            marks = (FRAME + b"s1",)
        else:  # 30 days' retention: s1's recording, session and customer id go, s2's stay
            later = 100.0 + 31 * DAY
            assert [r.recording_id for r in await store.purge_recordings(later)] == ["r-s1"]
            await store.purge_expired(later)
            marks = (CUSTOMER.encode(), FRAME + b"s1")
        assert _on_disk(tmp_path, *marks) == []  # still running: nothing closed the file yet
        assert await store.recording_frames("r-s2") == [kept]
    finally:
        await store.close()


async def test_a_reader_holding_the_wal_delays_its_emptying_to_the_next_purge_not_the_erasure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process reading the file (an operator's ``sqlite3`` shell) holds the log back:
    the erasure still passes (its audit record is still to be written), and the next purge
    empties the log once the reader is gone."""
    store = await SQLStorage.open_sqlite(migrated_sqlite(tmp_path / "db.sqlite3"))
    reader = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    try:
        await _recorded_customer(store, "s1", CUSTOMER, 100.0)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM sessions").fetchone()  # a snapshot: holds the log
        erased = await store.erase_subject(of_org("default"), CUSTOMER, ["s1"])
        assert erased.sessions == ("s1",) and erased.recordings == ("r-s1",)
        assert "the write-ahead log was not emptied" in caplog.text
        assert _on_disk(tmp_path, CUSTOMER.encode())  # still in the log, for now
        reader.execute("COMMIT")
        await store.purge_expired(200.0)
        assert _on_disk(tmp_path, CUSTOMER.encode(), FRAME + b"s1") == []
    finally:
        reader.close()
        await store.close()


@pytest.mark.parametrize("kind", ["recording", "customer", "tokenless session"])
async def test_a_customers_export_tells_them_of_no_legal_hold(storage: Storage, kind: str) -> None:
    """GDPR Art. 15 with Art. 23(1)(d), (j): a legal hold is evidence kept for a case, its
    reason often naming it. A hold on the customer's recording was in their export (its record
    names the recording), reason and all, telling a person under investigation of it; holds on
    the customer or on a tokenless session were not. None is, whatever it is placed on; the
    manifest says so in every export alike (so its saying so tells nothing), and the admin's
    own look-up still shows the records."""
    records: list[tuple[str, dict[str, object]]] = []
    log = AuditLog(storage, b"k" * 32, anchor_every=5)

    async def record(action: str, **fields: Any) -> None:
        records.append((action, fields))
        await log.record(100.0, action, **fields)

    subjects = Subjects(storage, record, lambda: 100.0)
    tokenless = kind == "tokenless session"
    await storage.record_session_start(of_org("default"), "s1", 10.0, "demo")
    if not tokenless:
        await storage.link_subject(of_org("default"), "c-1", "s1", "p-c1")
    await storage.record_session_end("s1", 20.0, "customer_left", "Alice")
    await storage.add_recording(
        *owned(RecordingRecord("r-s1", "default", "s1", "demo", "alice", "k1", 11.0))
    )
    await storage.append_recording_frames("r-s1", 0, [b"\x01frame"])
    await storage.end_recording("r-s1", 19.0, "stopped")
    target = {"recording": "r-s1", "customer": "c-1", "tokenless session": "s1"}[kind]
    hold_kind = "recording" if kind == "recording" else "subject"
    admin = operator("default")
    await subjects.place_hold(admin, hold_kind, target, "fraud case 2026-77 against them")
    await subjects.lift_hold(admin, hold_kind, target, "fraud case 2026-77 closed")
    await subjects.place_hold(admin, hold_kind, target, "fraud case 2026-78 against them")
    looked_up = await subjects.find(admin, "s1")
    if kind == "recording":  # the admin's look-up shows the records it finds
        assert len([r for r in looked_up.audit if r.action.startswith("legal_hold")]) == 3
    _, archive = await subjects.export(admin, "s1")
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        everything = b"".join(opened.read(name) for name in opened.namelist())
        manifest = json.loads(opened.read("manifest.json"))
    assert b"fraud case" not in everything
    assert b"legal_hold" not in everything
    assert "legal holds" in manifest["withheld"]
    exported = [fields for action, fields in records if action == "subject_exported"]
    assert exported[-1]["audit_records"] == manifest["audit_records"] + manifest["reports"]


MANY = 33_100
"""More than a statement may bind: asyncpg refuses more than 32 767 arguments, and SQLite more
than SQLITE_MAX_VARIABLE_NUMBER (32 766 by default since SQLite 3.32)."""
SQLITE_DEFAULT_VARIABLES = 32_766


async def _many_sessions_of(store: SQLStorage, sub: str, count: int) -> None:
    """``count`` ended sessions of the customer ``sub``, each with a recording of one frame,
    written at once: one statement per table (PostgreSQL: COPY)."""
    ids = [f"s-{n:05}" for n in range(count)]
    rows: dict[sa.Table, list[dict[str, Any]]] = {
        sessions: [
            {
                "session_id": sid,
                "created_at": 10.0 + n,
                "ended_at": 20.0 + n,
                "end_reason": "customer_left",
                "agent": "Alice",
                "org_id": "default",
                "site_id": "demo",
                "node": "",
                "state": "ended",
            }
            for n, sid in enumerate(ids)
        ],
        subject_sessions: [
            {
                "session_id": sid,
                "org_id": "default",
                "subject": sub,
                "pseudonym": "p-many",
                "subject_key": subject_key(sub),
            }
            for sid in ids
        ],
        recordings: [
            {
                "recording_id": f"r-{sid}",
                "org_id": "default",
                "session_id": sid,
                "site_id": "demo",
                "agent": "alice",
                "key_id": "k1",
                "started_at": 11.0 + n,
                "ended_at": 19.0 + n,
                "end_reason": "stopped",
                "frames": 1,
                "size": len(sid),
            }
            for n, sid in enumerate(ids)
        ],
        recording_frames: [
            {"recording_id": f"r-{sid}", "seq": 0, "data": sid.encode()} for sid in ids
        ],
    }
    if store._postgres:
        async with store._pool.acquire() as db, db.transaction():
            for table, each in rows.items():
                columns = list(each[0])
                await db.copy_records_to_table(
                    table.name,
                    records=[tuple(r[c] for c in columns) for r in each],
                    columns=columns,
                )
        return

    def write(db: Any) -> None:
        for table, each in rows.items():
            db.execute(table.insert(), each)

    await store._transaction(write)


async def test_a_customer_with_more_sessions_and_recordings_than_a_statement_binds_is_exported_and_erased(  # noqa: E501
    storage: Storage,
) -> None:
    """Found by a review: the export of a customer read their sessions, recordings and trail
    with one ``IN`` list each, one bound parameter per id, and the erasure deleted with them;
    past 32 767 ids asyncpg refuses the statement (and SQLite past its build's limit), so a
    customer with that many recordings could not be exported, nor one with that many sessions
    erased, at every try: a compliance failure. This SQLite allows more variables than most
    builds do; the test lowers it to SQLite's default."""
    assert isinstance(storage, SQLStorage)
    if not storage._postgres:
        await storage._on_sqlite(
            lambda connection: connection.setlimit(
                sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, SQLITE_DEFAULT_VARIABLES
            )
        )
    await _many_sessions_of(storage, CUSTOMER, MANY)
    records: list[tuple[str, dict[str, Any]]] = []
    log = AuditLog(storage, b"k" * 32, anchor_every=1000)

    async def record(action: str, **fields: Any) -> None:
        records.append((action, fields))
        await log.record(100.0 + MANY, action, **fields)

    subjects = Subjects(storage, record, lambda: 100.0 + MANY)
    admin = operator("default")
    _, archive = await subjects.export(admin, CUSTOMER, "sub")
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        manifest = json.loads(opened.read("manifest.json"))
        stored = json.loads(opened.read("sessions.json"))
        files = [name for name in opened.namelist() if name.startswith("recordings/")]
    assert manifest["sessions"] == MANY
    assert len(stored["linked"]) == len(stored["stored"]) == MANY
    assert len(manifest["recordings"]) == len(files) == MANY
    assert not manifest["recordings_left_out"]

    erased = await subjects.erase(admin, CUSTOMER, "sub")
    assert erased["session_records"] == MANY and len(erased["recordings"]) == MANY  # type: ignore[arg-type]
    assert erased["links"] == MANY

    def counted(db: Any) -> list[int]:
        return [
            int(db.execute(sa.select(sa.func.count()).select_from(table)).rows[0][0])
            for table in (sessions, subject_sessions, recordings, recording_frames)
        ]

    assert await storage._session(counted) == [0, 0, 0, 0]
    assert [action for action, _ in records] == ["subject_exported", "subject_erased"]
