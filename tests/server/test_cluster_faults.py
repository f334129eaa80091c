"""Faults of a cluster (issue 13, faults 4 and 5), with real servers on a real PostgreSQL and a
Redis of the test's own (tests/private_redis.py: stopped, frozen and started again; the shared
Redis is never touched).

* Redis restarts or freezes: a session whose sockets are on one process never notices (its
  frames never go through Redis); one spanning two processes pauses and resumes with nothing
  lost; past ``tunnel_outage_seconds`` its sockets are told the truth (1013 "server link lost").
* A process is killed (SIGKILL): the other side of every tunnel is told within
  ``tunnel_lost_seconds`` (plus a heartbeat): an agent whose process died is away for the
  customer (its console may rejoin within ``agent_resume_seconds``, then the session ends); a
  session whose process died closes the agent's socket 4404.
* A process is stopped (SIGTERM): sockets it carries to another's session are told
  ``restarting`` (1012), and so are tunnelled sockets of the sessions it holds."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tandem.config import Settings
from tandem.directory import offline
from tests.conftest import RunningServer, ServerFactory, free_port
from tests.private_redis import PrivateRedis, running_private_redis
from tests.server.helpers import open_customer, recv_json, resume_on, send, start_session
from tests.server.test_crash_recovery import ServeProcess
from tests.server.test_scale_out import add_people, join_on, run_in_thread, sharing_on
from tests.storage.conftest import PG_DSN, create_migrated_schema, pg_connect

FAST = {"tunnel_heartbeat_seconds": 0.25, "tunnel_lost_seconds": 2.0}


class Cluster:
    """Servers sharing a fresh PostgreSQL schema, keys and a Redis (URL given)."""

    def __init__(self, factory: ServerFactory, tmp_path: Path, redis_url: str) -> None:
        self.factory = factory
        self.tmp_path = tmp_path
        self.schema = f"t_{uuid.uuid4().hex[:12]}"
        self.shared: dict[str, Any] = {
            "database_url": f"{PG_DSN}?search_path={self.schema}",
            "redis_url": redis_url,
            "redis_prefix": f"tandem-test-{uuid.uuid4().hex}:",
            "audit_key_file": tmp_path / "keys" / "audit.key",
        }
        self.started: list[RunningServer] = []

    def setup(self) -> None:
        (self.tmp_path / "keys").mkdir()
        # Already migrated (as test_scale_out's clusters): the migrations have tests of their own.
        run_in_thread(lambda: self._with_admin(create_migrated_schema, self.schema))

        async def seed() -> None:
            settings = Settings.load(environ={}, data_dir=self.tmp_path / "seed", **self.shared)
            async with offline(settings) as directory:
                await add_people(directory)

        run_in_thread(seed)

    async def _sql(self, statement: str) -> None:
        await self._with_admin(lambda db, sql: db.execute(sql), statement)

    @staticmethod
    async def _with_admin(work: Callable[..., Awaitable[Any]], *args: Any) -> None:
        db = await pg_connect()
        try:
            await work(db, *args)
        finally:
            await db.close()

    def start(self, **overrides: Any) -> RunningServer:
        self.started.append(self.factory(**self.shared, **overrides))
        return self.started[-1]

    def process(self, serve: Callable[..., ServeProcess], **env: str) -> ServeProcess:
        """A `tandem serve` of this cluster in a process of its own (to kill or stop)."""
        return serve(
            self.tmp_path / f"process{uuid.uuid4().hex[:6]}",
            free_port(),
            "--database-url",
            self.shared["database_url"],
            "--redis-url",
            self.shared["redis_url"],
            TANDEM_REDIS_PREFIX=self.shared["redis_prefix"],
            TANDEM_AUDIT_KEY=str(self.shared["audit_key_file"]),
            **env,
        )

    def teardown(self) -> None:
        for running in self.started:
            running.stop()
        run_in_thread(lambda: self._sql(f'DROP SCHEMA "{self.schema}" CASCADE'))


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    yield from running_private_redis()


@pytest.fixture
def serve_processes() -> Iterator[Callable[..., ServeProcess]]:
    started: list[ServeProcess] = []

    def start(data_dir: Path, port: int, *options: str, **env: str) -> ServeProcess:
        started.append(ServeProcess(data_dir, port, *options, env=env))
        return started[-1]

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def cluster(
    server_factory: ServerFactory,
    tmp_path: Path,
    private_redis: PrivateRedis,
) -> Iterator[Cluster]:
    running = Cluster(server_factory, tmp_path, private_redis.url)
    running.setup()
    yield running
    running.teardown()


async def exchange(customer: ClientConnection, agent: ClientConnection, tag: bytes) -> None:
    """Page content one way, a command the other, each arriving whole."""
    await customer.send(b"\x01" + tag)
    assert await asyncio.wait_for(agent.recv(), 10) == b"\x01" + tag
    await agent.send(b"\x03" + tag)
    assert await asyncio.wait_for(customer.recv(), 10) == b"\x03" + tag


async def closed(ws: ClientConnection, timeout: float) -> tuple[list[dict[str, Any]], int, str]:
    """The control messages until the server closes, and the close's code and reason."""
    messages: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                frame = await ws.recv()
                if isinstance(frame, str):
                    messages.append(json.loads(frame))
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, f"dropped without a close frame after {messages}"
        return messages, exc.rcvd.code, exc.rcvd.reason
    raise AssertionError("unreachable")


