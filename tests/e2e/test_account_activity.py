"""Attack review of authentication, item 3, in the console: what an admin did to an agent's
account is shown to the agent at the next sign-in, and again at each one after it is hidden; a
sign-in like every other (the same address, nothing done by anyone else) shows nothing."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tandem.directory import Directory
from tests.conftest import AGENT_PASSWORD, RunningServer, add_user, seed_directory
from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import Party
from tests.e2e.test_passwords import sign_in


def test_an_admins_reset_is_shown_to_the_agent_at_each_sign_in_until_hidden(
    live: RunningServer, agent: Party
) -> None:
    add_user(live.settings.data_dir, "kim", display_name="Kim")
    add_user(live.settings.data_dir, "ann", display_name="Ann", role="admin")
    page = agent.page
    sign_in(live, agent, "kim", AGENT_PASSWORD)
    expect(page.get_by_label("Session code")).to_be_visible()
    expect(page.locator("#account-activity")).to_have_count(0)  # nothing to see
    page.get_by_role("button", name="Sign out", exact=True).click()

    with httpx.Client(base_url=live.base, headers={"origin": live.origin}) as ann:
        assert ann.post("/api/login", json={"username": "ann", "password": AGENT_PASSWORD})
        assert ann.post("/api/users/kim/reset-mfa").status_code == 204
    sign_in(live, agent, "kim", AGENT_PASSWORD)
    activity = page.get_by_role("region", name="Recent activity on your account")
    expect(activity).to_be_visible()
    expect(activity.get_by_role("alert")).to_contain_text("changed by someone else")
    expect(activity.locator("li.warn")).to_have_count(1)
    expect(activity.locator("li.warn")).to_contain_text("ann removed your authenticator app")
    assert_accessible(page, include="#account-activity")
    activity.get_by_role("button", name="Hide").click()
    expect(activity).to_have_count(0)
    expect(page.get_by_label("Session code")).to_be_visible()
    # Hidden in this tab only: the next sign-in shows it again.
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.get_by_label("Username")).to_be_visible()
    expect(activity).to_have_count(0)
    sign_in(live, agent, "kim", AGENT_PASSWORD)
    expect(activity.locator("li.warn")).to_have_count(1)


HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"


def test_hostile_names_and_addresses_in_the_activity_are_shown_as_text(
    live: RunningServer, agent: Party
) -> None:
    """An address a proxy passed on, or a name the trail holds (an admin's, the password word of
    the account's creation), carrying markup: the list shows it as text, and nothing in it runs
    or is drawn."""
    add_user(live.settings.data_dir, "lee", display_name="Lee")

    async def hostile_records(directory: Directory) -> None:
        await directory.record(
            "sign_in", actor="lee", org="default", ip=HOSTILE, method="<b>bold</b>"
        )
        await directory.record("mfa_reset", actor=HOSTILE, org="default", subject="lee")
        await directory.record(
            "user_created", actor=HOSTILE, org="default", subject="lee", password="<i>x</i>"
        )

    seed_directory(live.settings.data_dir, hostile_records)
    sign_in(live, agent, "lee", AGENT_PASSWORD)
    page = agent.page
    activity = page.get_by_role("region", name="Recent activity on your account")
    expect(activity.locator("li")).to_have_count(4)
    expect(activity).to_contain_text(f"Signed in with <b>bold</b> from {HOSTILE}")
    expect(activity.locator("li.warn")).to_contain_text(f"{HOSTILE} removed your authenticator")
    expect(activity).to_contain_text(
        f"{HOSTILE} created your account; the password they chose for it: <i>x</i>"
    )
    assert activity.locator("img, b, i, script").count() == 0
    assert page.title() != "pwned"
