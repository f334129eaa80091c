"""A customer's browser that draws its frames late (a busy phone, a loaded machine): the cover
watch's reports, which the page's changes wait for (docs/threat-model.md, "The page can cover its
widget"), come long after they are asked for.

Got through, fixed: a report not come within a second paused sharing as a cover does. Resuming
takes a full snapshot, which waited over a second for its report too, and sharing paused again:
on a loaded 2-core machine the agent's view said "Not live" for the whole session (the widget
tour at 320 x 568), and a cover flipped on and off paused it more than once. A slow watch is no
cover: the changes wait for its answer, however late, and at most MAX_HELD_EVENTS of them (past
that the page goes afresh, one full snapshot, once Stop sharing is found shown)."""

from __future__ import annotations

import secrets

from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import LIVE_STATUS, Party, audit_actions, get_help, share
from tests.e2e.test_widget_reach import stop_button
from tests.e2e.test_widget_reach_attacks import paused_statuses, record_statuses, statuses

# The browser's own observer and its own reports, each handed to the widget 1.5 s late: a frame
# drawn that late (the reports are as of the frame the browser drew; nothing of them is forged).
LATE_WATCH = """(() => {
    const Real = window.IntersectionObserver;
    window.IntersectionObserver = function (callback, options) {
        return new Real((entries, observer) => {
            setTimeout(() => callback(entries, observer), 1500);
        }, options);
    };
})();"""

# More separate changes than MAX_HELD_EVENTS (sdk/src/share/session.ts), each its own mutation
# record batch (a microtask apart), all in one task (one batch of the SDK's), then the marker: what
# waits goes over the bound, is dropped, and the page goes afresh once Stop sharing is found shown.
MANY_CHANGES = """async ([count, marker]) => {
    const box = document.body.appendChild(document.createElement('div'));
    for (let i = 0; i < count; i++) {
        box.textContent = `change ${i}`;
        await Promise.resolve();
    }
    document.body.append(Object.assign(document.createElement('p'), {id: marker}));
}"""


def test_a_late_cover_watch_neither_pauses_sharing_nor_holds_without_bound(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    customer.page.add_init_script(LATE_WATCH)
    customer.page.goto(f"{live.base}/demo/")
    code = get_help(customer)
    view = share(customer, agent, live, code)
    expect(agent.page.locator("#status")).to_contain_text(LIVE_STATUS, timeout=30_000)
    record_statuses(agent.page)
    marker = f"after-many-{secrets.token_hex(4)}"
    customer.page.evaluate(MANY_CHANGES, [2500, marker])
    expect(view.locator(f"#{marker}")).to_be_attached(timeout=60_000)
    expect(stop_button(customer.page)).to_be_visible()
    assert not paused_statuses(agent.page), statuses(agent.page)
    assert "controls_hidden" not in audit_actions(live)
