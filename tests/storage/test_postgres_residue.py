"""PostgreSQL only: what an erasure, a recording's erasure and retention's purge leave of the
erased rows in their tables' pages, read there with ``pageinspect`` (docs/compliance.md,
"PostgreSQL keeps deleted rows' bytes").

A deleted row stays in its page as a dead tuple, whole and readable with the database's own
tools, until a vacuum removes it: autovacuum's time, hours on a quiet table. The server now
vacuums each table it deleted rows of (``vacuum_deleted``, its ``vacuum`` task). A vacuum
compacts the page (rows written after it move over its bytes) and gives back empty pages at the
table's end; bytes no row moved over stay in the page's free space, and a page whose rows were
all erased keeps them until new rows are written there: measured here, so the docs say what is
true. Each test runs in a database of this module alone: a vacuum removes nothing another
transaction of the same database might still see, and the other tests' transactions would make
what it removes depend on their timing."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tandem.compliance import evaluate
from tandem.exceptions import StorageError
from tandem.storage import sql
from tandem.storage.base import VACUUM_NOTE, HoldRecord, RecordingRecord, UserRecord
from tandem.storage.sql import SQLStorage
from tests.conftest import tandem_in_process
from tests.grants import of_org, owned
from tests.storage.conftest import PG_DSN, pg_connect
from tests.storage.test_suspended_sessions import handed_over
from tests.test_compliance import NOW, compliant

DAY = 86400.0
CUSTOMER = "erase-me-pg-4b1d@example.com"


def _frame(mark: bytes) -> bytes:
    """A recorded frame as stored: ciphertext (incompressible, so stored out of line in the
    table's TOAST relation, as a real recording's frames are), ``mark`` every 256 bytes so that
    each chunk of it holds one whole."""
    return b"".join(mark + secrets.token_bytes(256 - len(mark)) for _ in range(24))


async def _create_database(name: str) -> str | None:
    """The database ``name`` with ``pageinspect``; its DSN, or None (and dropped) if the
    extension cannot be created there."""
    admin = await pg_connect()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = PG_DSN.rsplit("/", 1)[0] + f"/{name}"
    db = await asyncpg.connect(dsn)
    try:
        await db.execute("CREATE EXTENSION pageinspect")
        return dsn
    except asyncpg.PostgresError:  # not a superuser: nothing here can read the pages
        await _drop_database(name)
        return None
    finally:
        await db.close()


async def _drop_database(name: str) -> None:
    admin = await pg_connect()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A database of this module alone, with ``pageinspect``; its DSN."""
    name = f"residue_{secrets.token_hex(6)}"
    dsn = asyncio.run(_create_database(name))
    if dsn is None:
        pytest.skip("pageinspect cannot be created here, so no test can read the pages")
    try:
        yield dsn
    finally:
        asyncio.run(_drop_database(name))


@pytest.fixture
def schema() -> str:
    return f"t_{secrets.token_hex(6)}"


@pytest.fixture
async def store(database: str, schema: str) -> AsyncIterator[SQLStorage]:
    storage = await SQLStorage.connect(database, schema=schema)
    try:
        yield storage
    finally:
        await storage.close()
        db = await asyncpg.connect(database)
        try:
            await db.execute(f'DROP SCHEMA "{schema}" CASCADE')
        finally:
            await db.close()


async def _recorded(
    store: SQLStorage, session_id: str, sub: str, ended: float, frames: int = 1
) -> bytes:
    """A customer's ended session with a recording of ``frames`` frames; the first."""
    await store.record_session_start(of_org("default"), session_id, ended - 10, "demo")
    await store.link_subject(of_org("default"), sub, session_id, f"p-{session_id}")
    await store.record_session_end(session_id, ended, "customer_left", "Alice")
    recording = RecordingRecord(
        f"r-{session_id}", "default", session_id, "demo", "alice", "k1", ended - 9
    )
    await store.add_recording(*owned(recording))
    frame = _frame(f"FRAME-{session_id}-".encode())
    more = [_frame(f"FRAME-{session_id}-".encode()) for _ in range(frames - 1)]
    await store.append_recording_frames(f"r-{session_id}", 0, [frame, *more])
    await store.end_recording(f"r-{session_id}", ended - 1, "stopped_by_customer")
    return frame


