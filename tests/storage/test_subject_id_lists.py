"""The id lists a customer's export and erasure bind as one parameter (``= ANY`` on PostgreSQL,
``json_each`` on SQLite), on both backends: an id matches only itself (odd characters neither
break nor widen the match), the organisation's grant applies to every statement, and an empty
list or duplicates change nothing."""

from __future__ import annotations

import sqlite3
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from tandem.directory import operator
from tandem.exceptions import ConfigError, ConflictError
from tandem.storage import sql
from tandem.storage.base import OrgRecord, RecordingRecord, Storage
from tandem.storage.sql import SQLStorage
from tandem.subjects import Subjects
from tests.conftest import migrated_sqlite
from tests.grants import of_org, owned


async def _ended(storage: Storage, org: str, sid: str, sub: str) -> None:
    await storage.record_session_start(of_org(org), sid, 10.0, "demo")
    await storage.link_subject(of_org(org), sub, sid, f"p-{sub}")
    await storage.record_session_end(sid, 20.0, "customer_left", "Alice")
    await storage.add_recording(
        *owned(RecordingRecord(f"r-{sid}", org, sid, "demo", "alice", "k1", 11.0))
    )
    await storage.append_recording_frames(f"r-{sid}", 0, [b"\x01frame"])
    await storage.end_recording(f"r-{sid}", 19.0, "stopped_by_customer")


ODD = [
    "s-1\x00",  # SQLite's json_each ends a string at an escaped NUL: it matched s-1
    "s-1\x00tail",
    "s-1\ud800",  # a lone surrogate (no store takes it)
    "\ud83d\ude00",  # a surrogate pair spelled as two characters: not the emoji
    "s-1'",
    's-1"',
    "s-1\\",
    '"]',
    "s-%",
    "s-_",
    "S-1",
    "s-1 ",
    "x" * 100_000,
    unicodedata.normalize("NFD", "s-\u00e9"),
]


@pytest.mark.parametrize("odd", ODD, ids=range(len(ODD)))
async def test_an_odd_id_matches_only_itself(storage: Storage, odd: str) -> None:
    """Found by a review: ids bound in a JSON array are decoded by SQLite, which stopped at an
    escaped NUL (``"s-1\\u0000tail"`` matched the session ``s-1``) and joined a surrogate pair
    written as two characters; an id must match exactly what it matched in an ``IN`` list."""
    for sid in ("s-1", "s-\u00e9", "\U0001f600"):
        await _ended(storage, "default", sid, f"c-{sid}")
    grant = of_org("default")
    assert await storage.sessions_of(grant, [odd]) == []
    assert await storage.recordings_of_sessions(grant, [odd]) == []
    assert await storage.recordings_of_sessions(grant, [odd], 30.0) == []
    assert await storage.audit_concerning(grant, [odd], [f"customer:{odd}"]) == []
    erased = await storage.erase_subject(grant, "c-s-1", [odd])
    assert (erased.sessions, erased.recordings, erased.links) == ((), (), 0)
    found = await storage.sessions_of(grant, ["s-1", "s-\u00e9", "\U0001f600", odd])
    assert [s.session_id for s in found] == ["s-1", "s-\u00e9", "\U0001f600"]
    assert len(await storage.recording_frames("r-s-1")) == 1


async def test_an_empty_list_and_duplicates(storage: Storage) -> None:
    for sid in ("s-1", "s-2"):
        await _ended(storage, "default", sid, "c-1")
    grant = of_org("default")
    assert await storage.sessions_of(grant, []) == []
    assert await storage.recordings_of_sessions(grant, []) == []
    assert await storage.audit_concerning(grant, [], []) == []
    found = await storage.sessions_of(grant, ["s-2", "s-1", "s-2", "s-1"])
    assert [s.session_id for s in found] == ["s-2", "s-1"]
    recorded = await storage.recordings_of_sessions(grant, ["s-2", "s-2", "s-1"])
    assert sorted(r.recording_id for r in recorded) == ["r-s-1", "r-s-2"]
    erased = await storage.erase_subject(grant, "c-1", ["s-1", "s-1", "s-2"])
    assert (erased.sessions, erased.recordings, erased.links) == (
        ("s-1", "s-2"),
        ("r-s-1", "r-s-2"),
        2,
    )
    assert await storage.erase_subject(grant, "c-1", []) == erased.__class__((), (), 0)


