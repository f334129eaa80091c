"""The agent socket against a real server: sign-in, codes, consent, relay."""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.conftest import RunningServer, ServerFactory, two_organisations
from tests.server.helpers import (
    INVALID_CODE,
    _tracked,
    closed_with,
    login_cookie,
    open_agent,
    recv_json,
    send,
    sharing_session,
    start_session,
)


async def test_unauthenticated_agent_socket_is_refused(server: RunningServer) -> None:
    agent = await open_agent(server, cookie=None)
    assert await closed_with(agent) == (4401, "sign in first")


async def test_forged_cookie_is_refused(server: RunningServer) -> None:
    agent = await open_agent(server, cookie="A" * 43)
    assert (await closed_with(agent))[0] == 4401


async def test_agent_socket_from_another_origin_is_refused(server: RunningServer) -> None:
    # Cross-site WebSocket hijacking: a page elsewhere riding on the agent's cookie.
    agent = await _tracked(
        f"{server.ws_base}/ws/agent",
        origin="https://evil.example",  # type: ignore[arg-type]
        additional_headers={"cookie": f"tandem_agent={login_cookie(server)}"},
    )
    assert await closed_with(agent) == (4403, "origin not allowed")


async def test_wrong_code_and_expired_code_get_the_same_answer(server: RunningServer) -> None:
    customer, created = await start_session(server)
    agent = await open_agent(server, login_cookie(server))
    wrong = "00000" if created["code"] != "00000" else "00001"
    await send(agent, type="join", code=wrong)
    assert await recv_json(agent) == INVALID_CODE
    server.clock.advance(server.settings.code_ttl_seconds + 1)
    await send(agent, type="join", code=created["code"])
    assert await recv_json(agent) == INVALID_CODE
    await agent.close()
    await customer.close()


async def test_code_is_single_use(server: RunningServer) -> None:
    customer, created = await start_session(server)
    first = await open_agent(server, login_cookie(server))
    await send(first, type="join", code=created["code"])
    assert (await recv_json(first))["type"] == "joined"
    second = await open_agent(server, login_cookie(server))
    await send(second, type="join", code=created["code"])
    assert await recv_json(second) == INVALID_CODE
    for ws in (first, second, customer):
        await ws.close()


async def test_code_with_spaces_and_dashes_is_accepted(server: RunningServer) -> None:
    customer, created = await start_session(server)
    code = created["code"]
    agent = await open_agent(server, login_cookie(server))
    await send(agent, type="join", code=f"{code[:3]} {code[3:4]}-{code[4:]}")
    assert (await recv_json(agent))["type"] == "joined"
    await agent.close()
    await customer.close()


async def test_too_many_wrong_codes_close_the_socket(server: RunningServer) -> None:
    agent = await open_agent(server, login_cookie(server))
    for attempt in range(server.settings.max_join_attempts_per_socket - 1):
        await send(agent, type="join", code=f"1234{attempt}")
        assert await recv_json(agent) == INVALID_CODE
    await send(agent, type="join", code="99999")
    assert (await closed_with(agent))[0] == 4429


async def test_decline_tells_the_agent_and_ends_the_session(server: RunningServer) -> None:
    customer, created = await start_session(server)
    agent = await open_agent(server, login_cookie(server))
    await send(agent, type="join", code=created["code"])
    await recv_json(agent)
    await recv_json(customer)
    await send(customer, type="consent", granted=False)
    assert await recv_json(agent) == {"v": 1, "type": "ended", "reason": "declined"}
    assert await closed_with(agent) == (1000, "session ended: declined")


async def test_consent_before_an_agent_joined_is_refused(server: RunningServer) -> None:
    customer, _ = await start_session(server)
    await send(customer, type="consent", granted=True)
    code, reason = await closed_with(customer)
    assert code == 4400 and "consent is not allowed while waiting" in reason


async def test_payloads_are_relayed_byte_for_byte_both_ways(server: RunningServer) -> None:
    customer, agent, _ = await sharing_session(server)
    blob = bytes(range(256)) * 100
    await customer.send(blob)
    assert await asyncio.wait_for(agent.recv(), 5) == blob
    await agent.send(b"agent to customer")
    assert await asyncio.wait_for(customer.recv(), 5) == b"agent to customer"
    await customer.close()
    await agent.close()


async def test_agent_leaving_ends_the_session_for_the_customer(server: RunningServer) -> None:
    customer, agent, _ = await sharing_session(server)
    await send(agent, type="leave")
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "agent_left"}
    assert (await closed_with(customer))[0] == 1000


async def test_agent_binary_before_join_is_refused(server: RunningServer) -> None:
    agent = await open_agent(server, login_cookie(server))
    await agent.send(b"hello")
    assert (await closed_with(agent))[0] == 4400


