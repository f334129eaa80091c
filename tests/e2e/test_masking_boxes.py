"""Codes typed one character per box, as real sites build them without `maxlength`: the length
kept by the page's script, the box said to be short by `pattern`, `type="number"` with `max`,
`size`, an inline width (react-otp-input), an `aria-label` ("Digit 1 of 6"), `one-time-code` on
the first of like boxes only; a single one-time-code field drawn as slots (input-otp, shadcn/ui).
Each test types the code on a real page in Chromium and searches every byte the agent's console
decrypted, and the mirror. Also: boxes the page names as a birth date or a phone number stay
shown, and an agent in control cannot make the page unmask code boxes by having it change their
attributes."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, agent_plaintext, caught_up, share

MASK = "\u2022"
MASK_PLACEHOLDER = MASK * 8
CODE = "730518"

# What each box of a shape carries ({n}: its number from 1); `first`: the first box's instead.
SHAPES: dict[str, tuple[str, str]] = {
    "pattern, one-time-code on the first": (
        'inputmode="numeric" pattern="[0-9]"',
        'inputmode="numeric" pattern="[0-9]" autocomplete="one-time-code"',
    ),
    "aria-label digit n of 6": ('aria-label="Digit {n} of 6"', ""),
    "number boxes 0-9": ('type="number" min="0" max="9"', ""),
    "size 1": ('size="1"', ""),
    "inline width (react-otp-input)": (
        'aria-label="Please enter OTP character {n}" autocomplete="off" style="width:1em"',
        "",
    ),
    "one-time-code on the first of like boxes": (
        'class="otp"',
        'class="otp" autocomplete="one-time-code"',
    ),
}

# Keeps one character a box and moves on, as such pages do; joins the code where it shows.
SCRIPT = """<script>
const boxes = [...document.querySelectorAll("#otp input")];
document.getElementById("otp").addEventListener("input", (e) => {
  e.target.value = e.target.value.slice(-1);
  const next = boxes[boxes.indexOf(e.target) + 1];
  if (next && e.target.value) next.focus();
  const code = boxes.map((box) => box.value).join("");
  document.getElementById("otp").dataset.code = code;
  document.getElementById("otp-out").value = code;
});
</script>"""


def _code_page(shape: str, shown: bool) -> str:
    each, first = SHAPES[shape]
    boxes = "".join(
        f'<span><input id="o{n}" {(first or each) if n == 1 else each.format(n=n)}></span>'
        for n in range(1, 7)
    )
    unmask = " data-tandem-unmask" if shown else ""
    return (
        f'<h1>Verify</h1><form id="otp" data-code=""{unmask}>{boxes}'
        f'<output id="otp-out"></output></form><p>After the code</p>{SCRIPT}'
    )


def _shared(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party, body: str
) -> Any:
    customer.page.set_viewport_size({"width": 1000, "height": 800})
    agent.page.set_viewport_size({"width": 1400, "height": 900})
    customer.page.goto(other_origin.page("boxes.html", body, live, title="Verify"))
    view = share(customer, agent, live, customer.page.evaluate("() => window.Tandem.start()"))
    expect(view.get_by_text(re.compile(r"^After the"))).to_be_attached()
    return view


def _assert_never_reached(agent: Party, view: Any, *leaks: str) -> None:
    frames = agent_plaintext(agent)
    mirror = view.locator("html").evaluate("(el) => el.outerHTML")
    for where, seen in (("the frames", frames), ("the mirror", mirror)):
        for leak in leaks:
            found = re.search(leak, seen)
            context = seen[max(0, found.start() - 200) : found.end() + 80] if found else ""
            assert not found, f"{leak!r} reached the agent in {where}: {context}"


def _type_code(customer: Party, code: str = CODE, joined: bool = True) -> None:
    for box, digit in enumerate(code, start=1):
        customer.page.locator(f"#o{box}").press_sequentially(digit)
    if joined:
        expect(customer.page.locator("#otp-out")).to_have_text(code)


# A box's own digit as rrweb sends it (an input event's text, a value attribute) or the code
# joined, whole or from its first two digits.
CODE_LEAKS = (r"(?<![\w-])73\d*(?!\w)", r"\"(?:text|value)\":\"\d\"", r"data-code\":\"\d")


@pytest.mark.parametrize("shape", SHAPES)
def test_code_boxes_without_maxlength_are_hidden_where_the_page_joins_them(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party, shape: str
) -> None:
    """Six boxes the page keeps to one digit each by script, in a form that is masked (the
    default): each box shows the placeholder, and the code the page joins into the form's
    `data-code` and an `<output>` is hidden too."""
    view = _shared(live, other_origin, customer, agent, _code_page(shape, shown=False))
    _type_code(customer)
    caught_up(customer, view)
    _assert_never_reached(agent, view, *CODE_LEAKS)
    assert view.locator("#otp-out").inner_text() == MASK_PLACEHOLDER


@pytest.mark.parametrize("shape", SHAPES)
def test_code_boxes_without_maxlength_the_site_shows_show_no_digits(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party, shape: str
) -> None:
    """The same boxes in a form the site unmasks (`data-tandem-unmask`): no box is a code or a
    card alone, yet together they are the code. Each box's digit is masked, and so is the page's
    copy of the code."""
    view = _shared(live, other_origin, customer, agent, _code_page(shape, shown=True))
    _type_code(customer)
    caught_up(customer, view)
    _assert_never_reached(agent, view, *CODE_LEAKS)
    for box in range(1, 7):
        assert not re.search(r"\d", view.locator(f"#o{box}").input_value())


SLOTS = """<h1>Verify</h1>
<div id="otp-box" CONTAINER style="position:relative;display:flex;gap:4px">
  <div class="group" style="display:flex;gap:4px">
    <div class="slot"></div><div class="slot"></div><div class="slot"></div>
    <div class="slot"></div><div class="slot"></div><div class="slot"></div>
  </div>
  <div style="position:absolute;inset:0">
    <input id="code" autocomplete="one-time-code" INPUT inputmode="numeric" pattern="^\\d+$"
      maxlength="6" style="position:absolute;inset:0;width:100%;color:transparent">
  </div>