async def test_an_admin_of_another_organisation_naming_the_ids_gets_and_erases_nothing(
    storage: Storage,
) -> None:
    """Org B's grant with org A's session ids: nothing read, nothing erased, A's join code too
    (the erasure deleted join codes by session id alone)."""
    await storage.add_org(OrgRecord("org-a", "A", 0.0))
    await storage.add_org(OrgRecord("org-b", "B", 0.0))
    await _ended(storage, "org-a", "s-a", "c-a")
    await storage.record_session_start(of_org("org-a"), "s-live", 30.0, "demo")
    await storage.put_join_code(of_org("org-a"), "digest-a", "s-live", 1e12)
    b = of_org("org-b")
    assert await storage.sessions_of(b, ["s-a", "s-live"]) == []
    assert await storage.recordings_of_sessions(b, ["s-a"]) == []
    assert await storage.recordings_of_sessions(b, ["s-a"], 30.0) == []
    assert await storage.audit_concerning(b, ["s-a", "r-s-a"], ["customer:p-c-a"]) == []
    erased = await storage.erase_subject(b, "c-a", ["s-a", "s-live"], forms=("c-a",))
    assert (erased.sessions, erased.recordings, erased.links) == ((), (), 0)
    a = of_org("org-a")
    assert [s.session_id for s in await storage.sessions_of(a, ["s-a", "s-live"])] == [
        "s-a",
        "s-live",
    ]
    assert await storage.subject_sessions(a, "c-a") == [("s-a", "p-c-a")]
    assert len(await storage.recording_frames("r-s-a")) == 1
    taken = await storage.take_join_code(a, "digest-a", 40.0)
    assert taken is not None and taken.session_id == "s-live"


async def test_a_sqlite_without_its_json_functions_is_refused_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The id lists need SQLite's ``json_each`` (built in since SQLite 3.38, unless the build
    leaves it out): without it every export and erasure failed when asked, long after the
    start. The start refuses such a SQLite in one clear line instead. (A build without JSON is
    played by denying the ``json_each`` table to every statement.)"""
    path = migrated_sqlite(tmp_path / "db.sqlite3")
    connect = sqlite3.connect

    def without_json(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        made = connect(*args, **kwargs)

        def authorize(action: int, first: str | None, *_: object) -> int:
            if action == sqlite3.SQLITE_READ and first == "json_each":
                return sqlite3.SQLITE_DENY
            return sqlite3.SQLITE_OK

        made.set_authorizer(authorize)
        return made

    monkeypatch.setattr(sql.sqlite3, "connect", without_json)
    with pytest.raises(ConfigError) as refused:
        await SQLStorage.open_sqlite(path)
    message = str(refused.value)
    assert "json_each" in message and "3.38" in message and "PostgreSQL" in message
    assert "\n" not in message
    monkeypatch.setattr(sql.sqlite3, "connect", connect)
    store = await SQLStorage.open_sqlite(path)  # the same file opens with JSON at hand
    await store.close()


async def test_a_session_begun_between_the_look_up_and_the_erasure_is_left_live(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The erasure binds the ids its look-up found: a session of the customer begun (and
    recording) right after the look-up read their sessions is neither erased nor refused for,
    and the next erasure, which finds it live, is refused."""
    await _ended(storage, "default", "s-1", "c-1")
    looked_up = storage.sessions_of

    async def then_a_new_session(grant: Any, ids: Any) -> Any:
        found = await looked_up(grant, ids)
        if await storage.get_session("s-2") is None:
            await storage.record_session_start(of_org("default"), "s-2", 30.0, "demo")
            await storage.link_subject(of_org("default"), "c-1", "s-2", "p-c-1")
            await storage.add_recording(
                *owned(RecordingRecord("r-s-2", "default", "s-2", "demo", "alice", "k1", 31.0))
            )
        return found

    monkeypatch.setattr(storage, "sessions_of", then_a_new_session)

    async def record(action: str, **fields: Any) -> None:
        pass

    subjects = Subjects(storage, record, lambda: 40.0)
    erased = await subjects.erase(operator("default"), "c-1", "sub")
    assert erased["recordings"] == ["r-s-1"] and erased["session_records"] == 1
    live = await storage.get_session("s-2")
    assert live is not None and live.ended_at is None
    assert await storage.get_recording("r-s-2") is not None
    assert await storage.subject_sessions(of_org("default"), "c-1") == [("s-2", "p-c-1")]
    with pytest.raises(ConflictError, match="still live"):
        await subjects.erase(operator("default"), "c-1", "sub")
