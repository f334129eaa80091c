"""One schema: a database migrated on either backend matches the SQLAlchemy metadata, and the
guards of the audit tables exist on both."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tandem.exceptions import NotFoundError, StorageError, TandemError
from tandem.storage.base import SiteRecord, Storage
from tandem.storage.schema import metadata
from tandem.storage.sql import SQLStorage
from tests.grants import owned

# The old counter kept so that a Tandem from before Alembic refuses a migrated database.
LEGACY_GUARD_TABLE = "tandem_schema_version"


def _include(name: str | None, type_: str, _parent: Any) -> bool:
    return not (type_ == "table" and name == LEGACY_GUARD_TABLE)


def _sqlite_quirk(diff: Any) -> bool:
    """Differences SQLite's reflection reports that are not differences of the schema: a
    single-column primary key other than INTEGER may hold NULL in SQLite unless declared NOT
    NULL (Tandem never writes one), and reflection loses ON DELETE of a column's inline
    REFERENCES (checked with PRAGMA foreign_key_list instead)."""
    if isinstance(diff, list):
        return all(change[0] == "modify_nullable" and change[5] is True for change in diff) and all(
            metadata.tables[change[2]].c[change[3]].primary_key for change in diff
        )
    return bool(diff[0] in ("remove_fk", "add_fk"))


def _differences(connection: sa.Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_name": _include}
    )
    found = compare_metadata(context, metadata)
    if connection.dialect.name == "sqlite":
        found = [diff for diff in found if not _sqlite_quirk(diff)]
    return list(found)


async def test_a_migrated_database_matches_the_metadata(storage: Storage) -> None:
    assert isinstance(storage, SQLStorage)
    async with storage._engine.connect() as db:
        assert await db.run_sync(_differences) == []


async def test_foreign_keys_cascade_as_declared(storage: Storage) -> None:
    assert isinstance(storage, SQLStorage)
    declared = {
        (table.name, tuple(fk.parent.name for fk in constraint.elements), constraint.ondelete)
        for table in metadata.sorted_tables
        for constraint in table.foreign_key_constraints
    }
    async with storage._engine.connect() as db:
        if storage.dialect == "sqlite":
            found = set()
            for table in metadata.sorted_tables:
                rows = (await db.exec_driver_sql(f"PRAGMA foreign_key_list({table.name})")).all()
                by_id: dict[int, list[Any]] = {}
                for row in rows:
                    by_id.setdefault(row[0], []).append(row)
                for group in by_id.values():
                    group.sort(key=lambda row: row[1])
                    on_delete = group[0][6]
                    found.add(
                        (
                            table.name,
                            tuple(row[3] for row in group),
                            None if on_delete == "NO ACTION" else on_delete,
                        )
                    )
        else:
            rows = (
                await db.execute(
                    sa.text(
                        "SELECT rel.relname, array(SELECT a.attname FROM unnest(c.conkey)"
                        " WITH ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = c.conrelid"
                        " AND a.attnum = k.n ORDER BY k.i), c.confdeltype::text"
                        " FROM pg_constraint c JOIN pg_class rel ON rel.oid = c.conrelid"
                        " WHERE c.contype = 'f'"
                        " AND rel.relnamespace = current_schema()::regnamespace"
                    )
                )
            ).all()
            found = {(r[0], tuple(r[1]), "CASCADE" if r[2] == "c" else None) for r in rows}
    assert found == declared


async def test_the_audit_tables_are_guarded_on_both_backends(storage: Storage) -> None:
    assert isinstance(storage, SQLStorage)
    async with storage._engine.connect() as db:
        if storage.dialect == "sqlite":
            rows = await db.exec_driver_sql(
                "SELECT tbl_name, count(*) FROM sqlite_master WHERE type = 'trigger'"
                " GROUP BY tbl_name"
            )
            # no update, no delete, no replacing insert
            assert dict(rows.all()) == {"audit": 3, "audit_anchors": 3, "audit_backlog_lines": 3}
        else:
            rows = await db.execute(
                sa.text(
                    "SELECT c.relname, count(*) FROM pg_trigger t JOIN pg_class c"
                    " ON c.oid = t.tgrelid WHERE NOT t.tgisinternal"
                    " AND c.relnamespace = current_schema()::regnamespace GROUP BY c.relname"
                )
            )
            # row-level update/delete, statement-level truncate; duplicates by primary key
            assert dict(rows.all()) == {"audit": 2, "audit_anchors": 2, "audit_backlog_lines": 2}


def _indexes(connection: sa.Connection) -> set[tuple[str, str, tuple[str, ...], bool]]:
    """Indexes as reflected, besides those PostgreSQL builds for a unique constraint (SQLite's
    are not reported; the constraints are compared by :func:`_unique`)."""
    inspector = sa.inspect(connection)
    return {
        (table, index["name"] or "", tuple(map(str, index["column_names"])), index["unique"])
        for table in inspector.get_table_names()
        if table in metadata.tables
        for index in inspector.get_indexes(table)
        if "duplicates_constraint" not in index
    }


def _unique(connection: sa.Connection) -> set[tuple[str, tuple[str, ...]]]:
    inspector = sa.inspect(connection)
    return {
        (table, tuple(map(str, constraint["column_names"])))
        for table in inspector.get_table_names()
        if table in metadata.tables
        for constraint in inspector.get_unique_constraints(table)
    }


async def test_both_backends_have_the_declared_indexes_and_no_others(storage: Storage) -> None:
    declared = {
        (table.name, index.name or "", tuple(c.name for c in index.columns), bool(index.unique))
        for table in metadata.sorted_tables
        for index in table.indexes
    }
    unique = {
        (table.name, tuple(c.name for c in constraint.columns))
        for table in metadata.sorted_tables
        for constraint in table.constraints
        if isinstance(constraint, sa.UniqueConstraint)
    }
    assert len(declared) >= 12 and unique == {("sites", ("org_id", "origin"))}
    assert isinstance(storage, SQLStorage)
    async with storage._engine.connect() as db:
        assert await db.run_sync(_indexes) == declared
        assert await db.run_sync(_unique) == unique


async def test_updating_a_missing_site_is_not_found_on_both_backends(storage: Storage) -> None:
    with pytest.raises(NotFoundError):
        await storage.update_site(
            *owned(SiteRecord("nowhere", "default", "https://n.example", "N"))
        )
    assert await storage.get_site("nowhere") is None


def test_sqlite_reflection_quirk_filter_keeps_real_differences() -> None:
    # A dropped column on a non-key is not filtered away.
    diff = [("modify_nullable", None, "users", "role", {}, True, False)]
    assert not _sqlite_quirk(diff)
    assert sqlite3.sqlite_version_info >= (3, 35)  # DROP COLUMN, used by revision 0002


async def test_a_database_failure_is_a_storage_error_on_both_backends(storage: Storage) -> None:
    # A table dropped behind Tandem's back: the driver's error reaches callers as a TandemError
    # that names what failed, not as sqlite3's or asyncpg's own exception.
    assert isinstance(storage, SQLStorage)
    async with storage._engine.begin() as db:
        await db.execute(sa.text("DROP TABLE used_once"))
    with pytest.raises(StorageError, match=r"the database failed: .*used_once") as failure:
        await storage.use_once("digest", 10.0**10)
    assert isinstance(failure.value, TandemError)
