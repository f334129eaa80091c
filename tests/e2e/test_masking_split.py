"""Copies of a hidden value the page shows split over several text nodes (docs/privacy.md "How
copies are found"), on a real page in Chromium with the real SDK and console: a PIN echoed one
digit per element, a card number a script split into short text nodes (`splitText`), a password
whose digits the page wraps in `<b>`. Each node alone is too short to be found, so the secret
reached the agent in pieces. Every text the agent's console decrypted and the mirror are
searched; numbers the customer did not type, split the same way, stay shown."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, agent_plaintext, caught_up, share
from tests.e2e.test_masking_secret_fields import _assert_never_reached


def _shared(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party, body: str
) -> Any:
    customer.page.goto(other_origin.page("split.html", body, live, title="Split"))
    view = share(customer, agent, live, customer.page.evaluate("() => window.Tandem.start()"))
    expect(view.get_by_text("After the form")).to_be_attached()
    return view


def _texts_sent(agent: Party) -> list[str]:
    """Every text node's text and text change the agent's console decrypted."""
    frames = agent_plaintext(agent)
    return [m.group(2) for m in re.finditer(r'"(textContent|value)":"((?:[^"\\]|\\.)*)"', frames)]


def _assert_digits_never_shown(agent: Party, view: Any, where: str, digits: str) -> None:
    """No text sent, nor the mirror's `where`, holds any of `digits` (the page's other text holds
    none of them)."""
    shown = view.locator(where).text_content() or ""
    assert not re.search(f"[{digits}]", shown), f"the mirror shows {shown!r}"
    for text in _texts_sent(agent):
        assert not re.search(f"[{digits}]", text), f"{text!r} reached the agent"


PIN_PER_DIGIT = """<h1>Card PIN</h1>
<form>
  <input id="pin" name="pin" inputmode="numeric">
  <div id="echo" style="display: flex"></div>
</form>
<p id="order">Order <span>1</span><span>3</span><span>5</span><span>6</span></p>
<p>After the form</p>
<script>
  // The page echoes what was typed one digit per element, as a framework appends each.
  pin.addEventListener("input", () => {
    while (echo.children.length > pin.value.length) echo.lastElementChild.remove();
    for (const digit of pin.value.slice(echo.children.length)) {
      echo.append(Object.assign(document.createElement("div"), { textContent: digit }));
    }
  });
</script>"""


def test_a_pin_echoed_one_digit_per_element_is_hidden(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """Each digit of the PIN in an element of its own: one digit alone was no copy of a four-digit
    PIN, so the agent read the PIN digit by digit. An order number drawn the same way, which the
    customer did not type, stays shown."""
    view = _shared(live, other_origin, customer, agent, PIN_PER_DIGIT)
    page = customer.page
    page.locator("#pin").press_sequentially("4729", delay=5)
    expect(page.locator("#echo > div")).to_have_count(4)
    caught_up(customer, view)
    expect(view.locator("#echo > div")).to_have_count(4)
    expect(view.locator("#order")).to_have_text("Order 1356")
    _assert_digits_never_shown(agent, view, "#echo", "4729")


CARD_SPLIT = """<h1>Pay</h1>
<form>
  <input id="card" autocomplete="cc-number" inputmode="numeric">
  <button type="button" id="review">Review</button>
</form>
<p id="summary"></p>
<p id="phone">Call us on <span>020</span> <span>7946</span> <span>0872</span></p>
<p>After the form</p>
<script>
  // A highlighting script cuts the summary's text into nodes of three characters.
  review.onclick = () => {
    summary.textContent = card.value.replace(/\\s/g, "");
    let node = summary.firstChild;
    while (node && node.data.length > 3) node = node.splitText(3);
  };
</script>"""


def test_a_card_number_split_by_script_into_short_text_nodes_is_hidden(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """The page shows the typed card number, then a script splits its text node every three
    characters (`splitText`): each node's three digits were no copy (under four digits, not the
    card's), and the agent read the card in six pieces. The number is mistyped (its check digit
    wrong), so the card detector, which joins an element's text, does not take it for a card
    either. A phone number split over spans stays shown."""
    view = _shared(live, other_origin, customer, agent, CARD_SPLIT)
    page = customer.page
    page.locator("#card").press_sequentially("5131351313513133", delay=5)
    page.locator("#review").click()
    expect(page.locator("#summary")).to_have_text("5131351313513133")
    assert page.evaluate("() => summary.childNodes.length") == 6
    caught_up(customer, view)
    expect(view.locator("#phone")).to_have_text("Call us on 020 7946 0872")
    _assert_digits_never_shown(agent, view, "#summary", "135")


PASSWORD_MARKED = """<h1>New password</h1>
<form data-tandem-unmask>
  <input id="pw" type="password">
  <p id="echo"></p>
