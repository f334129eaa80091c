"""Fourth review of promise 3 (docs/threat-model.md, "Stop sharing stays within reach"): what a
page can put over its widget or open beside it that the widget's watch and the browser's hit test
did not see.

Got through, fixed: an opaque layer of the page's top layer that lets the pointer through
(`pointer-events: none`), shown after the widget from a shadow root (whose popovers' `toggle` the
widget never heard), hid Stop sharing from the customer's eye while the hit test found it, so
sharing went on; one the page shows again at every frame kept it hidden for good. The widget now
follows the browser's own occlusion test (IntersectionObserver `trackVisibility`): covered, it is
raised again; kept covered, sharing pauses (nothing sent, the agent told inside the encrypted
channel) until Stop sharing shows. A modal dialog opened in the page's open shadow root was found
only by the next 300 ms look, which paused sharing with the widget out of the customer's reach:
the widget watches the page's open shadow roots (up to `MAX_WATCHED_SHADOW_ROOTS`) as it watches
the document, and moves into such a dialog at that change."""

from __future__ import annotations

import secrets

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LIVE_STATUS, Joined, agent_plaintext, caught_up
from tests.e2e.test_widget_reach import PUT_BACK, change_the_page, stop_button
from tests.e2e.test_widget_reach_attacks import (
    PAUSED_STATUS,
    paused_statuses,
    record_statuses,
    statuses,
)
from tests.e2e.test_workspace import wait_until

# A white popover over the whole page that lets every click through, in a shadow root of the
# page's (`mode`: open or closed), shown after the widget; `every_frame`: shown again at each
# animation frame (the page keeps it over whatever shows after it).
COVER = """([mode, everyFrame]) => {
    const host = Object.assign(document.createElement('div'), {id: 'page-layer'});
    document.body.append(host);
    const root = host.attachShadow({mode});
    const cover = document.createElement('div');
    cover.popover = 'manual';
    cover.textContent = 'Special offer';
    cover.style.setProperty('inset', '0');
    cover.style.setProperty('width', '100vw');
    cover.style.setProperty('height', '100vh');
    cover.style.setProperty('margin', '0');
    cover.style.setProperty('border', '0');
    cover.style.setProperty('background', 'rgb(255, 255, 255)');
    cover.style.setProperty('pointer-events', 'none');
    root.append(cover);
    cover.showPopover();
    window.__covering = true;
    const again = () => {
        if (!window.__covering || !cover.isConnected) return;
        cover.hidePopover();
        cover.showPopover();
        requestAnimationFrame(again);
    };
    if (everyFrame) requestAnimationFrame(again);
    window.__stopCovering = () => { window.__covering = false; host.remove(); };
}"""


def stop_pixels(page: Page) -> bytes:
    """What the customer's screen shows where Stop sharing is."""
    box = stop_button(page).bounding_box()
    assert box is not None
    return page.screenshot(clip=box, caret="initial", animations="disabled")


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_an_opaque_layer_that_lets_clicks_through_does_not_hide_stop_sharing(
    joined: Joined, mode: str
) -> None:
    """The hit test at Stop sharing passes through such a layer (it found the button: within
    reach), but the customer saw the page's layer, not Stop sharing. Now the widget is raised
    over it: the customer's screen shows Stop sharing as before, and sharing goes on."""
    page, agent = joined.customer.page, joined.agent.page
    expect(stop_button(page)).to_be_visible()
    shown = stop_pixels(page)
    page.evaluate(COVER, [mode, False])
    try:
        wait_until(page, lambda: stop_pixels(page) == shown, timeout=10)
        stop_button(page).click(trial=True, timeout=5000)
        expect(agent.locator("#status")).to_contain_text(LIVE_STATUS)
    finally:
        page.evaluate("() => window.__stopCovering?.()")


