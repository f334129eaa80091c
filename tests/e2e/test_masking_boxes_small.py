"""Third masking review of code boxes (promise 2; docs/security.md): an attacker reading a code
through the agent's mirror where the site shows the form (`data-tandem-unmask`). Codes in fewer
than four boxes (three boxes of one digit, two of three, three of two), a code in two groups of
three boxes, a code of letters, boxes said to be a code's only by their class names, each present
at the first snapshot and added to the shown form later (then typed into); and the ordinary
short fields that must stay shown (a birth date's day and month, a postcode, quantities)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, caught_up
from tests.e2e.test_masking_boxes import _assert_never_reached, _shared

# Keeps each box to its length (data-len, 1 if unsaid: pages without maxlength keep it by
# script), moves on, and joins the code where sites copy it. Boxes are read at each event: boxes
# the page adds later count.
JOIN = """<script>
const form = document.querySelector("form");
form.addEventListener("input", (e) => {
  const all = [...form.querySelectorAll("input.box")];
  const len = Number(e.target.dataset.len || 1);
  e.target.value = e.target.value.slice(0, len);
  const next = all[all.indexOf(e.target) + 1];
  if (next && e.target.value.length >= len) next.focus();
  const code = all.map((box) => box.value).join("");
  form.dataset.code = code;
  document.getElementById("otp-out").value = code;
  document.getElementById("live").textContent = "Code " + code;
});
document.getElementById("add").addEventListener("click", () => {
  document.getElementById("boxes").append(document.getElementById("later").content.cloneNode(true));
});
</script>"""


def _page(boxes: str, late: bool, form_id: str = "verify", unmask: bool = True) -> str:
    mark = " data-tandem-unmask" if unmask else ""
    now, later = ("", boxes) if late else (boxes, "")
    return (
        f'<h1>Verify</h1><form id="{form_id}"{mark} data-code="">'
        f'<div id="boxes">{now}</div><output id="otp-out"></output><div id="live"></div>'
        '<button type="button" id="add">Enter the code</button></form>'
        f'<template id="later">{later}</template><p>After the code</p>{JOIN}'
    )


def _boxes(attrs: str, count: int, first: str = "") -> str:
    return "".join(
        f'<input class="box" id="b{n}" {first if (n == 1 and first) else attrs}>'
        for n in range(1, count + 1)
    )


# Two groups of three boxes ("123 456"), each box wrapped, the groups apart.
GROUPS = (
    '<div class="otp-row">'
    + "".join(
        '<div class="group">'
        + "".join(
            f'<span class="cell"><input class="box" id="b{g * 3 + n}" maxlength="1" '
            'inputmode="numeric"></span>'
            for n in range(1, 4)
        )
        + "</div>"
        + ('<span class="dash">-</span>' if g == 0 else "")
        for g in range(2)
    )
    + "</div>"
)

CASES: dict[str, tuple[str, list[str]]] = {
    # A three-digit code one digit per box (an app's short PIN).
    "three one-digit boxes": (_boxes('maxlength="1" inputmode="numeric"', 3), ["7", "3", "0"]),
    # one-time-code on the first box only, the length kept by script (no maxlength).
    "three boxes, one-time-code on the first": (
        _boxes('inputmode="numeric"', 3, 'inputmode="numeric" autocomplete="one-time-code"'),
        ["7", "3", "0"],
    ),
    "two boxes of three, one-time-code on the first": (
        _boxes(
            'maxlength="3" inputmode="numeric" data-len="3"',
            2,
            'maxlength="3" inputmode="numeric" data-len="3" autocomplete="one-time-code"',
        ),
        ["730", "518"],
    ),
    # Three boxes of two in a form the page names a code's ("otp"), nothing on the boxes.
    "three boxes of two in a form named otp": (
        _boxes('maxlength="2" inputmode="numeric" data-len="2"', 3),
        ["73", "05", "18"],
    ),
    "two groups of three boxes": (GROUPS, ["7", "3", "0", "5", "1", "8"]),
    # A code of letters, one per box.
    "six one-letter boxes": (_boxes('maxlength="1"', 6), ["Q", "X", "R", "T", "Z", "B"]),
    # Boxes said to be a code's only by their class names (react-otp-input's users, Bootstrap
    # pages: "otp-input"), no maxlength, autocomplete or inputmode.
    "class names only": (
        "".join(f'<input class="box otp-input form-control" id="b{n}">' for n in range(1, 7)),
        ["7", "3", "0", "5", "1", "8"],
    ),
    "class names only, three boxes": (
        "".join(f'<input class="box pin-digit" id="b{n}">' for n in range(1, 4)),
        ["7", "3", "0"],
    ),
}


def _type(customer: Party, pieces: list[str]) -> None:
    for n, piece in enumerate(pieces, start=1):
        customer.page.locator(f"#b{n}").press_sequentially(piece)
    expect(customer.page.locator("#otp-out")).to_have_text("".join(pieces))


def _leaks(pieces: list[str]) -> list[str]:
    code = "".join(pieces)
    # Each box's own value as rrweb sends it, and the code joined (from its first two pieces).
    found = [rf"\"(?:text|value)\":\"{re.escape(piece)}\"" for piece in set(pieces)]
    found.append(rf"(?i)(?<![\w-]){re.escape(pieces[0] + pieces[1])}")
    found.append(r"data-code\":\"[^\"\u2022]")
    return [*found, rf"(?i)Code {re.escape(code[:2])}"]


@pytest.mark.parametrize("late", [False, True], ids=["at-snapshot", "added-later"])
@pytest.mark.parametrize("case", CASES)
def test_a_short_or_grouped_code_in_a_shown_form_shows_no_character(
    live: RunningServer,
    other_origin: OtherOrigin,
    customer: Party,
    agent: Party,
    case: str,
    late: bool,
) -> None:
    """A form the site shows, its code boxes there at the first snapshot or added by the page
    later (the customer clicks "Enter the code"), the customer types: no box's character and no
    copy the page joins (`data-code`, an `<output>`, a live region) reaches the agent."""
    boxes, pieces = CASES[case]
    form_id = "otp" if "form named otp" in case else "verify"
    view = _shared(live, other_origin, customer, agent, _page(boxes, late, form_id))
    if late:
        customer.page.locator("#add").click()
        expect(view.locator("#b1")).to_be_attached()
    _type(customer, pieces)
    caught_up(customer, view)
    _assert_never_reached(agent, view, *_leaks(pieces))
    for n in range(1, len(pieces) + 1):
        value = view.locator(f"#b{n}").input_value()
        assert not re.search(r"[A-Za-z0-9]", value), (n, value)


@pytest.mark.parametrize("case", ["six one-letter boxes", "class names only"])
def test_a_letter_or_class_named_code_in_a_masked_form_is_hidden_where_the_page_joins_it(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party, case: str
) -> None:
    """The same boxes in a form masked by default (in a form named nothing): the page's joined
    copy of the code is found from its first character."""
    boxes, pieces = CASES[case]
    view = _shared(
        live, other_origin, customer, agent, _page(boxes, False, form_id="f", unmask=False)
    )
    _type(customer, pieces)
    caught_up(customer, view)
    _assert_never_reached(agent, view, *_leaks(pieces))


ORDINARY = """<h1>Details</h1><form id="details" data-tandem-unmask>
<div id="dob">
  <input id="dob-day" name="dob-day" maxlength="2" inputmode="numeric">
  <input id="dob-month" name="dob-month" maxlength="2" inputmode="numeric">
  <input id="dob-year" name="dob-year" maxlength="4" inputmode="numeric">
