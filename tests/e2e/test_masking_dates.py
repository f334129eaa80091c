"""Rows of one-character boxes on a real page in Chromium (docs/privacy.md, "Codes typed in
boxes"): a date of birth typed one digit per box in a form the site shows reaches the agent as
the site's ordinary data, while a code's row beside it that calls itself a day does not; and
boxes that say nothing themselves, under a legend naming a verification code, are a code's
pieces: their digits and the code the page joins never reach what the agent decrypts."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, agent_plaintext, caught_up
from tests.e2e.test_masking_boxes import _assert_never_reached, _shared

# Moves to the next box once one holds a character (the row's boxes in page order), as such
# widgets do, and joins each row where the page shows it.
ADVANCE = """<script>
for (const row of document.querySelectorAll(".row")) {
  const boxes = [...row.querySelectorAll("input")];
  row.addEventListener("input", (e) => {
    e.target.value = e.target.value.slice(-1);
    const next = boxes[boxes.indexOf(e.target) + 1];
    if (next && e.target.value) next.focus();
    document.getElementById(row.id + "-out").value = boxes.map((box) => box.value).join("");
  });
}
</script>"""


def _date_boxes() -> str:
    parts = ["day"] * 2 + ["month"] * 2 + ["year"] * 4
    return "".join(
        f'<input id="d{n}" maxlength="1" inputmode="numeric" autocomplete="bday-{part}"'
        f' placeholder="{part[0].upper()}">'
        for n, part in enumerate(parts, start=1)
    )


DATE_PAGE = (
    "<h1>Your details</h1><form data-tandem-unmask>"
    '<fieldset id="dob" class="row"><legend>Date of birth</legend>'
    f'{_date_boxes()}</fieldset><output id="dob-out"></output>'
    '<div id="otp" class="row">'
    + "".join(f'<input id="o{n}" maxlength="1" name="otp" aria-label="day">' for n in range(1, 7))
    + '</div><output id="otp-out"></output></form>'
    f"<p>After the form</p>{ADVANCE}"
)


def test_a_date_of_birth_typed_one_digit_per_box_is_shown_and_a_code_calling_itself_a_day_is_not(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """Eight one-character boxes named `bday-day`, `bday-month`, `bday-year` (placeholders D D M
    M Y Y Y Y) in a form the site shows: the agent's mirror shows 13 03 1990 box by box (it
    showed a `•` in each, as a one-time code's). Six one-character boxes named `otp` whose
    `aria-label` says "day", beside it: no digit typed there reaches the agent."""
    view = _shared(live, other_origin, customer, agent, DATE_PAGE)
    for n, digit in enumerate("13031990", start=1):
        customer.page.locator(f"#d{n}").press_sequentially(digit)
    for n, digit in enumerate("846257", start=1):
        customer.page.locator(f"#o{n}").press_sequentially(digit)
    expect(customer.page.locator("#otp-out")).to_have_text("846257")
    for n, digit in enumerate("13031990", start=1):
        expect(view.locator(f"#d{n}")).to_have_value(digit)
    expect(view.locator("#dob-out")).to_have_text("13031990")
    caught_up(customer, view)
    assert "13031990" in agent_plaintext(agent)
    # The code's digits (none of them a digit of the date) and the code joined.
    _assert_never_reached(agent, view, r"\"(?:text|value)\":\"[24678]\"", r"(?<![\w-])8462")
    for n in range(1, 7):
        assert not re.search(r"\d", view.locator(f"#o{n}").input_value())


# Six boxes with no name, id, class or length, the page keeping one character in each by
# script, under a legend that says what they are; in a form the site shows, or not.
def _unnamed_page(shown: bool, legend: str = "Verification code") -> str:
    unmask = " data-tandem-unmask" if shown else ""
    boxes = '<input type="text" inputmode="numeric">' * 6
    return (
        f"<h1>Verify</h1><form{unmask}>"
        f'<fieldset id="verify" class="row"><legend>{legend}</legend>{boxes}</fieldset>'
        f'<output id="verify-out"></output></form><p>After the code</p>{ADVANCE}'
    )


@pytest.mark.parametrize("shown", [True, False], ids=["shown form", "masked form"])
def test_boxes_that_say_nothing_under_a_legend_naming_a_code_are_hidden(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party, shown: bool
) -> None:
    """Six identical boxes with nothing of their own that names them or their length, under the
    legend "Verification code": no box's digit and not the code the page joins into an
    `<output>` reach the agent. In a form the site shows, all reached it (nothing read the
    legend); in a form masked by default (each value hidden), the joined code was held."""
    view = _shared(live, other_origin, customer, agent, _unnamed_page(shown))
    boxes = customer.page.locator("#verify input")
    for n, digit in enumerate("730518"):
        boxes.nth(n).press_sequentially(digit)
    expect(customer.page.locator("#verify-out")).to_have_text("730518")
    caught_up(customer, view)
    _assert_never_reached(
        agent, view, r"\"(?:text|value)\":\"\d\"", r"(?<![\w-])7305", r"(?<![\w-])0518"
    )
    mirrored = view.locator("#verify input")
    for n in range(6):
        assert not re.search(r"\d", mirrored.nth(n).input_value())


@pytest.mark.parametrize("legend", ["Código de verificación", "Bestätigungscode"])
def test_boxes_under_a_legend_naming_a_code_in_the_pages_language_are_hidden(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party, legend: str
) -> None:
    """The same six boxes in a form the site shows, under a legend naming the code in Spanish or
    German: no box's digit and not the joined code reach the agent. Before, only English code
    words named a row a code's, and every digit reached it."""
    view = _shared(live, other_origin, customer, agent, _unnamed_page(True, legend))
    boxes = customer.page.locator("#verify input")
    for n, digit in enumerate("730518"):
        boxes.nth(n).press_sequentially(digit)
    expect(customer.page.locator("#verify-out")).to_have_text("730518")
    caught_up(customer, view)
    _assert_never_reached(
        agent, view, r"\"(?:text|value)\":\"\d\"", r"(?<![\w-])7305", r"(?<![\w-])0518"
    )
    mirrored = view.locator("#verify input")
    for n in range(6):
        assert not re.search(r"\d", mirrored.nth(n).input_value())