def test_a_page_that_keeps_an_opaque_layer_over_stop_sharing_pauses_and_sends_nothing(
    joined: Joined,
) -> None:
    """A closed shadow root's layer shown again at every frame: the customer cannot see Stop
    sharing, so sharing pauses. Nothing the page does meanwhile reaches the agent, whose console
    is told why inside the encrypted channel (the relay never reads the reason). Sharing goes on
    once the page lets go."""
    page, agent = joined.customer.page, joined.agent.page
    expect(stop_button(page)).to_be_visible()
    page.evaluate(COVER, ["closed", True])
    marker = f"made-while-covered-{secrets.token_hex(4)}"
    try:
        expect(agent.locator("#status")).to_contain_text(PAUSED_STATUS)
        change_the_page(joined, marker)
        expect(agent.locator("#status")).to_contain_text(PAUSED_STATUS)
    finally:
        page.evaluate("(id) => document.getElementById(id)?.remove()", marker)
        page.evaluate("() => window.__stopCovering?.()")
    expect(agent.locator("#status")).to_contain_text(LIVE_STATUS)
    stop_button(page).click(trial=True, timeout=5000)
    caught_up(joined.customer, joined.view)
    received = agent_plaintext(joined.agent)
    assert marker not in received
    assert '"why":"controls_hidden"' in received
    # The console's `paused` went sealed: in the clear, only the audit trail's report, a name
    # (tests/e2e/test_widget_cover_window.py), nothing of the page or what covered it.
    report = b'{"v":1,"type":"report","event":"controls_hidden"}'
    assert {f for f in joined.customer.frames.sent if b"controls_hidden" in f} == {report}


def test_a_dialog_opened_in_the_pages_open_shadow_root_takes_the_widget_in_at_once(
    joined: Joined,
) -> None:
    """A web component's own modal dialog (in its open shadow root) makes the rest of the page,
    the widget too, inert. The widget found it only at its next look, which could not put it
    anywhere within reach: sharing paused, and the customer could not click Stop sharing while
    the dialog stayed open. It now moves into the dialog at that very change (the page's own
    handler of it, a microtask later, finds it there), and sharing goes on."""
    page, agent = joined.customer.page, joined.agent.page
    expect(stop_button(page)).to_be_visible()
    record_statuses(agent)
    page.evaluate("""() => {
        const host = Object.assign(document.createElement('div'), {id: 'page-layer'});
        const dialog = document.createElement('dialog');
        dialog.textContent = 'Choose your delivery slot';
        host.attachShadow({mode: 'open'}).append(dialog);
        document.body.append(host);
    }""")
    inside = page.evaluate("""async () => {
        const dialog = document.getElementById('page-layer').shadowRoot.querySelector('dialog');
        dialog.showModal();
        await Promise.resolve();
        return !!dialog.querySelector(':scope > [data-tandem-ui]');
    }""")
    try:
        assert inside
        stop_button(page).click(trial=True, timeout=5000)
        # Two of the widget's looks later, still shared: it never paused.
        page.evaluate("""() => {
            window.__looks = 0;
            const hitTest = ShadowRoot.prototype.elementFromPoint;
            ShadowRoot.prototype.elementFromPoint = function (...args) {
                window.__looks++;
                return hitTest.apply(this, args);
            };
        }""")
        wait_until(page, lambda: page.evaluate("() => window.__looks") >= 2, timeout=15)
        caught_up(joined.customer, joined.view)
        assert not paused_statuses(agent)
        expect(agent.locator("#status")).to_contain_text(LIVE_STATUS)
    finally:
        page.evaluate(PUT_BACK)
    stop_button(page).click(trial=True, timeout=5000)


# The cover of COVER, shown again two frames after each of the widget's raises (the page hears
# them: the widget's layer toggles in its host's open shadow root), so that each raise is followed
# by one report of Stop sharing shown before the page covers it again.
FLICKER = """() => {
    const host = Object.assign(document.createElement('div'), {id: 'page-layer'});
    document.body.append(host);
    const cover = document.createElement('div');
    cover.popover = 'manual';
    cover.textContent = 'Special offer';
    for (const [name, value] of [['inset', '0'], ['width', '100vw'], ['height', '100vh'],
            ['margin', '0'], ['border', '0'], ['background', 'rgb(255, 255, 255)'],
            ['pointer-events', 'none']]) cover.style.setProperty(name, value);
    host.attachShadow({mode: 'closed'}).append(cover);
    window.__recovers = 0;
    const widget = [...document.querySelectorAll('body > [data-tandem-ui]')]
        .find((el) => el.shadowRoot);
    const again = (event) => {
        if (event.newState !== 'open' || !cover.isConnected) return;
        requestAnimationFrame(() => requestAnimationFrame(() => {
            if (!cover.isConnected) return;
            cover.hidePopover();
            cover.showPopover();
            window.__recovers++;
        }));
    };
    widget.shadowRoot.addEventListener('toggle', again, true);
    cover.showPopover();
    window.__stopCovering = () => {
        widget.shadowRoot.removeEventListener('toggle', again, true);
        host.remove();
    };
}"""


