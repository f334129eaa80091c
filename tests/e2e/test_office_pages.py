"""Issue 15, item 8: the admin's and the auditor's console as pages. Every page opens from the
navigation, names the organisation, passes axe-core at desktop and phone widths; accounts are
disabled and enabled from the Users page (and then really cannot sign in); lists are searched and
paged; the audit trail is searched and paged on the server, with human labels for its events."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from playwright.sync_api import Locator, Page, expect

from tandem.directory import Directory, operator
from tests.conftest import AGENT_PASSWORD, RunningServer, add_user, seed_directory
from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import Party, open_console_as

ADMIN_PAGES = [
    "Users",
    "Teams",
    "Sites",
    "Policies",
    "Recordings",
    "Single sign-on",
    "Training",
    "Organisation",
]
AUDITOR_PAGES = ["Audit trail", "Recordings"]


def open_page(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Administration").get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", level=1, name=name)).to_be_visible()


STAFF = {"admin": ("ada", "Ada"), "auditor": ("aud", "Aud")}
"""The office's user of each role in these tests: username and display name."""


def office_as(
    live: RunningServer,
    agent: Party,
    role: str,
    *seeds: Callable[[Directory], Awaitable[None]],
) -> Page:
    """``agent``'s browser signed in to the console as the ``role``'s user of :data:`STAFF`,
    added (with AGENT_PASSWORD) and then the ``seeds`` run on the directory first; its page."""
    username, display_name = STAFF[role]
    add_user(live.settings.data_dir, username, role=role, display_name=display_name)
    for seed in seeds:
        seed_directory(live.settings.data_dir, seed)
    open_console_as(agent, live, username)
    return agent.page


def expect_navigation(page: Page, names: list[str]) -> Locator:
    """The navigation lists the pages ``names``, in order, and the first is open; its links."""
    links = page.get_by_role("navigation", name="Administration").get_by_role("link")
    expect(links).to_have_text(names)
    expect(page.get_by_role("heading", level=1, name=names[0])).to_be_visible()
    return links


def signs_in(live: RunningServer, username: str) -> int:
    return httpx.post(
        f"{live.base}/api/login",
        json={"username": username, "password": AGENT_PASSWORD},
        headers={"origin": live.origin},
    ).status_code


async def acme_staff(directory: Directory) -> None:
    await directory.update_org(operator("default"), "Acme Bank", None)
    for number in range(24):
        await directory.add_user(
            operator("default"),
            f"agent{number:02}",
            AGENT_PASSWORD,
            "agent",
            None,
            None,
            mfa_exempt=True,
            change_required=False,
        )


