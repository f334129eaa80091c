"""What a graceful stop past its deadline leaves behind on SQLite (review of the stop's one
deadline, docs/security.md): the storage thread is a daemon that goes on with a statement
waiting for a locked file after the stop gave up on it. A hand-over cut (both sides told the
session ended, ``session_not_handed_over`` kept in the audit backlog) must not be stored after
all when the lock goes before the process exits: it was resumable then, with records that
contradict each other. Real ``tandem serve``, SIGTERM, the file locked by another program."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import add_user, free_port
from tests.server.helpers import resume_on, sharing_session, start_session
from tests.server.test_crash_recovery import ServeProcess
from tests.server.test_frozen_stop import (
    ENDED,
    EXIT_ROOM,
    LOBBY,
    STOP_TIMEOUT,
    closing,
    opened,
    sessions,
    stopped,
)
from tests.storage.conftest import tandem

CUT = "could not be handed over nor its end stored in time"


def log_of(server: ServeProcess) -> str:
    server.log.flush()
    return Path(server.log.name).read_text(errors="replace")


def shared_and_waiting(created: list[dict[str, Any]]) -> Callable[[Any], Awaitable[list[Any]]]:
    """For :func:`opened`: a shared session and a waiting one, their sockets (customer, agent,
    waiting customer); what starting each answered added to ``created``."""

    async def make(server: Any) -> list[Any]:
        customer, agent, shared = await sharing_session(server)
        waiting, alone = await start_session(server)
        created.extend([shared, alone])
        return [customer, agent, waiting]

    return make


async def test_a_hand_over_cut_at_the_deadline_is_not_stored_when_the_lock_goes(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    add_user(data_dir, "alice", display_name="Alice")
    database = data_dir / "tandem.sqlite3"
    port = free_port()
    server = ServeProcess(data_dir, port, "--shutdown-timeout", str(STOP_TIMEOUT), env={})
    sockets = await opened(server, sessions)
    shell = sqlite3.connect(database, isolation_level=None)
    try:
        shell.execute("BEGIN EXCLUSIVE")
        server.process.send_signal(signal.SIGTERM)
        closed = asyncio.gather(*(closing(ws) for ws in sockets))
        deadline = time.monotonic() + STOP_TIMEOUT + EXIT_ROOM
        while log_of(server).count(CUT) < 3:  # every hand-over cut, the process still running
            assert server.process.poll() is None, log_of(server)
            assert time.monotonic() < deadline, log_of(server)
            await asyncio.sleep(0.05)
    finally:
        shell.close()  # the lock goes: the statement the storage thread waits on goes on
    try:
        assert await closed == [ENDED] * (len(sockets) - 1) + [LOBBY]
        assert await asyncio.to_thread(server.process.wait, STOP_TIMEOUT + EXIT_ROOM) == 0
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=10)
        server.log.close()
    # Nothing was stored handed over (resumable) of the sessions both sides were told ended.
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM suspended_sessions").fetchone() == (0,)
        # The exit cut the storage thread wherever it was: the file is whole.
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    # The next start ends them server_lost and writes what the stop kept, each once.
    again = ServeProcess(data_dir, port, env={})
    try:
        with sqlite3.connect(database) as db:
            ended = db.execute(
                "SELECT end_reason, count(*) FROM sessions GROUP BY end_reason"
            ).fetchall()
            actions = dict(
                db.execute(
                    "SELECT action, count(*) FROM audit WHERE action IN "
                    "('session_not_handed_over', 'session_suspended', 'server_stopped') "
                    "GROUP BY action"
                ).fetchall()
            )
    finally:
        again.stop()
    assert ended == [("server_lost", 3)], ended
    assert actions == {"session_not_handed_over": 3, "server_stopped": 1}, actions
    verified = tandem("audit", "verify", "--data-dir", str(data_dir))
    assert verified.returncode == 0, verified.stdout + verified.stderr


async def test_a_second_sigterm_during_a_frozen_stop_changes_nothing(tmp_path: Path) -> None:
    """An operator (or a supervisor such as systemd) sends SIGTERM again while the stop waits
    for the locked file: the stop goes on as one, keeps to its deadline, exits 0, and every
    session is told it ended, as with one SIGTERM."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    add_user(data_dir, "alice", display_name="Alice")
    server = ServeProcess(data_dir, free_port(), "--shutdown-timeout", str(STOP_TIMEOUT), env={})
    sockets = await opened(server, sessions)
    shell = sqlite3.connect(data_dir / "tandem.sqlite3", isolation_level=None)
    try:
        shell.execute("BEGIN EXCLUSIVE")
        stopping = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        closed = asyncio.gather(*(closing(ws) for ws in sockets))
        while "stopping: telling every socket" not in log_of(server):
            assert server.process.poll() is None, log_of(server)
            assert time.monotonic() - stopping < STOP_TIMEOUT, log_of(server)
            await asyncio.sleep(0.05)
        server.process.send_signal(signal.SIGTERM)
        try:
            assert await closed == [ENDED] * (len(sockets) - 1) + [LOBBY]
            exited = await asyncio.to_thread(server.process.wait, STOP_TIMEOUT + EXIT_ROOM)
        finally:
            if server.process.poll() is None:
                server.process.kill()
                server.process.wait(timeout=10)
            server.log.close()
    finally:
        shell.close()
    took = time.monotonic() - stopping
    log = Path(server.log.name).read_text(errors="replace")
    assert exited == 0, log
    assert took < STOP_TIMEOUT + EXIT_ROOM, (took, log)
    assert log.count(CUT) == 3, log


