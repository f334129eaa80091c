"""Organisations and teams: a curious agent of one organisation tries every API and socket path
with the ids of another, and an agent of the wrong team tries to join."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tandem.config import Settings
from tandem.directory import offline, operator
from tandem.server.app import OPERATIONS
from tests.conftest import (
    ACME_ORIGIN,
    AGENT_PASSWORD,
    RunningServer,
    ServerFactory,
    two_organisations,
)
from tests.grants import of_org
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


def api(server: RunningServer, username: str, password: str = AGENT_PASSWORD) -> httpx.Client:
    """A signed-in client that sends the server's own Origin (as the console does)."""
    return httpx.Client(
        base_url=server.base,
        cookies={"tandem_agent": login_cookie(server, username, password)},
        headers={"origin": server.origin},
    )


async def approve(server: RunningServer, org: str, site_id: str) -> None:
    """The operator vouches for a site's origin (``tandem site approve``)."""
    async with offline(Settings.load(environ={}, data_dir=server.settings.data_dir)) as directory:
        await directory.approve_site(operator(org), site_id)


async def acme_session(server: RunningServer) -> tuple[Any, dict[str, Any]]:
    return await start_session(server, ACME_ORIGIN)


async def test_an_agent_of_another_organisation_cannot_use_its_codes(
    orgs_server: RunningServer,
) -> None:
    _, created = await start_session(orgs_server)  # the demo site: default organisation
    mallory = await open_agent(orgs_server, login_cookie(orgs_server, "mallory"))
    await send(mallory, type="join", code=created["code"])
    assert await recv_json(mallory) == INVALID_CODE  # the same answer as a wrong code
    # Mallory's try did not burn the code: the customer's own organisation can still use it.
    alice = await open_agent(orgs_server, login_cookie(orgs_server, "alice"))
    await send(alice, type="join", code=created["code"])
    assert (await recv_json(alice))["type"] == "joined"


async def test_sessions_belong_to_the_organisation_of_their_site(
    orgs_server: RunningServer,
) -> None:
    _, created = await acme_session(orgs_server)
    alice = await open_agent(orgs_server, login_cookie(orgs_server, "alice"))
    await send(alice, type="join", code=created["code"])
    assert await recv_json(alice) == INVALID_CODE
    mallory = await open_agent(orgs_server, login_cookie(orgs_server, "mallory"))
    await send(mallory, type="join", code=created["code"])
    assert (await recv_json(mallory))["type"] == "joined"


async def test_an_agent_of_another_team_cannot_join_and_the_code_survives(
    orgs_server: RunningServer,
) -> None:
    _, created = await start_session(orgs_server)
    bob = await open_agent(orgs_server, login_cookie(orgs_server, "bob"))  # team billing
    await send(bob, type="join", code=created["code"])
    refused = await recv_json(bob)
    assert refused["code"] == "not_your_team"
    assert "another team" in refused["message"]
    alice = await open_agent(orgs_server, login_cookie(orgs_server, "alice"))  # team support
    await send(alice, type="join", code=created["code"])
    assert (await recv_json(alice))["type"] == "joined"


async def test_a_page_of_another_site_cannot_resume_a_session(orgs_server: RunningServer) -> None:
    _, created = await start_session(orgs_server)
    intruder = await open_customer(orgs_server, origin=ACME_ORIGIN)
    await send(
        intruder,
        type="resume",
        session_id=created["session_id"],
        resume_token=created["resume_token"],
    )
    assert (await closed_with(intruder))[0] == 4404


async def test_an_unregistered_origin_cannot_start_a_session(orgs_server: RunningServer) -> None:
    stranger = await open_customer(orgs_server, origin="http://evil.test")
    assert (await closed_with(stranger))[0] == 4403


def test_admin_paths_with_another_organisations_ids_are_not_found(
    orgs_server: RunningServer,
) -> None:
    """Every admin route that names a thing, called by Acme's admin with the default
    organisation's ids, answers 404 (as for a name that does not exist) and changes nothing."""
    ids = {"username": "alice", "team": "billing", "site_id": "demo"}
    bodies: dict[str, Any] = {
        "/api/users/{username}": {"display_name": "Pwned", "role": "admin"},
        "/api/sites/{site_id}": {"name": "Pwned", "teams": []},
        "/api/teams/{team}": {"policy": None},
        "/api/users/{username}/reset-password": {"password": "pwned-password-1234"},
        "/api/users/{username}/sso": {"subject": "attacker"},
    }
    tried = 0
    with api(orgs_server, "max") as max_:
        for op in OPERATIONS:
            if "{" not in op.path or "{recording_id}" in op.path:
                continue  # recordings: tests/server/test_recordings.py, with real ids
            path = op.path.format(**ids)
            body = bodies.get(op.path) if op.body else None
            response = max_.request(op.method, path, json=body)
            assert response.status_code == 404, (op.method, path, response.text)
            tried += 1
    assert tried >= 6
    with api(orgs_server, "ada") as ada:
        users = {u["username"]: u for u in ada.get("/api/users").json()}
        assert users["alice"]["display_name"] == "Alice"
        assert "billing" in ada.get("/api/teams").json()
        assert [s["site_id"] for s in ada.get("/api/sites").json()] == ["demo"]
        assert ada.get("/api/sites/demo").json()["teams"] == ["support"]


