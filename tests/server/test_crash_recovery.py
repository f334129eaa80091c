"""Crash recovery (issue 13, fault 2): a real `tandem serve` process killed with SIGKILL leaves its
session "live" and its recording "running" in storage. The next start on the same host and port
closes them (`server_lost`, `interrupted`, both audited); with several processes, a live one
closes them once the heartbeat stops, and supervisors stop seeing the session. The interrupted
recording plays up to its last flush and can be erased."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tandem.config import Settings
from tandem.recordings import read_container
from tests.conftest import DataTemplates, FakeClock, RunningServer, ServerFactory, free_port
from tests.forkserver import tandem_process
from tests.server.helpers import start_session
from tests.server.test_admin_api import audit_actions
from tests.server.test_audit_after_faults import audit_refuses, audited
from tests.server.test_organisations import api
from tests.server.test_recordings import recording, recordings_of, with_recording_key
from tests.server.test_scale_out import REDIS_URL, add_people, run_in_thread
from tests.storage.conftest import PG_DSN, fresh_schema, pg_connect

SERVE = [sys.executable, "-m", "tandem", "serve"]


class ServeProcess:
    """`python -m tandem serve` as an operator runs it, in its own process (killable), forked
    from the fork server (tests/forkserver.py)."""

    def __init__(self, data_dir: Path, port: int, *options: str, env: dict[str, str]) -> None:
        self.settings = Settings.load(environ={}, data_dir=data_dir, port=port)
        self.clock = FakeClock()
        self.base = self.origin = f"http://127.0.0.1:{port}"
        self.ws_base = f"ws://127.0.0.1:{port}"
        self.log = (data_dir.parent / f"serve-{port}-{time.monotonic_ns()}.log").open("w")
        self.process = tandem_process(
            [*SERVE, "--port", str(port), "--data-dir", str(data_dir), *options],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
        try:
            self._wait_until_serving(deadline=time.monotonic() + 60)
        except BaseException:
            self.stop()  # a process that never answered is not left running, nor its log open
            raise

    def _wait_until_serving(self, deadline: float) -> None:
        while True:
            try:
                if httpx.get(f"{self.base}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, f"tandem serve exited: {self._log_text()}"
            assert time.monotonic() < deadline, f"tandem serve did not answer: {self._log_text()}"
            time.sleep(0.1)

    def _log_text(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-2000:]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        try:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
                    raise
        finally:
            self.log.close()


@pytest.fixture
def serve_processes() -> Iterator[Callable[..., ServeProcess]]:
    started: list[ServeProcess] = []

    def start(data_dir: Path, port: int, *options: str, **env: str) -> ServeProcess:
        started.append(ServeProcess(data_dir, port, *options, env=env))
        return started[-1]

    yield start
    for running in started:
        running.stop()


def rows(database: Path, query: str, *params: object) -> list[Any]:
    with sqlite3.connect(database, timeout=10) as db:
        return db.execute(query, params).fetchall()


async def wait_for(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_a_restart_closes_what_a_killed_server_left_live_and_its_recording_plays_and_erases(
    tmp_path: Path,
    data_templates: DataTemplates,
    serve_processes: Callable[..., ServeProcess],
) -> None:
    data_dir, port = tmp_path / "data", free_port()
    data_templates.copy_to(data_dir, with_recording_key)
    database = data_dir / "tandem.sqlite3"
    first = serve_processes(data_dir, port)
    customer, alice, created = await recording(first)  # type: ignore[arg-type]
    session_id = created["session_id"]
    kept = [b"\x01first", b"\x01second"]
    for frame in kept:
        await customer.send(frame)
        assert await alice.recv() == frame
    [running] = recordings_of(first)  # type: ignore[arg-type]
    recording_id = running["recording_id"]
    await wait_for(  # flushed by the timer within a second
        lambda: (
            rows(
                database,
                "SELECT count(*) FROM recording_frames WHERE recording_id = ?",
                recording_id,
            )
            == [(len(kept),)]
        )
    )

    first.kill()
    ghost = "SELECT ended_at, end_reason FROM sessions WHERE session_id = ?"
    assert rows(database, ghost, session_id) == [(None, None)]  # what the crash left
    assert rows(
        database, "SELECT ended_at FROM recordings WHERE recording_id = ?", recording_id
    ) == [(None,)]

    second = serve_processes(data_dir, port)
    [(ended_at, reason)] = rows(database, ghost, session_id)
    assert reason == "server_lost" and ended_at is not None
    [listed] = recordings_of(second)  # type: ignore[arg-type]
    assert listed["end_reason"] == "interrupted" and listed["ended_at"] is not None
    actions = audit_actions(second)  # type: ignore[arg-type]
    assert "session_ended" in actions and "recording_stopped" in actions
    with api(second, "aud") as aud:  # type: ignore[arg-type]
        trail = aud.get("/api/audit").json()
        assert {
            (r["action"], r["subject"], r["details"].get("reason"))
            for r in trail
            if r["action"] in ("session_ended", "recording_stopped")
        } >= {
            ("session_ended", session_id, "server_lost"),
            ("recording_stopped", recording_id, "interrupted"),
        }
        played = aud.get(f"/api/recordings/{recording_id}/content")
        assert played.status_code == 200
        assert read_container(played.content)[1] == kept  # up to where it stopped
    with api(second, "ada") as ada:  # type: ignore[arg-type]
        assert ada.delete(f"/api/recordings/{recording_id}").status_code == 204
    assert recordings_of(second) == []  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def a_survivor_and_a_doomed_peer(
    tmp_path: Path,
    server_factory: ServerFactory,
    serve_processes: Callable[..., ServeProcess],
) -> AsyncIterator[tuple[str, RunningServer, ServeProcess, dict[str, Any]]]:
    """Two servers of one cluster on a fresh PostgreSQL schema and Redis: the survivor in this
    process, the doomed one a `tandem serve` of its own (killable), with a customer's session
    started on the doomed one. Yields the schema, both servers and the session as created; the
    survivor stops before its schema goes."""
    async with fresh_schema() as schema:
        database_url = f"{PG_DSN}?search_path={schema}"
        prefix = f"tandem-test-{uuid.uuid4().hex}:"
        audit_key = tmp_path / "keys" / "audit.key"
        audit_key.parent.mkdir()
        shared: dict[str, Any] = {
            "database_url": database_url,
            "redis_url": REDIS_URL,
            "redis_prefix": prefix,
            "audit_key_file": audit_key,
            "heartbeat_seconds": 0.5,
            "process_lost_seconds": 3.0,
        }

        async def seed() -> None:
            from tandem.directory import offline

            settings = Settings.load(environ={}, data_dir=tmp_path / "seed", **shared)
            async with offline(settings) as directory:
                await add_people(directory)

        run_in_thread(seed)
        survivor = server_factory(**shared)
        try:
            doomed = serve_processes(
                tmp_path / "doomed",
                free_port(),
                "--database-url",
                database_url,
                "--redis-url",
                REDIS_URL,
                TANDEM_REDIS_PREFIX=prefix,
                TANDEM_AUDIT_KEY=str(audit_key),
                TANDEM_HEARTBEAT_SECONDS="0.5",
                TANDEM_PROCESS_LOST_SECONDS="3",
            )
            _customer, created = await start_session(doomed)  # type: ignore[arg-type]
            yield schema, survivor, doomed, created
        finally:
            survivor.stop()


@pytest.mark.usefixtures("requires_redis")
async def test_a_live_process_closes_a_killed_peers_sessions_and_supervisors_stop_seeing_them(
    tmp_path: Path,
    server_factory: ServerFactory,
    serve_processes: Callable[..., ServeProcess],
) -> None:
    async with a_survivor_and_a_doomed_peer(tmp_path, server_factory, serve_processes) as (
        schema,
        survivor,
        doomed,
        created,
    ):
        with api(survivor, "sam") as sam:
            listed = sam.get("/api/sessions").json()
            assert [s["session_id"] for s in listed] == [created["session_id"]]
            doomed.kill()
            await wait_for(lambda: sam.get("/api/sessions").json() == [], timeout=20)
        db = await pg_connect(schema)
        try:
            ended = await db.fetchrow(
                "SELECT end_reason FROM sessions WHERE session_id = $1", created["session_id"]
            )
        finally:
            await db.close()
        assert ended["end_reason"] == "server_lost"
        with api(survivor, "sam") as sam:
            assert sam.get("/api/sessions").json() == []


@pytest.mark.usefixtures("requires_redis")
async def test_a_killed_peers_session_is_ended_with_its_record_once_the_audit_trail_takes_it(
    tmp_path: Path,
    server_factory: ServerFactory,
    serve_processes: Callable[..., ServeProcess],
) -> None:
    """PostgreSQL refuses the survivor's ``session_ended`` record of the killed process's
    session (a trigger raising ``disk_full``). The closing and its record are one transaction:
    the session is not closed while its record cannot be written (it was closed, and the record
    held in the survivor's memory, lost if the survivor died too), and both are made once the
    database takes the record."""
    async with a_survivor_and_a_doomed_peer(tmp_path, server_factory, serve_processes) as (
        schema,
        survivor,
        doomed,
        created,
    ):
        session_id = created["session_id"]
        ended = f'SELECT end_reason FROM "{schema}".sessions WHERE session_id = $1'
        failing = survivor.server.config.app.state.background.health["lost_processes"]
        db = await pg_connect()
        try:
            async with audit_refuses(schema, "session_ended"):
                doomed.kill()
                deadline = time.monotonic() + 30
                while not failing.failures:
                    assert time.monotonic() < deadline, "the survivor did not sweep"
                    await asyncio.sleep(0.1)
                assert await db.fetchval(ended, session_id) is None
                assert await audited(schema, "session_ended") == []
            deadline = time.monotonic() + 30
            while not await audited(schema, "session_ended"):
                assert time.monotonic() < deadline, "the session's end was never recorded"
                await asyncio.sleep(0.1)
            assert await db.fetchval(ended, session_id) == "server_lost"
        finally:
            await db.close()
        [(_, subject)] = await audited(schema, "session_ended")
        assert subject == session_id