async def _relations(db: asyncpg.Connection, table: str) -> list[str]:
    """The table and its TOAST relation (if it has one), as names ``get_raw_page`` takes."""
    rows = await db.fetch(
        "SELECT c.oid::regclass::text AS heap, c.reltoastrelid::regclass::text AS toast"
        " FROM pg_class c WHERE c.oid = to_regclass($1)",
        table,
    )
    return [name for name in (rows[0]["heap"], rows[0]["toast"]) if name and name != "-"]


async def _in_pages(database: str, schema: str, tables: list[str], mark: bytes) -> list[str]:
    """The pages (``relation:block``) of ``tables`` whose bytes hold ``mark`` anywhere: in a
    tuple, live or dead, or in the page's free space."""
    db = await asyncpg.connect(database, server_settings={"search_path": f"{schema},public"})
    try:
        found = []
        for table in tables:
            for relation in await _relations(db, table):
                blocks = await db.fetchval("SELECT pg_relation_size($1::regclass) / 8192", relation)
                for block in range(int(blocks)):
                    page = await db.fetchval(
                        "SELECT get_raw_page($1::text, $2::int)", relation, block
                    )
                    if mark in page:
                        found.append(f"{relation}:{block}")
        return found
    finally:
        await db.close()


async def _in_tuples(database: str, schema: str, tables: list[str], mark: bytes) -> list[str]:
    """The tuples (live or dead: any line pointer that still points at one) of ``tables``
    whose bytes hold ``mark``: what the database's own tools read back (``heap_page_items``)."""
    db = await asyncpg.connect(database, server_settings={"search_path": f"{schema},public"})
    try:
        found = []
        for table in tables:
            for relation in await _relations(db, table):
                rows = await db.fetch(
                    "SELECT b, i.lp, i.t_data FROM generate_series(0,"
                    " (pg_relation_size($1::regclass) / 8192)::int - 1) b,"
                    " LATERAL heap_page_items(get_raw_page($1::text, b)) i"
                    " WHERE i.t_data IS NOT NULL",
                    relation,
                )
                found += [f"{relation}:{r['b']}:{r['lp']}" for r in rows if mark in r["t_data"]]
        return found
    finally:
        await db.close()


TABLES = ["subject_sessions", "sessions", "recordings", "recording_frames"]


@pytest.mark.parametrize("how", ["subject", "recording", "retention"])
async def test_what_is_erased_leaves_no_tuple_in_postgresql_once_vacuumed(
    database: str, schema: str, store: SQLStorage, how: str
) -> None:
    """Before the fix the erased rows stayed as dead tuples, whole (the customer's ``sub``, the
    recording's frames), until autovacuum came by; now the storage has the tables due and the
    vacuum removes them: no tuple holds them, and the page holding the customer's small rows,
    compacted under the rows written after them, no longer holds their bytes either."""
    frame = await _recorded(store, "s1", CUSTOMER, 100.0)
    for n in range(2, 40):  # other customers' sessions after: a relay's ordinary traffic
        await _recorded(store, f"s{n}", f"someone-{n}@example.com", 100.0 + 25 * DAY)
    mark = b"FRAME-s1-"
    if how == "subject":
        await store.erase_subject(of_org("default"), CUSTOMER, ["s1"])
    elif how == "recording":
        assert await store.delete_recording("r-s1")
    else:  # 30 days' retention: s1 goes, the others stay
        later = 100.0 + 31 * DAY
        assert [r.recording_id for r in await store.purge_recordings(later)] == ["r-s1"]
        await store.purge_expired(later)
    erased = [mark] if how == "recording" else [mark, CUSTOMER.encode()]
    for gone in erased:  # deleted, but still there, whole, until a vacuum
        assert await _in_tuples(database, schema, TABLES, gone)
    assert {"recordings", "recording_frames"} <= set(store.vacuum_due)

    assert set(await store.vacuum_deleted()) >= {"recordings", "recording_frames"}
    assert store.vacuum_due == ()
    for gone in erased:
        assert await _in_tuples(database, schema, TABLES, gone) == []
    if how != "recording":
        small = ["subject_sessions", "sessions"]
        assert await _in_pages(database, schema, small, CUSTOMER.encode()) == []
    assert await store.recording_frames("r-s2") != []  # the others' rows are whole
    assert frame not in b"".join(await store.recording_frames("r-s2"))


