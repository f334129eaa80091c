"""Eighth masking review (docs/security.md): secrets an ordinary site keeps in fields that are no
password field, in a form the site shows (`data-tandem-unmask`): a card's security code or a
PIN named so, a field the page draws as discs (`-webkit-text-security`), a password the page
swaps for a text field before sharing starts. Each test performs it on a real page in Chromium
and searches every byte the agent's console decrypted (what a recording holds too) and the
mirror; the form's ordinary fields stay shown."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, agent_plaintext, caught_up, share

MASK_PLACEHOLDER = "\u2022" * 8


def _shared(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party, body: str
) -> Any:
    customer.page.goto(other_origin.page("pay.html", body, live, title="Pay"))
    view = share(customer, agent, live, customer.page.evaluate("() => window.Tandem.start()"))
    expect(view.get_by_text("After the form")).to_be_attached()
    return view


def _assert_never_reached(agent: Party, view: Any, *leaks: str) -> None:
    # An event's 13-digit time holds any 4 digits one time in a thousand: not page content.
    frames = re.sub(r'"timestamp":\d+', '"timestamp":0', agent_plaintext(agent))
    mirror = view.locator("html").evaluate("(el) => el.outerHTML")
    for where, seen in (("the frames", frames), ("the mirror", mirror)):
        for leak in leaks:
            found = re.search(leak, seen)
            context = seen[max(0, found.start() - 200) : found.end() + 80] if found else ""
            assert not found, f"{leak!r} reached the agent in {where}: {context}"


CHECKOUT = """<h1>Pay</h1>
<form id="pay" data-tandem-unmask>
  <label for="holder">Name on card</label><input id="holder" name="holder">
  <label for="zip">Pincode</label><input id="zip" name="pincode">
  <input id="cvv" name="cvv" inputmode="numeric" maxlength="4">
  <input id="cvc" name="card_cvc">
  <input id="sec" name="securityCode">
  <label for="f7">CVV</label><input id="f7" name="field_7">
  <input id="pin" name="pin" type="tel">
  <output id="echo"></output>
</form>
<p>After the form</p>
<script>
  // The page's own summary line copies what was typed (its choice; masked as a copy).
  pin.addEventListener("input", () => { echo.value = "PIN " + pin.value; });
</script>"""


def test_a_cards_security_code_or_a_pin_named_so_is_hidden_in_a_form_the_site_shows(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A checkout the site shows (so the agent can help with the name and address) names its
    card security code `cvv`, `card_cvc`, `securityCode` or labels it "CVV", without
    `autocomplete="cc-csc"`, and a bank's PIN is a `type="tel"` field named `pin`: each went to
    the agent as typed (only `autocomplete` and password names made a field sensitive). The
    name on the card and a field named `pincode` (an Indian postcode) stay shown."""
    view = _shared(live, other_origin, customer, agent, CHECKOUT)
    page = customer.page
    page.locator("#holder").press_sequentially("Jane Q Public", delay=5)
    page.locator("#zip").press_sequentially("560001", delay=5)
    for field, typed in (("cvv", "8371"), ("cvc", "5926"), ("sec", "6048"), ("f7", "3152")):
        page.locator(f"#{field}").press_sequentially(typed, delay=5)
    page.locator("#pin").press_sequentially("4729", delay=5)
    expect(view.locator("#holder")).to_have_value("Jane Q Public")
    expect(view.locator("#zip")).to_have_value("560001")
    caught_up(customer, view)
    _assert_never_reached(agent, view, "8371", "5926", "6048", "3152", "4729")
    for field in ("cvv", "cvc", "sec", "f7", "pin"):
        assert view.locator(f"#{field}").input_value() == MASK_PLACEHOLDER, field


DOTS = """<style>.dots { -webkit-text-security: disc }</style>
<form id="login" data-tandem-unmask>
  <label for="user">Customer number</label><input id="user">
  <input id="code" type="tel" inputmode="numeric" style="-webkit-text-security: disc">
  <input id="memorable" class="dots">
  <button type="button" id="show"
    onclick="memorable.classList.remove('dots'); memorable.value = memorable.value">Show</button>
  <p id="said"></p>
</form>
<p>After the form</p>
<script>
  memorable.addEventListener("input", () => { said.title = memorable.value; });
</script>"""


