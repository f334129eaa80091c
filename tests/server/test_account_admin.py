"""Issue 15, item 8: an admin disables and enables accounts, and reads the audit trail a page at a
time with a search. Each is tried by the wrong roles and by another organisation's admin."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import AGENT_PASSWORD, RunningServer, ServerFactory, two_organisations
from tests.server.helpers import closed_with, login_cookie, open_agent
from tests.server.test_organisations import api

SIGNED_OUT = (4401, "signed out: sign in again")


@pytest.fixture
def orgs(server_factory: ServerFactory) -> RunningServer:
    return server_factory(seed=two_organisations, agent_reauth_seconds=3600.0)


def sign_in(server: RunningServer, username: str) -> httpx.Response:
    return httpx.post(
        f"{server.base}/api/login",
        json={"username": username, "password": AGENT_PASSWORD},
        headers={"origin": server.origin},
    )


def audit(server: RunningServer, action: str) -> list[dict[str, object]]:
    with api(server, "aud") as aud:
        return [r for r in aud.get("/api/audit").json() if r["action"] == action]


async def test_a_disabled_account_loses_its_sign_ins_and_sockets_until_enabled(
    orgs: RunningServer,
) -> None:
    cookie = login_cookie(orgs, "alice")
    socket = await open_agent(orgs, cookie)
    with api(orgs, "ada") as ada:
        disabled = ada.post("/api/users/alice/disable")
        assert disabled.status_code == 200, disabled.text
        assert disabled.json()["disabled"] is True
        listed = {u["username"]: u for u in ada.get("/api/users").json()}
        assert listed["alice"]["disabled"] is True and listed["sam"]["disabled"] is False
    assert await closed_with(socket) == SIGNED_OUT
    me = httpx.get(f"{orgs.base}/api/me", cookies={"tandem_agent": cookie})
    assert me.status_code == 401
    refused = sign_in(orgs, "alice")
    assert refused.status_code == 401
    assert "disabled" in refused.json()["detail"]
    # A wrong password on a disabled account says only what any wrong password says.
    wrong = httpx.post(
        f"{orgs.base}/api/login",
        json={"username": "alice", "password": "not-the-password-123"},
        headers={"origin": orgs.origin},
    )
    assert wrong.status_code == 401 and "disabled" not in wrong.json()["detail"]

    with api(orgs, "ada") as ada:
        enabled = ada.post("/api/users/alice/enable")
        assert enabled.status_code == 200 and enabled.json()["disabled"] is False
    assert sign_in(orgs, "alice").status_code == 200
    [off] = audit(orgs, "user_disabled")
    [on] = audit(orgs, "user_enabled")
    assert (off["actor"], off["subject"]) == ("ada", "alice")
    assert (on["actor"], on["subject"]) == ("ada", "alice")


def test_only_an_admin_of_the_same_organisation_disables_and_never_itself_or_an_auditor(
    orgs: RunningServer,
) -> None:
    for username in ("alice", "sam", "aud", "bob"):  # agent, supervisor, auditor, agent
        with api(orgs, username) as someone:
            for verb in ("disable", "enable"):
                answer = someone.post(f"/api/users/ada/{verb}")
                assert answer.status_code == 403, (username, verb, answer.text)
    with api(orgs, "max") as max_:  # Acme's admin, with the default organisation's names
        for name in ("alice", "ada", "nobody"):
            answer = max_.post(f"/api/users/{name}/disable")
            assert answer.status_code == 404, (name, answer.text)
            assert answer.json()["detail"] == f"no user named {name!r}"
    with api(orgs, "ada") as ada:
        own = ada.post("/api/users/ada/disable")
        assert own.status_code == 409 and "your own account" in own.json()["detail"]
        auditor = ada.post("/api/users/aud/disable")
        assert auditor.status_code == 403 and "operator" in auditor.json()["detail"]
        users = {u["username"]: u["disabled"] for u in ada.get("/api/users").json()}
    assert not any(users.values()), users
    assert sign_in(orgs, "alice").status_code == 200
    assert sign_in(orgs, "ada").status_code == 200
    assert audit(orgs, "user_disabled") == []


def test_the_audit_search_pages_newest_first_and_filters_within_the_organisation(
    orgs: RunningServer,
) -> None:
    for _ in range(3):
        assert sign_in(orgs, "alice").status_code == 200
    assert sign_in(orgs, "mallory").status_code == 200  # Acme
    with api(orgs, "aud") as aud:
        everything = aud.get("/api/audit").json()
        newest = aud.get("/api/audit/search?limit=2").json()
        assert len(newest) == 2 and newest[0]["seq"] > newest[1]["seq"]
        assert newest[0]["seq"] > max(r["seq"] for r in everything)  # the read just recorded
        older = aud.get(f"/api/audit/search?limit=2&before={newest[-1]['seq']}").json()
        assert older and older[0]["seq"] < newest[-1]["seq"]
        found = aud.get("/api/audit/search?q=ALICE").json()
        assert len([r for r in found if r["action"] == "sign_in"]) == 3
        assert all("alice" in f"{r['action']} {r['actor']} {r['subject']}" for r in found)
        assert aud.get("/api/audit/search?q=mallory").json() == []  # Acme's record
        assert aud.get("/api/audit/search?q=%25").json() == []  # a wildcard is plain text
        for query in ("before=-1", "limit=0", "limit=x", "q=" + "x" * 101):
            assert aud.get(f"/api/audit/search?{query}").status_code == 400, query
    with api(orgs, "mo") as mo:  # Acme's auditor sees Acme's sign-in only
        acme = mo.get("/api/audit/search?q=sign_in").json()
        assert {r["actor"] for r in acme} == {"mallory", "mo"}  # mo: its own login_cookie
        assert "alice" not in str(acme)
    with api(orgs, "alice") as alice:
        assert alice.get("/api/audit/search").status_code == 403


def test_every_role_reads_its_own_organisations_name(orgs: RunningServer) -> None:
    for username, expected in (("alice", "default"), ("aud", "default"), ("mallory", "acme")):
        with api(orgs, username) as client:
            answer = client.get("/api/me/org")
            assert answer.status_code == 200, answer.text
            assert answer.json()["org_id"] == expected
    with api(orgs, "mo") as mo:
        assert mo.get("/api/me/org").json() == {"org_id": "acme", "name": "Acme Bank"}
    assert httpx.get(f"{orgs.base}/api/me/org").status_code == 401
