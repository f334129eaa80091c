"""The tour of README.md at the three sizes of issue 15 (360x740 and 390x844 phones, a 1440x900
desktop): the customer asks for help, the agent joins and sees the page in the workspace, the
customer stops; the admin's Users and Policies pages. axe-core (WCAG 2.2 AA) finds nothing on any
screen of it, at any size.

It also makes the screenshots that README.md's tour and docs/ show: ``make screenshots`` runs it
(with the workspace's and the office's screenshot tests) with $TANDEM_SCREENSHOTS=docs/screenshots;
without that variable they go to a temporary directory and only their sizes are checked.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import RunningServer, add_user
from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import Party, get_help, join, mirror, open_console_as, sign_in

VIEWPORTS = [(360, 740), (390, 844), (1440, 900)]
LIVE = "You are seeing the customer's page live"


def screenshot(page: Page, out: Path, name: str, *, full_page: bool = False) -> None:
    path = out / f"{name}.png"
    # caret="initial": hiding the caret injects a style the page's CSP reports
    page.screenshot(path=str(path), caret="initial", full_page=full_page)
    assert path.stat().st_size > 5_000, f"{name} is nearly empty"


@pytest.mark.parametrize(("width", "height"), VIEWPORTS, ids=[f"{w}x{h}" for w, h in VIEWPORTS])
def test_tour_at_each_size_is_accessible_and_leaves_screenshots(
    live: RunningServer,
    customer: Party,
    agent: Party,
    supervisor: Party,
    tmp_path: Path,
    width: int,
    height: int,
) -> None:
    out = Path(os.environ.get("TANDEM_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    size = f"{width}x{height}"
    viewport = {"width": width, "height": height}
    for party in (customer, agent, supervisor):
        party.page.set_viewport_size(viewport)
        party.page.emulate_media(reduced_motion="reduce")

    # 3. The customer asks for help: the code, nothing shared yet.
    shop = customer.page
    shop.goto(f"{live.base}/demo/checkout.html")
    shop.locator("#name").fill("Jordan Avery")
    shop.locator("#email").fill("jordan.avery@example.com")
    code = get_help(customer)
    assert_accessible(shop)
    screenshot(shop, out, f"tour-{size}-customer-code")

    # 5-6. The agent joins; the customer is asked and allows.
    sign_in(agent, live)
    assert_accessible(agent.page)
    join(agent, code)
    dialog = shop.get_by_role("dialog")
    expect(dialog).to_contain_text("Alice wants to see this page")
    assert_accessible(shop)
    screenshot(shop, out, f"tour-{size}-customer-consent")
    dialog.get_by_role("button", name="Allow").click()

    # 7. The agent's workspace mirrors the page, masked; the customer's banner keeps Stop sharing.
    console = agent.page
    expect(console.locator("#status")).to_contain_text(LIVE)
    view = mirror(agent)
    expect(view.locator("#email")).to_be_attached()
    expect(console.locator("#fact-device")).not_to_have_text("—")
    stop = shop.get_by_role("button", name="Stop sharing")
    expect(stop).to_be_in_viewport()
    assert_accessible(shop)
    assert_accessible(console)
    screenshot(shop, out, f"tour-{size}-customer-sharing")
    console.mouse.move(0, 0)
    # On a phone the mirror sits below the session header: the whole page shows both.
    screenshot(console, out, f"tour-{size}-agent-workspace", full_page=width < 800)

    # 9. Stop: both sides are told at once.
    stop.click()
    expect(shop.get_by_role("region", name="Help session ended")).to_contain_text(
        "You stopped sharing"
    )
    expect(console.locator("#status")).to_contain_text("Session ended")
    assert_accessible(shop)
    assert_accessible(console)

    # 12. The admin's pages.
    add_user(live.settings.data_dir, "ada", role="admin", display_name="Ada")
    office = supervisor.page
    open_console_as(supervisor, live, "ada")
    expect(office.get_by_role("heading", level=1, name="Users")).to_be_visible()
    expect(office.get_by_role("table").first).to_contain_text("alice")
    office.wait_for_load_state("networkidle")
    assert_accessible(office)
    screenshot(office, out, f"tour-{size}-admin-users")
    office.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Policies"
    ).click()
    expect(office.get_by_role("heading", level=1, name="Policies")).to_be_visible()
    office.wait_for_load_state("networkidle")
    assert_accessible(office)
    screenshot(office, out, f"tour-{size}-admin-policies")
    assert re.search(r"#policies$", office.url)
