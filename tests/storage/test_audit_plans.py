"""The audit trail's busy reads use the indexes meant for them, on both backends, as the database
itself plans them (SQLite ``EXPLAIN QUERY PLAN``, PostgreSQL ``EXPLAIN``): the statements the
storage really runs, with their arguments, captured as it runs them.

- the chain head (every append): the organisation's last position by ``audit_org_position``,
  never a walk of its records in another index (on PostgreSQL, with a fresh schema's statistics,
  ``max(org_seq)`` scanned the organisation's entries in ``audit_org_subject``: a read that grew
  with the trail);
- an account's activity (every sign-in): its own records by ``audit_org_actor``, the changes made
  to it by ``audit_org_subject``, which is partial (``subject <> ''``: most records have no
  subject, and are no entry of it): the query must say so for either database to use it;
- the records concerning a data subject (``audit_concerning``: the subject export and erasure):
  both indexes, one scan each;
- the records since a time (``tandem audit export --since``): one pass of the table in its order.

And what each append writes: the table's indexes are those reads, no other (each is written at
every append, issue 12; revision 0022 dropped ``audit_at``, by time).

PostgreSQL's plans are checked both as the first runs of a prepared statement plan them (its
arguments' values known) and as later runs do (a generic plan, the values unknown)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tandem.access import Grant
from tandem.audit import AuditLog, AuditRecord, verify
from tandem.storage import migrations
from tandem.storage import sql as sql_module
from tandem.storage.base import Storage
from tandem.storage.sql import SQLStorage
from tests.conftest import migrated_sqlite
from tests.storage.conftest import PG_DSN, fresh_schema, pg_connect

GRANT = Grant.server("default", "test")
KEY = bytes(range(32))
OTHER = Grant.server("other", "test")

Captured = list[tuple[str, list[Any]]]


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[Captured]:
    """Every statement the storage runs (its SQL and arguments in placeholder order)."""
    seen: Captured = []
    args = sql_module._Statement.args

    def recording(self: Any, params: Any) -> list[Any]:
        values = args(self, params)
        seen.append((self.sql, list(values)))
        return values

    monkeypatch.setattr(sql_module._Statement, "args", recording)
    yield seen


RECORDS = 20_000
AGENTS = 200


def _rows() -> list[tuple[Any, ...]]:
    """A trail like a busy organisation's, beside another's: mostly sign-ins (no subject), some
    changes made to accounts, some customers' sessions. Written straight into the table (what is
    read here is how the rows are found, not their chain)."""
    rows = []
    positions = {"default": 0, "other": 0}
    for i in range(RECORDS):
        org = "other" if i % 3 == 0 else "default"
        positions[org] += 1
        if i % 10 == 0:
            action, actor, subject = "mfa_reset", "ada", f"agent{i // 10 % AGENTS}"
        elif i % 10 == 1:
            action, actor, subject = "session_created", f"customer:p{i // 10 % 500}", f"s-{i}"
        else:
            action, actor, subject = "sign_in", f"agent{i // 10 % AGENTS}", ""
        at = 1000.0 + i
        rows.append(
            (i + 1, at, action, actor, org, subject, "{}", "p", f"h{i}", None, positions[org])
        )
    return rows


async def _trail(storage: Storage) -> list[tuple[str, str, str]]:
    assert isinstance(storage, SQLStorage)
    rows = _rows()
    columns = "seq, at, action, actor, org, subject, details, prev_hash, hash, mac, org_seq"
    if not storage._postgres:

        def write(db: Any) -> None:
            with db:
                db.executemany(
                    f"INSERT INTO audit ({columns}) VALUES ({', '.join('?' * 11)})", rows
                )

        await storage._on_sqlite(write)
    else:

        async def write_and_analyse(pool: Any) -> None:
            async with storage._pooled(pool) as db:
                await db.copy_records_to_table("audit", records=rows, columns=columns.split(", "))
                # As autovacuum leaves any table past its first fifty rows changed: the plans
                # read here are those of the trail's own numbers. (SQLite's file is never
                # analysed: there, its planner's own rules.)
                await db.execute("ANALYZE audit")

        await storage._on_postgres(write_and_analyse)
    return [(str(row[4]), str(row[3]), str(row[5])) for row in rows]


async def _plan(storage: Storage, statement: str, args: list[Any], generic: bool) -> str:
    """The plan of ``statement`` with ``args``, on the storage's own connection."""
    assert isinstance(storage, SQLStorage)
    if not storage._postgres:
        rows = await storage._on_sqlite(
            lambda db: db.execute(f"EXPLAIN QUERY PLAN {statement}", args).fetchall()
        )
        return "\n".join(str(row[-1]) for row in rows)
    mode = "force_generic_plan" if generic else "force_custom_plan"

    async def explain(pool: Any) -> list[Any]:
        async with storage._pooled(pool) as db, db.transaction():
            await db.execute(f"SET LOCAL plan_cache_mode = {mode}")
            return list(await db.fetch(f"EXPLAIN {statement}", *args))

    return "\n".join(str(row[0]) for row in await storage._on_postgres(explain))


