"""Storage faults degrade, never kill (issue 13, faults 1, 3 and 9): a real SQLite write lock held
by another connection (an operator's `sqlite3` shell, a VACUUM) makes Tandem's writes fail after
the busy timeout (``sqlite_busy_seconds``: 10 s by default, :data:`BUSY` here); the deadline timer
keeps going, a failed recording flush ends the recording as `unavailable` while sharing goes on,
HTTP answers 503 problem JSON, and everything works again once the lock is gone, without a
restart."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from tests.conftest import AGENT_PASSWORD, RunningServer, ServerFactory
from tests.server.helpers import closed_with, recv_json, send, start_session
from tests.server.test_admin_api import audit_actions
from tests.server.test_recordings import recording, recordings_of, with_recording_key

METRICS_TOKEN = "metrics-token-for-the-tests"
BUSY = {"sqlite_busy_seconds": 1.0}
"""The servers' SQLite busy timeout: what these tests check happens after it, not its length
(tests/storage/test_sqlite.py checks the setting), so each waits it out in 1 s, not 10."""
LOCK_WAIT = 30.0
"""Conditions that need the busy timeout to pass wait up to this (a busy machine)."""


@contextlib.contextmanager
def write_lock(server: RunningServer) -> Iterator[sqlite3.Connection]:
    """Hold the database's write lock from another connection, as an operator's shell would."""
    other = sqlite3.connect(server.settings.database_path, isolation_level=None, timeout=10)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield other
        other.execute("ROLLBACK")
    finally:
        other.close()


def stored(server: RunningServer, query: str, *params: object) -> list[Any]:
    with sqlite3.connect(server.settings.database_path, timeout=10) as db:
        return db.execute(query, params).fetchall()


async def wait_for(condition: Callable[[], bool], timeout: float = LOCK_WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def failures_of(server: RunningServer, task: str) -> int:
    return int(server.server.config.app.state.background.health[task].failures)


def runs_of(server: RunningServer, task: str) -> int:
    return int(server.server.config.app.state.background.health[task].runs)


def metric(server: RunningServer, name: str) -> float:
    """The sum of a metric's samples whose line starts with ``name``."""
    text = httpx.get(
        f"{server.base}/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}
    ).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


async def test_the_deadline_timer_survives_a_locked_database_and_codes_expire_after(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(metrics_token=METRICS_TOKEN, **BUSY)
    customer, created = await start_session(server)
    # The first upkeep (a second after the start) runs every purge, all due at once (in a task
    # of its own: the deadlines do not wait for it). With the clock held still, nothing after it
    # writes; the expiry's write is the deadlines' failure below.
    await wait_for(lambda: runs_of(server, "upkeep") >= 1)
    with write_lock(server):
        server.clock.advance(server.settings.code_ttl_seconds + 1)
        # The customer is told at once; storage is written once it answers again.
        assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "code_expired"}
        await wait_for(lambda: failures_of(server, "deadlines") >= 1)
        assert metric(server, 'tandem_background_failures_total{task="deadlines"}') >= 1
        assert metric(server, 'tandem_background_failing{task="deadlines"}') == 1
        # And it stays failing while the lock is held: the writes that failed are still not
        # written, though the timer's own runs (their work apart) meet nothing new (it read 0
        # between two retries, so an operator's scrape mostly saw no outage at all).
        seen = failures_of(server, "deadlines")
        await wait_for(lambda: failures_of(server, "deadlines") >= seen + 3)
        for _ in range(5):
            assert metric(server, 'tandem_background_failing{task="deadlines"}') == 1
            await asyncio.sleep(0.05)
    # The lock is gone: the timer writes the first session's end and keeps applying deadlines.
    await wait_for(
        lambda: (
            stored(
                server,
                "SELECT end_reason FROM sessions WHERE session_id = ?",
                created["session_id"],
            )
            == [("code_expired",)]
        )
    )
    assert stored(
        server, "SELECT count(*) FROM join_codes WHERE session_id = ?", created["session_id"]
    ) == [(0,)]
    later, _ = await start_session(server)
    server.clock.advance(server.settings.code_ttl_seconds + 1)
    assert await recv_json(later, timeout=10) == {
        "v": 1,
        "type": "ended",
        "reason": "code_expired",
    }
    await wait_for(lambda: metric(server, 'tandem_background_failing{task="deadlines"}') == 0)
    # And the graceful stop still writes its final (anchored) record.
    server.stop()
    assert stored(server, "SELECT action FROM audit ORDER BY seq DESC LIMIT 1") == [
        ("server_stopped",)
    ]
    assert stored(
        server, "SELECT count(*) FROM audit_anchors WHERE seq = (SELECT max(seq) FROM audit)"
    ) == [(1,)]


