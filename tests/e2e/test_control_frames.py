"""Remote control inside a same-origin frame of the page (docs/privacy.md, "remote control"):
rrweb records a same-origin frame's document with the page and the agent's mirror replays it,
so the agent's click on a button in the frame must reach that button on the customer's page (it
went to the `<iframe>` element: the console asked the mirror's document which element is at the
point, and the customer's SDK refused any element of the frame's document as gone). The control
rules hold inside the frame as on the page: a password field there is refused, a frame inside
a region marked `data-tandem-no-control` refuses every click."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, caught_up
from tests.e2e.test_masking_boxes import _assert_never_reached, _shared

PAGE = """<h1>Account</h1>
<iframe id="panel" src="panel.html" width="500" height="160" style="border: 7px solid #333;
  padding: 9px; margin-left: 40px"></iframe>
<div data-tandem-no-control>
  <iframe id="locked" src="panel.html" width="500" height="160"></iframe>
</div>
<p id="after">After the frames</p>"""

PANEL = """<!doctype html><html><body style="margin: 0">
<div data-tandem-unmask>
  <p style="margin: 30px 0 0 120px"><button type="button" id="plus">Add one</button>
  <span id="count">0</span></p>
  <input id="secret" type="password"> <input id="nick">
</div>
<script>
document.getElementById("plus").addEventListener("click", () => {
  const count = document.getElementById("count");
  count.textContent = String(Number(count.textContent) + 1);
});
</script>
</body></html>"""


def _click(agent: Party, target: Any) -> None:
    """The agent's mouse on the middle of `target` (a locator in the mirror, inside its frame)."""
    expect(agent.page.locator("#stage")).not_to_have_class(re.compile(r"\bnot-live\b"))
    box = target.bounding_box()
    assert box is not None
    agent.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def test_an_agents_click_in_a_same_origin_frame_reaches_its_element(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """The agent clicks the frame's "Add one" button in the mirror (the frame bordered, padded,
    moved off the page's edge): the customer's counter inside the frame goes up, once per
    click, and the mirror shows it; the agent types into the frame's shown field through the
    console's box laid over it. A click on the frame's password field is refused and nothing of
    it is revealed; the same button in a frame inside a `data-tandem-no-control` region is
    refused too."""
    from tests.e2e.test_control import grant

    (other_origin.root / "panel.html").write_text(PANEL)
    view = _shared(live, other_origin, customer, agent, PAGE)
    panel = customer.page.frame_locator("#panel")
    mirrored = view.frame_locator("#panel")
    expect(mirrored.locator("#plus")).to_be_visible()
    expect(view.frame_locator("#locked").locator("#plus")).to_be_visible()
    panel.locator("#secret").press_sequentially("Quartz-Lamp-93")
    caught_up(customer, view)
    grant(customer, agent)
    _click(agent, mirrored.locator("#plus"))
    expect(panel.locator("#count")).to_have_text("1")
    expect(mirrored.locator("#count")).to_have_text("1")
    _click(agent, mirrored.locator("#secret"))
    expect(agent.page.get_by_text("That is hidden from you or protected.")).to_be_visible()
    _click(agent, view.frame_locator("#locked").locator("#plus"))
    # Commands reach the page in order: once this click has, the one before it has too.
    _click(agent, mirrored.locator("#plus"))
    expect(panel.locator("#count")).to_have_text("2")
    expect(customer.page.frame_locator("#locked").locator("#count")).to_have_text("0")
    # Typing into the frame's shown field: the console's box sits over the mirrored field.
    _click(agent, mirrored.locator("#nick"))
    typing = agent.page.get_by_label("Type into the customer's field")
    expect(typing).to_be_visible()
    field, over = mirrored.locator("#nick").bounding_box(), typing.bounding_box()
    assert field is not None and over is not None
    assert abs(field["x"] - over["x"]) < 3 and abs(field["y"] - over["y"]) < 3, (field, over)
    typing.press_sequentially("Ada")
    expect(panel.locator("#nick")).to_have_value("Ada")
    expect(mirrored.locator("#nick")).to_have_value("Ada")
    caught_up(customer, view)
    _assert_never_reached(agent, view, r"(?i)quartz|lamp-93")


SCALED_PAGE = """<h1>Zoomed</h1>
<iframe id="zoomed" src="zoomed.html" width="500" height="400" style="border: 0; position: absolute;
  left: 0; top: 0; transform: scale(2); transform-origin: 0 0"></iframe>
<p>After the frame</p>"""

ZOOMED = """<!doctype html><html><body style="margin: 0">
<div data-tandem-unmask>
  <button type="button" id="plus" style="position: fixed; left: 30px; top: 20px">Add one</button>
  <span id="count" style="position: fixed; left: 30px; top: 60px">0</span>
  <button type="button" id="under" style="position: fixed; left: 200px; top: 40px">Under</button>
  <span id="under-count" style="position: fixed; left: 200px; top: 80px">0</span>
</div>
<script>
for (const [button, out] of [["plus", "count"], ["under", "under-count"]]) {
  document.getElementById(button).addEventListener("click", () => {
    const count = document.getElementById(out);
    count.textContent = String(Number(count.textContent) + 1);
  });
}
</script>
</body></html>"""


def test_clicks_in_a_frame_scaled_by_a_css_transform_are_mapped_as_drawn(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A frame drawn at twice its size (`transform: scale(2)`): the agent's click on its button
    in the mirror reaches that button (the console took the frame's pixels for the page's and
    asked the frame for the element at twice the distance), and a button the frame draws under
    the customer's banner is refused as covered (the customer's SDK looked for it at half the
    distance, on the open page, and let the click through)."""
    from tests.e2e.test_control import grant
    from tests.e2e.test_own_ui import center, modified_console_click

    (other_origin.root / "zoomed.html").write_text(ZOOMED)
    view = _shared(live, other_origin, customer, agent, SCALED_PAGE)
    panel = customer.page.frame_locator("#zoomed")
    mirrored = view.frame_locator("#zoomed")
    expect(mirrored.locator("#plus")).to_be_visible()
    grant(customer, agent)
    _click(agent, mirrored.locator("#plus"))
    expect(panel.locator("#count")).to_have_text("1")
    # The frame's "Under" button moved to where the banner's Stop sharing button is drawn.
    stop = customer.page.get_by_role("button", name="Stop sharing")
    x, y = center(stop.bounding_box())
    panel.locator("#under").evaluate(
        """(el, [x, y]) => {
            const box = el.getBoundingClientRect();
            el.style.left = `${x / 2 - box.width / 2}px`;
            el.style.top = `${y / 2 - box.height / 2}px`;
        }""",
        [x, y],
    )
    caught_up(customer, view)
    modified_console_click(
        agent,
        "(doc) => doc.getElementById('zoomed').contentDocument.getElementById('under')",
    )
    expect(agent.page.get_by_role("status")).to_contain_text(
        "covered by the customer's Tandem controls"
    )
    # The customer's answer is the refusal: the click was never made.
    expect(panel.locator("#under-count")).to_have_text("0")


TURNED_PAGE = """<h1>Turned</h1>
<div style="{around}">
<iframe id="turned" src="zoomed.html" width="500" height="400" style="border: 0;
  {style}"></iframe>
</div>
<p>After the frame</p>"""


@pytest.mark.parametrize(
    ("style", "around"),
    [
        ("transform: rotate(90deg)", ""),
        # CSS Motion Path turns what it moves too (`offset-rotate: auto` by default: along the
        # path), on the frame or around it; neither `transform` nor `rotate` says so.
        ("offset-path: path('M0,0 L100,100')", ""),
        ("", "offset-path: path('M0,0 L100,0'); offset-rotate: 180deg"),
    ],
    ids=["transform", "offset-path", "offset-rotate-around"],
)
def test_an_action_in_a_frame_a_transform_turns_counts_as_covered(
    live: RunningServer,
    other_origin: OtherOrigin,
    customer: Party,
    agent: Party,
    style: str,
    around: str,
) -> None:
    """A frame turned by a CSS transform is no upright rectangle on the customer's screen: where
    its element lies cannot be told by the frame's box, so whether Tandem's own UI covers it
    cannot either. The customer's SDK refuses the action as covered (it looked for the element
    as if the frame were not turned, and clicked)."""
    from tests.e2e.test_control import grant
    from tests.e2e.test_own_ui import modified_console_click

    (other_origin.root / "zoomed.html").write_text(ZOOMED)
    page = TURNED_PAGE.format(style=style, around=around)
    view = _shared(live, other_origin, customer, agent, page)
    expect(view.frame_locator("#turned").locator("#plus")).to_be_attached()
    grant(customer, agent)
    modified_console_click(
        agent, "(doc) => doc.getElementById('turned').contentDocument.getElementById('plus')"
    )
    expect(agent.page.get_by_role("status")).to_contain_text(
        "covered by the customer's Tandem controls"
    )
    expect(customer.page.frame_locator("#turned").locator("#count")).to_have_text("0")
