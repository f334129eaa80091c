"""Promise 3, the customer can stop at any moment, one click: the page's own layers do not keep
Tandem's Stop sharing from the customer (docs/threat-model.md, "The page can cover its widget").

Each test is the page doing it, as a page script (most pages that do are not hostile: a cookie
or checkout `<dialog>` opened with showModal(), a video gone fullscreen): a modal dialog (the rest
of the page, the widget too, made inert), an element of the highest z-index later in the page, a
fullscreen element, a popover of the page's in the top layer, `inert` on the widget's host or the
body, the host taken out of the page or hidden. Got through, fixed: each of them covered the
widget or kept it from being clicked. The widget is now in the top layer (a manual popover,
raised above what the page shows there later), moves into the page's modal dialog or fullscreen
element (which alone are not inert then), up to `<html>` from under an inert body, and is put back
where the page took it out or restyled it. Where it still cannot be reached (a fullscreen
`<video>`, which shows no children), nothing of the page is sent and the agent is told so, until
the customer can reach it again.

"Reachable" is Playwright's own test before a click: the button is visible, stable, enabled and
the browser's hit test at it finds it (not something over it, not an inert page)."""

from __future__ import annotations

import secrets

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import LIVE_STATUS, Joined, agent_plaintext, caught_up
from tests.e2e.test_control import grant
from tests.e2e.test_workspace import wait_until

# What a page does to its widget, as its own script.
TAKES_THE_WIDGET = {
    "modal_dialog": """() => {
        const dialog = document.createElement('dialog');
        dialog.id = 'page-layer';
        const ok = Object.assign(document.createElement('button'), {textContent: 'OK'});
        dialog.append('We use cookies.', ok);
        document.body.append(dialog);
        dialog.showModal();
    }""",
    "highest_z_index": """() => {
        const cover = document.createElement('div');
        cover.id = 'page-layer';
        cover.style.cssText = 'position:fixed;inset:0;z-index:2147483647;background:#fff';
        document.body.append(cover);
    }""",
    "fullscreen_element": """async () => {
        const stage = document.createElement('div');
        stage.id = 'page-layer';
        stage.textContent = 'Product gallery';
        document.body.append(stage);
        await stage.requestFullscreen();
    }""",
    "popover": """() => {
        const layer = document.createElement('div');
        layer.id = 'page-layer';
        layer.popover = 'manual';
        layer.style.cssText = 'inset:0;width:100vw;height:100vh;margin:0;border:0;background:#fff';
        document.body.append(layer);
        layer.showPopover();
    }""",
    "inert_host": """() => {
        for (const host of document.querySelectorAll('body > [data-tandem-ui]')) host.inert = true;
    }""",
    "inert_body": "() => { document.body.inert = true; }",
    "host_removed": """() => {
        for (const host of document.querySelectorAll('[data-tandem-ui]')) host.remove();
    }""",
    "host_hidden": """() => {
        for (const host of document.querySelectorAll('body > [data-tandem-ui]')) {
            host.style.setProperty('display', 'none', 'important');
        }
    }""",
}

# The page's own layers taken away again (the shared session's next test finds the page as the
# fixture left it: no dialog of the page's, no fullscreen).
PUT_BACK = """async () => {
    if (document.fullscreenElement) await document.exitFullscreen();
    document.body.inert = false;
    document.getElementById('page-layer')?.remove();
}"""


# The widget's own words, which the agent never receives (tests/e2e/test_own_ui.py).
WIDGET_TEXTS = ("Stop sharing", "Sharing this page with", "tandem-title", ".banner")


def change_the_page(joined: Joined, marker: str) -> None:
    """A paragraph ``marker`` added to the customer's page, kept until the page sent a frame
    after it (an answer to the console's challenge, which goes after whatever waited to be
    sent): had the change been recorded, it went before that frame."""
    page = joined.customer.page
    sent = len(joined.customer.frames.sent)
    page.evaluate(
        "(id) => document.body.append("
        "Object.assign(document.createElement('p'), {id, textContent: id}))",
        marker,
    )
    wait_until(page, lambda: len(joined.customer.frames.sent) > sent, timeout=15)


def stop_button(page: Page) -> Locator:
    return page.locator("[data-tandem-ui] button.stop")


@pytest.mark.parametrize("attack", list(TAKES_THE_WIDGET))
def test_stop_sharing_stays_reachable_whatever_the_page_puts_over_it(
    joined: Joined, attack: str
) -> None:
    page = joined.customer.page
    expect(stop_button(page)).to_be_visible()
    page.evaluate(TAKES_THE_WIDGET[attack])
    # Reachable: Playwright's checks before a click (hit test included), without the click.
    stop_button(page).click(trial=True, timeout=5000)
    # And nothing was paused for it: the agent still sees the page live.
    expect(joined.agent.page.locator("#status")).to_contain_text(LIVE_STATUS)
    page.evaluate(PUT_BACK)
    caught_up(joined.customer, joined.view)
    # Moved into the page's layer and back, put back into the page: still none of the widget
    # reaches the agent (its host stays an empty box to the recorder).
    received = agent_plaintext(joined.agent)
    assert not [text for text in WIDGET_TEXTS if text in received]


