"""What a hostile customer's page sends the console as plain text (inside the encrypted channel,
so only the page itself can forge it: a script on it rewrites what the SDK sends, here through
``JSON.stringify``, which the SDK calls to encode its payloads)."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, share, start_on

# The page's own script: the context the SDK sends (origin, title, device) says what it likes.
LYING_CONTEXT = """
<script>
(() => {
  const stringify = JSON.stringify;
  JSON.stringify = function (value, ...rest) {
    if (value && value.k === 'context') value = { ...value, origin: 'not a url', title: 'Lies' };
    return stringify.call(this, value, ...rest);
  };
})();
</script>
"""


def test_a_page_address_that_is_no_origin_leaves_the_console_working(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """The console rendered the host of the page's origin with ``new URL(origin)``: a page that
    sent ``"not a url"`` made every later rendering throw, so the console stayed on "Checking…",
    never offered control, and showed nothing of the session. Such a context is refused."""
    url = other_origin.page("lies.html", LYING_CONTEXT + "<h1>Lying page</h1>", live)
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Lying page")).to_be_visible()
    expect(agent.page.locator("#status")).to_have_text(
        "Connected. You are seeing the customer's page live."
    )
    expect(agent.page.locator("#fact-site")).to_have_text("—")
    expect(agent.page.locator("#fact-page")).to_have_text("—")
    agent.page.get_by_role("button", name="Request control").click()
    customer.page.get_by_role("dialog").get_by_role("button", name="Allow").click()
    expect(agent.page.get_by_role("button", name="Release control")).to_be_visible()
    assert not agent.console_errors, agent.console_errors