LINK_DOWN = {"v": 1, "type": "link", "state": "reconnecting"}
LINK_BACK = {"v": 1, "type": "link", "state": "restored"}


async def frames_and_notices(
    ws: ClientConnection, count: int
) -> tuple[list[bytes], list[dict[str, Any]]]:
    """``count`` binary frames, and the control messages until the link is back."""
    frames: list[bytes] = []
    notices: list[dict[str, Any]] = []
    while len(frames) < count or LINK_BACK not in notices:
        frame = await asyncio.wait_for(ws.recv(), 15)
        if isinstance(frame, bytes):
            frames.append(frame)
        else:
            notices.append(json.loads(frame))
    return frames, notices


async def wait_until(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


# Fault 4: Redis restarts or freezes


async def test_a_session_on_one_process_goes_on_while_redis_restarts(
    cluster: Cluster,
    private_redis: PrivateRedis,
) -> None:
    a = cluster.start()
    customer, agent, _ = await sharing_on(a)
    await exchange(customer, agent, b"before")
    private_redis.stop()
    stopped = time.monotonic()
    for i in range(20):  # frames keep flowing, no round trip through the Redis that is gone
        await exchange(customer, agent, b"during-%d" % i)
    private_redis.start()
    await exchange(customer, agent, b"after")
    await send(agent, type="leave")
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "agent_left"}
    assert time.monotonic() - stopped < 30


async def test_a_session_across_processes_survives_a_redis_restart_losing_nothing(
    cluster: Cluster,
    private_redis: PrivateRedis,
) -> None:
    a, b = cluster.start(**FAST), cluster.start(**FAST)
    customer, created = await start_session(a)
    agent = await join_on(b, created["code"])  # tunnelled to A
    assert (await recv_json(agent))["type"] == "joined"
    assert (await recv_json(customer))["type"] == "agent_joined"
    await send(customer, type="consent", granted=True)
    assert (await recv_json(agent))["type"] == "consent"
    await exchange(customer, agent, b"before")

    private_redis.stop()
    outage = time.monotonic()
    # Sent while Redis is away (some while the servers still think it is there): held, resent.
    sent = [b"\x01during-%d" % i for i in range(30)]
    for frame in sent:
        await customer.send(frame)
        await asyncio.sleep(0.1)
    await agent.send(b"\x03command-during")
    private_redis.start()  # about 3 s later, a Redis restart (empty: no channels, nothing kept)
    received, told = await frames_and_notices(agent, len(sent))
    assert received == sent  # every frame, once, in order
    # Both sides were told the link was down, then back (the customer's by its own process).
    assert told == [LINK_DOWN, LINK_BACK], told
    [command], told = await frames_and_notices(customer, 1)
    assert command == b"\x03command-during"
    assert told == [LINK_DOWN, LINK_BACK], told
    survived = time.monotonic() - outage
    await exchange(customer, agent, b"after")
    await send(agent, type="leave")
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "agent_left"}
    assert survived < 15


