"""Ctrl-C pressed again while `tandem serve` stops (docs/operations.md, "Stopping"): a second
SIGINT only shortens what is left of the stop's waits; the sessions are still told they ended
and what cannot be written is still kept in the audit backlog. A third forces the exit. Real
``tandem serve``, the SQLite file locked by another program so that the stop has to wait."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import add_user, free_port
from tests.private_redis import PrivateRedis, running_private_redis
from tests.server.test_crash_recovery import ServeProcess
from tests.server.test_frozen_database import seed_people
from tests.server.test_frozen_stop import (
    ENDED,
    EXIT_ROOM,
    LOBBY,
    RECONNECT,
    closing,
    opened,
    reap,
    serving,
    sessions,
    stopped,
    trail_verifies,
)
from tests.server.test_stop_cut_writes import (
    CUT,
    kept_actions,
    locked,
    sqlite_server,
    wait_for_log,
)
from tests.storage.conftest import PG_DSN, fresh_schema, pg_connect


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    yield from running_private_redis()


LONG_STOP = 60.0
"""The servers' --shutdown-timeout here: far longer than a hurried stop may take."""
HURRIED_ROOM = 2.0 + EXIT_ROOM
"""What a stop may take after the second Ctrl-C: HURRIED_STOP_SECONDS, then the exit."""


async def test_a_second_ctrl_c_shortens_the_stop_but_still_tells_and_keeps(
    tmp_path: Path,
) -> None:
    data_dir, port, server = sqlite_server(tmp_path, LONG_STOP)
    sockets = await opened(server, sessions)
    with locked(data_dir):  # every hand-over waits for the file
        server.process.send_signal(signal.SIGINT)
        closed = asyncio.gather(*(closing(ws, LONG_STOP) for ws in sockets))
        await wait_for_log(server, "stopping: telling every socket", seconds=LONG_STOP)
        hurried = time.monotonic()
        server.process.send_signal(signal.SIGINT)
        try:
            assert await closed == [ENDED] * (len(sockets) - 1) + [LOBBY]
            await asyncio.to_thread(server.process.wait, LONG_STOP)
        finally:
            reap(server)
        took = time.monotonic() - hurried
    log = Path(server.log.name).read_text(errors="replace")
    assert took < HURRIED_ROOM, (took, log)
    assert "second interrupt" in log, log
    assert log.count(CUT) == 3, log
    assert "0 ended for both sides (server_shutdown), 3 cut" in log, log
    # Nothing was skipped: each cut and the server's stop were kept, and the next start wrote
    # them, each once.
    ended, actions = kept_actions(data_dir, port)
    assert ended == [("server_lost", 3)], ended
    assert actions == {"session_not_handed_over": 3, "server_stopped": 1}, actions
    trail_verifies(data_dir)


