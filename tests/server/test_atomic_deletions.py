"""A deletion and its audit record are one transaction (fault 14): a real `tandem serve` killed
with SIGKILL while the record of an erasure is being written, the deletion before it done, then
started again, holds both the deletion and its record or neither, never a recording gone without
a record of it. Before, the deletion committed on its own and the record was kept in memory to
write later: lost with the process.

On PostgreSQL a proxy holds the record on its way to the database (the erasure's own statement
passed); on SQLite, which has nothing to hold a write with, a trigger refuses the record."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tandem.config import Settings
from tests.conftest import DataTemplates, free_port, tandem_in_process
from tests.server.db_proxy import StoppableProxy, proxied_url
from tests.server.test_audit_after_faults import a_stopped_recording, audit_refuses, audited, seed
from tests.server.test_crash_recovery import ServeProcess, rows, serve_processes, wait_for
from tests.server.test_organisations import api
from tests.server.test_recordings import with_recording_key
from tests.server.test_scale_out import run_in_thread
from tests.storage.conftest import PG_DSN, fresh_schema, pg_connect

__all__ = ["serve_processes"]  # the fixture, used by name


def verify_exit(data_dir: Path, audit_key: Path, database_url: str | None = None) -> int:
    env = {"TANDEM_AUDIT_KEY": str(audit_key)}
    if database_url:
        env["TANDEM_DATABASE_URL"] = database_url
    ran = tandem_in_process("audit", "verify", "--data-dir", str(data_dir), env=env)
    return ran.returncode


def seeded(tmp_path: Path, database_url: str) -> Path:
    """Seed the database at ``database_url`` as an operator would (the `tandem` commands); the
    audit key it was made with, for the servers to start with."""
    audit_key = tmp_path / "keys" / "audit.key"
    audit_key.parent.mkdir()

    async def seeding() -> None:
        from tandem.directory import offline

        settings = Settings.load(
            environ={},
            data_dir=tmp_path / "seed",
            database_url=database_url,
            audit_key_file=audit_key,
        )
        async with offline(settings) as directory:
            await seed(directory)

    run_in_thread(seeding)
    return audit_key


async def erase_in_background(server: ServeProcess, recording_id: str) -> asyncio.Task[object]:
    """Ask for the erasure without waiting for it: the server is killed before it answers (its
    connection cut: that is the point)."""
    ada = api(server, "ada")  # type: ignore[arg-type]

    def erase() -> object:
        with ada, contextlib.suppress(httpx.TransportError):
            return ada.delete(f"/api/recordings/{recording_id}").status_code
        return None

    return asyncio.create_task(asyncio.to_thread(erase))


async def test_a_server_killed_while_recording_an_erasure_on_postgres_leaves_both_or_neither(
    tmp_path: Path,
    pg_proxy: StoppableProxy,
    serve_processes: Callable[..., ServeProcess],
) -> None:
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        direct = f"{PG_DSN}?search_path={schema}"
        audit_key = seeded(tmp_path, direct)
        data_dir, port = tmp_path / "serve", free_port()
        options = ("--database-url", url)
        first = serve_processes(data_dir, port, *options, TANDEM_AUDIT_KEY=str(audit_key))
        recording_id = await a_stopped_recording(first)  # type: ignore[arg-type]

        pg_proxy.freeze_on(b"recording_erased")  # the record, on its way to the database
        erasing = await erase_in_background(first, recording_id)
        # A sign-in, then the erasure: 15 s were too few in a fresh-clone CI.
        await wait_for(lambda: pg_proxy.freeze_at is None, timeout=60)
        first.kill()
        # The held bytes die with the process: cut, never forwarded (a record sent before the
        # kill would have been written whatever the code; the window is the one before it).
        pg_proxy.down()
        pg_proxy.thaw()
        pg_proxy.up()
        await erasing

        db = await pg_connect(schema)
        try:
            stored = await db.fetchval(
                "SELECT count(*) FROM recordings WHERE recording_id = $1", recording_id
            )
            recorded = await db.fetchval(
                "SELECT count(*) FROM audit WHERE action = 'recording_erased' AND subject = $1",
                recording_id,
            )
        finally:
            await db.close()
        # Held before it reached the database, the record was never written: neither was the
        # deletion (it was: the recording gone for good, and no record of it).
        assert (stored, recorded) == (1, 0)
        assert verify_exit(data_dir, audit_key, direct) == 0

        second = serve_processes(data_dir, port, *options, TANDEM_AUDIT_KEY=str(audit_key))
        with api(second, "ada") as ada:  # type: ignore[arg-type]
            assert ada.delete(f"/api/recordings/{recording_id}").status_code == 204
        second.stop()
        db = await pg_connect(schema)
        try:
            assert await db.fetchval("SELECT count(*) FROM recordings") == 0
            recorded = await db.fetchval(
                "SELECT count(*) FROM audit WHERE action = 'recording_erased' AND subject = $1",
                recording_id,
            )
            assert recorded == 1
        finally:
            await db.close()
        assert verify_exit(data_dir, audit_key, direct) == 0


async def test_a_server_killed_while_recording_what_crash_recovery_closed_leaves_both_or_neither(
    tmp_path: Path,
    pg_proxy: StoppableProxy,
    serve_processes: Callable[..., ServeProcess],
) -> None:
    """Crash recovery's sweep closes a session no live process holds (its process crashed) and
    records ``session_ended``; the server is killed while that record is on its way to
    PostgreSQL. The session was closed in its own transaction and the record kept in memory to
    write later: lost with the process, the session ended for good with no record of its end.
    Now they are one transaction: the next server closes it, and records it."""
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        direct = f"{PG_DSN}?search_path={schema}"
        audit_key = tmp_path / "keys" / "audit.key"
        audit_key.parent.mkdir()
        data_dir, port = tmp_path / "serve", free_port()
        options = ("--database-url", url)
        env = {"TANDEM_AUDIT_KEY": str(audit_key), "TANDEM_HEARTBEAT_SECONDS": "0.5"}
        first = serve_processes(data_dir, port, *options, **env)
        ended = "SELECT end_reason FROM sessions WHERE session_id = 'orphan'"
        recorded = "SELECT count(*) FROM audit WHERE action = 'session_ended'"
        db = await pg_connect(schema)
        try:
            pg_proxy.freeze_on(b"session_ended")  # the record, on its way to the database
            # A session of a process that crashed (no row in processes): the next sweep's.
            await db.execute(
                "INSERT INTO sessions (session_id, created_at, node, site_id) "
                "VALUES ('orphan', 1.0, 'crashed-node', 'demo')"
            )
            await wait_for(lambda: pg_proxy.freeze_at is None, timeout=60)
            first.kill()
            pg_proxy.down()  # the held bytes die with the process, never forwarded
            pg_proxy.thaw()
            pg_proxy.up()
            # Held before it reached the database, the record was never written: neither was
            # the closing (it was: the session ended, and no record of it).
            assert (await db.fetchval(ended), await db.fetchval(recorded)) == (None, 0)
            second = serve_processes(data_dir, port, *options, **env)
            assert (await db.fetchval(ended), await db.fetchval(recorded)) == ("server_lost", 1)
            second.stop()
        finally:
            await db.close()
        assert verify_exit(data_dir, audit_key, direct) == 0


async def test_a_server_killed_after_an_erasure_on_sqlite_leaves_both_or_neither(
    tmp_path: Path,
    data_templates: DataTemplates,
    serve_processes: Callable[..., ServeProcess],
) -> None:
    data_dir, port = tmp_path / "data", free_port()
    data_templates.copy_to(data_dir, with_recording_key)
    database = data_dir / "tandem.sqlite3"
    audit_key = data_dir / "audit.key"
    first = serve_processes(data_dir, port)
    recording_id = await a_stopped_recording(first)  # type: ignore[arg-type]
    with sqlite3.connect(database, timeout=10) as db:
        db.execute(
            "CREATE TRIGGER test_disk_full BEFORE INSERT ON audit"
            " WHEN NEW.action = 'recording_erased'"
            " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    with api(first, "ada") as ada:  # type: ignore[arg-type]
        refused = ada.delete(f"/api/recordings/{recording_id}")
    assert refused.status_code >= 400 and "Traceback" not in refused.text
    first.kill()  # what the server kept to write later goes with it
    with sqlite3.connect(database, timeout=10) as db:
        db.execute("DROP TRIGGER test_disk_full")
    stored = "SELECT count(*) FROM recordings WHERE recording_id = ?"
    recorded = "SELECT count(*) FROM audit WHERE action = 'recording_erased' AND subject = ?"
    assert rows(database, stored, recording_id) == [(1,)]  # not erased without its record
    assert rows(database, recorded, recording_id) == [(0,)]
    assert verify_exit(data_dir, audit_key) == 0

    second = serve_processes(data_dir, port)
    with api(second, "ada") as ada:  # type: ignore[arg-type]
        assert ada.delete(f"/api/recordings/{recording_id}").status_code == 204
    assert rows(database, stored, recording_id) == [(0,)]
    assert rows(database, recorded, recording_id) == [(1,)]
    second.stop()
    assert verify_exit(data_dir, audit_key) == 0


async def test_a_change_whose_record_a_killed_server_held_is_recorded_at_its_next_start(
    tmp_path: Path,
    serve_processes: Callable[..., ServeProcess],
) -> None:
    """An administrator's change passes and PostgreSQL refuses its record (a full disk: a
    trigger here). The server kept the record to write once the database takes it, in memory
    only: killed before that, the account stayed disabled with no record of who did it or when.
    The record is kept on the disk too, and the next start on the data directory writes it,
    with the time of the change."""
    async with fresh_schema() as schema:
        direct = f"{PG_DSN}?search_path={schema}"
        audit_key = seeded(tmp_path, direct)
        data_dir, port = tmp_path / "serve", free_port()
        options = ("--database-url", direct)
        env = {"TANDEM_AUDIT_KEY": str(audit_key)}
        first = serve_processes(data_dir, port, *options, **env)
        async with audit_refuses(schema, "user_disabled"):
            with api(first, "ada") as ada:  # type: ignore[arg-type]
                refused = ada.post("/api/users/bob/disable")
            assert refused.status_code == 503, refused.text
            changed_by = time.time()
            first.kill()
        assert await audited(schema, "user_disabled") == []
        second = serve_processes(data_dir, port, *options, **env)
        [(at, subject)] = await audited(schema, "user_disabled")
        assert subject == "bob"
        assert at <= changed_by  # the time of the change, not of its writing
        second.stop()  # written once: the next start writes nothing again
        serve_processes(data_dir, port, *options, **env).stop()
        assert len(await audited(schema, "user_disabled")) == 1
        assert verify_exit(data_dir, audit_key, direct) == 0
