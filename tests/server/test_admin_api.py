"""Administration through the HTTP API: accounts that must set up two-step sign-in, roles,
site policies, retention; every change lands in the audit trail."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pyotp

from tests.conftest import AGENT_PASSWORD, RunningServer
from tests.server.helpers import (
    closed_with,
    login_cookie,
    open_agent,
    open_customer,
    own_password,
    recv_json,
    send,
    start_session,
)
from tests.server.test_organisations import api

NINAS_OWN = "her-own-phrase-9163"


def audit_actions(server: RunningServer) -> list[str]:
    with api(server, "aud") as aud:
        return [r["action"] for r in aud.get("/api/audit").json()]


async def test_a_new_account_must_set_up_two_step_sign_in_before_anything_else(
    orgs_server: RunningServer,
) -> None:
    with api(orgs_server, "ada") as ada:
        created = ada.post(
            "/api/users",
            json={"username": "nina", "password": AGENT_PASSWORD, "role": "agent"},
        )
    assert created.status_code == 201, created.text
    assert created.json()["teams"] == ["support"] and not created.json()["second_factor"]
    assert created.json()["password_change_required"] is True  # the admin's is temporary
    own_password(orgs_server, "nina", AGENT_PASSWORD, NINAS_OWN)  # her first sign-in

    with api(orgs_server, "nina", NINAS_OWN) as nina:
        assert nina.get("/api/me").json()["needs_second_factor"] is True
        socket = await open_agent(orgs_server, nina.cookies["tandem_agent"])
        code, reason = await closed_with(socket)
        assert code == 4403 and "two-step" in reason

        setup = nina.post("/api/mfa/setup").json()
        assert setup["uri"].startswith("otpauth://totp/Tandem:nina?")
        assert setup["qr_svg"].startswith("data:image/svg+xml")
        wrong = nina.post("/api/mfa/confirm", json={"code": "000000"})
        assert wrong.status_code == 400 and "not right" in wrong.json()["detail"]
        confirmed = nina.post(
            "/api/mfa/confirm", json={"code": pyotp.TOTP(setup["secret"]).at(time.time())}
        )
        assert confirmed.status_code == 200
        assert len(confirmed.json()["recovery_codes"]) == 10
        # Enrolling ended every sign-in of the account; this browser got a new one.
        renewed = confirmed.cookies["tandem_agent"]
        nina.cookies.clear()
        nina.cookies.set("tandem_agent", renewed)
        assert nina.get("/api/me").json()["needs_second_factor"] is False
        again = nina.post("/api/mfa/setup")
        assert again.status_code == 409  # replacing a working factor needs an admin's reset

    socket = await open_agent(orgs_server, renewed)
    await send(socket, type="join", code="000-00")
    assert (await recv_json(socket))["code"] == "invalid_code"  # now allowed to try codes

    # Sign-in now needs the code.
    password_only = httpx.post(
        f"{orgs_server.base}/api/login", json={"username": "nina", "password": NINAS_OWN}
    )
    assert password_only.status_code == 401
    actions = audit_actions(orgs_server)
    assert "user_created" in actions and "mfa_enrolled" in actions


def test_role_changes_are_audited_and_an_organisation_keeps_an_admin(
    orgs_server: RunningServer,
) -> None:
    with api(orgs_server, "ada") as ada:
        promoted = ada.patch("/api/users/alice", json={"role": "supervisor"})
        assert promoted.status_code == 200 and promoted.json()["role"] == "supervisor"
        own = ada.patch("/api/users/ada", json={"role": "agent"})
        assert own.status_code == 409 and "own role" in own.json()["detail"]
        bad = ada.patch("/api/users/alice", json={"role": "root"})
        assert bad.status_code == 400 and "role must be one of" in bad.json()["detail"]
        typo = ada.patch("/api/users/alice", json={"rol": "admin"})
        assert typo.status_code == 400 and "rol" in typo.json()["detail"]
        unknown_team = ada.patch("/api/users/alice", json={"teams": ["nope"]})
        assert unknown_team.status_code == 404
        assert ada.delete("/api/users/ada").status_code == 409
    with api(orgs_server, "aud") as aud:
        changes = [r for r in aud.get("/api/audit").json() if r["action"] == "role_changed"]
    assert changes[-1]["subject"] == "alice"
    assert changes[-1]["actor"] == "ada"
    assert changes[-1]["details"] == {"before": "agent", "after": "supervisor"}


def test_resetting_a_second_factor_ends_the_users_sign_ins(orgs_server: RunningServer) -> None:
    cookie = login_cookie(orgs_server, "alice")
    with api(orgs_server, "ada") as ada:
        assert ada.post("/api/users/alice/reset-mfa").status_code == 204
    me = httpx.get(f"{orgs_server.base}/api/me", cookies={"tandem_agent": cookie})
    assert me.status_code == 401
    assert "mfa_reset" in audit_actions(orgs_server)


def test_a_reset_says_when_a_no_mfa_account_keeps_signing_in_with_its_password_alone(
    orgs_server: RunningServer,
) -> None:
    """A reset answered 204 alike for every account, so the console said a ``--no-mfa``
    account would set up a new authenticator: it had none and goes on signing in with its
    password alone. Still 204 (clients rely on it), with a header saying what is left."""
    with api(orgs_server, "ada") as ada:
        made = ada.post(
            "/api/users", json={"username": "nina", "password": AGENT_PASSWORD, "role": "agent"}
        )
        assert made.status_code == 201, made.text
        exempt = ada.post("/api/users/alice/reset-mfa")  # seeded like --no-mfa
        enrolling = ada.post("/api/users/nina/reset-mfa")
    assert (exempt.status_code, exempt.headers["tandem-second-factor"]) == (204, "none")
    assert (enrolling.status_code, enrolling.headers["tandem-second-factor"]) == (
        204,
        "new-at-next-sign-in",
    )
    assert exempt.content == b"" == enrolling.content
    with api(orgs_server, "ada") as ada:
        described = ada.get("/api/openapi.json").json()["paths"]["/api/users/{username}/reset-mfa"]
    header = described["post"]["responses"]["204"]["headers"]["Tandem-Second-Factor"]
    assert header["schema"]["enum"] == ["new-at-next-sign-in", "none"]
    cookie = login_cookie(orgs_server, "alice")  # the password alone, as the header said
    me = httpx.get(f"{orgs_server.base}/api/me", cookies={"tandem_agent": cookie})
    assert me.status_code == 200, me.text


def test_an_admin_cannot_remove_its_own_second_factor(orgs_server: RunningServer) -> None:
    """Its own reset needs no re-authentication: whoever held an admin's sign-in for a while
    (a cookie taken, a console left open) and knew the password removed the authenticator,
    signed in with the password alone, enrolled one of its own, and kept the account for good.
    Another admin resets it (audited), as for a password."""
    with api(orgs_server, "ada") as ada:
        setup = ada.post("/api/mfa/setup")
        assert setup.status_code == 200, setup.text
        code = pyotp.TOTP(setup.json()["secret"]).now()
        assert ada.post("/api/mfa/confirm", json={"code": code}).status_code == 200
        own = ada.post("/api/users/ada/reset-mfa")
        assert own.status_code == 409, own.text
        assert "another admin" in own.json()["detail"]
        [me] = [u for u in ada.get("/api/users").json() if u["username"] == "ada"]
        assert me["second_factor"] is True
        assert ada.get("/api/me").status_code == 200
    assert "mfa_reset" not in audit_actions(orgs_server)


async def test_a_sites_policy_reaches_its_customers_and_is_validated(
    orgs_server: RunningServer,
) -> None:
    with api(orgs_server, "ada") as ada:
        bad = ada.patch("/api/sites/demo", json={"policy": {"version": 1, "mask": "x"}})
        assert bad.status_code == 400 and "$.policy.mask" in bad.json()["detail"]
        policy = {"version": 1, "mask": [".account-number"], "detectors": {"iban": True}}
        changed = ada.patch("/api/sites/demo", json={"policy": policy})
        assert changed.status_code == 200 and changed.json()["policy"] == policy
    _, created = await start_session(orgs_server)
    assert created["policy"] == policy
    assert "policy_changed" in audit_actions(orgs_server)


def test_sites_teams_and_retention_are_validated(orgs_server: RunningServer) -> None:
    with api(orgs_server, "ada") as ada:
        assert ada.post("/api/teams", json={"team": "Bad Name"}).status_code == 400
        assert ada.post("/api/teams", json={"team": "claims"}).status_code == 201
        assert ada.post("/api/teams", json={"team": "claims"}).status_code == 409
        site = {"site_id": "claims", "origin": "https://claims.example/", "teams": ["claims"]}
        added = ada.post("/api/sites", json=site)
        assert added.status_code == 201 and added.json()["origin"] == "https://claims.example"
        assert ada.post("/api/sites", json={**site, "site_id": "other"}).status_code == 409
        bad_origin = ada.post("/api/sites", json={**site, "site_id": "x", "origin": "ftp://x"})
        assert bad_origin.status_code == 400
        assert ada.patch("/api/org", json={"retention_days": 0}).status_code == 400
        kept = ada.patch("/api/org", json={"retention_days": 7})
        assert kept.json()["retention_days"] == 7
    actions = audit_actions(orgs_server)
    assert {"team_created", "site_created", "retention_changed"} <= set(actions)


async def test_a_teams_policy_reaches_the_customer_before_its_agent_joins(
    orgs_server: RunningServer,
) -> None:
    policy = {"version": 1, "pages": {"deny": ["/admin*"]}}
    with api(orgs_server, "ada") as ada:
        bad = ada.patch("/api/teams/support", json={"policy": {"version": 2}})
        assert bad.status_code == 400 and "version" in bad.json()["detail"]
        # Hiding by what the customer did: refused here, as customers' browsers would.
        state = {"version": 1, "hide": ["body:has(#yes:checked) #essay"]}
        for path in ("/api/teams/support", "/api/sites/demo"):
            refused = ada.patch(path, json={"policy": state})
            assert refused.status_code == 400, path
            assert "$.policy.hide[0]: a policy from the server" in refused.json()["detail"], path
        site = {"site_id": "x", "origin": "https://x.example", "teams": ["support"]}
        assert ada.post("/api/sites", json={**site, "policy": state}).status_code == 400
        # A malformed page pattern: refused here, as customers' browsers would.
        pages = {"version": 1, "pages": {"deny": ["/index.php?page=checkout&"]}}
        for path in ("/api/teams/support", "/api/sites/demo"):
            refused = ada.patch(path, json={"policy": pages})
            assert refused.status_code == 400, path
            assert "$.policy.pages.deny[0]: an empty query parameter" in refused.json()["detail"]
        assert ada.post("/api/sites", json={**site, "policy": pages}).status_code == 400
        # A pattern that names no page at all: refused, not believed to keep a page private.
        nowhere = {"version": 1, "pages": {"deny": ["https://x.example"]}}
        refused = ada.patch("/api/sites/demo", json={"policy": nowhere})
        assert refused.status_code == 400
        assert "an origin without a path names no page" in refused.json()["detail"]
        assert ada.patch("/api/teams/nope", json={"policy": policy}).status_code == 404
        changed = ada.patch("/api/teams/support", json={"policy": policy})
        assert changed.status_code == 200 and changed.json()["policy"] == policy
    customer, created = await start_session(orgs_server)
    alice = await open_agent(orgs_server, login_cookie(orgs_server, "alice"))
    await send(alice, type="join", code=created["code"])
    assert await recv_json(customer) == {"v": 1, "type": "team_policy", "policies": [policy]}
    assert (await recv_json(customer))["type"] == "agent_joined"
    # After a navigation, the resumed page gets it again.
    again = await open_customer(orgs_server)
    await send(
        again, type="resume", session_id=created["session_id"], resume_token=created["resume_token"]
    )
    resumed = await recv_json(again)
    assert resumed["type"] == "resumed" and resumed["team_policies"] == [policy]
    assert "policy_changed" in audit_actions(orgs_server)


async def test_audit_paging_parameters_are_range_checked(orgs_server: RunningServer) -> None:
    with api(orgs_server, "aud") as aud:
        huge = "after=1000000000000000000000"
        for query in ("after=1e21", huge, "after=-1", "limit=-5", "limit=x"):
            answer = aud.get(f"/api/audit?{query}")
            assert answer.status_code == 400, query
            assert "whole numbers" in answer.json()["detail"], query
            assert answer.headers["x-content-type-options"] == "nosniff", query
        assert len(aud.get("/api/audit?after=0&limit=2").json()) == 2


async def test_a_list_limit_written_in_other_digits_is_refused_not_a_crash(
    orgs_server: RunningServer,
) -> None:
    """``"²".isdigit()`` is true and ``int("²")`` fails: the recordings' limit answered 500."""
    with api(orgs_server, "aud") as aud:
        for limit in ("²", "\u2463", "\u0663", "\uff15", "1\u00b2"):  # ², ④, Arabic 3, fullwidth 5
            answer = aud.get("/api/recordings", params={"limit": limit})
            assert answer.status_code == 400, (limit, answer.text)
            assert "whole number" in answer.json()["detail"]
        assert aud.get("/api/recordings", params={"limit": "5"}).status_code == 200


