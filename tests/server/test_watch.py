"""A supervisor watches a live session: the customer is asked, pairs with its own code, and
page content reaches the supervisor only after that; leaving ends only the watch."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.server.helpers import (
    closed_with,
    login_cookie,
    open_agent,
    open_customer,
    recv_json,
    send,
    sharing_session,
    start_session,
)
from tests.server.test_admin_api import audit_actions


async def sharing(server: RunningServer) -> tuple[Any, Any, str]:
    customer, alice, created = await sharing_session(server)
    return customer, alice, created["session_id"]


async def asked(server: RunningServer) -> tuple[Any, Any, Any, str]:
    customer, alice, session_id = await sharing(server)
    sam = await open_agent(server, login_cookie(server, "sam"))
    await send(sam, type="watch", session_id=session_id)
    assert await recv_json(sam) == {"v": 1, "type": "watching", "session_id": session_id}
    assert await recv_json(customer) == {"v": 1, "type": "watch_request", "watcher": "Sam"}
    return customer, alice, sam, session_id


async def nothing_arrives(ws: Any, seconds: float = 0.3) -> bool:
    try:
        await asyncio.wait_for(ws.recv(), seconds)
    except TimeoutError:
        return True
    return False


async def test_a_supervisor_watches_after_the_customer_allows_and_pairs(
    orgs_server: RunningServer,
) -> None:
    customer, alice, sam, _ = await asked(orgs_server)
    await customer.send(b"\x01before-consent")
    assert (await alice.recv()) == b"\x01before-consent"
    await send(customer, type="watch_consent", granted=True)
    assert await recv_json(sam) == {"v": 1, "type": "consent", "granted": True}
    await customer.send(b"\x01while-pairing")
    assert (await alice.recv()) == b"\x01while-pairing"
    await send(customer, type="watch_handshake", data="AAAA")
    assert await recv_json(sam) == {"v": 1, "type": "handshake", "data": "AAAA"}
    await send(sam, type="handshake", data="BBBB")
    assert await recv_json(customer) == {"v": 1, "type": "watch_handshake", "data": "BBBB"}
    await send(customer, type="watch_handshake", data="CCCC")
    assert await recv_json(sam) == {"v": 1, "type": "handshake", "data": "CCCC"}
    assert await recv_json(alice) == {"v": 1, "type": "watcher_joined", "watcher": "Sam"}
    await customer.send(b"\x01paired")
    assert (await alice.recv()) == b"\x01paired"
    assert (await sam.recv()) == b"\x01paired"  # the first content the supervisor gets

    # Its freshness challenges (its own kind of frame) go to the customer's page, nowhere else.
    await sam.send(b"\x07a-challenge")
    assert (await customer.recv()) == b"\x07a-challenge"
    assert await nothing_arrives(alice)
    await sam.send(b"\x03a-command")  # an agent's kind of frame: a watcher never commands
    assert (await closed_with(sam))[0] == 4400
    assert await recv_json(customer) == {"v": 1, "type": "watcher_left"}
    assert await recv_json(alice) == {"v": 1, "type": "watcher_left"}
    await customer.send(b"\x01after")  # the session goes on
    assert (await alice.recv()) == b"\x01after"
    actions = audit_actions(orgs_server)
    assert {"watch_requested", "watch_allowed", "watch_ended"} <= set(actions)


async def test_the_customer_can_refuse_a_supervisor(orgs_server: RunningServer) -> None:
    customer, alice, sam, _ = await asked(orgs_server)
    await send(customer, type="watch_consent", granted=False)
    assert await recv_json(sam) == {"v": 1, "type": "ended", "reason": "declined"}
    assert (await closed_with(sam))[0] == 1000
    await customer.send(b"\x01still-sharing")
    assert (await alice.recv()) == b"\x01still-sharing"
    assert "watch_declined" in audit_actions(orgs_server)


async def test_a_wrong_supervisor_code_ends_only_the_watch(orgs_server: RunningServer) -> None:
    customer, alice, sam, _ = await asked(orgs_server)
    await send(customer, type="watch_consent", granted=True)
    await recv_json(sam)
    await send(customer, type="watch_abort")
    assert await recv_json(sam) == {"v": 1, "type": "ended", "reason": "key_mismatch"}
    assert await recv_json(customer) == {"v": 1, "type": "watcher_left"}
    assert await nothing_arrives(alice)  # the agent never saw the supervisor join


async def test_the_session_ending_ends_the_watch(orgs_server: RunningServer) -> None:
    customer, _, sam, _ = await asked(orgs_server)
    await send(customer, type="stop")
    assert await recv_json(sam) == {"v": 1, "type": "ended", "reason": "stopped"}
    assert (await closed_with(sam))[0] == 1000


async def test_only_one_supervisor_watches_at_a_time(orgs_server: RunningServer) -> None:
    _, _, _, session_id = await asked(orgs_server)
    again = await open_agent(orgs_server, login_cookie(orgs_server, "sam"))
    await send(again, type="watch", session_id=session_id)
    code, reason = await closed_with(again)
    assert code == 4400 and "already watches" in reason


@pytest.mark.parametrize(
    ("username", "expected"),
    [("alice", 4403), ("mary", 4404)],  # an agent; another organisation's supervisor
)
async def test_who_cannot_watch(orgs_server: RunningServer, username: str, expected: int) -> None:
    customer, _, session_id = await sharing(orgs_server)
    other = await open_agent(orgs_server, login_cookie(orgs_server, username))
    await send(other, type="watch", session_id=session_id)
    assert (await closed_with(other))[0] == expected
    assert await nothing_arrives(customer)  # the customer was never asked


async def test_a_session_still_waiting_for_consent_cannot_be_watched(
    orgs_server: RunningServer,
) -> None:
    customer = await open_customer(orgs_server)
    await send(customer, type="create")
    created = await recv_json(customer)
    sam = await open_agent(orgs_server, login_cookie(orgs_server, "sam"))
    await send(sam, type="watch", session_id=created["session_id"])
    code, reason = await closed_with(sam)
    assert code == 4400 and "while waiting" in reason


async def test_a_supervisor_sends_its_challenges_only_once_it_watches_and_only_small_ones(
    orgs_server: RunningServer,
) -> None:
    customer, _, sam, _ = await asked(orgs_server)
    await sam.send(b"\x07too-early")  # asked, not paired: nothing of it reaches the customer
    assert (await closed_with(sam))[0] == 4400
    assert await recv_json(customer) == {"v": 1, "type": "watcher_left"}

    customer, alice, sam, _ = await asked(orgs_server)
    await send(customer, type="watch_consent", granted=True)
    assert await recv_json(sam) == {"v": 1, "type": "consent", "granted": True}
    # Each step waits for the other side to see the last, as the real pairing does: a
    # supervisor's reply that overtook the customer's first message is a key exchange out of
    # turn (4400), which is a different test.
    await send(customer, type="watch_handshake", data="AAAA")
    assert await recv_json(sam) == {"v": 1, "type": "handshake", "data": "AAAA"}
    await send(sam, type="handshake", data="BBBB")
    assert await recv_json(customer) == {"v": 1, "type": "watch_handshake", "data": "BBBB"}
    await send(customer, type="watch_handshake", data="CCCC")
    assert await recv_json(alice) == {"v": 1, "type": "watcher_joined", "watcher": "Sam"}
    await sam.send(b"\x07" + b"x" * 600)  # far more than a challenge
    assert (await closed_with(sam))[0] == 4400


async def test_a_supervisor_that_sends_too_fast_is_closed_and_only_the_watch_ends(
    orgs_server: RunningServer,
) -> None:
    """Its challenges come every few seconds; a flood closes its socket (4429) before the
    customer's page is made to open more than ``max_watcher_frames_per_second`` of them."""
    limit = orgs_server.settings.max_watcher_frames_per_second
    customer, alice, sam, _ = await asked(orgs_server)
    await send(customer, type="watch_consent", granted=True)
    assert await recv_json(sam) == {"v": 1, "type": "consent", "granted": True}
    await send(customer, type="watch_handshake", data="AAAA")
    assert await recv_json(sam) == {"v": 1, "type": "handshake", "data": "AAAA"}
    await send(sam, type="handshake", data="BBBB")
    assert await recv_json(customer) == {"v": 1, "type": "watch_handshake", "data": "BBBB"}
    await send(customer, type="watch_handshake", data="CCCC")
    assert await recv_json(sam) == {"v": 1, "type": "handshake", "data": "CCCC"}
    assert await recv_json(alice) == {"v": 1, "type": "watcher_joined", "watcher": "Sam"}
    await customer.send(b"\x01paired")
    assert (await alice.recv()) == b"\x01paired"
    assert (await sam.recv()) == b"\x01paired"  # it watches
    for i in range(limit):  # the clock stands still: all in one second
        await sam.send(b"\x07challenge-%d" % i)
        assert (await customer.recv()) == b"\x07challenge-%d" % i
    orgs_server.clock.advance(1.0)  # a new second: as many again
    for i in range(limit):
        await sam.send(b"\x07again-%d" % i)
        assert (await customer.recv()) == b"\x07again-%d" % i
    await sam.send(b"\x07one-too-many")
    assert await closed_with(sam) == (4429, "a supervisor's challenges came too fast")
    assert await recv_json(customer) == {"v": 1, "type": "watcher_left"}
    assert await recv_json(alice) == {"v": 1, "type": "watcher_left"}
    await customer.send(b"\x01the session goes on")
    assert (await alice.recv()) == b"\x01the session goes on"


