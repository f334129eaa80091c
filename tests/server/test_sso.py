"""Sign-in through an organisation's OpenID Connect provider, end to end over HTTP: only accounts
an admin bound to a provider account (issuer and subject), bound to the browser that started,
audited; an admin and its provider cannot reach auditors; no request to private hosts."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from tandem.access import Grant
from tandem.crypto import SecretBox
from tandem.directory import Directory
from tandem.exceptions import StorageError
from tandem.storage.sql import SQLStorage
from tests.conftest import (
    AGENT_PASSWORD,
    RunningServer,
    ServerFactory,
    seed_directory,
    two_organisations,
)
from tests.grants import of_org
from tests.oidc_provider import OidcProvider, use_provider
from tests.server.helpers import closed_with, login_cookie, open_agent
from tests.server.test_admin_api import audit_actions
from tests.server.test_customer_quotas import counts
from tests.server.test_organisations import api


@pytest.fixture
def orgs_server(server_factory: ServerFactory) -> RunningServer:
    """Two organisations, on a server that may talk to the test provider on loopback (the
    test-only setting; without it, see the tests at the end)."""
    return server_factory(seed=two_organisations, test_private_network=True)


@pytest.fixture
def provider(orgs_server: RunningServer) -> Iterator[OidcProvider]:
    """The default organisation's provider, with alice bound to its user ``u-1``."""
    running = OidcProvider().start()
    running.redirect_uris.add(f"{orgs_server.base}/api/sso/callback")
    with api(orgs_server, "ada") as ada:
        use_provider(ada, running, {"alice": "u-1"})
    yield running
    running.stop()


def sso_failures(server: RunningServer) -> list[str]:
    """The reasons of the trail's ``sso_failed`` records, as an auditor reads them."""
    with api(server, "aud") as aud:
        return [
            r["details"].get("reason", "")
            for r in aud.get("/api/audit").json()
            if r["action"] == "sso_failed"
        ]


def sign_in(server: RunningServer, browser: httpx.Client, org: str = "default") -> httpx.Response:
    """What the browser does: start, go to the provider, come back."""
    start = browser.get(f"{server.base}/api/sso/start", params={"org": org})
    assert start.status_code == 303
    at_provider = browser.get(start.headers["location"])
    if at_provider.status_code != 302:
        return start
    return browser.get(at_provider.headers["location"])


def test_a_provisioned_user_signs_in_through_the_provider(
    orgs_server: RunningServer, provider: OidcProvider
) -> None:
    with httpx.Client() as browser:
        back = sign_in(orgs_server, browser)
        assert back.status_code == 303 and back.headers["location"] == "/console/"
        me = browser.get(f"{orgs_server.base}/api/me")
    assert me.status_code == 200
    assert me.json()["username"] == "alice"
    assert me.json()["needs_second_factor"] is False  # the provider runs its own
    with api(orgs_server, "aud") as aud:
        records = aud.get("/api/audit").json()
    assert [r["details"] for r in records if r["actor"] == "alice"] == [
        {"method": "oidc", "ip": "127.0.0.1"}  # where it came from, as a password sign-in's
    ]


@pytest.mark.parametrize(
    "user",
    [
        {"sub": "u-2", "preferred_username": "nobody"},  # bound to no account
        {"sub": "u-3", "preferred_username": "mallory"},  # an account of another organisation
        {"sub": "u-4"},  # no username at all
    ],
)
def test_only_bound_accounts_of_that_organisation_sign_in(
    orgs_server: RunningServer, provider: OidcProvider, user: dict[str, str]
) -> None:
    provider.user = user
    with httpx.Client() as browser:
        back = sign_in(orgs_server, browser)
        assert back.headers["location"] == "/console/?sso=failed"
        assert browser.get(f"{orgs_server.base}/api/me").status_code == 401
    assert "sso_failed" in audit_actions(orgs_server)


def test_the_providers_username_claim_takes_over_no_account(
    orgs_server: RunningServer, provider: OidcProvider
) -> None:
    """The attack: the admin's own provider says preferred_username "aud" (an auditor, who
    checks the admin) or "sam" for a user of its own. Neither is bound to it: refused."""
    for name in ("aud", "sam"):
        provider.user = {"sub": f"attacker-{name}", "preferred_username": name}
        with httpx.Client() as browser:
            assert sign_in(orgs_server, browser).headers["location"] == "/console/?sso=failed"
            assert browser.get(f"{orgs_server.base}/api/me").status_code == 401


