"""Attack review of authentication, item 3: an admin taking over an agent's account (through a
provider account of its own, or a reset of the password) is audited, and the agent is shown it
at the next sign-in (GET /api/me/activity, which the console shows), whatever the admin did
while signed in as the agent."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tandem.config import Settings
from tandem.directory import offline, operator
from tests.conftest import AGENT_PASSWORD, RunningServer, ServerFactory, two_organisations
from tests.oidc_provider import OidcProvider, use_provider
from tests.server.test_organisations import api
from tests.server.test_sso import sign_in as sso_sign_in

NEW_PASSWORD = "a brand new passphrase 42"
TEMPORARY = "temporary pass 1234"


@pytest.fixture
def orgs(server_factory: ServerFactory) -> RunningServer:
    return server_factory(seed=two_organisations, test_private_network=True)


def activity(client: httpx.Client) -> list[tuple[str, str, str | None]]:
    answer = client.get("/api/me/activity")
    assert answer.status_code == 200, answer.text
    return [(e["action"], e["by"], e["method"]) for e in answer.json()]


def test_an_admin_signing_in_as_an_agent_through_its_provider_is_shown_to_the_agent(
    orgs: RunningServer,
) -> None:
    """The takeover that changed nothing the agent would notice: the admin binds the agent to a
    provider account of the admin's, signs in through it as the agent, and unbinds. The
    agent's password and second factor still worked; only the trail knew. Now the binding
    made the password temporary: the agent must choose a new one at its next sign-in, and is
    shown why."""
    provider = OidcProvider().start()
    try:
        provider.redirect_uris.add(f"{orgs.base}/api/sso/callback")
        with api(orgs, "ada") as ada:
            use_provider(ada, provider, {"alice": "u-1"})
        with httpx.Client(base_url=orgs.base, headers={"origin": orgs.origin}) as browser:
            assert sso_sign_in(orgs, browser).headers["location"] == "/console/"
            assert browser.get("/api/me").json()["username"] == "alice"
            # Signed in as alice, the admin sees what alice will see: nothing it can remove.
            assert ("sign_in", "alice", "oidc") in activity(browser)
            assert browser.delete("/api/me/activity").status_code == 405
        with api(orgs, "ada") as ada:
            assert ada.delete("/api/users/alice/sso").status_code == 204
    finally:
        provider.stop()
    with httpx.Client(base_url=orgs.base, headers={"origin": orgs.origin}) as alice:
        signed = alice.post("/api/login", json={"username": "alice", "password": AGENT_PASSWORD})
        assert signed.status_code == 200 and signed.json()["must_change_password"] is True
        changed = alice.post(
            "/api/me/password",
            json={"current_password": AGENT_PASSWORD, "new_password": NEW_PASSWORD},
        )
        assert changed.status_code == 200, changed.text
        shown = activity(alice)
    assert shown == [
        ("password_changed", "alice", None),
        ("sign_in", "alice", "password"),  # this one
        ("sso_identity_removed", "ada", None),
        ("sign_in", "alice", "oidc"),  # the admin's
        ("sso_identity_bound", "ada", None),
    ]


def test_an_admin_who_reset_an_agents_password_and_signed_in_is_shown_to_the_agent(
    orgs: RunningServer,
) -> None:
    with api(orgs, "ada") as ada:
        reset = ada.post("/api/users/alice/reset-password", json={"password": TEMPORARY})
        assert reset.status_code in (200, 204), reset.text
    # The admin signs in with the password it set, chooses one of its own: alice is out.
    with httpx.Client(base_url=orgs.base, headers={"origin": orgs.origin}) as taken:
        signed = taken.post("/api/login", json={"username": "alice", "password": TEMPORARY})
        assert signed.status_code == 200 and signed.json()["must_change_password"] is True
        changed = taken.post(
            "/api/me/password",
            json={"current_password": TEMPORARY, "new_password": NEW_PASSWORD},
        )
        assert changed.status_code == 200, changed.text
    # Alice, locked out, asks; the admin resets again, alice chooses her own password.
    with api(orgs, "ada") as ada:
        again = ada.post("/api/users/alice/reset-password", json={"password": AGENT_PASSWORD})
        assert again.is_success
    with httpx.Client(base_url=orgs.base, headers={"origin": orgs.origin}) as alice:
        assert alice.post(
            "/api/login", json={"username": "alice", "password": AGENT_PASSWORD}
        ).is_success
        # Not with the password the admin gave: the account's own first.
        assert alice.get("/api/me/activity").status_code == 403
        assert alice.post(
            "/api/me/password",
            json={"current_password": AGENT_PASSWORD, "new_password": "her very own phrase 77"},
        ).is_success
        shown = activity(alice)
    assert shown == [
        ("password_changed", "alice", None),
        ("sign_in", "alice", "password"),
        ("password_reset", "ada", None),
        ("password_changed", "alice", None),
        ("sign_in", "alice", "password"),  # the admin's, with the password it set
        ("password_reset", "ada", None),
    ]


def test_an_account_is_not_shown_another_accounts_activity(orgs: RunningServer) -> None:
    with api(orgs, "ada") as ada:
        assert ada.post("/api/users/sam/reset-mfa").status_code in (204, 404)
    with api(orgs, "mallory") as mallory:
        # Its own creation (by the operator, the seed's password kept), nothing of sam's.
        assert activity(mallory) == [
            ("sign_in", "mallory", "password"),
            ("user_created", "cli", "kept_by_creator"),
        ]
    with api(orgs, "alice") as alice:
        assert [a for a, _, _ in activity(alice)] == ["sign_in"]


def test_signed_out_the_activity_is_not_shown(orgs: RunningServer) -> None:
    assert httpx.get(f"{orgs.base}/api/me/activity").status_code == 401


def test_every_other_way_an_admin_or_the_operator_reaches_an_agents_account_is_shown(
    orgs: RunningServer,
) -> None:
    """The other routes to an agent's account (disable then enable, a role given and taken back,
    the authenticator removed, the operator's password reset from the command line) are shown
    to the agent as what they are, naming who made them; a change of teams (no way into the
    account) is not among them."""
    with api(orgs, "ada") as ada:
        assert ada.post("/api/users/alice/disable").is_success
        assert ada.post("/api/users/alice/enable").is_success
        assert ada.patch("/api/users/alice", json={"role": "supervisor"}).is_success
        assert ada.patch("/api/users/alice", json={"role": "agent"}).is_success
        assert ada.patch("/api/users/alice", json={"teams": ["billing"]}).is_success
        assert ada.post("/api/users/alice/reset-mfa").status_code == 204

    async def operator_resets() -> None:
        settings = Settings.load(environ={}, data_dir=orgs.settings.data_dir)
        async with offline(settings) as directory:  # `tandem user passwd alice`
            await directory.reset_password(
                operator("default"), "alice", AGENT_PASSWORD, change_required=False
            )

    asyncio.run(operator_resets())
    with api(orgs, "alice") as alice:
        shown = activity(alice)
    assert shown == [
        ("sign_in", "alice", "password"),
        ("password_reset", "cli", None),
        ("mfa_reset", "ada", None),
        ("role_changed", "ada", None),
        ("role_changed", "ada", None),
        ("user_enabled", "ada", None),
        ("user_disabled", "ada", None),
    ]


def test_an_account_an_admin_made_is_shown_who_made_it_and_not_its_names_former_holder(
    orgs: RunningServer,
) -> None:
    """An account an admin made shows the owner who made it and that the password it was given
    was the admin's temporary one. The name given again, after that account was removed, shows
    its new owner only its own creation and sign-ins, none of the former holder's."""

    def first_sign_in() -> list[tuple[str, str, str | None]]:
        with httpx.Client(base_url=orgs.base, headers={"origin": orgs.origin}) as nina:
            signed = nina.post("/api/login", json={"username": "nina", "password": TEMPORARY})
            assert signed.status_code == 200 and signed.json()["must_change_password"] is True
            assert nina.get("/api/me/activity").status_code == 403  # its own password first
            changed = nina.post(
                "/api/me/password",
                json={"current_password": TEMPORARY, "new_password": NEW_PASSWORD},
            )
            assert changed.status_code == 200, changed.text
            return activity(nina)

    def make_nina(ada: httpx.Client) -> None:
        made = ada.post(
            "/api/users", json={"username": "nina", "password": TEMPORARY, "role": "agent"}
        )
        assert made.is_success, made.text

    with api(orgs, "ada") as ada:
        make_nina(ada)
    own = [
        ("password_changed", "nina", None),
        ("sign_in", "nina", "password"),
        ("user_created", "ada", "temporary"),
    ]
    assert first_sign_in() == own
    with api(orgs, "ada") as ada:
        assert ada.delete("/api/users/nina").is_success
        make_nina(ada)
    # The former nina's creation, sign-in and password are on the trail, not in this list.
    assert first_sign_in() == own
