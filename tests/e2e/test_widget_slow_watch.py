"""A customer's browser that draws its frames late (a busy phone, a loaded machine): the cover
watch's reports, which the page's changes wait for (docs/threat-model.md, "The page can cover its
widget"), come long after they are asked for.

Got through, fixed: a report not come within a second paused sharing as a cover does. Resuming
takes a full snapshot, which waited over a second for its report too, and sharing paused again:
on a loaded 2-core machine the agent's view said "Not live" for the whole session (the widget
tour at 320 x 568), and a cover flipped on and off paused it more than once. A slow watch is no
cover: the changes wait for its answer, however late, and at most MAX_HELD_EVENTS of them (past
that the page goes afresh, one full snapshot, once Stop sharing is found shown).

Got through, fixed: the widget told a report made after its question from one made before by
the report's `time` against the page's `performance.now()`. A page with fake timers (Playwright's
`page.clock`, Sinon's) has its own `performance.now()`, ahead of the browser's: every report was
"before" the question, asked again, never answered, and the agent's view stayed "Not live" (the
widget tour's fixed clock on a loaded machine). A report delivered after the question is fresh
whatever the clocks say: the ones made before it are taken at the question."""

from __future__ import annotations

import secrets

import pytest
from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import LIVE_STATUS, Party, agent_plaintext, audit_actions, get_help, share
from tests.e2e.test_widget_cover_window import WHILE_COVERED
from tests.e2e.test_widget_reach import stop_button
from tests.e2e.test_widget_reach_attacks import (
    PAUSED_STATUS,
    paused_statuses,
    record_statuses,
    statuses,
)
from tests.e2e.test_widget_reach_covers import COVER
from tests.e2e.test_workspace import wait_until

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

# A page's fake timers, installed before the SDK: its `performance` a minute ahead of the browser's
# (Playwright's `page.clock` runs a few milliseconds ahead; Sinon's starts wherever it is told).
FAKE_TIMERS = """(() => {
    const real = window.performance;
    const fake = Object.create(null);
    fake.now = () => real.now() + 60000;
    fake.timeOrigin = real.timeOrigin - 60000;
    window.performance = fake;
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


def test_a_page_with_fake_timers_is_shared_live(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    customer.page.add_init_script(FAKE_TIMERS)
    customer.page.goto(f"{live.base}/demo/")
    assert customer.page.evaluate("() => performance.now() > 60000")
    code = get_help(customer)
    view = share(customer, agent, live, code)
    expect(agent.page.locator("#status")).to_contain_text(LIVE_STATUS, timeout=30_000)
    record_statuses(agent.page)
    marker = f"typed-{secrets.token_hex(4)}"
    customer.page.evaluate(
        "(id) => document.body.append(Object.assign(document.createElement('p'), {id}))", marker
    )
    expect(view.locator(f"#{marker}")).to_be_attached()
    assert not paused_statuses(agent.page), statuses(agent.page)


# Sinon-style fake timers, stopped (`toFake: ['Date', 'performance']`; Playwright's
# `page.clock.set_fixed_time` stops `Date` so): `Date.now()`, `new Date()` and `performance.now()`
# never move, the timers run. `page_only`: installed in the page's own window (Sinon's install),
# with its prototypes' clocks (`Performance`'s `now`, the document's `timeline`) stopped too;
# `every_frame`: in each frame, the SDK's fresh one too (an init script, as Playwright's clock).
FROZEN_TIMERS = """(everyFrame) => {
    if (!everyFrame && window !== window.parent) return;
    const at = Date.now();
    const RealDate = Date;
    const Frozen = function (...args) {
        return args.length ? new RealDate(...args) : new RealDate(at);
    };
    Frozen.now = () => at;
    Frozen.prototype = RealDate.prototype;
    window.Date = Frozen;
    const real = window.performance;
    const fake = Object.create(null);
    fake.now = () => 1000;
    fake.timeOrigin = real.timeOrigin;
    Object.defineProperty(window, 'performance', {get: () => fake, configurable: true});
    if (everyFrame) return;
    // In the page's own realm only: its prototypes' clocks too.
    Performance.prototype.now = () => 1000;
    const timeline = {currentTime: 1000};
    Object.defineProperty(Document.prototype, 'timeline', {get: () => timeline});
    Object.defineProperty(AnimationTimeline.prototype, 'currentTime', {get: () => 1000});
}"""


@pytest.mark.parametrize("where", ["page_only", "every_frame"])
def test_a_page_with_stopped_fake_timers_is_shared_live_and_paused_by_a_cover(
    live: RunningServer, customer: Party, agent: Party, where: str
) -> None:
    """Held: with the page's clocks stopped, the cover watch sets its answers against the
    browser's own clock (the fresh realm's, or the document's animation clock where the fake
    timers are in that frame too): sharing goes live, a cover over Stop sharing pauses it and
    nothing typed under it goes, and it goes on once the cover is gone (COVER_FORGET_MS measured
    on that clock, not the stopped one)."""
    customer.page.add_init_script(
        script=f"({FROZEN_TIMERS})({str(where == 'every_frame').lower()})"
    )
    customer.page.goto(f"{live.base}/demo/")
    assert customer.page.evaluate("() => performance.now() === 1000 && Date.now() === Date.now()")
    code = get_help(customer)
    view = share(customer, agent, live, code)
    expect(agent.page.locator("#status")).to_contain_text(LIVE_STATUS, timeout=30_000)
    marker = f"typed-{secrets.token_hex(4)}"
    customer.page.evaluate(
        "(id) => document.body.append(Object.assign(document.createElement('p'), {id}))", marker
    )
    expect(view.locator(f"#{marker}")).to_be_attached()
    page = customer.page
    hidden = f"typed-under-the-cover-{secrets.token_hex(4)}"
    page.evaluate(
        f"(args) => {{ ({COVER})(['closed', true]); ({WHILE_COVERED})(args); }}", [hidden, 30]
    )
    try:
        expect(agent.page.locator("#status")).to_contain_text(PAUSED_STATUS)
        wait_until(page, lambda: page.evaluate("() => window.__madeWhileCovered") >= 30, timeout=15)
        assert hidden not in agent_plaintext(agent)
        page.evaluate("() => document.getElementById('made-while-covered').remove()")
    finally:
        page.evaluate("() => window.__stopCovering?.()")
    expect(agent.page.locator("#status")).to_contain_text(LIVE_STATUS, timeout=30_000)
    assert hidden not in agent_plaintext(agent)