def test_a_page_that_covers_stop_sharing_again_after_each_raise_pauses_sharing(
    joined: Joined,
) -> None:
    """The cover watch counted covered reports in a row: a page that let Stop sharing show for
    the one report after each raise, then covered it again, reset the count each time, and kept
    the customer's Stop sharing hidden most of the time while everything was shared (the widget
    raised dozens of times, never paused). Now the reports count until Stop sharing has shown
    steadily for a while: sharing pauses within a few raises, and goes on once the page lets go."""
    page, agent = joined.customer.page, joined.agent.page
    expect(stop_button(page)).to_be_visible()
    record_statuses(agent)
    page.evaluate(FLICKER)
    paused = lambda: bool(paused_statuses(agent))  # noqa: E731
    try:
        # Raised again and again: paused within a few raises, not never.
        wait_until(
            page, lambda: paused() or page.evaluate("() => window.__recovers") >= 30, timeout=60
        )
        assert paused(), f"{page.evaluate('() => window.__recovers')} covers, never paused"
        assert page.evaluate("() => window.__recovers") < 30
    finally:
        page.evaluate("() => window.__stopCovering?.()")
    expect(agent.locator("#status")).to_contain_text(LIVE_STATUS, timeout=30000)
    stop_button(page).click(trial=True, timeout=5000)


def test_a_dialog_in_a_shadow_root_past_the_watched_ones_pauses_sharing(joined: Joined) -> None:
    """A page that fills MAX_WATCHED_SHADOW_ROOTS with decoy components first, then opens a modal
    dialog in the next one's open shadow root: the widget does not hear that dialog open (as with
    a closed shadow root's), and the next look finds Stop sharing inert behind it, cannot put it
    inside, and pauses: nothing the page does meanwhile reaches the agent. Sharing goes on once
    the dialog closes."""
    page, agent = joined.customer.page, joined.agent.page
    expect(stop_button(page)).to_be_visible()
    page.evaluate("""() => {
        const host = Object.assign(document.createElement('div'), {id: 'page-layer'});
        for (let i = 0; i < 256; i++) {
            const decoy = host.appendChild(document.createElement('span'));
            decoy.attachShadow({mode: 'open'}).append(document.createElement('i'));
        }
        document.body.append(host);
    }""")
    # The decoys are watched (a mutation batch later): only then the real one.
    page.evaluate("() => new Promise((resolve) => setTimeout(resolve, 0))")
    page.evaluate("""() => {
        const real = document.getElementById('page-layer').appendChild(
            document.createElement('div'));
        real.id = 'real-dialog';
        const dialog = document.createElement('dialog');
        dialog.textContent = 'Choose your delivery slot';
        real.attachShadow({mode: 'open'}).append(dialog);
    }""")
    page.evaluate("() => new Promise((resolve) => setTimeout(resolve, 0))")
    marker = f"made-behind-the-dialog-{secrets.token_hex(4)}"
    try:
        inside = page.evaluate("""async () => {
            const dialog = document.getElementById('real-dialog').shadowRoot.firstChild;
            dialog.showModal();
            await Promise.resolve();
            return !!dialog.querySelector(':scope > [data-tandem-ui]');
        }""")
        assert not inside  # not heard: past the watched roots
        expect(agent.locator("#status")).to_contain_text(PAUSED_STATUS)
        change_the_page(joined, marker)
        expect(agent.locator("#status")).to_contain_text(PAUSED_STATUS)
    finally:
        page.evaluate("(id) => document.getElementById(id)?.remove()", marker)
        page.evaluate(PUT_BACK)
    expect(agent.locator("#status")).to_contain_text(LIVE_STATUS, timeout=30000)
    stop_button(page).click(trial=True, timeout=5000)
    caught_up(joined.customer, joined.view)
    assert marker not in agent_plaintext(joined.agent)