async def test_a_supervisor_whose_teams_policy_the_session_does_not_apply_may_not_watch(
    orgs_server: RunningServer,
) -> None:
    """The customer's page applies the joined agent's teams' policies: a supervisor of another
    team that serves the site, whose policy keeps statements private, would see them in a
    support agent's session; so would a support supervisor once support's policy changed."""
    import msgspec

    from tandem.directory import Directory, operator
    from tandem.policy import MaskingPolicy
    from tests.conftest import add_user, seed_directory

    async def vip_team(directory: Directory) -> None:
        default = operator("default")
        await directory.add_team(default, "vip")
        await directory.update_site(default, "demo", teams=("support", "vip"))
        strict = msgspec.convert({"version": 1, "pages": {"deny": ["/statements*"]}}, MaskingPolicy)
        await directory.set_team_policy(default, "vip", strict)

    seed_directory(orgs_server.settings.data_dir, vip_team)
    add_user(orgs_server.settings.data_dir, "vic", "supervisor", "Vic", teams=("vip",))
    customer, _, session_id = await sharing(orgs_server)
    vic = await open_agent(orgs_server, login_cookie(orgs_server, "vic"))
    await send(vic, type="watch", session_id=session_id)
    code, reason = await closed_with(vic)
    assert code == 4403 and "'vip' is not applied in this session" in reason
    assert await nothing_arrives(customer)  # the customer was never asked

    async def support_policy(directory: Directory) -> None:
        masks = msgspec.convert({"version": 1, "mask": [".balance"]}, MaskingPolicy)
        await directory.set_team_policy(operator("default"), "support", masks)

    seed_directory(orgs_server.settings.data_dir, support_policy)
    sam = await open_agent(orgs_server, login_cookie(orgs_server, "sam"))
    await send(sam, type="watch", session_id=session_id)
    code, reason = await closed_with(sam)
    assert code == 4403 and "'support' is not applied" in reason
    assert await nothing_arrives(customer)
    assert "message_refused" in audit_actions(orgs_server)
    # A session joined under the team's policy as it is now may be watched by its supervisor.
    fresh, created = await start_session(orgs_server)
    alice = await open_agent(orgs_server, login_cookie(orgs_server))
    await send(alice, type="join", code=created["code"])
    assert (await recv_json(alice))["type"] == "joined"
    told = await recv_json(fresh)  # support's policy goes to the page first
    assert told["type"] == "team_policy" and told["policies"][0]["mask"] == [".balance"]
    assert (await recv_json(fresh))["type"] == "agent_joined"
    await send(fresh, type="consent", granted=True)
    assert (await recv_json(alice))["type"] == "consent"
    fresh_id = created["session_id"]
    sam = await open_agent(orgs_server, login_cookie(orgs_server, "sam"))
    await send(sam, type="watch", session_id=fresh_id)
    assert await recv_json(sam) == {"v": 1, "type": "watching", "session_id": fresh_id}
    assert await recv_json(fresh) == {"v": 1, "type": "watch_request", "watcher": "Sam"}
