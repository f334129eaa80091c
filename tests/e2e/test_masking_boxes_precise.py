"""Fourth masking review of code boxes (promise 2; docs/security.md), from both sides.

A site owner: ordinary short fields in a form the site shows stay shown to the agent even when
their names hold a code word or a piece's shape (a bank sort code in three boxes named
`sort-code-N`, a cart's quantity steppers of one digit, a split promo code, a QR code's boxes),
and a code's single letter does not mask that letter as a word across the page.
An attacker reading a code through the mirror: two one-character boxes, boxes named a code's only
by their wrapper (the length kept by script), and boxes named `otp` beside a utility class that
holds a word of the other kind (Tailwind's `size-10`) show no character."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, caught_up
from tests.e2e.test_masking_boxes import _assert_never_reached, _shared
from tests.e2e.test_masking_boxes_small import _leaks, _page, _type

ORDINARY = (
    """<h1>Details</h1><form id="details" data-tandem-unmask>
<div class="sort-code">
  <input id="sc1" name="sort-code-1" maxlength="2" inputmode="numeric">
  <input id="sc2" name="sort-code-2" maxlength="2" inputmode="numeric">
  <input id="sc3" name="sort-code-3" maxlength="2" inputmode="numeric">
</div>
<div id="cart">"""
    + "".join(
        f'<div class="stepper"><button type="button">-</button><input id="s{n}" '
        'class="stepper-input" type="number" min="1" max="9"><button type="button">+</button></div>'
        for n in range(1, 5)
    )
    + """</div>
<div class="qr-code-entry"><input id="qr1" class="qr-code" maxlength="4">
  <input id="qr2" class="qr-code" maxlength="4"></div>
<div class="gift"><input id="g1" name="promo-code-1" maxlength="4">
  <input id="g2" name="promo-code-2" maxlength="4"></div>
<div class="names"><input id="first" name="first-name"> <input id="last" name="last-name"></div>
<div class="address">
  <input id="postcode" name="postcode" maxlength="8">
  <input id="zipcode" class="zipcode" maxlength="5">
  <input id="pincode" name="pincode" maxlength="6"> <input id="discount" class="discount-code">
  <input id="spinner" class="spinner" maxlength="3"> <input id="shipping" class="shipping-notes">
  <input id="opinion" class="opinion"> <input id="barcode" class="barcode-search" maxlength="4">
  <select id="cc" class="country-code">
    <option value="+44">+44</option><option value="+91">+91</option></select>
</div>
</form><p>After the form</p>"""
)


def test_ordinary_fields_named_with_code_words_in_a_shown_form_stay_shown(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A sort code in three boxes of two named `sort-code-1..3`, four quantity steppers of one
    digit (`type="number" min="1" max="9"`: a code's digit may be 0, a quantity not), a QR code
    and a promo code in two boxes of four, a first and last name row, and single fields whose
    names hold `code`, `pin` or `digit` inside a longer word: the agent reads what is typed."""
    view = _shared(live, other_origin, customer, agent, ORDINARY)
    typed = {
        "sc1": "20",
        "sc2": "45",
        "sc3": "77",
        "s1": "2",
        "s2": "3",
        "s3": "1",
        "s4": "4",
        "qr1": "AB12",
        "qr2": "CD34",
        "g1": "SAVE",
        "g2": "2026",
        "first": "Ada",
        "last": "Byron",
        "postcode": "SW1A 1AA",
        "zipcode": "75011",
        "pincode": "560001",
        "discount": "WELCOME10",
        "spinner": "abc",
        "shipping": "Leave at door",
        "opinion": "Great",
        "barcode": "9780",
    }
    for field, text in typed.items():
        customer.page.locator(f"#{field}").press_sequentially(text)
    customer.page.locator("#cc").select_option("+91")
    for field, text in typed.items():
        expect(view.locator(f"#{field}")).to_have_value(text)
    expect(view.locator("#cc")).to_have_value("+91")


LEAKS: dict[str, tuple[str, list[str]]] = {
    # Two boxes of one character each, nothing naming them (a two-digit PIN).
    "two one-character boxes": (
        "".join(f'<input class="box" id="b{n}" maxlength="1">' for n in range(1, 3)),
        ["7", "3"],
    ),
    # Boxes named a code's only by their wrapper, the length kept by script (no maxlength).
    "wrapper named otp, no maxlength": (
        '<div class="otp-inputs">'
        + "".join(f'<input class="box form-control" id="b{n}">' for n in range(1, 7))
        + "</div>",
        ["7", "3", "0", "5", "1", "8"],
    ),
    # Named `otp` beside Tailwind's `size-10` (a word of the other kind in a utility class).
    "otp beside a size utility class": (
        "".join(f'<input class="box otp size-10 text-center" id="b{n}">' for n in range(1, 7)),
        ["7", "3", "0", "5", "1", "8"],
    ),
}


@pytest.mark.parametrize("case", LEAKS)
def test_codes_said_so_only_by_shape_or_wrapper_show_no_character(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party, case: str
) -> None:
    """The form is shown; no box's character and no copy the page joins reaches the agent."""
    boxes, pieces = LEAKS[case]
    view = _shared(live, other_origin, customer, agent, _page(boxes, False))
    _type(customer, pieces)
    caught_up(customer, view)
    _assert_never_reached(agent, view, *_leaks(pieces))
    for n in range(1, len(pieces) + 1):
        assert view.locator(f"#b{n}").input_value() in ("", "\u2022"), n


LETTERS = (
    """<h1>Verify</h1><form id="verify" data-tandem-unmask>
<div id="boxes">"""
    + "".join(
        f'<input class="box" id="b{n}" maxlength="1" aria-label="Character {n} of 6">'
        for n in range(1, 7)
    )
    + """</div></form>
<p id="echo"></p><p id="news"></p><button type="button" id="more">More</button>
<p>After the code</p>
<script>
const boxes = [...document.querySelectorAll("input.box")];
boxes.forEach((box, i) => box.addEventListener("input", () => {
  if (boxes[i + 1] && box.value) boxes[i + 1].focus();
  document.getElementById("echo").replaceChildren(...boxes.map((b) =>
    Object.assign(document.createElement("span"), {textContent: b.value})));
}));
document.getElementById("more").addEventListener("click", () => {
  document.getElementById("news").textContent = "Pick a plan: a month or a year, I think.";
});
</script>"""
)


def test_a_codes_single_letter_does_not_mask_that_word_across_the_page(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A code of letters holding `A` and `I` typed one letter a box: text the page writes after
    ("Pick a plan: a month or a year, I think.") reaches the agent whole, while the page's echo
    of each box (a span holding just the letter) and the boxes themselves show no letter."""
    view = _shared(live, other_origin, customer, agent, LETTERS)
    code = "QAXIZB"
    for n, letter in enumerate(code, start=1):
        customer.page.locator(f"#b{n}").press_sequentially(letter)
    expect(customer.page.locator("#echo span")).to_have_count(6)
    expect(customer.page.locator("#echo")).to_have_text(code)
    customer.page.locator("#more").click()
    caught_up(customer, view)
    expect(view.locator("#news")).to_have_text("Pick a plan: a month or a year, I think.")
    _assert_never_reached(agent, view, r"<span>[A-Za-z]</span>", r"\"(?:text|value)\":\"[A-Z]\"")
    for n in range(1, 7):
        assert view.locator(f"#b{n}").input_value() in ("", "\u2022"), n
