"""Every storage test runs against both backends: the embedded SQLite file and PostgreSQL.

PostgreSQL is the server at ``TANDEM_TEST_DATABASE_URL`` (default: trust auth on 127.0.0.1:5432,
database ``test``); each test gets a fresh schema, dropped afterwards. Postgres cases are skipped
only when that server cannot be reached, and fail instead under TANDEM_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import NamedTuple, TypeVar

import asyncpg
import pytest

from tandem.storage.base import Storage
from tandem.storage.sql import SQLStorage, redact_dsn
from tests.conftest import migrated_sqlite, service_missing, tandem_in_process

T = TypeVar("T")

PG_DSN = os.environ.get("TANDEM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


async def pg_connect(schema: str | None = None) -> asyncpg.Connection:
    """A plain connection to the test database (search path ``schema``); skips the test if the
    server is unreachable, or fails it under TANDEM_REQUIRE_SERVICES=1 (any other failure is an
    error)."""
    try:
        return await asyncpg.connect(
            PG_DSN, timeout=5, server_settings={"search_path": schema} if schema else None
        )
    except (OSError, TimeoutError, asyncpg.CannotConnectNowError) as exc:
        service_missing(f"PostgreSQL is not reachable at {redact_dsn(PG_DSN)}: {exc}")


class _Admin:
    """This process's connection for making, resetting and dropping the tests' schemas, kept from
    test to test (a connection costs PostgreSQL a server process and ~5 ms of CPU to start). It
    lives on an event loop of its own, in a thread of its own: each test runs on a new loop, and
    an asyncpg connection belongs to the loop that made it."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Lock()
        self._thread: threading.Thread
        self._one_at_a_time: asyncio.Lock | None = None
        self._db: asyncpg.Connection | None = None

    async def run(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """``work(connection)``, on the admin loop (one at a time), from any loop."""
        with self._started:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="tandem-pg-admin", daemon=True
                )
                self._thread.start()
                atexit.register(self._stop)
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(self._on_loop(work), self._loop)
        )

    async def _on_loop(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        if self._one_at_a_time is None:
            self._one_at_a_time = asyncio.Lock()
        async with self._one_at_a_time:
            if self._db is None or self._db.is_closed():
                self._db = await pg_connect()
            try:
                return await work(self._db)
            except BaseException:
                # Whatever state a failure left it in (an aborted transaction, a cancelled
                # query), the next caller gets a new connection.
                db, self._db = self._db, None
                db.terminate()
                raise

    def _stop(self) -> None:
        """At the process's exit: the connection closed, the loop stopped and closed."""
        assert self._loop is not None
        if self._db is not None:
            db, self._db = self._db, None
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(db.close(timeout=5), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()


_ADMIN = _Admin()


@contextlib.asynccontextmanager
async def fresh_schema(*, migrated: bool = False) -> AsyncIterator[str]:
    """A schema of this test alone, empty or ``migrated`` (:func:`create_migrated_schema`),
    dropped with everything in it afterwards. A migrated one may instead be emptied back to
    exactly what a new one holds and kept for this process's next test (:func:`_reset`)."""
    if migrated and _REUSABLE:
        name = _REUSABLE.pop()
    else:
        name = f"t_{secrets.token_hex(6)}"

        async def create(admin: asyncpg.Connection) -> None:
            if migrated:
                await create_migrated_schema(admin, name)
            else:
                await admin.execute(f'CREATE SCHEMA "{name}"')

        await _ADMIN.run(create)
    try:
        yield name
    finally:

        async def reset_or_drop(admin: asyncpg.Connection) -> None:
            if migrated and await _reset(admin, name):
                _REUSABLE.append(name)
            else:
                try:
                    await admin.execute(f'DROP SCHEMA "{name}" CASCADE', timeout=DROP_PATIENCE)
                except TimeoutError:
                    raise AssertionError(
                        f"schema {name} not dropped within {DROP_PATIENCE:g} s: a connection"
                        " the test left open (a frozen proxy's, a killed server's) holds its"
                        " locks"
                    ) from None

        await _ADMIN.run(reset_or_drop)


DROP_PATIENCE = 60.0
"""The test's patience for a schema's drop: a connection left in a transaction on the schema's
tables made the drop (and its test) wait for ever, with nothing saying why."""


_REUSABLE: list[str] = []
"""Migrated schemas of this process that a test used and :func:`_reset` emptied again, for the
next test that asks for one (dropped at the end of the run by :func:`drop_reusable_schemas`)."""

_RELATIONS = """
SELECT oid, relname, relkind::text AS kind,
       format('relation %s %s %s %s %s', relname, relkind, relrowsecurity, relacl, reloptions)
       AS line
  FROM pg_class WHERE relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
"""
_DEFINITION = """
SELECT format('column %s.%s %s %s %s', a.attrelid::regclass, a.attname,
              format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid))
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT format('constraint %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
  FROM pg_constraint WHERE conrelid = ANY($1::oid[])
UNION ALL
SELECT format('trigger %s %s', pg_get_triggerdef(oid), tgenabled)
  FROM pg_trigger WHERE tgrelid = ANY($1::oid[]) AND NOT tgisinternal
UNION ALL
SELECT format('index %s', pg_get_indexdef(indexrelid)) FROM pg_index WHERE indrelid = ANY($1::oid[])
UNION ALL
SELECT format('function %s %s %s', oid::regprocedure, md5(prosrc), proacl)
  FROM pg_proc WHERE pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = $2)
"""
"""Everything a test could have changed in a schema's definition, as text: its relations, their
columns, defaults, constraints, indexes, triggers (and whether they are enabled), privileges and
options, and its functions. Looked up by the relations' oids, through the catalogs' indexes:
where autovacuum is off, the catalogs grow with every schema the suite makes and drops, and a
scan of all of pg_attribute costs more than making a schema."""


async def _definition(admin: asyncpg.Connection, name: str) -> tuple[str, list[str]]:
    """The schema's definition (:data:`_DEFINITION`) and its tables' names."""
    relations = await admin.fetch(_RELATIONS, name)
    oids = [relation["oid"] for relation in relations]
    lines = [relation["line"] for relation in relations]
    lines += [row[0] for row in await admin.fetch(_DEFINITION, oids, name)]
    tables = [r["relname"] for r in relations if r["kind"] == "r"]
    return "\n".join(sorted(lines)).replace(name, "<schema>"), tables


async def _reset(admin: asyncpg.Connection, name: str) -> bool:
    """Empty the migrated schema ``name`` back to what :func:`create_migrated_schema` makes (every
    row deleted, the template's rows written again), if its definition is still the template's
    (a test that dropped a trigger or added a column leaves a schema that is dropped instead).
    Deleting a few rows from 29 tables costs PostgreSQL a fraction of creating them and their
    indexes again. Needs a superuser (the append-only triggers are bypassed as a restore does);
    False where it cannot, and the caller drops the schema."""
    template = _PG_TEMPLATE[0] if _PG_TEMPLATE else None
    if template is None:
        return False
    try:
        definition, tables = await _definition(admin, name)
        if definition != template.definition:
            return False
        rows = [
            line.replace(template.name, name)
            for line in template.sql.splitlines()
            if line.startswith(f"INSERT INTO {template.name}.")
        ]
        # One script, one round trip. Triggers (the append-only guards, the foreign keys'
        # checks) do not fire, as for pg_restore: the rows deleted are a finished test's, the
        # rows written the template's.
        async with admin.transaction():
            await admin.execute(
                "\n".join(
                    [
                        "SET LOCAL session_replication_role = replica;",
                        *(f'DELETE FROM "{name}"."{table}";' for table in tables),
                        *rows,
                    ]
                )
            )
    except asyncpg.PostgresError:
        return False
    return True


@pytest.fixture(scope="session", autouse=True)
def drop_reusable_schemas() -> Iterator[None]:
    yield
    if not _REUSABLE:
        return

    async def drop(admin: asyncpg.Connection) -> None:
        while _REUSABLE:
            await admin.execute(f'DROP SCHEMA "{_REUSABLE.pop()}" CASCADE')

    asyncio.run(_ADMIN.run(drop))


class Template(NamedTuple):
    """A migrated empty schema, dumped: what :func:`create_migrated_schema` replays."""

    name: str
    """The schema dumped (dropped since), as named in :attr:`sql`."""
    sql: str
    """pg_dump's SQL for it, psql's meta-commands left out."""
    definition: str
    """Its :func:`_definition`, which a schema must still have to be reused."""


_PG_TEMPLATE: list[Template | None] = []
"""This run's template, or None where pg_dump is missing or cannot dump this server (another
major version). Made on first use, once per run (:func:`_pg_template`)."""

_SHARED_DIR: list[Path] = []
"""Under pytest-xdist, the directory this run's workers share: the parent of each one's
basetemp, which pytest removes with the run's other temporary files."""


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") and config.option.basetemp:
        _SHARED_DIR.append(Path(config.option.basetemp).parent)


def _lock(path: Path) -> int:
    """Wait for, and take, the lock file ``path``: held until the descriptor returned is
    closed (or its process ends)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


async def _pg_template() -> Template | None:
    """This run's template: made by the first process that needs it and written where the
    others read it (one migration and one pg_dump per run instead of one per worker), or made
    by this process alone outside pytest-xdist."""
    if not _SHARED_DIR:
        return await _make_pg_template()
    path = _SHARED_DIR[0] / "pg-template.json"
    fd = await asyncio.to_thread(_lock, path.with_suffix(".lock"))
    try:
        if path.exists():
            made = json.loads(path.read_text())
            return None if made is None else Template(**made)
        template = await _make_pg_template()
        written = path.with_suffix(".tmp")
        written.write_text(json.dumps(None if template is None else template._asdict()))
        written.replace(path)
        return template
    finally:
        os.close(fd)


async def _make_pg_template() -> Template | None:
    """An empty schema migrated by ``SQLStorage.connect``, its definition read, dumped as SQL,
    then dropped."""
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        return None
    name = f"t_tpl_{secrets.token_hex(6)}"
    admin = await pg_connect()
    try:
        await (await SQLStorage.connect(PG_DSN, schema=name)).close()
        try:
            definition, _tables = await _definition(admin, name)
            dump = await asyncio.to_thread(
                subprocess.run,
                [pg_dump, "--schema", name, "--no-owner", "--no-privileges", "--inserts", PG_DSN],
                capture_output=True,
                text=True,
                timeout=60,
            )
        finally:
            await admin.execute(f'DROP SCHEMA "{name}" CASCADE')
    finally:
        await admin.close()
    if dump.returncode != 0:
        return None
    # psql's meta-commands (newer pg_dumps write \restrict lines) are not SQL.
    sql = "\n".join(line for line in dump.stdout.splitlines() if not line.startswith("\\"))
    return Template(name, sql, definition)


async def create_migrated_schema(admin: asyncpg.Connection, name: str) -> None:
    """Create the schema ``name``, already at the newest revision: what ``SQLStorage.connect``
    makes of an empty schema, copied from one migrated once per run (:func:`_pg_template`; as
    tests/conftest.py's ``migrated_sqlite`` copies a migrated SQLite file), instead of running
    every migration again (about a quarter of a second of CPU, most of it PostgreSQL's, and a
    second or more of wall time on a busy machine). The migrations themselves are tested from an
    empty schema and from every earlier one (test_postgres, test_legacy_upgrade), and the copy
    against them (test_reused_schemas).
    Without a pg_dump that can dump this server, the schema is created empty, for
    ``SQLStorage.connect`` to migrate."""
    if not _PG_TEMPLATE:
        _PG_TEMPLATE.append(await _pg_template())
    template = _PG_TEMPLATE[0]
    if template is None:
        await admin.execute(f'CREATE SCHEMA "{name}"')
        return
    await admin.execute(template.sql.replace(template.name, name))  # one transaction


CATALOGS_THE_TESTS_BLOAT = (
    "pg_attribute",
    "pg_attrdef",
    "pg_class",
    "pg_constraint",
    "pg_depend",
    "pg_index",
    "pg_namespace",
    "pg_proc",
    "pg_trigger",
    "pg_type",
)
"""The catalogs each schema a test makes and drops leaves dead rows in."""


async def vacuum_catalogs() -> None:
    """VACUUM the catalogs the tests bloat, where the test role may (a superuser or the
    database's owner); otherwise, or if the server cannot be reached, nothing. Where autovacuum
    is off (as on the machines these tests were timed on), every schema made and dropped leaves
    its catalog rows behind as dead rows, and every later pass pays for them in its catalog scans
    (pg_dump, the schema checks, DROP SCHEMA): ~400 dead rows of pg_attribute per schema."""
    try:
        db = await asyncpg.connect(PG_DSN, timeout=2)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return
    try:
        allowed = await db.fetchval(
            "SELECT rolsuper OR pg_has_role(current_user, d.datdba, 'MEMBER')"
            " FROM pg_roles, pg_database d"
            " WHERE rolname = current_user AND d.datname = current_database()"
        )
        if allowed:
            # SKIP_LOCKED: never waits for another session (an other run's VACUUM).
            tables = ", ".join(f"pg_catalog.{name}" for name in CATALOGS_THE_TESTS_BLOAT)
            await db.execute(f"VACUUM (SKIP_LOCKED) {tables}")
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        pass
    finally:
        await db.close()


def tandem(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``tandem`` (this checkout's) as a command, with ``env`` added to the environment: in
    this process (:func:`tests.conftest.tandem_in_process`; tests/test_cli.py runs the real
    ``python -m tandem``)."""
    return tandem_in_process(*args, env={**os.environ, **(env or {})})


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """An empty schema of this test alone (for the tests of migrating one)."""
    async with fresh_schema() as name:
        yield name


@pytest.fixture
async def migrated_schema() -> AsyncIterator[str]:
    """A schema at the newest revision with nothing written to it, as ``SQLStorage.connect``
    leaves a new one (:func:`fresh_schema`)."""
    async with fresh_schema(migrated=True) as name:
        yield name


@pytest.fixture(params=["sqlite", "postgres"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    """A fresh, migrated storage of each backend (overrides the SQLite-only one in
    tests/conftest.py for the tests in this directory)."""
    if request.param == "sqlite":
        store: Storage = await SQLStorage.open_sqlite(migrated_sqlite(tmp_path / "db.sqlite3"))
        try:
            yield store
        finally:
            await store.close()
        return
    async with fresh_schema(migrated=True) as schema:
        store = await SQLStorage.connect(PG_DSN, schema=schema)
        try:
            yield store
        finally:
            await store.close()