def test_the_providers_email_claim_links_no_account(
    orgs_server: RunningServer, provider: OidcProvider
) -> None:
    """The attack: a provider account of the attacker's carrying the victim's e-mail address,
    verified or not (or the claim missing), and the victim's name. Accounts are linked by the
    admin's binding of (issuer, subject) alone: refused, whatever the e-mail says."""
    for verified in (True, False, None):
        provider.user = {
            "sub": "attacker",
            "preferred_username": "alice",
            "email": "alice@example.com",
            **({} if verified is None else {"email_verified": verified}),
        }
        with httpx.Client() as browser:
            assert sign_in(orgs_server, browser).headers["location"] == "/console/?sso=failed"
            assert browser.get(f"{orgs_server.base}/api/me").status_code == 401


def test_the_bound_subject_signs_in_whatever_name_the_provider_gives(
    orgs_server: RunningServer, provider: OidcProvider
) -> None:
    provider.user = {"sub": "u-1", "preferred_username": "someone-else"}
    with httpx.Client() as browser:
        assert sign_in(orgs_server, browser).headers["location"] == "/console/"
        assert browser.get(f"{orgs_server.base}/api/me").json()["username"] == "alice"


def test_an_admin_cannot_bind_its_provider_to_an_auditor_or_make_one(
    orgs_server: RunningServer, provider: OidcProvider
) -> None:
    """Separation of duties: auditors check the admin; only the operator manages them."""
    with api(orgs_server, "ada") as ada:
        assert ada.put("/api/users/aud/sso", json={"subject": "u-9"}).status_code == 403
        made = ada.post(
            "/api/users", json={"username": "aud2", "password": AGENT_PASSWORD, "role": "auditor"}
        )
        assert made.status_code == 403 and "operator" in made.json()["detail"]
        assert ada.patch("/api/users/sam", json={"role": "auditor"}).status_code == 403
        assert ada.patch("/api/users/aud", json={"role": "agent"}).status_code == 403
        reset = ada.post("/api/users/aud/reset-password", json={"password": AGENT_PASSWORD + "x"})
        assert reset.status_code == 403
        assert ada.post("/api/users/aud/reset-mfa").status_code == 403
        assert ada.delete("/api/users/aud").status_code == 403
    provider.user = {"sub": "u-9", "preferred_username": "aud"}
    with httpx.Client() as browser:
        assert sign_in(orgs_server, browser).headers["location"] == "/console/?sso=failed"


def test_a_provider_account_is_bound_to_one_user_and_unbinding_ends_its_sign_ins(
    orgs_server: RunningServer, provider: OidcProvider
) -> None:
    with api(orgs_server, "ada") as ada:
        taken = ada.put("/api/users/sam/sso", json={"subject": "u-1"})
        assert taken.status_code == 409
    with httpx.Client() as browser:
        assert sign_in(orgs_server, browser).headers["location"] == "/console/"
        with api(orgs_server, "ada") as ada:
            assert ada.delete("/api/users/alice/sso").status_code == 204
        assert browser.get(f"{orgs_server.base}/api/me").status_code == 401
    with httpx.Client() as browser:
        assert sign_in(orgs_server, browser).headers["location"] == "/console/?sso=failed"


def test_a_callback_in_another_browser_signs_no_one_in(
    orgs_server: RunningServer, provider: OidcProvider
) -> None:
    """Login CSRF: the attacker starts a sign-in and makes the victim's browser finish it."""
    with httpx.Client() as attacker:
        start = attacker.get(f"{orgs_server.base}/api/sso/start", params={"org": "default"})
        callback = attacker.get(start.headers["location"]).headers["location"]
    with httpx.Client() as victim:
        back = victim.get(callback)
        assert back.headers["location"] == "/console/?sso=failed"
        assert victim.get(f"{orgs_server.base}/api/me").status_code == 401
    with httpx.Client() as attacker_again:  # and the pending sign-in is spent
        assert attacker_again.get(callback).headers["location"] == "/console/?sso=failed"