def test_lists_show_only_the_callers_organisation(orgs_server: RunningServer) -> None:
    with api(orgs_server, "max") as max_:
        assert {u["username"] for u in max_.get("/api/users").json()} == {
            "mallory",
            "mary",
            "max",
            "mo",
        }
        assert [s["site_id"] for s in max_.get("/api/sites").json()] == ["acme-shop"]
        assert max_.get("/api/teams").json() == ["support"]
        assert max_.get("/api/org").json()["org_id"] == "acme"


async def test_supervisors_see_only_their_teams_live_sessions(orgs_server: RunningServer) -> None:
    _, demo = await start_session(orgs_server)
    _, acme = await acme_session(orgs_server)
    with api(orgs_server, "sam") as sam, api(orgs_server, "mary") as mary:
        sam_sees = {s["session_id"] for s in sam.get("/api/sessions").json()}
        mary_sees = {s["session_id"] for s in mary.get("/api/sessions").json()}
    assert sam_sees == {demo["session_id"]}
    assert mary_sees == {acme["session_id"]}


async def test_auditors_read_only_their_organisations_trail(orgs_server: RunningServer) -> None:
    _, demo = await start_session(orgs_server)
    _, acme = await acme_session(orgs_server)
    with api(orgs_server, "mo") as mo, api(orgs_server, "aud") as aud:
        acme_trail = mo.get("/api/audit").json()
        default_trail = aud.get("/api/audit").json()
    acme_subjects = {r["subject"] for r in acme_trail}
    default_subjects = {r["subject"] for r in default_trail}
    assert acme["session_id"] in acme_subjects and demo["session_id"] not in acme_subjects
    assert demo["session_id"] in default_subjects and acme["session_id"] not in default_subjects
    assert "mallory" not in {r["actor"] for r in default_trail}


