"""The audit trail's storage on both backends: anchors append-only, attacks with the guards dropped,
and the upgrade of a trail written before anchors were chained."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from tandem.audit import (
    LEGACY,
    RECORD_MACS,
    Anchor,
    AuditLog,
    AuditRecord,
    RecordSeal,
    make_checkpoint,
    verify,
)
from tandem.storage.base import Storage
from tandem.storage.migrations import legacy
from tandem.storage.sql import SQLStorage
from tests.conftest import migrated_sqlite
from tests.grants import of_org
from tests.storage.conftest import PG_DSN, fresh_schema, pg_connect
from tests.test_audit import TRIGGERS

KEY = bytes(range(32))
OLD_TRAIL = json.loads((Path(__file__).parent / "audit_before_chained_anchors.json").read_text())
# The schema versions just before anchors were chained.
SQLITE_OLD_VERSION = 10
POSTGRES_OLD_VERSION = 4
APPEND_ONLY = (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)


@dataclasses.dataclass
class Backend:
    """One database, reached as Tandem does (:meth:`open`) and as an attacker with database
    rights does (:meth:`execute`)."""

    name: str
    open: Callable[[], Awaitable[Storage]]
    execute: Callable[[str], Awaitable[None]]
    make_old: Callable[[], Awaitable[None]]
    guards: tuple[str, ...]
    """Statements that drop every guard of the audit tables."""

    async def drop_guards_and(self, *statements: str) -> None:
        for statement in (*self.guards, *statements):
            await self.execute(statement)


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    opened: list[Storage] = []
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            path = tmp_path / "db.sqlite3"

            async def open_sqlite() -> Storage:
                if not path.exists():  # new, not made old: a copy of a migrated one
                    migrated_sqlite(path)
                opened.append(await SQLStorage.open_sqlite(path))
                return opened[-1]

            async def execute_sqlite(statement: str) -> None:
                with sqlite3.connect(path) as db:
                    db.execute(statement)

            async def make_old_sqlite() -> None:
                with sqlite3.connect(path) as db:
                    for migration in legacy.SQLITE_MIGRATIONS[:SQLITE_OLD_VERSION]:
                        db.executescript(migration)
                    db.execute(f"PRAGMA user_version={SQLITE_OLD_VERSION}")
                    # The statements the old code wrote with.
                    db.executemany(
                        "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", OLD_TRAIL["audit"]
                    )
                    db.executemany(
                        "INSERT OR REPLACE INTO audit_anchors VALUES (?, ?, ?)",
                        OLD_TRAIL["audit_anchors"],
                    )

            guards = tuple(f"DROP TRIGGER {name}" for name in TRIGGERS)
            yield Backend("sqlite", open_sqlite, execute_sqlite, make_old_sqlite, guards)
        else:
            schemas: list[str] = []
            attacker: list[asyncpg.Connection] = []

            async def schema(*, made_old: bool = False) -> str:
                """The test's schema, made on first use: migrated unless it is to be made old
                (a migrated one a test leaves unchanged is reset and reused, as the ``storage``
                fixture's are)."""
                if not schemas:
                    schemas.append(
                        await stack.enter_async_context(fresh_schema(migrated=not made_old))
                    )
                return schemas[0]

            async def open_postgres() -> Storage:
                opened.append(await SQLStorage.connect(PG_DSN, schema=await schema()))
                return opened[-1]

            async def execute_postgres(statement: str) -> None:
                if not attacker:  # one connection of its own for all the test's statements
                    attacker.append(await pg_connect(await schema()))
                    stack.push_async_callback(attacker[0].close)
                await attacker[0].execute(statement)

            async def make_old_postgres() -> None:
                db = await pg_connect(await schema(made_old=True))
                try:
                    await db.execute("CREATE TABLE tandem_schema_version (version integer)")
                    await db.execute(
                        "INSERT INTO tandem_schema_version VALUES ($1)", POSTGRES_OLD_VERSION
                    )
                    for migration in legacy.POSTGRES_MIGRATIONS[:POSTGRES_OLD_VERSION]:
                        await db.execute(migration)
                    await db.executemany(
                        "INSERT INTO audit (seq, at, action, actor, org, subject, details,"
                        " prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        [tuple(row) for row in OLD_TRAIL["audit"]],
                    )
                    await db.executemany(
                        "INSERT INTO audit_anchors (seq, hash, mac) VALUES ($1, $2, $3)"
                        " ON CONFLICT (seq) DO UPDATE SET hash = EXCLUDED.hash, mac = EXCLUDED.mac",
                        [tuple(row) for row in OLD_TRAIL["audit_anchors"]],
                    )
                finally:
                    await db.close()

            guards = (
                "DROP TRIGGER audit_append_only ON audit",
                "DROP TRIGGER audit_no_truncate ON audit",
                "DROP TRIGGER audit_anchors_append_only ON audit_anchors",
                "DROP TRIGGER audit_anchors_no_truncate ON audit_anchors",
            )
            yield Backend("postgres", open_postgres, execute_postgres, make_old_postgres, guards)
        for store in opened:
            await store.close()


async def written(storage: Storage, n: int, anchor_every: int = 5, stop: bool = True) -> None:
    """``n`` records by a server run: started, signs-in, and (if ``stop``) stopped."""
    log = AuditLog(storage, KEY, anchor_every=anchor_every)
    await log.record(2000.0, "server_started", actor="server", org="default")
    for i in range(n - 2):
        await log.record(2001.0 + i, "sign_in", actor=f"agent{i}", org="default")
    await log.record(
        2000.0 + n, "server_stopped" if stop else "sign_in", actor="server", org="default"
    )


Trail = tuple[list[AuditRecord], list[Anchor]]


def problem_of(trail: Trail, legacy_every: int = 5) -> tuple[int | None, str]:
    """Where :func:`verify` finds the first problem, and what it is ("intact" if none)."""
    records, anchors = trail
    verdict = verify(records, anchors, KEY, legacy_every=legacy_every)
    return verdict.first_bad_seq, verdict.problem or "intact"


async def state(storage: Storage) -> Trail:
    return await storage.audit_records(), await storage.anchors()


# Anchors are append-only


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM audit_anchors",
        "DELETE FROM audit_anchors WHERE seq = 5",
        "UPDATE audit_anchors SET mac = 'ff' WHERE seq = 5",
    ],
)
async def test_the_anchors_refuse_update_and_delete(backend: Backend, statement: str) -> None:
    storage = await backend.open()
    await written(storage, 12)
    before = await storage.anchors()
    with pytest.raises(APPEND_ONLY, match="append-only"):
        await backend.execute(statement)
    assert await storage.anchors() == before and [a.seq for a in before] == [1, 5, 10, 12]


