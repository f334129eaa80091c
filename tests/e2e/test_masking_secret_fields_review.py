"""Review of the eighth masking review's fixes (docs/security.md): what its rules missed on a
real page in Chromium, in a form the site shows (`data-tandem-unmask`): a security code, a
one-time code and a TAN named or labelled otherwise (one word, another language), a card number
typed in Arabic-Indic digits or written with zero-width spaces, and a password an autofill fills
(telling the page only `change`) then swapped for a text field after many other fields were
filled. Every byte the agent's console decrypted and the mirror are searched; the honest fields
beside them stay shown."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, caught_up, share
from tests.e2e.test_masking_secret_fields import MASK_PLACEHOLDER, _assert_never_reached, _shared

ARABIC_CARD = "".join(chr(0x660 + int(digit)) for digit in "4111111111111111")
ZW_CARD = "\u200b".join(["4111", "1111", "1111", "1111"])

CHECKOUT = f"""<h1>Pay</h1>
<form id="pay" data-tandem-unmask>
  <input id="sec" name="securitycode">
  <label for="crypto">Cryptogramme visuel</label><input id="crypto" name="champ_3">
  <input id="otp" name="otp" inputmode="numeric">
  <input id="tan" aria-label="mTAN">
  <label for="promo">Promo code</label><input id="promo" name="promoCode">
  <label for="zip">Code postal</label><input id="zip" name="zip">
  <textarea id="notes"></textarea>
</form>
<p id="saved">Saved card {ZW_CARD}</p>
<p>After the form</p>"""


def test_a_security_code_otp_or_tan_spelled_otherwise_and_other_scripts_card_digits_are_hidden(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """`securitycode` in one word, a French label, a field named `otp`, an `mTAN`: each showed
    what was typed; a card number typed in Arabic-Indic digits (an Arabic keyboard's) and one
    the page writes with zero-width spaces between its groups reached the agent as written. A
    promo code and a French postcode stay shown."""
    view = _shared(live, other_origin, customer, agent, CHECKOUT)
    page = customer.page
    secrets = (("#sec", "7319"), ("#crypto", "2846"), ("#otp", "590217"), ("#tan", "883164"))
    for field, typed in secrets:
        page.locator(field).press_sequentially(typed, delay=5)
    page.locator("#promo").press_sequentially("SPRING24", delay=5)
    page.locator("#zip").press_sequentially("75011", delay=5)
    page.locator("#notes").press_sequentially(f"Card {ARABIC_CARD} thanks", delay=5)
    expect(view.locator("#zip")).to_have_value("75011")
    expect(view.locator("#promo")).to_have_value("SPRING24")
    caught_up(customer, view)
    _assert_never_reached(
        agent,
        view,
        "7319",
        "2846",
        "590217",
        "883164",
        ARABIC_CARD[:7],
        "".join(f"\\\\u{ord(c):04x}" for c in ARABIC_CARD[:7]),
        "4111(\u200b|\\\\u200b)1111",
    )
    for field in ("#sec", "#crypto", "#otp", "#tan"):
        assert view.locator(field).input_value() == MASK_PLACEHOLDER, field


SWAP_LATE = """<form id="profile">FIELDS</form>
<form id="login" data-tandem-unmask>
  <input id="secret" type="password">
  <button type="button" id="show">Show</button>
</form>
<p>After the form</p>
<script>
  show.addEventListener("click", () => {
    const plain = document.createElement("input");
    plain.id = "plain";
    plain.value = secret.value;
    secret.replaceWith(plain);
  });
</script>""".replace(
    "FIELDS", "".join(f'<input id="p{i}" value="Profile-{i:02d}-entry">' for i in range(48))
)


def test_a_password_an_autofill_fills_then_swapped_behind_many_fields_stays_hidden(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """An autofill that sets the password and tells the page only `change` (no `input`), then
    the page's "Show" swaps the field for a text field before sharing; 48 filled fields come
    before it in the page: the value was not remembered at all (only `input` was heard), and a
    remembered one was pushed out of the 32 values kept by the others' before the swapped field
    was masked."""
    page = customer.page
    page.goto(other_origin.page("pay.html", SWAP_LATE, live, title="Sign in"))
    page.evaluate(
        """() => {
          const field = document.getElementById("secret");
          field.value = "Autofill-Otter-47";
          field.dispatchEvent(new Event("change", { bubbles: true }));
        }"""
    )
    page.locator("#show").click()
    expect(page.locator("#plain")).to_have_value("Autofill-Otter-47")
    view = share(customer, agent, live, page.evaluate("() => window.Tandem.start()"))
    expect(view.get_by_text("After the form")).to_be_attached()
    caught_up(customer, view)
    _assert_never_reached(agent, view, r"(?i)autofill-otter|otter-47")
    assert view.locator("#plain").input_value() == MASK_PLACEHOLDER


DISCS = """<style>.later { -webkit-text-security: square }</style>
<form data-tandem-unmask>
  <div id="editor" contenteditable="true" style="-webkit-text-security: disc"></div>
  <textarea id="memo"></textarea>
  <pin-box id="host"></pin-box>
  <input id="name" name="name">
</form>
<p>After the form</p>
<script>
  customElements.define("pin-box", class extends HTMLElement {
    constructor() {
      super();
      this.attachShadow({ mode: "open" }).innerHTML =
        "<style>input { -webkit-text-security: circle }</style><input id='inner' type='tel'>";
    }
  });
</script>"""


def test_text_drawn_as_discs_in_an_editor_a_late_class_or_a_shadow_roots_sheet_stays_hidden(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A `contenteditable` PIN box drawn as discs (a number pad with no password manager): its
    text went as an editor's the site shows; a textarea given a class that draws discs while
    shared, and a component's field drawn so by its shadow root's style sheet, are hidden from
    then on. The name typed beside them stays shown."""
    view = _shared(live, other_origin, customer, agent, DISCS)
    page = customer.page
    page.locator("#editor").press_sequentially("604418", delay=5)
    page.evaluate("() => document.getElementById('memo').classList.add('later')")
    page.locator("#memo").press_sequentially("Bramble-Quartz-33", delay=5)
    page.locator("#host").locator("#inner").press_sequentially("771902", delay=5)
    page.locator("#name").press_sequentially("Jane Public", delay=5)
    expect(view.locator("#name")).to_have_value("Jane Public")
    caught_up(customer, view)
    _assert_never_reached(agent, view, "604418", "6044", r"(?i)bramble|quartz-33", "771902")