# The cover of COVER shown for `on` animation frames, hidden for `off`, again and again, on the
# page's own rhythm.
FLIP = """([on, off]) => {
    const host = Object.assign(document.createElement('div'), {id: 'page-layer'});
    document.body.append(host);
    const cover = document.createElement('div');
    cover.popover = 'manual';
    for (const [name, value] of [['inset', '0'], ['width', '100vw'], ['height', '100vh'],
            ['margin', '0'], ['border', '0'], ['background', 'rgb(255, 255, 255)'],
            ['pointer-events', 'none']]) cover.style.setProperty(name, value);
    host.attachShadow({mode: 'closed'}).append(cover);
    window.__frames = 0;
    const tick = () => {
        if (!host.isConnected) return;
        const phase = window.__frames % (on + off);
        if (phase === 0) cover.showPopover();
        if (phase === on) cover.hidePopover();
        window.__frames++;
        requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
}"""


def test_a_cover_flipped_on_and_off_pauses_sharing_once_not_in_a_loop(joined: Joined) -> None:
    """A page that shows its cover over Stop sharing for 6 frames, hides it for 6, for 600
    frames: the widget raised at each covered report, and the report of Stop sharing shown in
    between reset the count: sharing never paused though the customer's Stop sharing was hidden
    half the time. Now sharing pauses once and stays paused while the page flips (no pause and
    resume at each flip to the agent), and goes on once the page stops."""
    page, agent = joined.customer.page, joined.agent.page
    expect(stop_button(page)).to_be_visible()
    record_statuses(agent)
    page.evaluate(FLIP, [6, 6])
    try:
        wait_until(page, lambda: page.evaluate("() => window.__frames") >= 600, timeout=120)
        seen = statuses(agent)
        pauses = [
            now
            for before, now in zip(["", *seen], seen, strict=False)
            if PAUSED_STATUS in now and PAUSED_STATUS not in before
        ]
        assert len(pauses) == 1, seen
        assert PAUSED_STATUS in seen[-1]
    finally:
        page.evaluate(PUT_BACK)
    expect(agent.locator("#status")).to_contain_text(LIVE_STATUS, timeout=30000)
    stop_button(page).click(trial=True, timeout=5000)


# What a page can do to the widget's own layer, reached through its host's open shadow root, to
# leave Stop sharing where the hit test finds it but the customer's eye does not.
STYLES_THE_WIDGET = {
    "opacity": "(layer) => layer.style.setProperty('opacity', '0.02', 'important')",
    "transform": "(layer) => layer.style.setProperty('transform', 'scale(0.01)', 'important')",
    "filter": "(layer) => layer.style.setProperty('filter', 'opacity(0.02)', 'important')",
    "content_visibility": (
        "(layer) => layer.style.setProperty('content-visibility', 'hidden', 'important')"
    ),
    "adopted_sheet": """(layer) => {
        const sheet = new CSSStyleSheet();
        sheet.replaceSync('.root, .banner { opacity: 0.02 !important; }');
        layer.shadowRoot.adoptedStyleSheets = [...layer.shadowRoot.adoptedStyleSheets, sheet];
    }""",
}


@pytest.mark.parametrize("how", list(STYLES_THE_WIDGET))
def test_a_page_that_styles_the_widgets_own_layer_out_of_sight_pauses_sharing(
    joined: Joined, how: str
) -> None:
    """Held: the page restyles the widget's inner layer (opacity, a transform, a filter,
    `content-visibility`, a sheet adopted into its shadow root) so that the browser's occlusion
    test does not find Stop sharing shown: sharing pauses, and goes on once the page lets go."""
    page, agent = joined.customer.page, joined.agent.page
    expect(stop_button(page)).to_be_visible()
    page.evaluate("""() => {
        const host = [...document.querySelectorAll('body > [data-tandem-ui]')]
            .find((el) => el.shadowRoot);
        const layer = host.shadowRoot.firstElementChild;
        window.__layer = layer;
        window.__layerStyle = layer.getAttribute('style');
        window.__layerSheets = [...layer.shadowRoot.adoptedStyleSheets];
    }""")
    page.evaluate(f"() => ({STYLES_THE_WIDGET[how]})(window.__layer)")
    try:
        expect(agent.locator("#status")).to_contain_text(PAUSED_STATUS)
    finally:
        page.evaluate("""() => {
            const layer = window.__layer;
            if (window.__layerStyle === null) layer.removeAttribute('style');
            else layer.setAttribute('style', window.__layerStyle);
            layer.shadowRoot.adoptedStyleSheets = window.__layerSheets;
        }""")
    expect(agent.locator("#status")).to_contain_text(LIVE_STATUS, timeout=30000)
    stop_button(page).click(trial=True, timeout=5000)