READ_NAMES = (
    ("PATCH", "/api/org", "name"),
    ("PATCH", "/api/users/alice", "display_name"),
    ("PATCH", "/api/sites/demo", "name"),
)


def test_names_people_read_refuse_control_and_bidirectional_characters(
    orgs_server: RunningServer,
) -> None:
    """Organisation, site and display names are shown to people, a display name to customers
    inside a sentence ("<name> wants to see this page"): a right-to-left override in it
    reordered the rest; C1 controls, DEL and names of nothing but zero-width characters were
    stored too, and a new account's display name was not checked at all (and cut at 64
    characters, without a word). Then (review of what names can show) the invisible characters the
    rule let through made one name look like another's: a right-to-left mark, a zero-width space
    or joiner between Latin letters, a word joiner, a tag character, a Hangul filler, a mark on
    nothing, marks stacked deep over the lines around."""
    bad = ("A\u202eB", "x\u2067y", "\u200b", "\u200b \u200d", "a\x7fb", "a\x85b", "a\x1bb")
    bad += ("Ann\u200f", "An\u200cn", "A\u200db", "Ann\u2060", "\U000e0041Ann", "\u3164")
    bad += ("\ufe0fAnn", "Ann\u061c", "A" + "\u0301" * 40)
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # a zero-width non-joiner
    good = ("Zo\u00eb \u03a9mega \u674e", persian, "\U0001f469\u200d\U0001f4bb Ada", "N" * 100)
    with api(orgs_server, "ada") as ada:
        for value in bad:
            for method, path, field in READ_NAMES:
                answer = ada.request(method, path, json={field: value})
                assert answer.status_code == 400, (path, value, answer.text)
                assert "bidirectional" in answer.json()["detail"]
                if path == "/api/org":  # said in plain words: "an organisation name is ..."
                    assert answer.json()["detail"].startswith("an organisation name is 1-100")
            new = {"username": "nina", "password": AGENT_PASSWORD, "role": "agent"}
            made = ada.post("/api/users", json={**new, "display_name": value})
            assert made.status_code == 400, (value, made.text)
        assert "nina" not in {u["username"] for u in ada.get("/api/users").json()}
        for n, value in enumerate(good):
            for method, path, field in READ_NAMES:
                answer = ada.request(method, path, json={field: value})
                assert answer.status_code == 200, (path, value, answer.text)
                assert answer.json()[field] == value
            new = {"username": f"nina{n}", "password": AGENT_PASSWORD, "role": "agent"}
            made = ada.post("/api/users", json={**new, "display_name": value})
            assert made.status_code == 201, (value, made.text)
            assert made.json()["display_name"] == value  # whole: 100 characters kept