def test_another_site_cannot_start_a_sign_in_for_the_browser(
    orgs_server: RunningServer, provider: OidcProvider
) -> None:
    """Login CSRF: a link on another site to /api/sso/start of an organisation whose provider
    its admin runs would sign the visitor into that organisation's account in place of the
    visitor's own. Browsers say where a navigation came from (Sec-Fetch-Site)."""
    navigation = {"sec-fetch-mode": "navigate", "sec-fetch-dest": "document"}
    url = f"{orgs_server.base}/api/sso/start"
    for site in ("cross-site", "same-site"):
        with httpx.Client() as browser:
            start = browser.get(
                url, params={"org": "default"}, headers={**navigation, "sec-fetch-site": site}
            )
            assert start.status_code == 303
            assert start.headers["location"] == "/console/?sso=failed"
            assert "tandem_sso" not in start.cookies  # no sign-in was started
    for site in ("same-origin", "none"):  # the console's button; an address typed in
        with httpx.Client() as browser:
            start = browser.get(
                url, params={"org": "default"}, headers={**navigation, "sec-fetch-site": site}
            )
            assert start.headers["location"].startswith(provider.issuer), start.headers
    with httpx.Client() as browser:  # and a client that says nothing of it (no browser)
        assert sign_in(orgs_server, browser).headers["location"] == "/console/"


def test_an_organisation_without_a_provider_is_told_so(orgs_server: RunningServer) -> None:
    for org in ("acme", "no-such-org", "../etc"):
        start = httpx.get(f"{orgs_server.base}/api/sso/start", params={"org": org})
        assert start.status_code == 303
        assert start.headers["location"] == "/console/?sso=unavailable"


def test_starting_sign_ins_without_finishing_them_backs_off_per_address(
    orgs_server: RunningServer,
) -> None:
    """Each start keeps a pending row: one address cannot start them without end."""
    free = orgs_server.settings.sso_free_starts
    url = f"{orgs_server.base}/api/sso/start"
    with httpx.Client() as client:
        for _ in range(free + 1):  # the free ones, then the one that starts the back-off
            start = client.get(url, params={"org": "default"})
            assert start.headers["location"] != "/console/?sso=busy"
        start = client.get(url, params={"org": "default"})
        assert start.status_code == 303
        assert start.headers["location"] == "/console/?sso=busy"
        assert int(start.headers["retry-after"]) >= 1
    # Counted (not a record each: refused unchecked, a start costs nothing), once the
    # interval ends.
    assert "sso_throttled" not in audit_actions(orgs_server)
    orgs_server.clock.advance(orgs_server.settings.anonymous_audit_interval_seconds)
    deadline = time.monotonic() + 30
    while "sso_throttled" not in {row["action"] for row in counts(orgs_server)}:
        assert time.monotonic() < deadline, "the throttled start was never counted"
        time.sleep(0.05)


def test_rotating_through_an_ipv6_64_does_not_escape_the_start_back_off(
    server_factory: ServerFactory,
) -> None:
    """Each address of one /64 (one IPv6 client's usual share) is the same client: a new one
    for each start does not keep pending rows coming without end."""
    server = server_factory(
        seed=two_organisations,
        test_private_network=True,
        trusted_proxies=("127.0.0.1",),
        throttle_backoff_seconds=60,  # outlasts a busy machine's requests (the clock runs)
    )
    url = f"{server.base}/api/sso/start"
    free = server.settings.sso_free_starts
    with httpx.Client() as client:

        def start_from(address: str) -> httpx.Response:
            return client.get(url, params={"org": "default"}, headers={"x-forwarded-for": address})

        for n in range(1, free + 2):  # the free ones, then the one that starts the back-off
            start = start_from(f"2001:db8:5:6::{n:x}")
            assert start.headers["location"] != "/console/?sso=busy"
        start = start_from("2001:db8:5:6:ffff::1")
        assert start.headers["location"] == "/console/?sso=busy"
        assert int(start.headers["retry-after"]) >= 1
        other = start_from("2001:db8:5:7::1")  # another /64: another client
        assert other.headers["location"] != "/console/?sso=busy"


