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
