"""Passwords in the console: an agent changes its own; after an admin's reset the console shows
nothing but the form to choose a new one."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.conftest import AGENT_PASSWORD, RunningServer, add_user
from tests.e2e.conftest import Party, open_console_as

NEW_PASSWORD = "green-lantern-tide-77"


def sign_in(live: RunningServer, agent: Party, username: str, password: str) -> None:
    page = agent.page
    page.goto(f"{live.base}/console/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_an_agent_changes_its_password_in_the_console(live: RunningServer, agent: Party) -> None:
    add_user(live.settings.data_dir, "pia", display_name="Pia")
    sign_in(live, agent, "pia", AGENT_PASSWORD)
    page = agent.page
    expect(page.get_by_label("Session code")).to_be_visible()
    page.get_by_role("button", name="Change password").click()
    page.get_by_label("Current password").fill("not-the-password")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").last.click()
    expect(page.get_by_role("alert")).to_contain_text("current password is not right")
    page.get_by_label("Current password").fill(AGENT_PASSWORD)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").last.click()
    expect(page.get_by_label("Session code")).to_be_visible()
    old = httpx.post(f"{live.base}/api/login", json={"username": "pia", "password": AGENT_PASSWORD})
    assert old.status_code == 401
    new = httpx.post(f"{live.base}/api/login", json={"username": "pia", "password": NEW_PASSWORD})
    assert new.status_code == 200


def test_after_an_admins_reset_the_console_asks_for_a_new_password_first(
    live: RunningServer, agent: Party
) -> None:
    add_user(live.settings.data_dir, "rex", display_name="Rex")
    add_user(live.settings.data_dir, "ann", display_name="Ann", role="admin")
    with httpx.Client(base_url=live.base, headers={"origin": live.origin}) as ann:
        signed = ann.post("/api/login", json={"username": "ann", "password": AGENT_PASSWORD})
        assert signed.status_code == 200
        reset = ann.post("/api/users/rex/reset-password", json={"password": "temporary-pass-4821"})
        assert reset.status_code == 204, reset.text
    sign_in(live, agent, "rex", "temporary-pass-4821")
    page = agent.page
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    expect(page.get_by_label("Session code")).to_be_hidden()
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    page.get_by_label("Password you were given").fill("temporary-pass-4821")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").last.click()
    expect(page.get_by_label("Session code")).to_be_visible()


def test_an_agent_renews_its_recovery_codes_in_the_console(
    server: RunningServer, agent: Party
) -> None:
    """The password and an authenticator code proved again; the new codes shown once, and the
    old ones stop working at once."""
    import pyotp

    from tandem import auth
    from tests.test_mfa import enrol

    enrolment = enrol(server, "bea")
    totp = pyotp.TOTP(enrolment.secret)
    page = agent.page
    # Signed in by cookie (the form's second factor is tests/e2e/test_mfa_setup.py's subject):
    # a real /api/login through the context's own request client, as open_console_as does.
    signed_in = page.request.post(
        f"{server.base}/api/login",
        data={"username": "bea", "password": AGENT_PASSWORD, "code": totp.at(server.clock())},
        headers={"origin": server.base},
    )
    assert signed_in.ok, signed_in.text()
    page.goto(f"{server.base}/console/")
    expect(page.get_by_label("Session code")).to_be_visible()
    page.get_by_role("button", name="New recovery codes").click()
    expect(page.get_by_label("Session code")).to_be_hidden()
    next_code = totp.at(server.clock() + auth.TOTP_PERIOD)
    page.get_by_label("Your password").fill("not-" + AGENT_PASSWORD)
    page.get_by_label("Code from your authenticator app").fill(next_code)
    page.get_by_role("button", name="Get new codes").click()
    expect(page.get_by_role("alert")).to_contain_text("password is not right")
    page.get_by_label("Your password").fill(AGENT_PASSWORD)
    page.get_by_label("Code from your authenticator app").fill(next_code)
    page.get_by_role("button", name="Get new codes").click()
    codes = page.locator("#recovery-codes li")
    expect(codes).to_have_count(10)
    shown = [text.strip() for text in codes.all_inner_texts()]
    page.get_by_role("button", name="I saved them — close").click()
    expect(page.get_by_label("Session code")).to_be_visible()
    expect(page.locator("#recovery-codes")).to_have_count(0)  # shown once
    old = {"username": "bea", "password": AGENT_PASSWORD, "code": enrolment.recovery_codes[0]}
    assert httpx.post(f"{server.base}/api/login", json=old).status_code == 401
    new = {"username": "bea", "password": AGENT_PASSWORD, "code": shown[0]}
    assert httpx.post(f"{server.base}/api/login", json=new).status_code == 200


def test_the_users_page_says_a_temporary_password_expired_and_the_owner_is_told_why(
    live: RunningServer, agent: Party
) -> None:
    """Nina's temporary password, never claimed, passes ``temporary_password_seconds``: her
    sign-in says to ask for a new one, and ada's Users page marks it expired."""
    add_user(live.settings.data_dir, "ada", role="admin", display_name="Ada")
    with httpx.Client(base_url=live.base, headers={"origin": live.origin}) as ada:
        assert ada.post(
            "/api/login", json={"username": "ada", "password": AGENT_PASSWORD}
        ).is_success
        made = ada.post(
            "/api/users",
            json={"username": "nina", "password": "admins-choice-pass-4821", "role": "agent"},
        )
        assert made.status_code == 201, made.text
    live.clock.advance(live.settings.temporary_password_seconds + 1)
    sign_in(live, agent, "nina", "admins-choice-pass-4821")
    expect(agent.page.get_by_role("alert")).to_contain_text("ask your administrator for a new one")
    open_console_as(agent, live, "ada")
    row = agent.page.get_by_role("row").filter(has_text="nina")
    expect(row).to_contain_text("Temporary password expired: give a new one")
