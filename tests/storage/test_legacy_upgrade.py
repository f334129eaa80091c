"""Data directories written by earlier Tandem versions (each by its own code; see
legacy_data/make.py) are upgraded in place, on both backends, and lose nothing: users with their
second factor (recovery codes move from a JSON column into their own table), organisations,
teams, sites, sign-ins, sessions, join codes, recordings and the audit chain, which verifies."""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from tandem.storage import migrations
from tandem.storage.sql import SQLStorage
from tests.grants import of_org
from tests.storage.conftest import PG_DSN, fresh_schema, pg_connect, tandem

LEGACY = Path(__file__).parent / "legacy_data"
SQLITE_DIRS = sorted(path.name for path in LEGACY.glob("sqlite-*"))
POSTGRES_DIRS = sorted(path.name for path in LEGACY.glob("postgres-*"))


def expected_codes(rows: list[tuple[str, str | None]]) -> dict[str, tuple[str, ...]]:
    """Each user's recovery code digests, from the old JSON column (absent: none)."""
    return {name: tuple(json.loads(codes)) if codes else () for name, codes in rows}


async def check_contents(
    storage: SQLStorage, codes: dict[str, tuple[str, ...]], with_orgs: bool, with_recordings: bool
) -> None:
    # Revision 0013 numbered each organisation's records 1, 2, ... in the chain's order.
    seen: dict[str, list[int]] = {}
    for record in await storage.audit_records():
        seen.setdefault(record.org, []).append(record.org_seq)
    assert all(found == list(range(1, len(found) + 1)) for found in seen.values()), seen
    alice = await storage.get_user("alice")
    assert alice is not None and alice.role == "admin"
    carol = await storage.get_user("carol")
    assert carol is not None and carol.role == "auditor"
    for name, digests in codes.items():
        user = await storage.get_user(name)
        assert user is not None and user.recovery_codes == digests, name
    assert any(codes.values()) == bool(codes) and all(len(d) == 10 for d in codes.values() if d)
    login = await storage.get_login("token-1")
    assert login is not None and login.username == "alice"
    ended = await storage.get_session("session-ended")
    assert ended is not None and ended.end_reason == "stopped" and ended.agent == "alice"
    taken = await storage.take_join_code(of_org("default"), "code-1", 4.0e9)
    assert taken is not None and taken.session_id == "session-live"
    if with_orgs:
        bob = await storage.get_user("bob")
        assert bob is not None and bob.org_id == "acme" and bob.teams == ("claims",)
        assert await storage.list_teams(of_org("acme")) == ["billing", "claims"]
        site = await storage.get_site("shop")
        assert site is not None and site.origin == "https://shop.example"
        assert site.teams == ("claims",)
    if with_recordings:
        recording = await storage.get_recording("rec-1")
        assert recording is not None and (recording.frames, recording.size) == (2, 70)
        assert await storage.recording_frames("rec-1") == [b"\x00frame", b"\xff" * 64]


@pytest.mark.parametrize("name", SQLITE_DIRS)
async def test_an_sqlite_data_directory_of_an_earlier_version_is_upgraded(
    tmp_path: Path, name: str
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(LEGACY / name, data_dir)
    database = data_dir / "tandem.sqlite3"
    with sqlite3.connect(database) as old:
        tables = {row[0] for row in old.execute("SELECT name FROM sqlite_master")}
        columns = {row[1] for row in old.execute("PRAGMA table_info(users)")}
        rows = (
            old.execute("SELECT username, recovery_codes FROM users").fetchall()
            if "recovery_codes" in columns
            else []
        )
        audited = (
            old.execute("SELECT count(*) FROM audit").fetchone()[0] if "audit" in tables else 0
        )
        version = old.execute("PRAGMA user_version").fetchone()
        users = old.execute("SELECT * FROM users ORDER BY username").fetchall()
    old.close()

    if audited:
        # Any command that opens the data directory upgrades it first: here the verifier.
        verified = await asyncio.to_thread(tandem, "audit", "verify", "--data-dir", str(data_dir))
        assert verified.returncode == 0, verified.stderr
        assert f"intact: {audited} records" in verified.stdout
    storage = await SQLStorage.open_sqlite(database)
    try:
        assert await storage.revision() == migrations.head_revision()
        await check_contents(
            storage, expected_codes(rows), "orgs" in tables, "recordings" in tables
        )
    finally:
        await storage.close()
    # Revision 0013 lifted the append-only guard to number the records: it is back (the
    # triggers are per row: a trail with records shows it).
    with sqlite3.connect(database) as upgraded:
        for change in ("UPDATE audit SET org_seq = org_seq + 1", "DELETE FROM audit"):
            if audited:
                with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                    upgraded.execute(change)
    upgraded.close()
    # The copy taken before the upgrade is the old database, as it was.
    (backup,) = data_dir.glob("tandem.sqlite3.*.bak")
    with sqlite3.connect(backup) as copy:
        assert copy.execute("PRAGMA user_version").fetchone() == version
        assert copy.execute("SELECT * FROM users ORDER BY username").fetchall() == users
    copy.close()


@pytest.mark.parametrize("name", POSTGRES_DIRS)
async def test_a_postgres_installation_of_an_earlier_version_is_upgraded(
    tmp_path: Path, name: str
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(LEGACY / name, data_dir)
    dump = gzip.decompress((data_dir / "dump.sql.gz").read_bytes()).decode()
    async with fresh_schema() as schema:
        admin = await pg_connect()
        try:
            await admin.execute(
                dump.replace("CREATE SCHEMA legacy_schema;", "").replace("legacy_schema", schema)
            )
            rows = [
                (row[0], row[1])
                for row in await admin.fetch(
                    f'SELECT username, recovery_codes::text FROM "{schema}".users'
                )
            ]
            audited = await admin.fetchval(f'SELECT count(*) FROM "{schema}".audit')
            has_orgs = await admin.fetchval(f"SELECT to_regclass('\"{schema}\".orgs') IS NOT NULL")
            has_recordings = await admin.fetchval(
                f"SELECT to_regclass('\"{schema}\".recordings') IS NOT NULL"
            )
        finally:
            await admin.close()
        url = f"{PG_DSN}?search_path={schema}"
        verified = await asyncio.to_thread(
            tandem, "audit", "verify", "--data-dir", str(data_dir), env={"TANDEM_DATABASE_URL": url}
        )
        assert verified.returncode == 0, verified.stderr
        assert f"intact: {audited} records" in verified.stdout
        storage = await SQLStorage.connect(PG_DSN, schema=schema)
        try:
            assert await storage.revision() == migrations.head_revision()
            await check_contents(storage, expected_codes(rows), has_orgs, has_recordings)
        finally:
            await storage.close()
        # Revision 0013 lifted the append-only guard to number the records: it is back.
        assert audited
        admin = await pg_connect()
        try:
            for change in ("UPDATE {}.audit SET org_seq = org_seq + 1", "DELETE FROM {}.audit"):
                with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="append-only"):
                    await admin.execute(change.format(f'"{schema}"'))
        finally:
            await admin.close()


def test_the_head_known_without_alembic_is_alembics_head() -> None:
    """A database at :data:`migrations.HEAD` opens without loading Alembic: that head must be
    Alembic's own, and each revision's id its file's prefix (how HEAD is found)."""
    script = migrations.script_directory()
    assert migrations.head_revision() == migrations.HEAD
    for revision in script.walk_revisions():
        assert revision.path is not None
        assert Path(revision.path).name.startswith(f"{revision.revision}_"), revision.path
