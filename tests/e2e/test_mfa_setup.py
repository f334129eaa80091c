"""Two-step sign-in set up in the console: QR code, confirmation, recovery codes, then a sign-in
that needs the authenticator."""

from __future__ import annotations

import pyotp
from playwright.sync_api import expect

from tests.conftest import AGENT_PASSWORD, RunningServer, add_user
from tests.e2e.conftest import Party


def test_a_new_account_sets_up_its_authenticator_in_the_console(
    live: RunningServer, agent: Party
) -> None:
    add_user(live.settings.data_dir, "nina", display_name="Nina", mfa_exempt=False)
    page = agent.page
    page.goto(f"{live.base}/console/")
    page.get_by_label("Username").fill("nina")
    page.get_by_label("Password").fill(AGENT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Set up two-step sign-in")).to_be_visible()
    expect(page.get_by_label("Session code")).to_be_hidden()

    page.get_by_role("button", name="Show my code").click()
    qr = page.get_by_alt_text("QR code for your authenticator app")
    expect(qr).to_be_visible()
    assert qr.evaluate("img => img.naturalWidth") > 100  # a real image was decoded
    secret = page.locator("#mfa-secret").inner_text().replace(" ", "")
    totp = pyotp.TOTP(secret)

    page.get_by_label("Code from the app").fill("000000")
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_role("alert")).to_contain_text("not right")
    page.get_by_label("Code from the app").fill(totp.at(live.clock()))
    page.get_by_role("button", name="Turn on").click()
    expect(page.locator("#mfa-recovery li")).to_have_count(10)
    expect(qr).to_be_hidden()
    page.get_by_role("button", name="I saved them — continue").click()
    expect(page.get_by_label("Session code")).to_be_visible()

    # From now on the authenticator is needed to sign in.
    page.get_by_role("button", name="Sign out", exact=True).click()
    page.get_by_label("Username").fill("nina")
    page.get_by_label("Password").fill(AGENT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("authentication code")
    page.get_by_label("Password").fill(AGENT_PASSWORD)
    page.get_by_label("Authentication code").fill(totp.at(live.clock() + 30))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_label("Session code")).to_be_visible()


def test_an_admin_signs_in_to_a_page_without_live_sessions(
    live: RunningServer, agent: Party
) -> None:
    add_user(live.settings.data_dir, "ada", role="admin", display_name="Ada")
    page = agent.page
    page.goto(f"{live.base}/console/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(AGENT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Nothing live for your role")).to_be_visible()
    expect(page.get_by_label("Session code")).to_be_hidden()
