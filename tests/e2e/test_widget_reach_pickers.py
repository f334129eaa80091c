"""What opens in the top layer at the customer's press without an event the widget hears
(docs/threat-model.md, "Stop sharing stays within reach"): the customisable `<select>`'s picker
(`appearance: base-select`, its `::picker(select)`, a popover in the select's own shadow root), a
popover of a closed shadow root; and the page's modal layers in a closed shadow root.

Held: a picker styled over Stop sharing and kept open, opened by the customer's click or by the
page's script (`showPicker()`, in its handler of the customer's click elsewhere): the widget is
raised over it, sharing goes on and Stop sharing takes the click. Got through (honest), fixed:
choosing from a customisable `<select>` again and again, or opening a menu of a closed shadow root
at each click, paused sharing: the picker's `beforetoggle` is not the page's to hear, so each one
shown was a frame drawn over Stop sharing (its transparent `::backdrop`) before the cover watch
raised the widget, three within a second and the page counted as covering it. The widget is now
raised at the frame after each of the customer's presses too, before the picker's first frame is
drawn. A closed shadow root's tooltips shown by a timer after the customer's hover paused sharing
the same way: on a page the cover watch found covering Stop sharing lately, the widget is raised at
every frame for a while after each of the customer's inputs. A modal dialog or a fullscreen element
in a closed shadow root (the widget cannot move into it) pauses sharing, and nothing the page shows
behind it goes."""

from __future__ import annotations

import secrets

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LIVE_STATUS, Joined, agent_plaintext, caught_up
from tests.e2e.test_widget_reach import change_the_page, stop_button
from tests.e2e.test_widget_reach_attacks import (
    PAUSED_STATUS,
    count_looks,
    paused_statuses,
    record_statuses,
    two_more_looks,
)

# A customisable `<select>` of the page's (the page's CSP allows no inline style: an adopted
# sheet), its picker placed over `box` (Stop sharing's) when one is given; and a button of the
# page's whose click handler opens the picker with `showPicker()`.
SELECT = """(box) => {
    if (!CSS.supports('appearance', 'base-select')) throw new Error('no base-select');
    const sheet = new CSSStyleSheet();
    const over = box ? `#sizes::picker(select) { position: fixed; inset: auto; margin: 0;
        position-area: none; left: ${box.x - 20}px; top: ${box.y - 20}px;
        width: ${box.width + 40}px; height: ${box.height + 40}px;
        background: rgb(200, 230, 200); }` : '';
    sheet.replaceSync(`#sizes, #sizes::picker(select) { appearance: base-select; } ${over}`);
    document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    const select = Object.assign(document.createElement('select'), {id: 'sizes'});
    Object.assign(select.style, {position: 'fixed', left: '8px', top: '8px', width: '200px'});
    for (let i = 0; i < 8; i++) select.append(new Option(`Size ${i}`, `${i}`));
    const opener = Object.assign(document.createElement('button'), {id: 'choose-size',
        textContent: 'Choose a size'});
    Object.assign(opener.style, {position: 'fixed', left: '8px', top: '60px'});
    opener.addEventListener('click', () => select.showPicker());
    document.body.append(select, opener);
    window.__pageLayersGone = () => {
        select.remove();
        opener.remove();
        document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => s !== sheet);
    };
}"""


def picker_open(page: Page) -> bool:
    opened: bool = page.evaluate("() => document.getElementById('sizes').matches(':open')")
    return opened


def page_layers_gone(page: Page) -> None:
    page.evaluate("() => window.__pageLayersGone?.()")