def test_an_issuer_or_origin_the_url_parser_refuses_is_bad_input_not_a_server_error(
    orgs_server: RunningServer,
) -> None:
    """An unclosed IPv6 bracket or a port out of range passed the checks (which expected
    ConfigError, not the parser's ValueError): the admin's change answered 500, or was stored
    and every sign-in through the provider, started by anyone, answered 500."""
    bad = ("https://[::1", "https://idp.example:99999", "https://idp.example:-1", "https://a..b")
    with api(orgs_server, "ada") as ada:
        for url in bad:
            sso = {"issuer": url, "client_id": "c", "client_secret": "s"}
            answer = ada.put("/api/org/sso", json=sso)
            assert answer.status_code == 400, (url, answer.text)
            site = ada.post("/api/sites", json={"site_id": "s1", "origin": url, "teams": []})
            assert site.status_code == 400, (url, site.text)
        assert ada.get("/api/org/sso").json() == {"sso": None}
        # A host name is kept as browsers send it in their Origin header (IDNA), so that it
        # matches: as typed, it never would have.
        site = {"site_id": "books", "origin": "https://b\u00fccher.example", "teams": []}
        made = ada.post("/api/sites", json=site)
        assert made.status_code == 201, made.text
        assert made.json()["origin"] == "https://xn--bcher-kva.example"
    start = httpx.get(f"{orgs_server.base}/api/sso/start", params={"org": "default"})
    assert start.status_code == 303 and start.headers["location"] == "/console/?sso=unavailable"


def test_finishing_a_sign_in_forgives_its_own_start_not_every_unfinished_one(
    orgs_server: RunningServer, provider: OidcProvider
) -> None:
    """A finished sign-in cleared its address's count of unfinished starts: a client that can
    finish one at will (any organisation's admin runs its own provider) started afresh after
    each, and kept pending rows coming without end. It now takes back its own start only; an
    office whose people all finish their sign-ins is never slowed."""
    free = orgs_server.settings.sso_free_starts
    url = f"{orgs_server.base}/api/sso/start"
    for _ in range(free + 5):  # a whole office behind one address, each one signing in
        with httpx.Client() as browser:
            assert sign_in(orgs_server, browser).headers["location"] == "/console/"
    with httpx.Client() as client:
        for _ in range(free - 1):  # unfinished, each keeping a pending row
            assert client.get(url, params={"org": "default"}).status_code == 303
    with httpx.Client() as browser:  # one finished: its own start is taken back
        assert sign_in(orgs_server, browser).headers["location"] == "/console/"
    more = 0
    with httpx.Client() as client:
        while client.get(url, params={"org": "default"}).headers["location"].startswith("http"):
            more += 1
            assert more <= free, "finishing one sign-in forgave every unfinished start"
    assert more == 2  # the last free one, and the one that starts the wait


def test_a_callback_hit_twice_at_once_signs_in_once(
    orgs_server: RunningServer, provider: OidcProvider
) -> None:
    """The browser's callback (its state, code and cookie) sent four times at once, as a
    double click or a replaying proxy would: one sign-in, the others refused, the code
    exchanged once."""
    with httpx.Client() as browser:
        start = browser.get(f"{orgs_server.base}/api/sso/start", params={"org": "default"})
        back = browser.get(start.headers["location"]).headers["location"]
        cookies = dict(browser.cookies.items())

    def hit(_: int) -> httpx.Response:
        with httpx.Client(cookies=cookies) as again:
            return again.get(back)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(hit, range(4)))
    places = sorted(answer.headers["location"] for answer in answers)
    assert places == ["/console/"] + ["/console/?sso=failed"] * 3, places
    assert provider.token_requests == 1


