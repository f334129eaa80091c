"""A storage opened on a database already at head builds no SQLAlchemy engine and imports
neither ``sqlalchemy.ext.asyncio`` (which imports the ORM) nor Alembic: every CLI command and
server start but the first after an upgrade. The engine comes when something needs it (a
migration, :meth:`SQLStorage.revision`, a copy), with SQLite's connection set-up; and the SQL of
every statement on SQLite is the same as an engine's initialised dialect would compile."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tandem.audit import AuditLog
from tandem.storage import migrations, sql
from tandem.storage.base import SessionRecord
from tandem.storage.sql import SQLStorage
from tests.conftest import PROCESS_SECONDS, migrated_sqlite
from tests.grants import of_org
from tests.storage.conftest import PG_DSN, fresh_schema
from tests.storage.test_copy import KEY, installation, snapshot

ENGINE_MODULES = ("sqlalchemy.ext.asyncio", "sqlalchemy.orm", "alembic", "aiosqlite")

_OPEN = """
import asyncio, json, sys
from pathlib import Path
import tandem.cli, tandem.server.app  # what `tandem serve` imports besides
from tandem.storage.sql import SQLStorage

async def main(where: str, schema: str) -> bool:
    if schema:
        storage = await SQLStorage.connect(where, schema=schema)
    else:
        storage = await SQLStorage.open_sqlite(Path(where))
    try:
        await storage.count_users()
        return getattr(storage, "_built_engine", "an engine of every storage") is not None
    finally:
        await storage.close()

built = asyncio.run(main(sys.argv[1], sys.argv[2]))
print(json.dumps({"built": built, "modules": sorted(sys.modules)}))
"""


def open_in_a_fresh_interpreter(where: str, schema: str = "") -> tuple[bool, set[str]]:
    """Open the storage at ``where`` in a new interpreter that imported the CLI and the server
    too, count its users; whether it built an engine, and the modules it ended with."""
    done = subprocess.run(
        [sys.executable, "-c", _OPEN, where, schema],
        capture_output=True,
        text=True,
        timeout=PROCESS_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    modules = set(found["modules"])
    return found["built"], modules


def test_opening_an_sqlite_file_at_head_builds_no_engine_and_loads_no_orm(
    tmp_path: Path,
) -> None:
    built, modules = open_in_a_fresh_interpreter(str(migrated_sqlite(tmp_path / "db.sqlite3")))
    assert not modules & {*ENGINE_MODULES, "asyncpg"}
    assert not built
    # ...while a file that needs migrating does build it, in the same kind of process.
    built, modules = open_in_a_fresh_interpreter(str(tmp_path / "new.sqlite3"))
    assert built
    assert {"sqlalchemy.ext.asyncio", "sqlalchemy.orm", "alembic"} <= modules


async def test_opening_a_postgres_schema_at_head_builds_no_engine_and_loads_no_orm() -> None:
    async with fresh_schema(migrated=True) as schema:
        built, modules = open_in_a_fresh_interpreter(PG_DSN, schema)
    assert not modules & set(ENGINE_MODULES)
    assert not built
    assert "asyncpg" in modules


async def test_the_engine_is_built_for_the_revision_and_applies_sqlites_connection_set_up(
    tmp_path: Path,
) -> None:
    storage = await SQLStorage.open_sqlite(
        migrated_sqlite(tmp_path / "db.sqlite3"), busy_seconds=2.5
    )
    try:
        assert storage._built_engine is None
        assert await storage.revision() == migrations.HEAD
        assert storage._built_engine is not None
        async with storage._engine.connect() as db:
            pragmas = {
                name: (await db.exec_driver_sql(f"PRAGMA {name}")).scalar_one()
                for name in ("busy_timeout", "foreign_keys", "journal_mode", "secure_delete")
            }
        assert pragmas == {
            "busy_timeout": 2500,
            "foreign_keys": 1,
            "journal_mode": "wal",
            "secure_delete": 1,
        }
        # Its transactions take the write lock first (BEGIN IMMEDIATE), as the storage's do.
        async with storage._engine.begin() as db:
            await db.exec_driver_sql("SELECT 1")
            other = await asyncio.to_thread(_try_write, tmp_path / "db.sqlite3")
        assert other == "database is locked"
    finally:
        await storage.close()


def _try_write(path: Path) -> str:
    import sqlite3

    db = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        return str(exc)
    finally:
        db.close()
    return "written"


async def test_every_statement_compiles_on_sqlite_as_with_the_engines_initialised_dialect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The storage compiles without an engine (pysqlite's dialect on ``sqlite3``, never
    initialised by a connection); each statement a whole installation's life runs (every table
    written, read, purged, copied) compiles to the same SQL, parameters and values with the
    dialect of an engine that has connected."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'ref.sqlite3'}")
    async with engine.connect():
        pass  # initialises the engine's dialect, as every migration's connection did
    reference = engine.dialect
    await engine.dispose()
    assert reference.server_version_info is not None

    compile_for_storage = sql._compile
    compared: list[str] = []

    def compile_both(
        dialect: sa.Dialect, statement: sa.Executable, keys: tuple[str, ...] | None
    ) -> Any:
        mine = compile_for_storage(dialect, statement, keys)
        if dialect.name == "sqlite":
            assert dialect is not reference and dialect.server_version_info is None
            theirs = compile_for_storage(reference, statement, keys)
            assert (mine.sql, mine.names, mine.returns_rows) == (
                theirs.sql,
                theirs.names,
                theirs.returns_rows,
            )
            assert mine.args(None) == theirs.args(None)
            compared.append(mine.sql)
        return mine

    monkeypatch.setattr(sql, "_SHAPES", {})  # every shape compiled here, by this test
    monkeypatch.setattr(sql, "_compile", compile_both)
    await installation(tmp_path)  # every table written
    storage = await SQLStorage.open_sqlite(tmp_path / "tandem.sqlite3")
    try:
        await snapshot(storage)
        acme = of_org("acme")
        await storage.get_user("ada")
        await storage.use_second_factor("ada", 3, "4")
        await storage.put_join_code(acme, "digest", "s2", 50.0)
        await storage.take_join_code(acme, "digest", 10.0)
        await storage.record_session_start(acme, "s2", 30.0, "shop")
        await storage.record_session_state("s2", "live", "ada")
        live: list[SessionRecord] = await storage.live_sessions(acme)
        assert [s.session_id for s in live] == ["s2"]
        await storage.touch_login("t1", 5.0)
        await storage.backoff_failed("k", 1.0, 60.0)
        await storage.backoff_state(["k", "j"])
        await storage.use_once("once", 99.0)
        await AuditLog(storage, KEY, anchor_every=4).record(
            3000.0, "sign_in", actor="ada", org="acme"
        )
        await storage.audit_page(acme, 0, 5)
        await storage.register_process("n1", "id", 1.0)
        await storage.heartbeat("n1", 2.0)
        await storage.close_lost_processes("n2", "id2", 100.0, 101.0)
        await storage.purge_expired(1e12)
        await storage.purge_recordings(1e12)
        await storage.delete_user(of_org("acme"), "ada")
    finally:
        await storage.close()
    assert len(set(compared)) >= 50, len(set(compared))  # this workload: 62