# The element that has focus, looking into shadow roots: its text.
FOCUSED_TEXT = """() => {
    let active = document.activeElement;
    while (active?.shadowRoot?.activeElement) active = active.shadowRoot.activeElement;
    return active?.textContent ?? null;
}"""


def test_stop_sharing_over_a_modal_dialog_is_reached_from_the_keyboard(joined: Joined) -> None:
    """The keyboard's way, with a cookie dialog open (which keeps Tab inside itself, the browser's
    window aside): Tab reaches Stop sharing, Enter ends the session for both."""
    page = joined.customer.page
    page.evaluate(TAKES_THE_WIDGET["modal_dialog"])
    for _ in range(8):
        if page.evaluate(FOCUSED_TEXT) == "Stop sharing":
            break
        page.keyboard.press("Tab")
    assert page.evaluate(FOCUSED_TEXT) == "Stop sharing"
    # A popover of the page's shown meanwhile: the widget goes over it, focus stays where it was.
    page.evaluate("""async () => {
        const layer = document.createElement('div');
        layer.popover = 'manual';
        layer.textContent = 'Chat with us';
        document.body.append(layer);
        const shown = new Promise((resolve) => layer.addEventListener('toggle', resolve));
        layer.showPopover();
        await shown; // the widget saw it first (it listens on the document, capturing)
    }""")
    assert page.evaluate(FOCUSED_TEXT) == "Stop sharing"
    stop_button(page).click(trial=True, timeout=5000)
    page.keyboard.press("Enter")
    expect(page.get_by_text("You stopped sharing")).to_be_visible()
    expect(joined.agent.page.locator("#status")).not_to_contain_text(LIVE_STATUS)


def test_where_the_page_keeps_stop_sharing_out_of_reach_nothing_is_sent_and_the_agent_is_told(
    joined: Joined,
) -> None:
    """A fullscreen `<video>` shows no children: the widget cannot be in it."""
    page, agent = joined.customer.page, joined.agent.page
    page.evaluate("""async () => {
        const video = document.createElement('video');
        video.id = 'page-layer';
        document.body.append(video);
        await video.requestFullscreen();
    }""")
    expect(agent.locator("#status")).to_contain_text("cannot see Tandem's controls")
    # A change of the page meanwhile, kept until the customer's page sent a frame after it (an
    # answer to the console's challenge, which goes after whatever waited to be sent), then
    # taken away: nothing of it ever reaches the agent.
    marker = f"made-while-paused-{secrets.token_hex(4)}"
    change_the_page(joined, marker)
    page.evaluate("(id) => document.getElementById(id).remove()", marker)
    page.evaluate(PUT_BACK)
    expect(agent.locator("#status")).to_contain_text(LIVE_STATUS)
    stop_button(page).click(trial=True, timeout=5000)
    caught_up(joined.customer, joined.view)
    assert marker not in agent_plaintext(joined.agent)


def test_the_pages_own_backdrop_rule_does_not_paint_over_the_page(joined: Joined) -> None:
    """The widget's layer is a popover, which has a backdrop: a page's rule for its dialogs'
    backdrops (`::backdrop`, for every element) painted it over the whole page while the widget
    showed (the popover was the outer host, in the page's reach)."""
    page = joined.customer.page
    area = {"x": 20, "y": 200, "width": 200, "height": 100}  # the shop's page, away from the widget
    before = page.screenshot(clip=area, caret="initial")
    page.evaluate(
        "() => document.styleSheets[0].insertRule('::backdrop { background: rgb(255, 0, 0); }')"
    )
    assert page.screenshot(clip=area, caret="initial") == before


def test_control_is_taken_back_over_a_modal_dialog_by_escape(joined: Joined) -> None:
    """The other way out the widget promises (its banner says "Esc to stop"): with the page's
    modal dialog open (and focus in it), Esc takes control back, and Take back control is
    reachable too."""
    page, agent = joined.customer.page, joined.agent.page
    grant(joined.customer, joined.agent)
    page.evaluate(TAKES_THE_WIDGET["modal_dialog"])
    page.locator("[data-tandem-ui] button", has_text="Take back control").click(
        trial=True, timeout=5000
    )
    page.keyboard.press("Escape")
    expect(agent.get_by_role("status")).to_contain_text("The customer took back control.")
    page.evaluate(PUT_BACK)
