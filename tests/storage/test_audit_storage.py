"""The audit trail's storage on both backends: anchors append-only, attacks with the guards dropped
(records forged, rewritten or stripped of their MACs; anchors removed; the tail cut), several
writers on one trail, and the upgrades of trails written before anchors were chained and before
records carried MACs."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest
import sqlalchemy as sa

from tandem.audit import (
    LEGACY,
    RECORD_MACS,
    Anchor,
    AuditLog,
    AuditRecord,
    RecordSeal,
    make_checkpoint,
    record_mac,
    record_mac_key,
    verify,
)
from tandem.exceptions import BacklogLineWritten
from tandem.storage import migrations
from tandem.storage.base import Storage
from tandem.storage.migrations import legacy
from tandem.storage.sql import SQLStorage, _sqlite_hooks
from tests.conftest import migrated_sqlite
from tests.grants import of_org
from tests.storage.conftest import PG_DSN, fresh_schema, pg_connect
from tests.test_audit import TRIGGERS, run_verify

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

KEY = bytes(range(32))
OLD_TRAIL = json.loads((Path(__file__).parent / "audit_before_chained_anchors.json").read_text())
TRAIL_0010 = json.loads((Path(__file__).parent / "audit_before_record_macs.json").read_text())
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
    make_0010: Callable[[], Awaitable[None]]
    """Make the database the one Tandem left at revision 0010, before records carried MACs."""
    fill_old: Callable[[Callable[[AsyncEngine], Awaitable[None]]], Awaitable[None]]
    """Run a fill (such as :func:`fill_at_0010`) on an engine of the database, not migrated."""

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

            async def fill_old_sqlite(fill: Callable[[AsyncEngine], Awaitable[None]]) -> None:
                from sqlalchemy.ext.asyncio import create_async_engine

                engine = create_async_engine(f"sqlite+aiosqlite:///{path}", poolclass=sa.NullPool)
                _sqlite_hooks(engine, 1000)
                await fill(engine)

            guards = tuple(f"DROP TRIGGER {name}" for name in TRIGGERS)
            yield Backend(
                "sqlite",
                open_sqlite,
                execute_sqlite,
                make_old_sqlite,
                guards,
                lambda: fill_old_sqlite(fill_at_0010),
                fill_old_sqlite,
            )
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

            async def fill_old_postgres(fill: Callable[[AsyncEngine], Awaitable[None]]) -> None:
                from sqlalchemy.ext.asyncio import create_async_engine

                name = await schema(made_old=True)

                async def connection() -> asyncpg.Connection:
                    return await pg_connect(name)

                engine = create_async_engine(
                    "postgresql+asyncpg://", async_creator=connection, poolclass=sa.NullPool
                )
                await fill(engine)

            guards = (
                "DROP TRIGGER audit_append_only ON audit",
                "DROP TRIGGER audit_no_truncate ON audit",
                "DROP TRIGGER audit_anchors_append_only ON audit_anchors",
                "DROP TRIGGER audit_anchors_no_truncate ON audit_anchors",
            )
            yield Backend(
                "postgres",
                open_postgres,
                execute_postgres,
                make_old_postgres,
                guards,
                lambda: fill_old_postgres(fill_at_0010),
                fill_old_postgres,
            )
        for store in opened:
            await store.close()


async def fill_at_0010(engine: AsyncEngine) -> None:
    """Migrate to revision 0010 and store the trail Tandem wrote there, with its statements."""
    async with engine.begin() as db:
        await db.run_sync(migrations.upgrade, "0010")
        await db.execute(
            sa.text(
                "INSERT INTO audit (seq, at, action, actor, org, subject, details, prev_hash, hash)"
                " VALUES (:seq, :at, :action, :actor, :org, :subject, :details, :prev, :hash)"
            ),
            [
                dict(
                    zip(
                        (
                            "seq",
                            "at",
                            "action",
                            "actor",
                            "org",
                            "subject",
                            "details",
                            "prev",
                            "hash",
                        ),
                        row,
                        strict=True,
                    )
                )
                for row in TRAIL_0010["audit"]
            ],
        )
        columns = TRAIL_0010["audit_anchors_columns"]
        await db.execute(
            sa.text(
                f"INSERT INTO audit_anchors ({', '.join(columns)})"
                f" VALUES ({', '.join(':' + c for c in columns)})"
            ),
            [dict(zip(columns, row, strict=True)) for row in TRAIL_0010["audit_anchors"]],
        )
        # The sessions whose creation the trail records were stored too (`tandem audit verify`
        # compares them: tandem.reconcile).
        await db.execute(
            sa.text(
                "INSERT INTO sessions (session_id, created_at, org_id)"
                " VALUES (:session_id, :at, :org)"
            ),
            [
                {"session_id": row[5], "at": row[1], "org": row[4]}
                for row in TRAIL_0010["audit"]
                if row[2] == "session_created"
            ],
        )
    await engine.dispose()


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


# Record MACs: records added, rewritten or stripped by someone who can write the database

NO_MAC = "has no valid MAC: it was not written by a holder of the audit key"


async def forge(storage: Storage, count: int, seal: RecordSeal | None = None) -> None:
    """Append ``count`` records as an attacker with write access does: numbered and chained
    correctly (SHA-256 needs no key), with whatever MAC ``seal`` makes (none without it)."""
    for i in range(count):
        await storage.append_audit(
            of_org("default"), 2500.0 + i, "sign_in", "mallory", "", {"forged": i}, seal=seal
        )


def sealed_with(key: bytes) -> RecordSeal:
    return lambda record: record_mac(record_mac_key(key), record.seq, record.prev_hash, record.hash)


@pytest.mark.parametrize(
    "seal",
    [
        None,
        sealed_with(bytes(32)),  # another key
        lambda record: record_mac(KEY, record.seq, record.prev_hash, record.hash),  # not the subkey
        lambda record: "0" * 64,
    ],
    ids=["no-mac", "another-key", "the-key-itself", "made-up"],
)
async def test_records_added_after_the_last_anchor_are_caught_after_the_next_one(
    backend: Backend, seal: RecordSeal | None
) -> None:
    storage = await backend.open()
    await written(storage, 12, stop=False)  # anchored at 1, 5, 10
    await forge(storage, 2, seal)  # records 13 and 14, after the last anchor
    # The server goes on and anchors (15, 20, and its shutdown at 21), vouching for the chain.
    await written(storage, 7)
    records, anchors = await state(storage)
    assert [a.seq for a in anchors] == [1, 5, 10, 15, 20, 21]
    assert [r.actor for r in records[12:14]] == ["mallory", "mallory"]
    assert problem_of((records, anchors)) == (13, f"record 13 {NO_MAC}")


async def test_a_record_with_another_records_mac_is_caught(backend: Backend) -> None:
    storage = await backend.open()
    await written(storage, 12, stop=False)
    records = await storage.audit_records()
    # A genuine MAC, of another place in the chain: record 12's, on the forged record 13.
    await forge(storage, 1, seal=lambda record: records[11].mac or "")
    await written(storage, 4)
    assert problem_of(await state(storage)) == (13, f"record 13 {NO_MAC}")


async def test_a_record_rewritten_after_the_last_anchor_is_caught(backend: Backend) -> None:
    storage = await backend.open()
    await written(storage, 13, stop=False)  # anchored at 1, 5, 10; 11 to 13 after
    records = await storage.audit_records()
    # Record 11 rewritten, 12 and 13 chained after it again, each keeping the MAC it had.
    await backend.drop_guards_and("DELETE FROM audit WHERE seq >= 11")
    for r in records[10:]:
        actor = "mallory" if r.seq == 11 else r.actor
        await storage.append_audit(
            of_org(r.org), r.at, r.action, actor, r.subject, r.details, seal=keeping_macs(records)
        )
    await written(storage, 8)  # and the server anchors them (15, 20, 21)
    assert [r.actor for r in await storage.audit_records()][10] == "mallory"
    assert problem_of(await state(storage)) == (11, f"record 11 {NO_MAC}")


@pytest.mark.parametrize(
    ("statements", "first_bad", "problem"),
    [
        (["UPDATE audit SET mac = NULL WHERE seq >= 11"], 11, f"record 11 {NO_MAC}"),
        (["UPDATE audit SET mac = NULL WHERE seq = 7"], 7, f"record 7 {NO_MAC}"),
        (["UPDATE audit SET mac = upper(mac) WHERE seq = 3"], 3, f"record 3 {NO_MAC}"),
        # Passed off as a trail begun before record MACs: every anchor goes too...
        (
            ["UPDATE audit SET mac = NULL", "DELETE FROM audit_anchors"],
            1,
            "no anchor at record 1: anchors were removed",
        ),
        (
            # (those left still say where MACs start)
            ["UPDATE audit SET mac = NULL", "DELETE FROM audit_anchors WHERE seq < 10"],
            1,
            f"record 1 {NO_MAC}",
        ),
        # ... or says it is of the format before record MACs, or that they start later.
        (
            ["UPDATE audit SET mac = NULL", "UPDATE audit_anchors SET version = 1, macs_from = 0"],
            1,
            "the anchor at record 1 is forged",
        ),
        (
            [
                "UPDATE audit SET mac = NULL WHERE seq < 11",
                "UPDATE audit_anchors SET macs_from = 11",
            ],
            1,
            "the anchor at record 1 is forged",
        ),
        (
            [
                "UPDATE audit SET mac = NULL WHERE seq >= 11",
                "DELETE FROM audit_anchors WHERE seq > 1",
            ],
            5,
            "no anchor at record 5: anchors were removed",
        ),
    ],
    ids=[
        "strip-the-tail",
        "strip-one",
        "alter-one",
        "strip-all-and-delete-every-anchor",
        "strip-all-and-delete-the-first-anchors",
        "strip-all-and-downgrade-the-anchors",
        "strip-and-move-the-start",
        "strip-the-tail-and-delete-later-anchors",
    ],
)
async def test_stripped_record_macs_are_caught(
    backend: Backend, statements: list[str], first_bad: int, problem: str
) -> None:
    storage = await backend.open()
    await written(storage, 14)  # anchored at 1, 5, 10 and the shutdown at 14
    assert problem_of(await state(storage)) == (None, "intact")
    await backend.drop_guards_and(*statements)
    assert problem_of(await state(storage)) == (first_bad, problem)


# Combinations: forged records, removed anchors, a cut tail


async def test_a_cut_tail_extended_with_forged_records_is_caught(backend: Backend) -> None:
    storage = await backend.open()
    await written(storage, 14)
    # Cut back to 11 (with the shutdown anchor at 14), then records of the attacker's own.
    await backend.drop_guards_and(
        "DELETE FROM audit WHERE seq >= 12", "DELETE FROM audit_anchors WHERE seq >= 12"
    )
    await forge(storage, 3)
    assert problem_of(await state(storage)) == (12, f"record 12 {NO_MAC}")
    # Every anchor gone as well: the first record's is missed.
    await backend.execute("DELETE FROM audit_anchors")
    assert problem_of(await state(storage)) == (1, "no anchor at record 1: anchors were removed")


async def test_a_cut_back_before_an_anchor_and_forged_on_is_caught(backend: Backend) -> None:
    storage = await backend.open()
    await written(storage, 14)
    # Cut back to 7 (the anchors at 10 and 14 go), forge 8 to 12: 10's anchor is due again.
    await backend.drop_guards_and(
        "DELETE FROM audit WHERE seq >= 8", "DELETE FROM audit_anchors WHERE seq >= 8"
    )
    await forge(storage, 5)
    assert problem_of(await state(storage)) == (8, f"record 8 {NO_MAC}")


async def test_a_cut_tail_alone_is_caught_only_by_a_checkpoint(backend: Backend) -> None:
    # What stays undetectable (docs/audit.md): the newest records cut with the anchors among
    # them; the server then goes on from the cut, and every record it writes is genuine.
    storage = await backend.open()
    await written(storage, 14)
    records, anchors = await state(storage)
    checkpoint = make_checkpoint(records, anchors, KEY, at=3000.0)
    await backend.drop_guards_and(
        "DELETE FROM audit WHERE seq >= 12", "DELETE FROM audit_anchors WHERE seq >= 12"
    )
    await written(storage, 4)
    records, anchors = await state(storage)
    assert problem_of((records, anchors)) == (None, "intact")
    verdict = verify(records, anchors, KEY, checkpoints=[checkpoint])
    assert (verdict.first_bad_seq, verdict.problem) == (
        14,
        "the trail was cut or rewritten before checkpoint at record 14",
    )


# Upgrading a trail written before records carried MACs (revision 0010)


async def test_a_trail_of_revision_0010_keeps_verifying_and_new_records_carry_macs(
    backend: Backend,
) -> None:
    await backend.make_0010()
    storage = await backend.open()  # migrates
    records, anchors = await state(storage)
    assert [r.hash for r in records] == [row[8] for row in TRAIL_0010["audit"]]
    assert {r.mac for r in records} == {None} and {a.macs_from for a in anchors} == {0}
    assert [a.seq for a in anchors] == [1, 5, 10, 12, 15, 20, 21, 25]
    assert problem_of((records, anchors)) == (None, "intact")

    await written(storage, 8)  # records 28 to 35
    records, anchors = await state(storage)
    assert [r.seq for r in records if r.mac is not None] == list(range(28, 36))
    new = [(a.seq, a.version, a.prev_seq, a.macs_from) for a in anchors if a.seq > 25]
    assert new == [(28, RECORD_MACS, 25, 28), (30, RECORD_MACS, 28, 28), (35, RECORD_MACS, 30, 28)]
    verdict = verify(records, anchors, KEY)
    assert (verdict.ok, verdict.macs_from) == (True, 28)

    # From there on, a forged record is caught like in a new trail.
    await forge(storage, 1)
    await written(storage, 3)
    assert problem_of(await state(storage)) == (36, f"record 36 {NO_MAC}")


@pytest.mark.parametrize(
    ("statements", "first_bad", "problem"),
    [
        (["UPDATE audit SET mac = NULL WHERE seq = 31"], 31, f"record 31 {NO_MAC}"),
        (["UPDATE audit SET mac = NULL WHERE seq >= 28"], 28, f"record 28 {NO_MAC}"),
        # The anchors that say MACs start at 28 removed: the records' MACs still say so.
        (
            ["DELETE FROM audit_anchors WHERE version = 2"],
            28,
            "record 28 carries a MAC but no anchor says record MACs had started",
        ),
        # ... and the MACs stripped too: the anchor the old ones promised by 30 is missed.
        (
            ["DELETE FROM audit_anchors WHERE version = 2", "UPDATE audit SET mac = NULL"],
            30,
            "no anchor at record 30: anchors were removed",
        ),
        # ... or kept, said to be of the format before record MACs.
        (
            ["UPDATE audit SET mac = NULL", "UPDATE audit_anchors SET version = 1, macs_from = 0"],
            28,
            "the anchor at record 28 is forged",
        ),
    ],
    ids=["strip-one", "strip-all", "delete-the-new-anchors", "and-strip", "downgrade-the-anchors"],
)
async def test_stripping_the_record_macs_of_an_upgraded_trail_is_caught(
    backend: Backend, statements: list[str], first_bad: int, problem: str
) -> None:
    await backend.make_0010()
    storage = await backend.open()
    await written(storage, 8)  # records 28 to 35
    await backend.drop_guards_and(*statements)
    found = problem_of(await state(storage))
    assert found[0] == first_bad and found[1].startswith(problem), found


async def test_right_after_an_upgrade_a_cut_tail_can_be_rewritten_unless_checkpointed(
    backend: Backend,
) -> None:
    # The limit docs/audit.md states: before the first anchor the old ones promised (30), the
    # records written since the upgrade can be cut back, stripped and rewritten with the anchor
    # that started their MACs; only a checkpoint taken since the upgrade shows it.
    await backend.make_0010()
    storage = await backend.open()
    await written(storage, 4, stop=False)  # records 28 to 31
    records, anchors = await state(storage)
    checkpoint = make_checkpoint(records, anchors, KEY, at=3000.0)
    await backend.drop_guards_and(
        "DELETE FROM audit WHERE seq >= 29",
        "DELETE FROM audit_anchors WHERE seq >= 28",
        "UPDATE audit SET mac = NULL WHERE seq = 28",
    )
    await forge(storage, 1)  # record 29
    records, anchors = await state(storage)
    assert problem_of((records, anchors)) == (None, "intact")
    verdict = verify(records, anchors, KEY, checkpoints=[checkpoint])
    assert (verdict.first_bad_seq, verdict.problem) == (
        31,
        "the trail was cut or rewritten before checkpoint at record 31",
    )


# Several writers on one trail


async def test_two_writers_on_one_postgres_trail_mac_every_record() -> None:
    async with fresh_schema(migrated=True) as schema:
        stores = [await SQLStorage.connect(PG_DSN, schema=schema) for _ in range(2)]
        try:
            logs = [AuditLog(store, KEY, anchor_every=5) for store in stores]

            async def signs_in(log: AuditLog, actor: str, count: int) -> None:
                for i in range(count):
                    await log.record(4000.0 + i, "sign_in", actor=actor, org="default")

            # At once: the two often read the same head, and the second MACs its record again
            # under the number it gets.
            await asyncio.gather(signs_in(logs[0], "a", 20), signs_in(logs[1], "b", 20))
            records, anchors = await state(stores[0])
            assert len(records) == 40 and {r.actor for r in records} == {"a", "b"}
            assert all(r.mac is not None for r in records)
            assert [a.seq for a in anchors] == [1, 5, 10, 15, 20, 25, 30, 35, 40]
            verdict = verify(records, anchors, KEY)
            assert (verdict.ok, verdict.macs_from) == (True, 1)

            await forge(stores[1], 1)  # record 41, between the two servers' records
            await asyncio.gather(signs_in(logs[0], "a", 5), signs_in(logs[1], "b", 5))
            assert problem_of(await state(stores[0])) == (41, f"record 41 {NO_MAC}")
        finally:
            for store in stores:
                await store.close()


async def test_tandem_audit_verify_checks_an_sqlite_data_directory_of_revision_0010(
    tmp_path: Path,
) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    database = tmp_path / "tandem.sqlite3"
    engine = create_async_engine(f"sqlite+aiosqlite:///{database}", poolclass=sa.NullPool)
    _sqlite_hooks(engine, 1000)
    await fill_at_0010(engine)
    (tmp_path / "audit.key").write_text(KEY.hex())
    verified = await asyncio.to_thread(run_verify, tmp_path)  # upgrades it first
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout == (
        "audit trail intact: 27 records, 8 anchors, 0 checkpoints checked;"
        " no record MACs yet (written before them)\n"
        "sessions are not compared with the rows stored: the latest server to start was of a"
        " version that deleted sessions' records without recording it\n"
        "stored rows agree: the 0 sessions and 0 recordings the trail says exist are stored\n"
    )
    storage = await SQLStorage.open_sqlite(database)
    try:
        assert await storage.revision() == migrations.head_revision()
        await written(storage, 3)
    finally:
        await storage.close()
    verified = await asyncio.to_thread(run_verify, tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout == (
        "audit trail intact: 30 records, 10 anchors, 0 checkpoints checked;"
        " every record from 28 on has its MAC\n"
        "sessions are not compared with the rows stored: the latest server to start was of a"
        " version that deleted sessions' records without recording it\n"
        "stored rows agree: the 0 sessions and 0 recordings the trail says exist are stored\n"
    )


# Each organisation's positions (revision 0013): the chain's numbers told an organisation's
# auditors how many records the others wrote between theirs.

ORGS = {"a": "acme", "d": "default"}


async def appended(storage: Storage, orgs: str, at: float = 3000.0) -> None:
    """One record per letter of ``orgs``: ``a`` Acme's, ``d`` the default organisation's."""
    log = AuditLog(storage, KEY, anchor_every=5)
    for i, letter in enumerate(orgs):
        await log.record(at + i, "sign_in", actor=f"{letter}{i}", org=ORGS[letter])


def positions(records: list[AuditRecord]) -> list[tuple[str, int]]:
    return [(r.org, r.org_seq) for r in records]


def counted(orgs: str) -> list[tuple[str, int]]:
    """The positions ``orgs`` (as :func:`appended` takes them) give each record."""
    seen: dict[str, int] = {}
    out = []
    for letter in orgs:
        seen[letter] = seen.get(letter, 0) + 1
        out.append((ORGS[letter], seen[letter]))
    return out


async def test_each_organisation_numbers_its_records_from_one_and_pages_by_them(
    backend: Backend,
) -> None:
    storage = await backend.open()
    await appended(storage, "addadddda")
    records, anchors = await state(storage)
    assert positions(records) == counted("addadddda")
    assert problem_of((records, anchors)) == (None, "intact")
    acme = of_org("acme")
    assert [(r.org_seq, r.actor) for r in await storage.audit_page(acme, 0, 100)] == [
        (1, "a0"),
        (2, "a3"),
        (3, "a8"),
    ]
    # The cursors are positions of the organisation's own trail, not the chain's numbers.
    assert [r.actor for r in await storage.audit_page(acme, 1, 100)] == ["a3", "a8"]
    assert [r.actor for r in await storage.audit_search(acme, 3, 100)] == ["a3", "a0"]
    assert [r.actor for r in await storage.audit_concerning(acme, [], ["a3", "d1"])] == ["a3"]


@pytest.mark.parametrize(
    ("statements", "first_bad", "said"),
    [
        # A gap opened in Acme's positions: its auditors would look for a record never written.
        (["UPDATE audit SET org_seq = org_seq + 10 WHERE org = 'acme' AND org_seq >= 2"], 4, 12),
        # Acme's first and third records swapped in its auditors' order.
        (
            [
                "UPDATE audit SET org_seq = 0 WHERE org = 'acme' AND org_seq = 1",
                "UPDATE audit SET org_seq = 1 WHERE org = 'acme' AND org_seq = 3",
                "UPDATE audit SET org_seq = 3 WHERE org = 'acme' AND org_seq = 0",
            ],
            1,
            3,
        ),
    ],
    ids=["gap", "swap"],
)
async def test_positions_altered_with_the_guards_dropped_are_caught(
    backend: Backend, statements: list[str], first_bad: int, said: int
) -> None:
    storage = await backend.open()
    await appended(storage, "addadddda")
    await backend.drop_guards_and(*statements)
    expected = 1 if first_bad == 1 else 2
    assert problem_of(await state(storage)) == (
        first_bad,
        f"record {first_bad} says it is number {said} of its organisation's, the trail before it"
        f" makes it number {expected}: the positions were altered",
    )


async def test_the_database_refuses_one_position_given_twice(backend: Backend) -> None:
    # The writers' last guard: two that read one head commit one position at most (the one
    # refused reads the new head and tries again, as for a number taken).
    storage = await backend.open()
    await appended(storage, "ad")
    taken = (
        "INSERT INTO audit (seq, at, action, actor, org, subject, details, prev_hash, hash,"
        " org_seq) VALUES (3, 0, 'x', 'x', 'acme', '', '{}', '', '', 1)"
    )
    with pytest.raises(APPEND_ONLY):
        await backend.execute(taken)
    assert positions((await state(storage))[0]) == counted("ad")


async def test_two_servers_number_two_organisations_at_once_on_postgres() -> None:
    async with fresh_schema(migrated=True) as schema:
        stores = [await SQLStorage.connect(PG_DSN, schema=schema) for _ in range(2)]
        try:
            logs = [AuditLog(store, KEY, anchor_every=5) for store in stores]

            async def signs_in(log: AuditLog, org: str, actor: str, count: int) -> None:
                for i in range(count):
                    await log.record(4000.0 + i, "sign_in", actor=actor, org=org)

            # Both servers write both organisations' records at once: they often read the same
            # head and give the same position; the one that loses the number tries again.
            await asyncio.gather(
                signs_in(logs[0], "acme", "a", 15),
                signs_in(logs[1], "acme", "b", 15),
                signs_in(logs[0], "default", "c", 15),
                signs_in(logs[1], "default", "d", 15),
            )
            records, anchors = await state(stores[0])
            assert len(records) == 60
            for org in ("acme", "default"):
                assert [r.org_seq for r in records if r.org == org] == list(range(1, 31))
            assert problem_of((records, anchors)) == (None, "intact")
        finally:
            for store in stores:
                await store.close()


async def trail_of_0012(scratch: Path, orgs: str) -> tuple[list[tuple[object, ...]], Trail]:
    """The rows of a trail as Tandem at revision 0012 wrote it (no position; the hashes, MACs
    and anchors 0013 left as they were), written by this Tandem on a scratch database."""
    migrated_sqlite(scratch)
    storage = await SQLStorage.open_sqlite(scratch)
    try:
        await appended(storage, orgs, at=1000.0)
        records, anchors = await state(storage)
    finally:
        await storage.close()
    rows: list[tuple[object, ...]] = [
        (r.seq, r.at, r.action, r.actor, r.org, r.subject, json.dumps(r.details)) for r in records
    ]
    rows = [(*row, r.prev_hash, r.hash, r.mac) for row, r in zip(rows, records, strict=True)]
    return rows, (records, anchors)


async def fill_at_0012(
    engine: AsyncEngine, rows: list[tuple[object, ...]], anchors: list[Anchor]
) -> None:
    """Migrate to revision 0012 and store ``rows`` and ``anchors`` with its statements."""
    names = ("seq", "at", "action", "actor", "org", "subject", "details", "prev", "hash", "mac")
    async with engine.begin() as db:
        await db.run_sync(migrations.upgrade, "0012")
        await db.execute(
            sa.text(
                "INSERT INTO audit (seq, at, action, actor, org, subject, details, prev_hash,"
                " hash, mac) VALUES (:seq, :at, :action, :actor, :org, :subject, :details,"
                " :prev, :hash, :mac)"
            ),
            [dict(zip(names, row, strict=True)) for row in rows],
        )
        await db.execute(
            sa.text(
                "INSERT INTO audit_anchors (seq, hash, mac, version, every, prev_seq, prev_mac,"
                " macs_from) VALUES (:seq, :hash, :mac, :version, :every, :prev_seq, :prev_mac,"
                " :macs_from)"
            ),
            [dataclasses.asdict(anchor) for anchor in anchors],
        )
    await engine.dispose()


async def test_a_trail_of_revision_0012_is_numbered_per_organisation_on_upgrade(
    backend: Backend, tmp_path: Path
) -> None:
    rows, (written_then, anchors_then) = await trail_of_0012(tmp_path / "scratch.db", "addaddda")
    await backend.fill_old(lambda engine: fill_at_0012(engine, rows, anchors_then))
    storage = await backend.open()  # migrates
    records, anchors = await state(storage)
    assert [r.hash for r in records] == [r.hash for r in written_then] and anchors == anchors_then
    assert positions(records) == counted("addaddda")
    assert problem_of((records, anchors)) == (None, "intact")
    await appended(storage, "da")  # each organisation goes on from its own last position
    records, anchors = await state(storage)
    assert positions(records)[-2:] == [("default", 6), ("acme", 4)]
    assert problem_of((records, anchors)) == (None, "intact")
    # The guard the migration lifted to number the rows is back.
    with pytest.raises(APPEND_ONLY):
        await backend.execute("UPDATE audit SET org_seq = 9 WHERE seq = 1")


async def test_tandem_audit_verify_checks_an_sqlite_data_directory_of_revision_0012(
    tmp_path: Path,
) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    rows, (_, anchors) = await trail_of_0012(tmp_path / "scratch.db", "adda")
    data = tmp_path / "data"
    data.mkdir()
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{data / 'tandem.sqlite3'}", poolclass=sa.NullPool
    )
    _sqlite_hooks(engine, 1000)
    await fill_at_0012(engine, rows, anchors)
    (data / "audit.key").write_text(KEY.hex())
    verified = await asyncio.to_thread(run_verify, data)  # upgrades it first
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith(
        "audit trail intact: 4 records, 1 anchors, 0 checkpoints checked;"
        " every record from 1 on has its MAC\n"
    )
    storage = await SQLStorage.open_sqlite(data / "tandem.sqlite3")
    try:
        assert positions((await state(storage))[0]) == counted("adda")
    finally:
        await storage.close()


async def fill_at_0013(engine: AsyncEngine, rows: list[tuple[object, ...]]) -> None:
    """Migrate to revision 0013 (before backlog lines were noted) and store ``rows``."""
    async with engine.begin() as db:
        await db.run_sync(migrations.upgrade, "0013")
        await db.execute(
            sa.text(
                "INSERT INTO audit (seq, at, action, actor, org, subject, details, prev_hash,"
                " hash, mac, org_seq) VALUES (:seq, :at, :action, :actor, :org, :subject,"
                " :details, :prev, :hash, :mac, :org_seq)"
            ),
            [
                dict(
                    zip(
                        ("seq", "at", "action", "actor", "org", "subject", "details", "prev"),
                        row,
                        strict=False,
                    ),
                    hash=row[8],
                    mac=row[9],
                    org_seq=row[10],
                )
                for row in rows
            ],
        )
    await engine.dispose()


async def test_a_database_of_revision_0013_notes_the_backlog_lines_it_writes_after_upgrade(
    backend: Backend, tmp_path: Path
) -> None:
    """Revision 0014 adds the table of audit backlog lines written (tandem.audit_backlog): a
    trail of 0013 stays intact, and a line is written once."""
    scratch = tmp_path / "scratch.db"
    migrated_sqlite(scratch)
    storage = await SQLStorage.open_sqlite(scratch)
    try:
        await appended(storage, "ad", at=1000.0)
        written_then, anchors_then = await state(storage)
    finally:
        await storage.close()
    rows = [
        (r.seq, r.at, r.action, r.actor, r.org, r.subject, json.dumps(r.details))
        for r in written_then
    ]
    rows = [
        (*row, r.prev_hash, r.hash, r.mac, r.org_seq)
        for row, r in zip(rows, written_then, strict=True)
    ]

    async def fill(engine: AsyncEngine) -> None:
        await fill_at_0013(engine, rows)
        async with engine.begin() as db:
            await db.execute(
                sa.text(
                    "INSERT INTO audit_anchors (seq, hash, mac, version, every, prev_seq,"
                    " prev_mac, macs_from) VALUES (:seq, :hash, :mac, :version, :every,"
                    " :prev_seq, :prev_mac, :macs_from)"
                ),
                [dataclasses.asdict(anchor) for anchor in anchors_then],
            )
        await engine.dispose()

    await backend.fill_old(fill)
    storage = await backend.open()  # migrates
    log = AuditLog(storage, KEY)
    await log.record(1001.0, "user_disabled", org="default", backlog_line=("f" * 32, 1))
    with pytest.raises(BacklogLineWritten):
        await log.record(1001.0, "user_disabled", org="default", backlog_line=("f" * 32, 1))
    await log.record(1002.0, "user_enabled", org="default", backlog_line=("f" * 32, 2))
    records, anchors = await state(storage)
    assert [r.hash for r in records[:2]] == [r.hash for r in written_then]
    assert [r.action for r in records[2:]] == ["user_disabled", "user_enabled"]
    assert problem_of((records, anchors)) == (None, "intact")
