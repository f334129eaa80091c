"""A sign-in bound to its browser (``login_bind_client``) in real Chromium: the console works as
ever (its requests and its socket carry the bound cookie), and the cookie copied into another
browser ends the sign-in for both."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from tests.conftest import RunningServer, ServerFactory
from tests.e2e.conftest import Party, allow, get_help, join, mirror, sign_in_through_form


def test_a_bound_sign_in_works_in_its_browser_and_a_copy_ends_it(
    server_factory: ServerFactory, browser: Browser, customer: Party, agent: Party
) -> None:
    live: RunningServer = server_factory(login_bind_client="both")
    customer.page.goto(f"{live.base}/demo/")
    code = get_help(customer)
    sign_in_through_form(agent, live)
    join(agent, code)
    allow(customer)
    view = mirror(agent)
    customer.page.get_by_label("Search products").press_sequentially("tent", delay=30)
    expect(view.locator("input[type=search]")).to_have_value("tent")
    [cookie] = [c for c in agent.context.cookies() if c["name"] == "tandem_agent"]
    assert "." in cookie["value"]  # the binding
    thief = browser.new_context(user_agent="Mozilla/5.0 (a thief's browser)")
    try:
        thief.add_cookies([cookie])
        page = thief.new_page()
        page.goto(f"{live.base}/console/")
        expect(page.get_by_label("Username")).to_be_visible()  # not signed in
    finally:
        thief.close()
    agent.page.reload()
    expect(agent.page.get_by_label("Username")).to_be_visible()  # the owner signs in again