async def test_a_longer_hurried_stop_lets_the_hand_overs_be_stored_once_the_database_answers(
    tmp_path: Path,
) -> None:
    """``hurried_stop_seconds`` (TANDEM_HURRIED_STOP_SECONDS) is what a second Ctrl-C leaves
    of the stop: set to 40 s, the hand-overs still waiting for the locked file are not cut
    once it is released after the second interrupt; the sessions are handed over. What the stop
    leaves uvicorn (``shutdown_reserve_seconds``) is the setting's too."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    add_user(data_dir, "alice", display_name="Alice")
    port = free_port()
    server = ServeProcess(
        data_dir,
        port,
        "--shutdown-timeout",
        str(LONG_STOP),
        env={"TANDEM_HURRIED_STOP_SECONDS": "40", "TANDEM_SHUTDOWN_RESERVE_SECONDS": "5"},
    )
    sockets = await opened(server, sessions)
    try:
        closed = asyncio.gather(*(closing(ws, LONG_STOP) for ws in sockets))
        with locked(data_dir):  # every hand-over waits for the file
            server.process.send_signal(signal.SIGINT)
            await wait_for_log(server, "(within 60 s, 55 s of it before", seconds=LONG_STOP)
            server.process.send_signal(signal.SIGINT)
            await wait_for_log(server, "the stop is cut to 40 s", seconds=LONG_STOP)
        assert await closed == [RECONNECT] * (len(sockets) - 1) + [LOBBY]
        await asyncio.to_thread(server.process.wait, LONG_STOP)
    finally:
        reap(server)
    log = Path(server.log.name).read_text(errors="replace")
    assert CUT not in log, log
    _ended, actions = kept_actions(data_dir, port)
    assert actions == {"session_suspended": 3, "server_stopped": 1}, actions


async def test_two_ctrl_c_at_once_still_tell_every_socket(tmp_path: Path) -> None:
    """Both interrupts land before the stop began (one keypress bouncing, or an impatient
    operator): the stop is hurried from its start, never skipped."""
    data_dir, port, server = sqlite_server(tmp_path, LONG_STOP)
    sockets = await opened(server, sessions)
    try:
        closed = asyncio.gather(*(closing(ws, LONG_STOP) for ws in sockets))
        server.process.send_signal(signal.SIGINT)
        server.process.send_signal(signal.SIGINT)
        # The database answers: handed over, as with one interrupt.
        assert await closed == [RECONNECT] * (len(sockets) - 1) + [LOBBY]
        await asyncio.to_thread(server.process.wait, LONG_STOP)
    finally:
        reap(server)
    _ended, actions = kept_actions(data_dir, port)
    assert actions == {"session_suspended": 3, "server_stopped": 1}, actions


async def test_a_third_ctrl_c_forces_the_exit(tmp_path: Path) -> None:
    data_dir, _port, server = sqlite_server(tmp_path, LONG_STOP)
    sockets = await opened(server, sessions)
    try:
        with locked(data_dir):
            server.process.send_signal(signal.SIGINT)
            await wait_for_log(server, "stopping: telling every socket", seconds=LONG_STOP)
            server.process.send_signal(signal.SIGINT)
            await wait_for_log(server, "second interrupt", seconds=LONG_STOP)
            forced = time.monotonic()
            server.process.send_signal(signal.SIGINT)
            try:
                await asyncio.to_thread(server.process.wait, LONG_STOP)
            finally:
                reap(server)
            took = time.monotonic() - forced
    finally:
        for ws in sockets:
            await ws.close()
    log = Path(server.log.name).read_text(errors="replace")
    assert "third interrupt" in log, log
    assert took < HURRIED_ROOM, (took, log)


async def test_a_stop_whose_storage_fails_still_keeps_server_stopped(tmp_path: Path) -> None:
    """One SIGTERM, a long --shutdown-timeout, the SQLite file locked: the hand-overs and ends
    fail (``database is locked``, an error, not only a late answer) within the stop's time.
    What the stop writes after them (``server_stopped``) was skipped with them; it is kept."""
    data_dir, port, server = sqlite_server(tmp_path, LONG_STOP)
    sockets = await opened(server, sessions)
    with locked(data_dir):
        server.process.send_signal(signal.SIGTERM)
        closed = asyncio.gather(*(closing(ws, LONG_STOP) for ws in sockets))
        try:
            assert await closed == [ENDED] * (len(sockets) - 1) + [LOBBY]
            exited = await asyncio.to_thread(server.process.wait, LONG_STOP + EXIT_ROOM)
        finally:
            reap(server)
    log = Path(server.log.name).read_text(errors="replace")
    assert exited == 0, log
    _ended, actions = kept_actions(data_dir, port)
    assert actions.get("server_stopped") == 1, (actions, log)
    # What the operator reads: one line for each loss, a summary, no traceback.
    assert "Traceback" not in log, log
    assert "stopping: 0 session(s) handed over to the next process, 3 ended for both" in log, log
    assert "could not be handed over (the database failed: database is locked)" in log, log
    assert "audit record(s) kept in the audit backlog" in log, log


async def test_a_stop_with_redis_gone_hands_the_sessions_over_in_time(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    """Redis is not frozen but gone (stopped: connections refused): the database answers, so
    the sessions are handed over and both sides told to reconnect, within the timeout, and the
    stop is a clean one (server_stopped written, nothing kept)."""
    async with fresh_schema() as schema:
        url = f"{PG_DSN}?search_path={schema}"
        seed_people(tmp_path / "seed", url)
        server = serving(tmp_path, url, free_port(), redis=private_redis)
        sockets = await opened(server, sessions)
        private_redis.stop()
        stop = await stopped(server, sockets)
        assert stop.closed == [RECONNECT] * (len(sockets) - 1) + [LOBBY], stop.closed
        assert "audit record(s) kept" not in stop.log, stop.log
        summary = "stopping: 3 session(s) handed over to the next process, 0 ended for both"
        assert summary in stop.log, stop.log
        db = await pg_connect(schema)
        try:
            query = "SELECT count(*) FROM audit WHERE action = $1"
            assert await db.fetchval(query, "session_suspended") == 3
            assert await db.fetchval(query, "server_stopped") == 1
        finally:
            await db.close()
