"""Remote control: separate consent, only on what the agent can see, revocable, shown to the
customer. The agent acts through the console's control layer with a real mouse and keyboard."""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import (
    EXPECT_TIMEOUT_MS,
    Joined,
    Party,
    agent_plaintext,
    allow,
    audit_actions,
    console_at,
    get_help,
    join,
    mirror,
    share,
)
from tests.e2e.netcut import NetCut


def start(
    customer: Party, agent: Party, live: RunningServer, path: str, console_base: str = ""
) -> Any:
    """The customer on ``path``, sharing with alice's console (opened at ``console_base``, a
    proxy in front of the server, when given); the agent's view."""
    # The agent's mirror then fits at scale 1, so agent clicks land where the test aims.
    customer.page.set_viewport_size({"width": 1000, "height": 800})
    agent.page.set_viewport_size({"width": 1400, "height": 900})
    customer.page.goto(f"{live.base}{path}")
    if not console_base:
        return share(customer, agent, live, get_help(customer))
    code = get_help(customer)
    console_at(agent, live, console_base)
    join(agent, code)
    allow(customer)
    return mirror(agent)


CONTROL_LAPSED = "Control was not asked for: the view stopped being live first."


def request_control(customer: Party, agent: Party) -> None:
    """Ask for control as an agent would: a request made while the customer's page is being
    refreshed waits for the new view's proof, and if the view goes stale first (a loaded
    machine) it is dropped and the agent told so; the agent then asks again."""
    dialog = customer.page.get_by_role("dialog").filter(has_text="Alice asks to control this page")
    status = agent.page.get_by_role("status")
    deadline = time.monotonic() + EXPECT_TIMEOUT_MS / 1000
    asks = 0
    while not dialog.is_visible():
        if asks == 0 or CONTROL_LAPSED in (status.text_content() or ""):
            assert asks < 3, "control was asked for three times and never reached the customer"
            expect(agent.page.get_by_role("button", name="Request control")).to_be_enabled()
            agent.page.get_by_role("button", name="Request control").click()
            asks += 1
        assert time.monotonic() < deadline, "the customer was never asked for control"
        agent.page.wait_for_timeout(50)
    expect(dialog).to_contain_text("Alice asks to control this page")


def grant(customer: Party, agent: Party) -> None:
    request_control(customer, agent)
    customer.page.get_by_role("dialog").get_by_role("button", name="Allow control").click()
    expect(agent.page.get_by_role("status")).to_contain_text("You have control")


def agent_click(agent: Party, view: Any, locator: str) -> None:
    """Click in the mirror once the view is proven live: until the first echo (just after a
    join or a reload) the console sends nothing that acts on the page, and says so."""
    expect(agent.page.locator("#stage")).not_to_have_class(re.compile(r"\bnot-live\b"))
    target = view.locator(locator).first
    target.scroll_into_view_if_needed()
    box = target.bounding_box()
    assert box is not None
    agent.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def test_control_is_asked_separately_and_can_be_refused(joined: Joined) -> None:
    live, customer, agent = joined.live, joined.customer, joined.agent
    request_control(customer, agent)
    customer.page.get_by_role("dialog").get_by_role("button", name="Refuse").click()
    expect(agent.page.get_by_role("status")).to_contain_text("The customer refused control.")
    expect(agent.page.locator("#control-layer")).to_be_hidden()
    assert "control_refused" in audit_actions(live)


def test_granted_control_clicks_and_types_and_the_customer_sees_it(joined: Joined) -> None:
    customer, agent, view = joined.customer, joined.agent, joined.view
    expect(view.get_by_role("button", name="Add to cart").first).to_be_visible()
    grant(customer, agent)
    agent_click(agent, view, "button:has-text('Add to cart')")
    expect(customer.page.locator("#cart-count")).to_have_text("1")
    expect(customer.page.get_by_text("Alice clicked “Add to cart”")).to_be_visible()
    agent_click(agent, view, "input[type=search]")
    agent.page.get_by_label("Type into the customer's field").press_sequentially("stove")
    expect(customer.page.get_by_label("Search products")).to_have_value("stove")
    expect(customer.page.get_by_text("Alice typed in")).to_be_visible()
    expect(view.locator("input[type=search]")).to_have_value("stove")