def _only(captured: Captured, *needles: str) -> tuple[str, list[Any]]:
    found = {
        (sql, tuple(map(repr, args))): (sql, args)
        for sql, args in captured
        if all(needle in sql for needle in needles)
    }
    assert len(found) == 1, (needles, [sql for sql, _ in captured])
    return next(iter(found.values()))


def _generic_modes(storage: Storage) -> list[bool]:
    assert isinstance(storage, SQLStorage)
    return [False, True] if storage._postgres else [False]


async def test_the_chain_head_reads_the_last_position_by_its_index(
    storage: Storage, captured: Captured
) -> None:
    await _trail(storage)
    captured.clear()
    await storage.append_audit(GRANT, 10.0**6, "sign_in", "agent1", "", {})
    head, args = _only(captured, "org_seq", "audit")
    assert "INSERT" not in head
    for generic in _generic_modes(storage):
        plan = await _plan(storage, head, args, generic)
        assert "audit_org_position" in plan, plan
        assert "audit_org_subject" not in plan and "audit_org_actor" not in plan, plan
        if isinstance(storage, SQLStorage) and storage._postgres:
            # Its last entry only (a backward scan stopped at the first), not every entry of
            # the organisation's aggregated: a read that grows with the trail.
            assert re.search(
                r"Limit .*\n *-> +Index (Only )?Scan Backward using audit_org_position", plan
            ), plan


async def test_a_new_postgres_schemas_chain_head_reads_one_entry_of_its_index(
    captured: Captured,
) -> None:
    """Before the table's first ANALYZE (a new installation, a new schema: the planner has no
    statistics, only the table's size), ``max(org_seq)`` planned as an aggregate over every
    entry of the organisation, in whichever index began with ``org`` (audit_org_subject,
    then audit_org_position): each append's read grew with the trail until autovacuum came.
    A schema of its own, made here: a reused one keeps the statistics of the test before."""
    async with fresh_schema() as schema:
        storage = await SQLStorage.connect(PG_DSN, schema=schema)
        try:
            rows = _rows()[:300]
            columns = "seq, at, action, actor, org, subject, details, prev_hash, hash, mac, org_seq"

            async def write(pool: Any) -> None:
                async with storage._pooled(pool) as db:
                    await db.copy_records_to_table(
                        "audit", records=rows, columns=columns.split(", ")
                    )

            await storage._on_postgres(write)
            captured.clear()
            await storage.append_audit(GRANT, 10.0**6, "sign_in", "agent1", "", {})
            head, args = _only(captured, "org_seq", "audit")
            for generic in (False, True):
                plan = await _plan(storage, head, args, generic)
                assert re.search(
                    r"Limit .*\n *-> +Index (Only )?Scan Backward using audit_org_position", plan
                ), plan
        finally:
            await storage.close()


async def test_an_accounts_activity_reads_each_half_by_its_index(
    storage: Storage, captured: Captured
) -> None:
    await _trail(storage)
    captured.clear()
    found = await storage.account_activity(
        GRANT, "agent1", 0.0, 50, ("sign_in",), ("mfa_reset", "password_reset")
    )
    assert {(r.action, r.actor, r.subject) for r in found} == {
        ("sign_in", "agent1", ""),
        ("mfa_reset", "ada", "agent1"),
    }
    assert len(found) > 20
    reads = [(sql, args) for sql, args in captured if "row_number" in sql]
    assert len(reads) == 2, [sql for sql, _ in captured]
    own, changes = reads
    for generic in _generic_modes(storage):
        plan = await _plan(storage, *own, generic)
        assert "audit_org_actor" in plan, plan
        plan = await _plan(storage, *changes, generic)
        assert "audit_org_subject" in plan, plan


async def test_the_records_concerning_a_subject_are_read_by_both_indexes(
    storage: Storage, captured: Captured
) -> None:
    written = await _trail(storage)
    captured.clear()
    subjects, actors = ["s-11", "s-41", "s-60", "missing"], ["customer:p2", "agent3"]
    found = await storage.audit_concerning(GRANT, subjects, actors)
    expected = [
        (actor, subject)
        for org, actor, subject in written
        if org == "default" and (subject in subjects or actor in actors)
    ]
    assert len(expected) > 20
    assert [(r.actor, r.subject) for r in found] == expected
    assert [r.org_seq for r in found] == sorted(r.org_seq for r in found)
    read, args = _only(captured, "audit")
    for generic in _generic_modes(storage):
        plan = await _plan(storage, read, args, generic)
        assert "audit_org_subject" in plan and "audit_org_actor" in plan, plan


