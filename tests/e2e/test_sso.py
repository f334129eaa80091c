"""Sign-in through the organisation's identity provider, in the console."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tandem.directory import Directory, operator
from tests.conftest import RunningServer, ServerFactory, add_user, seed_directory
from tests.e2e.conftest import Party, audit_records, open_console_as
from tests.oidc_provider import OidcProvider
from tests.server.test_organisations import api


@pytest.fixture
def live(server_factory: ServerFactory) -> RunningServer:
    """A server that may talk to the test provider on loopback (the test-only setting)."""
    return server_factory(test_private_network=True)


@pytest.fixture
def provider(live: RunningServer) -> Iterator[OidcProvider]:
    """The default organisation's provider, with alice bound to its user ``u-1``."""
    running = OidcProvider().start()
    running.redirect_uris.add(f"{live.base}/api/sso/callback")

    async def configure(directory: Directory) -> None:
        directory.allow_private_network = True  # as the server's own, for the test provider
        await directory.set_sso(
            operator("default"), running.issuer, running.client_id, running.client_secret
        )
        await directory.bind_sso_identity(operator("default"), "alice", "u-1")

    seed_directory(live.settings.data_dir, configure)
    yield running
    running.stop()


def test_an_agent_signs_in_with_the_organisations_provider(
    live: RunningServer, provider: OidcProvider, agent: Party
) -> None:
    page = agent.page
    page.goto(f"{live.base}/console/")
    page.get_by_label("Organisation").fill("default")
    page.get_by_role("button", name="Continue with your organisation").click()
    expect(page.get_by_label("Session code")).to_be_visible()
    expect(page.get_by_text("Signed in as Alice")).to_be_visible()
    assert page.url == f"{live.base}/console/"  # nothing of the sign-in stays in the address


def test_a_refused_sign_in_is_explained(
    live: RunningServer, provider: OidcProvider, agent: Party
) -> None:
    provider.user = {"sub": "x", "preferred_username": "stranger"}
    page = agent.page
    page.goto(f"{live.base}/console/")
    page.get_by_label("Organisation").fill("default")
    page.get_by_role("button", name="Continue with your organisation").click()
    expect(page.get_by_role("alert")).to_contain_text("Sign-in with your organisation failed")
    assert "sso=" not in page.url


def test_an_admin_requires_the_providers_second_factor_and_a_sign_in_without_it_is_refused(
    live: RunningServer, provider: OidcProvider, agent: Party, supervisor: Party
) -> None:
    """The requirement that the provider's ID tokens show a second factor (``mfa_amr``,
    ``mfa_acr``) was settable through the API only: an admin using the console had no way to
    stop a provider account whose password alone was phished from signing in. Ada sets it in
    the console's form; alice's sign-in whose token shows no second factor is refused, and one
    that shows it gets in."""
    add_user(live.settings.data_dir, "ada", role="admin")
    open_console_as(agent, live, "ada")
    page = agent.page
    page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Single sign-on"
    ).click()
    expect(page.get_by_text(f"sign in through {provider.issuer}")).to_contain_text(
        "Nothing requires their ID tokens to show a second factor"
    )
    expect(page.get_by_label("Client id")).to_have_value(provider.client_id)
    page.get_by_label("Second factor required: amr values").fill("mfa, hwk")
    page.get_by_label("Client secret").fill(provider.client_secret)
    page.get_by_role("button", name="Save single sign-on").click()
    expect(page.get_by_text(f"sign in through {provider.issuer}")).to_contain_text(
        "Their ID tokens must show a second factor (amr mfa, hwk)."
    )
    with api(live, "ada") as ada:
        assert ada.get("/api/org/sso").json()["sso"]["mfa_amr"] == ["mfa", "hwk"]

    alice = supervisor.page  # another browser: alice, at the provider with her password only
    provider.user = {"sub": "u-1", "preferred_username": "alice", "amr": ["pwd"]}
    alice.goto(f"{live.base}/console/")
    alice.get_by_label("Organisation").fill("default")
    alice.get_by_role("button", name="Continue with your organisation").click()
    expect(alice.get_by_role("alert")).to_contain_text("Sign-in with your organisation failed")
    expect(alice.get_by_label("Session code")).to_be_hidden()
    refused = [r for r in audit_records(live) if r["action"] == "sso_failed"]
    assert refused and "second factor" in refused[-1]["details"]["reason"]
    assert not [
        r for r in audit_records(live) if r["action"] == "sign_in" and r["actor"] == "alice"
    ]

    provider.user = {"sub": "u-1", "preferred_username": "alice", "amr": ["pwd", "otp", "mfa"]}
    alice.get_by_label("Organisation").fill("default")
    alice.get_by_role("button", name="Continue with your organisation").click()
    expect(alice.get_by_text("Signed in as Alice")).to_be_visible()
