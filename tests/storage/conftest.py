"""Every storage test runs against both backends: the embedded SQLite file and PostgreSQL.

PostgreSQL is the server at ``TANDEM_TEST_DATABASE_URL`` (default: trust auth on 127.0.0.1:5432,
database ``test``); each test gets a fresh schema, dropped afterwards. Postgres cases are skipped
only when that server cannot be reached, and fail instead under TANDEM_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tandem.storage.base import Storage
from tandem.storage.sql import SQLStorage, redact_dsn
from tests.conftest import migrated_sqlite, service_missing, tandem_in_process

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


@contextlib.asynccontextmanager
async def fresh_schema(*, migrated: bool = False) -> AsyncIterator[str]:
    """A new schema of this test alone, empty or ``migrated`` (:func:`create_migrated_schema`);
    dropped with everything in it afterwards."""
    admin = await pg_connect()
    name = f"t_{secrets.token_hex(6)}"
    try:
        if migrated:
            await create_migrated_schema(admin, name)
        else:
            await admin.execute(f'CREATE SCHEMA "{name}"')
        try:
            yield name
        finally:
            await admin.execute(f'DROP SCHEMA "{name}" CASCADE')
    finally:
        await admin.close()


_PG_TEMPLATE: list[tuple[str, str] | None] = []
"""This process's migrated empty schema, as (its name, pg_dump's SQL for it); None where pg_dump
is missing or cannot dump this server (another major version). Made on first use; a test
process runs one test at a time, so at most one is ever made."""


async def _make_pg_template() -> tuple[str, str] | None:
    """An empty schema migrated by ``SQLStorage.connect``, dumped as SQL, then dropped."""
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        return None
    name = f"t_tpl_{secrets.token_hex(6)}"
    admin = await pg_connect()
    try:
        await (await SQLStorage.connect(PG_DSN, schema=name)).close()
        try:
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
    return name, sql


async def create_migrated_schema(admin: asyncpg.Connection, name: str) -> None:
    """Create the schema ``name``, already at the newest revision: what ``SQLStorage.connect``
    makes of an empty schema, copied from one migrated once per test process (as
    tests/conftest.py's ``migrated_sqlite`` copies a migrated SQLite file), instead of running
    every migration again (about a quarter of a second of CPU, most of it PostgreSQL's, and a
    second or more of wall time on a busy machine). The migrations themselves are tested from an
    empty schema and from every earlier one (test_postgres, test_schema, test_legacy_upgrade).
    Without a pg_dump that can dump this server, the schema is created empty, for
    ``SQLStorage.connect`` to migrate."""
    if not _PG_TEMPLATE:
        _PG_TEMPLATE.append(await _make_pg_template())
    template = _PG_TEMPLATE[0]
    if template is None:
        await admin.execute(f'CREATE SCHEMA "{name}"')
        return
    template_name, sql = template
    await admin.execute(sql.replace(template_name, name))  # one transaction


def tandem(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``tandem`` (this checkout's) as a command, with ``env`` added to the environment: in
    this process (:func:`tests.conftest.tandem_in_process`; tests/test_cli.py runs the real
    ``python -m tandem``)."""
    return tandem_in_process(*args, env={**os.environ, **(env or {})})


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    async with fresh_schema() as name:
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
