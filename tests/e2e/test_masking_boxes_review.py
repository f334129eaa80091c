"""The masking review of code boxes (docs/security.md): an attacker reading a customer's code
through the agent's mirror. Real widget shapes the exemptions of the code-box change (boxes
named a phone number, a birth date) or the four-box threshold let through, the page's joined
copy of the code in attributes and live regions, and boxes inserted by script after typing."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, caught_up
from tests.e2e.test_masking_boxes import _assert_never_reached, _shared

# The page joins the boxes into every place a site copies a code to.
JOIN = """<script>
const form = document.getElementById("otp");
const boxes = () => [...form.querySelectorAll("input.box")];
form.addEventListener("input", (e) => {
  const all = boxes();
  const next = all[all.indexOf(e.target) + 1];
  if (next && e.target.value.length >= (e.target.dataset.len || 1)) next.focus();
  const code = all.map((box) => box.value).join("");
  form.dataset.code = code;
  form.title = "code " + code;
  form.setAttribute("aria-label", "Code " + code);
  form.style.setProperty("--code", '"' + code + '"');
  document.getElementById("joined").value = code;
  document.getElementById("otp-out").value = code;
  document.getElementById("live").textContent = "Code complete " + code;
});
</script>"""


def _page(boxes: str, shown: bool) -> str:
    unmask = " data-tandem-unmask" if shown else ""
    return (
        f'<h1>Verify</h1><form id="otp" data-code=""{unmask}><div id="boxes">{boxes}</div>'
        '<input type="hidden" id="joined" value=""><output id="otp-out"></output>'
        '<div id="live" aria-live="polite"></div></form>'
        f"<p>After the code</p>{JOIN}"
    )


def _boxes(attrs: str, count: int, first: str = "") -> str:
    return "".join(
        f'<input class="box" id="b{n}" {first if (n == 1 and first) else attrs}>'
        for n in range(1, count + 1)
    )


def _type(customer: Party, pieces: list[str], code: str) -> None:
    for n, piece in enumerate(pieces, start=1):
        customer.page.locator(f"#b{n}").press_sequentially(piece)
    expect(customer.page.locator("#otp-out")).to_have_text(code)


def _leaks(code: str) -> tuple[str, ...]:
    # The code joined (whole or its first four digits) anywhere the agent decrypts.
    return (rf"(?<![\w-]){code[:4]}",)


CASES = {
    # An SMS code in six boxes a sloppy site names tel-local (autocomplete copied from a phone
    # form): one character each is no part of a phone number.
    "six one-digit boxes named tel-local": (
        _boxes('maxlength="1" inputmode="numeric" autocomplete="tel-local"', 6),
        ["7", "3", "0", "5", "1", "8"],
    ),
    # A PIN in boxes named bday-day (a copied date widget) holding one digit each.
    "four one-digit boxes named bday-day": (
        _boxes('maxlength="1" autocomplete="bday-day"', 4),
        ["7", "3", "0", "5"],
    ),
    # A code in 3 boxes of 2 digits and in 2 boxes of 3 ("123-456").
    "three boxes of two": (
        _boxes('maxlength="2" inputmode="numeric" data-len="2"', 3),
        ["73", "05", "18"],
    ),
    "two boxes of three": (
        _boxes('maxlength="3" inputmode="numeric" data-len="3"', 2),
        ["730", "518"],
    ),
    # A card in four boxes, cc-number on the first only, no maxlength (the page's script keeps 4).
    "card, cc-number on the first only": (
        _boxes(
            'inputmode="numeric" data-len="4"',
            4,
            'inputmode="numeric" data-len="4" autocomplete="cc-number"',
        ),
        ["4929", "7301", "5182", "6604"],
    ),
    # A PIN in boxes autocomplete="off" with a placeholder "0" (held before this review).
    "PIN, autocomplete off, placeholder 0": (
        _boxes('maxlength="1" autocomplete="off" placeholder="0"', 4),
        ["7", "3", "0", "5"],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_code_typed_in_boxes_is_not_read_where_the_page_joins_it(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party, case: str
) -> None:
    """Boxes in a form masked (the default): each box is hidden, and the code the page joins
    into `data-code`, `title`, `aria-label`, a style's custom property, a hidden input, an
    `<output>` and a live region ("Code complete 730518") is hidden there too."""
    boxes, pieces = CASES[case]
    code = "".join(pieces)
    view = _shared(live, other_origin, customer, agent, _page(boxes, shown=False))
    _type(customer, pieces, code)
    caught_up(customer, view)
    _assert_never_reached(agent, view, *_leaks(code))


SHOWN_CASES = [
    "six one-digit boxes named tel-local",
    "four one-digit boxes named bday-day",
    "card, cc-number on the first only",
    "PIN, autocomplete off, placeholder 0",
]


@pytest.mark.parametrize("case", SHOWN_CASES)
def test_a_code_typed_in_boxes_the_site_shows_shows_no_digits(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party, case: str
) -> None:
    """The same boxes in a form the site unmasks: boxes of one character (or a card's boxes
    beside one marked `cc-number`) are a code's pieces whatever the page names them."""
    boxes, pieces = CASES[case]
    code = "".join(pieces)
    view = _shared(live, other_origin, customer, agent, _page(boxes, shown=True))
    _type(customer, pieces, code)
    caught_up(customer, view)
    _assert_never_reached(agent, view, *_leaks(code), r"\"text\":\"\d")
    for n in range(1, len(pieces) + 1):
        assert not any(c.isdigit() for c in view.locator(f"#b{n}").input_value())


LATE = (
    """<h1>Verify</h1><form id="otp" data-code="" data-tandem-unmask><div id="boxes">
<input class="box" id="b1" maxlength="1"><input class="box" id="b2" maxlength="1">
</div><input type="hidden" id="joined" value=""><output id="otp-out"></output>
<div id="live"></div><button type="button" id="more">More boxes</button></form>
<p>After the code</p>
<script>
document.getElementById("more").addEventListener("click", () => {
  for (const n of [3, 4, 5, 6]) {
    const box = document.createElement("input");
    box.className = "box"; box.id = "b" + n; box.maxLength = 1;
    document.getElementById("boxes").append(box);
  }
});
</script>"""
    + JOIN
)


def test_boxes_inserted_after_the_first_digits_still_hide_the_code(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """Two boxes, the customer types in both, then the page adds four more (a group growing by
    script): the code the page joins is hidden (the first boxes, typed before they were a
    code's pieces, are read again as pieces), and so is every box's digit typed once there are
    four. Left (docs/security.md): the two digits typed while the page showed two boxes only
    reached the agent as they were typed; nothing then said they were a code's."""
    view = _shared(live, other_origin, customer, agent, LATE)
    customer.page.locator("#b1").press_sequentially("7")
    customer.page.locator("#b2").press_sequentially("3")
    customer.page.locator("#more").click()
    for n, digit in enumerate("0518", start=3):
        customer.page.locator(f"#b{n}").press_sequentially(digit)
    expect(customer.page.locator("#otp-out")).to_have_text("730518")
    caught_up(customer, view)
    _assert_never_reached(agent, view, r"(?<![\w-])7305", r"(?<![\w-])0518")
    for n in range(3, 7):
        assert not any(c.isdigit() for c in view.locator(f"#b{n}").input_value())
