"""Training before live sessions in real browsers (issue 16, item 5; docs/training.md): an
untrained agent is refused a real customer's code, acknowledges the policy, works the practice
exercise against the scripted customer (the practice pages in a frame of its own console, the
real SDK, relay and encryption), each step ticked from what really happened, and then joins the
real customer's session with the same code. The admin's training page lists it as trained."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, expect

from tests.conftest import RunningServer, ServerFactory, add_user, two_organisations
from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import Party, audit_records, get_help, join, mirror, open_console_as
from tests.server.test_organisations import api


def step(agent: Party, name: str) -> object:
    return agent.page.locator(f'#practice-steps li[data-step="{name}"]')


def ticked(agent: Party, name: str) -> None:
    expect(agent.page.locator(f'#practice-steps li[data-step="{name}"]')).to_have_attribute(
        "data-done", "true", timeout=15000
    )


def test_an_untrained_agent_practises_then_joins_a_real_session(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    server: RunningServer = server_factory(seed=two_organisations)
    data = server.settings.data_dir
    add_user(data, "newbie", "agent", "Newbie", teams=("support",), trained=False)
    agent.page.set_viewport_size({"width": 1400, "height": 1400})
    customer.page.goto(f"{server.base}/demo/")
    code = get_help(customer)

    open_console_as(agent, server, "newbie")
    page = agent.page
    expect(page.get_by_role("heading", name="Training before live sessions")).to_be_visible()
    # The real customer's code is refused, with the reason.
    page.get_by_label("Session code").fill(code)
    page.get_by_role("button", name="Join").click()
    expect(page.locator("#status")).to_contain_text("privacy and security policy")
    assert_accessible(page)

    page.get_by_role("button", name=re.compile("I have read and accept version 1")).click()
    expect(page.locator("#training-status")).to_contain_text("Policy version 1 acknowledged")
    page.get_by_role("button", name="Start the practice exercise").click()

    # The scripted customer reads its code out in its frame; the agent types it.
    frame = page.frame_locator("#practice-customer")
    says = frame.locator("#customer-says")
    expect(says).to_contain_text("My code is", timeout=15000)
    match = re.search(r"My code is ([\d ]{12,})", says.inner_text())
    assert match, says.inner_text()
    # Checking the masked field before the customer's page is shown counts for nothing.
    page.get_by_label("Card number").check()
    page.get_by_role("button", name="Check", exact=True).click()
    expect(step(agent, "masked")).to_have_attribute("data-done", "false")

    page.get_by_label("Session code").fill(match.group(1).strip())
    page.get_by_role("button", name="Join").click()
    ticked(agent, "code")
    ticked(agent, "consent")  # the scripted customer allowed it, in its own browser frame
    view = mirror(agent)
    expect(view.locator("#card")).to_be_attached()
    assert_accessible(page, exclude=["#practice-customer", "#mirror"])

    page.get_by_label("Delivery note").check()
    page.get_by_role("button", name="Check", exact=True).click()
    expect(page.locator("#practice-masked .status")).to_contain_text("Not that one")
    page.get_by_label("Card number").check()
    page.get_by_role("button", name="Check", exact=True).click()
    ticked(agent, "masked")

    page.get_by_role("button", name="Request control").click()
    ticked(agent, "control")
    card = view.locator("#card")
    card.scroll_into_view_if_needed()
    box = card.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.locator("#status")).to_contain_text("hidden from you or protected")
    ticked(agent, "refused")

    page.get_by_role("button", name="Ask the customer to open their account page").click()
    expect(frame.locator("h1")).to_have_text("Your account")
    expect(page.locator("#status")).to_contain_text("Customer is on a private page")
    ticked(agent, "paused")

    page.get_by_role("button", name="Leave").click()
    # Recorded, the exercise gets out of the way: its steps, its question and the buttons that
    # spoke to the simulated customer (whose frame is gone, so they did nothing) stayed on
    # screen until a reload, beside the real session joined next.
    panel = page.locator("#training")
    expect(panel.locator("#training-status")).to_contain_text("Training recorded", timeout=15000)
    for stale in ("#practice-customer", "#practice-steps", "#practice-masked", "#practice-private"):
        expect(page.locator(stale)).to_have_count(0)
    expect(panel.get_by_role("button")).to_have_count(1)
    expect(panel.get_by_role("button", name="Close")).to_be_visible()
    assert_accessible(page, exclude=["#mirror"])

    # The real customer's code, refused before, still works: the agent joins for real, and the
    # finished practice's panel is gone with it.
    page.get_by_label("Session code").fill(code)
    page.get_by_role("button", name="Join").click()
    dialog = customer.page.get_by_role("dialog")
    expect(dialog).to_contain_text("Newbie")
    dialog.get_by_role("button", name="Allow").click()
    expect(mirror(agent).get_by_role("heading", name="Gear for the long way round")).to_be_visible()
    expect(panel).to_have_count(0)

    records = audit_records(server)
    actions = [r["action"] for r in records]
    for action in ("join_refused_untrained", "policy_acknowledged", "practice_started"):
        assert action in actions, action
    [completed] = [r for r in records if r["action"] == "training_completed"]
    assert completed["actor"] == "newbie" and completed["details"]["version"] == 1
    practice_session = completed["subject"]
    joined = [r for r in records if r["action"] == "agent_joined" and r["actor"] == "newbie"]
    assert [r["subject"] == practice_session for r in joined] == [True, False]
    assert joined[0]["details"]["practice"] == "newbie" and "practice" not in joined[1]["details"]


def work_the_practice(agent: Party) -> None:
    """Every step of the practice exercise in the console, from its policy to its end."""
    page = agent.page
    page.get_by_role("button", name=re.compile("I have read and accept version 1")).click()
    page.get_by_role("button", name="Start the practice exercise").click()
    says = page.frame_locator("#practice-customer").locator("#customer-says")
    expect(says).to_contain_text("My code is", timeout=15000)
    match = re.search(r"My code is ([\d ]{12,})", says.inner_text())
    assert match, says.inner_text()
    join(agent, match.group(1).strip())
    ticked(agent, "consent")
    page.get_by_label("Card number").check()
    page.get_by_role("button", name="Check", exact=True).click()
    ticked(agent, "masked")
    page.get_by_role("button", name="Request control").click()
    ticked(agent, "control")
    card = mirror(agent).locator("#card")
    card.scroll_into_view_if_needed()
    box = card.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    ticked(agent, "refused")
    page.get_by_role("button", name="Ask the customer to open their account page").click()
    ticked(agent, "paused")
    page.get_by_role("button", name="Leave").click()  # the last step: the checklist goes


def test_the_finished_practice_panel_closes_and_gives_the_code_back(
    server_factory: ServerFactory, agent: Party
) -> None:
    server = server_factory(seed=two_organisations)
    add_user(server.settings.data_dir, "newbie", "agent", "Newbie", trained=False)
    agent.page.set_viewport_size({"width": 1400, "height": 1400})
    open_console_as(agent, server, "newbie")
    work_the_practice(agent)
    page = agent.page
    expect(page.locator("#training-status")).to_contain_text("Training recorded", timeout=15000)
    page.locator("#training").get_by_role("button", name="Close").click()
    expect(page.locator("#training")).to_have_count(0)
    expect(page.get_by_label("Session code")).to_be_focused()


def test_a_practice_left_unfinished_can_be_started_again(
    server_factory: ServerFactory, agent: Party
) -> None:
    """Left before its steps were done, the practice said "Not recorded" and kept its steps,
    question and buttons (speaking to a customer whose session had ended) until a reload,
    and no way to start again. Now they go, and the exercise starts again from the panel."""
    server = server_factory(seed=two_organisations)
    add_user(server.settings.data_dir, "newbie", "agent", "Newbie", trained=False)
    open_console_as(agent, server, "newbie")
    page = agent.page
    page.get_by_role("button", name=re.compile("I have read and accept version 1")).click()
    page.get_by_role("button", name="Start the practice exercise").click()
    says = page.frame_locator("#practice-customer").locator("#customer-says")
    expect(says).to_contain_text("My code is", timeout=15000)
    match = re.search(r"My code is ([\d ]{12,})", says.inner_text())
    assert match, says.inner_text()
    join(agent, match.group(1).strip())
    ticked(agent, "consent")
    page.get_by_role("button", name="Leave").click()

    expect(page.locator("#training-status")).to_contain_text("Not recorded", timeout=15000)
    for stale in ("#practice-customer", "#practice-steps", "#practice-masked", "#practice-private"):
        expect(page.locator(stale)).to_have_count(0)
    again = page.get_by_role("button", name="Start the practice exercise")
    expect(again).to_be_focused()
    again.click()
    expect(says).to_contain_text("My code is", timeout=15000)
    expect(page.locator('#practice-steps li[data-done="true"]')).to_have_count(0)


def test_a_trainee_over_the_practice_limit_is_told_so_not_as_a_customer(
    server_factory: ServerFactory, customer: Party
) -> None:
    """Refused by ``max_waiting_practice_per_account``, the practice page said "Too many help
    requests are waiting", a customer's words. Now it names the trainee's practice sessions,
    still in the SDK's own words (the server's reason only chooses which)."""
    server = server_factory(seed=two_organisations, max_waiting_practice_per_account=1)
    add_user(server.settings.data_dir, "newbie", "agent", "Newbie", trained=False)
    with api(server, "newbie") as me:
        version = me.get("/api/training").json()["policy"]["version"]
        assert me.post("/api/training/acknowledge", json={"version": version}).status_code == 200
        first, second = (me.post("/api/training/practice").json()["page"] for _ in range(2))
    customer.page.goto(f"{server.base}{first}")
    expect(customer.page.locator("#customer-says")).to_contain_text("My code is", timeout=15000)
    page = customer.context.new_page()  # another tab: the first one's session still waits
    page.goto(f"{server.base}{second}")
    says = page.locator("#customer-says")
    expect(says).to_contain_text("You have too many practice sessions open", timeout=15000)
    expect(says).not_to_contain_text("Too many help requests")
    expect(
        page.get_by_role("alert")
        .or_(page.get_by_role("status"))
        .filter(has_text="too many practice sessions open")
        .first
    ).to_be_visible()


def test_admins_edit_the_policy_and_see_who_is_trained(
    server_factory: ServerFactory, agent: Party
) -> None:
    server = server_factory(seed=two_organisations)
    add_user(server.settings.data_dir, "newbie", teams=("support",), trained=False)
    open_console_as(agent, server, "ada")
    page = agent.page
    # Training is a page of the admin's office (its navigation, its own heading and address).
    nav = page.get_by_role("navigation", name="Administration")
    nav.get_by_role("link", name="Training").click()
    expect(page.get_by_role("heading", level=1, name="Training")).to_be_visible()
    expect(page).to_have_url(re.compile("#training$"))
    roster = page.locator("#training-roster")

    def row(pattern: str) -> Locator:
        return roster.get_by_role("row", name=re.compile(pattern))

    expect(row(r"^newbie agent never never")).to_be_visible()
    expect(row(r"^alice agent v1 .* trained$")).to_be_visible()
    policy = page.get_by_label("Policy text")
    expect(policy).to_have_value(re.compile("Privacy and security policy"))
    page.get_by_label("Policy text").fill("Our policy: masked stays masked.")
    page.get_by_role("button", name="Publish as a new version").click()
    expect(page.get_by_text("Version 2 published")).to_be_visible()
    # Everyone acknowledges the new version again.
    expect(row(r"^alice agent v1 .* not trained$")).to_be_visible()
    page.get_by_label("Re-training interval (days)").fill("180")
    page.get_by_role("button", name="Save interval").click()
    expect(page.get_by_text("Re-training every 180 days.")).to_be_visible()
    assert_accessible(page, include=".training-admin")


def test_an_auditor_accepts_the_policy_before_the_recordings_open(
    server_factory: ServerFactory, agent: Party
) -> None:
    server = server_factory(seed=two_organisations)
    add_user(server.settings.data_dir, "newaud", role="auditor", trained=False)
    open_console_as(agent, server, "newaud")
    page = agent.page
    expect(page.get_by_role("heading", name="Training before live sessions")).to_be_visible()
    expect(page.locator("#policy-text")).to_contain_text("Privacy and security policy")
    # The office's Recordings page: the server refuses the recordings until the policy is accepted.
    nav = page.get_by_role("navigation", name="Administration")
    nav.get_by_role("link", name="Recordings").click()
    expect(page.get_by_role("heading", level=1, name="Recordings")).to_be_visible()
    expect(page.get_by_text(re.compile("acknowledge your organisation's privacy"))).to_be_visible()
    assert_accessible(page)
    page.get_by_role("button", name=re.compile("I have read and accept version 1")).click()
    # The console starts again (on the same page): the recordings open, nothing asks any more.
    expect(page.get_by_role("heading", name="Training before live sessions")).to_have_count(0)
    expect(page.get_by_role("heading", level=1, name="Recordings")).to_be_visible()
    expect(page.get_by_text("No recordings yet.")).to_be_visible()
    expect(page.get_by_text(re.compile("acknowledge your organisation's privacy"))).to_have_count(0)
