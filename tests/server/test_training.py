"""Training before live sessions (issue 16, item 5; tandem.training, docs/training.md): the
server refuses sessions and recordings to accounts that have not acknowledged the current policy
or practised within the interval, on the API and the agent socket, and records a completion only
from a practice session it saw. The browser exercise itself is tests/e2e/test_training.py."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from typing import Any

import httpx
import msgspec
import pytest

from tandem.access import Grant
from tandem.audit import AuditRecord
from tandem.exceptions import StorageError
from tandem.server import app as server_app
from tandem.storage.sql import SQLStorage
from tandem.training import DEFAULT_POLICY, DEFAULT_POLICY_VERSION, policy_digest
from tests.conftest import (
    AGENT_PASSWORD,
    RunningServer,
    ServerFactory,
    add_user,
    two_organisations,
)
from tests.oidc_provider import OidcProvider, use_provider
from tests.server.helpers import (
    INVALID_CODE,
    closed_with,
    login_cookie,
    open_agent,
    open_customer,
    recv_json,
    send,
    start_session,
)
from tests.server.test_organisations import api
from tests.server.test_sso import sign_in

YEAR = 365 * 86400.0


def audit(server: RunningServer, auditor_name: str = "aud") -> list[dict[str, Any]]:
    with api(server, auditor_name) as auditor:
        records: list[dict[str, Any]] = auditor.get("/api/audit").json()
    return records


def acknowledge(server: RunningServer, username: str) -> None:
    with api(server, username) as me:
        version = me.get("/api/training").json()["policy"]["version"]
        answer = me.post("/api/training/acknowledge", json={"version": version})
        assert answer.status_code == 200, answer.text


async def reported(server: RunningServer, action: str, session_id: str, auditor: str) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while not any(
        r["action"] == action and r["subject"] == session_id for r in audit(server, auditor)
    ):
        assert asyncio.get_running_loop().time() < deadline, f"no {action} audited"
        await asyncio.sleep(0.05)


async def practise(
    server: RunningServer,
    username: str,
    *,
    control: bool = True,
    auditor: str = "aud",
    customer_on: RunningServer | None = None,
    agent_on: RunningServer | None = None,
) -> str:
    """The practice exercise at the protocol level, as the console and the scripted customer do
    it (the real browsers: tests/e2e/test_training.py), the ticket asked of ``server``, the
    customer's and the agent's sockets on it too unless ``customer_on``, ``agent_on`` (another
    server of its cluster). Returns the practice session's id."""
    with api(server, username) as me:
        answer = me.post("/api/training/practice")
        assert answer.status_code == 200, answer.text
        ticket = answer.json()["ticket"]
    customer = await open_customer(customer_on or server)
    await send(customer, type="create", practice=ticket)
    created = await recv_json(customer)
    assert created["type"] == "created", created
    agent_server = agent_on or server
    agent = await open_agent(agent_server, login_cookie(agent_server, username))
    await send(agent, type="join", code=created["code"])
    assert (await recv_json(agent))["type"] == "joined"
    assert (await recv_json(customer))["type"] == "agent_joined"
    await send(customer, type="handshake", data="BAAAshareA")
    assert (await recv_json(agent))["type"] == "handshake"
    await send(agent, type="handshake", data="BAAAshareB")
    assert (await recv_json(customer))["type"] == "handshake"
    await send(customer, type="consent", granted=True)
    assert (await recv_json(agent))["type"] == "consent"
    await customer.send(b"\x01encrypted-page")
    assert await agent.recv() == b"\x01encrypted-page"
    if control:
        await send(customer, type="report", event="control_granted")
    await send(customer, type="report", event="page_paused")
    # The reports come on the customer's socket, the leave on the agent's: wait until the
    # server has heard the last report (its audit record) before leaving.
    await reported(server, "page_paused", created["session_id"], auditor)
    await send(agent, type="leave")
    await closed_with(agent)
    return str(created["session_id"])