</form>
<p id="price">Total <b>&pound;47</b>.29, order <b>ZX</b>-<b>81</b></p>
<p>After the form</p>
<script>
  // A strength helper shows the password with its digits in bold.
  pw.addEventListener("input", () => {
    echo.innerHTML = "You chose " + pw.value.replace(/[0-9]+/g, "<b>$&</b>");
  });
</script>"""


def test_a_password_the_page_shows_with_its_digits_in_bold_is_hidden(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """The page's echo of the password wraps its digits in `<b>`: "Quokka-Ladder-" and "9063"
    were each no copy of "Quokka-Ladder-9063", and the agent read both. A price and an order
    number split by `<b>` stay shown."""
    view = _shared(live, other_origin, customer, agent, PASSWORD_MARKED)
    page = customer.page
    page.locator("#pw").press_sequentially("Quokka-Ladder-9063", delay=5)
    expect(page.locator("#echo b")).to_have_text("9063")
    caught_up(customer, view)
    expect(view.locator("#echo")).to_contain_text("You chose")
    expect(view.locator("#price")).to_have_text("Total \u00a347.29, order ZX-81")
    _assert_never_reached(agent, view, "Quokka", "Ladder", "9063")


# "2024, January; thirty-seven of them", in Chinese numerals: no copy of anything typed.
CHINESE_DATE = "\u4e8c\u3007\u4e8c\u56db\u5e74\u4e00\u6708, \u4e09\u5341\u4e03\u4e2a"
READ_FORMS = """<h1>Hesap</h1>
<form data-tandem-unmask>
  <input id="pw" type="password">
  <input id="pin" name="pin" inputmode="numeric">
  <pre id="echo"></pre>
</form>
<p id="date">CHINESE_DATE</p>
<p>After the form</p>
<script>
  // The page echoes the password in a Turkish sentence, and the PIN in Chinese numerals.
  const numerals = "\u3007\u4e00\u4e8c\u4e09\u56db\u4e94\u516d\u4e03\u516b\u4e5d";
  const show = () => {
    echo.textContent = "\u0130lk \u015fifreniz:\\n" + pw.value + "\\nPIN: " +
      pin.value.replace(/[0-9]/g, (d) => numerals[d]);
  };
  pw.addEventListener("input", show);
  pin.addEventListener("input", show);
</script>""".replace("CHINESE_DATE", CHINESE_DATE)


def test_a_password_in_a_turkish_sentence_and_a_pin_in_chinese_numerals_are_hidden(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A text holding a capital dotted I (`\u0130`, which lowers to two characters) was not
    searched for copies at all, so the password in "\u0130lk \u015fifreniz: ..." went whole; and
    a PIN echoed in Chinese numerals (`\u56db\u4e03\u4e8c\u4e5d`) was no copy of `4729`. The
    echo keeps its line breaks (a `<pre>`: the string holding a copy went with its blanks
    collapsed), and a date in Chinese numerals stays shown."""
    view = _shared(live, other_origin, customer, agent, READ_FORMS)
    page = customer.page
    page.locator("#pw").press_sequentially("Kestane-Balkon-31", delay=5)
    page.locator("#pin").press_sequentially("4729", delay=5)
    expect(page.locator("#echo")).to_contain_text("PIN: \u56db\u4e03\u4e8c\u4e5d")
    caught_up(customer, view)
    expect(view.locator("#date")).to_have_text(CHINESE_DATE)
    echo = view.locator("#echo").text_content() or ""
    assert echo.startswith("\u0130lk \u015fifreniz:\n") and "\nPIN: " in echo, echo
    pin_pieces = ("\u56db\u4e03\u4e8c", "\u4e03\u4e8c\u4e5d")
    _assert_never_reached(agent, view, "Kestane", "Balkon", *pin_pieces)
