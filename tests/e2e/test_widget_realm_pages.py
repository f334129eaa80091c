"""Review of the fresh realm the SDK takes its security functions from (sdk/src/share/realm.ts: an
empty frame made once as the SDK loads, and removed at once), on legitimate pages that could
break it: a strict CSP (`frame-src 'none'`, `child-src 'none'`), Trusted Types required, a page
sandboxed by its CSP, a page whose analytics watch for added frames, and the SDK in `<head>`
(no `document.body` at load: the demo shop loads it so). On each, the customer's Allow is taken,
sharing goes live, the page's changes reach the agent, and a cover over Stop sharing pauses
sharing (the cover watch's reports read with the fresh realm's getters). Every browser test fails
on a reported CSP violation (tests/e2e/conftest.py): the empty frame is none.

Held (attack review): none of these pages broke the SDK or turned its protections off."""

from __future__ import annotations

import functools
import secrets

import pytest
from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import (
    LIVE_STATUS,
    OtherOrigin,
    Party,
    _QuietHandler,
    caught_up,
    share,
    start_on,
)
from tests.e2e.test_widget_reach import stop_button
from tests.e2e.test_widget_reach_attacks import PAUSED_STATUS
from tests.e2e.test_widget_reach_covers import COVER


def strict(server: RunningServer) -> str:
    """A site's strict policy: no frames at all; the SDK's script and connections to Tandem."""
    ws = server.base.replace("http://", "ws://")
    return (
        f"default-src 'self'; script-src 'self' {server.base}; style-src 'self'; "
        f"img-src 'self' data:; connect-src 'self' {server.base} {ws}; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-src 'none'; child-src 'none'; "
        "frame-ancestors 'none'"
    )


POLICIES = {
    "none": "",
    "frame_src_none": "",
    "trusted_types_required": "; require-trusted-types-for 'script'; trusted-types 'none'",
    "csp_sandbox": "; sandbox allow-scripts allow-same-origin allow-forms allow-popups",
}

# Analytics that watch the page for frames added and look inside each (a common tag pattern), set
# before any script of the page's.
WATCHES_FRAMES = """(() => {
    window.__framesSeen = 0;
    new MutationObserver((records) => {
        for (const record of records) for (const node of record.addedNodes) {
            if (node.nodeName === 'IFRAME') {
                window.__framesSeen++;
                try { node.contentWindow?.document; } catch {}
                node.setAttribute('data-analytics-seen', '');
            }
        }
    }).observe(document, {childList: true, subtree: true});
})();"""


def _site(
    customer: Party, live: RunningServer, other_origin: OtherOrigin, policy: str | None
) -> str:
    """A page of the customer's site, the SDK in its `<head>`, served with `policy`."""
    url = other_origin.page("site.html", "<main><h1>Site page</h1></main>", live)

    class WithPolicy(_QuietHandler):
        def end_headers(self) -> None:
            if policy is not None and self.path.endswith(".html"):
                self.send_header("Content-Security-Policy", policy)
            super().end_headers()

    other_origin.httpd.RequestHandlerClass = functools.partial(  # type: ignore[assignment]
        WithPolicy, directory=str(other_origin.root)
    )
    return url


def _shares_with_its_protections(
    customer: Party, agent: Party, live: RunningServer, url: str
) -> None:
    view = share(customer, agent, live, start_on(customer, url))
    page = customer.page
    expect(agent.page.locator("#status")).to_contain_text(LIVE_STATUS)
    expect(stop_button(page)).to_be_visible()
    caught_up(customer, view)
    page.evaluate(COVER, ["closed", True])
    try:
        expect(agent.page.locator("#status")).to_contain_text(PAUSED_STATUS)
    finally:
        page.evaluate("() => window.__stopCovering?.()")
    expect(agent.page.locator("#status")).to_contain_text(LIVE_STATUS, timeout=30000)
    marker = f"after-{secrets.token_hex(4)}"
    page.evaluate(
        "(id) => document.body.append(Object.assign(document.createElement('p'), {id}))", marker
    )
    expect(view.locator(f"#{marker}")).to_be_attached()


@pytest.mark.parametrize("policy", list(POLICIES))
def test_a_page_with_a_strict_policy_shares_with_its_protections(
    live: RunningServer, customer: Party, agent: Party, other_origin: OtherOrigin, policy: str
) -> None:
    csp = None if policy == "none" else strict(live) + POLICIES[policy]
    _shares_with_its_protections(customer, agent, live, _site(customer, live, other_origin, csp))


def test_a_page_whose_analytics_watch_for_frames_shares_with_its_protections(
    live: RunningServer, customer: Party, agent: Party, other_origin: OtherOrigin
) -> None:
    """The analytics see the SDK's frame (added and removed in one task: detached by the time
    they look, its window gone); they break nothing and the SDK's protections hold."""
    customer.page.add_init_script(WATCHES_FRAMES)
    url = _site(customer, live, other_origin, None)
    _shares_with_its_protections(customer, agent, live, url)
    assert customer.page.evaluate("() => window.__framesSeen") >= 1
