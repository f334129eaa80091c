"""The page's popovers the browser shows itself, at a click on their invoker (docs/threat-model.md,
"Stop sharing stays within reach", sdk/src/share/popover-raises.ts): a `popovertarget` button
and a `commandfor` one (`command="show-popover"`), clicked by the customer or by the page's own
script (`button.click()`). The browser fires the popover's `beforetoggle` and shows it in the
same task; the widget's microtask runs between the two when the click is the customer's (no
script on the stack), after the show when it is the page's.

Held, honest: such a menu opened and closed six times over Stop sharing, the last left open,
pauses nothing and leaves Stop sharing on top to click. Held, hostile: the page's script clicking
an invoker at every animation frame to show a white cover over Stop sharing again (letting the
pointer through): Stop sharing is never drawn covered while sharing goes on."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LIVE_STATUS, Joined, caught_up
from tests.e2e.test_widget_reach import stop_button
from tests.e2e.test_widget_reach_attacks import (
    count_looks,
    paused_statuses,
    record_statuses,
    two_more_looks,
)
from tests.e2e.test_widget_reach_covers import stop_pixels

# A menu of the page's over `box` (Stop sharing's) and its invoker button, declared with
# `popovertarget` or with `commandfor` (`command`: `toggle-popover`).
INVOKER = """([box, invoker]) => {
    const button = Object.assign(document.createElement('button'), {id: 'menu-button',
        textContent: 'Menu'});
    Object.assign(button.style, {position: 'fixed', left: '8px', top: '8px'});
    if (invoker === 'popovertarget') button.setAttribute('popovertarget', 'page-menu');
    else {
        button.setAttribute('commandfor', 'page-menu');
        button.setAttribute('command', 'toggle-popover');
    }
    const menu = Object.assign(document.createElement('div'), {id: 'page-menu',
        textContent: 'Orders · Returns · Help'});
    menu.popover = 'manual';
    Object.assign(menu.style, {position: 'fixed', margin: '0', inset: 'auto',
        left: `${box.x - 20}px`, top: `${box.y - 20}px`,
        width: `${box.width + 40}px`, height: `${box.height + 40}px`,
        background: 'rgb(230, 240, 250)'});
    document.body.append(button, menu);
    window.__pageLayersGone = () => { button.remove(); menu.remove(); };
}"""


def click_invoker(page: Page, by: str) -> None:
    if by == "customer":
        page.locator("#menu-button").click()
    else:
        page.evaluate("() => document.getElementById('menu-button').click()")


@pytest.mark.parametrize("by", ["customer", "page_script"])
@pytest.mark.parametrize("invoker", ["popovertarget", "commandfor"])
def test_a_menu_its_invoker_opens_over_stop_sharing_pauses_nothing(
    joined: Joined, invoker: str, by: str
) -> None:
    page, agent = joined.customer.page, joined.agent.page
    stop = stop_button(page)
    expect(stop).to_be_visible()
    box = stop.bounding_box()
    assert box is not None
    record_statuses(agent)
    count_looks(page)
    page.evaluate(INVOKER, [box, invoker])
    try:
        for _ in range(6):
            click_invoker(page, by)
            expect(page.locator("#page-menu:popover-open")).to_have_count(1)
            click_invoker(page, by)
            expect(page.locator("#page-menu:popover-open")).to_have_count(0)
        click_invoker(page, by)
        expect(page.locator("#page-menu:popover-open")).to_have_count(1)
        two_more_looks(page)
        stop.click(trial=True, timeout=5000)  # over the menu: the customer's to click
        caught_up(joined.customer, joined.view)
        assert not paused_statuses(agent)
        expect(agent.locator("#status")).to_contain_text(LIVE_STATUS)
    finally:
        page.evaluate("() => window.__pageLayersGone?.()")


# A white cover over the whole page letting the pointer through, shown by the page's script
# clicking its `popovertarget` button again (hidden, then shown) at every animation frame.
COVER_BY_INVOKER = """() => {
    const button = Object.assign(document.createElement('button'), {textContent: 'Offer'});
    button.setAttribute('popovertarget', 'page-cover');
    Object.assign(button.style, {position: 'fixed', left: '8px', top: '8px'});
    const cover = Object.assign(document.createElement('div'), {id: 'page-cover',
        textContent: 'Special offer'});
    cover.popover = 'manual';
    for (const [name, value] of [['inset', '0'], ['width', '100vw'], ['height', '100vh'],
            ['margin', '0'], ['border', '0'], ['background', 'rgb(255, 255, 255)'],
            ['pointer-events', 'none']]) cover.style.setProperty(name, value);
    document.body.append(button, cover);
    window.__covers = 0;
    let covering = true;
    const again = () => {
        if (!covering) return;
        if (cover.matches(':popover-open')) button.click();
        button.click();
        window.__covers++;
        requestAnimationFrame(again);
    };
    requestAnimationFrame(again);
    window.__pageLayersGone = () => { covering = false; button.remove(); cover.remove(); };
}"""


def test_a_cover_the_pages_script_shows_with_its_invoker_at_every_frame_is_never_drawn_over_a_live_stop_sharing(  # noqa: E501
    joined: Joined,
) -> None:
    page, agent = joined.customer.page, joined.agent.page
    stop = stop_button(page)
    expect(stop).to_be_visible()
    shown = stop_pixels(page)
    record_statuses(agent)
    page.evaluate(COVER_BY_INVOKER)
    try:
        covered_while_live = 0
        for _ in range(20):
            if stop_pixels(page) != shown and not paused_statuses(agent):
                covered_while_live += 1
        assert page.evaluate("() => window.__covers") > 20
        assert covered_while_live == 0
    finally:
        page.evaluate("() => window.__pageLayersGone?.()")
    expect(agent.locator("#status")).to_contain_text(LIVE_STATUS, timeout=30000)
    stop.click(trial=True, timeout=5000)
