"""Statements compiled once per process (tandem.storage.sql's shape cache), on both backends:
every storage (each server's, each command's) shares the compiled SQL of a statement shape,
and each statement still runs with its own values."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tandem.storage import sql
from tandem.storage.base import OrgRecord
from tandem.storage.schema import orgs
from tandem.storage.sql import SQLStorage
from tests.conftest import migrated_sqlite
from tests.grants import of_org
from tests.storage.conftest import PG_DSN, fresh_schema


@contextlib.asynccontextmanager
async def two_storages(backend: str, tmp_path: Path) -> AsyncIterator[list[SQLStorage]]:
    """Two storages on one database, as two servers (or a server and a command) would open."""
    async with contextlib.AsyncExitStack() as stack:
        if backend == "sqlite":
            path = migrated_sqlite(tmp_path / "db.sqlite3")
            opened = [await SQLStorage.open_sqlite(path) for _ in range(2)]
        else:
            schema = await stack.enter_async_context(fresh_schema(migrated=True))
            opened = [await SQLStorage.connect(PG_DSN, schema=schema) for _ in range(2)]
        for storage in opened:
            stack.push_async_callback(storage.close)
        yield opened


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_shape_compiled_by_one_storage_serves_another_with_each_statements_values(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "_SHAPES", {})  # this test's compilations only
    async with two_storages(backend, tmp_path) as (first, second):
        for org_id, name, days in (("acme", "Acme Bank", 7), ("bolt", "Bolt Ltd", 90)):
            await first.add_org(OrgRecord(org_id, name, 1.0, days))
        acme = await first.get_org(of_org("acme"))
        shapes = dict(sql._SHAPES)
        assert shapes, "nothing was compiled into the shared cache"
        # The same statement with another organisation's id: no new compilation, its own row.
        bolt = await first.get_org(of_org("bolt"))
        assert shapes == sql._SHAPES
        # Another storage (another server's) compiles nothing either.
        assert await second.get_org(of_org("bolt")) == bolt
        assert await second.get_org(of_org("acme")) == acme
        assert await second.get_org(of_org("nobody")) is None
        assert shapes == sql._SHAPES
    assert acme is not None and (acme.org_id, acme.name, acme.retention_days) == (
        "acme",
        "Acme Bank",
        7,
    )
    assert bolt is not None and (bolt.org_id, bolt.name, bolt.retention_days) == (
        "bolt",
        "Bolt Ltd",
        90,
    )


@pytest.mark.parametrize(
    "dialect", [sqlite.dialect(), postgresql.asyncpg.dialect()], ids=["sqlite", "postgres"]
)
def test_each_statement_runs_with_its_own_values_and_in_lists_with_their_own_sql(
    dialect: sa.Dialect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "_SHAPES", {})

    def by_name(org_id: str, days: int) -> sa.Select[tuple[str]]:
        return sa.select(orgs.c.name).where(orgs.c.org_id == org_id, orgs.c.retention_days > days)

    first, second = (
        sql._compile(dialect, by_name("a", 1), None),
        sql._compile(dialect, by_name("b", 2), None),
    )
    assert len(sql._SHAPES) == 1 and first.sql == second.sql
    assert (first.args(None), second.args(None)) == (["a", 1], ["b", 2])
    # Values passed at execution still win over the statement's own.
    name = sa.select(orgs.c.name).where(orgs.c.org_id == sa.bindparam("org"))
    assert sql._compile(dialect, name, ("org",)).args({"org": "c"}) == ["c"]

    # An IN list's SQL has a placeholder per value: never shared between lengths.
    def among(*org_ids: str) -> sa.Select[tuple[str]]:
        return sa.select(orgs.c.name).where(orgs.c.org_id.in_(org_ids))

    one, two, other_two = (sql._compile(dialect, among(*ids), None) for ids in ("a", "ab", "cd"))
    assert one.sql != two.sql and two.sql == other_two.sql
    assert (one.args(None), two.args(None), other_two.args(None)) == (
        ["a"],
        ["a", "b"],
        ["c", "d"],
    )


def test_dialects_that_differ_compile_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL's dialect learns its server's version when it connects (some features depend
    on it): a shape compiled for one server version is not reused for another, nor one
    compiled for SQLite; two dialects alike share it."""
    monkeypatch.setattr(sql, "_SHAPES", {})
    old, new, same = (postgresql.asyncpg.dialect() for _ in range(3))
    old.server_version_info, new.server_version_info, same.server_version_info = (
        (13, 0),
        (17, 2),
        (17, 2),
    )
    statement = sa.select(orgs.c.name).where(orgs.c.org_id == "a")
    compiled = [sql._compile(dialect, statement, None) for dialect in (old, new, same)]
    compiled.append(sql._compile(sqlite.dialect(), statement, None))
    assert len(sql._SHAPES) == 3
    assert compiled[0].sql == compiled[1].sql == compiled[2].sql != compiled[3].sql
