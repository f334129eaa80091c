"""`tandem db copy --to postgresql://...` moves a whole SQLite installation; the audit trail
still verifies afterwards, and a target that holds data is refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tandem.audit import AuditLog
from tandem.exceptions import BacklogLineWritten
from tandem.storage import migrations
from tandem.storage.base import (
    LoginRecord,
    OrgRecord,
    RecordingRecord,
    SiteRecord,
    Storage,
    UserRecord,
)
from tandem.storage.sql import SQLStorage
from tests.grants import of_org, owned
from tests.storage.conftest import PG_DSN, tandem

KEY = bytes(range(32))


async def installation(data_dir: Path) -> None:
    storage = await SQLStorage.open_sqlite(data_dir / "tandem.sqlite3")
    try:
        await storage.add_org(OrgRecord("acme", "Acme", 5.0, 7, "recording-key"))
        await storage.add_team(of_org("acme"), "claims")
        await storage.add_user(
            *owned(
                UserRecord("ada", "Ada", "agent", "h", 1.5, "seed", 3, ("r1", "r2"), org_id="acme")
            )
        )
        await storage.set_user_teams(of_org("acme"), "ada", ("claims",))
        await storage.add_login(LoginRecord("t1", "ada", 1e10, 2.0))
        await storage.add_site(
            *owned(
                SiteRecord(
                    "shop", "acme", "https://shop.example", "Shop", ("claims",), "{}", "k", True
                )
            )
        )
        await storage.record_session_start(of_org("acme"), "s1", 10.0, "shop")
        await storage.record_session_end("s1", 20.0, "stopped", "Ada")
        await storage.add_recording(
            *owned(RecordingRecord("rec", "acme", "s1", "shop", "ada", "k1", 11.0))
        )
        await storage.append_recording_frames("rec", 0, [b"\x00\x01", b"\xff" * 100])
        await storage.end_recording("rec", 19.0, "stopped")
        log = AuditLog(storage, KEY, anchor_every=4)
        for i in range(11):
            # One with an identity (a record the hub may keep and write again), noted with it.
            kept = {"write_id": "kept-5"} if i == 5 else {}
            await log.record(1000.0 + i, "sign_in", actor="ada", org="acme", n=i, **kept)
        await log.record(1020.0, "server_stopped", actor="server", org="default")
    finally:
        await storage.close()


async def snapshot(storage: Storage) -> tuple[object, ...]:
    return (
        await storage.get_org(of_org("acme")),
        await storage.list_teams(of_org("acme")),
        await storage.list_users(of_org("acme")),
        await storage.get_login("t1"),
        await storage.all_sites(),
        await storage.get_session("s1"),
        await storage.list_recordings(of_org("acme"), 10),
        await storage.recording_frames("rec"),
        await storage.audit_records(),
        await storage.anchors(),
    )


async def test_an_sqlite_installation_moves_to_postgres_and_its_trail_verifies(
    tmp_path: Path, pg_schema: str
) -> None:
    await installation(tmp_path)
    (tmp_path / "audit.key").write_text(KEY.hex())
    url = f"{PG_DSN}?search_path={pg_schema}"
    copied = await asyncio.to_thread(tandem, "db", "copy", "--to", url, "--data-dir", str(tmp_path))
    assert copied.returncode == 0, copied.stderr
    assert "audit" in copied.stdout

    verified = await asyncio.to_thread(
        tandem, "audit", "verify", "--data-dir", str(tmp_path), env={"TANDEM_DATABASE_URL": url}
    )
    assert verified.returncode == 0, verified.stderr
    assert "intact: 12 records, 4 anchors" in verified.stdout

    source = await SQLStorage.open_sqlite(tmp_path / "tandem.sqlite3")
    target = await SQLStorage.connect(PG_DSN, schema=pg_schema)
    try:
        assert await snapshot(target) == await snapshot(source)
        user = await target.get_user("ada")
        assert user is not None and user.recovery_codes == ("r1", "r2")
        assert user.teams == ("claims",)
        # The copy goes on as the installation: the next record extends the same chain, and a
        # record kept by a server before the move is not written there again.
        log = AuditLog(target, KEY, anchor_every=4)
        with pytest.raises(BacklogLineWritten):
            await log.record(1005.0, "sign_in", actor="ada", org="acme", n=5, write_id="kept-5")
        assert (await log.record(2000.0, "server_started", actor="server", org="default")).seq == 13
    finally:
        await source.close()
        await target.close()

    again = await asyncio.to_thread(tandem, "db", "copy", "--to", url, "--data-dir", str(tmp_path))
    assert again.returncode == 2 and "not empty" in again.stderr


def test_copy_wants_a_postgres_url(tmp_path: Path) -> None:
    result = tandem("db", "copy", "--to", "mysql://db/x", "--data-dir", str(tmp_path))
    assert result.returncode == 2 and "postgresql://" in result.stderr


def test_db_upgrade_reports_the_revision(tmp_path: Path) -> None:
    missing = tandem("db", "upgrade", "--data-dir", str(tmp_path))  # no database: none made
    assert missing.returncode == 2 and "no Tandem database" in missing.stderr
    made = tandem("org", "add", "acme", "--name", "Acme", "--data-dir", str(tmp_path), "--init")
    assert made.returncode == 0, made.stderr
    result = tandem("db", "upgrade", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert f"schema revision {migrations.head_revision()} (current)" in result.stdout


async def test_a_copy_from_an_older_version_keys_its_links_and_keeps_its_backlog_notes(
    tmp_path: Path, pg_schema: str
) -> None:
    """An installation an older version left (revision 0014: links with no NFC key, a backlog
    line's note) copied to PostgreSQL: the source is brought up to date first, so a customer
    it stored partly composed is found on the target by any spelling, and the backlog notes
    arrive, append-only there too (held)."""
    import sqlalchemy as sa

    partly = "nguy\u1eb9\u0302n@shop.example"  # "ẹ" and a circumflex
    other_spelling = "nguy\u00ea\u0323n@shop.example"  # "ê" and a dot below
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'tandem.sqlite3'}")
    with engine.begin() as db:
        migrations.upgrade(db, "0014")
        db.execute(
            sa.text(
                "INSERT INTO subject_sessions (session_id, org_id, subject, pseudonym)"
                " VALUES ('s1', 'default', :sub, 'p-s1')"
            ),
            {"sub": partly},
        )
        db.execute(sa.text("INSERT INTO audit_backlog_lines VALUES ('f00d', 1, 1)"))
    engine.dispose()
    (tmp_path / "audit.key").write_text(KEY.hex())
    url = f"{PG_DSN}?search_path={pg_schema}"
    copied = await asyncio.to_thread(tandem, "db", "copy", "--to", url, "--data-dir", str(tmp_path))
    assert copied.returncode == 0, copied.stderr
    target = await SQLStorage.connect(PG_DSN, schema=pg_schema)
    try:
        assert await target.stored_forms(of_org("default"), other_spelling) == (partly,)
        async with target._engine.connect() as db:
            notes = await db.execute(sa.text("SELECT file_id, line FROM audit_backlog_lines"))
            assert notes.all() == [("f00d", 1)]
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            async with target._engine.begin() as db:
                await db.execute(sa.text("DELETE FROM audit_backlog_lines"))
    finally:
        await target.close()