@pytest.mark.parametrize("opened_by", ["customers_click", "page_script_show_picker"])
def test_a_select_picker_kept_open_over_stop_sharing_leaves_stop_sharing_on_top(
    joined: Joined, opened_by: str
) -> None:
    page, agent = joined.customer.page, joined.agent.page
    stop = stop_button(page)
    expect(stop).to_be_visible()
    box = stop.bounding_box()
    assert box is not None
    record_statuses(agent)
    count_looks(page)
    page.evaluate(SELECT, box)
    try:
        page.locator("#sizes" if opened_by == "customers_click" else "#choose-size").click()
        assert picker_open(page)
        two_more_looks(page)
        assert picker_open(page)  # kept open: the widget closed nothing of the page's
        stop.click(trial=True, timeout=5000)  # over the picker: the customer's to click
        caught_up(joined.customer, joined.view)
        assert not paused_statuses(agent)
        expect(agent.locator("#status")).to_contain_text(LIVE_STATUS)
    finally:
        page.keyboard.press("Escape")
        page_layers_gone(page)


# A menu of the page's in a closed shadow root (a popover the widget never hears of), opened and
# closed by its button's click, away from Stop sharing.
CLOSED_MENU = """() => {
    const host = Object.assign(document.createElement('div'), {id: 'account-menu'});
    Object.assign(host.style, {position: 'fixed', left: '8px', top: '8px'});
    const root = host.attachShadow({mode: 'closed'});
    const button = Object.assign(document.createElement('button'), {textContent: 'Account'});
    const menu = Object.assign(document.createElement('div'), {textContent: 'Orders · Sign out'});
    menu.popover = 'manual';
    Object.assign(menu.style, {position: 'fixed', margin: '0', inset: 'auto', left: '8px',
        top: '48px'});
    button.addEventListener('click', () => menu.togglePopover());
    root.append(button, menu);
    document.body.append(host);
    window.__menuOpen = () => menu.matches(':popover-open');
    window.__pageLayersGone = () => host.remove();
}"""


@pytest.mark.parametrize("layer", ["customisable_select", "closed_shadow_root_menu"])
def test_choosing_again_and_again_from_a_picker_or_a_closed_menu_does_not_pause_sharing(
    joined: Joined, layer: str
) -> None:
    page, agent = joined.customer.page, joined.agent.page
    expect(stop_button(page)).to_be_visible()
    record_statuses(agent)
    count_looks(page)
    try:
        if layer == "customisable_select":
            page.evaluate(SELECT, None)
            for i in range(6):
                page.locator("#sizes").click()
                expect(page.locator("#sizes:open")).to_have_count(1)
                page.get_by_role("option", name=f"Size {(i + 1) % 8}").click()
                expect(page.locator("#sizes:open")).to_have_count(0)
        else:
            page.evaluate(CLOSED_MENU)
            # Its button (closed to Playwright's locators too): the customer's mouse on it.
            button = page.locator("#account-menu").bounding_box()
            assert button is not None
            at = (button["x"] + button["width"] / 2, button["y"] + button["height"] / 2)
            for _ in range(6):
                page.mouse.click(*at)
                assert page.evaluate("() => window.__menuOpen()")
                page.mouse.click(*at)
                assert not page.evaluate("() => window.__menuOpen()")
        two_more_looks(page)
        caught_up(joined.customer, joined.view)
        assert not paused_statuses(agent)
        expect(agent.locator("#status")).to_contain_text(LIVE_STATUS)
    finally:
        page_layers_gone(page)


# A modal dialog or a fullscreen element of the page's in a closed shadow root: the widget cannot
# move into it (it does not see it), and the rest of the page is inert behind it.
CLOSED_MODAL = """async (what) => {
    const host = Object.assign(document.createElement('div'), {id: 'page-layer'});
    document.body.append(host);
    const layer = document.createElement(what === 'modal_dialog' ? 'dialog' : 'div');
    layer.append('We use cookies.',
        Object.assign(document.createElement('button'), {textContent: 'OK'}));
    host.attachShadow({mode: 'closed'}).append(layer);
    if (what === 'modal_dialog') layer.showModal();
    else await layer.requestFullscreen();
    window.__pageLayersGone = async () => {
        if (document.fullscreenElement) await document.exitFullscreen();
        host.remove();
    };
}"""


