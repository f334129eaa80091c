"""A field the site shows (`data-tandem-unmask`) whose value the page copies into the field's own
attributes (`data-value`, `aria-valuetext`, `value`) as the customer types: the copies are masked
as the value is (promise 2; docs/privacy.md). A card number typed key by key, and a long number,
showed their digits there while the value showed `•`."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, caught_up
from tests.e2e.test_masking_boxes import _assert_never_reached, _shared

PAGE = """<h1>Payment</h1><form id="pay" data-tandem-unmask>
<input id="card" name="card"><textarea id="note"></textarea>
</form><p id="preview"></p><p>After the form</p>
<script>
document.getElementById("pay").addEventListener("input", (e) => {
  e.target.dataset.value = e.target.value;
  e.target.setAttribute("aria-valuetext", "typed " + e.target.value);
  e.target.setAttribute("value", e.target.value);
  document.getElementById("preview").textContent = "You entered " + e.target.value;
});
</script>"""


def test_a_shown_fields_value_copied_into_its_own_attributes_is_masked_there_too(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """The customer types a card number key by key into a shown field (no `autocomplete`: the
    site did not say it is a card's) and a phone number into a shown textarea; the page copies
    each value into `data-value` and `aria-valuetext`. No run of 7 digits reaches the agent
    (each prefix of the card from its seventh digit was sent in `data-value` before)."""
    view = _shared(live, other_origin, customer, agent, PAGE)
    customer.page.locator("#card").press_sequentially("4929730151826604")
    customer.page.locator("#note").press_sequentially("call me on 0712345678 please")
    expect(customer.page.locator("#note")).to_have_attribute("data-value", re.compile("please"))
    caught_up(customer, view)
    _assert_never_reached(agent, view, r"4929730", r"0712345", r"2345678")
    expect(view.locator("#note")).to_have_attribute("data-value", re.compile("call me on"))


def test_a_shown_fields_long_number_is_masked_in_the_pages_preview_of_it(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """The page previews what is typed into the shown field as page text ("You entered
    4929730…"): the digits the field's value masks (a card's prefixes from the seventh digit, a
    long number) are masked in the preview too."""
    view = _shared(live, other_origin, customer, agent, PAGE)
    customer.page.locator("#card").press_sequentially("4929730151826604")
    customer.page.locator("#note").press_sequentially("call me on 0712345678")
    expect(customer.page.locator("#preview")).to_have_text("You entered call me on 0712345678")
    caught_up(customer, view)
    _assert_never_reached(agent, view, r"4929730", r"0712345", r"2345678")
    expect(view.locator("#preview")).to_contain_text("You entered call me on")


EDITOR = """<h1>Notes</h1><div id="ed" contenteditable="true" data-tandem-unmask
  style="min-height:2em;border:1px solid"></div><p id="preview"></p><p>After the form</p>
<script>
document.getElementById("ed").addEventListener("input", (e) => {
  document.getElementById("preview").textContent = "Preview: " + e.target.textContent;
});
</script>"""


def test_a_shown_editors_long_number_is_masked_in_the_pages_preview_of_it(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """An editor the site shows (`contenteditable`, `data-tandem-unmask`) masks a run of 7 or
    more digits typed there; the page's preview of the editor's text masks it too."""
    view = _shared(live, other_origin, customer, agent, EDITOR)
    customer.page.locator("#ed").click()
    customer.page.keyboard.type("call me on 0712345678")
    expect(customer.page.locator("#preview")).to_have_text("Preview: call me on 0712345678")
    caught_up(customer, view)
    _assert_never_reached(agent, view, r"0712345", r"2345678")
    expect(view.locator("#preview")).to_contain_text("Preview: call me on")
