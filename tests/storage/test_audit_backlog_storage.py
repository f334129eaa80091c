"""The audit backlog taken up by a hub at start and written once storage answers, on both
backends (tandem.audit_backlog, SessionHub)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tandem import crypto
from tandem.audit import AuditLog, backlog_mac_key, load_or_create_key, verify
from tandem.audit_backlog import BACKLOG_FILE, AuditBacklog, line_mac
from tandem.config import Settings
from tandem.fanout.memory import MemoryFanout
from tandem.hub import SessionHub
from tandem.lockout import SharedBackoff
from tandem.storage.base import Storage

KEY = b"k" * 32
LIMIT = 1 << 20


def append(directory: Path, line: bytes) -> None:
    with (directory / BACKLOG_FILE).open("ab") as file:
        file.write(line)


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
    append(tmp_path, line_mac(KEY, 2, forged).encode() + b" " + forged + b"\n")
    hub = hub_on(tmp_path, storage)
    async with hub:
        pass
    records = await storage.audit_records()
    assert [(r.at, r.subject) for r in records if r.action == "user_disabled"] == [(5.0, "bob")]
    assert not [r for r in records if r.action == "user_enabled"]
    [refused] = [r for r in records if r.action == "audit_backlog_refused"]
    assert refused.details["lines"] == [2] and refused.actor == "server"
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
