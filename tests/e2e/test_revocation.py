"""Issue 14 (1) in the console: when the server closes the agent's socket because its sign-in was
revoked or its role changed, the console says why (tests/server/test_revocation.py has the rest)."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.conftest import ServerFactory, two_organisations
from tests.e2e.conftest import Party, sign_in
from tests.server.helpers import login_cookie

WRONG_CODE = "000000000000"  # a well-formed code no session has: the socket stays open


def wait_with_an_open_socket(agent: Party) -> None:
    agent.page.get_by_label("Session code").fill(WRONG_CODE)
    agent.page.get_by_role("button", name="Join").click()
    expect(agent.page.get_by_role("status")).to_contain_text("not valid")


def test_signing_out_elsewhere_sends_the_open_console_to_sign_in(
    server_factory: ServerFactory, agent: Party
) -> None:
    live = server_factory(agent_reauth_seconds=3600.0)
    sign_in(agent, live)
    wait_with_an_open_socket(agent)
    other_device = login_cookie(live, "alice")
    signed_out = httpx.post(
        f"{live.base}/api/logout-everywhere",
        cookies={"tandem_agent": other_device},
        headers={"origin": live.origin},
    )
    assert signed_out.status_code == 204
    expect(agent.page.get_by_label("Username")).to_be_visible()
    expect(agent.page.get_by_text("Your sign-in ended. Sign in again.")).to_be_visible()


def test_a_role_change_is_shown_in_the_open_console(
    server_factory: ServerFactory, agent: Party
) -> None:
    live = server_factory(seed=two_organisations, agent_reauth_seconds=3600.0)
    sign_in(agent, live)
    wait_with_an_open_socket(agent)
    changed = httpx.patch(
        f"{live.base}/api/users/alice",
        json={"role": "admin"},
        cookies={"tandem_agent": login_cookie(live, "ada")},
        headers={"origin": live.origin},
    )
    assert changed.status_code == 200, changed.text
    expect(agent.page.get_by_role("status")).to_have_text(
        "Your role no longer allows this. Ask an admin if it should."
    )
