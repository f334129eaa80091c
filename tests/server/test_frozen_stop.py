"""A graceful stop (SIGTERM) keeps to ``--shutdown-timeout`` whatever storage does: with the
database frozen (PostgreSQL behind tests.server.db_proxy holding every byte), the hand-overs
of the live sessions cannot be stored, and the stop still ends in time, every socket closed
with a reason (nobody left in a session that looks live), what could not be saved logged and
kept in the audit backlog for the next process."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import signal
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.conftest import add_user, free_port
from tests.private_redis import PrivateRedis, running_private_redis
from tests.server.db_proxy import StoppableProxy, proxied_url
from tests.server.helpers import login_cookie, open_agent, sharing_session, start_session
from tests.server.test_crash_recovery import ServeProcess
from tests.server.test_frozen_database import recording_seed, seed_people
from tests.storage.conftest import PG_DSN, fresh_schema, pg_connect, tandem

T = TypeVar("T")


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    yield from running_private_redis()


STOP_TIMEOUT = 6.0
"""The servers' --shutdown-timeout here."""
EXIT_ROOM = 4.0
"""What the process may take past it: Python's own exit on a busy machine (far below what a
stop waiting on the frozen database took: a statement alone waits database_timeout_seconds,
30 s by default, and the sessions were handed over one after another)."""


async def closing(
    ws: ClientConnection, seconds: float = STOP_TIMEOUT + EXIT_ROOM
) -> tuple[list[str], int, str]:
    """The types of the control messages a socket gets until the server closes it (within
    ``seconds``); the close code and reason."""
    types: list[str] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                frame = await ws.recv()
                if isinstance(frame, str):
                    types.append(json.loads(frame)["type"])
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, f"dropped without a close frame after {types}"
        return types, exc.rcvd.code, exc.rcvd.reason


def serving(
    tmp_path: Path,
    url: str,
    port: int,
    *options: str,
    data: str = "data",
    redis: PrivateRedis | None = None,
    env: dict[str, str] | None = None,
) -> ServeProcess:
    """``tandem serve`` on the database ``url`` (data directory ``tmp_path / data``, the audit
    key seeded in ``tmp_path / "seed"``), fanning out through ``redis`` (a prefix of its own)
    if given, stopping within STOP_TIMEOUT; ``options`` and ``env`` added."""
    fan_out: tuple[str, ...] = ()
    environ = {"TANDEM_AUDIT_KEY": str(tmp_path / "seed" / "audit.key")}
    if redis is not None:
        fan_out = ("--redis-url", redis.url)
        environ["TANDEM_REDIS_PREFIX"] = f"tandem-test-{uuid.uuid4().hex}:"
    return ServeProcess(
        tmp_path / data,
        port,
        "--database-url",
        url,
        *fan_out,
        *options,
        "--shutdown-timeout",
        str(STOP_TIMEOUT),
        env={**environ, **(env or {})},
    )