def test_a_provider_sign_in_ends_the_sign_in_the_browser_had(
    orgs_server: RunningServer, provider: OidcProvider
) -> None:
    earlier = httpx.post(
        f"{orgs_server.base}/api/login", json={"username": "bob", "password": AGENT_PASSWORD}
    ).cookies["tandem_agent"]
    with httpx.Client() as browser:
        browser.cookies.set("tandem_agent", earlier, domain="127.0.0.1")
        start = browser.get(f"{orgs_server.base}/api/sso/start", params={"org": "default"})
        back = browser.get(start.headers["location"]).headers["location"]
        # The provider's redirect back is a navigation from another site: the browser sends
        # no SameSite=Strict cookie with it. Only the start (same-origin) carried it.
        browser.cookies.delete("tandem_agent")
        assert browser.get(back).headers["location"] == "/console/"
        assert browser.get(f"{orgs_server.base}/api/me").json()["username"] == "alice"
    with httpx.Client() as other:
        other.cookies.set("tandem_agent", earlier)
        assert other.get(f"{orgs_server.base}/api/me").status_code == 401


def test_a_provider_publishing_too_many_keys_is_refused_unread(
    server_factory: ServerFactory,
) -> None:
    """An organisation's provider (its admin's) published a megabyte of keys, and every sign-in
    of its own read them all on the server's event loop (half a second each, every live session
    of every organisation stalled meanwhile); finishing a sign-in takes back its start, so
    there was no end to them. A key set beyond sso_max_signing_keys is refused; within it,
    only the keys the ID token names are read, and a key id it lacks is refused."""
    server = server_factory(seed=two_organisations, test_private_network=True)
    running = OidcProvider().start()
    try:
        running.redirect_uris.add(f"{server.base}/api/sso/callback")
        with api(server, "ada") as ada:
            use_provider(ada, running, {"alice": "u-1"})
        most = server.settings.sso_max_signing_keys
        other = running.other_key.as_dict(private=False)
        running.misbehave.extra_keys = [{**other, "kid": f"x{i}"} for i in range(most - 1)]
        with httpx.Client() as browser:  # as many as allowed: the token's key is found
            assert sign_in(server, browser).headers["location"] == "/console/"
        running.misbehave.extra_keys.append({**other, "kid": "one-too-many"})
        with httpx.Client() as browser:
            assert sign_in(server, browser).headers["location"] == "/console/?sso=failed"
        running.misbehave.extra_keys = []
        running.misbehave.foreign_key = True  # signed with a key the set does not name
        with httpx.Client() as browser:
            assert sign_in(server, browser).headers["location"] == "/console/?sso=failed"
    finally:
        running.stop()
    reasons = sso_failures(server)
    assert len(reasons) == 2, reasons
    assert f"has {most + 1} keys, more than the {most} allowed" in reasons[0]
    assert "signature" in reasons[1] or "key" in reasons[1], reasons[1]


def test_provider_settings_are_validated_and_audited(orgs_server: RunningServer) -> None:
    with api(orgs_server, "ada") as ada:
        plain = {"issuer": "ftp://idp.example", "client_id": "c", "client_secret": "s"}
        assert ada.put("/api/org/sso", json=plain).status_code == 400
        good = {**plain, "issuer": "https://idp.example/"}
        assert ada.put("/api/org/sso", json=good).json()["sso"]["issuer"] == "https://idp.example"
        assert ada.get("/api/org/sso").json() == {
            "sso": {"issuer": "https://idp.example", "client_id": "c", "mfa_acr": [], "mfa_amr": []}
        }
        assert ada.delete("/api/org/sso").status_code == 204
        assert ada.get("/api/org/sso").json() == {"sso": None}
    assert {"sso_configured", "sso_removed"} <= set(audit_actions(orgs_server))


@pytest.mark.parametrize(
    "issuer",
    [
        "http://idp.example",
        "http://127.0.0.1:6379",  # any service of the server's own host
        "https://127.0.0.1:8443",
        "https://169.254.169.254",
        "https://10.0.0.5",
        "https://localhost",
    ],
)
def test_an_admin_cannot_point_the_server_at_a_private_or_plain_http_issuer(
    server_factory: ServerFactory, issuer: str
) -> None:
    server = server_factory(seed=two_organisations)  # production: no test-only setting
    with api(server, "ada") as ada:
        answer = ada.put(
            "/api/org/sso", json={"issuer": issuer, "client_id": "c", "client_secret": "s"}
        )
        assert answer.status_code == 400, answer.text
        assert ada.get("/api/org/sso").json() == {"sso": None}


