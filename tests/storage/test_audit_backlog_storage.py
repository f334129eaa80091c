"""The audit backlog taken up by a hub at start and written once storage answers, on both
backends (tandem.audit_backlog, SessionHub)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tandem import crypto
from tandem.audit import (
    BACKLOG_LINE,
    WRITE_ID,
    AuditLog,
    backlog_mac_key,
    load_or_create_key,
    make_checkpoint,
    verify,
)
from tandem.audit_backlog import (
    BACKLOG_FILE,
    HEADER,
    REFUSED_FILE,
    WRITTEN_FILE,
    AuditBacklog,
    line_mac,
)
from tandem.compliance import AuditState, Result, audit_state, evaluate
from tandem.config import Settings
from tandem.directory import Directory
from tandem.fanout.memory import MemoryFanout
from tandem.hub import CustomerSeat, SessionHub
from tandem.lockout import SharedBackoff
from tandem.protocol.messages import Create, Stop
from tandem.storage.base import Storage
from tandem.storage.sql import SQLStorage
from tests.test_compliance import compliant

KEY = b"k" * 32
LIMIT = 1 << 20


def append(directory: Path, line: bytes) -> None:
    with (directory / BACKLOG_FILE).open("ab") as file:
        file.write(line)


def file_id(directory: Path) -> str:
    first = (directory / BACKLOG_FILE).read_bytes().splitlines()[0]
    return first.removeprefix(HEADER).decode()


def hub_on(directory: Path, storage: Storage) -> SessionHub:
    settings = Settings.load(environ={}, data_dir=directory)
    throttle = SharedBackoff(storage, 5, 1.0, 60.0, 3600.0)
    return SessionHub(
        settings=settings,
        storage=storage,
        fanout=MemoryFanout(),
        audit=AuditLog(storage, load_or_create_key(settings.audit_key_path)),
        box=crypto.SecretBox(settings.secrets_key_path),
        join_backoff=throttle,
        join_org_backoff=throttle,
        clock=lambda: 1000.0,
        entropy=crypto.system_entropy,
        backlog_dir=directory,
    )


async def test_a_forged_line_is_not_sealed_into_the_trail_at_start_and_the_trail_says_so(
    tmp_path: Path, storage: Storage
) -> None:
    """A real hub on the data directory: the genuine record left by a killed process is written
    with its time; the forged one is not, an ``audit_backlog_refused`` record says which line
    was refused, and the trail verifies."""
    settings = Settings.load(environ={}, data_dir=tmp_path)
    key = load_or_create_key(settings.audit_key_path)
    left = AuditBacklog(tmp_path, backlog_mac_key(key), LIMIT)
    await left.hold(5.0, "user_disabled", {"actor": "ada", "org": "default", "subject": "bob"})
    left.close()
    forged = b'[6.0,"user_enabled",{"actor":"ada","org":"default","subject":"mallory"}]'
    append(tmp_path, line_mac(KEY, file_id(tmp_path), 2, forged).encode() + b" " + forged + b"\n")
    hub = hub_on(tmp_path, storage)
    async with hub:
        pass
    records = await storage.audit_records()
    assert [(r.at, r.subject) for r in records if r.action == "user_disabled"] == [(5.0, "bob")]
    assert not [r for r in records if r.action == "user_enabled"]
    [refused] = [r for r in records if r.action == "audit_backlog_refused"]
    assert refused.details["lines"] == [2] and refused.actor == "server"
    assert refused.details["kept"] is True  # in audit-backlog.refused, for the operator
    assert verify(records, await storage.anchors(), key).ok
    assert not (tmp_path / BACKLOG_FILE).exists()


async def test_two_retries_at_once_write_each_held_record_once(
    tmp_path: Path, storage: Storage
) -> None:
    """The timer retries what failed beside a recording's flush, which retries too (the deadline
    timer runs them together since the fault review): each appended the oldest record held, then
    each dropped one, so the first was on the trail twice and the second never."""
    hub = hub_on(tmp_path, storage)
    await hub._unrecorded.hold(5.0, "user_disabled", {"org": "default", "subject": "bob"})
    await hub._unrecorded.hold(6.0, "user_enabled", {"org": "default", "subject": "bob"})
    gate = asyncio.Event()
    writing = asyncio.Event()
    appending = hub.audit.record

    async def slow_record(at: float, action: str, **fields: Any) -> Any:
        writing.set()
        await gate.wait()  # the database takes a moment
        return await appending(at, action, **fields)

    hub.audit.record = slow_record  # type: ignore[method-assign]
    first = asyncio.create_task(hub._write_what_failed())
    await writing.wait()
    second = asyncio.create_task(hub._write_what_failed())
    await asyncio.sleep(0)  # one turn of the loop: the second runs while the first waits
    gate.set()
    assert await first is None and await second is None
    records = await storage.audit_records()
    assert [(r.action, r.at) for r in records] == [
        ("user_disabled", 5.0),
        ("user_enabled", 6.0),
    ]
    assert not hub._unrecorded


async def held_by_a_killed_server(
    directory: Path, *records: tuple[float, str], identified: bool = False
) -> bytes:
    """What a server killed before the database answered leaves in ``directory`` (records held
    on the disk, of account ``bob``); the file's bytes. ``identified``: each record with its
    identity (WRITE_ID), as the hub keeps them; else without, as an older Tandem kept them."""
    settings = Settings.load(environ={}, data_dir=directory)
    key = load_or_create_key(settings.audit_key_path)
    left = AuditBacklog(directory, backlog_mac_key(key), LIMIT)
    for number, (at, action) in enumerate(records):
        fields = {"actor": "ada", "org": "default", "subject": "bob"}
        if identified:
            fields[WRITE_ID] = f"id{number}"
        await left.hold(at, action, fields)
    left.close()
    return (directory / BACKLOG_FILE).read_bytes()


def written(records: list[Any], action: str) -> list[float]:
    return [r.at for r in records if r.action == action]


async def test_a_taken_up_backlog_put_back_is_not_written_again_and_the_trail_says_so(
    tmp_path: Path, storage: Storage
) -> None:
    """Someone who can write the data directory keeps a copy of a backlog and puts it back once
    the next start took it up (and removed it): each line's MAC bound it to its number only, so
    every record in it was written to the trail again at the following start."""
    copy = await held_by_a_killed_server(tmp_path, (5.0, "user_disabled"), (6.0, "user_enabled"))
    copied_id = file_id(tmp_path)
    async with hub_on(tmp_path, storage):
        pass
    assert not (tmp_path / BACKLOG_FILE).exists()
    (tmp_path / BACKLOG_FILE).write_bytes(copy)  # put back
    async with hub_on(tmp_path, storage):
        pass
    records = await storage.audit_records()
    assert written(records, "user_disabled") == [5.0]
    assert written(records, "user_enabled") == [6.0]
    [replayed] = [r for r in records if r.action == "audit_backlog_replayed"]
    assert replayed.details["lines"] == [1, 2] and replayed.details["count"] == 2
    assert replayed.details["file"] == copied_id and replayed.actor == "server"
    key = load_or_create_key(Settings.load(environ={}, data_dir=tmp_path).audit_key_path)
    assert verify(records, await storage.anchors(), key).ok
    assert not (tmp_path / BACKLOG_FILE).exists()


async def test_a_backlog_copied_from_another_servers_data_directory_is_written_once(
    tmp_path: Path, storage: Storage
) -> None:
    """Two servers on one database share the audit key (a copy of its file): a backlog copied
    from one's data directory into the other's was taken up by both, each record twice."""
    first, second = tmp_path / "first", tmp_path / "second"
    copy = await held_by_a_killed_server(first, (5.0, "user_disabled"))
    second.mkdir(mode=0o700)
    (second / "audit.key").write_bytes((first / "audit.key").read_bytes())
    (second / "audit.key").chmod(0o600)
    (second / BACKLOG_FILE).write_bytes(copy)  # copied before the first server starts again
    async with hub_on(second, storage):
        pass
    async with hub_on(first, storage):
        pass
    records = await storage.audit_records()
    assert written(records, "user_disabled") == [5.0]
    [replayed] = [r for r in records if r.action == "audit_backlog_replayed"]
    assert replayed.details["lines"] == [1]
    assert not (first / BACKLOG_FILE).exists() and not (second / BACKLOG_FILE).exists()


@pytest.mark.parametrize("count", ["removed", "emptied by a power cut"])
async def test_a_lost_count_of_the_lines_written_never_writes_a_record_twice(
    tmp_path: Path, storage: Storage, count: str
) -> None:
    """A server killed while writing its predecessor's backlog: the first record went to the
    trail and was counted beside the file (``audit-backlog.written``). The count is replaced, not
    flushed: a power cut may leave it empty, and someone who can write the data directory may
    remove it (the evidence of what was written): the next start wrote the first record again."""
    settings = Settings.load(environ={}, data_dir=tmp_path)
    key = load_or_create_key(settings.audit_key_path)
    await held_by_a_killed_server(tmp_path, (5.0, "user_disabled"), (6.0, "user_enabled"))
    taking = AuditBacklog(tmp_path, backlog_mac_key(key), LIMIT)
    assert taking.load() == 2
    at, action, fields = taking.first()
    line = await taking.first_line()
    await AuditLog(storage, key).record(at, action, backlog_line=line, **fields)
    taking.written()
    taking.close()  # killed before the second
    assert (tmp_path / WRITTEN_FILE).read_text() == "1"
    if count == "removed":
        (tmp_path / WRITTEN_FILE).unlink()
    else:
        (tmp_path / WRITTEN_FILE).write_bytes(b"")
    async with hub_on(tmp_path, storage):
        pass
    records = await storage.audit_records()
    assert written(records, "user_disabled") == [5.0]
    assert written(records, "user_enabled") == [6.0]
    [replayed] = [r for r in records if r.action == "audit_backlog_replayed"]
    assert replayed.details["lines"] == [1]
    assert verify(records, await storage.anchors(), key).ok


async def test_refused_lines_the_disk_cannot_keep_are_said_so_in_the_trail(
    tmp_path: Path, storage: Storage
) -> None:
    """Lines refused at start are kept aside in ``audit-backlog.refused``; a disk that refused
    that too left them named in the log alone, and the trail's record read as if they were kept
    for the operator: they go with the backlog once it is written."""
    await held_by_a_killed_server(tmp_path, (5.0, "user_disabled"))
    append(tmp_path, b"a line someone added\n")
    (tmp_path / REFUSED_FILE).mkdir()  # cannot be written: the disk refuses it
    async with hub_on(tmp_path, storage):
        pass
    records = await storage.audit_records()
    [refused] = [r for r in records if r.action == "audit_backlog_refused"]
    assert refused.details["lines"] == [2] and refused.details["kept"] is False
    assert written(records, "user_disabled") == [5.0]


async def test_a_backlog_put_back_after_the_notes_of_its_lines_were_deleted_fails_verify(
    tmp_path: Path, storage: Storage
) -> None:
    """Someone who can write the database too deletes its notes of the lines written, then puts
    the file back: its records are written again, but each says which line it came from, under
    its hash and MAC, so ``tandem audit verify`` names the second."""
    assert isinstance(storage, SQLStorage)
    copy = await held_by_a_killed_server(tmp_path, (5.0, "user_disabled"))
    async with hub_on(tmp_path, storage):
        pass
    async with storage._engine.begin() as db:  # the guards dropped: the table's owner can
        for guard in NOTE_GUARDS[storage._engine.dialect.name]:
            await db.execute(sa.text(guard))
        await db.execute(sa.text("DELETE FROM audit_backlog_lines"))
    (tmp_path / BACKLOG_FILE).write_bytes(copy)
    async with hub_on(tmp_path, storage):
        pass
    records = await storage.audit_records()
    first, again = [r for r in records if r.action == "user_disabled"]
    assert first.details[BACKLOG_LINE] == again.details[BACKLOG_LINE]
    key = load_or_create_key(Settings.load(environ={}, data_dir=tmp_path).audit_key_path)
    verdict = verify(records, await storage.anchors(), key)
    assert not verdict.ok and verdict.first_bad_seq == again.seq
    assert "same audit backlog line" in (verdict.problem or "")


NOTE_GUARDS = {
    "sqlite": [
        "DROP TRIGGER audit_backlog_lines_no_update",
        "DROP TRIGGER audit_backlog_lines_no_delete",
        "DROP TRIGGER audit_backlog_lines_no_replace",
    ],
    "postgresql": [
        "DROP TRIGGER audit_backlog_lines_append_only ON audit_backlog_lines",
        "DROP TRIGGER audit_backlog_lines_no_truncate ON audit_backlog_lines",
    ],
}

NOTE_CHANGES = {
    "sqlite": [
        "DELETE FROM audit_backlog_lines",
        "UPDATE audit_backlog_lines SET line = line + 100",
        "UPDATE audit_backlog_lines SET file_id = 'elsewhere'",
        "UPDATE audit_backlog_lines SET seq = 0",
        "INSERT OR REPLACE INTO audit_backlog_lines (file_id, line, seq)"
        " SELECT file_id, line, 0 FROM audit_backlog_lines",
    ],
    "postgresql": [
        "DELETE FROM audit_backlog_lines",
        "UPDATE audit_backlog_lines SET line = line + 100",
        "UPDATE audit_backlog_lines SET file_id = 'elsewhere'",
        "TRUNCATE audit_backlog_lines",
        "INSERT INTO audit_backlog_lines (file_id, line, seq)"
        " SELECT file_id, line, 0 FROM audit_backlog_lines"
        " ON CONFLICT (file_id, line) DO UPDATE SET file_id = 'elsewhere'",
    ],
}


@pytest.mark.parametrize("change", range(5))
async def test_the_notes_of_the_backlog_lines_written_are_append_only(
    tmp_path: Path, storage: Storage, change: int
) -> None:
    """Someone who can write the database (but not drop its guards) deletes, renumbers or
    replaces the notes of the lines written, then puts the file back: the database refuses the
    change as it refuses one to the audit records, and the lines are not written again."""
    assert isinstance(storage, SQLStorage)
    copy = await held_by_a_killed_server(tmp_path, (5.0, "user_disabled"))
    async with hub_on(tmp_path, storage):
        pass
    statement = NOTE_CHANGES[storage._engine.dialect.name][change]
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        async with storage._engine.begin() as db:
            await db.execute(sa.text(statement))
    (tmp_path / BACKLOG_FILE).write_bytes(copy)
    async with hub_on(tmp_path, storage):
        pass
    records = await storage.audit_records()
    assert written(records, "user_disabled") == [5.0]
    [replayed] = [r for r in records if r.action == "audit_backlog_replayed"]
    assert replayed.details["lines"] == [1]


async def test_a_prefix_of_a_backlog_put_back_does_not_get_genuine_records_after_it_refused(
    tmp_path: Path, storage: Storage
) -> None:
    """Someone who can write the data directory keeps a backlog of five lines and, once they are
    on the trail, puts back its first two. While those wait for the database (it refused them
    at start; the timer retries), the next record the database refuses joined them in that file,
    under its id, as line 3: a line the database noted already, so a genuine record was refused
    as written (``audit_backlog_replayed``) and lost, at once and at the next start alike."""
    copy = await held_by_a_killed_server(
        tmp_path, *((float(at), "user_disabled") for at in range(1, 6))
    )
    async with hub_on(tmp_path, storage):
        pass
    assert written(await storage.audit_records(), "user_disabled") == [1.0, 2.0, 3.0, 4.0, 5.0]
    (tmp_path / BACKLOG_FILE).write_bytes(b"".join(copy.splitlines(keepends=True)[:3]))
    hub = hub_on(tmp_path, storage)
    assert hub._unrecorded.load() == 2  # the database refuses them at start: they wait
    await hub._unrecorded.hold(
        7.0, "user_enabled", {"actor": "ada", "org": "default", "subject": "bob"}
    )
    await hub._unrecorded.hold(
        8.0, "user_enabled", {"actor": "ada", "org": "default", "subject": "eve"}
    )
    hub._unrecorded.close()  # killed before the database answers: the next start takes them up
    async with hub_on(tmp_path, storage):
        pass
    records = await storage.audit_records()
    assert written(records, "user_disabled") == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [(r.at, r.subject) for r in records if r.action == "user_enabled"] == [
        (7.0, "bob"),
        (8.0, "eve"),
    ]
    [replayed] = [r for r in records if r.action == "audit_backlog_replayed"]
    assert replayed.details["lines"] == [1, 2]
    assert not [r for r in records if r.action == "audit_backlog_refused"]


async def test_records_held_behind_a_prefix_put_back_are_written_by_the_running_server(
    tmp_path: Path, storage: Storage
) -> None:
    """As above, with the server still running when the database answers again: the records it
    held behind the lines put back are written, the lines put back are not."""
    copy = await held_by_a_killed_server(
        tmp_path, *((float(at), "user_disabled") for at in range(1, 6))
    )
    async with hub_on(tmp_path, storage):
        pass
    (tmp_path / BACKLOG_FILE).write_bytes(b"".join(copy.splitlines(keepends=True)[:3]))
    hub = hub_on(tmp_path, storage)
    assert hub._unrecorded.load() == 2
    await hub._unrecorded.hold(
        7.0, "user_enabled", {"actor": "ada", "org": "default", "subject": "bob"}
    )
    assert await hub._write_unrecorded() is None
    hub._unrecorded.close()
    records = await storage.audit_records()
    assert written(records, "user_disabled") == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [(r.at, r.subject) for r in records if r.action == "user_enabled"] == [(7.0, "bob")]
    [replayed] = [r for r in records if r.action == "audit_backlog_replayed"]
    assert replayed.details["lines"] == [1, 2]
    assert not (tmp_path / BACKLOG_FILE).exists()


@pytest.mark.parametrize("identified", [False, True], ids=["older lines", "lines with ids"])
async def test_a_backlog_copied_to_another_server_and_written_by_both_at_once_is_written_once(
    tmp_path: Path, storage: Storage, identified: bool
) -> None:
    """As above, with both servers writing the copied lines at the same moment (on PostgreSQL,
    on connections of their own): each reads that no line is noted yet; the second's record
    (the same chain position) or note (the same line, or the same record identity) is refused,
    and its retry finds the note. Each record is written once, whichever wins."""
    first, second = tmp_path / "first", tmp_path / "second"
    copy = await held_by_a_killed_server(
        first, *((float(at), "user_disabled") for at in range(1, 9)), identified=identified
    )
    second.mkdir(mode=0o700)
    (second / "audit.key").write_bytes((first / "audit.key").read_bytes())
    (second / "audit.key").chmod(0o600)
    (second / BACKLOG_FILE).write_bytes(copy)
    hubs = [hub_on(first, storage), hub_on(second, storage)]
    for hub in hubs:
        assert hub._unrecorded.load() == 8
    results = await asyncio.gather(*(hub._write_unrecorded() for hub in hubs))
    assert results == [None, None]
    for hub in hubs:
        assert not hub._unrecorded
        hub._unrecorded.close()
    records = await storage.audit_records()
    assert written(records, "user_disabled") == [float(at) for at in range(1, 9)]
    replayed = [r for r in records if r.action == "audit_backlog_replayed"]
    assert sum(r.details["count"] for r in replayed) == 8


async def test_a_note_taken_already_is_a_key_taken_not_a_refusal_for_good(storage: Storage) -> None:
    """A second note of one line (two writers of it at once) is refused as a key taken, which
    the append retries (and then finds the note), on SQLite too, where the notes' no-replace
    trigger answers before the key does: a refusal for good dropped the record unwritten."""
    from tandem.storage.schema import audit_backlog_lines
    from tandem.storage.sql import _Violation

    assert isinstance(storage, SQLStorage)
    note = audit_backlog_lines.insert().values(file_id="f" * 32, line=1, seq=1)
    await storage._transaction(lambda db: db.execute(note))
    with pytest.raises(_Violation) as refused:
        await storage._transaction(lambda db: db.execute(note))
    assert refused.value.key_taken


async def test_a_refused_backlog_line_fails_the_audit_item_until_a_checkpoint_after_it(
    tmp_path: Path, storage: Storage
) -> None:
    """A forged line refused at start was an ``audit_backlog_refused`` record the compliance
    check never looked at: the audit item passed. The operator's check now fails it, naming
    the record and the line, until given a checkpoint taken after it (the operator's review);
    the organisation admins' report (the console's) does not name the server's records."""
    settings = Settings.load(environ={}, data_dir=tmp_path)
    key = load_or_create_key(settings.audit_key_path)
    left = AuditBacklog(tmp_path, backlog_mac_key(key), LIMIT)
    await left.hold(5.0, "user_disabled", {"actor": "ada", "org": "default", "subject": "bob"})
    left.close()
    forged = b'[6.0,"user_enabled",{"actor":"ada","org":"default","subject":"mallory"}]'
    append(tmp_path, line_mac(KEY, file_id(tmp_path), 2, forged).encode() + b" " + forged + b"\n")
    hub = hub_on(tmp_path, storage)
    async with hub:
        pass
    directory = Directory(
        storage, hub.record, hub.clock, crypto.SecretBox(settings.secrets_key_path)
    )
    state = await audit_state(settings, directory, ())
    [refused] = [r for r in await storage.audit_records() if r.action == "audit_backlog_refused"]
    assert state.ok and state.backlog_refused
    item = _audit_item(state)
    assert item.status == "fail", item
    assert f"record {refused.seq} " in item.detail and "lines refused 2" in item.detail
    assert "audit-backlog.refused" in item.fix and "--checkpoint" in item.fix
    records = await storage.audit_records()
    checkpoint = make_checkpoint(records, await storage.anchors(), key, 1000.0)
    reviewed = await audit_state(settings, directory, (checkpoint,))
    assert reviewed.ok and reviewed.backlog_refused == ()
    item = _audit_item(reviewed)
    assert item.status == "pass", item


