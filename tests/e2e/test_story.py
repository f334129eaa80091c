"""The whole walking-skeleton story in two real browser contexts: customer and agent."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.conftest import AGENT_PASSWORD, RunningServer
from tests.e2e.clearing import storage_cleared
from tests.e2e.conftest import (
    CODE_PATTERN,
    Joined,
    Party,
    allow,
    get_help,
    join,
    live_instances,
    mirror,
    settled_instances,
    share,
    sign_in,
    sign_in_through_form,
)


def test_demo_get_help_shows_a_code_and_typed_text_reaches_the_agent(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    customer.page.goto(f"{live.base}/demo/")
    code = get_help(customer)
    sign_in_through_form(agent, live)  # the story as an agent lives it; other tests use a cookie
    join(agent, code)
    allow(customer)
    view = mirror(agent)
    expect(customer.page.get_by_role("button", name="Stop sharing")).to_be_visible()
    customer.page.get_by_label("Search products").press_sequentially("tent", delay=30)
    expect(view.locator("input[type=search]")).to_have_value("tent")
    assert not customer.console_errors and not agent.console_errors


def test_nothing_about_the_page_leaves_before_allow(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    customer.page.goto(f"{live.base}/demo/checkout.html")
    title = customer.page.title()
    code = get_help(customer)
    sign_in(agent, live)
    join(agent, code)
    expect(customer.page.get_by_role("dialog")).to_contain_text("Alice")
    before = customer.frames.everything()
    assert not any(isinstance(f, bytes) and f[:1] != b"{" for f in customer.frames.sent)
    for leak in (title.encode(), b"checkout", b"/demo", b"Card number"):
        assert leak not in before, f"{leak!r} left the page before consent"
    expect(agent.page.get_by_role("status")).to_contain_text("Waiting for the customer")
    expect(agent.page.locator('iframe[title="Customer view"]')).to_have_count(0)


def test_decline_tells_the_agent_and_ends_the_session(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    customer.page.goto(f"{live.base}/demo/")
    code = get_help(customer)
    sign_in(agent, live)
    join(agent, code)
    customer.page.get_by_role("dialog").get_by_role("button", name="Decline").click()
    expect(agent.page.get_by_text("The customer declined.")).to_be_visible()
    expect(customer.page.get_by_role("dialog")).to_have_count(0)
    expect(customer.page.get_by_text(CODE_PATTERN)).to_have_count(0)
    assert not any(len(f) > 200 for f in customer.frames.sent), "page content sent after Decline"
    # The keys paired before the question, and the records, go with the session on both sides.
    storage_cleared(customer, "tandem")
    storage_cleared(agent, "tandem-console")


def test_stop_sharing_ends_for_everyone_and_empties_the_mirror(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    customer.page.goto(f"{live.base}/demo/")
    view = share(customer, agent, live, get_help(customer))
    expect(view.get_by_text("Northwind Outfitters").first).to_be_visible()
    customer.page.get_by_role("button", name="Stop sharing").click()
    expect(agent.page.get_by_text("Session ended")).to_be_visible()
    expect(agent.page.locator("iframe")).to_have_count(0)
    assert "Northwind" not in agent.page.content()
    expect(customer.page.get_by_role("button", name="Stop sharing")).to_have_count(0)
    stored = customer.page.evaluate("() => JSON.stringify(sessionStorage)")
    assert "tandem" not in stored
    # The pairwise key waited in IndexedDB for page navigations; it is gone now.
    keys_left = customer.page.evaluate(
        """() => new Promise((resolve, reject) => {
            const open = indexedDB.open('tandem', 1);
            open.onupgradeneeded = () => open.result.createObjectStore('keys');
            open.onsuccess = () => {
                const count = open.result.transaction('keys').objectStore('keys').count();
                count.onsuccess = () => { open.result.close(); resolve(count.result); };
            };
            open.onerror = () => reject(open.error);
        })"""
    )
    assert keys_left == 0
    # Nothing of the session stays alive: no socket, no recorder observers, no mirror iframe
    # (settled_instances waits, up to its deadline, for what the last callbacks still hold).
    assert settled_instances(customer.page, "WebSocket", 0) == 0
    assert settled_instances(agent.page, "WebSocket", 0) == 0
    assert settled_instances(agent.page, "HTMLIFrameElement", 0) == 0
    # rrweb keeps its last recording reachable from module state (one disconnected observer),
    # the SDK watches fields' `type` from load for the page's life (a password shown before
    # sharing stays hidden: masking.watchPasswordFields), and keeps what the page says about its
    # fields until the document changes (masking's kept answers: one observer per tree), so what
    # must hold is that sessions do not accumulate: a second one leaves the same count.
    observers = live_instances(customer.page, "MutationObserver")
    assert observers <= 3
    code = get_help(customer)
    join(agent, code)
    allow(customer)
    mirror(agent)
    customer.page.get_by_role("button", name="Stop sharing").click()
    expect(agent.page.get_by_text("Session ended")).to_be_visible()
    assert settled_instances(customer.page, "MutationObserver", observers) == observers
    assert settled_instances(customer.page, "WebSocket", 0) == 0


def test_tandem_stop_ends_the_session(live: RunningServer, customer: Party, agent: Party) -> None:
    customer.page.goto(f"{live.base}/demo/")
    share(customer, agent, live, get_help(customer))
    customer.page.evaluate("() => window.Tandem.stop()")
    expect(agent.page.get_by_text("Session ended")).to_be_visible()
    expect(agent.page.locator("iframe")).to_have_count(0)


def test_navigation_to_another_page_is_followed(joined: Joined) -> None:
    customer, view = joined.customer, joined.view
    customer.page.get_by_role("link", name=re.compile("Account")).first.click()
    customer.page.wait_for_url("**/account.html")
    expect(view.get_by_label("Password")).to_be_attached(timeout=10_000)
    expect(customer.page.get_by_role("button", name="Stop sharing")).to_be_visible()
    customer.page.get_by_label("Email").fill("jane@example.com")


def test_scrolling_and_mouse_reach_the_agent(joined: Joined) -> None:
    customer, agent, view = joined.customer, joined.agent, joined.view
    customer.page.set_viewport_size({"width": 800, "height": 400})  # the shop scrolls
    expect(view.get_by_text("Northwind Outfitters").first).to_be_visible()
    # Both at the top first (the session is shared: another test may have scrolled).
    assert customer.page.evaluate("() => window.scrollY") == 0
    agent.page.wait_for_function(
        """() => document.querySelector('iframe[title="Customer view"]').contentWindow.scrollY
            === 0"""
    )
    customer.page.mouse.wheel(0, 600)
    customer.page.wait_for_function("() => window.scrollY > 0")
    agent.page.wait_for_function(
        """() => {
            const frame = document.querySelector('iframe[title="Customer view"]');
            return frame && frame.contentWindow.scrollY > 0;
        }""",
        timeout=10_000,
    )


def test_mouse_movement_reaches_the_agent(joined: Joined) -> None:
    customer, agent, view = joined.customer, joined.agent, joined.view
    expect(view.get_by_text("Northwind Outfitters").first).to_be_visible()
    cursor = agent.page.locator(".replayer-mouse")
    expect(cursor).to_be_attached()
    # The mouse starts on the left (the session is shared: another test may have moved it).
    customer.page.mouse.move(50, 300)
    agent.page.wait_for_function(
        """() => {
            const m = document.querySelector('.replayer-mouse');
            return m && !(parseFloat(m.style.left) > 400);
        }"""
    )
    before = cursor.get_attribute("style") or ""
    for x in range(100, 700, 60):
        customer.page.mouse.move(x, 300)
        customer.page.wait_for_timeout(30)
    expect(cursor).not_to_have_attribute("style", before, timeout=10_000)
    agent.page.wait_for_function(
        """() => {
            const m = document.querySelector('.replayer-mouse');
            return m && parseFloat(m.style.left) > 400;
        }""",
        timeout=10_000,
    )


def test_mirror_is_sandboxed_without_scripts(joined: Joined) -> None:
    agent = joined.agent
    frame = agent.page.locator('iframe[title="Customer view"]')
    sandbox = frame.get_attribute("sandbox")
    assert sandbox is not None and "allow-scripts" not in sandbox.split()


def test_wrong_code_is_explained_and_the_agent_can_retry(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    customer.page.goto(f"{live.base}/demo/")
    code = get_help(customer)
    sign_in(agent, live)
    wrong_routing = "00000" if code[:5] != "00000" else "00001"
    join(agent, wrong_routing + code[5:])
    expect(agent.page.get_by_text("That code is not valid or has expired.")).to_be_visible()
    join(agent, code)
    allow(customer)
    mirror(agent)


def test_console_sign_in_failure_is_shown(live: RunningServer, agent: Party) -> None:
    agent.page.goto(f"{live.base}/console/")
    agent.page.get_by_label("Username").fill("alice")
    agent.page.get_by_label("Password").fill("not-the-password")
    agent.page.get_by_role("button", name="Sign in").click()
    expect(agent.page.get_by_role("alert")).to_contain_text(
        "Wrong username, password or authentication code"
    )


def test_console_sign_in_with_an_authenticator_code(live: RunningServer, agent: Party) -> None:
    import pyotp

    from tests.test_mfa import enrol

    enrolment = enrol(live, "bob")
    agent.page.goto(f"{live.base}/console/")
    agent.page.get_by_label("Username").fill("bob")
    agent.page.get_by_label("Password").fill(AGENT_PASSWORD)
    agent.page.get_by_role("button", name="Sign in").click()
    expect(agent.page.get_by_role("alert")).to_contain_text("authentication code")
    agent.page.get_by_label("Password").fill(AGENT_PASSWORD)
    agent.page.get_by_label("Authentication code").fill(
        pyotp.TOTP(enrolment.secret).at(live.clock())
    )
    agent.page.get_by_role("button", name="Sign in").click()
    expect(agent.page.get_by_label("Session code")).to_be_visible()


def test_sign_out_everywhere_from_the_console(live: RunningServer, agent: Party) -> None:
    sign_in(agent, live)
    other = agent.context.browser.new_context()  # type: ignore[union-attr]
    try:
        other_page = other.new_page()
        other_page.goto(f"{live.base}/console/")
        other_page.get_by_label("Username").fill("alice")
        other_page.get_by_label("Password").fill(AGENT_PASSWORD)
        other_page.get_by_role("button", name="Sign in").click()
        expect(other_page.get_by_label("Session code")).to_be_visible()
        agent.page.get_by_role("button", name="Sign out everywhere").click()
        expect(agent.page.get_by_label("Username")).to_be_visible()
        other_page.reload()
        expect(other_page.get_by_label("Username")).to_be_visible()
    finally:
        other.close()
