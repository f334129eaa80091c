"""Page-access rules: sharing pauses on a private page and resumes on a shared one."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.conftest import RunningServer, ServerFactory
from tests.e2e.conftest import (
    FrameLog,
    OtherOrigin,
    Party,
    agent_plaintext,
    audit_records,
    caught_up,
    share,
)
from tests.e2e.test_control import agent_click, grant

POLICY = json.dumps({"version": 1, "pages": {"deny": ["/private-*"]}})


def page(title: str, text: str, link: str) -> str:
    return (
        f'<script type="application/json" id="tandem-policy">{POLICY}</script>'
        f'<h1>{title}</h1><p>{text}</p><a href="{link}">Next page</a>'
    )


def test_a_private_page_pauses_sharing_and_a_shared_page_resumes_it(
    server_factory: ServerFactory, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    server = server_factory(allow_origins=(other_origin.origin,))
    first = other_origin.page(
        "shop.html", page("Shop", "Open-page-text", "private-settings.html"), server
    )
    other_origin.page(
        "private-settings.html", page("Settings", "Private-page-hushhush", "more.html"), server
    )
    other_origin.page("more.html", page("More", "Back-on-shared-page", "shop.html"), server)

    customer.page.goto(first)
    code = customer.page.evaluate("() => window.Tandem.start()")
    view = share(customer, agent, server, code)
    expect(view.get_by_text("Open-page-text")).to_be_visible()

    customer.page.get_by_role("link", name="Next page").click()
    customer.page.wait_for_url("**/private-settings.html")
    expect(agent.page.get_by_role("status")).to_contain_text("Customer is on a private page")
    expect(agent.page.locator("iframe")).to_have_count(0)
    expect(customer.page.get_by_role("status")).to_contain_text("Sharing paused")
    customer.page.mouse.move(200, 200)
    customer.page.wait_for_timeout(500)

    customer.page.get_by_role("link", name="Next page").click()
    customer.page.wait_for_url("**/more.html")
    view = agent.page.frame_locator('iframe[title="Customer view"]')
    expect(view.get_by_text("Back-on-shared-page")).to_be_visible(timeout=10_000)

    seen = agent_plaintext(agent) + agent.page.content()
    assert "Private-page-hushhush" not in seen and "Settings" not in seen
    wire = (customer.frames.everything() + agent.frames.everything()).decode("utf-8", "replace")
    assert "Private-page-hushhush" not in wire
    records = audit_records(server)
    assert "page_paused" in [r["action"] for r in records]  # that it paused, never where
    assert "private-settings" not in json.dumps(records)


def test_a_teams_policy_adds_private_pages_and_masks_for_its_agents(
    server_factory: ServerFactory, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    from tandem.directory import Directory, operator
    from tandem.policy import MaskingPolicy
    from tests.conftest import seed_directory

    server = server_factory(allow_origins=(other_origin.origin,))
    team_policy = {"version": 1, "pages": {"deny": ["/team-secret*"]}, "mask": [".notes"]}

    async def restrict_support(directory: Directory) -> None:
        import msgspec

        policy = msgspec.convert(team_policy, MaskingPolicy)
        await directory.set_team_policy(operator("default"), "support", policy)

    seed_directory(server.settings.data_dir, restrict_support)
    plain = '<h1>{t}</h1><p class="notes">{n}</p><p>{o}</p><a href="{link}">Next page</a>'
    first = other_origin.page(
        "open.html",
        plain.format(t="Open", n="Team-masked-notes", o="Open-text", link="team-secret.html"),
        server,
    )
    other_origin.page(
        "team-secret.html",
        plain.format(t="Secret", n="x", o="Team-only-hidden", link="open.html"),
        server,
    )
    customer.page.goto(first)
    code = customer.page.evaluate("() => window.Tandem.start()")
    view = share(customer, agent, server, code)
    expect(view.get_by_text("Open-text")).to_be_visible()
    assert "Team-masked-notes" not in agent_plaintext(agent)  # the team's mask holds

    customer.page.get_by_role("link", name="Next page").click()
    customer.page.wait_for_url("**/team-secret.html")
    expect(agent.page.get_by_role("status")).to_contain_text("Customer is on a private page")
    customer.page.wait_for_timeout(500)
    seen = agent_plaintext(agent) + agent.page.content()
    assert "Team-only-hidden" not in seen


FRAMED_HELP = """<!doctype html><html><body><p id="said">PUBLIC-FRAME-TEXT</p>
<script>
function go(how, to, text) {
  history[how]({}, "", to);
  document.body.append(Object.assign(document.createElement("p"), {textContent: text}));
}
</script></body></html>"""


@pytest.mark.parametrize("how", ["pushState", "replaceState"])
def test_a_frame_that_turns_private_in_place_is_emptied_at_once(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party, how: str
) -> None:
    (other_origin.root / "public-help.html").write_text(FRAMED_HELP)
    body = "<h1>Checkout</h1><iframe id='help' src='public-help.html'></iframe><p>After</p>"
    url = other_origin.page("checkout.html", body, live, title="Checkout")
    customer.page.goto(url)
    code = customer.page.evaluate(
        "() => window.Tandem.start({policy: {version: 1, pages: {deny: ['/private-*']}}})"
    )
    view = share(customer, agent, live, code)
    framed = view.frame_locator("#help")
    expect(framed.get_by_text("PUBLIC-FRAME-TEXT")).to_be_attached()
    # A single-page app in the frame moves to a private page of the policy: what it showed
    # before is that page's now (and nothing it shows there may reach the agent).
    help_frame = customer.page.frame_locator("#help")
    help_frame.locator("body").evaluate(
        "(body, how) => go(how, 'private-statement', 'PRIVATE-STATEMENT-SECRET-7742')", how
    )
    expect(framed.get_by_text("PUBLIC-FRAME-TEXT")).to_have_count(0)
    caught_up(customer, view)
    assert "PRIVATE-STATEMENT-SECRET-7742" not in agent_plaintext(agent)
    # Back on a shared page, the frame shows again.
    help_frame.locator("body").evaluate(
        "(body, how) => go(how, 'public-help.html', 'BACK-IN-PUBLIC')", how
    )
    expect(framed.get_by_text("BACK-IN-PUBLIC")).to_be_attached()
    expect(view.get_by_text("After")).to_be_attached()


SPA = """<h1>Shop</h1><p>PUBLIC-SHOP-TEXT</p><button id="buy">Buy</button>
<script>
function toAccount() {
  history.pushState({}, "", "/private-account");
  document.body.append(Object.assign(document.createElement("p"), {
    textContent: "PRIVATE-SPA-SECRET-5530"}));
  document.querySelector("#buy").click();  // what the customer does goes at once
}
function drawThenMove() {  // a router that draws the view first and changes the address after
  document.body.append(Object.assign(document.createElement("p"), {
    textContent: "PRIVATE-SPA-SECRET-5530"}));
  setTimeout(() => history.pushState({}, "", "/private-account"), 0);
}
</script>"""


@pytest.mark.parametrize("move", ["toAccount", "drawThenMove"])
def test_a_single_page_app_moving_onto_a_private_page_sends_nothing_of_it(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party, move: str
) -> None:
    """The app moves onto its private page and draws it (toAccount), or draws it and then moves
    (drawThenMove: what it drew waits for its batch, and goes nowhere once the address is
    private)."""
    url = other_origin.page("spa.html", SPA, live, title="Shop")
    customer.page.goto(url)
    code = customer.page.evaluate(
        "() => window.Tandem.start({policy: {version: 1, pages: {deny: ['/private-*']}}})"
    )
    view = share(customer, agent, live, code)
    expect(view.get_by_text("PUBLIC-SHOP-TEXT")).to_be_attached()
    customer.page.evaluate(f"() => {move}()")
    expect(agent.page.get_by_text("Customer is on a private page")).to_be_visible()
    assert "PRIVATE-SPA-SECRET-5530" not in agent_plaintext(agent)


HASH_SHOP = """<h1>Shop</h1><p>PUBLIC-HASH-SHOP</p><a href="/%63heckout.html">Pay</a>
<p id="view"></p>
<script>
function route(to, text) {  // a hash router: the route's view replaces the last one
  location.hash = to;
  document.querySelector("#view").textContent = text;
}
</script>"""


def test_a_private_page_spelled_otherwise_or_routed_by_its_hash_is_still_private(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """`/Checkout`, `/%63heckout`, `/#/checkout`...: the site's server or router shows the same
    private page as `/checkout` (the policy's deny), so nothing of it may leave the browser."""
    url = other_origin.page("shop.html", HASH_SHOP, live, title="Shop")
    other_origin.page("checkout.html", "<h1>Pay</h1><p>PRIVATE-ESCAPED-CHECKOUT-3391</p>", live)
    customer.page.goto(url)
    code = customer.page.evaluate(
        "() => window.Tandem.start({policy: {version: 1, pages: {deny: ['/checkout*']}}})"
    )
    view = share(customer, agent, live, code)
    expect(view.get_by_text("PUBLIC-HASH-SHOP")).to_be_attached()
    # A hash router moves onto its private route.
    customer.page.evaluate("() => route('#/Checkout', 'PRIVATE-HASH-ROUTE-8810')")
    expect(agent.page.get_by_role("status")).to_contain_text("Customer is on a private page")
    customer.page.evaluate("() => route('#/cart', 'BACK-ON-THE-CART')")
    expect(view.get_by_text("BACK-ON-THE-CART")).to_be_attached(timeout=10_000)
    # A link spelling the private page's address with an escape (the server decodes it).
    customer.page.get_by_role("link", name="Pay").click()
    customer.page.wait_for_url("**/%63heckout.html")
    expect(customer.page.get_by_text("PRIVATE-ESCAPED-CHECKOUT-3391")).to_be_visible()
    expect(agent.page.get_by_role("status")).to_contain_text("Customer is on a private page")
    expect(customer.page.get_by_role("status")).to_contain_text("Sharing paused")
    seen = agent_plaintext(agent) + agent.page.content()
    wire = (customer.frames.everything() + agent.frames.everything()).decode("utf-8", "replace")
    for secret in ("PRIVATE-HASH-ROUTE-8810", "PRIVATE-ESCAPED-CHECKOUT-3391"):
        assert secret not in seen and secret not in wire


ROUTED_SHOP = """<h1>Shop</h1><p id="view"></p><a href="shop.html?lang=en&page=Checkout">Pay</a>
<script>
// A query router (`?page=...`, read leniently as sites do) and a hash router without a slash.
function render() {
  const page = (new URLSearchParams(location.search).get("page") || "").trim().toLowerCase();
  const route = location.hash.slice(1);
  document.querySelector("#view").textContent = route === "account" ? "PRIVATE-HASH-ACCOUNT-2297"
    : page === "checkout" ? "PRIVATE-QUERY-CHECKOUT-4471" : `PUBLIC-ROUTED-${page || "home"}`;
}
function go(query) {  // the app moves and draws the new view at once
  history.pushState(null, "", query);
  render();
}
addEventListener("hashchange", render);
render();
</script>"""


def test_a_query_routed_or_hash_routed_private_page_sends_nothing_of_it(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """`?page=checkout` and `#account` (a hash route without a slash) are the site's private
    pages: the policy names them (`/shop.html?page=checkout`, `/shop.html#account`), and nothing
    of them leaves the browser, whether the app moves there (pushState, hashchange) or a link
    loads one spelled otherwise (`?lang=en&page=Checkout`)."""
    url = other_origin.page("shop.html", ROUTED_SHOP, live, title="Shop")
    customer.page.goto(f"{url}?page=home")
    code = customer.page.evaluate(
        "() => window.Tandem.start({policy: {version: 1, pages: {deny: "
        "['/shop.html?page=checkout', '/shop.html#account']}}})"
    )
    view = share(customer, agent, live, code)
    expect(view.get_by_text("PUBLIC-ROUTED-home")).to_be_attached()
    customer_status = customer.page.get_by_role("status")
    agent_status = agent.page.get_by_role("status")

    # A query router moves onto its private page, the parameter among others and escaped.
    customer.page.evaluate("() => go('?lang=en&page=%63heckout')")
    expect(customer.page.get_by_text("PRIVATE-QUERY-CHECKOUT-4471")).to_be_visible()
    expect(agent_status).to_contain_text("Customer is on a private page")
    expect(customer_status).to_contain_text("Sharing paused")
    customer.page.evaluate("() => go('?page=cart')")
    expect(view.get_by_text("PUBLIC-ROUTED-cart")).to_be_attached(timeout=10_000)
    expect(customer_status).not_to_contain_text("Sharing paused")

    # A hash router without a slash moves onto its private route.
    customer.page.evaluate("() => { location.hash = 'account'; }")
    expect(customer.page.get_by_text("PRIVATE-HASH-ACCOUNT-2297")).to_be_visible()
    expect(agent_status).to_contain_text("Customer is on a private page")
    expect(customer_status).to_contain_text("Sharing paused")
    customer.page.evaluate("() => { location.hash = 'help'; }")
    expect(view.get_by_text("PUBLIC-ROUTED-cart")).to_be_attached(timeout=10_000)

    # A link loads the query-routed private page, spelled otherwise.
    customer.page.get_by_role("link", name="Pay").click()
    customer.page.wait_for_url("**/shop.html?lang=en&page=Checkout")
    expect(customer.page.get_by_text("PRIVATE-QUERY-CHECKOUT-4471")).to_be_visible()
    expect(agent_status).to_contain_text("Customer is on a private page")
    expect(customer_status).to_contain_text("Sharing paused")

    seen = agent_plaintext(agent) + agent.page.content()
    wire = (customer.frames.everything() + agent.frames.everything()).decode("utf-8", "replace")
    for secret in ("PRIVATE-QUERY-CHECKOUT-4471", "PRIVATE-HASH-ACCOUNT-2297"):
        assert secret not in seen and secret not in wire


CLICKS = """<h1>Shop</h1><p>PUBLIC-CLICKS-PAGE <span id="count">0</span></p>
<p><button id="add" onclick="count.textContent = +count.textContent + 1">Add one</button></p>
<p><a id="pay" href="shop.html?lang=en&page=%63heckout">Pay now</a></p>
<form id="go" action="shop.html?page=cart"><input type="hidden" name="page" value="checkout">
<button id="submit"><b>Go to payment</b></button></form>
<p><a id="account" href="#account">Account</a>
<a id="cart" href="shop.html?page=cart">Cart</a></p>"""


def test_the_agents_click_onto_a_query_or_hash_routed_private_page_is_refused(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """With control, the agent clicks a link to `?page=%63heckout`, a GET form's button (on the
    bold text inside it) whose hidden field makes the query `?page=checkout` (its action says
    `?page=cart`), and a link to the hash route `#account`: the customer's browser refuses each
    before clicking (a click on the page's own button after them proves they were handled, and
    the page stayed), while a link to a shared page is followed.

    Five clicks in all, so none is refused for the rate: the customer's browser takes five at
    once, then five a second (ACTIONS_PER_SECOND in sdk/src/share/control.ts; a refused click
    counts too). With a click on the button after each refused one, the seven clicks went faster
    than that in a warm browser (a full run), and the last was refused as "Too many actions"."""
    customer.page.set_viewport_size({"width": 1000, "height": 800})
    agent.page.set_viewport_size({"width": 1400, "height": 900})
    url = other_origin.page("shop.html", CLICKS, live, title="Shop")
    customer.page.goto(f"{url}?page=home")
    code = customer.page.evaluate(
        "() => window.Tandem.start({policy: {version: 1, pages: {deny: "
        "['/shop.html?page=checkout', '/shop.html#account']}}})"
    )
    view = share(customer, agent, live, code)
    expect(view.get_by_text("PUBLIC-CLICKS-PAGE")).to_be_attached()
    grant(customer, agent)
    # Five actions in all: within the control's allowance (5 a second), however fast they go.
    for target in ("#pay", "#submit b", "#account"):
        agent_click(agent, view, target)
    expect(agent.page.get_by_role("status")).to_contain_text("That leads off the pages you may see")
    agent_click(agent, view, "#add")  # handled after the three clicks before it
    expect(customer.page.locator("#count")).to_have_text("1")
    assert customer.page.url == f"{url}?page=home"
    agent_click(agent, view, "#cart")
    customer.page.wait_for_url(f"{url}?page=cart")


def test_a_popup_showing_a_private_page_sends_nothing_of_it(
    server_factory: ServerFactory, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A popup of the shared page (window.open, same origin: the browser copies the tab's
    session storage into it, so its SDK takes the session up) that shows a private page."""
    server = server_factory(allow_origins=(other_origin.origin,))
    first = other_origin.page(
        "shop.html",
        page("Shop", "Open-page-text", "more.html")
        + "<button onclick=\"window.open('private-popup.html', 'pop', 'popup')\">Pop</button>",
        server,
    )
    other_origin.page(
        "private-popup.html", page("Statement", "Private-popup-hushhush", "shop.html"), server
    )
    popup_frames = FrameLog()
    customer.context.on("page", popup_frames.attach)
    customer.page.goto(first)
    code = customer.page.evaluate("() => window.Tandem.start()")
    view = share(customer, agent, server, code)
    expect(view.get_by_text("Open-page-text")).to_be_visible()
    with customer.page.expect_popup() as opened:
        customer.page.get_by_role("button", name="Pop").click()
    popup = opened.value
    expect(popup.get_by_text("Private-popup-hushhush")).to_be_visible()
    # The popup's SDK took the session up (the opener's tab is closed out of it) and paused.
    expect(agent.page.get_by_role("status")).to_contain_text("Customer is on a private page")
    expect(popup.get_by_role("status")).to_contain_text("Sharing paused")
    assert popup_frames.sent, "the popup's SDK never spoke: the test shows nothing"
    # Nothing of the popup's private page reached the agent.
    seen = agent_plaintext(agent) + agent.page.content()
    wire = (
        customer.frames.everything() + popup_frames.everything() + agent.frames.everything()
    ).decode("utf-8", "replace")
    assert "Private-popup-hushhush" not in seen and "Private-popup-hushhush" not in wire