async def test_postgresql_keeps_an_erased_recordings_bytes_in_freed_pages_until_reused(
    database: str, schema: str, store: SQLStorage
) -> None:
    """The limit, measured (docs/compliance.md): a plain vacuum does not overwrite. A page all
    of whose rows were erased (the middle of a long recording's frames) keeps their bytes, in no
    tuple, until new rows are written there; ``VACUUM FULL`` (a maintenance window's tool: it
    locks the table against every reader and writer while it rewrites it) removes them."""
    await _recorded(store, "s1", CUSTOMER, 100.0, frames=6)  # several pages of chunks
    await _recorded(store, "s2", "someone@example.com", 100.0)
    await store.erase_subject(of_org("default"), CUSTOMER, ["s1"])
    await store.vacuum_deleted()
    assert await _in_tuples(database, schema, ["recording_frames"], b"FRAME-s1-") == []
    assert await _in_pages(database, schema, ["recording_frames"], b"FRAME-s1-")
    db = await asyncpg.connect(database, server_settings={"search_path": f"{schema},public"})
    try:
        await db.execute("VACUUM FULL recording_frames")
    finally:
        await db.close()
    assert await _in_pages(database, schema, ["recording_frames"], b"FRAME-s1-") == []
    assert await _in_pages(database, schema, ["recording_frames"], b"FRAME-s2-")


async def test_a_vacuum_that_cannot_finish_stays_due_and_passes_at_its_next_turn(
    database: str, schema: str, store: SQLStorage
) -> None:
    """A vacuum that waits past ``database_vacuum_timeout_seconds`` (another session holds a
    lock that conflicts with it: a schema change, a manual VACUUM) is cancelled: the error says
    which table and why, nothing erased is undone, and the table stays due for the next turn,
    which vacuums it once the lock is gone."""
    await _recorded(store, "s1", CUSTOMER, 100.0)
    await store.erase_subject(of_org("default"), CUSTOMER, ["s1"])
    store.vacuum_timeout = 0.5
    holder = await asyncpg.connect(database, server_settings={"search_path": f"{schema},public"})
    try:
        await holder.execute("BEGIN; LOCK TABLE recording_frames IN SHARE UPDATE EXCLUSIVE MODE")
        with pytest.raises(StorageError, match="VACUUM of recording_frames did not finish"):
            await store.vacuum_deleted()
        assert "recording_frames" in store.vacuum_due
        assert await store.get_session("s1") is None
        await holder.execute("ROLLBACK")
    finally:
        await holder.close()
    assert "recording_frames" in await store.vacuum_deleted()
    assert store.vacuum_due == ()
    assert await _in_tuples(database, schema, TABLES, CUSTOMER.encode()) == []


async def test_an_erasure_by_the_command_is_vacuumed_before_it_exits(
    database: str, schema: str, store: SQLStorage, tmp_path: Path
) -> None:
    """``tandem subject erase`` on PostgreSQL (no server process of its own to vacuum after
    it): the customer's rows stayed as dead tuples until autovacuum came by."""
    await _recorded(store, "s1", CUSTOMER, 100.0)
    await _recorded(store, "s2", "someone@example.com", 100.0)
    key = tmp_path / "audit.key"
    env = {
        "TANDEM_DATABASE_URL": f"{database}?search_path={schema}",
        "TANDEM_AUDIT_KEY": str(key),
    }
    at = ("--org", "default", "--data-dir", str(tmp_path / "data"))
    erased = await asyncio.to_thread(
        tandem_in_process, "subject", "erase", CUSTOMER, "--yes", *at, env=env
    )
    assert erased.returncode == 0, erased.stderr
    assert "Erased 1 session(s) and 1 recording(s)" in erased.stdout
    assert await _in_tuples(database, schema, TABLES, CUSTOMER.encode()) == []
    assert await _in_tuples(database, schema, TABLES, b"FRAME-s1-") == []