def test_a_stored_loopback_issuer_is_neither_fetched_nor_redirected_to(
    server_factory: ServerFactory,
) -> None:
    """An issuer an older version accepted (http on loopback): /api/sso/start, which anyone can
    call, neither makes the server fetch it nor sends the browser anywhere but back."""
    provider = OidcProvider().start()
    try:

        async def stored_by_an_older_version(directory: Directory) -> None:
            await two_organisations(directory)
            value = {"issuer": provider.issuer, "client_id": "c", "client_secret": "s"}
            await directory.storage.set_oidc(
                of_org("default"), directory.box.seal(json.dumps(value))
            )

        server = server_factory(seed=stored_by_an_older_version)
        start = httpx.get(f"{server.base}/api/sso/start", params={"org": "default"})
        assert start.status_code == 303
        assert start.headers["location"] == "/console/?sso=failed"
        assert provider.requests == 0
    finally:
        provider.stop()


def test_the_providers_deadline_and_the_pending_sign_ins_life_are_the_servers_settings(
    server_factory: ServerFactory,
) -> None:
    """Every limit is a setting: a provider that does not answer fails the start within
    sso_timeout_seconds (said in the audit trail), and the browser's pending-sign-in cookie
    lives sso_pending_seconds."""
    server = server_factory(
        seed=two_organisations,
        test_private_network=True,
        sso_timeout_seconds=0.5,
        sso_pending_seconds=120,
    )
    running = OidcProvider().start()
    try:
        running.redirect_uris.add(f"{server.base}/api/sso/callback")
        with api(server, "ada") as ada:
            use_provider(ada, running)
        # The provider (a thread of this process) answers within 0.5 s on a quiet machine; on a
        # loaded one a start may fail for it (as the stalled one below does): started again.
        deadline = time.monotonic() + 60
        while True:
            with httpx.Client() as browser:
                start = browser.get(f"{server.base}/api/sso/start", params={"org": "default"})
            assert start.status_code == 303
            if start.headers["location"].startswith("http") or time.monotonic() > deadline:
                break
        assert start.headers["location"].startswith("http"), start.headers["location"]
        assert "max-age=120" in start.headers["set-cookie"].lower()
        running.misbehave.stall = True
        with httpx.Client() as browser:
            start = browser.get(f"{server.base}/api/sso/start", params={"org": "default"})
            assert start.headers["location"] == "/console/?sso=failed"
    finally:
        running.stop()
    reasons = sso_failures(server)
    assert any("did not answer within 0.5 s" in reason for reason in reasons), reasons


async def test_turning_the_provider_off_ends_the_sign_ins_made_through_it(
    orgs_server: RunningServer, provider: OidcProvider
) -> None:
    """The organisation's provider is taken over and signs the attacker in as alice; her admin
    finds out and turns single sign-on off. The sign-ins the provider made stayed valid for
    their lifetime (8 hours, kept alive by use), their sockets open: whoever it signed in kept
    working. Now they end at once, sockets too; password sign-ins of the organisation stay."""
    with httpx.Client() as browser:
        assert sign_in(orgs_server, browser).headers["location"] == "/console/"
        cookie = browser.cookies["tandem_agent"]
    agent = await open_agent(orgs_server, cookie)
    sam = login_cookie(orgs_server, "sam")
    with api(orgs_server, "ada") as ada:
        assert ada.delete("/api/org/sso").status_code == 204
        assert ada.get("/api/me").status_code == 200
    assert await closed_with(agent) == (4401, "signed out: sign in again")
    me = f"{orgs_server.base}/api/me"
    assert httpx.get(me, cookies={"tandem_agent": cookie}).status_code == 401
    assert httpx.get(me, cookies={"tandem_agent": sam}).status_code == 200