def _audit_item(state: AuditState) -> Result:
    """The compliance check's audit item for an installation compliant but for ``state``."""
    inst = dataclasses.replace(compliant(), audit=state)
    [item] = [
        r for r in evaluate("pci-dss", inst, 1000.0).results if r.requirement == "audit_trail"
    ]
    return item


def answer_lost_once(storage: Storage, happened: list[str] | None = None) -> list[str]:
    """Make the storage's next call commit and its caller be cancelled before it takes the
    answer (the outcome-unknown case, milliseconds in life; here every time). SQLite: the
    worker thread, its COMMIT done, cancels the caller before it hands the answer over (the
    cancel is queued on the event loop first). PostgreSQL: the COMMIT's answer came, and the
    caller is cancelled before it takes it. The list names what happened, for the test."""
    assert isinstance(storage, SQLStorage)
    real = storage._session
    happened = [] if happened is None else happened

    async def session(work: Any) -> Any:
        storage._session = real  # type: ignore[method-assign]  # once
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        if storage._postgres:
            result = await real(work)
            happened.append("committed")
            task.cancel()
            await asyncio.sleep(0)  # the cancel is taken here, the answer never
            return result

        def then_cancel(db: Any) -> Any:
            result = work(db)  # the append's own transaction: committed when it returns
            happened.append("committed")
            loop.call_soon_threadsafe(task.cancel)  # before the worker's answer is queued
            return result

        return await real(then_cancel)

    storage._session = session  # type: ignore[method-assign]
    return happened


