"""Masking vectors a third review tried: a value typed in pieces (a one-time code one digit per
box, a card number in four boxes) that the page joins, a card field with no telltale name copied
into CSS and SVG, a password written into a style sheet's selector, a textarea's default text, an
editor inside a shadow root, the page's path rewritten to hold the card. Each test performs it
on a real page and searches every byte the agent's console decrypted, and the mirror."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, agent_plaintext, caught_up, share

MASK_PLACEHOLDER = "\u2022" * 8

PAGE = """<h1>Pay</h1>
<form id="otp" data-code="">
  <span><input id="o1" inputmode="numeric" maxlength="1"></span>
  <span><input id="o2" inputmode="numeric" maxlength="1"></span>
  <span><input id="o3" inputmode="numeric" maxlength="1"></span>
  <span><input id="o4" inputmode="numeric" maxlength="1"></span>
  <span><input id="o5" inputmode="numeric" maxlength="1"></span>
  <span><input id="o6" inputmode="numeric" maxlength="1"></span>
  <output id="otp-out"></output>
</form>
<div id="card-box" data-card="">
  <input id="c1" maxlength="4" inputmode="numeric"><input id="c2" maxlength="4" inputmode="numeric">
  <input id="c3" maxlength="4" inputmode="numeric"><input id="c4" maxlength="4" inputmode="numeric">
  <span id="card-echo"></span>
</div>
<input id="cc" autocomplete="cc-number">
<input id="pw" type="password">
<style id="pw-style"></style>
<div id="prop"></div>
<textarea id="ta">RECOVERY-QWERTY-UIOP</textarea>
<x-editor></x-editor>
<svg width="300" height="30"><text id="svg-text" x="0" y="20"></text></svg>
<p>After the form</p>
<script>
customElements.define("x-editor", class extends HTMLElement {
  connectedCallback() {
    if (this.shadowRoot) return;
    this.attachShadow({ mode: "open" }).innerHTML =
      '<div id="inner" contenteditable="true" style="min-height:2em;border:1px solid"></div>';
  }
});
const joined = (ids) => ids.map((id) => document.getElementById(id).value).join("");
document.getElementById("otp").addEventListener("input", () => {
  const code = joined(["o1", "o2", "o3", "o4", "o5", "o6"]);
  document.getElementById("otp").dataset.code = code;
  document.getElementById("otp-out").value = code;
});
document.getElementById("card-box").addEventListener("input", () => {
  const card = joined(["c1", "c2", "c3", "c4"]);
  document.getElementById("card-box").dataset.card = card;
  document.getElementById("card-echo").textContent = card;
  if (card.length === 16) history.replaceState(null, "", "/pay/" + card);
});
document.getElementById("cc").addEventListener("input", (e) => {
  document.getElementById("prop").style.setProperty("--v", "'" + e.target.value + "'");
  document.getElementById("svg-text").textContent = "Card " + e.target.value;
});
document.getElementById("pw").addEventListener("input", (e) => {
  document.getElementById("pw-style").textContent =
    'input[value="' + e.target.value + '"] { color: red }';
});
</script>"""


def _shared(live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party) -> Any:
    customer.page.goto(other_origin.page("pay.html", PAGE, live, title="Pay"))
    view = share(customer, agent, live, customer.page.evaluate("() => window.Tandem.start()"))
    expect(view.get_by_text("After the form")).to_be_attached()
    return view


def _assert_never_reached(agent: Party, view: Any, *leaks: str) -> None:
    frames = agent_plaintext(agent)
    mirror = view.locator("html").evaluate("(el) => el.outerHTML")
    for where, seen in (("the frames", frames), ("the mirror", mirror)):
        for leak in leaks:
            found = re.search(leak, seen)
            context = seen[max(0, found.start() - 200) : found.end() + 80] if found else ""
            assert not found, f"{leak!r} reached the agent in {where}: {context}"


def test_a_code_typed_one_digit_per_box_is_hidden_where_the_page_joins_it(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """Six boxes of one digit (no telltale name): each piece is one digit, too short to be looked
    for, but the page writes the code as it grows into the form's `data-code` and an `<output>`."""
    view = _shared(live, other_origin, customer, agent)
    for box, digit in enumerate("730518", start=1):
        customer.page.locator(f"#o{box}").press_sequentially(digit)
    expect(customer.page.locator("#otp-out")).to_have_text("730518")
    caught_up(customer, view)
    _assert_never_reached(agent, view, r"(?<!\d)730518", r"data-code\":\"\d", r"\"73\d*\"")
    assert view.locator("#otp-out").inner_text() == MASK_PLACEHOLDER
    assert view.locator("#otp").get_attribute("data-code") == MASK_PLACEHOLDER