def test_another_provider_or_requirement_ends_its_sign_ins_and_a_new_secret_does_not(
    orgs_server: RunningServer, provider: OidcProvider
) -> None:
    """What vouched for a provider's sign-in is its issuer, the client and the second factor
    its ID token had to show: changing any of them ends the sign-ins it made (a requirement
    set after a phished sign-in did not end it); a new client secret alone does not."""
    settings = {
        "issuer": provider.issuer,
        "client_id": provider.client_id,
        "client_secret": "a-rotated-secret",
    }
    with httpx.Client() as browser, api(orgs_server, "ada") as ada:
        assert sign_in(orgs_server, browser).headers["location"] == "/console/"
        me = f"{orgs_server.base}/api/me"
        assert ada.put("/api/org/sso", json=settings).status_code == 200
        assert browser.get(me).status_code == 200
        assert ada.put("/api/org/sso", json={**settings, "mfa_amr": ["mfa"]}).status_code == 200
        assert browser.get(me).status_code == 401


def test_a_provider_stored_by_an_older_version_saved_with_a_new_secret_keeps_its_sign_ins(
    orgs_server: RunningServer, provider: OidcProvider
) -> None:
    """Settings an older version stored have no second-factor lists: saving them again with a
    new secret changes nothing a sign-in relied on, so it ends none."""

    async def as_stored_before(directory: Directory) -> None:
        old = {
            "issuer": provider.issuer,
            "client_id": provider.client_id,
            "client_secret": provider.client_secret,
        }
        await directory.storage.set_oidc(of_org("default"), directory.box.seal(json.dumps(old)))

    seed_directory(orgs_server.settings.data_dir, as_stored_before)
    settings = {
        "issuer": provider.issuer,
        "client_id": provider.client_id,
        "client_secret": "a-rotated-secret",
    }
    with httpx.Client() as browser, api(orgs_server, "ada") as ada:
        assert sign_in(orgs_server, browser).headers["location"] == "/console/"
        assert ada.put("/api/org/sso", json=settings).status_code == 200
        assert browser.get(f"{orgs_server.base}/api/me").status_code == 200


def ending_fails_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The database fails (once) as the provider's sign-ins are ended."""
    failed: list[bool] = []
    ending = SQLStorage.delete_logins_by_method

    async def fails_once(self: SQLStorage, grant: Grant, method: str) -> int:
        if not failed:
            failed.append(True)
            raise StorageError("the database did not answer")
        return await ending(self, grant, method)

    monkeypatch.setattr(SQLStorage, "delete_logins_by_method", fails_once)