async def _files_holding(database: str, schema: str, tables: list[str], mark: bytes) -> list[str]:
    """After a checkpoint (the pages written out), the files of ``tables`` (and their TOAST
    relations) on the database server's disk that hold ``mark``; skips the test when they are
    not readable here (PostgreSQL on another machine, or another account's files)."""
    db = await asyncpg.connect(database, server_settings={"search_path": f"{schema},public"})
    try:
        await db.execute("CHECKPOINT")
        home = Path(await db.fetchval("SELECT current_setting('data_directory')"))
        found = []
        for table in tables:
            for relation in await _relations(db, table):
                path = home / await db.fetchval("SELECT pg_relation_filepath($1::text)", relation)
                if not os.access(path, os.R_OK):
                    pytest.skip(f"the database's files are not readable here ({path})")
                for segment in [path, *path.parent.glob(f"{path.name}.[0-9]*")]:
                    if mark in segment.read_bytes():
                        found.append(segment.name)
        return found
    finally:
        await db.close()


async def test_what_the_vacuum_removed_leaves_the_files_on_disk_at_the_checkpoint(
    database: str, schema: str, store: SQLStorage
) -> None:
    """The same on the database server's disk, read as files: written out at a checkpoint (until
    then the files hold the pages as they were), the customer's ``sub`` is in them after the
    erasure, and gone from them once the vacuum ran and the next checkpoint wrote its pages."""
    await _recorded(store, "s1", CUSTOMER, 100.0)
    for n in range(2, 40):
        await _recorded(store, f"s{n}", f"someone-{n}@example.com", 100.0)
    small = ["subject_sessions", "sessions"]
    await store.erase_subject(of_org("default"), CUSTOMER, ["s1"])
    assert await _files_holding(database, schema, small, CUSTOMER.encode())
    await store.vacuum_deleted()
    assert await _files_holding(database, schema, small, CUSTOMER.encode()) == []


async def test_what_a_sessions_end_clears_leaves_no_tuple_once_vacuumed(
    database: str, schema: str, store: SQLStorage
) -> None:
    """A session's end deletes its join code (by digest) and a handed-over session's resume
    state: deleted, both stayed whole as dead tuples until autovacuum came by. Now their tables
    are due, and the vacuum removes them."""
    grant = of_org("default")
    code = b"code-digest-" + secrets.token_hex(8).encode()
    resume = "resume-digest-" + secrets.token_hex(8)
    await store.record_session_start(grant, "s1", 50.0, "demo", "old")
    await store.put_join_code(grant, code.decode(), "s1", 400.0)
    await store.suspend_session(
        dataclasses.replace(handed_over("s1"), resume_digest=resume, agent_resume_digest=resume)
    )
    assert await store.take_suspended("s1", "new", 110.0) is not None  # resumed: taken
    await store.delete_join_codes("s1")  # the end
    assert set(store.vacuum_due) == {"join_codes", "suspended_sessions"}
    cleared = ["join_codes", "suspended_sessions"]
    assert await _in_tuples(database, schema, cleared, code)
    assert await _in_tuples(database, schema, cleared, resume.encode())
    await store.vacuum_deleted()
    assert await _in_tuples(database, schema, cleared, code) == []
    assert await _in_tuples(database, schema, cleared, resume.encode()) == []


async def test_overwriting_a_row_before_deleting_it_leaves_its_bytes_all_the_same(
    database: str, schema: str, store: SQLStorage
) -> None:
    """Why the server does not overwrite a row before deleting it (docs/compliance.md): an
    ``UPDATE`` writes a new version of the row beside the old one, which then goes exactly as a
    deleted row does: after the vacuum, its bytes are still in the page's free space."""
    db = await asyncpg.connect(database, server_settings={"search_path": f"{schema},public"})
    try:
        await db.execute("CREATE TABLE scratch (id text PRIMARY KEY, sub text)")
        await db.execute(
            "INSERT INTO scratch SELECT 'k' || g, 'keep-' || g FROM generate_series(1, 5) g"
        )
        await db.execute("INSERT INTO scratch VALUES ('gone', $1)", CUSTOMER)
        await db.execute("UPDATE scratch SET sub = repeat('0', length(sub)) WHERE id = 'gone'")
        await db.execute("DELETE FROM scratch WHERE id = 'gone'")
        await db.execute("VACUUM scratch")
    finally:
        await db.close()
    assert await _in_tuples(database, schema, ["scratch"], CUSTOMER.encode()) == []
    assert await _in_pages(database, schema, ["scratch"], CUSTOMER.encode())


