"""Every storage test runs against both backends: the embedded SQLite file and PostgreSQL.

PostgreSQL is the server at ``TANDEM_TEST_DATABASE_URL`` (default: trust auth on 127.0.0.1:5432,
database ``test``); each test gets a fresh schema, dropped afterwards. Postgres cases are skipped
only when that server cannot be reached, and fail instead under TANDEM_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import contextlib
import os
import secrets
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
async def fresh_schema() -> AsyncIterator[str]:
    """A new, empty schema of this test alone; dropped with everything in it afterwards."""
    admin = await pg_connect()
    name = f"t_{secrets.token_hex(6)}"
    try:
        await admin.execute(f'CREATE SCHEMA "{name}"')
        try:
            yield name
        finally:
            await admin.execute(f'DROP SCHEMA "{name}" CASCADE')
    finally:
        await admin.close()


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
    async with fresh_schema() as schema:
        store = await SQLStorage.connect(PG_DSN, schema=schema)
        try:
            yield store
        finally:
            await store.close()
