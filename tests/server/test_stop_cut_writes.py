"""What a graceful stop past its deadline leaves behind on SQLite (review of the stop's one
deadline, docs/security.md): the storage thread is a daemon that goes on with a statement
waiting for a locked file after the stop gave up on it. A hand-over cut (both sides told the
session ended, ``session_not_handed_over`` kept in the audit backlog) must not be stored after
all when the lock goes before the process exits: it was resumable then, with records that
contradict each other. Real ``tandem serve``, SIGTERM, the file locked by another program."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
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
    RECONNECT,
    STOP_TIMEOUT,
    closing,
    opened,
    reap,
    sessions,
    stopped,
    trail_verifies,
)

CUT = "could not be handed over nor its end stored in time"


def log_of(server: ServeProcess) -> str:
    server.log.flush()
    return Path(server.log.name).read_text(errors="replace")


async def wait_for_log(
    server: ServeProcess, text: str, count: int = 1, seconds: float = STOP_TIMEOUT + EXIT_ROOM
) -> None:
    """Wait until ``server``'s log holds ``text`` ``count`` times, the process still running
    (failing after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while log_of(server).count(text) < count:
        assert server.process.poll() is None, log_of(server)
        assert time.monotonic() < deadline, log_of(server)
        await asyncio.sleep(0.05)


def sqlite_server(tmp_path: Path, shutdown_timeout: float) -> tuple[Path, int, ServeProcess]:
    """``tandem serve`` on SQLite (one user, alice) with ``--shutdown-timeout``: its data
    directory, port and process."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    add_user(data_dir, "alice", display_name="Alice")
    port = free_port()
    server = ServeProcess(data_dir, port, "--shutdown-timeout", str(shutdown_timeout), env={})
    return data_dir, port, server


@contextlib.contextmanager
def locked(data_dir: Path) -> Iterator[None]:
    """The SQLite file of ``data_dir`` locked by another program (an operator's shell in a
    transaction) for the block: every write waits for it."""
    shell = sqlite3.connect(data_dir / "tandem.sqlite3", isolation_level=None)
    try:
        shell.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        shell.close()


def kept_actions(data_dir: Path, port: int) -> tuple[list[tuple[str, int]], dict[str, int]]:
    """What the next start on ``port`` found: the sessions' ends (it ends those the stopped
    process still held server_lost), and the stop's audit records (written by that start from
    the backlog)."""
    again = ServeProcess(data_dir, port, env={})
    try:
        with sqlite3.connect(data_dir / "tandem.sqlite3") as db:
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
    return ended, actions


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
    data_dir, port, server = sqlite_server(tmp_path, STOP_TIMEOUT)
    database = data_dir / "tandem.sqlite3"
    sockets = await opened(server, sessions)
    # The lock goes once every hand-over is cut: the statement the storage thread waits on
    # goes on.
    with locked(data_dir):
        server.process.send_signal(signal.SIGTERM)
        closed = asyncio.gather(*(closing(ws) for ws in sockets))
        await wait_for_log(server, CUT, 3)  # every hand-over cut, the process still running
    try:
        assert await closed == [ENDED] * (len(sockets) - 1) + [LOBBY]
        assert await asyncio.to_thread(server.process.wait, STOP_TIMEOUT + EXIT_ROOM) == 0
    finally:
        reap(server)
    # Nothing was stored handed over (resumable) of the sessions both sides were told ended.
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM suspended_sessions").fetchone() == (0,)
        # The exit cut the storage thread wherever it was: the file is whole.
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    # The next start ends them server_lost and writes what the stop kept, each once.
    ended, actions = kept_actions(data_dir, port)
    assert ended == [("server_lost", 3)], ended
    assert actions == {"session_not_handed_over": 3, "server_stopped": 1}, actions
    trail_verifies(data_dir)


async def test_a_second_sigterm_during_a_frozen_stop_changes_nothing(tmp_path: Path) -> None:
    """An operator (or a supervisor such as systemd) sends SIGTERM again while the stop waits
    for the locked file: the stop goes on as one, keeps to its deadline, exits 0, and every
    session is told it ended, as with one SIGTERM."""
    data_dir, _port, server = sqlite_server(tmp_path, STOP_TIMEOUT)
    sockets = await opened(server, sessions)
    with locked(data_dir):
        stopping = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        closed = asyncio.gather(*(closing(ws) for ws in sockets))
        await wait_for_log(server, "stopping: telling every socket", seconds=STOP_TIMEOUT)
        server.process.send_signal(signal.SIGTERM)
        try:
            assert await closed == [ENDED] * (len(sockets) - 1) + [LOBBY]
            exited = await asyncio.to_thread(server.process.wait, STOP_TIMEOUT + EXIT_ROOM)
        finally:
            reap(server)
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
    data_dir, port, server = sqlite_server(tmp_path, STOP_TIMEOUT)
    created: list[dict[str, Any]] = []

    sockets = await opened(server, shared_and_waiting(created))
    with locked(data_dir):
        stop = await stopped(server, sockets)
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
    data_dir, port, first = sqlite_server(tmp_path, STOP_TIMEOUT)
    created: list[dict[str, Any]] = []

    sockets = await opened(first, shared_and_waiting(created))
    handed = await stopped(first, sockets)
    assert handed.closed == [RECONNECT] * 3, handed.closed
    second = ServeProcess(data_dir, port, "--shutdown-timeout", str(STOP_TIMEOUT), env={})
    with locked(data_dir):
        quiet = await stopped(second, [])
    assert CUT not in quiet.log, quiet.log
    third = ServeProcess(data_dir, port, env={})
    try:
        for session in created:
            _page, answer = await resume_on(third, session)
            assert answer["type"] == "resumed", answer
    finally:
        third.stop()