</div>
<div id="birth"><input id="bday" class="birth-day" maxlength="2">
  <input id="bmonth" class="birth-month" maxlength="2"></div>
<div id="post"><input id="pc1" class="postcode-part" maxlength="4">
  <input id="pc2" class="postcode-part" maxlength="4"></div>
<div id="zip"><input id="zip5" class="zip-code" maxlength="5"></div>
<div id="cart">
  <div class="row"><span>Tea</span><input id="q1" class="qty" type="number" min="1" max="99"></div>
  <div class="row"><span>Jam</span><input id="q2" class="qty" type="number" min="1" max="99"></div>
  <div class="row"><span>Oats</span><input id="q3" class="qty" type="number" min="1" max="99"></div>
  <div class="row"><span>Rice</span><input id="q4" class="qty" type="number" min="1" max="99"></div>
  <div class="row"><span>Figs</span><input id="q5" class="qty" type="number" min="1" max="99"></div>
</div>
</form><p>After the form</p>"""


def test_ordinary_short_fields_in_a_shown_form_stay_shown(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A birth date in three boxes and in two (named so, no autocomplete or placeholder), a
    postcode in two boxes of four, a zip code, five quantities of a cart (`type="number"`,
    `max="99"`): the site shows them, the agent reads them."""
    view = _shared(live, other_origin, customer, agent, ORDINARY)
    typed = {
        "dob-day": "13",
        "dob-month": "12",
        "dob-year": "1990",
        "bday": "24",
        "bmonth": "06",
        "pc1": "SW1A",
        "pc2": "1AA",
        "zip5": "75011",
        "q1": "2",
        "q2": "3",
        "q3": "12",
        "q4": "1",
        "q5": "4",
    }
    for field, text in typed.items():
        customer.page.locator(f"#{field}").fill("")
        customer.page.locator(f"#{field}").press_sequentially(text)
    for field, text in typed.items():
        expect(view.locator(f"#{field}")).to_have_value(text)


