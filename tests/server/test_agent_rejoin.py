"""Issue 13, fault 6: an agent whose console reloads (or whose network drops) takes the same
session up again within ``agent_resume_seconds``, with the resume token its ``joined`` carried,
on the same sign-in only. Real server, real sockets."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.conftest import RunningServer, ServerFactory, add_user
from tests.server.helpers import (
    closed_with,
    login_cookie,
    open_agent,
    recv_json,
    send,
    start_session,
)


async def shared(
    server: RunningServer, cookie: str
) -> tuple[ClientConnection, ClientConnection, dict[str, Any]]:
    """A sharing session whose agent signed in with ``cookie``; the agent's ``joined``."""
    customer, created = await start_session(server)
    agent = await open_agent(server, cookie)
    await send(agent, type="join", code=created["code"])
    joined = await recv_json(agent)
    assert joined["type"] == "joined"
    assert (await recv_json(customer))["type"] == "agent_joined"
    await send(customer, type="consent", granted=True)
    assert (await recv_json(agent))["type"] == "consent"
    return customer, agent, joined


async def rejoin(
    server: RunningServer, cookie: str, joined: dict[str, Any], **change: str
) -> ClientConnection:
    agent = await open_agent(server, cookie)
    message = {"session_id": joined["session_id"], "resume_token": joined["resume_token"], **change}
    with contextlib.suppress(ConnectionClosed):  # a revoked sign-in is refused before it
        await send(agent, type="rejoin", **message)
    return agent


def audit_actions(server: RunningServer) -> list[str]:
    with httpx.Client(base_url=server.base, headers={"origin": server.origin}) as client:
        client.cookies.set("tandem_agent", login_cookie(server, "aud"))
        return [r["action"] for r in client.get("/api/audit").json()]


async def test_a_reloaded_console_rejoins_the_same_session(server: RunningServer) -> None:
    cookie = login_cookie(server)
    customer, agent, joined = await shared(server, cookie)
    assert joined["resume_token"] and joined["resume_seconds"] == 30
    await agent.close(1001)  # the console's page is reloaded: "going away"
    assert await recv_json(customer) == {"v": 1, "type": "peer", "connected": False}
    server.clock.advance(20)  # within the window
    again = await rejoin(server, cookie, joined)
    answer = await recv_json(again)
    assert (answer["type"], answer["session_id"], answer["resumed"]) == (
        "joined",
        joined["session_id"],
        True,
    )
    assert await recv_json(customer) == {"v": 1, "type": "peer", "connected": True}
    await customer.send(b"\x01 page content")  # the session goes on: content reaches the agent
    assert await again.recv() == b"\x01 page content"
    await send(again, type="leave")
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "agent_left"}


async def test_a_lost_network_waits_for_the_agent_then_ends_the_session(
    server: RunningServer,
) -> None:
    cookie = login_cookie(server)
    customer, agent, joined = await shared(server, cookie)
    agent.transport.abort()  # no close frame: the server sees 1006
    assert await recv_json(customer) == {"v": 1, "type": "peer", "connected": False}
    server.clock.advance(server.settings.agent_resume_seconds + 1)
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "agent_lost"}
    late = await rejoin(server, cookie, joined)
    assert await closed_with(late) == (4404, "session not found")


async def test_a_console_that_closes_on_purpose_ends_the_session_at_once(
    server: RunningServer,
) -> None:
    customer, agent, _ = await shared(server, login_cookie(server))
    await agent.close()  # 1000: not a reload
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "agent_lost"}


async def test_only_the_same_sign_in_may_rejoin(server: RunningServer) -> None:
    cookie = login_cookie(server)
    add_user(server.settings.data_dir, "bob", display_name="Bob")
    customer, agent, joined = await shared(server, cookie)
    await agent.close(1001)
    assert (await recv_json(customer))["connected"] is False
    # Another user with the token, the same user signed in again elsewhere, a wrong token:
    # one answer, and the session still waits for its own agent.
    for other_cookie, change in (
        (login_cookie(server, "bob"), {}),
        (login_cookie(server), {}),
        (cookie, {"resume_token": "A" * 43}),
    ):
        refused = await rejoin(server, other_cookie, joined, **change)
        assert await closed_with(refused) == (4404, "session not found")
    again = await rejoin(server, cookie, joined)
    assert (await recv_json(again))["resumed"] is True


async def test_a_revoked_sign_in_does_not_rejoin(server: RunningServer) -> None:
    cookie = login_cookie(server)
    customer, agent, joined = await shared(server, cookie)
    await agent.close(1001)
    assert (await recv_json(customer))["connected"] is False
    signed_out = httpx.post(
        f"{server.base}/api/logout",
        cookies={"tandem_agent": cookie},
        headers={"origin": server.origin},
    )
    assert signed_out.status_code == 204
    refused = await rejoin(server, cookie, joined)
    assert (await closed_with(refused))[0] == 4401
    server.clock.advance(server.settings.agent_resume_seconds + 1)
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "agent_lost"}


async def test_a_second_console_takes_the_place_of_a_half_open_one(server: RunningServer) -> None:
    cookie = login_cookie(server)
    customer, agent, joined = await shared(server, cookie)
    # The console noticed the drop before the server did: its old socket is still open.
    again = await rejoin(server, cookie, joined)
    assert (await recv_json(again))["resumed"] is True
    assert await closed_with(agent) == (4409, "session taken up in another console")
    await customer.send(b"\x01 still here")
    assert await again.recv() == b"\x01 still here"


async def test_without_a_window_a_lost_agent_ends_the_session(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(agent_resume_seconds=0)
    customer, agent, joined = await shared(server, login_cookie(server))
    assert joined["resume_seconds"] == 0
    await agent.close(1001)
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "agent_lost"}