# With the guards dropped, verify still catches it


@pytest.mark.parametrize(
    ("statements", "first_bad", "problem"),
    [
        (["DELETE FROM audit_anchors"], 1, "no anchor at record 1: anchors were removed"),
        (["DELETE FROM audit_anchors WHERE seq = 5"], 5, "no anchor at record 5: anchors were"),
        (["DELETE FROM audit_anchors WHERE seq = 14"], 14, "no anchor at record 14: anchors were"),
        (["UPDATE audit_anchors SET every = 1000 WHERE seq = 10"], 10, "the anchor at record 10"),
    ],
    ids=["all", "middle", "shutdown", "stretched-interval"],
)
async def test_removed_or_altered_anchors_are_caught_with_the_guards_dropped(
    backend: Backend, statements: list[str], first_bad: int, problem: str
) -> None:
    storage = await backend.open()
    await written(storage, 14)
    assert problem_of(await state(storage)) == (None, "intact")
    await backend.drop_guards_and(*statements)
    found = problem_of(await state(storage))
    assert found[0] == first_bad and found[1].startswith(problem), found


def keeping_macs(records: list[AuditRecord]) -> RecordSeal:
    """What an attacker without the key can do for a record MAC: keep the one the record had
    (it fits only where number, previous hash and hash came out the same)."""
    macs = {(r.seq, r.prev_hash, r.hash): r.mac or "" for r in records}
    return lambda record: macs.get((record.seq, record.prev_hash, record.hash), "")


async def test_the_keyless_rewrite_is_caught_on_both_backends(backend: Backend) -> None:
    # Delete record 6, renumber and re-hash the rest, delete the anchors that no longer match.
    storage = await backend.open()
    await written(storage, 14)
    records = await storage.audit_records()
    await backend.drop_guards_and("DELETE FROM audit", "DELETE FROM audit_anchors WHERE seq > 5")
    for r in records:  # append_audit without an anchor rule: numbers and SHA-256 hashes only
        if r.seq != 6:
            await storage.append_audit(
                of_org(r.org),
                r.at,
                r.action,
                r.actor,
                r.subject,
                r.details,
                seal=keeping_macs(records),
            )
    assert [r.seq for r in await storage.audit_records()] == list(range(1, 14))
    assert problem_of(await state(storage)) == (
        6,
        "record 6 has no valid MAC: it was not written by a holder of the audit key",
    )