def count_of(records: list[Any], action: str) -> int:
    return sum(1 for r in records if r.action == action)


async def trail_verifies(directory: Path, storage: Storage) -> None:
    key = load_or_create_key(Settings.load(environ={}, data_dir=directory).audit_key_path)
    verdict = verify(await storage.audit_records(), await storage.anchors(), key)
    assert verdict.ok, verdict


async def test_a_record_whose_write_landed_as_its_caller_was_cancelled_is_written_once(
    tmp_path: Path, storage: Storage
) -> None:
    """record_done's write commits, and its caller (a socket's close) is cancelled before the
    answer is taken: told nothing was written, the hub keeps the record in the audit backlog,
    and writing the backlog must not put it on the trail a second time."""
    hub = hub_on(tmp_path, storage)
    lost = answer_lost_once(storage)
    with pytest.raises(asyncio.CancelledError):
        await hub.record_done("socket_closed", actor="server", org="default", subject="ann")
    assert lost == ["committed"]
    assert len(hub._unrecorded) == 1  # kept: its outcome is unknown to the hub
    assert await hub._write_unrecorded() is None
    assert not hub._unrecorded
    hub._unrecorded.close()
    records = await storage.audit_records()
    assert count_of(records, "socket_closed") == 1
    # Its line refused as written, and said so, as a line put back is.
    [replayed] = [r for r in records if r.action == "audit_backlog_replayed"]
    assert replayed.details["lines"] == [1] and replayed.details["count"] == 1
    await trail_verifies(tmp_path, storage)