def test_every_admin_page_opens_names_the_organisation_and_is_accessible(
    live: RunningServer, agent: Party
) -> None:
    page = office_as(live, agent, "admin", acme_staff)
    links = expect_navigation(page, ADMIN_PAGES)
    expect(links.first).to_have_attribute("aria-current", "page")
    for width, height in ((1440, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        for name in ADMIN_PAGES:
            open_page(page, name)
            expect(page.locator("#office-org")).to_have_text("Acme Bank")
            expect(page).to_have_title(f"{name} · Acme Bank · Tandem")
            expect(
                page.get_by_role("navigation", name="Administration").get_by_role("link", name=name)
            ).to_have_attribute("aria-current", "page")
            page.wait_for_load_state("networkidle")
            assert_accessible(page)
    # The address names the page: a reload and the browser's back button keep to it.
    page.reload()
    expect(page.get_by_role("heading", level=1, name="Organisation")).to_be_visible()
    page.go_back()
    expect(page.get_by_role("heading", level=1, name="Training")).to_be_visible()

    # The organisation's name, changed on its page, heads every page at once.
    open_page(page, "Organisation")
    # Cleared once the page's answer has filled it: clearing a still empty field is no edit,
    # and the answer then filled it in before Save (a race on a loaded machine).
    expect(page.get_by_label("Organisation name")).to_have_value("Acme Bank")
    page.get_by_label("Organisation name").fill("")
    page.get_by_role("button", name="Save name").click()
    expect(page.get_by_text("This field is required.")).to_be_visible()
    page.get_by_label("Organisation name").fill("Acme Bank Europe")
    page.get_by_role("button", name="Save name").click()
    expect(page.get_by_role("status", name="Organisation status")).to_contain_text(
        "now called Acme Bank Europe"
    )
    expect(page.locator("#office-org")).to_have_text("Acme Bank Europe")


def test_an_admin_searches_pages_disables_and_enables_accounts(
    live: RunningServer, agent: Party
) -> None:
    page = office_as(live, agent, "admin", acme_staff)
    status = page.get_by_role("status", name="Users")
    table = page.get_by_role("table", name="Users")
    expect(page.get_by_text("Page 1 of 2 (20 shown)")).to_be_visible()  # 26 accounts
    page.get_by_role("button", name="Next page").click()
    expect(page.get_by_text("Page 2 of 2 (6 shown)")).to_be_visible()
    expect(table.get_by_role("cell", name="alice", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()

    page.get_by_label("Search accounts").fill("agent1")
    expect(table.get_by_role("row")).to_have_count(11)  # agent10..agent19, and the header
    page.get_by_label("Search accounts").fill("alice")
    row = table.get_by_role("row").filter(has_text="alice")
    expect(row).to_contain_text("Active")
    expect(page.get_by_role("button", name="Disable ada")).to_have_count(0)  # not oneself

    row.get_by_role("button", name="Disable alice").click()
    expect(status).to_contain_text("alice is disabled")
    expect(row).to_contain_text("Disabled")
    assert signs_in(live, "alice") == 401
    assert_accessible(page)
    row.get_by_role("button", name="Enable alice").click()
    expect(status).to_contain_text("alice can sign in again")
    expect(row).to_contain_text("Active")
    assert signs_in(live, "alice") == 200

    # A temporary password: checked here first, then by the server; never left in the field.
    row.get_by_role("button", name="Reset password: alice").click()
    temporary = page.get_by_label("Reset password", exact=True)
    expect(temporary).to_be_focused()
    temporary.fill("short")
    page.get_by_role("button", name="Reset password", exact=True).click()
    expect(page.get_by_text("Use at least 12 characters")).to_be_visible()
    temporary.fill("temporary-pass-4821")
    page.get_by_role("button", name="Reset password", exact=True).click()
    expect(status).to_contain_text("alice has a temporary password now")
    expect(temporary).to_be_hidden()
    assert signs_in(live, "alice") == 401  # the old password is gone

    # alice was made like --no-mfa: it had no authenticator and keeps its password alone; the
    # console said it would set up a new one.
    row.get_by_role("button", name="Reset two-step sign-in: alice").click()
    expect(status).to_contain_text("alice was created without two-step sign-in (--no-mfa)")
    expect(status).not_to_contain_text("authenticator is removed")


async def busy_trail(directory: Directory) -> None:
    for number in range(70):
        await directory.record(
            "policy_changed", actor="cli", org="default", subject=f"team:t{number:02}"
        )


def test_an_auditor_searches_and_pages_the_trail_on_the_server(
    live: RunningServer, agent: Party
) -> None:
    page = office_as(live, agent, "auditor", busy_trail)
    expect_navigation(page, AUDITOR_PAGES)
    trail = page.get_by_role("table", name="Audit trail")
    newest = trail.get_by_role("row").nth(1)
    expect(newest).to_contain_text("Signed in")  # the auditor's own sign-in, newest first
    expect(trail.get_by_role("row")).to_have_count(51)
    assert_accessible(page)
    with page.expect_request(lambda r: "/api/audit/search?" in r.url and "before=" in r.url):
        page.get_by_role("button", name="Older").click()
    expect(trail.get_by_role("cell", name="team:t00")).to_be_visible()
    expect(page.get_by_role("button", name="Newer")).to_be_enabled()
    page.get_by_role("button", name="Newer").click()
    expect(newest).to_contain_text("Audit trail read")  # the reads just made, newest first
    expect(page.get_by_role("button", name="Newer")).to_be_disabled()

    page.get_by_label("Search the audit trail").fill("t07")
    with page.expect_request(lambda r: "q=t07" in r.url):
        page.get_by_role("button", name="Search", exact=True).click()
    expect(trail.get_by_role("row")).to_have_count(2)
    expect(trail.get_by_role("row").nth(1)).to_contain_text("Policy changed")
    expect(trail.get_by_role("row").nth(1)).to_contain_text("policy_changed")
    page.get_by_label("Search the audit trail").fill("nothing-like-this")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_text("Nothing matches.")).to_be_visible()

    open_page(page, "Recordings")
    expect(page.get_by_text("No recordings yet.")).to_be_visible()
    assert_accessible(page)


def test_the_office_speaks_the_chosen_language_and_reads_right_to_left_in_arabic(
    live: RunningServer, agent: Party
) -> None:
    page = office_as(live, agent, "admin")
    page.goto(f"{live.base}/console/?lang=de#users")
    german = page.get_by_role("navigation", name="Verwaltung").get_by_role("link")
    expect(german).to_have_text(
        [
            "Benutzer",
            "Teams",
            "Websites",
            "Richtlinien",
            "Aufzeichnungen",
            "Single Sign-on",
            "Schulung",
            "Organisation",
        ]
    )
    expect(page.get_by_role("heading", level=1, name="Benutzer")).to_be_visible()
    expect(page.get_by_role("columnheader", name="Zwei-Schritt-Anmeldung")).to_be_visible()
    page.goto(f"{live.base}/console/?lang=ar#teams")
    office = page.locator("#office")
    expect(office).to_have_attribute("dir", "rtl")
    expect(office).to_have_attribute("lang", "ar")
    expect(page.get_by_role("heading", level=1, name="الفرق")).to_be_visible()
    arabic = page.get_by_role("navigation", name="الإدارة").get_by_role("link", name="المستخدمون")
    box, first = arabic.bounding_box(), page.locator("#office-title").bounding_box()
    assert box and first and box["x"] + box["width"] > first["x"] + first["width"] - 2  # right
    page.wait_for_load_state("networkidle")
    assert_accessible(page)


def test_office_screenshots(live: RunningServer, agent: Party, tmp_path: Path) -> None:
    """The admin's Users and Policies pages (desktop and phone) and the auditor's trail. Written
    to $TANDEM_SCREENSHOTS when set (as docs/screenshots/README.md says), else a temporary
    directory."""
    out = Path(os.environ.get("TANDEM_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    add_user(live.settings.data_dir, "ada", role="admin", display_name="Ada")
    add_user(live.settings.data_dir, "aud", role="auditor", display_name="Aud")
    seed_directory(live.settings.data_dir, acme_staff)
    page = agent.page
    page.set_viewport_size({"width": 1440, "height": 900})
    open_console_as(agent, live, "ada")
    expect(page.get_by_text("Page 1 of 2 (20 shown)")).to_be_visible()
    page.get_by_role("button", name="Disable agent03").click()
    expect(page.get_by_role("status", name="Users")).to_contain_text("agent03 is disabled")
    page.screenshot(path=str(out / "admin-users.png"), full_page=True)
    open_page(page, "Policies")
    page.get_by_label("Pages agents never see").fill("/account/*\n/admin/*")
    page.get_by_label("Mask these elements").fill(".balance\n#iban")
    page.get_by_label("IBANs").check()
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_role("status", name="Policy status")).to_contain_text("is saved")
    page.screenshot(path=str(out / "admin-policies.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    open_page(page, "Users")
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(out / "admin-users-phone.png"))
    page.get_by_role("button", name="Sign out", exact=True).click()
    # Signed out (its answer clears the cookie): before the auditor's cookie is set, not after.
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.set_viewport_size({"width": 1440, "height": 900})
    open_console_as(agent, live, "aud")
    page.goto(f"{live.base}/console/#audit")
    expect(page.get_by_role("table", name="Audit trail")).to_contain_text("Account disabled")
    page.screenshot(path=str(out / "auditor-audit-trail.png"))
    for name in ("admin-users", "admin-policies", "admin-users-phone", "auditor-audit-trail"):
        assert (out / f"{name}.png").stat().st_size > 10_000, name


def test_a_slow_first_answer_does_not_overwrite_what_the_admin_typed(
    live: RunningServer, agent: Party
) -> None:
    """The Organisation page fills its fields from GET /api/org; on a slow server the admin may
    type before that answer comes. The answer must not replace what they typed, and saving
    saves what they typed."""
    page = office_as(live, agent, "admin", acme_staff)
    held: list = []
    page.route(
        lambda url: url.endswith("/api/org"),
        lambda route: held.append(route) if route.request.method == "GET" else route.continue_(),
    )
    open_page(page, "Organisation")
    page.get_by_label("Organisation name").fill("Acme Bank Europe")
    page.get_by_label("Keep ended sessions (days)").fill("45")
    for _ in range(500):  # the page has asked (the answer is held until now)
        if held:
            break
        page.wait_for_timeout(20)
    assert held, "the Organisation page never asked for GET /api/org"
    for route in held:
        route.continue_()
    expect(page.get_by_text(re.compile(r"deleted after \d+ days"))).to_be_visible()
    expect(page.get_by_label("Organisation name")).to_have_value("Acme Bank Europe")
    expect(page.get_by_label("Keep ended sessions (days)")).to_have_value("45")
    page.get_by_role("button", name="Save name").click()
    expect(page.get_by_role("status", name="Organisation status")).to_contain_text(
        "now called Acme Bank Europe"
    )


MARKUP_NAME = "<img src=x onerror=document.body.dataset.pwned=1>"
"""A name an anonymous client tries at the sign-in (64 characters at most): its failure is in
the trail under that name."""


async def forged_detail(directory: Directory) -> None:
    # What a hostile identity provider gets into a failed sign-in's reason (its subject), with
    # a second detail after it that the forged text imitates.
    await directory.record(
        "sso_failed",
        org="default",
        reason='no account is bound (subject "x"); outcome: signed in; account: alice\u202e',
        provider="<svg onload=document.body.dataset.pwned=2>",
    )


def test_hostile_strings_in_the_trail_are_text_each_detail_on_a_line_of_its_own(
    live: RunningServer, agent: Party
) -> None:
    """Attack review of the strings the console shows: markup in a name an anonymous client
    tried at the sign-in and in a provider's words is shown as text (nothing runs, and the
    fixture fails on any CSP report), and each detail of a record is a line of its own (they
    were one string joined by "; ", which a detail's value imitated)."""
    assert signs_in(live, MARKUP_NAME) == 401
    page = office_as(live, agent, "auditor", forged_detail)
    trail = page.get_by_role("table", name="Audit trail")
    expect(trail.get_by_role("cell", name=MARKUP_NAME, exact=True)).to_be_visible()
    details = (
        trail.get_by_role("row").filter(has_text="outcome: signed in").get_by_role("cell").last
    )
    expect(details.locator("div > div")).to_have_text(
        [
            "provider: <svg onload=document.body.dataset.pwned=2>",
            # The override shown, not obeyed (U+FFFD): "alice" and it look different.
            'reason: no account is bound (subject "x"); outcome: signed in; account: alice\ufffd',
        ]
    )
    assert page.evaluate("() => document.body.dataset.pwned") is None
    assert not page.locator("#office img, #office svg").count()