async def test_wrong_codes_across_an_organisation_slow_its_guessers_and_raise_an_alert(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(seed=two_organisations, join_org_free_failures=2, join_free_failures=10)
    mallory = await open_agent(server, login_cookie(server, "mallory"))
    for _ in range(3):  # two free, the third starts the organisation's back-off
        await send(mallory, type="join", code="000-00")
        assert await recv_json(mallory) == INVALID_CODE
    await send(mallory, type="join", code="000-00")  # the guesser is slowed
    refused = await recv_json(mallory)
    assert refused["code"] == "rate_limited" and "Try again in" in refused["message"]
    # An honest colleague with a right code is not refused for someone else's guesses.
    _, acme = await acme_session(server)
    mary = await open_agent(server, login_cookie(server, "mary"))
    await send(mary, type="join", code=acme["code"])
    assert (await recv_json(mary))["type"] == "joined"
    _, created = await start_session(server)  # nor is another organisation
    alice = await open_agent(server, login_cookie(server, "alice"))
    await send(alice, type="join", code=created["code"])
    assert (await recv_json(alice))["type"] == "joined"
    with api(server, "mo") as mo:
        actions = [r["action"] for r in mo.get("/api/audit").json()]
    assert "join_code_alert" in actions


@pytest.mark.parametrize("username", ["ada", "aud"])
async def test_roles_without_live_access_cannot_open_the_agent_socket(
    orgs_server: RunningServer, username: str
) -> None:
    socket = await open_agent(orgs_server, login_cookie(orgs_server, username))
    code, reason = await closed_with(socket)
    assert code == 4403 and "does not allow session.join" in reason
    await asyncio.sleep(0)


def test_sign_in_works_for_every_organisation(orgs_server: RunningServer) -> None:
    for username in ("alice", "mallory"):
        response = httpx.post(
            f"{orgs_server.base}/api/login",
            json={"username": username, "password": AGENT_PASSWORD},
        )
        assert response.status_code == 200


async def test_a_code_of_a_session_held_by_another_process_is_not_burnt(
    orgs_server: RunningServer,
) -> None:
    """Scale-out on one database: a server that does not hold the session leaves its code valid
    for the server that does, until it would have expired: tries there never renew it."""
    import time as clock

    from tandem import crypto
    from tandem.storage.base import TakenCode
    from tandem.storage.sql import SQLStorage

    shared = await SQLStorage.open_sqlite(orgs_server.settings.database_path)
    digest = crypto.SecretBox(orgs_server.settings.secrets_key_path).digest("13579", "join")
    try:
        expires_at = clock.time() + 30  # sooner than a code's lifetime from now
        await shared.put_join_code(of_org("default"), digest, "held-elsewhere", expires_at)
        alice = await open_agent(orgs_server, login_cookie(orgs_server, "alice"))
        await send(alice, type="join", code="135-79")
        assert await recv_json(alice) == INVALID_CODE
        assert await shared.take_join_code(of_org("default"), digest, clock.time()) == TakenCode(
            "held-elsewhere", expires_at
        )
    finally:
        await shared.close()


def _without(name: str, response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.text.replace(repr(name), "'NAME'")


def test_another_organisations_user_or_site_is_answered_like_a_missing_one(
    orgs_server: RunningServer,
) -> None:
    """Acme's admin cannot tell the default organisation's "alice" or "demo" from names that
    exist nowhere: same status, same words."""
    with api(orgs_server, "max") as max_:
        for method, template, taken, missing, body in (
            ("PATCH", "/api/users/{}", "alice", "nobody-here", {"display_name": "X"}),
            ("DELETE", "/api/users/{}", "alice", "nobody-here", None),
            ("GET", "/api/sites/{}", "demo", "no-such-site", None),
            ("PATCH", "/api/sites/{}", "demo", "no-such-site", {"name": "X"}),
        ):
            answers = [
                _without(name, max_.request(method, template.format(name), json=body))
                for name in (taken, missing)
            ]
            assert answers[0] == answers[1], (method, template, answers)
            assert answers[0][0] == 404


async def test_creating_a_name_or_origin_another_organisation_holds_answers_like_any_refusal(
    orgs_server: RunningServer,
) -> None:
    user = {"password": AGENT_PASSWORD, "role": "agent"}
    site = {"teams": ["support"]}
    with api(orgs_server, "ada") as ada:
        claims = {**site, "site_id": "claims", "origin": "https://claims.example"}
        assert ada.post("/api/sites", json=claims).status_code == 201
    await approve(orgs_server, "default", "claims")  # held: only a verified site holds its origin
    with api(orgs_server, "max") as max_:
        others = max_.post("/api/users", json={**user, "username": "alice"})  # the default org's
        own = max_.post("/api/users", json={**user, "username": "mary"})  # Acme's own
        reserved = max_.post("/api/users", json={**user, "username": "server"})
        assert _without("alice", others) == _without("mary", own) == _without("server", reserved)
        assert others.status_code == 409
        others_origin = "https://claims.example"
        others_site = max_.post(
            "/api/sites", json={**site, "site_id": "a1", "origin": others_origin}
        )
        own_site = max_.post("/api/sites", json={**site, "site_id": "a2", "origin": ACME_ORIGIN})
        others_id = max_.post(
            "/api/sites", json={**site, "site_id": "demo", "origin": "https://new.example"}
        )
        assert (
            _without("a1", others_site) == _without("a2", own_site) == _without("demo", others_id)
        )
        assert others_site.status_code == 409


def test_another_organisations_unproved_registration_of_an_origin_neither_blocks_nor_shows(
    orgs_server: RunningServer,
) -> None:
    """The squat: the default organisation's admin registered https://claims.example first,
    unproved. Acme (its real owner, say) registers it all the same, and cannot tell from the
    answer that anyone else did: it reads exactly like an origin nobody registered."""
    site = {"teams": ["support"]}
    with api(orgs_server, "ada") as ada:
        squat = {**site, "site_id": "squat", "origin": "https://claims.example"}
        assert ada.post("/api/sites", json=squat).status_code == 201
    with api(orgs_server, "max") as max_:
        claimed = max_.post(
            "/api/sites", json={**site, "site_id": "a1", "origin": "https://claims.example"}
        )
        fresh = max_.post(
            "/api/sites", json={**site, "site_id": "a2", "origin": "https://fresh.example"}
        )
        assert claimed.status_code == fresh.status_code == 201, claimed.text
        assert {**claimed.json(), "site_id": "", "name": "", "origin": ""} == {
            **fresh.json(),
            "site_id": "",
            "name": "",
            "origin": "",
        }
        assert [s["site_id"] for s in max_.get("/api/sites").json()] == ["a1", "a2", "acme-shop"]
        # The same origin twice in one organisation is still refused.
        again = max_.post(
            "/api/sites", json={**site, "site_id": "a3", "origin": "https://claims.example"}
        )
        assert again.status_code == 409


def test_an_organisation_cannot_register_an_origin_the_operator_allowed(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(seed=two_organisations, allow_origins=("https://shop.example",))
    with api(server, "max") as max_:
        taken = max_.post(
            "/api/sites",
            json={"site_id": "fake-shop", "origin": "https://shop.example", "teams": ["support"]},
        )
        assert taken.status_code == 409 and "not available" in taken.json()["detail"]


def test_a_password_sign_in_is_audited_in_the_users_own_organisation(
    orgs_server: RunningServer,
) -> None:
    # Signed in with a password, like the SSO path: acme's auditor sees acme's sign-ins and
    # sign-outs, and the default organisation's auditor sees none of acme's usernames.
    with api(orgs_server, "mallory") as mallory:
        assert mallory.post("/api/logout").status_code == 204
    with api(orgs_server, "mo") as mo, api(orgs_server, "aud") as aud:
        acme_trail = mo.get("/api/audit").json()
        default_trail = aud.get("/api/audit").json()
    acme_events = {(r["action"], r["actor"]) for r in acme_trail}
    assert {("sign_in", "mallory"), ("sign_out", "mallory"), ("sign_in", "mo")} <= acme_events
    assert ("sign_in", "aud") in {(r["action"], r["actor"]) for r in default_trail}
    assert not {"mallory", "mo"} & {r["actor"] for r in default_trail}