async def test_a_failed_recording_flush_ends_the_recording_and_sharing_goes_on(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(seed=with_recording_key, recording_flush_bytes=1024, **BUSY)
    customer, alice, created = await recording(server)
    await customer.send(b"\x01kept")
    assert await alice.recv() == b"\x01kept"
    [running] = recordings_of(server)
    with write_lock(server):
        big = b"\x01" + b"x" * 2048  # past the flush size: written at once
        await customer.send(big)
        assert await alice.recv() == big  # relayed before it is kept
        # Both sides are told the recording stopped ...
        unavailable = {"v": 1, "type": "recording", "on": False, "reason": "unavailable"}
        assert await recv_json(alice, timeout=LOCK_WAIT) == unavailable
        assert await recv_json(customer, timeout=5) == unavailable
        # ... and sharing goes on, still during the fault.
        await customer.send(b"\x01still-sharing")
        assert await alice.recv() == b"\x01still-sharing"
    await wait_for(
        lambda: (
            stored(
                server,
                "SELECT end_reason FROM recordings WHERE recording_id = ?",
                running["recording_id"],
            )
            == [("unavailable",)]
        )
    )
    assert "recording_failed" in audit_actions(server)
    await send(customer, type="stop")
    await closed_with(customer)
    assert created["session_id"]


async def test_sign_in_answers_503_problem_json_while_the_database_is_locked_then_recovers(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(**BUSY)
    credentials = {"username": "alice", "password": AGENT_PASSWORD}
    with write_lock(server):
        refused = httpx.post(f"{server.base}/api/login", json=credentials, timeout=LOCK_WAIT)
    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json() == {
        "title": "Service unavailable",
        "status": 503,
        "detail": "The database is not answering. Try again in a moment.",
    }
    assert "Traceback" not in refused.text and "sqlite" not in refused.text.lower()
    assert refused.headers["x-content-type-options"] == "nosniff"  # still hardened
    # No restart: the next request is served.
    assert httpx.post(f"{server.base}/api/login", json=credentials).status_code == 200


async def answer_of_the_middleware_to(error: Exception) -> tuple[int, dict[str, str]]:
    """The status and headers :class:`StorageUnavailable` answers an HTTP request with when the
    app behind it raises ``error``."""
    from tandem.server.unavailable import StorageUnavailable

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise error

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/api/x", "headers": []}
    await StorageUnavailable(app, retry_after=3.0)(scope, receive, send)
    start = sent[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers


async def test_asyncpgs_errors_still_answer_503_though_asyncpg_is_imported_only_on_postgres() -> (
    None
):
    # The middleware no longer imports asyncpg (a SQLite server never loads it); on PostgreSQL
    # the server's and driver's errors still mean "the database is away".
    import asyncpg

    for error in (
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        sqlite3.OperationalError("database is locked"),
    ):
        status, headers = await answer_of_the_middleware_to(error)
        assert (status, headers.get("retry-after")) == (503, "3"), error
    status, headers = await answer_of_the_middleware_to(ValueError("a bug"))
    assert status == 500 and "retry-after" not in headers
