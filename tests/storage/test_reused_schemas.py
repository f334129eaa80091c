"""The PostgreSQL schemas the storage tests reuse (tests/storage/conftest.py): one a test wrote to
is emptied back to exactly what a new one holds, and one whose definition a test changed is never
given to another test."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tandem import auth
from tandem.audit import AuditLog
from tandem.storage.sql import SQLStorage
from tests.grants import of_org
from tests.storage.conftest import PG_DSN, _definition, _reset, create_migrated_schema, pg_connect


class Schemas:
    """Migrated schemas made for the test, on one admin connection; dropped afterwards."""

    def __init__(self, db: asyncpg.Connection) -> None:
        self.db = db
        self.made: list[str] = []

    async def new(self) -> str:
        self.made.append(f"t_{secrets.token_hex(6)}")
        await create_migrated_schema(self.db, self.made[-1])
        return self.made[-1]


@pytest.fixture
async def schemas() -> AsyncIterator[Schemas]:
    made = Schemas(await pg_connect())
    try:
        yield made
    finally:
        for name in made.made:
            await made.db.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        await made.db.close()


async def contents(db: asyncpg.Connection, schema: str) -> dict[str, list[tuple[object, ...]]]:
    tables = await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
    return {
        t["tablename"]: sorted(
            (tuple(row) for row in await db.fetch(f'SELECT * FROM "{schema}"."{t["tablename"]}"')),
            key=repr,
        )
        for t in tables
    }


async def test_a_used_schema_is_reset_to_exactly_a_new_one(schemas: Schemas) -> None:
    admin = schemas.db
    new, used = await schemas.new(), await schemas.new()
    store = await SQLStorage.connect(PG_DSN, schema=used)
    try:
        grant, now = of_org("default"), time.time()
        await store.put_join_code(grant, "digest", "s1", expires_at=now + 100)
        await store.record_session_start(grant, "s1", now)
        await auth.create_user(
            store, "alice", "blue-kettle-orbit-42", "agent", None, now, grant=grant
        )
        log = AuditLog(store, bytes(range(32)), anchor_every=2)
        for action in ("server_started", "login", "server_stopped"):
            await log.record(now, action, actor="server", org="default")
    finally:
        await store.close()
    written = await contents(admin, used)
    assert written["audit"] and written["audit_anchors"] and written["users"]  # rows to delete
    assert await _reset(admin, used)
    assert await contents(admin, used) == await contents(admin, new)
    assert (await _definition(admin, used))[0] == (await _definition(admin, new))[0]
    # The guards still hold after the reset (the session's replication role was the
    # transaction's only): the audit trail stays append-only.
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="append-only"):
        await admin.execute(f'TRUNCATE "{used}".audit')


@pytest.mark.parametrize(
    "change",
    [
        "DROP TRIGGER audit_append_only ON {s}.audit",
        "ALTER TABLE {s}.audit DISABLE TRIGGER audit_no_truncate",
        "ALTER TABLE {s}.users ADD COLUMN extra text",
        "DROP INDEX {s}.{index}",
        "CREATE TABLE {s}.extra (x int)",
        "GRANT SELECT ON {s}.users TO PUBLIC",
    ],
)
async def test_a_schema_whose_definition_changed_is_not_reused(
    schemas: Schemas, change: str
) -> None:
    admin, used = schemas.db, await schemas.new()
    # From the catalogs, not the pg_indexes view: the view's definition text is computed
    # (pg_get_indexdef) for indexes of other schemas too, which other test processes are
    # dropping meanwhile ("could not open relation with OID ...").
    index = await admin.fetchval(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)"
        " AND NOT i.indisunique ORDER BY c.relname LIMIT 1",
        used,
    )
    assert index is not None
    await admin.execute(change.format(s=f'"{used}"', index=index))
    assert not await _reset(admin, used)


async def test_the_template_makes_exactly_what_the_migrations_make(
    schemas: Schemas, pg_schema: str
) -> None:
    # Most PostgreSQL tests start from a replay of pg_dump's copy of a migrated schema
    # (create_migrated_schema): it must hold what migrating an empty schema holds.
    await (await SQLStorage.connect(PG_DSN, schema=pg_schema)).close()
    copied, admin = await schemas.new(), schemas.db
    assert (await _definition(admin, pg_schema))[0] == (await _definition(admin, copied))[0]
    assert await contents(admin, pg_schema) == await contents(admin, copied)