async def test_a_session_across_processes_survives_a_frozen_redis(
    cluster: Cluster,
    private_redis: PrivateRedis,
) -> None:
    a, b = cluster.start(**FAST), cluster.start(**FAST)
    customer, created = await start_session(a)
    agent = await join_on(b, created["code"])
    assert (await recv_json(agent))["type"] == "joined"
    assert (await recv_json(customer))["type"] == "agent_joined"
    await send(customer, type="consent", granted=True)
    assert (await recv_json(agent))["type"] == "consent"
    private_redis.pause()
    sent = [b"\x01frozen-%d" % i for i in range(40)]  # 4 s frozen: twice tunnel_lost_seconds
    for frame in sent:
        await customer.send(frame)
        await asyncio.sleep(0.1)
    private_redis.resume()
    received, told = await frames_and_notices(agent, len(sent))
    assert received == sent
    assert told == [LINK_DOWN, LINK_BACK], told
    assert (await frames_and_notices(customer, 0))[1] == [LINK_DOWN, LINK_BACK]
    await exchange(customer, agent, b"after")


async def test_redis_away_past_the_outage_limit_tells_both_sides_the_truth(
    cluster: Cluster,
    private_redis: PrivateRedis,
) -> None:
    """Not "too slow": the agent's tunnelled socket closes 1013 "server link lost" (it may
    reconnect); at the owner the agent is away, so the customer hears so, and that the session
    ended once ``agent_resume_seconds`` passed without a rejoin."""
    limits = {**FAST, "tunnel_outage_seconds": 2.0, "agent_resume_seconds": 1.0}
    a, b = cluster.start(**limits), cluster.start(**limits)
    customer, created = await start_session(a)
    agent = await join_on(b, created["code"])
    assert (await recv_json(agent))["type"] == "joined"
    assert (await recv_json(customer))["type"] == "agent_joined"
    # Timed from before the stop: the servers see their connections close while it is under way
    # (the SIGTERM's, before the process is reaped), and count the outage from then.
    outage = time.monotonic()
    private_redis.stop()
    messages, code, reason = await closed(agent, timeout=15)
    told = time.monotonic() - outage
    assert messages == [LINK_DOWN]  # first "reconnecting", then the truth
    assert (code, reason) == (1013, "server link lost: reconnect")
    assert 2.0 <= told < 8, told
    messages, code, _ = await closed(customer, timeout=15)
    assert messages[0] == LINK_DOWN
    assert messages[-2:] == [
        {"v": 1, "type": "peer", "connected": False},  # away: its console may rejoin
        {"v": 1, "type": "ended", "reason": "agent_lost"},  # it did not, within the window
    ], messages
    assert "too slow" not in json.dumps(messages)


# Fault 5: a process dies; and a process stops (SIGTERM)


async def across(owner: Any, edge: Any) -> tuple[ClientConnection, ClientConnection]:
    """A customer on ``owner`` and an agent on ``edge`` (tunnelled), sharing."""
    customer, created = await start_session(owner)
    agent = await join_on(edge, created["code"])
    assert (await recv_json(agent))["type"] == "joined"
    assert (await recv_json(customer))["type"] == "agent_joined"
    await send(customer, type="consent", granted=True)
    assert (await recv_json(agent))["type"] == "consent"
    await exchange(customer, agent, b"before")
    return customer, agent


async def test_a_killed_process_is_noticed_on_the_other_side_of_every_tunnel(
    cluster: Cluster,
    serve_processes: Callable[..., ServeProcess],
) -> None:
    """With the default heartbeat (1 s) and ``tunnel_lost_seconds`` (5 s). Session 1 is held
    by the doomed process, its agent on the survivor; session 2 is held by the survivor, its
    agent on the doomed process. After SIGKILL, session 1's agent is told its session's server
    stopped (4404), and session 2's customer that the agent is away (its console may rejoin on
    another process), then, the window (``agent_resume_seconds``) passed, that the session
    ended. Session 3 is held by the survivor, its customer's next page
    on the doomed process: its agent is told the customer is gone (who may still resume)."""
    survivor = cluster.start(agent_resume_seconds=2.0)
    doomed = cluster.process(serve_processes)
    _, agent1 = await across(doomed, survivor)
    customer2, _ = await across(survivor, doomed)
    customer3, created3 = await start_session(survivor)
    agent3 = await join_on(survivor, created3["code"])
    assert (await recv_json(agent3))["type"] == "joined"
    assert (await recv_json(customer3))["type"] == "agent_joined"
    await customer3.close()
    assert await recv_json(agent3) == {"v": 1, "type": "peer", "connected": False}
    _, resumed = await resume_on(doomed, created3)  # type: ignore[arg-type]
    assert resumed["type"] == "resumed"
    assert await recv_json(agent3) == {"v": 1, "type": "peer", "connected": True}
    doomed.kill()
    killed = time.monotonic()
    (_, code, reason), away, gone = await asyncio.gather(
        closed(agent1, timeout=20), recv_json(customer2, timeout=20), recv_json(agent3, timeout=20)
    )
    noticed = time.monotonic() - killed
    assert (code, reason) == (4404, "session ended: its server stopped answering")
    assert away == {"v": 1, "type": "peer", "connected": False}  # its console may rejoin
    assert gone == {"v": 1, "type": "peer", "connected": False}
    settings = survivor.settings
    assert noticed < settings.tunnel_lost_seconds + 2 * settings.tunnel_heartbeat_seconds + 2
    print(f"a killed process was noticed on both sides within {noticed:.1f} s")
    messages, _, _ = await closed(customer2, timeout=settings.agent_resume_seconds + 5)
    assert messages[-1:] == [{"v": 1, "type": "ended", "reason": "agent_lost"}], messages


