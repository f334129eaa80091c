"""A real `tandem serve` process killed with SIGKILL while a recording is closing: the customer
stopped it (both sides told at once), and its closing task is still writing the frames it kept
and has not ended it in storage (the database held: SQLite's write lock taken by another
connection, a PostgreSQL row lock held by another transaction). The next start on the same host
and port finds it in a clear state: ended ``interrupted`` (never listed as running), holding
exactly the frames storage took before the kill, numbered without a gap and played as they
were stored (the frames the process still held, its end marker among them, are not there: the
player labels it incomplete, never complete), audited once, and an admin can erase it.

And a graceful stop (SIGTERM) while the database refuses a recording's end: the session is not
handed over with its recording still running (the next start's sweep left a running recording
of a handed-over session alone); it ends, and the next start closes both."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tandem.config import Settings
from tandem.recordings import read_container
from tests.conftest import DataTemplates, free_port, two_organisations
from tests.server.helpers import recv_json, send
from tests.server.test_crash_recovery import ServeProcess, serve_processes  # noqa: F401
from tests.server.test_organisations import api
from tests.server.test_recording_races import TOLD, status
from tests.server.test_recordings import KEY, recording, recordings_of, with_recording_key
from tests.server.test_scale_out import run_in_thread
from tests.server.test_session_clearing import alice_of_support
from tests.storage.conftest import PG_DSN, fresh_schema, pg_connect

SETTLED = 60.0
"""How long a condition may take on a busy machine."""


class Stored:
    """What a killed server left in its database, seen from outside, and a way to hold it."""

    def __init__(
        self,
        query: Callable[..., Awaitable[list[Any]]],
        hold: Callable[[str], contextlib.AbstractAsyncContextManager[None]],
        script: Callable[[str], Awaitable[None]],
    ) -> None:
        self.query = query
        self.hold = hold
        """``hold(recording_id)``: the server's writes of that recording wait while it is open."""
        self._script = script

    @contextlib.asynccontextmanager
    async def ends_refused(self) -> AsyncIterator[None]:
        """The database refuses to end any recording (a trigger, as a full disk would): its
        frames are still taken."""
        await self._script(
            "CREATE TRIGGER test_no_end BEFORE UPDATE ON recordings FOR EACH ROW "
            "WHEN (NEW.ended_at IS NOT NULL) "
            + (
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                if self.sqlite
                else "EXECUTE FUNCTION test_no_end()"
            )
        )
        try:
            yield
        finally:
            await self._script(
                "DROP TRIGGER test_no_end" + ("" if self.sqlite else " ON recordings")
            )

    sqlite = False

    async def frames(self, recording_id: str) -> list[bytes]:
        rows = await self.query(
            "SELECT seq, data FROM recording_frames WHERE recording_id = ? ORDER BY seq",
            recording_id,
        )
        assert [row[0] for row in rows] == list(range(len(rows)))  # numbered without a gap
        return [bytes(row[1]) for row in rows]

    async def row(self, recording_id: str) -> tuple[Any, ...] | None:
        rows = await self.query(
            "SELECT ended_at, end_reason, frames FROM recordings WHERE recording_id = ?",
            recording_id,
        )
        return tuple(rows[0]) if rows else None

    async def until(self, condition: Callable[[], Awaitable[bool]], what: str) -> None:
        deadline = time.monotonic() + SETTLED
        while not await condition():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.1)


async def seed_postgres(seed_dir: Path, url: str) -> None:
    """The accounts of :func:`two_organisations`, the agent alice and the recording key, on
    ``url`` (the audit key in ``seed_dir``)."""
    from tandem.directory import offline, operator

    settings = Settings.load(environ={}, data_dir=seed_dir, database_url=url)
    async with offline(settings) as directory:
        await two_organisations(directory)
        await alice_of_support(directory)
        await directory.set_recording_key(operator("default"), KEY)