# Upgrading a trail written before anchors were chained


async def test_an_upgraded_trail_keeps_verifying(backend: Backend) -> None:
    await backend.make_old()
    storage = await backend.open()  # migrates
    records, anchors = await state(storage)
    assert len(records) == 27 and [a.seq for a in anchors] == [5, 10, 12, 15, 20, 23, 25]
    assert {a.version for a in anchors} == {LEGACY}
    for legacy_every in (5, 100):
        assert problem_of((records, anchors), legacy_every) == (None, "intact")

    await written(storage, 8)  # records 28 to 35, the first and the last anchored
    records, anchors = await state(storage)
    chained = [a for a in anchors if a.version != LEGACY]
    assert [(a.seq, a.prev_seq, a.version, a.macs_from) for a in chained] == [
        (28, 25, RECORD_MACS, 28),
        (30, 28, RECORD_MACS, 28),
        (35, 30, RECORD_MACS, 28),
    ]
    assert chained[0].prev_mac == anchors[6].mac
    assert [r.seq for r in records if r.mac is not None] == list(range(28, 36))
    assert problem_of((records, anchors)) == (None, "intact")
    assert verify(records, anchors, KEY, legacy_every=5).macs_from == 28


@pytest.mark.parametrize(
    ("statements", "first_bad", "problem"),
    [
        (["DELETE FROM audit_anchors WHERE seq = 10"], 10, "no anchor at record 10"),
        (["DELETE FROM audit_anchors WHERE seq = 25"], 25, "no anchor at record 25"),
        (["DELETE FROM audit_anchors WHERE seq = 30"], 30, "no anchor at record 30"),
        # Every chained anchor gone: the records' MACs say they were there.
        (
            ["DELETE FROM audit_anchors WHERE version > 0"],
            28,
            "record 28 carries a MAC but no anchor says record MACs had started",
        ),
        # And their MACs stripped too: the old rule (one every 5) still misses record 30's.
        (
            ["DELETE FROM audit_anchors WHERE version > 0", "UPDATE audit SET mac = NULL"],
            30,
            "no anchor at record 30",
        ),
        (["UPDATE audit_anchors SET version = 0 WHERE seq = 30"], 30, "the anchor at record 30 is"),
    ],
    ids=[
        "old-anchor",
        "last-old-anchor",
        "chained-anchor",
        "every-chained-anchor",
        "every-chained-anchor-and-record-mac",
        "downgrade",
    ],
)
async def test_attacks_on_an_upgraded_trail_are_caught(
    backend: Backend, statements: list[str], first_bad: int, problem: str
) -> None:
    await backend.make_old()
    storage = await backend.open()
    await written(storage, 8)
    with pytest.raises(APPEND_ONLY, match="append-only"):
        await backend.execute(statements[0])
    await backend.drop_guards_and(*statements)
    found = problem_of(await state(storage))
    assert found[0] == first_bad and found[1].startswith(problem), found


async def test_a_removed_first_chained_anchor_is_caught_by_a_checkpoint(backend: Backend) -> None:
    # Right after the upgrade, the only chained anchor is the first; without it (and the MACs of
    # the records written since) the trail looks like an old one (the old rule requires nothing
    # at record 28). A checkpoint saw it.
    await backend.make_old()
    storage = await backend.open()
    log = AuditLog(storage, KEY, anchor_every=5)
    await log.record(3000.0, "server_started", actor="server", org="default")
    await log.record(3001.0, "sign_in", actor="ada", org="default")
    records, anchors = await state(storage)
    checkpoint = make_checkpoint(records, anchors, KEY, at=3002.0)
    assert (checkpoint.seq, checkpoint.anchor_seq) == (29, 28)
    await backend.drop_guards_and("DELETE FROM audit_anchors WHERE seq = 28")
    assert problem_of(await state(storage)) == (
        28,
        "record 28 carries a MAC but no anchor says record MACs had started: anchors were removed",
    )
    await backend.execute("UPDATE audit SET mac = NULL WHERE seq >= 28")
    records, anchors = await state(storage)
    assert verify(records, anchors, KEY, legacy_every=5).ok
    verdict = verify(records, anchors, KEY, legacy_every=5, checkpoints=[checkpoint])
    assert (verdict.first_bad_seq, verdict.problem) == (
        28,
        "no anchor at record 28: anchors were removed (checkpoint at record 29 saw it)",
    )