@contextlib.asynccontextmanager
async def _as_a_role_that_may_not_vacuum(
    database: str, schema: str, *, hears_errors_only: bool = False
) -> AsyncIterator[tuple[SQLStorage, asyncpg.Connection, str]]:
    """The storage connected as a new role that reads and writes the schema's tables but does
    not own them (tables made by a migration role, the server given another), a customer's
    session recorded and erased by it; with the connection that made the role, and its name.
    ``hears_errors_only``: the role's ``client_min_messages`` is ``error``."""
    role = f"not_owner_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(database)
    try:
        await admin.execute(f'CREATE ROLE "{role}" LOGIN')
        if hears_errors_only:
            await admin.execute(f'ALTER ROLE "{role}" SET client_min_messages = error')
        await admin.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        await admin.execute(
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"'
        )
        dsn = database.replace("postgres@", f"{role}@", 1)
        assert dsn != database
        other = await SQLStorage.connect(dsn, schema=schema)
        try:
            await _recorded(other, "s1", CUSTOMER, 100.0)
            await other.erase_subject(of_org("default"), CUSTOMER, ["s1"])
            yield other, admin, role
        finally:
            await other.close()
    finally:
        await admin.execute(f'DROP OWNED BY "{role}"')
        await admin.execute(f'DROP ROLE "{role}"')
        await admin.close()


async def test_a_role_that_may_not_vacuum_is_an_error_not_a_silent_skip(
    database: str, schema: str, store: SQLStorage
) -> None:
    """PostgreSQL only warns when the role running VACUUM does not own the table (tables made
    by a migration role, the server given another with only reads and writes), and vacuums
    nothing: the erased rows stayed as dead tuples while the vacuum said it was done."""
    async with _as_a_role_that_may_not_vacuum(database, schema) as (other, _, _):
        with pytest.raises(StorageError, match=r"was skipped .* must own its tables"):
            await other.vacuum_deleted()
        assert other.vacuum_due  # still due: tried again once the operator fixed it


async def test_a_role_that_may_not_vacuum_and_hears_no_warning_is_an_error_too(
    database: str, schema: str, store: SQLStorage
) -> None:
    """The same role set to hear errors only (``client_min_messages = error``, set for a role
    to quiet its logs) or to report in another language: the vacuum's "skipping" warning was
    never read, and the vacuum that vacuumed nothing counted as done. The role's right to
    vacuum is now asked of the database, in no language."""
    async with _as_a_role_that_may_not_vacuum(database, schema, hears_errors_only=True) as (
        other,
        _,
        _,
    ):
        with pytest.raises(StorageError, match=r"was skipped .* must own its tables"):
            await other.vacuum_deleted()
        assert other.vacuum_due
        assert await _in_tuples(database, schema, TABLES, CUSTOMER.encode())


