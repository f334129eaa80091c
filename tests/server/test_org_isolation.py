"""An attack review of organisation (tenant) isolation: a legitimate admin, supervisor, auditor or
agent of Acme (or a customer page of Acme's site) tries to read, change, join, export, erase or
learn about anything of the default organisation, through every route and socket, and to remove
the evidence of having tried. Earlier reviews: tests/server/test_organisations.py (ids of another
organisation in paths, lists, codes), test_authorisation_matrix.py, test_access_refusals.py.

Each test names what was tried. What held is proved here; what got through was fixed at its cause
(docs/security.md, the organisation rows)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tandem.config import Settings
from tandem.directory import offline, operator
from tandem.storage.base import NO_ORG
from tests.conftest import (
    ACME_ORIGIN,
    AGENT_PASSWORD,
    RunningServer,
    ServerFactory,
    add_user,
    add_users,
    mark_trained,
    two_organisations,
)
from tests.oidc_provider import OidcProvider, use_provider
from tests.server.helpers import (
    INVALID_CODE,
    closed_with,
    login_cookie,
    open_agent,
    recv_json,
    send,
    sharing_session,
    start_session,
)
from tests.server.test_access_refusals import _restore
from tests.server.test_audit_after_faults import eventually
from tests.server.test_customer_tokens import create, issue_key, sign
from tests.server.test_organisations import api
from tests.server.test_scale_out import run_in_thread, sharing_on, start_cluster
from tests.test_audit import rewrite_without_the_key, run_verify, tamper, trail

# Named things of the default organisation, and names that exist nowhere, for Acme's admin.
PROBES: tuple[tuple[str, str, str, str, dict[str, Any] | None], ...] = (
    ("PATCH", "/api/users/{}", "alice", "nobody-here", {"display_name": "Pwned"}),
    ("DELETE", "/api/users/{}", "alice", "nobody-here", None),
    ("POST", "/api/users/{}/disable", "alice", "nobody-here", None),
    ("POST", "/api/users/{}/reset-mfa", "alice", "nobody-here", None),
    ("POST", "/api/users/{}/reset-password", "alice", "nobody-here", {"password": "pw-4-x-q-9-z"}),
    ("PUT", "/api/users/{}/sso", "alice", "nobody-here", {"subject": "attacker"}),
    ("GET", "/api/sites/{}", "demo", "no-such-site", None),
    ("PATCH", "/api/sites/{}", "demo", "no-such-site", {"name": "Pwned"}),
    ("POST", "/api/sites/{}/token-key", "demo", "no-such-site", None),
    ("GET", "/api/sites/{}/verification", "demo", "no-such-site", None),
    ("GET", "/api/teams/{}", "billing", "no-such-team", None),
    ("PATCH", "/api/teams/{}", "billing", "no-such-team", {"policy": None}),
    ("DELETE", "/api/teams/{}", "billing", "no-such-team", None),
)


def trail_as(server: RunningServer, auditor: str, **query: str) -> list[dict[str, Any]]:
    with api(server, auditor) as client:
        answer = client.get("/api/audit", params=query)
        assert answer.status_code == 200, answer.text
        records: list[dict[str, Any]] = answer.json()
    return records


def refusals_of(server: RunningServer, auditor: str, actor: str) -> list[dict[str, Any]]:
    return [
        r
        for r in trail_as(server, auditor)
        if r["actor"] == actor and r["action"].endswith("_refused")
    ]


def _shape(record: dict[str, Any]) -> tuple[object, ...]:
    """What a refusal record says, without its place in the trail."""
    return (record["action"], record["actor"], record["subject"], record["details"])


def test_a_probe_of_another_organisations_names_is_audited_in_the_askers_trail(
    server_factory: ServerFactory,
) -> None:
    """Acme's admin tries every route naming a user, site or team with the default
    organisation's names. Each is a 404, word for word a name's that exists nowhere (held
    before), and now also evidence in Acme's trail: before, only a recording's 404 was recorded,
    so an admin could probe another organisation's names without a trace. The record is the
    same for a name that exists nowhere (Acme's auditor learns nothing of the other
    organisation from it) and names neither (the route's template only)."""
    orgs_server = server_factory(seed=two_organisations, refusal_audit_burst=4 * len(PROBES))
    with api(orgs_server, "max") as max_:
        for method, template, taken, missing, body in PROBES:
            for name in (taken, missing):
                answer = max_.request(method, template.format(name), json=body)
                assert answer.status_code == 404, (method, template, name, answer.text)
    records = refusals_of(orgs_server, "mo", "max")
    assert len(records) == 2 * len(PROBES)
    parameter = {"users": "{username}", "sites": "{site_id}", "teams": "{team}"}
    for index, (method, template, *_) in enumerate(PROBES):
        taken, missing = records[2 * index], records[2 * index + 1]
        assert _shape(taken) == _shape(missing)
        assert (taken["action"], taken["subject"]) == ("access_refused", "")
        route = template.replace("{}", parameter[template.split("/")[2]])
        details = taken["details"]
        assert (details["method"], details["route"], details["reason"]) == (
            method,
            route,
            "not found",
        )
    # Nothing in the default organisation's trail, and nothing of it changed.
    assert not [r for r in trail_as(orgs_server, "aud") if r["actor"] == "max"]
    with api(orgs_server, "ada") as ada:
        alice = next(u for u in ada.get("/api/users").json() if u["username"] == "alice")
        assert (alice["display_name"], alice["disabled"], alice["sso_bound"]) == (
            "Alice",
            False,
            False,
        )
        assert ada.get("/api/sites/demo").json()["has_token_key"] is False
        assert "billing" in ada.get("/api/teams").json()
    login_cookie(orgs_server, "alice")  # her password is hers still


def _without(name: str, answer: httpx.Response) -> tuple[int, str]:
    return answer.status_code, answer.text.replace(repr(name), "'NAME'").replace(name, "NAME")


async def test_subject_requests_naming_another_organisations_customers_find_and_change_nothing(
    orgs_server: RunningServer,
) -> None:
    """GDPR requests by Acme's admin naming the default organisation's customers (by token
    ``sub``, by the id of a session started with a token, by the id of one started without):
    find, export, erase and legal holds answer as for a customer nobody has, change nothing of
    the other organisation (its erasure is not blocked by Acme's holds), and the 404s are on
    record in Acme's trail (without the ``sub``: the trail names customers by pseudonym only)."""
    tokenless_customer, tokenless = await start_session(orgs_server)
    await send(tokenless_customer, type="stop")
    assert (await recv_json(tokenless_customer))["type"] == "ended"
    key = issue_key(orgs_server)
    now = int(orgs_server.clock())
    customer, created = await create(
        orgs_server, sign(key, sub="c-42", aud="demo", iat=now, exp=now + 300)
    )
    assert created is not None
    await send(customer, type="stop")
    assert (await recv_json(customer))["type"] == "ended"
    others = ("c-42", created["session_id"], tokenless["session_id"])
    nobody = "c-nobody-at-all"
    with api(orgs_server, "max") as max_:

        def answers(subject: str) -> list[tuple[int, str]]:
            found = max_.post("/api/subjects/find", json={"subject": subject})
            hold = {"kind": "subject", "target": subject, "reason": "probe"}
            held = max_.post("/api/holds", json=hold)
            assert max_.post("/api/holds/lift", json=hold).status_code == 200
            return [
                _without(subject, found),
                _without(subject, max_.post("/api/subjects/export", json={"subject": subject})),
                _without(subject, max_.post("/api/subjects/erase", json={"subject": subject})),
                (held.status_code, repr({**held.json(), "target": "", "placed_at": 0})),
            ]

        expected = answers(nobody)
        assert [status for status, _ in expected] == [200, 404, 404, 201]
        for subject in others:
            assert answers(subject) == expected, subject
        # Holds left in place on them: they hold nothing of the other organisation.
        for subject in others:
            hold = {"kind": "subject", "target": subject, "reason": "probe"}
            assert max_.post("/api/holds", json=hold).status_code == 201
    with api(orgs_server, "ada") as ada:
        found = ada.post("/api/subjects/find", json={"subject": "c-42"}).json()
        assert found["sessions"] == [created["session_id"]]
        for subject in ("c-42", tokenless["session_id"]):
            erased = ada.post("/api/subjects/erase", json={"subject": subject})
            assert erased.status_code == 200 and erased.json()["sessions"] == 1, erased.text
    acme = refusals_of(orgs_server, "mo", "max")
    assert [(r["details"]["route"], r["details"]["reason"]) for r in acme] == 4 * [
        ("/api/subjects/export", "not found"),
        ("/api/subjects/erase", "not found"),
    ]
    assert len({repr(_shape(r)) for r in acme}) == 2  # the same records for every name
    assert "c-42" not in repr(trail_as(orgs_server, "mo"))
    assert not [r for r in trail_as(orgs_server, "aud") if r["actor"] == "max"]


async def test_another_organisations_agent_and_supervisor_neither_join_nor_watch_and_are_on_record(
    orgs_server: RunningServer,
) -> None:
    """Acme's agent enters the default organisation's live code; Acme's supervisor asks to watch
    its sharing session by id. The code reads as a wrong one and stays valid; the watch is closed
    4404 exactly as for an id that never was, and is now on record in Acme's trail (before, a
    watch of a session not found left no trace) the same way for both; the default
    organisation's customer hears nothing of either, and its trail holds nothing of them."""
    customer, _, created = await sharing_session(orgs_server)
    waiting_customer, waiting = await start_session(orgs_server)
    mallory = await open_agent(orgs_server, login_cookie(orgs_server, "mallory"))
    await send(mallory, type="join", code=waiting["code"])
    assert await recv_json(mallory) == INVALID_CODE
    closes = []
    for session_id in (created["session_id"], "never-was-a-session"):
        mary = await open_agent(orgs_server, login_cookie(orgs_server, "mary"))
        await send(mary, type="watch", session_id=session_id)
        closes.append(await closed_with(mary))
    assert closes == 2 * [(4404, "session not found")]
    # The default organisation's own people carry on: the code joins, the watch is asked for
    # (the customer's first message since: Acme's tries reached it not).
    alice_again = await open_agent(orgs_server, login_cookie(orgs_server, "alice"))
    await send(alice_again, type="join", code=waiting["code"])
    assert (await recv_json(alice_again))["type"] == "joined"
    assert (await recv_json(waiting_customer))["type"] == "agent_joined"
    sam = await open_agent(orgs_server, login_cookie(orgs_server, "sam"))
    await send(sam, type="watch", session_id=created["session_id"])
    assert (await recv_json(sam))["type"] == "watching"
    assert await recv_json(customer) == {"v": 1, "type": "watch_request", "watcher": "Sam"}
    acme = trail_as(orgs_server, "mo")
    rejected = [r for r in acme if r["action"] == "join_code_rejected"]
    assert [(r["actor"], r["details"]["reason"]) for r in rejected] == [("mallory", "invalid_code")]
    watches = [r for r in acme if r["action"] == "message_refused" and r["actor"] == "mary"]
    assert len(watches) == 2 and _shape(watches[0]) == _shape(watches[1])
    assert watches[0]["subject"] == "" and watches[0]["details"] == {
        "message": "watch",
        "needs": "session.watch",
        "reason": "session not found",
    }
    assert created["session_id"] not in repr(acme)
    default = trail_as(orgs_server, "aud")
    assert not {"mallory", "mary"} & {r["actor"] for r in default}


async def test_a_customer_token_signed_with_another_organisations_site_key_is_refused(
    orgs_server: RunningServer,
) -> None:
    """Acme's admin holds its own site's token key and signs with it a token for the default
    organisation's site (its audience), to start sessions there in the name of a customer of
    its choosing (whose ``sub`` would then lead the default organisation's GDPR requests).
    Refused; counted under the site's organisation, never under Acme's."""
    issue_key(orgs_server)  # the default site requires tokens
    with api(orgs_server, "max") as max_:
        acme_key = max_.post("/api/sites/acme-shop/token-key").json()["key"]
    for audience in ("demo", "acme-shop"):
        now = int(orgs_server.clock())
        token = sign(acme_key, sub="c-42", aud=audience, iat=now, exp=now + 300)
        customer, created = await create(orgs_server, token)
        assert created is None
        code, reason = await closed_with(customer)
        assert code == 4401 and "not accepted" in reason, reason
    with api(orgs_server, "ada") as ada:
        assert ada.post("/api/subjects/find", json={"subject": "c-42"}).json()["sessions"] == []
    orgs_server.clock.advance(orgs_server.settings.anonymous_audit_interval_seconds)

    async def counted() -> bool:
        return [row["action"] for row in counts(orgs_server, "aud")] == ["customer_token_rejected"]

    await eventually(counted)
    assert [row["count"] for row in counts(orgs_server, "aud")] == [2]
    assert counts(orgs_server, "mo") == []


def counts(server: RunningServer, auditor: str) -> list[dict[str, Any]]:
    with api(server, auditor) as client:
        answer = client.get("/api/audit/counts")
        assert answer.status_code == 200, answer.text
        rows: list[dict[str, Any]] = answer.json()
    return rows


@pytest.fixture
def shared_provider(server_factory: ServerFactory) -> Iterator[tuple[RunningServer, OidcProvider]]:
    """Both organisations sign in through the same provider (one issuer, one client): the
    closest two tenants' identities come. Acme's admin runs it, say, or both use one cloud."""
    server = server_factory(seed=two_organisations, test_private_network=True)
    provider = OidcProvider().start()
    provider.redirect_uris.add(f"{server.base}/api/sso/callback")
    with api(server, "ada") as ada:
        use_provider(ada, provider, {"alice": "u-1"})
    yield server, provider
    provider.stop()


def _sso_sign_in(
    server: RunningServer, browser: httpx.Client, start_at: str, **tampered: str
) -> str | None:
    """Start at ``start_at``, go to the provider, come back (with ``tampered`` query parameters
    added to the callback); the account signed in, if any."""
    start = browser.get(f"{server.base}/api/sso/start", params={"org": start_at})
    assert start.status_code == 303
    at_provider = browser.get(start.headers["location"])
    assert at_provider.status_code == 302, at_provider.text
    back = httpx.URL(at_provider.headers["location"]).copy_merge_params(tampered)
    browser.get(back)
    me = browser.get(f"{server.base}/api/me")
    return str(me.json()["username"]) if me.status_code == 200 else None


def test_a_provider_sign_in_lands_only_in_the_organisation_it_started_at(
    shared_provider: tuple[RunningServer, OidcProvider],
) -> None:
    """Acme's admin sets up the default organisation's provider as its own too and tries to
    reach the default organisation's accounts with it: the provider's subject alice is bound
    to, unbound at Acme and then bound to Acme's own mallory; the callback tampered to name
    the default organisation. A sign-in started at Acme reaches Acme's accounts only (the
    pending sign-in's organisation decides, not the query); binding the subject another
    organisation holds is no conflict (it would tell Acme the subject is taken elsewhere);
    Acme's failures are in Acme's trail."""
    server, provider = shared_provider
    provider.user = {"sub": "u-1", "preferred_username": "alice", "email": "alice@example.com"}
    with api(server, "max") as max_:
        use_provider(max_, provider)  # the same issuer and client, no binding yet
    with httpx.Client() as browser:
        assert _sso_sign_in(server, browser, "acme") is None
    with httpx.Client() as browser:
        assert _sso_sign_in(server, browser, "acme", org="default") is None
    with api(server, "max") as max_:
        bound = max_.put("/api/users/mallory/sso", json={"subject": "u-1"})
        assert bound.status_code == 200, bound.text
    with httpx.Client() as browser:
        assert _sso_sign_in(server, browser, "acme", org="default") == "mallory"
    with httpx.Client() as browser:
        assert _sso_sign_in(server, browser, "default") == "alice"
    acme = trail_as(server, "mo")
    failures = [r for r in acme if r["action"] == "sso_failed"]
    assert len(failures) == 2
    assert all("no account of this organisation" in r["details"]["reason"] for r in failures)
    sign_ins = {(r["actor"], r["details"].get("method")) for r in acme if r["action"] == "sign_in"}
    assert ("mallory", "oidc") in sign_ins
    default = trail_as(server, "aud")
    assert not [r for r in default if r["action"] == "sso_failed"]
    assert "mallory" not in {r["actor"] for r in default}


def test_names_unique_within_an_organisation_are_free_in_another(
    orgs_server: RunningServer,
) -> None:
    """A team name the default organisation uses is Acme's to take too (teams are per
    organisation): no refusal that would tell Acme the name exists elsewhere. Acme's team of
    that name serves nothing of the other organisation, and another organisation's team is no
    team of Acme's to give an account or a site (answered as a team that exists nowhere)."""
    with api(orgs_server, "max") as max_:
        assert max_.post("/api/teams", json={"team": "billing"}).status_code == 201
        for teams in (["billing", "support"], ["support"]):
            assert max_.patch("/api/users/mallory", json={"teams": teams}).status_code == 200
        with api(orgs_server, "ada") as ada:
            assert ada.delete("/api/teams/billing").status_code == 204  # the default's goes
            assert "billing" not in ada.get("/api/teams").json()
        assert "billing" in max_.get("/api/teams").json()  # Acme's stays
        with api(orgs_server, "ada") as ada:
            assert ada.post("/api/teams", json={"team": "claims"}).status_code == 201
        for name in ("claims", "no-such-team"):
            answers = [
                max_.patch("/api/users/mallory", json={"teams": [name]}),
                max_.post(
                    "/api/users",
                    json={
                        "username": f"u-{name}",
                        "password": AGENT_PASSWORD,
                        "role": "agent",
                        "teams": [name],
                    },
                ),
                max_.post(
                    "/api/sites",
                    json={
                        "site_id": f"s-{name}",
                        "origin": f"https://{name}.example",
                        "teams": [name],
                    },
                ),
            ]
            assert [(a.status_code, a.json()["detail"].replace(name, "NAME")) for a in answers] == (
                3 * [(404, "no team named 'NAME'")]
            ), name
        assert max_.get("/api/users").json()  # nothing of it was made
        assert {u["username"] for u in max_.get("/api/users").json()} == {
            "mallory",
            "mary",
            "max",
            "mo",
        }
        assert [s["site_id"] for s in max_.get("/api/sites").json()] == ["acme-shop"]


async def test_an_auditor_reads_searches_and_counts_only_its_organisation(
    orgs_server: RunningServer,
) -> None:
    """Acme's auditor pages and searches the trail and lists recordings, and Acme's admin reads
    its compliance report and training roster, while the default organisation has a live
    session, an untrained agent and a site: nothing of the default organisation in any answer
    (its names searched for directly find nothing). Counts: the customer token test above."""
    customer, _, created = await sharing_session(orgs_server)
    session_id = created["session_id"]
    with api(orgs_server, "mo") as mo:
        whole = mo.get("/api/audit", params={"after": 0, "limit": 100000}).json()
        assert whole and session_id not in repr(whole)
        assert not {"alice", "aud", "ada"} & {r["actor"] for r in whole}
        for needle in ("alice", session_id, session_id[:6], "demo", "consent", "agent_joined"):
            found = mo.get("/api/audit/search", params={"q": needle}).json()
            assert found == [], (needle, found)
        assert mo.get("/api/recordings").json() == []
    with api(orgs_server, "max") as max_:
        report = max_.get("/api/compliance").text
        training = max_.get("/api/training/users").json()
    for name in ("alice", "sam", "bob", "demo", "Demo"):
        assert name not in report, name
    assert {u["username"] for u in training["users"]} == {"mallory", "mary", "max", "mo"}
    await send(customer, type="stop")
    assert (await recv_json(customer))["type"] == "ended"


def test_a_new_policy_version_in_one_organisation_asks_nothing_of_another(
    orgs_server: RunningServer,
) -> None:
    """The default organisation's admin publishes a new privacy policy; Acme's policy, version
    and trained agents are untouched (a policy version is per organisation)."""
    with api(orgs_server, "max") as max_:
        before = max_.get("/api/training/policy").json()
    with api(orgs_server, "ada") as ada:
        published = ada.put("/api/training/policy", json={"text": "Default's rules, v2."})
        assert published.status_code == 200, published.text
        assert published.json()["version"] == before["version"] + 1
    with api(orgs_server, "max") as max_:
        assert max_.get("/api/training/policy").json() == before
    with api(orgs_server, "mallory") as mallory:
        standing = mallory.get("/api/training").json()["standing"]
        assert standing["trained"] and not standing["needs_acknowledgement"]
    with api(orgs_server, "sam") as sam:
        assert sam.get("/api/training").json()["standing"]["needs_acknowledgement"]


async def test_another_organisations_admin_cannot_remove_the_evidence_of_its_probe(
    orgs_server: RunningServer,
) -> None:
    """Acme's admin probes the default organisation (its user, site, customer), then tries to
    remove the records: it may not read the trail, no route deletes or rewrites a record,
    erasing a "customer" of its own name or shortening retention leaves them; and with the
    database file in hand, deleting them (the guards dropped) or rewriting the chain without
    the audit key fails ``tandem audit verify``. The default organisation's trail holds none
    of them, so its auditors were told of nothing they could not check."""
    with api(orgs_server, "max") as max_:
        assert max_.patch("/api/users/alice", json={"display_name": "X"}).status_code == 404
        assert max_.get("/api/sites/demo").status_code == 404
        assert max_.post("/api/subjects/export", json={"subject": "c-42"}).status_code == 404
        # Covering the tracks, through the API.
        assert max_.get("/api/audit").status_code == 403
        assert max_.get("/api/audit/search", params={"q": "max"}).status_code == 403
        assert max_.post("/api/subjects/erase", json={"subject": "max"}).status_code == 404
        assert max_.patch("/api/org", json={"retention_days": 1}).status_code == 200
    orgs_server.clock.advance(3 * 86400)
    evidence = refusals_of(orgs_server, "mo", "max")
    assert [r["details"]["route"] for r in evidence] == [
        "/api/users/{username}",
        "/api/sites/{site_id}",
        "/api/subjects/export",
        "/api/audit",
        "/api/audit/search",
        "/api/subjects/erase",
    ]
    assert not [r for r in trail_as(orgs_server, "aud") if r["actor"] == "max"]
    orgs_server.stop()
    data = orgs_server.settings.data_dir
    assert run_verify(data).returncode == 0
    records, _ = await trail(data)
    kept = [r for r in records if not (r.actor == "max" and r.action.endswith("_refused"))]
    assert len(records) - len(kept) == len(evidence)
    rewrite_without_the_key(data, kept)
    result = run_verify(data)
    assert result.returncode == 1 and "BROKEN" in result.stderr, result.stdout
    tamper(data, "DELETE FROM audit")
    _restore(data, records)
    assert run_verify(data).returncode == 0  # as the server wrote it
    tamper(data, "DELETE FROM audit WHERE actor = 'max' AND action LIKE '%_refused'")
    result = run_verify(data)
    assert result.returncode == 1 and "BROKEN" in result.stderr, result.stdout


def _sign_in(server: RunningServer, username: str, password: str) -> int:
    answer = httpx.post(
        f"{server.base}/api/login", json={"username": username, "password": password}
    )
    return answer.status_code


async def test_failed_sign_ins_are_evidence_of_the_accounts_own_organisation(
    server_factory: ServerFactory,
) -> None:
    """Someone guesses the password of Acme's agent. Before, every failed sign-in was filed
    under the default organisation: its auditor read Acme's usernames and the addresses of
    Acme's people (or of whoever attacked them), and Acme's auditor never saw the attack on its
    own accounts. Now a failed, sprayed or throttled sign-in of an account is its
    organisation's; a name no account has is no organisation's (the operator's)."""
    server = server_factory(seed=two_organisations, login_free_failures=2)
    assert _sign_in(server, "nobody-at-all", "wrong-password-1") == 401
    assert _sign_in(server, "mallory", "wrong-password-1") == 401
    for _ in range(3):  # beyond the free failures: mallory waits (throttled, counted)
        _sign_in(server, "mallory", "wrong-password-2")
    assert _sign_in(server, "mallory", AGENT_PASSWORD) == 429
    acme = [r for r in trail_as(server, "mo") if r["action"] == "sign_in_failed"]
    assert acme and {r["actor"] for r in acme} == {"mallory"} and acme[0]["details"]["ip"]
    default = trail_as(server, "aud")
    assert [r["actor"] for r in default if r["action"] == "sign_in_failed"] == []
    assert "mallory" not in repr(default)
    assert ("sign_in_failed", "nobody-at-all", NO_ORG) in await operators_trail(server)
    server.clock.advance(server.settings.anonymous_audit_interval_seconds)

    async def counted() -> bool:
        return bool(counts(server, "mo"))

    await eventually(counted)
    assert {row["action"] for row in counts(server, "mo")} <= {
        "sign_in_throttled",
        "sign_in_sprayed",
    }
    assert "mallory" not in repr(counts(server, "aud"))


def test_a_single_organisations_auditors_see_the_names_sprayed_at_it(
    server_factory: ServerFactory,
) -> None:
    """With one organisation there is no other's name to tell from nobody's: a failed sign-in
    naming no account is its own auditors' to read (the names an attacker sprays at the
    installation), not only the operator's."""
    server = server_factory()
    add_user(server.settings.data_dir, "aud", role="auditor")
    assert _sign_in(server, "nobody-at-all", "wrong-password-1") == 401
    failed = [r for r in trail_as(server, "aud") if r["action"] == "sign_in_failed"]
    assert [r["actor"] for r in failed] == ["nobody-at-all"]


async def test_a_single_organisations_auditors_see_the_provider_starts_sprayed_at_it(
    server_factory: ServerFactory,
) -> None:
    """As for password sign-ins: with one organisation, provider sign-ins started from one
    address under a name that is no organisation's are counted for it once the address waits.
    They were counted under none, so its auditors never saw them (the operator did)."""
    server = server_factory()
    add_user(server.settings.data_dir, "aud", role="auditor")
    url = f"{server.base}/api/sso/start"
    with httpx.Client() as browser:
        for _ in range(server.settings.sso_free_starts + 1):
            browser.get(url, params={"org": "no-such-org"})
        busy = browser.get(url, params={"org": "no-such-org"})
        assert busy.headers["location"] == "/console/?sso=busy"
    server.clock.advance(server.settings.anonymous_audit_interval_seconds)

    async def counted() -> bool:
        return bool(counts(server, "aud"))

    await eventually(counted)
    assert [row["action"] for row in counts(server, "aud")] == ["sso_throttled"]


async def operators_trail(server: RunningServer) -> list[tuple[str, str, str]]:
    """(action, actor, organisation) of every record, as the operator reads the database."""
    records, _ = await trail(server.settings.data_dir)
    return [(r.action, r.actor, r.org) for r in records]


async def test_no_organisations_auditors_tell_another_organisations_name_from_nobodys(
    server_factory: ServerFactory,
) -> None:
    """The default organisation's auditor tries names at the sign-in form and reads its own
    trail after each. Before, a name nobody has was filed in the default organisation's trail
    and a name Acme's account has in Acme's: the first showed, the second did not, so every
    account name on the server could be told apart from a made-up one. Now a name no account
    has is filed under no organisation (the operator's to read): neither shows, each is one
    record in the shared chain, which the auditor's own positions do not number (no gap for
    either), and a throttled or sprayed try of either is counted elsewhere too."""
    server = server_factory(seed=two_organisations, login_free_failures=1)
    with api(server, "aud") as aud:

        def read() -> list[dict[str, Any]]:
            answer = aud.get("/api/audit")
            assert answer.status_code == 200, answer.text
            records: list[dict[str, Any]] = answer.json()
            return records

        def tried(name: str) -> tuple[list[dict[str, Any]], int]:
            """What the auditor's trail gains from one wrong sign-in as ``name``, and the gap it
            sees in its own positions meanwhile."""
            before = read()
            assert _sign_in(server, name, "wrong-password-1") == 401
            read()  # its own record of reading comes after the sign-in's: the next read has it
            new = read()[len(before) :]
            unread = new[-1]["seq"] - before[-1]["seq"] - len(new)
            return [r for r in new if r["action"] != "audit_read"], unread

        assert tried("mallory") == tried("nobody-at-all") == ([], 0)
        # Beyond the free failures, from a fresh name each: sprayed and throttled, counted.
        for name in ("mallory", "nobody-at-all", "mary", "no-one-else"):
            _sign_in(server, name, "wrong-password-2")
        server.clock.advance(server.settings.anonymous_audit_interval_seconds)

        async def counted() -> bool:
            return bool(counts(server, "mo"))

        await eventually(counted)
        assert counts(server, "aud") == []
        assert not [r for r in read() if r["action"].startswith("sign_in_")]
    assert ("sign_in_failed", "nobody-at-all", NO_ORG) in await operators_trail(server)


async def test_another_organisations_team_of_the_same_name_gives_a_session_none_of_its_policy(
    orgs_server: RunningServer,
) -> None:
    """Teams are named per organisation: both have a "support". Acme's admin gives its own
    "support" a policy; the default organisation's "support" agent joins a default session:
    the customer gets no team policy before the agent joins (a team's policy is looked up in
    the session's organisation only), and the default organisation's team has none."""
    policy = {"version": 1, "pages": {"deny": ["/acme-private*"]}}
    with api(orgs_server, "max") as max_:
        assert max_.patch("/api/teams/support", json={"policy": policy}).status_code == 200
    with api(orgs_server, "ada") as ada:
        assert ada.get("/api/teams/support").json() == {"team": "support", "policy": None}
    customer, created = await start_session(orgs_server)
    alice = await open_agent(orgs_server, login_cookie(orgs_server, "alice"))
    await send(alice, type="join", code=created["code"])
    assert (await recv_json(alice))["type"] == "joined"
    assert await recv_json(customer) == {"v": 1, "type": "agent_joined", "agent": "Alice"}


@pytest.mark.usefixtures("requires_redis")
async def test_a_session_on_another_server_is_no_nearer_to_another_organisation(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """Two servers on one PostgreSQL database and one Redis fan-out: the default
    organisation's session lives on the first. Acme's supervisor, on the second, names it to
    watch (the second tunnels the socket to the owner through the fan-out, where it is
    refused as locally: the same 4404 as an id nobody has, and on record in Acme's trail);
    Acme's agent, on the second, enters its code (looked up in Acme's organisation only: no
    tunnel, a wrong code). The session's customer hears of neither; its own supervisor, on the
    second server, then watches it."""
    with start_cluster(server_factory, tmp_path) as cluster:
        owner, edge = cluster(), cluster()
        run_in_thread(lambda: _add_acme(owner.settings, tmp_path / "acme-seed"))
        customer, _, created = await sharing_on(owner)
        waiting_customer, waiting = await start_session(owner)
        closes = []
        for session_id in (created["session_id"], "never-was-a-session"):
            mary = await open_agent(edge, login_cookie(edge, "mary"))
            await send(mary, type="watch", session_id=session_id)
            closes.append(await closed_with(mary, timeout=10))
        assert closes == 2 * [(4404, "session not found")]
        mallory = await open_agent(edge, login_cookie(edge, "mallory"))
        await send(mallory, type="join", code=waiting["code"])
        assert await recv_json(mallory, timeout=10) == INVALID_CODE
        sam = await open_agent(edge, login_cookie(edge, "sam"))
        await send(sam, type="watch", session_id=created["session_id"])
        assert (await recv_json(sam, timeout=10))["type"] == "watching"
        assert await recv_json(customer, timeout=10) == {
            "v": 1,
            "type": "watch_request",
            "watcher": "Sam",
        }
        alice_again = await open_agent(owner, login_cookie(owner, "alice"))
        await send(alice_again, type="join", code=waiting["code"])
        assert (await recv_json(alice_again))["type"] == "joined"
        assert (await recv_json(waiting_customer))["type"] == "agent_joined"
        acme = trail_as(edge, "mo")
        watches = [r for r in acme if r["action"] == "message_refused" and r["actor"] == "mary"]
        assert [r["details"]["reason"] for r in watches] == 2 * ["session not found"]
        assert [r["actor"] for r in acme if r["action"] == "join_code_rejected"] == ["mallory"]
        assert created["session_id"] not in repr(acme)


async def _add_acme(settings: Settings, data_dir: Path) -> None:
    """Acme, with an auditor, an agent and a supervisor, on the cluster's shared database."""
    shared = Settings.load(
        environ={},
        data_dir=data_dir,
        database_url=settings.database_url,
        audit_key_file=settings.audit_key_path,
    )
    async with offline(shared) as directory:
        await directory.add_org("acme", "Acme Bank")
        acme = operator("acme")
        await directory.add_team(acme, "support")
        await directory.add_site(acme, "acme-shop", ACME_ORIGIN, "Acme shop", ("support",))
        users = (("mallory", "agent"), ("mary", "supervisor"), ("mo", "auditor"))
        await add_users(
            directory,
            acme,
            ((name, role, ("support",) if role != "auditor" else ()) for name, role in users),
        )
        for username, _ in users:
            await mark_trained(directory.storage, username, "acme")


@pytest.mark.parametrize(
    ("user", "path"),
    [
        ("max", "/api/org"),
        ("max", "/api/org/sso"),
        ("max", "/api/users"),
        ("max", "/api/sites"),
        ("max", "/api/teams"),
        ("max", "/api/holds"),
        ("max", "/api/training/policy"),
        ("max", "/api/training/users"),
        ("max", "/api/compliance"),
        ("mo", "/api/audit"),
        ("mo", "/api/audit/search"),
        ("mo", "/api/audit/counts"),
        ("mo", "/api/recordings"),
        ("mary", "/api/sessions"),
        ("mallory", "/api/me/org"),
    ],
)
def test_an_organisation_named_in_the_query_changes_nothing_read(
    shared_orgs_server: RunningServer, user: str, path: str
) -> None:
    """Every organisation-wide read takes the organisation from the sign-in alone: naming the
    default organisation in the query (as ``org``, ``org_id`` or ``organisation``) answers
    exactly what the plain read answers. (Shares one server: these only read.)"""
    with api(shared_orgs_server, user) as client:
        plain = client.get(path)
        named = client.get(
            path, params={"org": "default", "org_id": "default", "organisation": "default"}
        )
    assert plain.status_code == named.status_code == 200, (plain.text, named.text)
    if path in ("/api/audit", "/api/audit/search"):  # each read is a record: the second has more
        first = {r["seq"] for r in plain.json()}
        second = {r["seq"]: r for r in named.json()}
        # The search's page is the newest 50: the oldest of the first read may have left it.
        low, high = max(min(first), min(second)), max(first)
        assert {n for n in first if n >= low} == {n for n in second if low <= n <= high}
        added = {(r["action"], r["actor"]) for n, r in second.items() if n > high}
        assert added <= {("audit_read", "mo"), ("sign_in", "mo")}
        return
    assert _stable(named) == _stable(plain)


def _stable(answer: httpx.Response) -> object:
    """An answer without what changes from one read to the next (times, the checks' clock)."""
    body = answer.json()
    if isinstance(body, list):
        return [
            {k: v for k, v in item.items() if k not in ("checked_at", "seq", "at", "hash")}
            if isinstance(item, dict)
            else item
            for item in body
        ]
    return body


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/api/org", {"org_id": "default", "name": "Pwned"}),
        ("PUT", "/api/org/recording-key", {"public_key": "x" * 43, "org_id": "default"}),
        ("POST", "/api/teams", {"team": "x", "org": "default"}),
        ("POST", "/api/holds", {"kind": "subject", "target": "x", "reason": "r", "org": "default"}),
        ("PUT", "/api/training/policy", {"text": "Pwned", "org_id": "default"}),
    ],
)
def test_an_organisation_named_in_a_body_is_refused_as_bad_input(
    shared_orgs_server: RunningServer, method: str, path: str, body: dict[str, Any]
) -> None:
    """A body naming an organisation is refused whole (400, unknown field), not applied to the
    signer's organisation nor to the one named. (Shares one server: each is refused.)"""
    with api(shared_orgs_server, "max") as max_:
        answer = max_.request(method, path, json=body)
        assert answer.status_code == 400, answer.text
        assert "unknown field" in answer.json()["detail"].lower(), answer.text
    with api(shared_orgs_server, "ada") as ada:
        assert ada.get("/api/org").json()["name"] != "Pwned"
        assert ada.get("/api/training/policy").json()["text"] != "Pwned"


async def test_throttled_provider_sign_ins_are_counted_for_the_organisation_they_start_at(
    orgs_server: RunningServer,
) -> None:
    """Acme's people start sign-ins at Acme's provider from one address until it waits. The
    count of the throttled start names the address: it was the default organisation's, whose
    auditors read where another organisation's people sign in from. Now it is counted for the
    organisation the start named (a name that is no organisation's: the default one's)."""
    url = f"{orgs_server.base}/api/sso/start"
    with httpx.Client() as browser:
        for _ in range(orgs_server.settings.sso_free_starts + 2):
            browser.get(url, params={"org": "acme"})
        busy = browser.get(url, params={"org": "acme"})
        assert busy.headers["location"] == "/console/?sso=busy"
    orgs_server.clock.advance(orgs_server.settings.anonymous_audit_interval_seconds)

    async def counted() -> bool:
        return bool(counts(orgs_server, "mo"))

    await eventually(counted)
    assert [row["action"] for row in counts(orgs_server, "mo")] == ["sso_throttled"]
    assert counts(orgs_server, "aud") == []
