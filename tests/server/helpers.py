"""Small clients for server tests: real HTTP and WebSocket connections to a real server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import AGENT_PASSWORD, RunningServer, track_connection

ANSWER_SECONDS = 30.0
"""How long a socket's next message, or its close, may take unless a test says otherwise: only
an answer that never comes should reach it. At 5 s, on two cores under load 18, an agent's
``join`` on PostgreSQL was not answered in time (test_frozen_database, before its database
froze). Tests that show something does not happen pass a short timeout of their own."""

INVALID_CODE = {
    "v": 1,
    "type": "error",
    "code": "invalid_code",
    "message": "That code is not valid or has expired. Ask for a new code.",
}


def login_cookie(
    server: RunningServer, username: str = "alice", password: str = AGENT_PASSWORD
) -> str:
    response = httpx.post(
        f"{server.base}/api/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return response.cookies["tandem_agent"]


def own_password(server: RunningServer, username: str, given: str, chosen: str) -> str:
    """The owner's first sign-in to an account made with a temporary password ``given`` (an
    admin's new account, or a reset): signs in, chooses ``chosen``; returns the cookie of the
    sign-in the change opened."""
    with httpx.Client(base_url=server.base, headers={"origin": server.origin}) as owner:
        signed = owner.post("/api/login", json={"username": username, "password": given})
        assert signed.status_code == 200, signed.text
        assert signed.json()["must_change_password"] is True
        changed = owner.post(
            "/api/me/password", json={"current_password": given, "new_password": chosen}
        )
        assert changed.status_code == 200, changed.text
        return changed.cookies["tandem_agent"]


async def open_customer(server: RunningServer, origin: str | None = None) -> ClientConnection:
    return await _tracked(
        f"{server.ws_base}/ws/customer",
        origin=origin or server.origin,  # type: ignore[arg-type]
        compression=None,
        max_size=None,
    )


async def open_agent(server: RunningServer, cookie: str | None) -> ClientConnection:
    headers = {"cookie": f"tandem_agent={cookie}"} if cookie else {}
    return await _tracked(
        f"{server.ws_base}/ws/agent",
        origin=server.origin,  # type: ignore[arg-type]
        additional_headers=headers,
        compression=None,
        max_size=None,
    )


async def _tracked(uri: str, **options: Any) -> ClientConnection:
    connection = await connect(uri, **options)
    track_connection(connection)
    return connection


async def send(ws: ClientConnection, **message: Any) -> None:
    await ws.send(json.dumps({"v": 1, **message}))


async def recv_json(ws: ClientConnection, timeout: float = ANSWER_SECONDS) -> dict[str, Any]:
    import asyncio

    frame = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(frame, str), f"expected a control message, got {frame!r}"
    message: dict[str, Any] = json.loads(frame)
    return message


async def closed_with(ws: ClientConnection, timeout: float = ANSWER_SECONDS) -> tuple[int, str]:
    """Read until the server closes; return (code, reason)."""
    import asyncio

    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, "connection dropped without a close frame"
        return exc.rcvd.code, exc.rcvd.reason
    raise AssertionError("unreachable")


async def start_session(
    server: RunningServer, origin: str | None = None
) -> tuple[ClientConnection, dict[str, Any]]:
    customer = await open_customer(server, origin)
    await send(customer, type="create")
    created = await recv_json(customer)
    assert created["type"] == "created"
    return customer, created


async def pending_session(
    server: RunningServer,
) -> tuple[ClientConnection, ClientConnection, dict[str, Any]]:
    """A customer and a joined agent, before consent."""
    customer, created = await start_session(server)
    agent = await open_agent(server, login_cookie(server))
    await send(agent, type="join", code=created["code"])
    assert (await recv_json(agent))["type"] == "joined"
    assert (await recv_json(customer)) == {"v": 1, "type": "agent_joined", "agent": "Alice"}
    return customer, agent, created


async def sharing_session(
    server: RunningServer,
) -> tuple[ClientConnection, ClientConnection, dict[str, Any]]:
    """A customer and an agent with consent given."""
    customer, agent, created = await pending_session(server)
    await send(customer, type="consent", granted=True)
    assert (await recv_json(agent)) == {"v": 1, "type": "consent", "granted": True}
    return customer, agent, created


async def resume_on(
    server: RunningServer, created: dict[str, Any]
) -> tuple[ClientConnection, dict[str, Any]]:
    """A new customer socket (the next page) resuming ``created``'s session; its first answer."""
    customer = await open_customer(server)
    await send(
        customer,
        type="resume",
        session_id=created["session_id"],
        resume_token=created["resume_token"],
    )
    return customer, await recv_json(customer)


async def sharing_with_tokens(
    owner: RunningServer, cookie: str, edge: RunningServer | None = None
) -> tuple[ClientConnection, ClientConnection, dict[str, Any], dict[str, Any]]:
    """A customer on ``owner`` sharing with an agent signed in with ``cookie`` (its socket on
    ``edge``, tunnelled, if given): both sockets, the customer's ``created`` and the agent's
    ``joined``, each with its resume token; page content has gone both ways once."""
    customer, created = await start_session(owner)
    agent = await open_agent(edge or owner, cookie)
    await send(agent, type="join", code=created["code"])
    joined = await recv_json(agent)
    assert joined["type"] == "joined" and joined["resume_token"], joined
    assert (await recv_json(customer))["type"] == "agent_joined"
    await send(customer, type="consent", granted=True)
    assert (await recv_json(agent))["type"] == "consent"
    await customer.send(b"\x01before")
    assert await asyncio.wait_for(agent.recv(), 10) == b"\x01before"
    await agent.send(b"\x03before")
    assert await asyncio.wait_for(customer.recv(), 10) == b"\x03before"
    return customer, agent, created, joined
