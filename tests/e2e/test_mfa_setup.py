"""Two-step sign-in set up in the console: QR code, confirmation, recovery codes, then a sign-in
that needs the authenticator."""

from __future__ import annotations

import httpx
import pyotp
from playwright.sync_api import expect

from tests.conftest import AGENT_PASSWORD, RunningServer, add_user
from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import Party, open_console_as


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
    # A clean list (one code a line, none overlapping) and a button that copies them all.
    codes = page.locator("#mfa-recovery li").all_inner_texts()
    boxes = [item.bounding_box() for item in page.locator("#mfa-recovery li").all()]
    assert all(box is not None for box in boxes)
    tops = [box["y"] for box in boxes if box]
    assert tops == sorted(tops) and len(set(tops)) == 10, tops
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.base)
    page.get_by_role("button", name="Copy all codes").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == "\n".join(codes)
    assert_accessible(page)
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


def console_sign_in(live: RunningServer, agent: Party, username: str) -> None:
    open_console_as(agent, live, username)


def test_an_admin_adds_an_account_and_changes_a_role_in_the_console(
    live: RunningServer, agent: Party
) -> None:
    add_user(live.settings.data_dir, "ada", role="admin", display_name="Ada")
    console_sign_in(live, agent, "ada")
    page = agent.page
    expect(page.get_by_role("heading", level=1, name="Users")).to_be_visible()
    status = page.get_by_role("status", name="Users")
    expect(page.get_by_label("Session code")).to_be_hidden()
    expect(page.get_by_role("cell", name="alice", exact=True)).to_be_visible()

    page.get_by_label("New account").fill("Nina!")
    page.get_by_label("Temporary password").fill("short")
    page.get_by_role("button", name="Add account").click()
    expect(page.get_by_text("Use at least 12 characters")).to_be_visible()  # before sending
    expect(page.get_by_text("Use 1 to 64 lower-case letters")).to_be_visible()
    page.get_by_label("New account").fill("nina")
    page.get_by_label("Temporary password").fill("passwordpassword")  # long, but common
    page.get_by_role("button", name="Add account").click()
    expect(status).to_contain_text("password")  # the server's reason
    page.get_by_label("Temporary password").fill(AGENT_PASSWORD)
    page.get_by_label("Teams (comma separated)").fill("support")
    page.get_by_role("button", name="Add account").click()
    expect(status).to_contain_text("Added nina")
    row = page.get_by_role("row").filter(has_text="nina")
    expect(row).to_contain_text("Set up at next sign-in")

    page.get_by_label("Role of alice").select_option("supervisor")
    expect(status).to_contain_text("alice is now supervisor")
    page.get_by_label("Role of ada").select_option("agent")
    expect(status).to_contain_text("own role")
    expect(page.get_by_label("Role of ada")).to_have_value("admin")

    page.get_by_role("navigation", name="Administration").get_by_role("link", name="Sites").click()
    status = page.get_by_role("status", name="Site status")
    expect(page.get_by_role("cell", name="this server (demo shop)")).to_be_visible()
    page.get_by_label("New site id").fill("shop")
    page.get_by_label("Origin").fill("ftp://shop.example")
    page.get_by_label("Served by teams").fill("support")
    page.get_by_role("button", name="Add site").click()
    expect(status).to_contain_text("not an http(s) origin")
    page.get_by_label("Origin").fill("https://shop.example/")
    page.get_by_role("button", name="Add site").click()
    expect(status).to_contain_text("Added site shop")
    expect(page.get_by_role("cell", name="https://shop.example")).to_be_visible()


def test_a_new_account_chooses_its_own_password_then_its_authenticator_in_the_console(
    live: RunningServer, agent: Party
) -> None:
    """The admin adds nina in the console and is told the password is temporary; nina's first
    sign-in shows only the form to choose her own (the admin's refused), then the two-step
    set-up, whose secret and codes only nina's browser gets; the admin's password is then
    refused."""
    temporary = "admins-choice-pass-4821"
    add_user(live.settings.data_dir, "ada", role="admin", display_name="Ada")
    console_sign_in(live, agent, "ada")
    page = agent.page
    expect(page.get_by_role("heading", level=1, name="Users")).to_be_visible()
    expect(page.get_by_text("Tell the temporary password to the account's owner")).to_be_visible()
    page.get_by_label("New account").fill("nina")
    page.get_by_label("Temporary password").fill(temporary)
    page.get_by_role("button", name="Add account").click()
    expect(page.get_by_role("status", name="Users")).to_contain_text(
        "Added nina with a temporary password"
    )
    row = page.get_by_role("row").filter(has_text="nina")
    expect(row).to_contain_text("Temporary password")
    expect(row).to_contain_text("Set up at next sign-in")
    assert_accessible(page)
    shown_to_the_admin = page.content()
    page.get_by_role("button", name="Sign out", exact=True).click()

    page.get_by_label("Username").fill("nina")
    page.get_by_label("Password", exact=True).fill(temporary)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    page.get_by_label("Password you were given").fill(temporary)
    page.get_by_label("New password", exact=True).fill(temporary)  # keeping the admin's
    page.get_by_label("New password again").fill(temporary)
    page.get_by_role("button", name="Change password").last.click()
    expect(page.get_by_role("alert")).to_contain_text("other than the current one")
    page.get_by_label("Password you were given").fill(temporary)
    page.get_by_label("New password", exact=True).fill("her-own-phrase-9163")
    page.get_by_label("New password again").fill("her-own-phrase-9163")
    page.get_by_role("button", name="Change password").last.click()

    expect(page.get_by_role("heading", name="Set up two-step sign-in")).to_be_visible()
    page.get_by_role("button", name="Show my code").click()
    secret = page.locator("#mfa-secret").inner_text().replace(" ", "")
    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).at(live.clock()))
    page.get_by_role("button", name="Turn on").click()
    expect(page.locator("#mfa-recovery li")).to_have_count(10)
    codes = page.locator("#mfa-recovery li").all_inner_texts()
    for secret_of_ninas in (secret, *codes):
        assert secret_of_ninas not in shown_to_the_admin
    refused = httpx.post(f"{live.base}/api/login", json={"username": "nina", "password": temporary})
    assert refused.status_code == 401


def test_an_auditor_reads_the_trail_in_the_console(live: RunningServer, agent: Party) -> None:
    add_user(live.settings.data_dir, "aud", role="auditor", display_name="Aud")
    console_sign_in(live, agent, "aud")
    page = agent.page
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    expect(page.get_by_role("cell", name="Server started server_started").first).to_be_visible()
    expect(page.get_by_role("cell", name="Signed in sign_in").first).to_be_visible()
    expect(page.get_by_label("Session code")).to_be_hidden()
