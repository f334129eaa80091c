"""A recording's stop and its erasure racing its writer (docs/recordings.md, "When storage
fails"), on a real server, on SQLite (another connection holding the write lock) and PostgreSQL
(frozen behind tests.server.db_proxy, or one row locked by another transaction).

A recording's frames are written by its own task, off the customer's socket. Its stop (the
customer's ``record_stop``, a frame past the size limit) waited for that task's write on the
customer's socket: while storage did not answer, both sides' notice and every later frame of the
customer waited with it, up to ``database_timeout_seconds``. And the session's end in storage did
not wait for a recording whose writer was still writing, so the session could be erased
(``tandem subject erase``) with the recording's frames still on their way."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningServer, ServerFactory
from tests.conftest import tandem_in_process as run
from tests.server.db_proxy import StoppableProxy, proxied_url
from tests.server.helpers import recv_json, send, sharing_session
from tests.server.test_frozen_database import FROZEN_TIMEOUT, recording_server
from tests.server.test_recordings import recording, with_recording_key
from tests.server.test_storage_faults import write_lock
from tests.storage.conftest import PG_DSN, fresh_schema, pg_connect

TOLD = FROZEN_TIMEOUT / 2
"""How long a notice or a relayed frame may take while storage is held: far under the servers'
storage timeout here (FROZEN_TIMEOUT, both ``database_timeout_seconds`` and
``sqlite_busy_seconds``), which the stop waited out before."""
SETTLED = 60.0
"""How long storage may take to catch up once it answers again (a busy machine)."""


def status(on: bool, reason: str | None) -> dict[str, Any]:
    return {"v": 1, "type": "recording", "on": on, "reason": reason}


def cli_environ(schema: str, timeout: float = SETTLED) -> dict[str, str]:
    """The environment of a ``tandem`` command on the schema's database (storage waits bounded
    by ``timeout``)."""
    return {
        **os.environ,
        "TANDEM_DATABASE_URL": f"{PG_DSN}?search_path={schema}",
        "TANDEM_DATABASE_TIMEOUT_SECONDS": str(timeout),
    }


def erase_command(tmp_path: Path, identifier: str, by: str) -> list[str]:
    """``tandem subject erase`` of ``identifier`` (``--by``), run against the seed's data; the
    identifier after ``--``, as a session id may begin with ``-`` (taken for an option)."""
    return [
        "subject",
        "erase",
        "--by",
        by,
        "--yes",
        "--data-dir",
        str(tmp_path / "seed"),
        "--",
        identifier,
    ]


class Backend:
    """A recording server on one backend, what it stored, and a way to hold its storage."""

    def __init__(self, server: RunningServer, hold: Callable[[], Any], query: Any) -> None:
        self.server = server
        self.hold = hold
        """A context manager: storage does not answer the server while it is open."""
        self._query = query

    async def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """``sql`` (``?`` placeholders) on the server's database, from outside it."""
        return [tuple(row) for row in await self._query(sql, *params)]

    async def recording_id(self) -> str:
        [(recording_id,)] = await self.rows("SELECT recording_id FROM recordings")
        return str(recording_id)

    async def frames(self, recording_id: str) -> list[bytes]:
        rows = await self.rows(
            "SELECT seq, data FROM recording_frames WHERE recording_id = ? ORDER BY seq",
            recording_id,
        )
        assert [row[0] for row in rows] == list(range(len(rows)))
        return [bytes(row[1]) for row in rows]

    async def ended(self, recording_id: str) -> str:
        """The recording's end reason, once storage has it."""
        deadline = time.monotonic() + SETTLED
        while True:
            rows = await self.rows(
                "SELECT end_reason FROM recordings WHERE recording_id = ?", recording_id
            )
            if rows and rows[0][0] is not None:
                return str(rows[0][0])
            assert time.monotonic() < deadline, "the recording was never ended"
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def recording_backend(
    name: str,
    server_factory: ServerFactory,
    pg_proxy: StoppableProxy,
    tmp_path: Path,
    **settings: Any,
) -> AsyncIterator[Backend]:
    if name == "sqlite":
        server = server_factory(
            seed=with_recording_key,
            recording_flush_bytes=1024,
            sqlite_busy_seconds=FROZEN_TIMEOUT,
            purge_interval_seconds=86400.0,
            **settings,
        )

        async def on_sqlite(sql: str, *params: object) -> list[Any]:
            with sqlite3.connect(server.settings.database_path, timeout=30) as db:
                return db.execute(sql, params).fetchall()

        @contextlib.contextmanager
        def locked() -> Iterator[None]:
            with write_lock(server):
                yield

        yield Backend(server, locked, on_sqlite)
        return
    async with fresh_schema() as schema:
        server = recording_server(
            server_factory, tmp_path, proxied_url(pg_proxy, schema), **settings
        )
        db = await pg_connect(schema)

        async def on_postgres(sql: str, *params: object) -> list[Any]:
            numbered = sql
            for index in range(1, len(params) + 1):
                numbered = numbered.replace("?", f"${index}", 1)
            return list(await db.fetch(numbered, *params))

        try:
            yield Backend(server, pg_proxy.frozen, on_postgres)
        finally:
            await db.close()
            server.stop()  # before its schema goes


BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"])


@BACKENDS
async def test_a_customers_stop_is_told_at_once_and_frames_flow_while_storage_is_held(
    backend: str, server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """The customer stops the recording (after its end marker) while its frames wait in its
    writer for storage that does not answer. Both sides are told at once and the customer's
    next frames reach the agent at once (the stop waited for the write, on the customer's
    socket); once storage answers, every frame before the stop is stored, in order, and the
    recording is ended ``stopped_by_customer``: none after the stop, none dropped."""
    async with recording_backend(backend, server_factory, pg_proxy, tmp_path) as stored:
        customer, alice, _ = await recording(stored.server)
        recording_id = await stored.recording_id()
        sent = [b"\x01queued-%03d" % i + b"." * 500 for i in range(20)]
        sent.append(b"\x01end-marker")
        after = [b"\x01after-%03d" % i for i in range(5)]
        with stored.hold():
            for frame in sent:
                await customer.send(frame)
                assert await asyncio.wait_for(alice.recv(), TOLD) == frame
            await send(customer, type="record_stop")
            assert await recv_json(alice, timeout=TOLD) == status(False, "stopped_by_customer")
            assert await recv_json(customer, timeout=TOLD) == status(False, "stopped_by_customer")
            for frame in after:
                await customer.send(frame)
                assert await asyncio.wait_for(alice.recv(), TOLD) == frame
        assert await stored.ended(recording_id) == "stopped_by_customer"
        assert await stored.frames(recording_id) == sent


@BACKENDS
async def test_a_frame_past_the_size_limit_is_cut_at_once_and_frames_flow_while_storage_is_held(
    backend: str, server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """A recording reaches its size limit (both sides told), and the customer's frames go on
    past the allowance for its end marker while storage does not answer: the frame that passes
    it cuts the recording, and it and every later frame reach the agent at once (the cut waited
    for the writer's write on the customer's socket). Once storage answers, the recording is
    ended ``size_limit`` with exactly the frames within its allowance."""
    limit, allowance = 8 * 512, 4 * 512
    async with recording_backend(
        backend,
        server_factory,
        pg_proxy,
        tmp_path,
        max_recording_bytes=limit,
        recording_end_bytes=allowance,
    ) as stored:
        customer, alice, _ = await recording(stored.server)
        recording_id = await stored.recording_id()
        frames = [b"\x01%03d" % i + b"." * 508 for i in range(20)]
        kept = frames[: (limit + allowance) // 512]
        with stored.hold():
            for index, frame in enumerate(frames):
                await customer.send(frame)
                assert await asyncio.wait_for(alice.recv(), TOLD) == frame
                if index == limit // 512 - 1:  # the limit: both sides are asked to end it
                    assert await recv_json(alice, timeout=TOLD) == status(False, "size_limit")
                    assert await recv_json(customer, timeout=TOLD) == status(False, "size_limit")
        assert await stored.ended(recording_id) == "size_limit"
        assert await stored.frames(recording_id) == kept


async def test_a_subject_erasure_never_meets_a_recording_whose_frames_are_being_written(
    server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """A recording's write waits on its row (another transaction holds it: a database slow for
    that row only), its backlog fills (the recording stops ``unavailable``, both sides told) and
    the agent leaves. The session ended in storage at once, its recording still running there
    with a write on its way, so ``tandem subject erase`` went ahead under the writer. Now the
    session's end in storage waits for its recording's: the erasure is refused ("still live")
    while the write is on its way; once the row is free the recording is ended ``unavailable``,
    then the session, and the erasure takes everything: no frame, no row of the recording or the
    session is left, and nothing more about the recording is written after the erasure."""
    async with fresh_schema() as schema:
        server = recording_server(
            server_factory, tmp_path, proxied_url(pg_proxy, schema), recording_backlog_bytes=8192
        )
        hub = server.server.config.app.state.services.hub
        customer, alice, created = await recording(server)
        session_id = created["session_id"]
        db = await pg_connect(schema)
        holder = await pg_connect(schema)
        try:
            recording_id = await db.fetchval("SELECT recording_id FROM recordings")
            erase = erase_command(tmp_path, session_id, "session")
            environ = cli_environ(schema, timeout=3)
            held = holder.transaction()
            await held.start()
            await holder.execute(
                "SELECT 1 FROM recordings WHERE recording_id = $1 FOR UPDATE", recording_id
            )
            told: list[Any] = []
            for i in range(40):  # 20 KiB: past its backlog (8 KiB) behind the waiting write
                frame = b"\x01held-%03d" % i + b"." * 500
                await customer.send(frame)
                while (got := await asyncio.wait_for(alice.recv(), TOLD)) != frame:
                    told.append(got)
            assert [json.loads(t) for t in told] == [status(False, "unavailable")]
            assert await recv_json(customer, timeout=TOLD) == status(False, "unavailable")
            await send(alice, type="leave")
            ended = {"v": 1, "type": "ended", "reason": "agent_left"}
            assert await recv_json(customer, timeout=TOLD) == ended
            deadline = time.monotonic() + SETTLED
            while session_id in hub._live:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            refused = await asyncio.to_thread(run, *erase, env=environ)
            assert refused.returncode == 2, refused.stdout + refused.stderr
            assert "still live" in refused.stdout + refused.stderr
            # The operator is told why: the recording, not the people, keeps it live.
            said = " ".join((refused.stdout + refused.stderr).split())
            assert f"its recording {recording_id} is not yet ended in storage" in said, said
            await held.rollback()
            query = "SELECT ended_at FROM sessions WHERE session_id = $1"
            deadline = time.monotonic() + SETTLED
            while await db.fetchval(query, session_id) is None:
                assert time.monotonic() < deadline, "the session was never ended in storage"
                await asyncio.sleep(0.1)
            reason = "SELECT end_reason FROM recordings WHERE recording_id = $1"
            assert await db.fetchval(reason, recording_id) == "unavailable"
            erased = await asyncio.to_thread(run, *erase, env=environ)
            assert erased.returncode == 0, erased.stdout + erased.stderr
            assert "Erased 1 session(s) and 1 recording(s)" in erased.stdout
            deadline = time.monotonic() + SETTLED
            while hub._recording_writes or hub._failed_recordings or hub._unfinished:
                assert time.monotonic() < deadline, "the server still has work for it"
                await asyncio.sleep(0.1)
            for table, column, value in (
                ("recordings", "recording_id", recording_id),
                ("recording_frames", "recording_id", recording_id),
                ("sessions", "session_id", session_id),
            ):
                count = f"SELECT count(*) FROM {table} WHERE {column} = $1"
                assert await db.fetchval(count, value) == 0, table
            erasure = await db.fetchval("SELECT seq FROM audit WHERE action = 'subject_erased'")
            later = await db.fetch(
                "SELECT action FROM audit WHERE seq > $1 AND (subject = $2 OR details LIKE $3)",
                erasure,
                recording_id,
                f"%{recording_id}%",
            )
            assert later == []
        finally:
            await holder.close()
            await db.close()
        server.stop()  # before its schema goes


@BACKENDS
async def test_a_recording_whose_start_waits_for_storage_ends_before_the_session_that_ended_it(
    backend: str, server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """The customer allows recording while storage does not answer: the recording's start (its
    row, the record of the customer's yes) waits. Meanwhile the agent leaves, and the timer ends
    the session once the customer's end marker is overdue (``recording_end_seconds``): the stop
    found no recording to stop (not yet started), so when storage answered the recording started
    after its session had ended, and stayed running in storage (until another sweep called it
    ``interrupted``), the session's end stored before it, so an erasure of the customer could go
    ahead with the recording's row still to come. Now a stop during the start ends the recording
    once it has started, and the session's end in storage waits for both: the recording is ended
    ``session_ended``, its ``recording_stopped`` record before the session's ``session_ended``."""
    async with recording_backend(
        backend, server_factory, pg_proxy, tmp_path, recording_end_seconds=0.5
    ) as stored:
        customer, alice, created = await sharing_session(stored.server)
        session_id = created["session_id"]
        await send(alice, type="record")
        request = await recv_json(customer)
        recording_id = request["recording_id"]
        with stored.hold():
            await send(customer, type="record_consent", granted=True)
            await send(alice, type="leave")
            deadline = time.monotonic() + TOLD
            while (await recv_json(customer, timeout=TOLD))["type"] != "ended":
                assert time.monotonic() < deadline, "the session never ended"
        deadline = time.monotonic() + SETTLED
        query = "SELECT ended_at FROM sessions WHERE session_id = ?"
        while (await stored.rows(query, session_id))[0][0] is None:
            assert time.monotonic() < deadline, "the session was never ended in storage"
            await asyncio.sleep(0.1)
        reason = "SELECT end_reason FROM recordings WHERE recording_id = ?"
        assert await stored.rows(reason, recording_id) == [("session_ended",)]
        # The session's record follows its end in storage (a loaded machine showed the gap).
        deadline = time.monotonic() + SETTLED
        while True:
            trail = await stored.rows(
                "SELECT action, subject FROM audit WHERE action IN (?, ?, ?) ORDER BY seq",
                "recording_started",
                "recording_stopped",
                "session_ended",
            )
            if len(trail) >= 3 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert trail == [
            ("recording_started", recording_id),
            ("recording_stopped", recording_id),
            ("session_ended", session_id),
        ]