def test_a_card_typed_in_four_boxes_is_hidden_where_the_page_joins_it_and_in_the_path(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """Four boxes of four digits, none a card alone; the page copies the whole into a `data-*`, an
    echo and the page's path (`history.replaceState` to `/pay/4111…`)."""
    view = _shared(live, other_origin, customer, agent)
    for box, part in enumerate(("4111", "1111", "1111", "1111"), start=1):
        customer.page.locator(f"#c{box}").press_sequentially(part, delay=10)
    expect(customer.page).to_have_url(re.compile(r"/pay/4111111111111111$"))
    caught_up(customer, view)
    _assert_never_reached(agent, view, r"4111111111111111", r"(?<!\d)(4111|1111)(?!\d)")


def test_a_card_field_with_no_telltale_name_is_hidden_in_css_and_svg_copies(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """`autocomplete="cc-number"`, not a password, no name: its value copied into a CSS custom
    property (`style="--v: '5555…'"`) and an inline SVG `<text>`."""
    view = _shared(live, other_origin, customer, agent)
    customer.page.locator("#cc").press_sequentially("5555555555554444", delay=10)
    expect(customer.page.locator("#svg-text")).to_have_text("Card 5555555555554444")
    caught_up(customer, view)
    _assert_never_reached(agent, view, r"(?<!\d)(5555|4444)(?!\d)", "5555555555554444")


def test_a_password_written_into_a_style_sheet_selector_never_reaches_the_agent(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """The page writes `input[value="…"]` rules from the password as it is typed (CSS keylogging
    turned around): each start and the whole."""
    view = _shared(live, other_origin, customer, agent)
    customer.page.locator("#pw").press_sequentially("Zebra-Quartz-77", delay=10)
    expect(customer.page.locator("#pw")).to_have_value("Zebra-Quartz-77")
    written = customer.page.locator("#pw-style").evaluate("(el) => el.textContent")
    assert "Zebra-Quartz-77" in written
    caught_up(customer, view)
    _assert_never_reached(agent, view, "(?i)zeb", "(?i)quartz", r"value=\\?\"[^\u2022\\\"]")


def test_a_textareas_default_text_and_a_shadow_roots_editor_stay_hidden(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A textarea's text as served (a recovery code) and what is typed into a `contenteditable`
    inside a web component's open shadow root."""
    view = _shared(live, other_origin, customer, agent)
    customer.page.locator("x-editor #inner").click()
    customer.page.keyboard.type("ShadowSecretWord 4012888888881881", delay=10)
    expect(customer.page.locator("x-editor #inner")).to_contain_text("4012888888881881")
    caught_up(customer, view)
    _assert_never_reached(
        agent,
        view,
        "RECOVERY",
        "QWERTY",
        "ShadowSecret",
        r"(?<!\d)(4012|1881)(?!\d)",
        "4012888888881881",
    )


PIN_PAD = """<h1>Enter your PIN</h1>
<div id="pin" role="spinbutton" aria-label="PIN" tabindex="0" aria-valuenow="" aria-valuetext=""
  data-entered=""></div>
<div id="keys"></div>
<p>After the pad</p>
<script>
const pin = document.getElementById("pin");
for (const digit of "0123456789") {
  const key = document.createElement("button");
  Object.assign(key, { type: "button", textContent: digit, id: "key-" + digit });
  key.onclick = () => {
    const entered = pin.dataset.entered + digit;
    pin.dataset.entered = entered;
    pin.setAttribute("aria-valuenow", entered);
    pin.setAttribute("aria-valuetext", entered);
    pin.textContent = "\\u2022".repeat(entered.length);
  };
  document.getElementById("keys").append(key);
}
</script>"""


def test_a_pin_pads_value_in_its_aria_attributes_never_reaches_the_agent(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A page's own PIN widget (`role="spinbutton"`, `aria-label="PIN"`, no field at all): the
    dots it shows are fine, but its `aria-valuenow`, `aria-valuetext` and `data-*` are the PIN."""
    customer.page.goto(other_origin.page("pin.html", PIN_PAD, live, title="PIN"))
    view = share(customer, agent, live, customer.page.evaluate("() => window.Tandem.start()"))
    expect(view.get_by_text("After the pad")).to_be_attached()
    for digit in "4729":
        customer.page.locator(f"#key-{digit}").click()
    expect(customer.page.locator("#pin")).to_have_attribute("aria-valuetext", "4729")
    caught_up(customer, view)
    _assert_never_reached(agent, view, r"aria-value(now|text)\\?\"?[=:]\\?\"\d", r"(?<!\d)472")


ELSEWHERE = """<h1>More</h1>
<label for="pin">PIN</label><input id="pin" type="password" inputmode="numeric">
<meter id="m" min="0" max="9999" value="0"></meter>
<progress id="pr" max="9999" value="0"></progress>
<input id="pw" type="password" name="password">
<div id="wrap"><input type="hidden" id="tok" value="tok_9f8e7d6c5b4a3921"><span>x</span></div>
<select id="acct"><option value="">pick</option>
  <option value="DE89370400440532013000">Main account</option></select>
<input type="range" id="rg" min="0" max="9" value="0" aria-label="PIN digit">
<p id="sel">Select me</p>
<p>After</p>
<script>
document.getElementById("pin").addEventListener("input", (e) => {
  document.getElementById("m").setAttribute("value", e.target.value);
  document.getElementById("pr").setAttribute("value", e.target.value);
});
document.getElementById("pw").addEventListener("change", (e) => {
  history.pushState(null, "", "/reset/" + encodeURIComponent(e.target.value));
});
document.getElementById("wrap").dataset.token = document.getElementById("tok").value;
document.getElementById("acct").addEventListener("change", (e) => {
  document.title = "Account " + e.target.value;
  history.replaceState(null, "", location.pathname + "#acct=" + e.target.value);
  document.getElementById("sel").dataset.acct = e.target.value;
});
document.getElementById("rg").addEventListener("input", (e) => {
  document.getElementById("sel").setAttribute("aria-valuenow", e.target.value);
});
</script>"""


def test_hidden_values_copied_into_meters_paths_titles_and_fragments_stay_hidden(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A PIN copied into a `<meter>`'s and a `<progress>`'s `value`, a password pushed into the
    page's path (`/reset/Zebra…`), a hidden input's token copied into its wrapper's `data-*`, a
    hidden `<select>`'s chosen account number written into the title, the fragment and a `data-*`,
    a PIN pad range's digit into another element's `aria-valuenow`, and a selection over text."""
    customer.page.goto(other_origin.page("more.html", ELSEWHERE, live, title="More"))
    view = share(customer, agent, live, customer.page.evaluate("() => window.Tandem.start()"))
    expect(view.get_by_text("After")).to_be_attached()
    customer.page.locator("#pin").press_sequentially("4729", delay=10)
    customer.page.locator("#pw").press_sequentially("Zebra-Quartz-77", delay=10)
    customer.page.locator("#pw").press("Tab")
    expect(customer.page).to_have_url(re.compile(r"/reset/Zebra-Quartz-77$"))
    customer.page.locator("#acct").select_option("DE89370400440532013000")
    expect(customer.page).to_have_title("Account DE89370400440532013000")
    customer.page.locator("#rg").fill("7")
    customer.page.locator("#sel").evaluate(
        "(el) => { const r = document.createRange(); r.selectNodeContents(el);"
        " getSelection().addRange(r); }"
    )
    caught_up(customer, view)
    _assert_never_reached(
        agent,
        view,
        r"(?<!\d)4729(?!\d)",
        "(?i)zebra",
        "(?i)quartz",
        "tok_9f8e",
        "DE89370400440532013000",
        r"aria-valuenow\\?\"?[=:]\\?\"7",
    )
    assert agent.page.get_by_text("DE8937").count() == 0, "the title reached the console"


SHOWN_BOXES = """<h1>Card</h1><form data-tandem-unmask>
<div><input id="c1" maxlength="4"><input id="c2" maxlength="4">
<input id="c3" maxlength="4"><input id="c4" maxlength="4"></div>
<input id="name"><input id="day" maxlength="2"><input id="month" maxlength="2">
<input id="year" maxlength="4">
</form><p>After the card</p>"""


def test_a_card_typed_in_four_boxes_the_site_shows_shows_no_digits(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A form the site unmasks (`data-tandem-unmask`) with a card in four boxes of four digits:
    no box holds a card or 7 digits in a row, yet together they are the card. A date in three
    boxes and a name beside it stay shown."""
    customer.page.goto(other_origin.page("boxes.html", SHOWN_BOXES, live, title="Card"))
    view = share(customer, agent, live, customer.page.evaluate("() => window.Tandem.start()"))
    expect(view.get_by_text("After the card")).to_be_attached()
    for box, part in enumerate(("4012", "8888", "8888", "1881"), start=1):
        customer.page.locator(f"#c{box}").press_sequentially(part, delay=10)
    customer.page.locator("#name").press_sequentially("Jane", delay=10)
    customer.page.locator("#year").press_sequentially("1990", delay=10)
    expect(view.locator("#name")).to_have_value("Jane")
    expect(view.locator("#year")).to_have_value("1990")
    caught_up(customer, view)
    _assert_never_reached(agent, view, r"(?<!\d)(4012|8888|1881)(?!\d)")
    assert [view.locator(f"#c{box}").input_value() for box in range(1, 5)] == ["\u2022" * 4] * 4