def _sqlite_index(path: Path) -> str | None:
    db = sqlite3.connect(path)
    try:
        row = db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'audit_org_subject'"
        ).fetchone()
    finally:
        db.close()
    return None if row is None else str(row[0])


@pytest.mark.parametrize("beforehand", ["whole", "partial", "invalid"])
async def test_revision_0021_makes_the_subject_index_partial(
    tmp_path: Path, beforehand: str
) -> None:
    """A schema at 0020 (the whole index of revision 0017) is upgraded: the index is partial
    after, and the records of an account's activity are read through it as before. An operator
    who built the partial one beforehand (docs/operations.md) has it taken as it is; one a failed
    ``CREATE INDEX CONCURRENTLY`` left INVALID is built again (PostgreSQL only)."""
    partial = "CREATE INDEX audit_org_subject ON audit (org, subject, at) WHERE subject <> ''"
    whole = "CREATE INDEX audit_org_subject ON audit (org, subject, at)"
    # SQLite (no invalid index there).
    if beforehand != "invalid":
        path = migrated_sqlite(tmp_path / "db.sqlite3")
        db = sqlite3.connect(path)
        db.executescript(
            "DROP INDEX audit_org_subject;"
            f" {partial if beforehand == 'partial' else whole};"
            " UPDATE alembic_version SET version_num = '0020';"
        )
        db.close()
        store = await SQLStorage.open_sqlite(path)
        try:
            assert await store.revision() == migrations.head_revision()
            await _activity_read(store)
        finally:
            await store.close()
        assert "WHERE subject <> ''" in str(_sqlite_index(path))
    async with fresh_schema(migrated=True) as schema:
        admin = await pg_connect(schema)
        try:
            await admin.execute("DROP INDEX audit_org_subject")
            if beforehand == "invalid":
                # What a CONCURRENTLY build that failed leaves.
                await admin.execute(partial)
                await admin.execute(
                    "UPDATE pg_index SET indisvalid = false"
                    " WHERE indexrelid = 'audit_org_subject'::regclass"
                )
            else:
                await admin.execute(partial if beforehand == "partial" else whole)
            await admin.execute("UPDATE alembic_version SET version_num = '0020'")
        finally:
            await admin.close()
        store = await SQLStorage.connect(PG_DSN, schema=schema)
        try:
            assert await store.revision() == migrations.head_revision()
            await _activity_read(store)
        finally:
            await store.close()
        admin = await pg_connect(schema)
        try:
            row = await admin.fetchrow(
                "SELECT pg_get_expr(i.indpred, i.indrelid), i.indisvalid FROM pg_index i"
                " WHERE i.indexrelid = 'audit_org_subject'::regclass"
            )
        finally:
            await admin.close()
        assert row is not None and row[1] is True
        assert "subject <> ''" in str(row[0])


async def _activity_read(storage: SQLStorage) -> None:
    await storage.append_audit(GRANT, 1.0, "mfa_reset", "ada", "alice", {})
    await storage.append_audit(GRANT, 2.0, "sign_in", "alice", "", {})
    found = await storage.account_activity(GRANT, "alice", 0.0, 50, ("sign_in",), ("mfa_reset",))
    assert [(r.action, r.actor, r.subject) for r in found] == [
        ("sign_in", "alice", ""),
        ("mfa_reset", "ada", "alice"),
    ]


# What an append writes


TRAIL_INDEXES = {"audit_org_position", "audit_org_actor", "audit_org_subject"}
"""The audit table's indexes besides its key, each read by a busy path: the chain head and an
organisation's pages (position), an account's activity and a data subject's records (actor,
subject)."""


async def _audit_indexes(storage: SQLStorage) -> set[str]:
    if not storage._postgres:
        rows = await storage._on_sqlite(
            lambda db: db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit'"
                " AND name NOT LIKE 'sqlite_autoindex_%'"
            ).fetchall()
        )
        return {str(row[0]) for row in rows}

    async def read(pool: Any) -> list[Any]:
        async with storage._pooled(pool) as db:
            return list(
                await db.fetch(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
                    " AND tablename = 'audit' AND indexname <> 'audit_pkey'"
                )
            )

    return {str(row[0]) for row in await storage._on_postgres(read)}