def test_a_field_the_page_draws_as_discs_stays_hidden_when_the_agent_takes_the_discs_off(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A bank keeps a passcode out of a password field (a number pad, no password manager's
    offer) and draws it as discs with `-webkit-text-security`, inline or from its style sheet:
    in a form the site shows, both went to the agent as typed. The agent, given control, then
    clicks the page's own "Show" button, which takes the discs off and writes the value again:
    it was drawn as a secret, it stays hidden (as a password turned to text does)."""
    from tests.e2e.test_control import agent_click, grant

    view = _shared(live, other_origin, customer, agent, DOTS)
    page = customer.page
    page.locator("#user").press_sequentially("C-1002", delay=5)
    page.locator("#code").press_sequentially("90417", delay=5)
    page.locator("#memorable").press_sequentially("Zorbq-Lantern", delay=5)
    expect(view.locator("#user")).to_have_value("C-1002")
    caught_up(customer, view)
    grant(customer, agent)
    agent_click(agent, view, "#show")
    expect(page.locator("#memorable")).not_to_have_class("dots")
    page.locator("#memorable").press_sequentially("-2", delay=5)
    caught_up(customer, view)
    _assert_never_reached(agent, view, "90417", r"(?i)zorbq|lantern")
    assert view.locator("#code").input_value() == MASK_PLACEHOLDER
    assert view.locator("#memorable").input_value() == MASK_PLACEHOLDER


SWAP = """<form id="login" data-tandem-unmask>
  <input id="user" name="user">
  <input id="secret" type="password">
  <button type="button" id="show">Show</button>
</form>
<p>After the form</p>
<script>
  // An older plugin's "show password": a new text field in the password field's place.
  show.addEventListener("click", () => {
    const plain = document.createElement("input");
    plain.id = "plain";
    plain.value = secret.value;
    secret.replaceWith(plain);
  });
</script>"""


def test_a_password_swapped_for_a_text_field_before_sharing_stays_hidden(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """The customer types a password, then the page's "Show" puts a new text field holding it
    in the password field's place, both before sharing starts: nothing on the new field says
    password, and the value went to the agent as a shown field's. What is typed into a password
    field from load is remembered (in the page only) and masked where it is copied."""
    page = customer.page
    page.goto(other_origin.page("pay.html", SWAP, live, title="Sign in"))
    page.locator("#user").press_sequentially("jane.public", delay=5)
    page.locator("#secret").press_sequentially("Swap-Harbour-61", delay=5)
    page.locator("#show").click()
    expect(page.locator("#plain")).to_have_value("Swap-Harbour-61")
    view = share(customer, agent, live, page.evaluate("() => window.Tandem.start()"))
    expect(view.get_by_text("After the form")).to_be_attached()
    expect(view.locator("#user")).to_have_value("jane.public")
    caught_up(customer, view)
    _assert_never_reached(agent, view, r"(?i)swap-harbour|harbour-61")
    assert view.locator("#plain").input_value() == MASK_PLACEHOLDER


NOTES = """<h1>Order notes</h1>
<form data-tandem-unmask>
  <textarea id="notes"></textarea>
  <input id="ref" name="reference">
</form>
<p id="saved">Saved card 5500\u00a00000\u00a00000\u00a00004</p>
<div><p id="stay">Stay 01.02.2024 - 18.03.2024</p><p>FILLER</p></div>
<p>After the form</p>""".replace("FILLER", "Our terms apply to every booking. " * 14)


def test_a_card_number_with_dots_or_full_width_digits_is_masked_in_shown_fields_and_text(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A customer types a card number into a shown notes field with dots between its groups,
    and in full-width digits (a Japanese IME's); the page writes a saved card with no-break
    spaces: only one space or dash between digits was looked for, so each went as written. A
    date range whose digits pass Luhn's check stays shown (in a paragraph whose nearby text holds
    no card: a card number split over elements is looked for in ancestors' text up to 400
    characters, and masks every digit under such an ancestor)."""
    view = _shared(live, other_origin, customer, agent, NOTES)
    page = customer.page
    page.locator("#notes").press_sequentially("Pay with 4111.1111.1111.1111 please", delay=5)
    wide = "".join(chr(0xFF10 + int(digit)) for digit in "4111111111111111")
    page.locator("#ref").press_sequentially(wide, delay=5)
    expect(view.locator("#notes")).to_have_value(re.compile("please$"))
    caught_up(customer, view)
    _assert_never_reached(
        agent,
        view,
        r"4111\.1111",
        r"\.1111\.",
        wide[:7],  # the first six digits may show, as a card typed in ASCII digits
        "5500(\u00a0|\\\\u00a0)0000",
    )
    expect(view.locator("#stay")).to_have_text("Stay 01.02.2024 - 18.03.2024")