async def test_a_record_kept_with_its_write_landed_is_written_once_by_the_next_start(
    tmp_path: Path, storage: Storage
) -> None:
    """As above, but the server stops (or is killed) before writing its backlog: the next start
    on the data directory takes the line up and must not write the record again."""
    hub = hub_on(tmp_path, storage)
    answer_lost_once(storage)
    with pytest.raises(asyncio.CancelledError):
        await hub.record_done("user_disabled", actor="ada", org="default", subject="bob")
    hub._unrecorded.close()  # killed: the line stays in audit-backlog.jsonl
    assert (tmp_path / BACKLOG_FILE).exists()
    async with hub_on(tmp_path, storage):
        pass
    records = await storage.audit_records()
    assert count_of(records, "user_disabled") == 1
    assert not (tmp_path / BACKLOG_FILE).exists()
    await trail_verifies(tmp_path, storage)


async def test_a_record_held_in_memory_only_with_its_write_landed_is_written_once(
    tmp_path: Path, storage: Storage
) -> None:
    """A record the stop writes from the backlog (kept first, then written) with no file to
    note its line in (no data directory, a full disk, another server keeping the file): the
    write commits, its caller is cancelled (the stop's deadline), and the retry must not write
    it again."""
    hub = hub_on(tmp_path, storage)
    hub._unrecorded.close()
    hub._unrecorded = AuditBacklog(None, KEY, LIMIT)  # in memory only
    hub.stop_by(time.monotonic() + 3600.0)
    answer_lost_once(storage)
    with pytest.raises(asyncio.CancelledError):
        await hub.record_done("user_enabled", actor="ada", org="default", subject="bob")
    assert len(hub._unrecorded) == 1
    assert await hub._write_unrecorded() is None
    assert count_of(await storage.audit_records(), "user_enabled") == 1
    await trail_verifies(tmp_path, storage)


