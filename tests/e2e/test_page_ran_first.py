"""A script of the page's that ran before the SDK loaded (docs/threat-model.md, "A page script that
ran first") replaced the browser functions the widget relies on for its own decisions.

Got through, fixed: a page that wrapped `addEventListener` held the listener of the widget's
Allow button and called it with an object saying `isTrusted: true`, or with a real click of the
customer's made elsewhere on the page: the consent question was answered for the customer, and
the page shared. A page that replaced `IntersectionObserver` with one handing the widget reports
of its own (Stop sharing "shown") kept its cover over Stop sharing while everything was shared.
The widget now reads clicks and the cover watch's reports with the browser's own getters, taken
from a fresh realm as the SDK loads (./sdk/src/share/realm.ts): an object of the page's is no
click and no report, and a real click counts only on the button it was dispatched to. A report
the browser made before the widget's question, kept back by a page wrapping the browser's own
observer and handed over after it, answers nothing: set against the browser's own clock (a page's
fake timers replace `performance`, which put every report before the question). Nor does one made
frames after it: a page withholding the reports of its cover until it lifted it had the report of
the frame that lifted it answer, and what it typed under the cover went; only a report made at the
first frame drawn after the question answers now (./sdk/src/share/first-frame.ts)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import RunningServer
from tests.e2e.conftest import (
    LIVE_STATUS,
    Party,
    agent_plaintext,
    allow,
    caught_up,
    get_help,
    join,
    share,
    sign_in,
)
from tests.e2e.test_malicious_server import content_sent
from tests.e2e.test_widget_cover_window import WHILE_COVERED
from tests.e2e.test_widget_reach import stop_button
from tests.e2e.test_widget_reach_attacks import PAUSED_STATUS
from tests.e2e.test_widget_reach_covers import COVER
from tests.e2e.test_workspace import wait_until

# Before any script of the page's, the SDK's too: every click listener added to a button is kept
# (the page's wrapper of addEventListener), and every click of the customer's on the page.
HOLDS_LISTENERS = """(() => {
    const add = EventTarget.prototype.addEventListener;
    window.__clickListeners = [];
    EventTarget.prototype.addEventListener = function (type, listener, options) {
        if (type === 'click' && this instanceof HTMLButtonElement) {
            window.__clickListeners.push([this, listener]);
        }
        return add.call(this, type, listener, options);
    };
    add.call(document, 'click', (event) => { window.__customersClick = event; }, true);
})();"""

# The page calls the Allow button's listener itself: with an object of its own that says it is
# trusted and came from the keyboard (no wait), or with the customer's last real click.
ANSWERS_WITH = """(how) => {
    const [button, listener] = window.__clickListeners.find(([b]) => b.textContent === 'Allow');
    const forged = {type: 'click', isTrusted: true, detail: 0, target: button,
        currentTarget: button, preventDefault() {}, stopPropagation() {}};
    const event = how === 'forged' ? forged : window.__customersClick;
    if (typeof listener === 'function') listener.call(button, event);
    else listener.handleEvent(event);
}"""


@pytest.mark.parametrize("how", ["forged", "customers_click_elsewhere"])
def test_a_page_holding_the_widgets_listener_cannot_answer_allow(
    live: RunningServer, customer: Party, agent: Party, how: str
) -> None:
    customer.page.add_init_script(HOLDS_LISTENERS)
    customer.page.goto(f"{live.base}/demo/")
    code = get_help(customer)
    sign_in(agent, live)
    join(agent, code)
    allow = customer.page.get_by_role("dialog").get_by_role("button", name="Allow")
    expect(allow).to_be_enabled()
    customer.page.mouse.click(5, 5)  # the customer clicks somewhere on the page
    assert customer.page.evaluate("() => !!window.__customersClick?.isTrusted")
    customer.page.evaluate(ANSWERS_WITH, how)
    assert customer.page.evaluate("() => window.Tandem.state") == "pending_consent"
    assert content_sent(customer) == []
    allow.click()  # the customer's own
    expect(agent.page.get_by_role("status")).to_contain_text("live")


# Before any script of the page's: IntersectionObserver replaced by one that observes nothing and
# tells its callback, at each frame, that every target it was given shows.
FAKE_OCCLUSION_TEST = """(() => {
    const Real = window.IntersectionObserver;
    window.IntersectionObserver = class {
        constructor(callback) { this.callback = callback; this.targets = new Set(); this.tick(); }
        tick() {
            requestAnimationFrame(() => this.tick());
            const entries = [...this.targets].map((target) => ({
                target, isIntersecting: true, isVisible: true, time: performance.now(),
                intersectionRatio: 1,
            }));
            if (entries.length) this.callback(entries, this);
        }
        observe(target) { this.targets.add(target); }
        unobserve(target) { this.targets.delete(target); }
        disconnect() { this.targets.clear(); }
        takeRecords() { return []; }
    };
    window.__realIntersectionObserver = Real;
})();"""


def covers_and_types(page: Page, frames: int) -> str:
    """The page covers Stop sharing (its layer shown again at every frame) and types into a field
    of its own at each of `frames` frames; the marker typed."""
    marker = f"typed-under-the-cover-{secrets.token_hex(4)}"
    page.evaluate(
        f"(args) => {{ ({COVER})(['closed', true]); ({WHILE_COVERED})(args); }}", [marker, frames]
    )
    return marker


def shared_live(
    live: RunningServer, customer: Party, agent: Party, script: str, loaded: str | None = None
) -> Any:
    """The demo page, `script` run before any of the page's (and `loaded` once it loaded, the
    SDK too), shared live; the agent's view."""
    customer.page.add_init_script(script=script)
    customer.page.goto(f"{live.base}/demo/")
    if loaded:
        customer.page.evaluate(loaded)
    code = get_help(customer)
    view = share(customer, agent, live, code)
    expect(agent.page.locator("#status")).to_contain_text(LIVE_STATUS)
    expect(view.locator("body")).to_be_attached()
    return view


