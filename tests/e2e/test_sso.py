"""Sign-in through the organisation's identity provider, in the console."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tandem.directory import Directory, operator
from tests.conftest import RunningServer, ServerFactory, seed_directory
from tests.e2e.conftest import Party
from tests.oidc_provider import OidcProvider


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
