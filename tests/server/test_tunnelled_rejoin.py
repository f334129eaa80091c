"""Issue 13: an agent whose socket reaches the session's owner through a tunnel (another process,
docs/scale-out.md) is held like a local one when that socket goes: the session waits
``agent_resume_seconds`` and the console rejoins with its resume token from any process (the
owner itself, the process it was on, a third one). Real servers on a real PostgreSQL and a Redis
of the test's own; the process carrying the agent is a real ``tandem serve`` where it dies or
stops."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tandem.metrics import REGISTRY
from tests.server import test_cluster_faults as faults
from tests.server.helpers import (
    login_cookie,
    open_agent,
    recv_json,
    resume_on,
    send,
    sharing_with_tokens,
    start_session,
)
from tests.server.test_cluster_faults import (
    FAST,
    Cluster,
    ServeProcess,
    closed,
    exchange,
    wait_until,
)

# The cluster's fixtures (servers on a fresh PostgreSQL schema, a Redis of the test's own, and
# `tandem serve` processes), shared with tests/server/test_cluster_faults.py.
private_redis = faults.private_redis
cluster = faults.cluster
serve_processes = faults.serve_processes

AWAY = {"v": 1, "type": "peer", "connected": False}
BACK = {"v": 1, "type": "peer", "connected": True}


async def tunnelled_agent(
    owner: Any, edge: Any, cookie: str
) -> tuple[ClientConnection, ClientConnection, dict[str, Any]]:
    """A customer on ``owner`` sharing with an agent whose socket is on ``edge`` (tunnelled),
    signed in with ``cookie``; the agent's ``joined``."""
    customer, agent, _, joined = await sharing_with_tokens(owner, cookie, edge)
    return customer, agent, joined


async def rejoined_on(server: Any, cookie: str, joined: dict[str, Any]) -> ClientConnection:
    """The console's next socket, on ``server``, takes the session up again. As the console
    does, it tries again when told 1013 "server link lost: reconnect" (the process found Redis
    silent for a moment: on a starved machine the tests' fast heartbeats can miss)."""
    deadline = time.monotonic() + 30
    while True:
        again = await open_agent(server, cookie)
        await send(
            again,
            type="rejoin",
            session_id=joined["session_id"],
            resume_token=joined["resume_token"],
        )
        try:
            answer = await recv_json(again, timeout=15)
            break
        except ConnectionClosed as exc:
            told = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else None
            if told != (1013, "server link lost: reconnect") or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)  # the console's back-off, shortened
    assert (answer["type"], answer["session_id"], answer["resumed"]) == (
        "joined",
        joined["session_id"],
        True,
    ), answer
    return again


async def test_a_tunnelled_console_reloads_and_rejoins_from_any_process(
    cluster: Cluster,
) -> None:
    """Held on A, the agent's socket on B. A reload (1001) leaves the customer told the agent is
    away, not that the session ended; the console rejoins through C (tunnelled again), reloads
    once more and rejoins on A itself (local now); the session goes on each time."""
    a, b, c = cluster.start(**FAST), cluster.start(**FAST), cluster.start(**FAST)
    cookie = login_cookie(b, "alice")
    customer, agent, joined = await tunnelled_agent(a, b, cookie)
    for server in (c, a):
        await agent.close(1001)  # the console's page is reloaded
        assert await recv_json(customer, timeout=15) == AWAY
        agent = await rejoined_on(server, cookie, joined)
        assert await recv_json(customer, timeout=15) == BACK
        await exchange(customer, agent, b"after a rejoin")
    await send(agent, type="leave")
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "agent_left"}


async def test_a_tunnelled_console_that_does_not_come_back_ends_the_session_after_the_window(
    cluster: Cluster,
) -> None:
    a, b = cluster.start(**FAST), cluster.start(**FAST)
    cookie = login_cookie(b, "alice")
    customer, agent, joined = await tunnelled_agent(a, b, cookie)
    agent.transport.abort()  # no close frame
    assert await recv_json(customer, timeout=15) == AWAY
    a.clock.advance(a.settings.agent_resume_seconds + 1)
    assert await recv_json(customer, timeout=15) == {
        "v": 1,
        "type": "ended",
        "reason": "agent_lost",
    }
    late = await open_agent(b, cookie)
    await send(
        late, type="rejoin", session_id=joined["session_id"], resume_token=joined["resume_token"]
    )
    assert (await closed(late, timeout=15))[1:] == (4404, "session not found")