def live_again_without(customer: Party, agent: Party, view: Any, marker: str) -> None:
    """The agent's view is live again and caught up, and `marker` never reached the agent."""
    expect(agent.page.locator("#status")).to_contain_text(LIVE_STATUS, timeout=30000)
    caught_up(customer, view)
    assert marker not in agent_plaintext(agent)


def nothing_typed_under_the_cover_goes(
    customer: Party, agent: Party, view: Any, frames: int, *, all_typed: bool, handed: bool
) -> None:
    """The page covers Stop sharing and types under it: sharing pauses (after `frames` typed,
    with `all_typed`; the page's wrapper handed the widget its reports, with `handed`), and none
    of what it typed reached the agent while it covered. What it typed goes before its cover
    does (once Stop sharing shows, the page is shared again); with a `view`, the agent's view is
    then live and caught up, and still none of it reached the agent.

    Without a `view`, only what went while the page covered is checked: after it lifts its cover
    see test_a_page_withholding_reports_of_its_cover_cannot_send_what_it_showed_under_it_later
    (docs/threat-model.md, "A page script that ran first")."""
    page = customer.page
    marker = covers_and_types(page, frames)
    try:
        expect(agent.page.locator("#status")).to_contain_text(PAUSED_STATUS)
        if all_typed:
            done = "() => window.__madeWhileCovered"
            wait_until(page, lambda: page.evaluate(done) >= frames, timeout=15)
        if handed:
            assert page.evaluate("() => window.__keptBackHanded") > 0
        expect(agent.page.locator("#status")).to_contain_text(PAUSED_STATUS)
        assert marker not in agent_plaintext(agent)
    finally:
        page.evaluate("() => document.getElementById('made-while-covered')?.remove()")
        page.evaluate("() => window.__stopCovering?.()")
    if view is not None:
        live_again_without(customer, agent, view, marker)