def test_names_of_every_script_are_set_and_characters_that_draw_nothing_refused(
    orgs_server: RunningServer,
) -> None:
    """The shared table of names (tests/fixtures/name_vectors.json) through the server's own
    requests: a Malayalam name ending in a chillu and a Bengali ra-phala were refused (a joiner
    last, or before its virama); a combining grapheme joiner, a Khmer inherent vowel, or a
    variation selector after a Latin letter was let through ("Ann Smith" and "Ann Smith" with one
    after it, two names that look the same). A lone surrogate is refused in plain words."""
    vectors = json.loads(
        (Path(__file__).parents[1] / "fixtures" / "name_vectors.json").read_text(encoding="utf-8")
    )
    with api(orgs_server, "ada") as ada:
        for vector in vectors:
            if "\ud800" in vector["name"]:
                continue  # not encodable as UTF-8: sent raw below
            answer = ada.patch("/api/users/alice", json={"display_name": vector["name"]})
            if vector["is_a_name"]:
                assert answer.status_code == 200, (vector["why"], answer.text)
                assert answer.json()["display_name"] == vector["name"]
            else:
                assert answer.status_code == 400, (vector["why"], answer.text)
                assert "invisible" in answer.json()["detail"], vector["why"]
        lone = ada.patch(
            "/api/users/alice",
            content=b'{"display_name": "Ann\\ud800Smith"}',
            headers={"content-type": "application/json"},
        )
        assert lone.status_code == 400, lone.text
        assert lone.headers["content-type"] == "application/problem+json"
        assert "surrogate" in lone.json()["detail"], lone.text  # "...utf-16 surrogate pair"
        paired = ada.patch(
            "/api/users/alice",
            content=b'{"display_name": "Ann \\ud83d\\ude00"}',
            headers={"content-type": "application/json"},
        )
        assert paired.status_code == 200 and paired.json()["display_name"] == "Ann \U0001f600"
    with httpx.Client(base_url=orgs_server.base) as anyone:
        login = anyone.post(
            "/api/login",
            content=b'{"username": "ann\\udc00", "password": "x"}',
            headers={"content-type": "application/json"},
        )
        assert login.status_code == 400 and "surrogate" in login.json()["detail"], login.text


def test_health_says_only_ok(orgs_server: RunningServer) -> None:
    assert httpx.get(f"{orgs_server.base}/healthz").json() == {"status": "ok"}


async def test_a_socket_message_the_role_does_not_allow_is_refused_and_audited(
    orgs_server: RunningServer,
) -> None:
    # An agent's console tampered with to watch sessions, which only supervisors may.
    agent = await open_agent(orgs_server, login_cookie(orgs_server, "bob"))
    await send(agent, type="watch", session_id="anyone")
    code, reason = await closed_with(agent)
    assert code == 4403 and "agent" in reason
    with api(orgs_server, "aud") as aud:
        refused = [r for r in aud.get("/api/audit").json() if r["action"] == "message_refused"]
    assert [(r["actor"], r["details"]["message"], r["details"]["needs"]) for r in refused] == [
        ("bob", "watch", "session.watch")
    ]