async def test_a_stopping_process_tells_the_tunnelled_sockets_restarting(
    cluster: Cluster,
    serve_processes: Callable[..., ServeProcess],
) -> None:
    """SIGTERM to a process holding session 1 (its agent tunnelled from the survivor) and
    carrying session 2's agent (held by the survivor): both agents hear ``restarting`` and
    their sockets close 1012; session 1 is handed over (``reconnect``: it resumes on another
    process, tests/server/test_restart_handover.py), session 2 goes on at the survivor."""
    survivor = cluster.start()
    stopping = cluster.process(serve_processes)
    _, agent1 = await across(stopping, survivor)
    _, agent2 = await across(survivor, stopping)
    stopping.process.send_signal(signal.SIGTERM)
    (messages1, code1, _), (messages2, code2, _) = await asyncio.gather(
        closed(agent1, timeout=20), closed(agent2, timeout=20)
    )
    assert [m["type"] for m in messages1][-1:] == ["restarting"], messages1
    assert messages1[-1]["reason"] == "reconnect" and code1 == 1012
    assert [m["type"] for m in messages2] == ["restarting"] and code2 == 1012, messages2
    assert stopping.process.wait(timeout=20) == 0


# Limits across processes


async def refused_with(server: Any) -> int:
    customer = await open_customer(server)
    await send(customer, type="create")
    _, code, _ = await closed(customer, timeout=10)
    return code


async def test_an_organisations_quota_holds_across_processes(cluster: Cluster) -> None:
    """Spreading customers over the processes does not multiply an organisation's sessions
    (``max_sessions_per_org``); a session ending frees a place on every process."""
    a, b = cluster.start(max_sessions_per_org=3), cluster.start(max_sessions_per_org=3)
    held = [await start_session(a), await start_session(b), await start_session(a)]
    assert await refused_with(b) == 4503  # 1 here, 2 on A: the organisation's 3 are in use
    assert await refused_with(a) == 4503
    await send(held[0][0], type="stop")  # one of A's ends: a place is free on B too
    await created_once_free(b)


async def test_a_sites_waiting_limit_holds_across_processes(cluster: Cluster) -> None:
    a, b = cluster.start(max_waiting_per_site=2), cluster.start(max_waiting_per_site=2)
    await start_session(a)
    await start_session(b)
    assert await refused_with(a) == 4429
    assert await refused_with(b) == 4429


async def created_once_free(server: Any) -> None:
    """A new session on ``server``, once an ended one stopped counting (its end is stored)."""
    deadline = time.monotonic() + 10
    while True:
        customer = await open_customer(server)
        await send(customer, type="create")
        try:
            reply = json.loads(await asyncio.wait_for(customer.recv(), 10))
        except ConnectionClosed as exc:
            assert exc.rcvd is not None and exc.rcvd.code == 4503
            assert time.monotonic() < deadline, "still refused"
            await asyncio.sleep(0.1)
            continue
        assert reply["type"] == "created"
        return