@contextlib.asynccontextmanager
async def killable(
    backend: str,
    tmp_path: Path,
    data_templates: DataTemplates,
    start: Callable[..., ServeProcess],
) -> AsyncIterator[tuple[Callable[[], ServeProcess], Stored]]:
    """A way to start `tandem serve` (again, on the same data directory, host and port) on
    ``backend``, and its database seen from outside."""
    data_dir, port = tmp_path / "data", free_port()
    if backend == "sqlite":
        data_templates.copy_to(data_dir, with_recording_key)
        database = data_dir / "tandem.sqlite3"

        async def on_sqlite(sql: str, *params: object) -> list[Any]:
            with sqlite3.connect(database, timeout=30) as db:
                return db.execute(sql, params).fetchall()

        @contextlib.asynccontextmanager
        async def write_lock(_recording_id: str) -> AsyncIterator[None]:
            other = sqlite3.connect(database, isolation_level=None, timeout=10)
            try:
                other.execute("BEGIN IMMEDIATE")
                yield
                other.execute("ROLLBACK")
            finally:
                other.close()

        async def script_sqlite(sql: str) -> None:
            with sqlite3.connect(database, timeout=30) as db:
                db.execute(sql)

        on_file = Stored(on_sqlite, write_lock, script_sqlite)
        on_file.sqlite = True
        yield lambda: start(data_dir, port, TANDEM_SQLITE_BUSY_SECONDS=str(SETTLED)), on_file
        return
    async with fresh_schema() as schema:
        url = f"{PG_DSN}?search_path={schema}"
        seed_dir = tmp_path / "seed"
        run_in_thread(lambda: seed_postgres(seed_dir, url))
        db = await pg_connect(schema)

        async def on_postgres(sql: str, *params: object) -> list[Any]:
            numbered = sql
            for index in range(1, len(params) + 1):
                numbered = numbered.replace("?", f"${index}", 1)
            return list(await db.fetch(numbered, *params))

        @contextlib.asynccontextmanager
        async def row_lock(recording_id: str) -> AsyncIterator[None]:
            holder = await pg_connect(schema)
            try:
                async with holder.transaction():
                    await holder.execute(
                        "SELECT 1 FROM recordings WHERE recording_id = $1 FOR UPDATE",
                        recording_id,
                    )
                    yield
            finally:
                await holder.close()

        async def script_postgres(sql: str) -> None:
            await db.execute(sql)

        await db.execute(
            "CREATE FUNCTION test_no_end() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'could not extend file: No space left on device' "
            "USING ERRCODE = 'disk_full'; END $$"
        )
        servers: list[ServeProcess] = []

        def serve() -> ServeProcess:
            servers.append(
                start(
                    data_dir,
                    port,
                    "--database-url",
                    url,
                    TANDEM_AUDIT_KEY=str(seed_dir / "audit.key"),
                    TANDEM_DATABASE_TIMEOUT_SECONDS=str(SETTLED),
                )
            )
            return servers[-1]

        try:
            yield serve, Stored(on_postgres, row_lock, script_postgres)
        finally:
            for server in servers:  # before the schema goes
                server.stop()
            await db.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_server_killed_while_a_recording_closes_leaves_it_ended_verifiable_and_erasable(
    backend: str,
    tmp_path: Path,
    data_templates: DataTemplates,
    serve_processes: Callable[..., ServeProcess],  # noqa: F811
) -> None:
    async with killable(backend, tmp_path, data_templates, serve_processes) as (serve, stored):
        first = serve()
        customer, alice, created = await recording(first)  # type: ignore[arg-type]
        session_id = created["session_id"]
        [running] = recordings_of(first)  # type: ignore[arg-type]
        recording_id = running["recording_id"]
        written = [b"\x01written-%03d" % i + b"." * 300 for i in range(4)]
        for frame in written:
            await customer.send(frame)
            assert await asyncio.wait_for(alice.recv(), TOLD) == frame

        async def flushed() -> bool:
            return len(await stored.frames(recording_id)) == len(written)

        await stored.until(flushed, "the timer never wrote the frames")
        held = [b"\x01held-%03d" % i + b"." * 300 for i in range(6)]
        held.append(b"\x01end-marker")
        async with stored.hold(recording_id):
            for frame in held:
                await customer.send(frame)
                assert await asyncio.wait_for(alice.recv(), TOLD) == frame
            await send(customer, type="record_stop")
            # Stopped here at once; its closing task waits for storage to write what it kept.
            assert await recv_json(alice, timeout=TOLD) == status(False, "stopped_by_customer")
            first.kill()
        # What the kill left: the recording running, with the frames written before the hold.
        assert await stored.row(recording_id) == (None, None, len(written))
        assert await stored.frames(recording_id) == written

        second = serve()
        ended_at, reason, count = await stored.row(recording_id) or (None, None, None)
        assert (reason, count) == ("interrupted", len(written)) and ended_at is not None
        [listed] = recordings_of(second)  # type: ignore[arg-type]
        assert listed["recording_id"] == recording_id
        assert listed["end_reason"] == "interrupted" and listed["ended_at"] is not None
        assert (listed["frames"], listed["size"]) == (len(written), sum(map(len, written)))
        with api(second, "aud") as aud:  # type: ignore[arg-type]
            trail = aud.get("/api/audit").json()
            stops = [
                r["details"]
                for r in trail
                if r["action"] == "recording_stopped" and r["subject"] == recording_id
            ]
            assert stops == [
                {
                    "session": session_id,
                    "reason": "interrupted",
                    "frames": len(written),
                    "size": sum(map(len, written)),
                }
            ]
            played = aud.get(f"/api/recordings/{recording_id}/content")
            assert played.status_code == 200, played.text
            header, frames = read_container(played.content)
            assert header["recording_id"] == recording_id and header["session_id"] == session_id
            assert frames == written  # no end marker: the player says it was cut short
        with api(second, "ada") as ada:  # type: ignore[arg-type]
            erased = ada.delete(f"/api/recordings/{recording_id}")
            assert erased.status_code == 204, erased.text
        assert recordings_of(second) == []  # type: ignore[arg-type]
        assert await stored.row(recording_id) is None
        assert await stored.frames(recording_id) == []


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_server_stopped_while_a_recordings_end_is_refused_hands_no_session_over_with_it(
    backend: str,
    tmp_path: Path,
    data_templates: DataTemplates,
    serve_processes: Callable[..., ServeProcess],  # noqa: F811
) -> None:
    """SIGTERM while the database takes a recording's frames but refuses its end: the stop
    closes the recording ``server_restart`` (its frames written, its end refused) and hands the
    session over. The session was stored as handed over with its recording still running: a
    recording nothing writes to any more, listed as running, not erasable, and left so by crash
    recovery (its session is live: handed over) for as long as the session went on, on whichever
    process resumed it. A session's hand-over now waits until its recordings are ended in
    storage; one whose recording cannot be ended is not handed over but ends (as any session
    whose hand-over storage did not take), and the next start closes it (``server_lost``) and
    its recording (``interrupted``), with what was written, playable and erasable."""
    async with killable(backend, tmp_path, data_templates, serve_processes) as (serve, stored):
        first = serve()
        customer, alice, created = await recording(first)  # type: ignore[arg-type]
        session_id = created["session_id"]
        [running] = recordings_of(first)  # type: ignore[arg-type]
        recording_id = running["recording_id"]
        written = [b"\x01written-%03d" % i + b"." * 300 for i in range(4)]
        async with stored.ends_refused():
            for frame in written:
                await customer.send(frame)
                assert await asyncio.wait_for(alice.recv(), TOLD) == frame
            first.process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(first.process.wait, SETTLED) == 0
        assert await stored.frames(recording_id) == written
        handed = await stored.query(
            "SELECT count(*) FROM suspended_sessions WHERE session_id = ?", session_id
        )
        ended_at, reason, _ = await stored.row(recording_id) or (None, None, None)
        assert [tuple(r) for r in handed] == [(0,)] or ended_at is not None, (
            "the session was handed over with its recording still running"
        )

        second = serve()
        ended_at, reason, count = await stored.row(recording_id) or (None, None, None)
        assert ended_at is not None and (reason, count) == ("interrupted", len(written))
        [listed] = recordings_of(second)  # type: ignore[arg-type]
        assert listed["ended_at"] is not None and listed["end_reason"] == reason
        with api(second, "aud") as aud:  # type: ignore[arg-type]
            played = aud.get(f"/api/recordings/{recording_id}/content")
            assert played.status_code == 200, played.text
            assert read_container(played.content)[1] == written
        with api(second, "ada") as ada:  # type: ignore[arg-type]
            erased = ada.delete(f"/api/recordings/{recording_id}")
            assert erased.status_code == 204, erased.text
        assert await stored.row(recording_id) is None
