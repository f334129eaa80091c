"""A database outage longer than ``process_lost_seconds`` (a PostgreSQL failover commonly takes
that long) that every process of a cluster sees: none of them could write its heartbeat, and
none of them died. Once the database answered, the first process to sweep took the others for
dead by their old heartbeats and ended every session they held live (``server_lost``, audited,
join codes deleted: a waiting customer's code no longer worked; supervisors stopped seeing
the sessions) while they went on. Now a process judges another's silence only over a time in
which it could write its own heartbeats, and retries a failed heartbeat each interval; a
process that really died is still taken for dead (test_crash_recovery.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RunningServer, ServerFactory
from tests.server.db_proxy import StoppableProxy, proxied_url
from tests.server.helpers import (
    login_cookie,
    open_agent,
    recv_json,
    send,
    sharing_session,
    start_session,
)
from tests.server.test_organisations import api
from tests.server.test_revocation import relays
from tests.server.test_revocation_faults import schema_of
from tests.server.test_scale_out import Cluster, start_cluster
from tests.server.test_storage_faults import failures_of, runs_of, wait_for
from tests.storage.conftest import pg_connect

LOST = 3.0
"""The servers' process_lost_seconds: the outage lasts longer."""
FAST = {"heartbeat_seconds": 0.5, "process_lost_seconds": LOST}


@pytest.fixture
def cluster(
    requires_redis: None, server_factory: ServerFactory, tmp_path: Path
) -> Iterator[Cluster]:
    with start_cluster(server_factory, tmp_path) as start:
        yield start


def failing(server: RunningServer, task: str) -> bool:
    return bool(server.server.config.app.state.background.health[task].failing_since_runs)


async def test_an_outage_of_the_database_for_all_processes_ends_none_of_their_sessions(
    cluster: Cluster, pg_proxy: StoppableProxy
) -> None:
    first = cluster()
    schema = schema_of(first)
    first.stop()  # its row goes with it: only the two below share the database
    url = proxied_url(pg_proxy, schema)
    a = cluster(database_url=url, **FAST)
    b = cluster(database_url=url, **FAST)
    customer, agent, created = await sharing_session(b)
    waiting, waiting_created = await start_session(a)
    assert await relays(customer, agent, b"\x01before")
    pg_proxy.down()
    down_at = time.monotonic()
    beats = {s: failures_of(s, "heartbeat") for s in (a, b)}
    await wait_for(
        lambda: (
            time.monotonic() - down_at > LOST + 1
            and all(failures_of(s, "heartbeat") > beats[s] for s in (a, b))
        ),
        timeout=30,
    )
    pg_proxy.up()
    # Both beat again, and each sweeps a few times over more than the window.
    up_at = time.monotonic()
    sweeps = {s: runs_of(s, "lost_processes") for s in (a, b)}
    await wait_for(
        lambda: (
            not failing(a, "heartbeat")
            and not failing(b, "heartbeat")
            and time.monotonic() - up_at > LOST + 1
            and all(runs_of(s, "lost_processes") >= sweeps[s] + 3 for s in (a, b))
        ),
        timeout=60,
    )
    db = await pg_connect(schema)
    try:
        assert await db.fetch("SELECT end_reason FROM sessions WHERE ended_at IS NOT NULL") == []
        assert await db.fetchval("SELECT count(*) FROM audit WHERE action = 'session_ended'") == 0
    finally:
        await db.close()
    assert await relays(customer, agent, b"\x01after")
    with api(a, "sam") as sam:  # a supervisor on either process sees both
        listed = {s["session_id"] for s in sam.get("/api/sessions").json()}
    assert listed == {created["session_id"], waiting_created["session_id"]}
    # The waiting customer's code still joins, from the other process.
    alice = await open_agent(b, login_cookie(b))
    await send(alice, type="join", code=waiting_created["code"])
    assert (await recv_json(alice, timeout=10))["type"] == "joined"
    assert (await recv_json(waiting, timeout=10))["type"] == "agent_joined"


async def test_a_process_taken_for_dead_ends_what_the_others_closed_and_tells_its_people(
    cluster: Cluster, pg_proxy: StoppableProxy
) -> None:
    """The database is away for process b alone, longer than ``process_lost_seconds``: a rightly
    takes it for dead and closes its sessions in storage (``server_lost``, recorded, join codes
    deleted). When b reaches the database again it learns so (its heartbeat row is gone). Its
    people were left in sessions that had ended everywhere else: a waiting customer showed a
    code that joined no more, for as long as the page stayed. Now b ends them too, each side
    told ``server_shutdown``, and writes nothing again (one ``session_ended`` each)."""
    a = cluster(**FAST)
    schema = schema_of(a)
    b = cluster(database_url=proxied_url(pg_proxy, schema), **FAST)
    waiting, created = await start_session(b)
    customer, agent, shared = await sharing_session(b)
    assert await relays(customer, agent, b"\x01before")
    pg_proxy.down()
    db = await pg_connect(schema)
    try:
        ended = "SELECT count(*) FROM sessions WHERE ended_at IS NOT NULL"
        deadline = time.monotonic() + 30
        while await db.fetchval(ended) < 2:  # a's sweep
            assert time.monotonic() < deadline, "a never took b for dead"
            await asyncio.sleep(0.1)
        pg_proxy.up()
        gone = {"v": 1, "type": "ended", "reason": "server_shutdown"}
        assert await recv_json(waiting, timeout=30) == gone
        assert await recv_json(customer, timeout=10) == gone
        assert (await recv_json(agent, timeout=10))["type"] == "ended"
        for session in (created, shared):
            assert await db.fetch(
                "SELECT end_reason FROM sessions WHERE session_id = $1", session["session_id"]
            ) == [("server_lost",)]
            assert (
                await db.fetchval(
                    "SELECT count(*) FROM audit WHERE action = 'session_ended' AND subject = $1",
                    session["session_id"],
                )
                == 1
            )
    finally:
        await db.close()
    await start_session(b)  # b serves again