def test_a_page_that_replaced_the_occlusion_test_cannot_cover_stop_sharing_unseen(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    """The page's own reports say Stop sharing shows while its cover is over it. They are not the
    browser's: the widget cannot tell whether Stop sharing shows, so nothing of the page goes
    (sharing paused, the agent told why), also what the page types under its cover."""
    customer.page.add_init_script(FAKE_OCCLUSION_TEST)
    customer.page.goto(f"{live.base}/demo/")
    code = get_help(customer)
    sign_in(agent, live)
    join(agent, code)
    allow(customer)
    expect(stop_button(customer.page)).to_be_visible()
    nothing_typed_under_the_cover_goes(customer, agent, None, 30, all_typed=True, handed=False)


# The browser's own occlusion test (an observer made with `trackVisibility`), wrapped by the page
# before the SDK: each report of Stop sharing shown is kept, and handed to the widget in place of
# every later report finding it covered (the browser's own report, made before the page's cover).
KEEPS_SHOWN_REPORTS = """(() => {
    const Real = window.IntersectionObserver;
    const swap = (entries, kept) => entries.map((entry) => {
        if (entry.isVisible || !entry.isIntersecting) { kept.shown = entry; return entry; }
        window.__keptBackHanded = (window.__keptBackHanded || 0) + 1;
        return kept.shown || entry;
    });
    window.IntersectionObserver = function (callback, options) {
        if (!options?.trackVisibility) return new Real(callback, options);
        const kept = {shown: null};
        const real = new Real(
            (entries, observer) => callback(swap(entries, kept), observer), options);
        const takeRecords = real.takeRecords.bind(real);
        real.takeRecords = () => swap(takeRecords(), kept);
        return real;
    };
})();"""


def test_a_page_handing_over_reports_kept_from_before_its_cover_cannot_cover_stop_sharing_unseen(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    """The page's wrapper hands the widget the browser's own report of Stop sharing shown, made
    before its cover, in place of each one that finds it covered. A report made before the
    widget's question answers nothing (its `time`, against the browser's own clock, not the
    page's): nothing of the page goes (sharing paused), also what the page types under its
    cover."""
    shared_live(live, customer, agent, KEEPS_SHOWN_REPORTS)
    nothing_typed_under_the_cover_goes(customer, agent, None, 30, all_typed=True, handed=True)


# The browser's own occlusion test (an observer made with `trackVisibility`), wrapped by the page
# before the SDK: reports finding Stop sharing covered are never passed on, those finding it shown
# are (the last one kept); with `handsIn` 'takeRecords', each time the widget takes the reports due
# (its question, askShown), the wrapper first hands it, from inside takeRecords, the one it kept:
# the browser's own answer to the question before ('observe': from inside observe, as the widget
# observes Stop sharing afresh). `__asked` counts the widget's questions (each observes it afresh).
# Other observers are the browser's own, untouched.
HIDES_COVERED_REPORTS = """(handsIn) => {
    const Real = window.IntersectionObserver;
    window.__keptBackHanded = 0;
    window.__asked = 0;
    window.IntersectionObserver = function (callback, options) {
        if (!options?.trackVisibility) return new Real(callback, options);
        let kept = null;
        const shown = (entries) => entries.filter((entry) => {
            if (entry.isIntersecting && !entry.isVisible) return false;
            kept = entry;
            return true;
        });
        const real = new Real((entries, observer) => {
            const passed = shown(entries);
            if (passed.length) callback(passed, observer);
        }, options);
        const hand = () => {
            if (!kept) return;
            if (window.__covering) window.__keptBackHanded++;
            callback([kept], real);
        };
        const takeRecords = real.takeRecords.bind(real);
        real.takeRecords = () => {
            const taken = shown(takeRecords());
            if (handsIn === 'takeRecords') hand();
            return taken;
        };
        const observe = real.observe.bind(real);
        real.observe = (target) => {
            observe(target);
            window.__asked++;
            if (handsIn === 'observe') hand();
        };
        return real;
    };
}"""


@pytest.mark.parametrize("hands_in", ["takeRecords", "observe"])
def test_a_page_answering_from_inside_take_records_cannot_cover_stop_sharing_unseen(
    live: RunningServer, customer: Party, agent: Party, hands_in: str
) -> None:
    """Got through: the page's wrapper handed the widget, from inside takeRecords (as the widget
    asked its question), the browser's own report answering the question before: made after that
    one was asked, it answered the new one too (the time of the question was set after
    takeRecords), and what the page typed under its cover went at each question, sharing live.
    Now the time is set before: that report answers nothing, the reports finding Stop sharing
    covered never come, and sharing pauses (SILENT_WATCH_MS) with nothing of the cover sent.
    Held: the same from inside observe (the question timed already)."""
    shared_live(live, customer, agent, f"({HIDES_COVERED_REPORTS})('{hands_in}')")
    nothing_typed_under_the_cover_goes(customer, agent, None, 400, all_typed=False, handed=True)


# A field of the page's, unmasked, shown under its cover: the marker typed into it (`field`).
TYPES_INTO_A_FIELD = """
    const field = Object.assign(document.createElement('input'), {id: 'typed-under-the-cover'});
    field.setAttribute('data-tandem-unmask', '');
    document.body.append(field);
    field.value = marker;
    field.dispatchEvent(new Event('input', {bubbles: true}));"""

# The page covers Stop sharing and types a marker into a field it shows under its cover; once the
# widget has asked the cover watch about that (observed Stop sharing afresh) and three frames were
# drawn under the cover (the first frame's report, finding it covered, withheld), it takes the
# field away and lifts its cover in one task: the report of the frame that lifts it, finding Stop
# sharing shown, is the first the widget hears since its question.
TYPES_AND_LIFTS = (
    "(marker) => {"
    + TYPES_INTO_A_FIELD
    + """
    const asked = window.__asked;
    const frames = (n, then) => n ? requestAnimationFrame(() => frames(n - 1, then)) : then();
    const lift = () => {
        field.remove();
        window.__stopCovering();
        window.__lifted = true;
    };
    const wait = () => window.__asked > asked ? frames(3, lift) : requestAnimationFrame(wait);
    wait();
}"""
)


def typed_under_the_cover_never_goes(
    customer: Party,
    agent: Party,
    view: Any,
    types: str,
    *,
    covers_first: bool = True,
    done: str = "__lifted",
    then: str | None = None,
) -> None:
    """The page runs `types` (a function of a marker) to type the marker into a field it shows
    under its cover over Stop sharing (`covers_first`: covered before it runs; otherwise
    `types` covers with `window.__startCover()`) and to lift its cover, setting `window[done]`.
    Stop sharing shows again (and `window[then]` is set, with `then`); the agent's view is live
    again and caught up, and the marker never reached the agent."""
    page = customer.page
    marker = f"typed-under-the-cover-{secrets.token_hex(4)}"
    cover = f"({COVER})(['closed', true])"
    starts = f"{cover};" if covers_first else f"window.__startCover = () => {cover};"
    page.evaluate(f"(marker) => {{ {starts} ({types})(marker); }}", marker)
    try:
        page.wait_for_function(f"() => window.{done} === true", timeout=15000)
    finally:
        page.evaluate("() => document.getElementById('typed-under-the-cover')?.remove()")
        page.evaluate("() => window.__stopCovering?.()")
    expect(stop_button(page)).to_be_visible()
    if then:
        page.wait_for_function(f"() => window.{then} === true", timeout=15000)
    live_again_without(customer, agent, view, marker)


def test_a_page_withholding_reports_of_its_cover_cannot_send_what_it_showed_under_it_later(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    """Got through: the page's wrapper withholds every report finding Stop sharing covered, so the
    widget's question about what the page typed under its cover stayed unanswered (nothing went);
    the page then lifted its cover within SHOWN_WAIT_MS, and the browser's report of the frame
    that lifted it (made frames after the question) answered it: what it typed under the cover
    went to the agent. Now a question is answered only by a report made at the first frame drawn
    after it (the frame of the first report of an observer observing afresh with it): a later one
    shows that frame's was kept back, and what was asked about is dropped, the page going afresh
    (a full snapshot) once Stop sharing is found shown. The agent's view is live again after the
    cover, and never had the marker."""
    view = shared_live(live, customer, agent, f"({HIDES_COVERED_REPORTS})('')")
    typed_under_the_cover_never_goes(customer, agent, view, TYPES_AND_LIFTS)


# What the page stops, after the SDK loaded and before sharing begins: the session's clock
# (`Date.now`), or its repeating timers (`setInterval`: fake ones that never run).
STOPS = {
    "clock": "() => { const at = Date.now(); Date.now = () => at; }",
    "timers": "() => { window.setInterval = () => 0; }",
}


@pytest.mark.parametrize("stops", list(STOPS))
def test_a_page_that_stops_the_sdks_clock_cannot_silence_the_cover_watch(
    live: RunningServer, customer: Party, agent: Party, stops: str
) -> None:
    """Got through: the page's wrapper passes on no report finding Stop sharing covered, so the
    widget's question stays unanswered, and sharing pauses past SILENT_WATCH_MS; measured on the
    session's clock (`Date.now`), at its looks (`setInterval`), both the page's to stop. Nothing
    of the page went, but sharing never paused under the cover (the customer's browser still
    taking the agent's commands; only the agent's console said "Not live"). Now the wait is
    also measured on the browser's own clock, and a look comes on the browser's own timer where
    none came for a second: sharing pauses."""
    shared_live(live, customer, agent, f"({HIDES_COVERED_REPORTS})('')", STOPS[stops])
    nothing_typed_under_the_cover_goes(customer, agent, None, 400, all_typed=False, handed=False)


# Before any script of the page's: each frame added to the page is patched as it loads (a
# listener for `load`, which an empty frame fires as it is added, before its adder's next line):
# the occlusion test's `isVisible` of its realm says shown, whatever the browser found.
PATCHES_EACH_NEW_FRAME = """(() => {
    if (window !== window.parent) return;
    document.addEventListener('load', (event) => {
        const win = event.target?.contentWindow;
        if (!win?.IntersectionObserverEntry) return;
        Object.defineProperty(win.IntersectionObserverEntry.prototype, 'isVisible', {
            get() { return true; }, configurable: true,
        });
        window.__framesPatched = (window.__framesPatched || 0) + 1;
    }, true);
})();"""


def test_a_page_patching_each_new_frame_as_it_loads_cannot_cover_stop_sharing_unseen(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    """Got through: the empty frame the SDK takes the browser's own functions from fired `load`
    as it was added, and the page's listener patched its realm (the occlusion test said Stop
    sharing shown under the page's cover) before the SDK read it: what the page typed under its
    cover went. Now the frame is one whose document loads later (`srcdoc`, removed before it
    does): nothing of the page's runs between its adding and the SDK's reading."""
    view = shared_live(live, customer, agent, PATCHES_EACH_NEW_FRAME)
    nothing_typed_under_the_cover_goes(customer, agent, view, 30, all_typed=True, handed=False)


# A wrapper of the page's framework (zone.js wraps IntersectionObserver and addEventListener so):
# the browser's own observer and events, each callback run inside the framework's own function.
WRAPS_LIKE_A_FRAMEWORK = """(() => {
    const Real = window.IntersectionObserver;
    window.IntersectionObserver = function (callback, options) {
        return new Real((entries, observer) => callback(entries, observer), options);
    };
    const add = EventTarget.prototype.addEventListener;
    EventTarget.prototype.addEventListener = function (type, listener, options) {
        const wrapped = typeof listener === 'function'
            ? function (event) { return listener.call(this, event); } : listener;
        return add.call(this, type, wrapped, options);
    };
})();"""


def test_a_page_whose_framework_wraps_those_functions_shares_as_before(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    """Held: wrapped, not replaced (the browser's own events and reports passed on), they are
    what the widget reads: the customer's Allow answers, sharing is live, Stop sharing shows."""
    customer.page.add_init_script(WRAPS_LIKE_A_FRAMEWORK)
    customer.page.goto(f"{live.base}/demo/")
    code = get_help(customer)
    view = share(customer, agent, live, code)
    expect(agent.page.locator("#status")).to_contain_text(LIVE_STATUS)
    marker = f"shown-{secrets.token_hex(4)}"
    customer.page.evaluate(
        "(id) => document.body.append(Object.assign(document.createElement('p'), {id}))", marker
    )
    expect(view.locator(f"#{marker}")).to_be_attached()
    stop_button(customer.page).click(trial=True, timeout=5000)