def test_a_provider_change_the_database_failed_halfway_still_ends_its_sign_ins_when_saved_again(
    orgs_server: RunningServer, provider: OidcProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database fails while an admin changes the provider: the new settings were written,
    then ending the old provider's sign-ins failed (503). The admin saves again, as told, and
    the settings stored are the ones given: nothing changed, nothing ended, and the sign-ins
    the old provider made lasted their lifetime. Now they are ended before the write as well
    as after it (a sign-in finishing in between is still refused by its second read)."""
    settings = {
        "issuer": provider.issuer,
        "client_id": provider.client_id,
        "client_secret": provider.client_secret,
        "mfa_amr": ["mfa"],
    }
    with httpx.Client() as browser, api(orgs_server, "ada") as ada:
        assert sign_in(orgs_server, browser).headers["location"] == "/console/"
        ending_fails_once(monkeypatch)
        assert ada.put("/api/org/sso", json=settings).status_code == 503
        assert ada.put("/api/org/sso", json=settings).status_code == 200
        assert browser.get(f"{orgs_server.base}/api/me").status_code == 401


def test_a_provider_removal_the_database_failed_halfway_does_not_look_done(
    orgs_server: RunningServer, provider: OidcProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same fault as the admin turns single sign-on off: the provider was removed, then
    ending its sign-ins failed (503). The console then showed single sign-on off, as if done,
    and the sign-ins made through the provider (perhaps one taken over) lasted. Now they end
    first: a removal that failed leaves the provider on, for the admin to remove again."""
    with httpx.Client() as browser, api(orgs_server, "ada") as ada:
        assert sign_in(orgs_server, browser).headers["location"] == "/console/"
        ending_fails_once(monkeypatch)
        assert ada.delete("/api/org/sso").status_code == 503
        assert ada.get("/api/org/sso").json()["sso"] is not None  # not shown as done
        assert ada.delete("/api/org/sso").status_code in (200, 204)
        assert browser.get(f"{orgs_server.base}/api/me").status_code == 401


def test_settings_sealed_under_a_replaced_secrets_key_can_be_saved_over(
    orgs_server: RunningServer, provider: OidcProvider, tmp_path: Path
) -> None:
    """With the secrets key replaced (lost, restored from another machine), the stored
    settings cannot be opened: saving the provider again in full (its second-factor lists
    given) replaces them and ends the sign-ins made through what nobody can read any more;
    without the lists, which only the unreadable settings held, a clear refusal says to give
    them. It was a refusal either way, so single sign-on could only be removed first."""

    async def sealed_elsewhere(directory: Directory) -> None:
        other = SecretBox(tmp_path / "another-secrets.key")
        stored = {"issuer": provider.issuer, "client_id": "c", "client_secret": "s"}
        await directory.storage.set_oidc(of_org("default"), other.seal(json.dumps(stored)))

    settings = {
        "issuer": provider.issuer,
        "client_id": provider.client_id,
        "client_secret": provider.client_secret,
    }
    with httpx.Client() as browser, api(orgs_server, "ada") as ada:
        assert sign_in(orgs_server, browser).headers["location"] == "/console/"
        seed_directory(orgs_server.settings.data_dir, sealed_elsewhere)
        partial = ada.put("/api/org/sso", json=settings)
        assert partial.status_code == 400, partial.text
        assert "mfa_amr" in partial.json()["detail"], partial.text
        assert browser.get(f"{orgs_server.base}/api/me").status_code == 200
        whole = {**settings, "mfa_amr": [], "mfa_acr": []}
        assert ada.put("/api/org/sso", json=whole).status_code == 200
        assert browser.get(f"{orgs_server.base}/api/me").status_code == 401
        assert ada.get("/api/org/sso").status_code == 200


class ChangedWhileSigningIn(OidcProvider):
    """A provider during whose code exchange the organisation's admin turns single sign-on
    off: the change lands between the server reading the provider and storing the sign-in."""

    def __init__(self, change: Callable[[], None]) -> None:
        super().__init__()
        self.change = change

    async def token(self, request: Request) -> Response:
        await asyncio.to_thread(self.change)
        return await super().token(request)


def test_a_sign_in_finishing_while_the_provider_is_turned_off_is_not_kept(
    orgs_server: RunningServer,
) -> None:
    with api(orgs_server, "ada") as ada:

        def turn_off() -> None:
            assert ada.delete("/api/org/sso").status_code == 204

        running = ChangedWhileSigningIn(turn_off).start()
        try:
            running.redirect_uris.add(f"{orgs_server.base}/api/sso/callback")
            use_provider(ada, running, {"alice": "u-1"})
            with httpx.Client() as browser:
                back = sign_in(orgs_server, browser)
                assert back.headers["location"] == "/console/?sso=failed"
                assert browser.get(f"{orgs_server.base}/api/me").status_code == 401
        finally:
            running.stop()
    assert any("provider changed meanwhile" in reason for reason in sso_failures(orgs_server))


def test_a_provider_sign_in_is_bound_to_its_browser_too(server_factory: ServerFactory) -> None:
    """``login_bind_client``: a sign-in made through the provider carries its binding as a
    password sign-in does; its cookie copied into another browser ends it."""
    server = server_factory(
        seed=two_organisations, test_private_network=True, login_bind_client="browser"
    )
    running = OidcProvider().start()
    try:
        running.redirect_uris.add(f"{server.base}/api/sso/callback")
        with api(server, "ada") as ada:
            use_provider(ada, running, {"alice": "u-1"})
        owner = {"user-agent": "Mozilla/5.0 (the owner's browser)"}
        with httpx.Client(headers=owner) as browser:
            assert sign_in(server, browser).status_code == 303
            cookie = browser.cookies["tandem_agent"]
            assert browser.get(f"{server.base}/api/me").status_code == 200
        assert "." in cookie  # token.binding
        copied = httpx.get(
            f"{server.base}/api/me",
            cookies={"tandem_agent": cookie},
            headers={"user-agent": "Mozilla/5.0 (another browser)"},
        )
        assert copied.status_code == 401
        again = httpx.get(f"{server.base}/api/me", cookies={"tandem_agent": cookie}, headers=owner)
        assert again.status_code == 401  # ended for the owner too
    finally:
        running.stop()