SHADOW = """<h1>Account</h1>
<acct-card id="card"></acct-card>
<p>After the card</p>
<script>
customElements.define("acct-card", class extends HTMLElement {
  connectedCallback() {
    const root = this.attachShadow({ mode: "open" });
    root.innerHTML = `<div data-tandem-unmask>
      <button type="button" id="plus">Add one</button> <span id="count">0</span>
      <input id="secret" type="password">
      <button type="button" id="show">Show</button>
      <input id="nick" value="">
    </div>`;
    root.getElementById("plus").addEventListener("click", () => {
      const count = root.getElementById("count");
      count.textContent = String(Number(count.textContent) + 1);
    });
    root.getElementById("show").addEventListener("click", () => {
      const field = root.getElementById("secret");
      field.type = "text";
      field.value = field.value;
    });
  }
});
</script>"""


def test_an_agents_click_in_a_shadow_root_reaches_its_element_and_reveals_no_password(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """Remote control into a web component's open shadow root: the agent's click reaches the
    button it aimed at (the page's counter goes up once); a click on the password field there is
    refused; the component's own "Show" button, clicked by the agent after the customer typed,
    turns the field to `type="text"` and writes its value again: it stays hidden."""
    from tests.e2e.test_control import agent_click, grant

    view: Any = _shared(live, other_origin, customer, agent, SHADOW)
    customer.page.locator("#secret").press_sequentially("Quartz-Lamp-93")
    caught_up(customer, view)
    grant(customer, agent)
    agent_click(agent, view, "#plus")
    expect(customer.page.locator("#count")).to_have_text("1")
    expect(view.locator("#count")).to_have_text("1")
    agent_click(agent, view, "#secret")
    expect(agent.page.get_by_text("That is hidden from you or protected.")).to_be_visible()
    agent_click(agent, view, "#show")
    expect(customer.page.locator("#secret")).to_have_attribute("type", "text")
    caught_up(customer, view)
    _assert_never_reached(agent, view, r"(?i)quartz|lamp-93")
    assert not re.search(r"(?i)quartz", view.locator("#secret").input_value())
    expect(customer.page.locator("#count")).to_have_text("1")


SLOTTED = """<h1>Account</h1>
<x-private id="p1"><span id="ssn">SSN 078-05-1120 Zebulon Quixote</span></x-private>
<x-private id="p2">Marmalade Horizon</x-private>
<x-plain><span id="plain">Visible Walrus</span></x-plain>
<p>After the page</p>
<script>
customElements.define("x-private", class extends HTMLElement {
  connectedCallback() {
    if (this.shadowRoot) return;
    this.attachShadow({ mode: "open" }).innerHTML =
      '<div class="card"><b>Private</b><div class="rr-mask"><slot></slot></div></div>';
  }
});
customElements.define("x-plain", class extends HTMLElement {
  connectedCallback() {
    if (this.shadowRoot) return;
    this.attachShadow({ mode: "open" }).innerHTML = "<div><slot></slot></div>";
  }
});
</script>"""


def test_text_a_web_component_draws_in_its_masked_region_is_masked(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A web component marks the region of its shadow root that shows what it is given
    (`<div class="rr-mask"><slot></slot></div>`): the customer sees the page's text there, in
    the masked region. That text (an element slotted there, the host's own text, an element
    slotted later) was sent as it is (it is the host's child in the DOM, not the region's)."""
    view = _shared(live, other_origin, customer, agent, SLOTTED)
    customer.page.evaluate(
        """() => document.getElementById("p1").append(
             Object.assign(document.createElement("em"), {textContent: " Pumpernickel"}))"""
    )
    expect(customer.page.locator("#p1 em")).to_have_count(1)
    caught_up(customer, view)
    _assert_never_reached(agent, view, r"Zebulon", r"1120", r"Marmalade", r"Pumpernickel")
    expect(view.locator("#plain")).to_have_text("Visible Walrus")


SHADOW_BOXES = """<h1>Verify</h1>
<form data-tandem-unmask><otp-row id="row"></otp-row>
<p>Code entered: <output id="joined"></output></p></form>
<p>After the page</p>
<script>
customElements.define("otp-row", class extends HTMLElement {
  connectedCallback() {
    if (this.shadowRoot) return;
    const root = this.attachShadow({ mode: "open" });
    // The boxes straight in the shadow root: no wrapper element, marked shown inside it.
    root.innerHTML = [1, 2, 3, 4, 5, 6]
      .map((n) => `<input id="b${n}" maxlength="1" data-tandem-unmask>`).join("");
    root.addEventListener("input", () => {
      document.getElementById("joined").textContent =
        [...root.querySelectorAll("input")].map((box) => box.value).join("");
    });
  }
});
</script>"""


def test_a_code_typed_in_boxes_straight_in_a_shadow_root_shows_no_digit(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A web component puts its six one-character boxes straight in its shadow root (no wrapper
    element) and marks them shown: they were never read as a code's pieces (the group was read
    from a parent element), so each digit and the page's copy of the whole code reached the
    agent."""
    view = _shared(live, other_origin, customer, agent, SHADOW_BOXES)
    for n, digit in enumerate("730518", start=1):
        customer.page.locator(f"otp-row #b{n}").press_sequentially(digit)
    expect(customer.page.locator("#joined")).to_have_text("730518")
    caught_up(customer, view)
    expect(view.locator("otp-row #b6")).to_have_value("•")
    _assert_never_reached(agent, view, r"730518", r'"text":"[0-9]"', r'value="[0-9]"')


RELABELLED = """<h1>Verify</h1>
<form data-tandem-unmask><pin-pad id="pad" aria-label="Quantity"></pin-pad></form>
<p>After the page</p>
<script>
customElements.define("pin-pad", class extends HTMLElement {
  connectedCallback() {
    if (this.shadowRoot) return;
    this.attachShadow({ mode: "open" }).innerHTML =
      '<div><input id="p1" maxlength="2" data-tandem-unmask>' +
      '<input id="p2" maxlength="2" data-tandem-unmask></div>';
  }
});
</script>"""


def test_boxes_of_a_component_relabelled_a_pin_later_show_no_digit_from_then_on(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """Two short boxes in a component labelled "Quantity" are shown; the page relabels the
    component "Enter your PIN" (outside the shadow root the boxes' answers were kept for, whose
    observer saw nothing): what is typed from then on is a code's, no digit shown."""
    view = _shared(live, other_origin, customer, agent, RELABELLED)
    customer.page.locator("pin-pad #p1").press_sequentially("12")
    customer.page.locator("pin-pad #p2").press_sequentially("34")
    caught_up(customer, view)
    expect(view.locator("pin-pad #p2")).to_have_value("34")
    customer.page.evaluate(
        "() => document.getElementById('pad').setAttribute('aria-label', 'Enter your PIN')"
    )
    customer.page.locator("pin-pad #p2").fill("")
    customer.page.locator("pin-pad #p2").press_sequentially("97")
    caught_up(customer, view)
    expect(view.locator("pin-pad #p2")).not_to_have_value("97")
    _assert_never_reached(agent, view, r'"text":"97?"', r'value="97"')


DIGIT_COMPONENTS = """<h1>Verify</h1>
<form data-tandem-unmask><div class="code-row">
<otp-digit></otp-digit><otp-digit></otp-digit><otp-digit></otp-digit>
<otp-digit></otp-digit><otp-digit></otp-digit><otp-digit></otp-digit></div>
<p>Code entered: <output id="joined"></output></p></form>
<p>After the page</p>
<script>
customElements.define("otp-digit", class extends HTMLElement {
  connectedCallback() {
    if (this.shadowRoot) return;
    // One box per component, straight in its own shadow root, marked shown inside it.
    this.attachShadow({ mode: "open" }).innerHTML = '<input maxlength="1" data-tandem-unmask>';
    this.shadowRoot.addEventListener("input", () => {
      document.getElementById("joined").textContent = [...document.querySelectorAll("otp-digit")]
        .map((digit) => digit.shadowRoot.querySelector("input").value).join("");
    });
  }
});
</script>"""


def test_a_code_typed_in_a_component_per_box_shows_no_digit(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """Six `<otp-digit>` components, each drawing one box in its own shadow root: each box was
    alone in its tree (the look for its row stopped at the shadow root), so each digit, and the
    page's copy of the whole code, reached the agent."""
    view = _shared(live, other_origin, customer, agent, DIGIT_COMPONENTS)
    for n, digit in enumerate("730518", start=1):
        customer.page.locator(f"otp-digit:nth-of-type({n}) input").press_sequentially(digit)
    expect(customer.page.locator("#joined")).to_have_text("730518")
    caught_up(customer, view)
    expect(view.locator("otp-digit:nth-of-type(6) input")).to_have_value("•")
    _assert_never_reached(agent, view, r"730518", r'"text":"[0-9]"', r'value="[0-9]"')


def test_a_code_typed_in_a_component_per_box_two_wrappers_deep_shows_no_digit(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """The same six components, each drawing its box two wrappers deep in its shadow root
    (`<div class="field"><div class="box"><input>`, a design system's markup): left by the
    seventh review, each digit and the page's copy of the code reached the agent. The innermost
    of a chain of wrappers around a component's one box now counts as the component's wrapper."""
    body = DIGIT_COMPONENTS.replace(
        "innerHTML = '<input maxlength=\"1\" data-tandem-unmask>'",
        'innerHTML = \'<style>.box{display:inline-block}</style><div class="field">'
        '<div class="box"><input maxlength="1" data-tandem-unmask></div></div>\'',
    )
    assert body != DIGIT_COMPONENTS
    view = _shared(live, other_origin, customer, agent, body)
    for n, digit in enumerate("640271", start=1):
        customer.page.locator(f"otp-digit:nth-of-type({n}) input").press_sequentially(digit)
    expect(customer.page.locator("#joined")).to_have_text("640271")
    caught_up(customer, view)
    expect(view.locator("otp-digit:nth-of-type(6) input")).to_have_value("•")
    _assert_never_reached(agent, view, r"640271", r'"text":"[0-9]"', r'value="[0-9]"')
