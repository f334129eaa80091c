"""A supervisor watches a live session: listed in the console, asked of the customer, paired with
a code only the customer's browser knows, shown in the customer's banner, ended by leaving."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import expect

from tests.conftest import RunningServer, add_user
from tests.e2e.conftest import Joined, Party, agent_plaintext, open_console_as

WATCH_CODE = re.compile(r"^\s*(\d{3}) (\d{4})\s*$")  # shown 3-4
_with_sam: set[Path] = set()  # a shared server (`joined`) keeps its accounts from test to test


def supervisor_console(supervisor: Party, live: RunningServer) -> None:
    if live.settings.data_dir not in _with_sam:
        add_user(live.settings.data_dir, "sam", role="supervisor", display_name="Sam")
        _with_sam.add(live.settings.data_dir)
    open_console_as(supervisor, live, "sam")
    heading = supervisor.page.get_by_role("heading", name="Live sessions of your teams")
    expect(heading).to_be_visible()


def read_watch_code(customer: Party) -> str:
    panel = customer.page.get_by_role("region", name="Supervisor code")
    expect(panel).to_contain_text("Code for Sam")
    text = panel.locator(".code").inner_text()
    match = WATCH_CODE.match(text)
    assert match, text
    return "".join(match.groups())


def allowed_to_watch(supervisor: Party, customer: Party) -> str:
    """The supervisor asks to watch the Demo shop session and the customer allows it: the code
    the customer's widget shows, once the supervisor's console asks for it."""
    sam = supervisor.page
    sam.locator("#session-list li", has_text="Demo shop").get_by_role(
        "button", name="Watch"
    ).click()
    customer.page.get_by_role("dialog").get_by_role("button", name="Allow").click()
    code = read_watch_code(customer)
    expect(sam.get_by_role("status")).to_contain_text("The customer allowed it")
    return code


SLOW_CONTENT_KEY = """(ms) => {
    // The customer's browser takes `ms` longer to make each next epoch's content key (AES-GCM,
    // encrypt only; no other key is made so): a busy machine, stretched to be sure.
    const subtle = crypto.subtle;
    const importKey = subtle.importKey.bind(subtle);
    subtle.importKey = (format, data, algorithm, extractable, usages) => {
        const made = importKey(format, data, algorithm, extractable, usages);
        const content = format === "raw" && algorithm === "AES-GCM" && usages.join() === "encrypt";
        if (!content) return made;
        return made.then((key) => new Promise((ok) => setTimeout(() => ok(key), ms)));
    };
}"""


def test_the_agents_control_request_made_as_a_supervisor_pairs_reaches_the_customer(
    joined: Joined, supervisor: Party
) -> None:
    """The customer's browser makes a new epoch's key once a supervisor paired; the agent's
    request, sent before the console knew of that epoch, arrived while the key was being made:
    its refusal was dropped unsaid, and the agent's request was lost. Now it is refused in the
    new epoch and the console asks again with that epoch's echo: the customer is asked."""
    customer, agent = joined.customer, joined.agent
    supervisor_console(supervisor, joined.live)
    expect(agent.page.get_by_role("button", name="Request control")).to_be_enabled()
    sam = supervisor.page
    code = allowed_to_watch(supervisor, customer)
    customer.page.evaluate(SLOW_CONTENT_KEY, 4000)
    sam.get_by_label("Session code").fill(code)
    sam.get_by_role("button", name="Start watching").click()
    expect(sam.get_by_role("status")).to_contain_text("Watching the customer's page")
    # Sam's key is confirmed: the customer's browser is making the next epoch's key now.
    agent.page.get_by_role("button", name="Request control").click()
    dialog = customer.page.get_by_role("dialog")
    expect(dialog).to_contain_text("Alice asks to control this page", timeout=30_000)
    dialog.get_by_role("button", name="Allow control").click()
    expect(agent.page.get_by_role("status")).to_contain_text("You have control")


def test_a_supervisor_watches_with_the_customers_consent_and_code(
    joined: Joined, supervisor: Party
) -> None:
    customer, agent, view = joined.customer, joined.agent, joined.view
    supervisor_console(supervisor, joined.live)
    customer.page.get_by_label("Search products").press_sequentially("lamp", delay=20)
    expect(view.locator("input[type=search]")).to_have_value("lamp")

    sam = supervisor.page
    row = sam.locator("#session-list li", has_text="Demo shop")
    expect(row).to_contain_text("Alice")
    row.get_by_role("button", name="Watch").click()
    expect(sam.get_by_role("status")).to_contain_text("Asking the customer")

    dialog = customer.page.get_by_role("dialog")
    expect(dialog).to_contain_text("Sam, a supervisor, asks to watch too")
    dialog.get_by_role("button", name="Allow").click()
    code = read_watch_code(customer)
    expect(sam.get_by_role("status")).to_contain_text("The customer allowed it")
    sam.get_by_label("Session code").fill(code)
    sam.get_by_role("button", name="Start watching").click()

    expect(sam.get_by_role("status")).to_contain_text("Watching the customer's page")
    sam_view = sam.frame_locator('iframe[title="Customer view"]')
    expect(sam_view.locator("input[type=search]")).to_have_value("lamp")  # a fresh snapshot
    expect(customer.page.get_by_role("status").filter(has_text="Sam (supervisor)")).to_be_visible()
    expect(agent.page.get_by_role("status")).to_contain_text("Sam (supervisor) is watching too")
    assert sam.get_by_role("button", name="Request control").is_hidden()

    search = customer.page.get_by_label("Search products")
    search.press("End")
    search.press_sequentially(" shade", delay=20)
    expect(sam_view.locator("input[type=search]")).to_have_value("lamp shade")
    expect(view.locator("input[type=search]")).to_have_value("lamp shade")
    assert "lamp shade" in agent_plaintext(supervisor)
    assert code not in "".join(
        f.decode("utf-8", "replace") for f in customer.frames.sent + supervisor.frames.sent
    ), "the supervisor code went over the wire"

    sam.get_by_role("button", name="Leave").click()
    expect(
        customer.page.get_by_role("status").filter(has_text="Sharing this page with Alice")
    ).to_be_visible()
    expect(customer.page.get_by_text("Sam (supervisor)")).to_have_count(0)
    search.press("End")
    search.press_sequentially("!", delay=20)
    expect(view.locator("input[type=search]")).to_have_value("lamp shade!")  # the session goes on


def test_a_wrong_supervisor_code_shows_nothing_and_the_customer_can_refuse(
    joined: Joined, supervisor: Party
) -> None:
    customer = joined.customer
    supervisor_console(supervisor, joined.live)
    sam = supervisor.page
    code = allowed_to_watch(supervisor, customer)
    wrong = str((int(code) + 1) % 10_000_000).zfill(7)
    sam.get_by_label("Session code").fill(wrong)
    sam.get_by_role("button", name="Start watching").click()
    expect(sam.get_by_role("status")).to_contain_text("did not match")
    expect(sam.locator('iframe[title="Customer view"]')).to_have_count(0)
    expect(
        customer.page.get_by_role("status").filter(has_text="Sharing this page with Alice")
    ).to_be_visible()

    sam.locator("#session-list li", has_text="Demo shop").get_by_role(
        "button", name="Watch"
    ).click()
    customer.page.get_by_role("dialog").get_by_role("button", name="Refuse").click()
    expect(sam.get_by_role("status")).to_contain_text("The customer refused")