@pytest.mark.parametrize("what", ["modal_dialog", "fullscreen_element"])
def test_a_modal_layer_in_a_closed_shadow_root_pauses_sharing_until_it_goes(
    joined: Joined, what: str
) -> None:
    page, agent = joined.customer.page, joined.agent.page
    expect(stop_button(page)).to_be_visible()
    record_statuses(agent)
    marker = f"shown-behind-a-closed-modal-{secrets.token_hex(4)}"
    page.evaluate(CLOSED_MODAL, what)
    try:
        expect(agent.locator("#status")).to_contain_text(PAUSED_STATUS, timeout=15000)
        change_the_page(joined, marker)
        expect(agent.locator("#status")).to_contain_text(PAUSED_STATUS)
    finally:
        page.evaluate("() => window.__pageLayersGone?.()")
        page.evaluate("(id) => document.getElementById(id)?.remove()", marker)
    expect(agent.locator("#status")).to_contain_text(LIVE_STATUS, timeout=30000)
    stop_button(page).click(trial=True, timeout=5000)
    caught_up(joined.customer, joined.view)
    assert marker not in agent_plaintext(joined.agent)


# A toolbar of the page's in a closed shadow root: six items, each showing its tooltip (a popover
# the widget never hears of) 300 ms after the pointer enters it, away from Stop sharing, and
# hiding it when the pointer leaves.
CLOSED_TOOLTIPS = """() => {
    const host = Object.assign(document.createElement('div'), {id: 'toolbar'});
    Object.assign(host.style, {position: 'fixed', left: '8px', top: '8px', display: 'flex'});
    const root = host.attachShadow({mode: 'closed'});
    const tips = [];
    for (let i = 0; i < 6; i++) {
        const item = Object.assign(document.createElement('span'), {textContent: `Tool ${i}`});
        Object.assign(item.style, {display: 'inline-block', padding: '8px', width: '60px'});
        const tip = Object.assign(document.createElement('div'), {textContent: `About tool ${i}`});
        tip.popover = 'manual';
        Object.assign(tip.style, {position: 'fixed', margin: '0', inset: 'auto',
            left: `${8 + 80 * i}px`, top: '48px'});
        let timer = 0;
        item.addEventListener('pointerenter', () => {
            timer = setTimeout(() => tip.showPopover(), 300);
        });
        item.addEventListener('pointerleave', () => {
            clearTimeout(timer);
            if (tip.matches(':popover-open')) tip.hidePopover();
        });
        root.append(item, tip);
        tips.push(tip);
    }
    document.body.append(host);
    window.__tipOpen = (i) => tips[i].matches(':popover-open');
    window.__pageLayersGone = () => host.remove();
}"""


def test_tooltips_a_closed_shadow_root_shows_after_the_customers_hover_do_not_pause_sharing(
    joined: Joined,
) -> None:
    """Got through (honest): each tooltip, shown by a timer a while after the customer's
    pointer entered its item (no press), was drawn over Stop sharing (its transparent `::backdrop`)
    before the cover watch raised the widget, and three within a second paused sharing. The
    first one still is (a cover report); from then on, for a while after each of the customer's
    inputs, the widget is raised at every frame, before what the page shows is drawn."""
    page, agent = joined.customer.page, joined.agent.page
    expect(stop_button(page)).to_be_visible()
    record_statuses(agent)
    count_looks(page)
    page.evaluate(CLOSED_TOOLTIPS)
    try:
        bar = page.locator("#toolbar").bounding_box()
        assert bar is not None
        for round_ in range(2):
            for i in range(6):
                page.mouse.move(bar["x"] + 40 + 76 * i, bar["y"] + bar["height"] / 2)
                page.wait_for_function("(i) => window.__tipOpen(i)", arg=i, timeout=5000)
            page.mouse.move(500, 400 + round_)
        two_more_looks(page)
        caught_up(joined.customer, joined.view)
        assert not paused_statuses(agent)
        expect(agent.locator("#status")).to_contain_text(LIVE_STATUS)
    finally:
        page_layers_gone(page)
