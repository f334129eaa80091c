"""A page, a relay or an agent turning the widget's reach (tests/e2e/test_widget_reach.py) against
the customer: Stop sharing kept within reach by moving the widget into the page's layers and
putting it back, and sharing paused where it cannot be (docs/threat-model.md, "Stop sharing stays
within reach").

Got through, fixed: a page whose own observer took the widget out again each time it was put
back made the widget's observer and the page's answer each other without end (a loop of
microtasks: the customer's tab froze), and where the page answered a task later, sharing went on
with the widget never on screen (each look put it back and found it, just before the page took
it away again). Put-backs are now bounded between two looks, and a page that keeps taking the
widget away keeps sharing paused."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import LIVE_STATUS, Joined
from tests.e2e.test_widget_reach import stop_button

PAUSED_STATUS = "cannot see Tandem's controls"

# The page's own observer takes the widget's host out each time it is put back (`at_once`: in the
# same round of microtasks; `next_task`: from a task of its own), up to `limit` times (a bound for
# the test only: unbounded, the loop would never give the test its page back).
FIGHT_BACK = """([when, limit]) => {
    window.__removed = 0;
    window.__fighting = true;
    const takeOut = () => {
        for (const host of document.querySelectorAll('[data-tandem-ui]')) {
            if (host.getRootNode() !== document || !window.__fighting) continue;
            if (window.__removed >= limit) return;
            window.__removed++;
            host.remove();
        }
    };
    const observer = new MutationObserver(() => {
        if (when === 'at_once') takeOut(); else setTimeout(takeOut, 0);
    });
    observer.observe(document, {subtree: true, childList: true});
    window.__stopFighting = () => { window.__fighting = false; observer.disconnect(); };
    takeOut();
}"""


@pytest.mark.parametrize("when", ["at_once", "next_task"])
def test_a_page_that_takes_the_widget_out_each_time_it_is_put_back_pauses_sharing_and_no_loop(
    joined: Joined, when: str
) -> None:
    page, agent = joined.customer.page, joined.agent.page
    expect(stop_button(page)).to_be_visible()
    page.evaluate(FIGHT_BACK, [when, 100_000])
    # The tab answers, the widget was put back a bounded number of times (a few per 300 ms look),
    # and the agent sees nothing while the customer cannot see Stop sharing.
    expect(agent.locator("#status")).to_contain_text(PAUSED_STATUS)
    assert page.evaluate("() => window.__removed") < 1_000
    # The page lets go: the widget stays, sharing goes on.
    page.evaluate("() => window.__stopFighting()")
    expect(agent.locator("#status")).to_contain_text(LIVE_STATUS)
    stop_button(page).click(trial=True, timeout=5000)