def answer_lost_at(storage: Storage, action: str) -> list[str]:
    """:func:`answer_lost_once` for the first append of ``action``."""
    assert isinstance(storage, SQLStorage)
    real = storage.append_audit
    happened: list[str] = []

    async def append_audit(grant: Any, at: float, appended: str, *args: Any, **kw: Any) -> Any:
        if appended == action:
            storage.append_audit = real  # type: ignore[method-assign]
            answer_lost_once(storage, happened)
        return await real(grant, at, appended, *args, **kw)

    storage.append_audit = append_audit  # type: ignore[method-assign]
    return happened


async def test_a_session_end_whose_record_landed_as_its_caller_was_cancelled_is_recorded_once(
    tmp_path: Path, storage: Storage
) -> None:
    """A session's close in storage is retried whole by the timer when any of it fails (its
    row, then its ``session_ended`` record): the record committed, its caller (the customer's
    socket) cancelled before the answer; the retry must not append it again."""
    hub = hub_on(tmp_path, storage)
    site = await storage.get_site("demo")
    assert site is not None
    seat = await hub.open_customer(site, Create(v=1))
    assert isinstance(seat, CustomerSeat)
    lost = answer_lost_at(storage, "session_ended")
    async with seat:
        with pytest.raises(asyncio.CancelledError):
            await seat.text(Stop(v=1))
    assert lost == ["committed"]
    assert len(hub._unfinished) == 1  # its close is retried: the record's outcome unknown
    assert await hub._write_what_failed() is None
    assert not hub._unfinished
    hub._unrecorded.close()
    records = await storage.audit_records()
    assert count_of(records, "session_ended") == 1
    await trail_verifies(tmp_path, storage)