async def test_an_append_writes_only_the_indexes_a_busy_read_uses(storage: Storage) -> None:
    """Every record is written into every index of the table (on SQLite, at least a page of
    the write-ahead log each, at every commit): issue 12 counts each one. ``audit_at`` (by
    time) served only ``tandem audit export --since``, an operator's command, and cost every
    append one more (revision 0022 drops it)."""
    assert isinstance(storage, SQLStorage)
    assert await _audit_indexes(storage) == TRAIL_INDEXES


async def test_the_records_since_a_time_are_read_in_one_pass_in_chain_order(
    storage: Storage, captured: Captured
) -> None:
    """``tandem audit export --since``: the records whose time is at or after it, in the
    chain's order, a record written late (its time before the last ones', as the audit backlog's
    are) among them, read in one pass of the table in its own order (SQLite: never sorted
    apart)."""
    await _trail(storage)
    await storage.append_audit(GRANT, 5000.5, "sign_in", "agent1", "", {})
    captured.clear()
    found = await storage.audit_records(since=5000.0)
    assert [r.seq for r in found] == list(range(4001, RECORDS + 2))
    assert found[-1].at == 5000.5
    read, args = _only(captured, "audit")
    for generic in _generic_modes(storage):
        plan = await _plan(storage, read, args, generic)
        if isinstance(storage, SQLStorage) and not storage._postgres:
            assert "SCAN audit" in plan and "TEMP B-TREE" not in plan, plan


async def _verified_trail(storage: SQLStorage) -> list[AuditRecord]:
    """A trail of two organisations written as servers write it (MACs, anchors), verified."""
    records, anchors = await storage.audit_records(), await storage.anchors()
    verdict = verify(records, anchors, KEY, legacy_every=5)
    assert verdict.ok, verdict.problem
    return records


async def _write_trail(storage: SQLStorage, start: float) -> None:
    log = AuditLog(storage, KEY, anchor_every=5)
    for i in range(12):
        org = "other" if i % 4 == 0 else "default"
        subject = f"agent{i % 3}" if i % 5 == 0 else ""
        action = "mfa_reset" if subject else "sign_in"
        actor = "ada" if subject else f"agent{i % 3}"
        await log.record(start + i, action, actor=actor, org=org, subject=subject, ip="::1")


async def _after_0022(storage: SQLStorage, before: list[AuditRecord]) -> None:
    """What an upgraded trail must still be: the same records, verified, read by time, by
    account and by data subject, and extended."""
    assert await storage.revision() == migrations.head_revision()
    assert await _audit_indexes(storage) == TRAIL_INDEXES
    assert await _verified_trail(storage) == before
    assert [r.seq for r in await storage.audit_records(since=1005.0)] == [
        r.seq for r in before if r.at >= 1005.0
    ]
    activity = await storage.account_activity(
        GRANT, "agent2", 0.0, 50, ("sign_in",), ("mfa_reset",)
    )
    assert {(r.action, r.actor, r.subject) for r in activity} == {
        ("sign_in", "agent2", ""),
        ("mfa_reset", "ada", "agent2"),
    }
    concerning = await storage.audit_concerning(GRANT, [], ["agent1"])
    assert [r.seq for r in concerning] == [
        r.seq for r in before if r.org == "default" and r.actor == "agent1"
    ]
    await _write_trail(storage, 2000.0)
    assert len(await _verified_trail(storage)) == len(before) + 12


async def test_revision_0022_drops_the_time_index_of_a_written_trail(tmp_path: Path) -> None:
    """A database at 0021 with a trail on it (MACs, anchors, two organisations) is upgraded:
    ``audit_at`` is gone, nothing else changed, and the trail verifies, is read as before and
    goes on."""
    path = migrated_sqlite(tmp_path / "db.sqlite3")
    store = await SQLStorage.open_sqlite(path)
    try:
        await _write_trail(store, 1000.0)
        before = await _verified_trail(store)
    finally:
        await store.close()
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE INDEX audit_at ON audit(at); UPDATE alembic_version SET version_num = '0021';"
    )
    db.close()
    store = await SQLStorage.open_sqlite(path)
    try:
        await _after_0022(store, before)
    finally:
        await store.close()

    async with fresh_schema(migrated=True) as schema:
        store = await SQLStorage.connect(PG_DSN, schema=schema)
        try:
            await _write_trail(store, 1000.0)
            before = await _verified_trail(store)
        finally:
            await store.close()
        admin = await pg_connect(schema)
        try:
            await admin.execute("CREATE INDEX audit_at ON audit (at)")
            await admin.execute("UPDATE alembic_version SET version_num = '0021'")
        finally:
            await admin.close()
        store = await SQLStorage.connect(PG_DSN, schema=schema)
        try:
            await _after_0022(store, before)
        finally:
            await store.close()
