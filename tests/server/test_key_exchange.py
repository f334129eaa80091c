"""The server's part in the browsers' key exchange: relay it blindly, bound it, end on mismatch."""

from __future__ import annotations

from tests.conftest import RunningServer
from tests.server.helpers import (
    INVALID_CODE,
    closed_with,
    login_cookie,
    open_agent,
    pending_session,
    recv_json,
    send,
    sharing_session,
    start_session,
)


async def test_handshake_is_relayed_both_ways_unchanged(server: RunningServer) -> None:
    customer, agent, _ = await pending_session(server)
    await send(customer, type="handshake", data="BAAAshareA_-")
    assert await recv_json(agent) == {"v": 1, "type": "handshake", "data": "BAAAshareA_-"}
    await send(agent, type="handshake", data="BAAAshareB")
    assert await recv_json(customer) == {"v": 1, "type": "handshake", "data": "BAAAshareB"}


async def test_handshake_before_an_agent_joined_is_refused(server: RunningServer) -> None:
    customer, _ = await start_session(server)
    await send(customer, type="handshake", data="AAAA")
    code, reason = await closed_with(customer)
    assert code == 4400 and "key exchange is not allowed while waiting" in reason


async def test_handshake_after_consent_is_refused(server: RunningServer) -> None:
    _customer, agent, _ = await sharing_session(server)
    await send(agent, type="handshake", data="AAAA")
    assert (await closed_with(agent))[0] == 4400


async def test_handshake_messages_are_bounded(server: RunningServer) -> None:
    customer, agent, _ = await pending_session(server)
    for _ in range(2):
        await send(customer, type="handshake", data="AAAA")
        await recv_json(agent)
    await send(customer, type="handshake", data="AAAA")
    code, reason = await closed_with(customer)
    assert code == 4400 and "too many key-exchange messages" in reason


async def test_handshake_data_must_be_base64url_and_short(server: RunningServer) -> None:
    customer, _agent, _ = await pending_session(server)
    await send(customer, type="handshake", data="not base64!")
    assert (await closed_with(customer))[0] == 4400
    customer2, _agent2, _ = await pending_session(server)
    await send(customer2, type="handshake", data="A" * 257)
    assert (await closed_with(customer2))[0] == 4400


async def test_abort_ends_the_session_for_both_with_key_mismatch(server: RunningServer) -> None:
    customer, agent, created = await pending_session(server)
    await send(agent, type="abort", reason="key_mismatch")
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "key_mismatch"}
    assert await recv_json(agent) == {"v": 1, "type": "ended", "reason": "key_mismatch"}
    # The code is spent: one online guess per code.
    retry = await open_agent(server, login_cookie(server))
    await send(retry, type="join", code=created["code"])
    assert await recv_json(retry) == INVALID_CODE


async def test_customer_abort_also_ends_the_session(server: RunningServer) -> None:
    customer, agent, _ = await pending_session(server)
    await send(customer, type="abort", reason="key_mismatch")
    assert await recv_json(agent) == {"v": 1, "type": "ended", "reason": "key_mismatch"}


async def test_a_code_with_the_secret_part_is_refused(server: RunningServer) -> None:
    _customer, created = await start_session(server)
    agent = await open_agent(server, login_cookie(server))
    await send(agent, type="join", code=created["code"] + "1234567")
    assert await recv_json(agent) == INVALID_CODE
