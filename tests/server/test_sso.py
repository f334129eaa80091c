"""Sign-in through an organisation's OpenID Connect provider, end to end over HTTP: provisioned
accounts only, bound to the provider's subject, bound to the browser that started, audited."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import RunningServer
from tests.oidc_provider import OidcProvider
from tests.server.test_admin_api import audit_actions
from tests.server.test_organisations import api


@pytest.fixture
def provider(orgs_server: RunningServer) -> Iterator[OidcProvider]:
    running = OidcProvider().start()
    running.redirect_uris.add(f"{orgs_server.base}/api/sso/callback")
    with api(orgs_server, "ada") as ada:
        settings = {
            "issuer": running.issuer,
            "client_id": running.client_id,
            "client_secret": running.client_secret,
        }
        answer = ada.put("/api/org/sso", json=settings)
        assert answer.status_code == 200, answer.text
        assert "client_secret" not in answer.text
    yield running
    running.stop()


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
    assert "sign_in" in audit_actions(orgs_server)


@pytest.mark.parametrize(
    "user",
    [
        {"sub": "u-2", "preferred_username": "nobody"},  # no such account
        {"sub": "u-3", "preferred_username": "mallory"},  # an account of another organisation
        {"sub": "u-4"},  # no username at all
    ],
)
def test_only_accounts_of_that_organisation_sign_in(
    orgs_server: RunningServer, provider: OidcProvider, user: dict[str, str]
) -> None:
    provider.user = user
    with httpx.Client() as browser:
        back = sign_in(orgs_server, browser)
        assert back.headers["location"] == "/console/?sso=failed"
        assert browser.get(f"{orgs_server.base}/api/me").status_code == 401
    assert "sso_failed" in audit_actions(orgs_server)


def test_an_account_stays_bound_to_its_first_subject(
    orgs_server: RunningServer, provider: OidcProvider
) -> None:
    with httpx.Client() as browser:
        assert sign_in(orgs_server, browser).headers["location"] == "/console/"
    provider.user = {"sub": "someone-else", "preferred_username": "alice"}
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
    assert "sso_throttled" in audit_actions(orgs_server)


def test_provider_settings_are_validated_and_audited(orgs_server: RunningServer) -> None:
    with api(orgs_server, "ada") as ada:
        plain = {"issuer": "http://idp.example", "client_id": "c", "client_secret": "s"}
        assert ada.put("/api/org/sso", json=plain).status_code == 400  # https only, off loopback
        good = {**plain, "issuer": "https://idp.example/"}
        assert ada.put("/api/org/sso", json=good).json()["sso"]["issuer"] == "https://idp.example"
        assert ada.get("/api/org/sso").json() == {
            "sso": {"issuer": "https://idp.example", "client_id": "c"}
        }
        assert ada.delete("/api/org/sso").status_code == 204
        assert ada.get("/api/org/sso").json() == {"sso": None}
    assert {"sso_configured", "sso_removed"} <= set(audit_actions(orgs_server))
