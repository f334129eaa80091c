"""A page served as XHTML (`application/xhtml+xml`): its customers can share it, masked as an
HTML page is. Element names there are as written (lower case), where rrweb's recorder compared
them with upper-case names (sdk/rrweb-patches.mjs, "Tags in an XHTML page")."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, agent_plaintext, caught_up, share, start_on


def xhtml_page(other_origin: OtherOrigin, live: RunningServer, body: str, kind: str) -> str:
    """``body`` on a page of the site served as ``kind`` (`.xhtml`: `application/xhtml+xml`)."""
    if kind == "html":
        return other_origin.page("site.html", body, live, title="XHTML page")
    (other_origin.root / "site.xhtml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>XHTML page</title>'
        f'<script src="{live.base}/sdk/tandem.js"></script></head>'
        f"<body>{body}</body></html>"
    )
    return f"{other_origin.origin}/site.xhtml"


PAGE = (
    '<main><h1 id="title">Sign in</h1>'
    # Page state a site writes into an inline script (here a session token): an HTML page's
    # scripts reach the agent as a placeholder, never as written.
    '<script>window.pageState = { token: "xhtml-script-token-77" };</script>'
    '<form><input id="pw" type="password" name="pw"/></form>'
    '<input id="search" type="search" name="q" data-tandem-unmask=""/>'
    '<textarea id="notes" data-tandem-unmask="">first notes</textarea>'
    '<dialog id="box"><p>A dialog</p></dialog>'
    "</main>"
)


@pytest.mark.parametrize("kind", ["xhtml", "html"])
def test_an_xhtml_page_is_shared_as_an_html_page_is(
    live: RunningServer, customer: Party, agent: Party, other_origin: OtherOrigin, kind: str
) -> None:
    url = xhtml_page(other_origin, live, PAGE, kind)
    view = share(customer, agent, live, start_on(customer, url))
    expect(view.locator("#title")).to_have_text("Sign in")
    customer.page.locator("#pw").fill("xhtml-secret-42")
    customer.page.locator("#search").fill("typed words")
    expect(view.locator("#search")).to_have_value("typed words")  # typing is recorded
    customer.page.locator("#notes").fill("changed notes")
    expect(view.locator("#notes")).to_have_value("changed notes")
    customer.page.evaluate("() => document.getElementById('box').showModal()")
    expect(view.locator("#box")).to_have_attribute("rr_open_mode", "modal")
    caught_up(customer, view)
    seen = agent_plaintext(agent)
    assert "xhtml-secret-42" not in seen
    assert "xhtml-script-token-77" not in seen, "an inline script's text went to the agent"
    assert "SCRIPT_PLACEHOLDER" in seen  # the script itself was recorded, as a placeholder
    assert not customer.console_errors, customer.console_errors