</div>
<p>After the slots</p>
<script>
document.getElementById("code").addEventListener("input", (e) => {
  document.querySelectorAll(".slot").forEach((slot, i) => {
    slot.textContent = e.target.value[i] ?? "";
  });
});
</script>"""


@pytest.mark.parametrize(
    "marks",
    [
        pytest.param(("data-input-otp-container", "data-input-otp"), id="input-otp"),
        pytest.param(("", ""), id="unmarked"),
    ],
)
def test_a_code_field_drawn_as_slots_shows_no_digit_in_its_slots(
    live: RunningServer,
    other_origin: OtherOrigin,
    customer: Party,
    agent: Party,
    marks: tuple[str, str],
) -> None:
    """input-otp (shadcn/ui's InputOTP) and its ports: one transparent `one-time-code` field
    laid over slots that each draw one character of its value as page text. The field is
    hidden; each slot's single digit was too short to be found as a copy of the code."""
    body = SLOTS.replace("CONTAINER", marks[0]).replace("INPUT", marks[1])
    view = _shared(live, other_origin, customer, agent, body)
    customer.page.locator("#code").press_sequentially(CODE)
    expect(customer.page.locator(".slot").nth(5)).to_have_text(CODE[5])
    caught_up(customer, view)
    _assert_never_reached(agent, view, r"\"(?:textContent|text|value)\":\"\d\"", CODE_LEAKS[0])
    slots = view.locator(".slot").all_inner_texts()
    assert len(slots) == 6 and not any(re.search(r"\d", slot) for slot in slots), slots


NAMED_BOXES = """<h1>Details</h1><form data-tandem-unmask>
<div id="named">
  <input id="day" autocomplete="bday-day" maxlength="2">
  <input id="month" autocomplete="bday-month" maxlength="2">
  <input id="year" autocomplete="bday-year" maxlength="4">
  <input id="area" autocomplete="tel-area-code" maxlength="3">
  <input id="prefix" autocomplete="tel-local-prefix" maxlength="3">
  <input id="suffix" autocomplete="tel-local-suffix" maxlength="4">
</div>
<div id="dates">
  <input id="dd" placeholder="DD" maxlength="2"><input id="mm" placeholder="MM" maxlength="2">
  <input id="yyyy" placeholder="YYYY" maxlength="4"><input id="flat" maxlength="4">
</div>
<div id="otp">
  <input id="o1" maxlength="1"><input id="o2" maxlength="1"><input id="o3" maxlength="1">
  <input id="o4" maxlength="1"><input id="o5" maxlength="1"><input id="o6" maxlength="1">
</div>
</form><p>After the form</p>"""


def test_boxes_the_page_names_as_a_birth_date_or_a_phone_number_stay_shown(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """Short boxes, six at one depth, that the page names as what they are (`autocomplete`
    bday-day, tel-area-code...; a date's DD / MM / YYYY placeholders) in a form the site shows:
    they are not a code, the agent reads them. A code's six boxes beside them stay masked."""
    view = _shared(live, other_origin, customer, agent, NAMED_BOXES)
    typed = {
        "day": "13",
        "month": "12",
        "year": "1990",
        "area": "305",
        "prefix": "555",
        "suffix": "0199",
        "dd": "03",
        "mm": "07",
        "yyyy": "1985",
    }
    for field, text in typed.items():
        customer.page.locator(f"#{field}").press_sequentially(text)
    # No value typed above starts with a digit of the code: a box's first digit is all the
    # agent may read of it, and all the code's box may not show.
    _type_code(customer, "846297", joined=False)
    for field, text in typed.items():
        expect(view.locator(f"#{field}")).to_have_value(text)
    caught_up(customer, view)
    _assert_never_reached(agent, view, r"\"text\":\"[246789]\"")
    for box in range(1, 7):
        assert not re.search(r"\d", view.locator(f"#o{box}").input_value())


CONTROLLED = """<h1>Verify</h1><form id="otp" data-tandem-unmask>
<div>
  <input id="o1" maxlength="1"><input id="o2" maxlength="1"><input id="o3" maxlength="1">
  <input id="o4" maxlength="1"><input id="o5" maxlength="1"><input id="o6" maxlength="1">
</div>
<output id="otp-out"></output>
<button type="button" id="one-box">Paste a code instead</button>
</form><p>After the code</p>
<script>
const boxes = [...document.querySelectorAll("#otp input")];
document.getElementById("otp").addEventListener("input", (e) => {
  const next = boxes[boxes.indexOf(e.target) + 1];
  if (next && e.target.value) next.focus();
  document.getElementById("otp-out").value = boxes.map((box) => box.value).join("");
});
document.getElementById("one-box").addEventListener("click", () => {
  for (const box of boxes) {
    box.removeAttribute("maxlength");
    box.removeAttribute("autocomplete");
    box.value = box.value.trim();
  }
});
</script>"""


def test_an_agent_in_control_cannot_unmask_code_boxes_by_having_the_page_change_them(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """The agent, given control, clicks the page's own button that takes the `maxlength` off
    the code's boxes and writes their values again (as a page switching to one box does). The
    boxes were a code when the customer typed it: they stay one, the digits stay masked."""
    from tests.e2e.test_control import agent_click, grant

    view = _shared(live, other_origin, customer, agent, CONTROLLED)
    _type_code(customer)
    caught_up(customer, view)
    grant(customer, agent)
    agent_click(agent, view, "#one-box")
    expect(customer.page.get_by_text("clicked “Paste a code instead”")).to_be_visible()
    expect(customer.page.locator("#o1")).not_to_have_attribute("maxlength", "1")
    caught_up(customer, view)
    _assert_never_reached(agent, view, *CODE_LEAKS)
    for box in range(1, 7):
        assert not re.search(r"\d", view.locator(f"#o{box}").input_value())


REVEAL = """<h1>Sign in</h1><form data-tandem-unmask>
<input id="pw" type="password"><button type="button" id="show">Show password</button>
</form><p>After the form</p>
<script>
document.getElementById("show").addEventListener("click", () => {
  const field = document.getElementById("pw");
  field.type = "text";
  field.value = field.value;
});
</script>"""


def test_an_agent_in_control_revealing_a_password_by_the_pages_toggle_sees_no_password(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """The agent, given control, clicks the page's own "Show password" button in a form the
    site shows, after the customer typed: the field turns to `type="text"` and the page writes
    its value again. It was a password: still hidden (held)."""
    from tests.e2e.test_control import agent_click, grant

    view = _shared(live, other_origin, customer, agent, REVEAL)
    customer.page.locator("#pw").press_sequentially("Quartz-Lamp-93")
    caught_up(customer, view)
    grant(customer, agent)
    agent_click(agent, view, "#show")
    expect(customer.page.locator("#pw")).to_have_attribute("type", "text")
    caught_up(customer, view)
    _assert_never_reached(agent, view, r"(?i)quartz|lamp-93")
    assert view.locator("#pw").input_value() == MASK_PLACEHOLDER