async def test_wrong_codes_back_off_across_reconnects(server: RunningServer) -> None:
    _customer, created = await start_session(server)
    wrong = "00000" if created["code"] != "00000" else "00001"
    cookie = login_cookie(server)
    first = await open_agent(server, cookie)
    for _ in range(4):
        await send(first, type="join", code=wrong)
        assert await recv_json(first) == INVALID_CODE
    second = await open_agent(server, cookie)  # a fresh socket does not start afresh
    for _ in range(2):
        await send(second, type="join", code=wrong)
        assert (await recv_json(second))["type"] == "error"
    await send(second, type="join", code=created["code"])  # right code, but locked for now
    refused = await recv_json(second)
    assert refused["code"] == "rate_limited" and "Try again in" in refused["message"]
    server.clock.advance(5)
    await send(second, type="join", code=created["code"])
    assert (await recv_json(second))["type"] == "joined"


async def test_joining_ones_own_session_does_not_reset_the_code_back_off(
    server_factory: ServerFactory,
) -> None:
    """The attack: guess from one address, start a session of one's own and join it (a right
    code) from another, then guess on from a third. The account's count must carry on."""
    server = server_factory(join_free_failures=3, trusted_proxies=("127.0.0.1",))
    cookie = login_cookie(server)

    async def agent_from(address: str) -> ClientConnection:
        return await _tracked(
            f"{server.ws_base}/ws/agent",
            origin=server.origin,  # type: ignore[arg-type]
            additional_headers={"cookie": f"tandem_agent={cookie}", "x-forwarded-for": address},
        )

    _customer, created = await start_session(server)
    wrong = "00000" if created["code"] != "00000" else "00001"
    first = await agent_from("198.51.100.1")
    for _ in range(3):  # the free ones
        await send(first, type="join", code=wrong)
        assert await recv_json(first) == INVALID_CODE
    own = await agent_from("198.51.100.2")
    await send(own, type="join", code=created["code"])
    assert (await recv_json(own))["type"] == "joined"
    third = await agent_from("198.51.100.3")
    await send(third, type="join", code=wrong)  # the 4th wrong code: a wait starts
    assert await recv_json(third) == INVALID_CODE
    await send(third, type="join", code=wrong)
    refused = await recv_json(third)
    assert refused["code"] == "rate_limited" and "Try again in 2 s" in refused["message"]


async def test_wrong_codes_from_the_addresses_of_one_ipv6_64_back_off_as_one_address(
    server_factory: ServerFactory,
) -> None:
    """Two accounts guessing from one IPv6 client, a new address of its /64 for each socket:
    the address's count adds up as for one address (a fresh address is no fresh start)."""
    server = server_factory(
        seed=two_organisations,
        join_free_failures=3,
        trusted_proxies=("127.0.0.1",),
        throttle_backoff_seconds=60,  # outlasts a busy machine's requests (the clock runs)
    )
    addresses = (f"2001:db8:9:9::{n:x}" for n in range(1, 100))

    async def agent_of(username: str) -> ClientConnection:
        return await _tracked(
            f"{server.ws_base}/ws/agent",
            origin=server.origin,  # type: ignore[arg-type]
            additional_headers={
                "cookie": f"tandem_agent={login_cookie(server, username)}",
                "x-forwarded-for": next(addresses),
            },
        )

    _customer, created = await start_session(server)
    wrong = "00000" if created["code"] != "00000" else "00001"
    for _ in range(4):  # alice's 3 free ones and one more: the address's count waits
        alice = await agent_of("alice")
        await send(alice, type="join", code=wrong)
        assert (await recv_json(alice))["type"] == "error"
    sam = await agent_of("sam")
    await send(sam, type="join", code=wrong)  # sam's first: made
    assert await recv_json(sam) == INVALID_CODE
    sam = await agent_of("sam")
    await send(sam, type="join", code=wrong)  # sam failed from a waiting address: refused
    refused = await recv_json(sam)
    assert refused["code"] == "rate_limited", refused


async def test_one_account_cannot_hold_agent_sockets_without_end(
    server_factory: ServerFactory,
) -> None:
    """Each open agent socket costs memory and a sign-in check every agent_reauth_seconds: a
    signed-in agent (any low-privilege account) opened them by the thousand."""
    server = server_factory(seed=two_organisations, max_agent_sockets=3)
    cookie = login_cookie(server)
    held = [await open_agent(server, cookie) for _ in range(3)]
    for socket in held:  # each one is open and answers
        await send(socket, type="join", code="00000")
        assert (await recv_json(socket))["type"] == "error"
    refused = await open_agent(server, cookie)
    assert await closed_with(refused) == (
        4429,
        "too many open sockets for this account: close other tabs",
    )
    other = await open_agent(server, login_cookie(server, "sam"))  # another account: its own
    await send(other, type="join", code="00000")
    assert (await recv_json(other))["type"] == "error"
    await held.pop().close()  # a tab closed: its place is free again, once the server saw it
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        again = await open_agent(server, cookie)
        try:
            await send(again, type="join", code="00000")
            assert (await recv_json(again))["type"] == "error"
            break
        except ConnectionClosed:
            assert (await closed_with(again))[0] == 4429
            assert asyncio.get_running_loop().time() < deadline, "the closed socket still counts"
            await asyncio.sleep(0.05)