async def test_a_console_whose_process_was_killed_rejoins_on_the_owner(
    cluster: Cluster,
    serve_processes: Callable[..., ServeProcess],
) -> None:
    """The process carrying the agent's socket dies (SIGKILL): the console's socket drops and
    it rejoins on the owner at once, before the owner noticed the dead tunnel; the session goes
    on, and the dead tunnel given up later (``tunnel_lost_seconds``) ends nothing."""
    owner = cluster.start()
    doomed = cluster.process(serve_processes)
    cookie = login_cookie(owner, "alice")
    customer, agent, joined = await tunnelled_agent(owner, doomed, cookie)
    before = given_up()
    doomed.kill()
    await closed_abruptly(agent)
    again = await rejoined_on(owner, cookie, joined)
    await exchange(customer, again, b"after the kill")
    # The owner gives the silent tunnel up (after 5 s): the agent is back, so nothing is said
    # to the customer (the exchange's next message would be a "peer" or "ended") or ended.
    await wait_until(lambda: given_up() > before, timeout=20)
    await exchange(customer, again, b"still on")
    await send(again, type="leave")
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "agent_left"}


async def test_a_console_whose_process_stops_rejoins_on_another(
    cluster: Cluster,
    serve_processes: Callable[..., ServeProcess],
) -> None:
    """SIGTERM to the process carrying the agent's socket: the console hears ``restarting``
    and 1012; the session goes on at its owner (the customer hears the agent is away, not
    that the session ended), and the console rejoins on the owner."""
    owner = cluster.start()
    stopping = cluster.process(serve_processes)
    cookie = login_cookie(owner, "alice")
    customer, agent, joined = await tunnelled_agent(owner, stopping, cookie)
    stopping.process.send_signal(signal.SIGTERM)
    messages, code, _ = await closed(agent, timeout=20)
    assert ([m["type"] for m in messages], code) == (["restarting"], 1012), messages
    assert await recv_json(customer, timeout=15) == AWAY
    again = await rejoined_on(owner, cookie, joined)
    assert await recv_json(customer, timeout=15) == BACK
    await exchange(customer, again, b"after the restart")
    assert stopping.process.wait(timeout=20) == 0


async def closed_abruptly(ws: ClientConnection) -> None:
    """Wait until the socket is gone (its server died: no close frame)."""
    try:
        async with asyncio.timeout(15):
            while True:
                await ws.recv()
    except Exception as exc:  # ConnectionClosedError, without a close frame
        assert type(exc).__name__ == "ConnectionClosedError", exc


def given_up() -> float:
    """Tunnelled sockets this test process's servers gave up as silent (their process died)."""
    return REGISTRY.get_sample_value("tandem_tunnels_lost_total", {"reason": "silent"}) or 0.0


async def test_a_customer_whose_process_stops_resumes_on_another(
    cluster: Cluster,
    serve_processes: Callable[..., ServeProcess],
) -> None:
    """The customer's page reached another process (its next page) and that process stops: the
    page hears ``restarting`` and 1012, the agent that the customer is away (not an end), and
    the page resumes on the owner; the session goes on ("a server restart with SIGTERM lets
    both reconnect to the next process")."""
    owner = cluster.start()
    stopping = cluster.process(serve_processes)
    customer, created = await start_session(owner)
    agent = await open_agent(owner, login_cookie(owner, "alice"))
    await send(agent, type="join", code=created["code"])
    assert (await recv_json(agent))["type"] == "joined"
    assert (await recv_json(customer))["type"] == "agent_joined"
    await send(customer, type="consent", granted=True)
    assert (await recv_json(agent))["type"] == "consent"
    await customer.close()  # the next page's socket reaches the other process
    assert await recv_json(agent, timeout=15) == AWAY
    customer, answer = await resume_on(stopping, created)  # type: ignore[arg-type]
    assert answer["type"] == "resumed", answer
    assert await recv_json(agent, timeout=15) == BACK
    stopping.process.send_signal(signal.SIGTERM)
    messages, code, _ = await closed(customer, timeout=20)
    assert ([m["type"] for m in messages], code) == (["restarting"], 1012), messages
    assert await recv_json(agent, timeout=15) == AWAY
    customer, answer = await resume_on(owner, created)
    assert answer["type"] == "resumed" and answer["state"] == "sharing", answer
    assert await recv_json(agent, timeout=15) == BACK
    await exchange(customer, agent, b"after the restart")
    assert stopping.process.wait(timeout=20) == 0