async def test_the_resume_token_of_a_cut_session_is_refused_at_the_next_start(
    tmp_path: Path,
) -> None:
    """A page that kept its resume token (it missed the ``ended``: its socket dropped as the
    stop closed it) comes back to the next process: refused with the one answer for a session
    that is not there (4404 "session not found"), never taken up as a session both sides were
    told ended, nor left waiting."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    add_user(data_dir, "alice", display_name="Alice")
    port = free_port()
    server = ServeProcess(data_dir, port, "--shutdown-timeout", str(STOP_TIMEOUT), env={})
    created: list[dict[str, Any]] = []

    sockets = await opened(server, shared_and_waiting(created))
    shell = sqlite3.connect(data_dir / "tandem.sqlite3", isolation_level=None)
    try:
        shell.execute("BEGIN EXCLUSIVE")
        stop = await stopped(server, sockets)
    finally:
        shell.close()
    assert stop.closed == [ENDED] * 3, stop.closed
    again = ServeProcess(data_dir, port, env={})
    try:
        for session in created:
            with pytest.raises(ConnectionClosed) as refused:
                await resume_on(again, session)
            assert refused.value.rcvd is not None
            assert (refused.value.rcvd.code, refused.value.rcvd.reason) == (
                4404,
                "session not found",
            )
    finally:
        again.stop()


async def test_a_frozen_stop_during_a_restart_leaves_the_handed_over_sessions_resumable(
    tmp_path: Path,
) -> None:
    """A restart whose next process is stopped in turn, the SQLite file locked, before the
    sessions handed over to it came back: it holds none of them, so its stop cuts nothing, and
    they are still taken up (their resume tokens accepted) by the process after it."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    add_user(data_dir, "alice", display_name="Alice")
    port = free_port()
    first = ServeProcess(data_dir, port, "--shutdown-timeout", str(STOP_TIMEOUT), env={})
    created: list[dict[str, Any]] = []

    sockets = await opened(first, shared_and_waiting(created))
    handed = await stopped(first, sockets)
    reconnect = (["restarting"], 1012, "server restarting: reconnect")
    assert handed.closed == [reconnect] * 3, handed.closed
    second = ServeProcess(data_dir, port, "--shutdown-timeout", str(STOP_TIMEOUT), env={})
    shell = sqlite3.connect(data_dir / "tandem.sqlite3", isolation_level=None)
    try:
        shell.execute("BEGIN EXCLUSIVE")
        quiet = await stopped(second, [])
    finally:
        shell.close()
    assert CUT not in quiet.log, quiet.log
    third = ServeProcess(data_dir, port, env={})
    try:
        for session in created:
            _page, answer = await resume_on(third, session)
            assert answer["type"] == "resumed", answer
    finally:
        third.stop()