def trail_verifies(data_dir: Path, url: str | None = None) -> None:
    """``tandem audit verify`` on ``data_dir`` passes; on the database ``url`` if given (with
    the audit key seeded beside ``data_dir``, as for :func:`serving`)."""
    env = None
    if url is not None:
        audit_key = data_dir.parent / "seed" / "audit.key"
        env = {"TANDEM_DATABASE_URL": url, "TANDEM_AUDIT_KEY": str(audit_key)}
    verified = tandem("audit", "verify", "--data-dir", str(data_dir), env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def reap(server: ServeProcess) -> None:
    """After a stop: ``server`` killed if it still runs, its log closed."""
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait(timeout=10)
    server.log.close()


async def opened(server: ServeProcess, make: Callable[[Any], Awaitable[T]]) -> T:
    """``make(server)``'s sockets; the server stopped if that fails."""
    try:
        return await make(server)
    except BaseException:
        server.stop()
        raise


async def sessions(server: Any) -> list[ClientConnection]:
    """Two shared sessions, a waiting customer and an agent in no session."""
    sockets: list[ClientConnection] = []
    for _ in range(2):
        customer, agent, _ = await sharing_session(server)
        sockets += [customer, agent]
    sockets.append((await start_session(server))[0])
    sockets.append(await open_agent(server, login_cookie(server)))
    return sockets


async def live_sockets(server: Any) -> list[ClientConnection]:
    """A recorded session, two shared ones, a waiting customer and an agent in no session."""
    from tests.server.test_recordings import recording

    customer, agent, _ = await recording(server)
    for i in range(8):  # frames the recording's writer holds for the database
        await customer.send(b"\x01frame-%03d" % i + b"." * 500)
    return [customer, agent, *await sessions(server)]


async def stopped(server: ServeProcess, sockets: list[ClientConnection]) -> Stopped:
    """SIGTERM to ``server``: how each of ``sockets`` was closed, how long the process took to
    exit (failing past STOP_TIMEOUT + EXIT_ROOM), and its log."""
    try:
        stopping = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        closed = await asyncio.gather(*(closing(ws) for ws in sockets))
        exited = await asyncio.to_thread(server.process.wait, STOP_TIMEOUT + EXIT_ROOM)
        took = time.monotonic() - stopping
        server.log.flush()
        log = Path(server.log.name).read_text(errors="replace")
    finally:
        reap(server)
    assert exited == 0, log
    assert took < STOP_TIMEOUT + EXIT_ROOM, (took, log)
    return Stopped(closed, log)


@dataclasses.dataclass
class Stopped:
    closed: list[tuple[list[str], int, str]]
    """Each socket's control messages (their types), close code and reason."""
    log: str


ENDED = (["restarting", "ended"], 1000, "session ended: server_shutdown")
"""How a socket of a session whose hand-over could not be stored is closed."""
LOBBY = (["restarting"], 1012, "server restarting")
"""How an agent's socket in no session is closed."""
RECONNECT = (["restarting"], 1012, "server restarting: reconnect")
"""How a socket of a session handed over to the next process is closed."""


async def audit_reaches(db: Any, action: str, count: int, what: str) -> None:
    """Wait until the audit trail holds ``count`` records of ``action`` (failing with ``what``
    after a minute)."""
    query = "SELECT count(*) FROM audit WHERE action = $1"
    deadline = time.monotonic() + 60
    while await db.fetchval(query, action) < count:
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def kept_records_written(db: Any, count: int) -> None:
    """Wait until the next start wrote the ``count`` ``session_not_handed_over`` records the
    stop kept in the audit backlog."""
    await audit_reaches(
        db, "session_not_handed_over", count, "the kept audit records were not written"
    )


async def test_a_stop_with_the_database_frozen_keeps_to_the_shutdown_timeout(
    pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        audit_key = recording_seed(tmp_path, url)
        serve = functools.partial(
            serving,
            tmp_path,
            url,
            free_port(),
            env={"TANDEM_AUDIT_KEY": str(audit_key), "TANDEM_RECORDING_FLUSH_BYTES": "1024"},
        )

        server = serve()
        sockets = await opened(server, live_sockets)
        with pg_proxy.frozen():
            stop = await stopped(server, sockets)
        # Told the session is over (its hand-over could not be stored), and why: nobody is
        # left in a session that looks live, nor told to resume one that was not stored.
        assert stop.closed == [ENDED] * (len(sockets) - 1) + [LOBBY], stop.closed
        assert stop.log.count("could not be handed over nor its end stored in time") == 4
        # Once the database answers, the next start on this host, port and data directory
        # ends what storage still held live, and writes what the stop kept for it.
        again = serve()
        db = await pg_connect(schema)
        try:
            await kept_records_written(db, 4)
            live = await db.fetchval("SELECT count(*) FROM sessions WHERE ended_at IS NULL")
            lost = "SELECT count(*) FROM sessions WHERE end_reason = 'server_lost'"
            assert live == 0 and await db.fetchval(lost) == 4
            # The stopped process's server_stopped, kept: the one since is still running.
            server_stopped = "SELECT count(*) FROM audit WHERE action = 'server_stopped'"
            assert await db.fetchval(server_stopped) == 1
            ended = await db.fetch("SELECT recording_id, end_reason FROM recordings")
            assert [row["end_reason"] for row in ended] == ["interrupted"]
            details = await db.fetch(
                "SELECT details FROM audit WHERE action = 'session_not_handed_over'"
            )
            named = [json.loads(row["details"]).get("recording") for row in details]
            assert sorted(named, key=str) == sorted(
                [ended[0]["recording_id"], None, None, None], key=str
            )
        finally:
            await db.close()
            again.stop()


async def test_a_stop_with_the_sqlite_database_locked_keeps_to_the_shutdown_timeout(
    tmp_path: Path,
) -> None:
    """The SQLite file is locked by another program (an operator's shell in a transaction):
    each write waits ``sqlite_busy_seconds`` (10 s) in the storage thread. The stop still ends
    in time, each session's sockets told it ended."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    add_user(data_dir, "alice", display_name="Alice")
    server = ServeProcess(data_dir, free_port(), "--shutdown-timeout", str(STOP_TIMEOUT), env={})
    sockets = await opened(server, sessions)
    shell = sqlite3.connect(data_dir / "tandem.sqlite3", isolation_level=None)
    try:
        shell.execute("BEGIN EXCLUSIVE")
        stop = await stopped(server, sockets)
    finally:
        shell.close()
    assert stop.closed == [ENDED] * (len(sockets) - 1) + [LOBBY], stop.closed
    assert stop.log.count("could not be handed over nor its end stored in time") == 3


async def test_a_stop_with_redis_frozen_keeps_to_the_shutdown_timeout(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    """Redis (the fan-out between processes) freezes: the sessions' hand-overs are stored (the
    database answers) and both sides told to reconnect, and the stop ends in time, though
    what it says through Redis (and the Redis connection's close) is never answered."""
    async with fresh_schema() as schema:
        url = f"{PG_DSN}?search_path={schema}"
        seed_people(tmp_path / "seed", url)
        server = serving(tmp_path, url, free_port(), redis=private_redis)
        sockets = await opened(server, sessions)
        private_redis.pause()
        try:
            stop = await stopped(server, sockets)
        finally:
            private_redis.resume()
        # The waiting customer's session is handed over too.
        assert stop.closed == [RECONNECT] * (len(sockets) - 1) + [LOBBY], stop.closed


async def test_a_stop_with_the_database_and_redis_frozen_together_keeps_to_the_timeout(
    pg_proxy: StoppableProxy, tmp_path: Path, private_redis: PrivateRedis
) -> None:
    """Both freeze at once (one host's network, say): nothing is stored and nothing said
    through Redis is answered; each session is still cut, both sides told it ended (their
    frames between this process's sockets never go through Redis), the stop keeps to its
    time, and the next start writes what it kept."""
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        seed_people(tmp_path / "seed", url)
        serve = functools.partial(serving, tmp_path, url, free_port())
        server = serve(redis=private_redis)
        sockets = await opened(server, sessions)
        private_redis.pause()
        try:
            with pg_proxy.frozen():
                stop = await stopped(server, sockets)
        finally:
            private_redis.resume()
        assert stop.closed == [ENDED] * (len(sockets) - 1) + [LOBBY], stop.closed
        assert stop.log.count("could not be handed over nor its end stored in time") == 3
        again = serve()
        db = await pg_connect(schema)
        try:
            await kept_records_written(db, 3)
            live = await db.fetchval("SELECT count(*) FROM sessions WHERE ended_at IS NULL")
            assert live == 0
            assert await db.fetchval("SELECT count(*) FROM suspended_sessions") == 0
            stopped_records = "SELECT count(*) FROM audit WHERE action = 'server_stopped'"
            assert await db.fetchval(stopped_records) == 1
        finally:
            await db.close()
            again.stop()