async def test_statistics_behind_the_vacuums_own_report_do_not_keep_a_table_due(
    database: str,
    schema: str,
    store: SQLStorage,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A backend adds its deletions to the statistics at most once a second (ten seconds later
    when idle), so they can land after the vacuum set the table's count: measured here, a
    vacuum that said "3 removed, 0 are dead but not yet removable", then 3 dead rows in the
    statistics. The larger of the two was taken, so a table stayed due and the compliance
    check was told an older transaction held rows it did not (CI saw it: ``recordings`` still
    due once the backup had ended). The vacuum's own report, when heard, is the count; the
    statistics are made to lag here as they did there."""
    monkeypatch.setattr(
        sql, "_DEAD_LEFT", "SELECT 3 FROM pg_class WHERE oid = to_regclass(quote_ident($1))"
    )
    await _recorded(store, "s1", CUSTOMER, 100.0)
    await store.erase_subject(of_org("default"), CUSTOMER, ["s1"])
    assert set(TABLES) <= set(store.vacuum_due)
    await store.vacuum_deleted()
    assert store.vacuum_due == ()
    assert not [r for r in caplog.records if "older transaction" in r.getMessage()]
    assert await store.installation_note(VACUUM_NOTE) is None
    assert await _in_tuples(database, schema, TABLES, CUSTOMER.encode()) == []


async def test_rows_still_seen_are_counted_whatever_the_server_says_in_words(
    database: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VACUUM VERBOSE's "are dead but not yet removable" is words, translated where the server
    reports in another language (lc_messages): the rows an older transaction still saw were
    read from those words, so a translated report counted the table as done without them. The
    count is now read from the statistics the vacuum sets, in numbers. The machines these tests
    run on have no other locale for PostgreSQL to report in, so the English words are made
    unreadable to the storage here, as a translation makes them (VERBOSE's report is INFO,
    which PostgreSQL sends whatever client_min_messages says)."""
    monkeypatch.setattr(sql, "_NOT_YET_REMOVABLE", re.compile(r"(\d+) sind tot"))
    store = await SQLStorage.connect(database, schema=schema)
    try:
        await _recorded(store, "s1", CUSTOMER, 100.0)
        reader = await asyncpg.connect(
            database, server_settings={"search_path": f"{schema},public"}
        )
        try:
            backup = reader.transaction(isolation="repeatable_read", readonly=True)
            await backup.start()
            assert await reader.fetchval("SELECT count(*) FROM subject_sessions") == 1
            await store.erase_subject(of_org("default"), CUSTOMER, ["s1"])
            await store.vacuum_deleted()
            assert {"subject_sessions", "sessions"} <= set(store.vacuum_due)
            await backup.commit()
        finally:
            await reader.close()
        await store.vacuum_deleted()
        assert store.vacuum_due == ()
    finally:
        await store.close()
        db = await asyncpg.connect(database)
        try:
            await db.execute(f'DROP SCHEMA "{schema}" CASCADE')
        finally:
            await db.close()


async def test_a_deleted_accounts_rows_leave_no_tuple_once_vacuumed(
    database: str, schema: str, store: SQLStorage
) -> None:
    """An agent's account deleted (an employee's erasure): their name, display name, password
    hash, second factor's seed and recovery codes stayed whole as dead tuples until autovacuum
    came by, the account's tables never due. Now they are, and the vacuum removes them."""
    name = "leaver-" + secrets.token_hex(6)
    seed = "TOTP-SEED-" + secrets.token_hex(8)
    user = UserRecord(
        name,
        "Leaver Q9",
        "agent",
        "ARGON-" + secrets.token_hex(8),
        1.0,
        seed,
        0,
        ("RC-1",),
        org_id="default",
    )
    await store.add_user(*owned(user))
    assert await store.delete_user(of_org("default"), name)
    tables = ["users", "recovery_codes"]
    for mark in (name.encode(), seed.encode()):
        assert await _in_tuples(database, schema, tables, mark)
    assert {"users", "recovery_codes"} <= set(store.vacuum_due)
    await store.vacuum_deleted()
    for mark in (name.encode(), seed.encode(), user.password_hash.encode()):
        assert await _in_tuples(database, schema, tables, mark) == []


async def test_rows_another_transaction_still_sees_stay_due_until_a_vacuum_removes_them(
    database: str, schema: str, store: SQLStorage, caplog: pytest.LogCaptureFixture
) -> None:
    """A transaction begun before the erasure (a ``pg_dump`` taking a backup, a session left
    idle in a transaction) still sees the erased rows: a vacuum meanwhile removes none of them
    and says so only in its VERBOSE output. It counted as done, nothing was due any more, and
    the rows stayed whole until autovacuum; now the tables stay due, and the vacuum after that
    transaction ends removes them."""
    await _recorded(store, "s1", CUSTOMER, 100.0)
    reader = await asyncpg.connect(database, server_settings={"search_path": f"{schema},public"})
    try:
        backup = reader.transaction(isolation="repeatable_read", readonly=True)
        await backup.start()
        assert await reader.fetchval("SELECT count(*) FROM subject_sessions") == 1
        await store.erase_subject(of_org("default"), CUSTOMER, ["s1"])
        for _ in range(2):  # each round while it runs; one warning for each table
            await store.vacuum_deleted()
        assert await _in_tuples(database, schema, TABLES, CUSTOMER.encode())  # still seen
        assert {"subject_sessions", "sessions"} <= set(store.vacuum_due)
        left = [r.getMessage() for r in caplog.records if "older transaction" in r.getMessage()]
        assert len([m for m in left if "subject_sessions " in m]) == 1, left
        await backup.commit()
    finally:
        await reader.close()
    await store.vacuum_deleted()
    assert store.vacuum_due == ()
    assert await _in_tuples(database, schema, TABLES, CUSTOMER.encode()) == []


async def test_a_lifted_hold_leaves_no_tuple_naming_its_customer_once_vacuumed(
    database: str, schema: str, store: SQLStorage
) -> None:
    """A subject hold names the customer (its target is their ``sub``). Lifted (the case
    closed), and the customer then erased, the hold's deleted row stayed whole as a dead tuple
    until autovacuum: the erasure's vacuum took every table but the holds'."""
    await _recorded(store, "s1", CUSTOMER, 100.0)
    hold = HoldRecord("default", "subject", CUSTOMER, "case 2026-12", "ada", 1.0)
    assert await store.put_hold(of_org("default"), hold)
    assert await store.delete_hold(of_org("default"), "subject", CUSTOMER) is not None
    await store.erase_subject(of_org("default"), CUSTOMER, ["s1"])
    await store.vacuum_deleted()
    assert await _in_tuples(database, schema, ["legal_holds", *TABLES], CUSTOMER.encode()) == []


def _erasure_item(problem: str | None) -> tuple[str, str, str]:
    """The compliance check's ``erasure_residue`` item, PostgreSQL's, for the note as read."""
    inst = dataclasses.replace(compliant(), database_file=False, vacuum_problem=problem)
    [item] = [r for r in evaluate("gdpr", inst, NOW).results if r.requirement == "erasure_residue"]
    return item.status, item.detail, item.fix


async def test_the_compliance_check_fails_while_the_role_may_not_vacuum_and_passes_once_it_owns(
    database: str, schema: str, store: SQLStorage
) -> None:
    """The vacuum refused (the role Tandem connects as does not own its tables) was a line in
    one server's log: the compliance check passed while the erased rows stayed readable. The
    vacuum task now leaves a note in the database; the check fails on it, naming the fix, and
    passes once the role owns the tables and a round leaves nothing."""
    async with _as_a_role_that_may_not_vacuum(database, schema) as (other, admin, role):
        with pytest.raises(StorageError):
            await other.vacuum_deleted()
        status, detail, fix = _erasure_item(await store.installation_note(VACUUM_NOTE))
        assert status == "fail" and "must own its tables" in detail
        assert "owner of its tables" in fix
        tables = await admin.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
        for row in tables:
            await admin.execute(f'ALTER TABLE "{schema}"."{row["tablename"]}" OWNER TO "{role}"')
        await other.vacuum_deleted()
        assert other.vacuum_due == ()
        assert await store.installation_note(VACUUM_NOTE) is None
        assert _erasure_item(None)[0] == "pass"


async def test_the_compliance_check_fails_while_a_long_transaction_keeps_erased_rows(
    database: str, schema: str, store: SQLStorage
) -> None:
    """A transaction begun before the erasure keeps its rows from every vacuum: the task logged
    it once and the check passed. Now it fails, telling the operator to end that transaction,
    until the round after it ended removes the rows and the note."""
    await _recorded(store, "s1", CUSTOMER, 100.0)
    reader = await asyncpg.connect(database, server_settings={"search_path": f"{schema},public"})
    try:
        backup = reader.transaction(isolation="repeatable_read", readonly=True)
        await backup.start()
        assert await reader.fetchval("SELECT count(*) FROM subject_sessions") == 1
        await store.erase_subject(of_org("default"), CUSTOMER, ["s1"])
        await store.vacuum_deleted()
        status, detail, fix = _erasure_item(await store.installation_note(VACUUM_NOTE))
        assert status == "fail" and "subject_sessions" in detail, detail
        assert "end the long transaction" in fix
        await backup.commit()
    finally:
        await reader.close()
    await store.vacuum_deleted()
    assert await store.installation_note(VACUUM_NOTE) is None
