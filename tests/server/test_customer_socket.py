"""The customer socket against a real server: origins, sessions, limits, bad input."""

from __future__ import annotations

import asyncio

from tests.conftest import RunningServer, ServerFactory
from tests.server.helpers import (
    closed_with,
    open_customer,
    recv_json,
    send,
    sharing_session,
    start_session,
)


async def test_create_returns_a_five_digit_routing_code(server: RunningServer) -> None:
    customer, created = await start_session(server)
    assert created["code"].isdigit() and len(created["code"]) == 5
    assert created["expires_in"] == 600
    assert len(created["resume_token"]) >= 40
    await customer.close()


async def test_codes_differ_between_sessions(server: RunningServer) -> None:
    codes = set()
    for _ in range(5):
        _customer, created = await start_session(server)
        codes.add(created["code"])
    assert len(codes) == 5  # live codes never collide


async def test_foreign_origin_is_refused_with_a_reason(server: RunningServer) -> None:
    customer = await open_customer(server, origin="https://evil.example")
    assert await closed_with(customer) == (4403, "origin not allowed")


async def test_allowed_origin_may_open_a_session(server_factory: ServerFactory) -> None:
    server = server_factory(allow_origins=("https://shop.example",))
    customer = await open_customer(server, origin="https://shop.example")
    await send(customer, type="create")
    assert (await recv_json(customer))["type"] == "created"
    await customer.close()


async def test_lookalike_origin_is_refused(server_factory: ServerFactory) -> None:
    server = server_factory(allow_origins=("https://shop.example",))
    customer = await open_customer(server, origin="https://shop.example.evil.net")
    assert (await closed_with(customer))[0] == 4403


async def test_malformed_json_closes_4400_and_server_keeps_serving(server: RunningServer) -> None:
    bad = await open_customer(server)
    await bad.send("{not json")
    code, reason = await closed_with(bad)
    assert code == 4400 and "not valid JSON" in reason
    good, created = await start_session(server)
    assert created["type"] == "created"
    await good.close()


async def test_unknown_message_type_closes_4400(server: RunningServer) -> None:
    customer = await open_customer(server)
    await send(customer, type="become_admin")
    code, reason = await closed_with(customer)
    assert code == 4400 and "malformed" in reason


async def test_wrong_version_closes_4400(server: RunningServer) -> None:
    customer = await open_customer(server)
    await customer.send('{"v": 2, "type": "create"}')
    assert (await closed_with(customer))[0] == 4400


async def test_oversized_control_message_closes_1009(server: RunningServer) -> None:
    customer = await open_customer(server)
    await customer.send('{"v":1,"type":"create","pad":"' + "x" * 10_000 + '"}')
    code, reason = await closed_with(customer)
    assert code == 1009 and "too big" in reason


async def test_oversized_payload_closes_1009_and_others_keep_sharing(
    server: RunningServer,
) -> None:
    customer, agent, _ = await sharing_session(server)
    other_customer, other_agent, _ = await sharing_session(server)
    await customer.send(b"x" * (server.settings.max_payload_bytes + 1))
    code, _ = await closed_with(customer)
    assert code == 1009
    await other_customer.send(b"still here")
    assert await asyncio.wait_for(other_agent.recv(), 5) == b"still here"
    for ws in (agent, other_customer, other_agent):
        await ws.close()


async def test_payload_before_consent_is_refused(server: RunningServer) -> None:
    customer, _ = await start_session(server)
    await customer.send(b"page content too early")
    code, reason = await closed_with(customer)
    assert code == 4400 and "not allowed while waiting" in reason


async def test_silent_socket_times_out_with_4408(server_factory: ServerFactory) -> None:
    server = server_factory(first_message_timeout_seconds=0.3)
    customer = await open_customer(server)
    assert (await closed_with(customer))[0] == 4408


async def test_binary_first_message_is_refused(server: RunningServer) -> None:
    customer = await open_customer(server)
    await customer.send(b"\x00\x01")
    assert (await closed_with(customer))[0] == 4400


async def test_resume_with_wrong_token_is_refused(server: RunningServer) -> None:
    customer, created = await start_session(server)
    intruder = await open_customer(server)
    await send(intruder, type="resume", session_id=created["session_id"], resume_token="x" * 43)
    assert await closed_with(intruder) == (4404, "session not found")
    await customer.close()


async def test_resume_after_navigation_keeps_sharing(server: RunningServer) -> None:
    customer, agent, created = await sharing_session(server)
    await customer.close()  # the page navigates away
    assert await recv_json(agent) == {"v": 1, "type": "peer", "connected": False}
    page2 = await open_customer(server)
    await send(
        page2, type="resume", session_id=created["session_id"], resume_token=created["resume_token"]
    )
    resumed = await recv_json(page2)
    assert resumed == {
        "v": 1,
        "type": "resumed",
        "state": "sharing",
        "agent": "Alice",
        "code": None,
        "policy": None,
        "recording": False,
        "team_policies": [],
        "resume_seconds": 30,
    }
    assert await recv_json(agent) == {"v": 1, "type": "peer", "connected": True}
    await page2.send(b"new page snapshot")
    assert await asyncio.wait_for(agent.recv(), 5) == b"new page snapshot"
    await page2.close()
    await agent.close()


async def test_customer_lost_after_grace_period(server_factory: ServerFactory) -> None:
    server = server_factory(resume_grace_seconds=0.3)
    customer, agent, _ = await sharing_session(server)
    await customer.close()
    assert (await recv_json(agent))["type"] == "peer"
    assert await recv_json(agent) == {"v": 1, "type": "ended", "reason": "customer_lost"}
    assert await closed_with(agent) == (1000, "session ended: customer_lost")


async def test_stop_ends_the_session_for_everyone(server: RunningServer) -> None:
    customer, agent, _ = await sharing_session(server)
    await send(customer, type="stop")
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "stopped"}
    assert await recv_json(agent) == {"v": 1, "type": "ended", "reason": "stopped"}
    assert (await closed_with(customer))[0] == 1000
    assert (await closed_with(agent))[0] == 1000


async def test_idle_session_ends_for_both(server: RunningServer) -> None:
    customer, agent, _ = await sharing_session(server)
    server.clock.advance(server.settings.idle_timeout_seconds + 1)
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "idle_timeout"}
    assert await recv_json(agent) == {"v": 1, "type": "ended", "reason": "idle_timeout"}


async def test_unused_code_expires(server: RunningServer) -> None:
    customer, _ = await start_session(server)
    server.clock.advance(server.settings.code_ttl_seconds + 1)
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "code_expired"}