def test_masked_fields_and_protected_buttons_refuse_the_agent(joined_checkout: Joined) -> None:
    customer, agent = joined_checkout.customer, joined_checkout.agent
    view = joined_checkout.view
    expect(view.locator("#name")).to_be_attached()
    grant(customer, agent)
    agent_click(agent, view, "#name")
    expect(agent.page.get_by_role("status")).to_contain_text("hidden from you or protected")
    expect(agent.page.get_by_label("Type into the customer's field")).to_be_hidden()
    agent_click(agent, view, "button:has-text('Place order')")
    expect(agent.page.get_by_role("status")).to_contain_text("hidden from you or protected")
    # The refusal above is the customer's browser's answer to that click: it was not done.
    expect(customer.page.locator("#order-done")).to_be_hidden()


def test_the_customer_takes_control_back_with_escape(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    net = NetCut(live)  # the console reaches the server through it
    try:
        view = start(customer, agent, live, "/demo/", console_base=net.base)
        grant(customer, agent)
        customer.page.keyboard.press("Escape")
        expect(agent.page.get_by_role("status")).to_contain_text("The customer took back control.")
        expect(agent.page.locator("#control-layer")).to_be_hidden()
        expect(customer.page.get_by_role("button", name="Take back control")).to_have_count(0)

        # A click that crosses the customer's Escape on the network: the console has not heard
        # yet (what the server sends it is held) and sends it; the customer's browser refuses it.
        grant(customer, agent)
        net.hold()
        customer.page.keyboard.press("Escape")
        expect(customer.page.get_by_role("button", name="Take back control")).to_have_count(0)
        agent_click(agent, view, "button:has-text('Add to cart')")
        net.release()
        expect(agent.page.get_by_role("status")).to_contain_text(
            "The customer has not given you control."
        )
        expect(customer.page.locator("#cart-count")).to_have_text("0")
        expect(agent.page.locator("#control-layer")).to_be_hidden()
    finally:
        net.close()
    decisions = [a for a in audit_actions(live) if a.startswith("control_")]
    assert decisions == ["control_granted", "control_revoked"] * 2


def test_the_banner_button_takes_control_back(joined: Joined) -> None:
    customer, agent = joined.customer, joined.agent
    grant(customer, agent)
    customer.page.get_by_role("button", name="Take back control").click()
    expect(agent.page.get_by_role("status")).to_contain_text("The customer took back control.")


def test_control_is_rate_limited(joined: Joined) -> None:
    customer, agent, view = joined.customer, joined.agent, joined.view
    grant(customer, agent)
    target = view.locator("button:has-text('Add to cart')").first
    box = target.bounding_box()
    assert box is not None
    # The session is shared: only this test's refusals count (the cart starts empty).
    refused_before = agent_plaintext(agent).count("Too many actions")
    assert customer.page.locator("#cart-count").inner_text() == "0"
    # Twenty clicks on the console's control layer in one task of its page: they leave together
    # however busy the machine is (twenty mouse.click calls could come slower than the customer's
    # allowance refills, five a second).
    agent.page.evaluate(
        """([x, y]) => {
            const layer = document.getElementById("control-layer");
            const click = {clientX: x, clientY: y, bubbles: true};
            for (let i = 0; i < 20; i++) layer.dispatchEvent(new MouseEvent("click", click));
        }""",
        [box["x"] + 5, box["y"] + 5],
    )
    expect(agent.page.get_by_role("status")).to_contain_text("Too many actions")
    # Each click is done (the cart counts it) or refused (the console is told why): once all
    # twenty are accounted for, none is still on its way.
    deadline = time.monotonic() + EXPECT_TIMEOUT_MS / 1000
    while True:
        added = int(customer.page.locator("#cart-count").inner_text())
        refused = agent_plaintext(agent).count("Too many actions") - refused_before
        if added + refused >= 20 or time.monotonic() > deadline:
            break
        agent.page.wait_for_timeout(50)
    assert added + refused == 20, f"{added} clicks done and {refused} refused of 20"
    assert 1 <= added < 20, f"{added} of 20 rapid clicks went through"