async def test_a_redis_frozen_past_the_outage_limit_tells_both_sides_the_truth(
    cluster: Cluster,
    private_redis: PrivateRedis,
) -> None:
    """As above, with Redis frozen (SIGSTOP: its connections open, nothing answered) rather
    than stopped: the outage is noticed (within ``redis_timeout_seconds``), and past
    ``tunnel_outage_seconds`` the agent's tunnelled socket is closed 1013 and the customer told
    the agent is away, then that the session ended; nobody stays in a session that looks live."""
    limits = {
        **FAST,
        "tunnel_outage_seconds": 2.0,
        "agent_resume_seconds": 1.0,
        "redis_timeout_seconds": 1.0,
    }
    a, b = cluster.start(**limits), cluster.start(**limits)
    customer, created = await start_session(a)
    agent = await join_on(b, created["code"])
    assert (await recv_json(agent))["type"] == "joined"
    assert (await recv_json(customer))["type"] == "agent_joined"
    private_redis.pause()
    try:
        messages, code, reason = await closed(agent, timeout=20)
        assert messages == [LINK_DOWN]
        assert (code, reason) == (1013, "server link lost: reconnect")
        messages, code, _ = await closed(customer, timeout=20)
        assert messages[0] == LINK_DOWN
        assert messages[-2:] == [
            {"v": 1, "type": "peer", "connected": False},
            {"v": 1, "type": "ended", "reason": "agent_lost"},
        ], messages
    finally:
        private_redis.resume()


async def test_a_frozen_process_holding_a_session_leaves_nobody_in_it_once_thawed(
    cluster: Cluster,
    serve_processes: Callable[..., ServeProcess],
) -> None:
    """The process holding the session stops answering without dying (SIGSTOP: a stalled VM, a
    process paused by a debugger) for longer than ``tunnel_lost_seconds``. The agent's socket
    on the other process is told its session's server stopped answering (4404), as after a
    kill. Thawed, the holder hears the agent's tunnel closed: its customer is told the agent is
    away, then, no console rejoining within ``agent_resume_seconds``, that the session ended.
    Neither side is left in a session that looks live."""
    survivor = cluster.start(**FAST)
    frozen = cluster.process(
        serve_processes,
        TANDEM_TUNNEL_HEARTBEAT_SECONDS="0.25",
        TANDEM_TUNNEL_LOST_SECONDS="2",
        TANDEM_AGENT_RESUME_SECONDS="2",
    )
    customer, agent = await across(frozen, survivor)  # type: ignore[arg-type]
    frozen.process.send_signal(signal.SIGSTOP)
    try:
        _, code, reason = await closed(agent, timeout=20)
        assert (code, reason) == (4404, "session ended: its server stopped answering")
    finally:
        frozen.process.send_signal(signal.SIGCONT)
    messages, _, _ = await closed(customer, timeout=20)
    assert {"v": 1, "type": "peer", "connected": False} in messages, messages
    assert messages[-1:] == [{"v": 1, "type": "ended", "reason": "agent_lost"}], messages


async def test_a_frozen_process_carrying_an_agent_leaves_nobody_in_the_session_once_thawed(
    cluster: Cluster,
    serve_processes: Callable[..., ServeProcess],
) -> None:
    """The process carrying the agent's socket to the session's holder freezes (SIGSTOP) past
    ``tunnel_lost_seconds``: the customer is told the agent is away, then, past
    ``agent_resume_seconds``, that the session ended. Thawed, the frozen process closes the
    agent's socket as the session's end: its console is not left showing a live session (it
    showed the view stale meanwhile: its own freshness check)."""
    survivor = cluster.start(**FAST, agent_resume_seconds=2.0)
    frozen = cluster.process(
        serve_processes, TANDEM_TUNNEL_HEARTBEAT_SECONDS="0.25", TANDEM_TUNNEL_LOST_SECONDS="2"
    )
    customer, agent = await across(survivor, frozen)  # type: ignore[arg-type]
    frozen.process.send_signal(signal.SIGSTOP)
    try:
        messages, _, _ = await closed(customer, timeout=20)
        assert messages[:1] == [{"v": 1, "type": "peer", "connected": False}], messages
        assert messages[-1:] == [{"v": 1, "type": "ended", "reason": "agent_lost"}], messages
    finally:
        frozen.process.send_signal(signal.SIGCONT)
    # Thawed, the frozen process passes on the holder's close of the tunnel (1000: the session
    # ended), or, if its own beat looks first, takes the silent holder for gone (4404): either
    # is the session's end to a joined console ("Session ended": sdk/src/console/live.ts,
    # onClose), not a dropped network to retry into a session that looks live.
    _, code, _ = await closed(agent, timeout=20)
    assert code in (1000, 4404)