async def test_an_untrained_agent_is_refused_on_join_and_the_code_stays_valid(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(seed=two_organisations)
    add_user(server.settings.data_dir, "newbie", teams=("support",), trained=False)
    _, created = await start_session(server)
    newbie = await open_agent(server, login_cookie(server, "newbie"))
    await send(newbie, type="join", code=created["code"])
    refused = await recv_json(newbie)
    assert refused["code"] == "training_required"
    assert "acknowledge your organisation's privacy and security policy" in refused["message"]
    acknowledge(server, "newbie")
    await send(newbie, type="join", code=created["code"])
    refused = await recv_json(newbie)
    assert refused["code"] == "training_required"
    assert "not been trained yet" in refused["message"]
    # Refused, not a wrong code: a trained colleague still joins with it.
    alice = await open_agent(server, login_cookie(server))
    await send(alice, type="join", code=created["code"])
    assert (await recv_json(alice))["type"] == "joined"
    refusals = [r for r in audit(server) if r["action"] == "join_refused_untrained"]
    assert [(r["actor"], r["details"]["needs"]) for r in refusals] == [
        ("newbie", "policy"),
        ("newbie", "practice"),
    ]


async def test_an_untrained_supervisor_may_not_list_or_watch(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(seed=two_organisations)
    add_user(server.settings.data_dir, "sue", role="supervisor", teams=("support",), trained=False)
    with api(server, "sue") as sue:
        listed = sue.get("/api/sessions")
        assert listed.status_code == 403
        assert "privacy and security policy" in listed.json()["detail"]
    _customer, created = await start_session(server)
    watcher = await open_agent(server, login_cookie(server, "sue"))
    await send(watcher, type="watch", session_id=created["session_id"])
    refused = await recv_json(watcher)
    assert refused["code"] == "training_required"
    acknowledge(server, "sue")
    with api(server, "sue") as sue:
        assert sue.get("/api/sessions").status_code == 200  # the policy is enough to list
    await send(watcher, type="watch", session_id=created["session_id"])
    refused = await recv_json(watcher)
    assert refused["code"] == "training_required"
    assert "practice exercise" in refused["message"]


async def test_an_auditor_reaches_recordings_only_after_acknowledging(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(seed=two_organisations)
    add_user(server.settings.data_dir, "newaud", role="auditor", trained=False)
    with api(server, "newaud") as newaud:
        refused = newaud.get("/api/recordings")
        assert refused.status_code == 403
        assert "policy" in refused.json()["detail"]
        assert newaud.get("/api/audit").status_code == 200  # checking the admin is not gated
        # Auditors do not practise live sessions.
        assert newaud.post("/api/training/practice").status_code == 403
    acknowledge(server, "newaud")
    with api(server, "newaud") as newaud:
        assert newaud.get("/api/recordings").status_code == 200
        standing = newaud.get("/api/training").json()["standing"]
        assert standing["trained"] and not standing["needs_practice"]


async def test_a_new_policy_version_asks_everyone_again(server_factory: ServerFactory) -> None:
    server = server_factory(seed=two_organisations)
    with api(server, "ada") as ada:
        assert ada.get("/api/training/policy").json()["version"] == DEFAULT_POLICY_VERSION
        saved = ada.put("/api/training/policy", json={"text": "Be kind. " * 800})
        assert saved.status_code == 200, saved.text  # longer than the usual 4 KiB body
        assert saved.json()["version"] == DEFAULT_POLICY_VERSION + 1
        same = ada.put("/api/training/policy", json={"text": "Be kind. " * 800})
        assert same.status_code == 409
        too_long = ada.put("/api/training/policy", json={"text": "x" * 20001})
        assert too_long.status_code == 400
    _, created = await start_session(server)
    alice = await open_agent(server, login_cookie(server))
    await send(alice, type="join", code=created["code"])
    refused = await recv_json(alice)
    assert refused["code"] == "training_required"
    assert "version 2" in refused["message"]
    with api(server, "alice") as alice_api:
        stale = alice_api.post("/api/training/acknowledge", json={"version": 1})
        assert stale.status_code == 409
    acknowledge(server, "alice")
    await send(alice, type="join", code=created["code"])
    assert (await recv_json(alice))["type"] == "joined"
    actions = [(r["action"], r["details"].get("version")) for r in audit(server)]
    assert ("policy_changed", 2) in actions
    assert ("policy_acknowledged", 2) in actions


async def test_a_rejoin_after_a_new_policy_version_waits_for_the_acknowledgement(
    server_factory: ServerFactory,
) -> None:
    """A rejoin is a join: an agent whose console reloads after the admin published a new
    policy version takes the session up only once it acknowledged it; the session waits."""
    server = server_factory(seed=two_organisations)
    cookie = login_cookie(server)
    customer, created = await start_session(server)
    alice = await open_agent(server, cookie)
    await send(alice, type="join", code=created["code"])
    joined = await recv_json(alice)
    assert joined["type"] == "joined"
    assert (await recv_json(customer))["type"] == "agent_joined"
    await send(customer, type="consent", granted=True)
    assert (await recv_json(alice))["type"] == "consent"
    with api(server, "ada") as ada:
        assert ada.put("/api/training/policy", json={"text": "New rules."}).status_code == 200
    await alice.close(1001)  # the console reloads
    assert await recv_json(customer) == {"v": 1, "type": "peer", "connected": False}
    again = await open_agent(server, cookie)
    rejoin = {"session_id": joined["session_id"], "resume_token": joined["resume_token"]}
    await send(again, type="rejoin", **rejoin)
    refused = await recv_json(again)
    assert (refused["type"], refused["code"]) == ("error", "training_required")
    assert "version 2" in refused["message"]
    acknowledge(server, "alice")
    await send(again, type="rejoin", **rejoin)
    answer = await recv_json(again)
    assert (answer["type"], answer["resumed"]) == ("joined", True)
    assert await recv_json(customer) == {"v": 1, "type": "peer", "connected": True}
    refusals = [r for r in audit(server) if r["action"] == "join_refused_untrained"]
    assert [r["details"]["needs"] for r in refusals] == ["policy"]
    await customer.send(b"\x01 page content")  # the session went on: content reaches the agent
    assert await again.recv() == b"\x01 page content"


async def test_an_agent_in_a_live_session_is_told_of_a_new_policy_and_the_session_goes_on(
    server_factory: ServerFactory,
) -> None:
    """A session under way is not cut when a new policy version is published (the customer would
    be left mid-help), but the agent is told at once, once per version, in the console's own
    words for the code (``policy_changed``); recording (and joining, rejoining, watching: the
    tests above) waits for the acknowledgement. Before, the agent heard nothing until a refusal."""
    server = server_factory(seed=two_organisations)
    customer, created = await start_session(server)
    alice = await open_agent(server, login_cookie(server))
    await send(alice, type="join", code=created["code"])
    assert (await recv_json(alice))["type"] == "joined"
    assert (await recv_json(customer))["type"] == "agent_joined"
    await send(customer, type="consent", granted=True)
    assert (await recv_json(alice))["type"] == "consent"
    with api(server, "ada") as ada:
        assert ada.put("/api/training/policy", json={"text": "New rules."}).status_code == 200
    told = await recv_json(alice)
    assert (told["type"], told["code"]) == ("error", "policy_changed")
    await customer.send(b"\x01 page content")  # the session goes on
    assert await alice.recv() == b"\x01 page content"
    await send(alice, type="record")
    refused = await recv_json(alice)
    assert refused["code"] == "training_required"  # told once: the next message is the refusal
    with api(server, "ada") as ada:
        assert ada.put("/api/training/policy", json={"text": "Newer rules."}).status_code == 200
    assert (await recv_json(alice))["code"] == "policy_changed"  # a newer version: told again
    acknowledge(server, "alice")
    await send(alice, type="record")  # past the gate now: this organisation has no key
    assert (await recv_json(alice))["code"] == "no_recording_key"


async def test_an_agent_asks_to_record_only_under_the_current_policy(
    server_factory: ServerFactory,
) -> None:
    """Recording is gated on the current policy like the recordings API: an agent in a session
    when the admin publishes a new version acknowledges it before asking to record. The
    refusal's code is ``training_required``: the console shows its own words for a code, never
    the server's, and for ``forbidden`` they were "Not allowed for your account.", which sent
    the agent to an admin instead of to the policy."""
    server = server_factory(seed=two_organisations)
    customer, created = await start_session(server)
    alice = await open_agent(server, login_cookie(server))
    await send(alice, type="join", code=created["code"])
    assert (await recv_json(alice))["type"] == "joined"
    assert (await recv_json(customer))["type"] == "agent_joined"
    await send(customer, type="consent", granted=True)
    assert (await recv_json(alice))["type"] == "consent"
    with api(server, "ada") as ada:
        assert ada.put("/api/training/policy", json={"text": "Record less."}).status_code == 200
    assert (await recv_json(alice))["code"] == "policy_changed"  # told at once
    await send(alice, type="record")
    refused = await recv_json(alice)
    assert refused["code"] == "training_required" and "(version 2) first" in refused["message"]
    acknowledge(server, "alice")
    await send(alice, type="record")  # now past the gate: this organisation has no key
    assert (await recv_json(alice))["code"] == "no_recording_key"
    refusals = [r for r in audit(server) if r["action"] == "message_refused"]
    assert [(r["details"]["message"], r["subject"]) for r in refusals] == [
        ("record", created["session_id"])
    ]


async def test_training_expires_after_the_organisations_interval(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(seed=two_organisations)
    server.clock.advance(YEAR + 86400)  # 366 days after the accounts' training
    _, created = await start_session(server)
    alice = await open_agent(server, login_cookie(server))
    await send(alice, type="join", code=created["code"])
    refused = await recv_json(alice)
    assert refused["code"] == "training_required"
    assert "your training expired" in refused["message"]
    with api(server, "ada") as ada:
        roster = ada.put("/api/training/interval", json={"days": 400})
        assert roster.status_code == 200, roster.text
        assert roster.json()["interval_days"] == 400
        assert ada.put("/api/training/interval", json={"days": 0}).status_code == 400
    await send(alice, type="join", code=created["code"])
    assert (await recv_json(alice))["type"] == "joined"
    with api(server, "ada") as ada:
        users = {u["username"]: u for u in ada.get("/api/training/users").json()["users"]}
    assert users["alice"]["trained"] and users["alice"]["interval_days"] == 400
    assert ("training_interval_changed", 400) in [
        (r["action"], r["details"].get("days")) for r in audit(server)
    ]


async def test_the_practice_exercise_trains_an_agent_who_then_joins_a_real_session(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(seed=two_organisations)
    add_user(server.settings.data_dir, "newbie", teams=("support",), trained=False)
    with api(server, "newbie") as newbie:
        # The policy first: the completion names the version.
        assert newbie.post("/api/training/practice").status_code == 403
    acknowledge(server, "newbie")
    session_id = await practise(server, "newbie")
    with api(server, "newbie") as newbie:
        # The console must say what it checked inside the encrypted channel.
        assert newbie.post("/api/training/complete", json={"steps": []}).status_code == 409
        done = newbie.post("/api/training/complete", json={"steps": ["masked", "refused"]})
        assert done.status_code == 200, done.text
        assert done.json()["session_id"] == session_id
        assert done.json()["policy_version"] == DEFAULT_POLICY_VERSION
        again = newbie.post("/api/training/complete", json={"steps": ["masked", "refused"]})
        assert again.status_code == 409  # one completion per practice session
    _, created = await start_session(server)
    newbie_socket = await open_agent(server, login_cookie(server, "newbie"))
    await send(newbie_socket, type="join", code=created["code"])
    assert (await recv_json(newbie_socket))["type"] == "joined"
    records = audit(server)
    practice_records = [r for r in records if r["subject"] == session_id]
    assert practice_records and all(
        r["details"].get("practice") == "newbie"
        for r in practice_records
        if r["action"] != "training_completed"
    )
    completed = [r for r in records if r["action"] == "training_completed"]
    assert [(r["actor"], r["details"]["version"]) for r in completed] == [("newbie", 1)]
    assert "practice_started" in [r["action"] for r in records]


async def test_a_practice_without_every_step_records_nothing(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(seed=two_organisations)
    add_user(server.settings.data_dir, "newbie", teams=("support",), trained=False)
    acknowledge(server, "newbie")
    await practise(server, "newbie", control=False)
    with api(server, "newbie") as newbie:
        refused = newbie.post("/api/training/complete", json={"steps": ["masked", "refused"]})
        assert refused.status_code == 409
        assert "missing control" in refused.json()["detail"]
        assert newbie.get("/api/training").json()["standing"]["needs_practice"]


async def test_practice_cannot_be_used_to_reach_anything_else(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(seed=two_organisations)
    add_user(server.settings.data_dir, "newbie", teams=("support",), trained=False)
    acknowledge(server, "newbie")
    with api(server, "newbie") as newbie:
        ticket = newbie.post("/api/training/practice").json()["ticket"]
    # A forged or changed ticket is refused.
    payload, _, mac = ticket.partition(".")
    for forged in (f"{payload}.{'0' * len(mac)}", f"{payload[:-2]}AA.{mac}"):
        customer = await open_customer(server)
        await send(customer, type="create", practice=forged)
        assert (await closed_with(customer))[0] == 4401
    # Only the server's own pages start practice sessions: not a customer site's.
    customer = await open_customer(server, "http://acme.test")
    await send(customer, type="create", practice=ticket)
    assert (await closed_with(customer))[0] == 4403
    customer = await open_customer(server)
    await send(customer, type="create", practice=ticket)
    created = await recv_json(customer)
    assert created["type"] == "created"
    # Single use.
    replay = await open_customer(server)
    await send(replay, type="create", practice=ticket)
    assert (await closed_with(replay))[0] == 4401
    # Nobody else joins it (the same answer as a wrong code), not listed, not watched.
    alice = await open_agent(server, login_cookie(server))
    await send(alice, type="join", code=created["code"])
    assert await recv_json(alice) == INVALID_CODE
    with api(server, "sam") as sam:
        assert sam.get("/api/sessions").json() == []
    sam_socket = await open_agent(server, login_cookie(server, "sam"))
    await send(sam_socket, type="watch", session_id=created["session_id"])
    assert (await closed_with(sam_socket))[0] == 4404
    # Its own agent joins (untrained), and it is never recorded.
    newbie = await open_agent(server, login_cookie(server, "newbie"))
    await send(newbie, type="join", code=created["code"])
    assert (await recv_json(newbie))["type"] == "joined"
    await send(newbie, type="record")
    refused = await recv_json(newbie)
    assert refused["code"] == "forbidden"
    assert "practice sessions are not recorded" in refused["message"]
    # And the practice session did not make newbie trained.
    _, real = await start_session(server)
    again = await open_agent(server, login_cookie(server, "newbie"))
    await send(again, type="join", code=real["code"])
    assert (await recv_json(again))["code"] == "training_required"


async def test_admins_see_who_is_trained(server_factory: ServerFactory) -> None:
    server = server_factory(seed=two_organisations)
    add_user(server.settings.data_dir, "newbie", teams=("support",), trained=False)
    with api(server, "ada") as ada:
        roster = ada.get("/api/training/users").json()
    assert roster["interval_days"] == 365 and roster["policy_version"] == 1
    users = {u["username"]: u for u in roster["users"]}
    assert users["alice"]["trained"] and users["alice"]["trained_on_version"] == 1
    assert not users["newbie"]["trained"] and users["newbie"]["trained_at"] is None
    assert users["ada"]["trained"]  # admins neither acknowledge nor practise
    assert "mallory" not in users  # another organisation's
    with api(server, "max") as max_:
        acme = {u["username"] for u in max_.get("/api/training/users").json()["users"]}
    assert "mallory" in acme and "newbie" not in acme
    with api(server, "alice") as alice:
        assert alice.get("/api/training/users").status_code == 403
        assert alice.put("/api/training/policy", json={"text": "mine"}).status_code == 403


async def test_a_deleted_accounts_training_goes_with_it(server_factory: ServerFactory) -> None:
    server = server_factory(seed=two_organisations)
    with api(server, "ada") as ada:
        assert ada.delete("/api/users/bob").status_code == 204
        again = ada.post(
            "/api/users",
            json={"username": "bob", "password": "green-violin-sofa-17", "role": "agent"},
        )
        assert again.status_code == 201, again.text
        users = {u["username"]: u for u in ada.get("/api/training/users").json()["users"]}
    # A new account of the same name starts untrained, whatever the old one had done.
    assert not users["bob"]["trained"] and users["bob"]["acknowledged_version"] is None


def audit_events(server: RunningServer, action: str) -> float:
    page = httpx.get(
        f"{server.base}/metrics", headers={"authorization": "Bearer metrics-secret-for-tests"}
    ).text
    found = re.search(rf'^tandem_audit_events_total\{{action="{action}"\}} (\S+)$', page, re.M)
    return float(found.group(1)) if found else 0.0


async def test_practice_sessions_are_counted_apart_from_customers_sessions(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(seed=two_organisations, metrics_token="metrics-secret-for-tests")
    add_user(server.settings.data_dir, "newbie", teams=("support",), trained=False)
    acknowledge(server, "newbie")
    before = audit_events(server, "session_created"), audit_events(server, "agent_joined")
    practice_before = audit_events(server, "practice_session_created")
    await practise(server, "newbie")
    assert (audit_events(server, "session_created"), audit_events(server, "agent_joined")) == before
    assert audit_events(server, "practice_session_created") == practice_before + 1


async def test_another_organisations_agent_practises_in_its_own_organisation(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(seed=two_organisations)
    add_user(server.settings.data_dir, "acmenew", org="acme", teams=("support",), trained=False)
    acknowledge(server, "acmenew")
    session_id = await practise(server, "acmenew", auditor="mo")
    with api(server, "acmenew") as me:
        done = me.post("/api/training/complete", json={"steps": ["masked", "refused"]})
        assert done.status_code == 200, done.text
    acme = audit(server, "mo")
    assert "training_completed" in [r["action"] for r in acme if r["subject"] == session_id]
    assert session_id not in [r["subject"] for r in audit(server)]  # nothing in default's trail


async def test_every_training_answer_is_in_its_declared_type(server_factory: ServerFactory) -> None:
    """Each /api/training route's answer decodes strictly as the type it declares (OpenAPI and
    the console's generated types come from those)."""
    server = server_factory(seed=two_organisations)
    add_user(server.settings.data_dir, "newbie", teams=("support",), trained=False)

    def check(username: str, method: str, path: str, body: object | None = None) -> None:
        operation = server_app.operation_for(method, path)
        assert operation is not None and operation.returns is not None, path
        with api(server, username) as caller:
            answer = caller.request(method, path, json=body)
        assert answer.status_code == 200, (path, answer.text)
        msgspec.json.decode(answer.content, type=operation.returns, strict=True)

    check("newbie", "GET", "/api/training")
    check("newbie", "POST", "/api/training/acknowledge", {"version": 1})
    check("newbie", "POST", "/api/training/practice")
    await practise(server, "newbie")
    check("newbie", "POST", "/api/training/complete", {"steps": ["masked", "refused"]})
    check("ada", "GET", "/api/training/policy")
    check("ada", "PUT", "/api/training/policy", {"text": "Our own policy."})
    check("ada", "GET", "/api/training/users")
    check("ada", "PUT", "/api/training/interval", {"days": None})


async def test_a_practice_claimed_late_counts_from_when_it_happened(
    server_factory: ServerFactory,
) -> None:
    """Attack: practise once, keep the evidence unclaimed, and claim it only when the last
    training runs out: the completion must be dated by the practice, not by the claim, or the
    interval (PCI DSS 12.6.3: 12 months) stretches by as long as the evidence is kept."""
    server = server_factory(seed=two_organisations)
    add_user(server.settings.data_dir, "newbie", teams=("support",), trained=False)
    with api(server, "ada") as ada:  # evidence kept longer than the interval
        assert ada.patch("/api/org", json={"retention_days": 730}).status_code == 200
    acknowledge(server, "newbie")
    practice_id = await practise(server, "newbie")
    await reported(server, "session_ended", practice_id, "aud")  # its evidence is stored
    server.clock.advance(300 * 86400)
    with api(server, "newbie") as newbie:
        done = newbie.post("/api/training/complete", json={"steps": ["masked", "refused"]})
        assert done.status_code == 200, done.text
        standing = newbie.get("/api/training").json()["standing"]
    assert standing["due_at"] == done.json()["completed_at"] + YEAR
    server.clock.advance(66 * 86400)  # 366 days after the practice
    _, created = await start_session(server)
    socket = await open_agent(server, login_cookie(server, "newbie"))
    await send(socket, type="join", code=created["code"])
    refused = await recv_json(socket)
    assert refused["code"] == "training_required"
    assert "your training expired" in refused["message"]


async def test_an_admin_cannot_acknowledge_the_policy_in_an_agents_name(
    server_factory: ServerFactory,
) -> None:
    """Attack: the admin resets an untrained agent's password to one it knows (or creates the
    account and knows its first password), signs in as the agent and acknowledges the policy:
    the trail would show the agent's own word. An acknowledgement needs the account's own
    password and its own second factor."""
    server = server_factory(seed=two_organisations)
    add_user(server.settings.data_dir, "newbie", teams=("support",), trained=False)
    add_user(server.settings.data_dir, "fresh", teams=("support",), trained=False, mfa_exempt=False)
    temporary = "temporary-pass-4821"
    with api(server, "ada") as ada:
        reset = ada.post("/api/users/newbie/reset-password", json={"password": temporary})
        assert reset.status_code == 204, reset.text
    for username, password, why in (
        ("newbie", temporary, "choose a new password first"),
        ("fresh", AGENT_PASSWORD, "set up two-step sign-in first"),
    ):
        cookie = login_cookie(server, username, password)
        with httpx.Client(
            base_url=server.base,
            cookies={"tandem_agent": cookie},
            headers={"origin": server.origin},
        ) as impostor:
            refused = impostor.post("/api/training/acknowledge", json={"version": 1})
            assert refused.status_code == 403, refused.text
            assert why in refused.json()["detail"]
    with api(server, "ada") as ada:
        users = {u["username"]: u for u in ada.get("/api/training/users").json()["users"]}
    assert users["newbie"]["acknowledged_version"] is None
    assert users["fresh"]["acknowledged_version"] is None
    refusals = [
        (r["actor"], r["details"]["route"])
        for r in audit(server)
        if r["action"] == "access_refused"
    ]
    assert ("newbie", "/api/training/acknowledge") in refusals
    assert ("fresh", "/api/training/acknowledge") in refusals


async def test_an_untrained_account_looping_on_a_refusal_does_not_flood_the_trail(
    server_factory: ServerFactory,
) -> None:
    """Attack: a supervisor who acknowledged the policy but never practised lists a live
    session and asks to watch it in a loop (an untrained agent with a valid code can loop
    on join the same way): the socket stays open and each refusal was written in full.
    They count against the account's refusal budget like any other refusal."""
    server = server_factory(seed=two_organisations, refusal_audit_burst=3)
    add_user(server.settings.data_dir, "sue", role="supervisor", teams=("support",), trained=False)
    add_user(server.settings.data_dir, "newbie", teams=("support",), trained=False)
    acknowledge(server, "sue")
    _customer, created = await start_session(server)
    with api(server, "sue") as sue:
        assert [s["session_id"] for s in sue.get("/api/sessions").json()] == [created["session_id"]]
    watcher = await open_agent(server, login_cookie(server, "sue"))
    newbie = await open_agent(server, login_cookie(server, "newbie"))
    for _ in range(8):
        await send(watcher, type="watch", session_id=created["session_id"])
        assert (await recv_json(watcher))["code"] == "training_required"
        await send(newbie, type="join", code=created["code"])
        assert (await recv_json(newbie))["code"] == "training_required"
    actions = [(r["actor"], r["action"]) for r in audit(server)]
    assert actions.count(("sue", "watch_refused_untrained")) == 3
    assert actions.count(("newbie", "join_refused_untrained")) == 3


async def test_one_account_cannot_take_every_practice_session(
    server_factory: ServerFactory,
) -> None:
    """Attack: an agent asks for ticket after ticket and starts a practice session with each,
    never joining: every organisation's practice sessions wait under the server's own practice
    site (``max_waiting_per_site``), and in the agent's organisation's quota, so one account
    could keep every colleague, and every other organisation, from practising (and its own
    organisation's customers from getting a session). One account holds at most
    ``max_waiting_practice_per_account`` waiting; another account still practises."""
    server = server_factory(seed=two_organisations, max_waiting_practice_per_account=2)
    for username in ("newbie", "other"):
        add_user(server.settings.data_dir, username, teams=("support",), trained=False)
        acknowledge(server, username)

    async def start(username: str) -> Any:
        with api(server, username) as me:
            ticket = me.post("/api/training/practice").json()["ticket"]
        customer = await open_customer(server)
        await send(customer, type="create", practice=ticket)
        return customer

    for _ in range(2):
        assert (await recv_json(await start("newbie")))["type"] == "created"
    refused = await closed_with(await start("newbie"))
    assert refused[0] == 4429 and "practice sessions" in refused[1]
    assert (await recv_json(await start("other")))["type"] == "created"


async def test_forged_acknowledgements_and_completions_are_refused(
    server_factory: ServerFactory,
) -> None:
    """Held: an acknowledgement names only a version, the current one, and is the signed-in
    account's own (no field names another account or organisation); a completion comes only
    from the account's own practice, once, even when two requests race for it."""
    server = server_factory(seed=two_organisations)
    for username in ("newbie", "other"):
        add_user(server.settings.data_dir, username, teams=("support",), trained=False)
    with api(server, "newbie") as newbie:
        for body, status in (
            ({"version": 1, "username": "other"}, 400),
            ({"version": 1, "org": "acme"}, 400),
            ({"version": 0}, 400),
            ({"version": 2}, 409),  # not (yet) the current one
        ):
            assert newbie.post("/api/training/acknowledge", json=body).status_code == status
    acknowledge(server, "newbie")
    acknowledge(server, "other")
    practice_id = await practise(server, "newbie")
    await reported(server, "session_ended", practice_id, "aud")
    with api(server, "other") as other:  # newbie's practice is not other's
        stolen = other.post("/api/training/complete", json={"steps": ["masked", "refused"]})
        assert stolen.status_code == 409, stolen.text
    async with httpx.AsyncClient(
        base_url=server.base,
        cookies={"tandem_agent": login_cookie(server, "newbie")},
        headers={"origin": server.origin},
    ) as newbie_async:
        answers = await asyncio.gather(
            *(
                newbie_async.post("/api/training/complete", json={"steps": ["masked", "refused"]})
                for _ in range(4)
            )
        )
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409]
    with api(server, "ada") as ada:
        users = {u["username"]: u for u in ada.get("/api/training/users").json()["users"]}
    assert users["newbie"]["trained"] and not users["other"]["trained"]
    completed = [r for r in audit(server) if r["action"] == "training_completed"]
    assert [(r["actor"], r["subject"], r["details"]["version"]) for r in completed] == [
        ("newbie", practice_id, 1)
    ]


async def test_a_sign_in_made_before_a_new_policy_or_through_the_provider_is_checked_again(
    server_factory: ServerFactory,
) -> None:
    """Held: the requirement is read from storage at each join, never from the sign-in. A socket
    opened before a new policy version is refused on its next join; an account signed in
    through the organisation's identity provider is refused like a password one, and may
    acknowledge (the provider runs its own second factor)."""
    server = server_factory(seed=two_organisations, test_private_network=True)
    add_user(server.settings.data_dir, "newbie", teams=("support",), trained=False)
    alice = await open_agent(server, login_cookie(server))  # before the new version
    with api(server, "ada") as ada:
        assert ada.put("/api/training/policy", json={"text": "Version two."}).status_code == 200
    _, created = await start_session(server)
    await send(alice, type="join", code=created["code"])
    refused = await recv_json(alice)
    assert refused["code"] == "training_required" and "version 2" in refused["message"]
    provider = OidcProvider(user={"sub": "u-9", "preferred_username": "newbie"}).start()
    try:
        provider.redirect_uris.add(f"{server.base}/api/sso/callback")
        with api(server, "ada") as ada:
            use_provider(ada, provider, {"newbie": "u-9"})
        with httpx.Client() as browser:
            assert sign_in(server, browser).status_code == 303
            cookie = browser.cookies["tandem_agent"]
    finally:
        provider.stop()
    newbie = await open_agent(server, cookie)
    await send(newbie, type="join", code=created["code"])
    refused = await recv_json(newbie)
    assert refused["code"] == "training_required" and "version 2" in refused["message"]
    with httpx.Client(
        base_url=server.base, cookies={"tandem_agent": cookie}, headers={"origin": server.origin}
    ) as me:
        acknowledged = me.post("/api/training/acknowledge", json={"version": 2})
        assert acknowledged.status_code == 200, acknowledged.text
    await send(newbie, type="join", code=created["code"])
    refused = await recv_json(newbie)
    assert refused["code"] == "training_required" and "not been trained yet" in refused["message"]


async def test_acknowledging_again_writes_nothing(server_factory: ServerFactory) -> None:
    """Attack: an agent posts its acknowledgement in a loop: each wrote the database and a
    ``policy_acknowledged`` record (an allowed action, so no refusal budget bounds it). The
    first acknowledgement of a version stands; the next ones are answered and write nothing."""
    server = server_factory(seed=two_organisations)
    add_user(server.settings.data_dir, "newbie", teams=("support",), trained=False)
    with api(server, "newbie") as newbie:
        for _ in range(5):
            answer = newbie.post("/api/training/acknowledge", json={"version": 1})
            assert answer.status_code == 200, answer.text
            assert answer.json()["acknowledged_version"] == 1
    with api(server, "ada") as ada:
        assert ada.put("/api/training/policy", json={"text": "Version two."}).status_code == 200
    acknowledge(server, "newbie")
    acknowledge(server, "newbie")
    acknowledged = [
        (r["actor"], r["details"]["version"])
        for r in audit(server)
        if r["action"] == "policy_acknowledged"
    ]
    assert acknowledged == [("newbie", 1), ("newbie", 2)]


async def test_an_acknowledgement_whose_record_failed_is_recorded_when_given_again(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database fails as an agent acknowledges: the acknowledgement was stored, then its
    ``policy_acknowledged`` record (what auditors show as evidence, with the text's SHA-256)
    failed (503). The agent acknowledges again, as told, and found it already given: answered,
    nothing written, so the trail never had it. Now the record is written first."""
    server = server_factory(seed=two_organisations)
    add_user(server.settings.data_dir, "newbie", teams=("support",), trained=False)
    failed: list[bool] = []
    appending = SQLStorage.append_audit

    async def fails_once(
        self: SQLStorage, grant: Grant, at: float, action: str, *args: Any, **kwargs: Any
    ) -> AuditRecord:
        if action == "policy_acknowledged" and not failed:
            failed.append(True)
            raise StorageError("the database did not answer")
        return await appending(self, grant, at, action, *args, **kwargs)

    monkeypatch.setattr(SQLStorage, "append_audit", fails_once)
    with api(server, "newbie") as newbie:
        answers = [newbie.post("/api/training/acknowledge", json={"version": 1}) for _ in "ab"]
    assert [a.status_code for a in answers] == [503, 200]
    acknowledged = [r["actor"] for r in audit(server) if r["action"] == "policy_acknowledged"]
    assert acknowledged == ["newbie"]


async def test_asking_for_practice_tickets_in_a_loop_writes_nothing(
    server_factory: ServerFactory,
) -> None:
    """Attack: an agent asks for practice tickets in a loop: each wrote a ``practice_started``
    record, an allowed action no refusal budget bounds. A ticket alone reaches nothing; the
    record is written when a ticket starts its session (at most
    ``max_waiting_practice_per_account`` waiting)."""
    server = server_factory(seed=two_organisations)
    add_user(server.settings.data_dir, "newbie", teams=("support",), trained=False)
    acknowledge(server, "newbie")
    with api(server, "newbie") as newbie:
        tickets = [newbie.post("/api/training/practice").json()["ticket"] for _ in range(5)]
    customer = await open_customer(server)
    await send(customer, type="create", practice=tickets[-1])
    created = await recv_json(customer)
    assert created["type"] == "created"
    started = [
        (r["actor"], r["subject"], r["details"]["practice"])
        for r in audit(server)
        if r["action"] == "practice_started"
    ]
    assert started == [("newbie", created["session_id"], "newbie")]


async def test_the_trail_says_which_policy_text_was_acknowledged(
    server_factory: ServerFactory,
) -> None:
    """Attack: someone who can write the database rewrites the text of a version agents have
    acknowledged (the version number stays): the trail named only the version, so nobody could
    tell which text they accepted. Each publication and acknowledgement records the text's
    SHA-256 in the (MACed) trail; the rewritten text no longer matches it."""
    server = server_factory(seed=two_organisations)
    add_user(server.settings.data_dir, "newbie", teams=("support",), trained=False)
    acknowledge(server, "newbie")
    with api(server, "ada") as ada:
        assert ada.put("/api/training/policy", json={"text": "Version two."}).status_code == 200
    acknowledge(server, "newbie")
    records = audit(server)
    acknowledged = {
        r["details"]["version"]: r["details"]["sha256"]
        for r in records
        if r["action"] == "policy_acknowledged"
    }
    published = [r["details"]["sha256"] for r in records if r["action"] == "policy_changed"]
    assert acknowledged[1] == policy_digest(DEFAULT_POLICY)
    assert acknowledged[2] == published[0] == policy_digest("Version two.")
    with sqlite3.connect(server.settings.data_dir / "tandem.sqlite3") as db:
        db.execute("UPDATE training_policies SET text = 'Anything goes.' WHERE version = 2")
    with api(server, "newbie") as newbie:
        shown = newbie.get("/api/training").json()["policy"]
    assert shown["version"] == 2
    assert policy_digest(shown["text"]) != acknowledged[2]  # the trail tells the change
