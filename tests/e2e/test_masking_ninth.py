"""Ninth masking review (docs/security.md, docs/privacy.md), on a real page in Chromium: a
password a web component or a same-origin frame shows (its "show password" toggle, `type`
switched to `text`) before sharing started; card numbers the page writes with characters the
agent's eye skips (bidi marks, a no-break space between every digit, a line break between the
groups, in a shadow root too); and a password's copy a hyphenation script broke with soft
hyphens. Every byte the agent's console decrypted and the mirror are searched; the honest fields
and text beside them stay shown."""

from __future__ import annotations

from playwright.sync_api import FrameLocator, expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, caught_up, share
from tests.e2e.test_masking_secret_fields import MASK_PLACEHOLDER, _assert_never_reached

# A login component: its own form (shown by the site, marked inside the shadow root), a
# "suggest a strong password" button that fills the field by script (no input event) and a
# "show password" toggle.
COMPONENT = """<h1>Sign in</h1>
<pw-login></pw-login>
<p>After the form</p>
<script>
  customElements.define("pw-login", class extends HTMLElement {
    connectedCallback() {
      const root = this.attachShadow({ mode: "open" });
      root.innerHTML = `<form data-tandem-unmask>
        <input id="user"><input id="pw" type="password">
        <button type="button" id="suggest">Suggest a password</button>
        <button type="button" id="show">Show</button></form>`;
      const pw = root.querySelector("#pw");
      root.querySelector("#suggest").onclick = () => { pw.value = "Suggested-Quokka-8841"; };
      root.querySelector("#show").onclick = () => {
        pw.type = pw.type === "password" ? "text" : "password";
      };
    }
  });
</script>"""


def test_a_password_a_web_component_shows_before_sharing_stays_hidden(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """The SDK watched `type` changes of its document's own tree only: a component's toggle
    before sharing left a text field holding a password the page (not the customer's keys) put
    there, and the component's form is one the site shows, so it went to the agent as written."""
    page = customer.page
    page.goto(other_origin.page("login.html", COMPONENT, live, title="Sign in"))
    page.locator("pw-login #suggest").click()
    page.locator("pw-login #show").click()
    expect(page.locator("pw-login #pw")).to_have_attribute("type", "text")
    view = share(customer, agent, live, page.evaluate("() => window.Tandem.start()"))
    expect(view.get_by_text("After the form")).to_be_attached()
    page.locator("pw-login #user").press_sequentially("jane", delay=5)
    expect(view.locator("pw-login #user")).to_have_value("jane")  # the form is shown: live
    page.locator("pw-login #pw").press("End")
    page.locator("pw-login #pw").press_sequentially("-more", delay=5)
    caught_up(customer, view)
    _assert_never_reached(agent, view, "Quokka", "8841", "-more")
    assert view.locator("pw-login #pw").input_value() == MASK_PLACEHOLDER


FRAMED = """<h1>Sign in</h1>
<iframe src="login-frame.html" width="400" height="120"></iframe>
<p>After the form</p>"""
FRAME = """<!doctype html><html><body><form data-tandem-unmask>
<input id="user"><input id="pw" type="password">
<button type="button" id="suggest" onclick="pw.value = 'Framed-Narwhal-5521'">Suggest</button>
<button type="button" id="show" onclick="pw.type = 'text'">Show</button>
</form></body></html>"""


def test_a_password_a_same_origin_frame_shows_before_sharing_stays_hidden(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """The same in a same-origin frame (a payment or login form framed by the page): its
    document was not watched at all."""
    framed_password_shown_before_sharing(
        live, other_origin, customer, agent, ("framed-login.html", FRAMED), "iframe"
    )


def framed_password_shown_before_sharing(
    live: RunningServer,
    other_origin: OtherOrigin,
    customer: Party,
    agent: Party,
    outer: tuple[str, str],
    frame: str,
) -> FrameLocator:
    """The page ``outer`` (name, body) frames FRAME at the selector ``frame``; the customer has
    a password suggested there and shows it, then shares: it never reaches the agent. Returns
    the frame as the agent's mirror shows it."""
    (other_origin.root / "login-frame.html").write_text(FRAME)
    page = customer.page
    page.goto(other_origin.page(outer[0], outer[1], live, title="Sign in"))
    inner = page.frame_locator(frame)
    inner.locator("#suggest").click()
    inner.locator("#show").click()
    expect(inner.locator("#pw")).to_have_attribute("type", "text")
    view = share(customer, agent, live, page.evaluate("() => window.Tandem.start()"))
    expect(view.get_by_text("After the form")).to_be_attached()
    inner.locator("#user").press_sequentially("jane", delay=5)
    shown = view.frame_locator(frame)
    expect(shown.locator("#user")).to_have_value("jane")
    caught_up(customer, view)
    _assert_never_reached(agent, view, "Narwhal", "5521")
    return shown
    assert view.frame_locator("iframe").locator("#pw").input_value() == MASK_PLACEHOLDER


SPACED = "\u00a0".join("4111111111111111")
MARKED = "\u200e".join(["5500", "0000", "0000", "0004"])
LINES = "\n".join(["4012", "8888", "8888", "1881"])
KEYCAPS = "".join(f"{d}\ufe0f\u20e3" for d in "4111111111111111")
SUPERSCRIPTS = "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"
SUPERSCRIPT = "".join(SUPERSCRIPTS[int(d)] for d in "5500000000000004")
CARDS = f"""<h1>Receipt</h1>
<p id="spaced">Paid with {SPACED}</p>
<p id="marked">Card {MARKED} on file</p>
<pre id="lines">Card
{LINES}</pre>
<p id="keycaps">Card {KEYCAPS}</p>
<p id="sup">Card {SUPERSCRIPT}</p>
<card-line></card-line>
<p id="dates">Stay 01.02.2024 - 15.02.2024, order 123\u00a0456</p>
<p>After the form</p>
<script>
  customElements.define("card-line", class extends HTMLElement {{
    connectedCallback() {{
      this.attachShadow({{ mode: "open" }}).innerHTML =
        "<span>" + ["3782", "822463", "10005"].join("\\u2066\\u2069") + "</span>";
    }}
  }});
</script>"""


def test_card_numbers_written_with_invisible_separators_or_spaced_digits_are_hidden(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A receipt spacing each digit with a no-break space, a card written with left-to-right
    marks between its groups (an RTL page's), one broken over lines in a `<pre>`, an Amex number
    with empty bidi isolates in a component, one in keycap emoji, one in superscript digits:
    each reached the agent as written. Dates and an
    order number beside them stay shown."""
    page = customer.page
    page.goto(other_origin.page("receipt.html", CARDS, live, title="Receipt"))
    view = share(customer, agent, live, page.evaluate("() => window.Tandem.start()"))
    expect(view.get_by_text("After the form")).to_be_attached()
    expect(view.locator("#dates")).to_have_text("Stay 01.02.2024 - 15.02.2024, order 123\u00a0456")
    caught_up(customer, view)
    sep = "(?:\\\\u[0-9a-fA-F]{4}|\\\\n|[^0-9]){1,12}"
    _assert_never_reached(
        agent,
        view,
        sep.join("4111111111111111"),
        sep.join(["5500", "0000", "0000", "0004"]),
        sep.join(["4012", "8888", "8888", "1881"]),
        sep.join(["3782", "822463", "10005"]),
        sep.join("4111111"),
        "\u2075\u2075\u2070\u2070",
        "\\\\u2075\\\\u2075\\\\u2070\\\\u2070",
    )


HYPHENATED = """<h1>Account</h1>
<form>
  <input id="pw" type="password">
  <p id="echo" lang="en"></p>
</form>
<p id="honest">Trans\u00adport is on its way</p>
<p>After the form</p>
<script>
  // The page's "you typed" preview, run through a hyphenation script (soft hyphens in long words).
  pw.addEventListener("input", () => {
    echo.textContent = "Check: " + pw.value.replace(/(.{4})/g, "$1\\u00ad");
  });
</script>"""


def test_a_passwords_copy_broken_by_soft_hyphens_is_hidden(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """Copies were looked for character for character: a hyphenation script's soft hyphens (drawn
    as nothing) in the page's echo of the password hid it from the search, and the agent read it
    whole. Text that is no copy keeps its soft hyphens."""
    page = customer.page
    page.goto(other_origin.page("account.html", HYPHENATED, live, title="Account"))
    view = share(customer, agent, live, page.evaluate("() => window.Tandem.start()"))
    expect(view.get_by_text("After the form")).to_be_attached()
    page.locator("#pw").press_sequentially("Transmogrification7", delay=5)
    expect(page.locator("#echo")).to_contain_text("Tran")
    caught_up(customer, view)
    expect(view.locator("#honest")).to_have_text("Trans\u00adport is on its way")
    soft = "(?:\u00ad|\\\\u00ad)?"
    _assert_never_reached(agent, view, soft.join("mogrifi"), soft.join("fication7"))


SWAPS = """<h1>Sign in</h1>
<form data-tandem-unmask>
  <input id="pw" type="password">
  <button type="button" id="suggest">Suggest a password</button>
  <button type="button" id="show">Show</button>
</form>
<iframe src="swap-frame.html" width="400" height="120"></iframe>
<p>After the form</p>
<script>
  suggest.onclick = () => { pw.value = "Suggested-Wombat-3307"; };
  // A plugin's "show password": a new text field in the password field's place.
  show.onclick = () => {
    const plain = document.createElement("input");
    plain.id = "plain";
    plain.value = pw.value;
    pw.replaceWith(plain);
  };
</script>"""
SWAP_FRAME = """<!doctype html><html><body><form data-tandem-unmask>
<input id="pw" type="password"><button type="button" id="show">Show</button>
</form><script>
  show.onclick = () => {
    const plain = document.createElement("input");
    plain.id = "plain";
    plain.value = pw.value;
    pw.replaceWith(plain);
  };
</script></body></html>"""


def test_a_password_filled_by_script_or_typed_in_a_frame_then_swapped_for_a_text_field_stays_hidden(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A password is remembered when the customer types it, and a "show password" that swaps the
    field for a text field has that copy masked: but not one the page's "suggest a password"
    put there by script (no keystroke), nor one typed in a same-origin frame (the document's
    listener heard only its own tree). Both went to the agent as the swapped field's value."""
    (other_origin.root / "swap-frame.html").write_text(SWAP_FRAME)
    page = customer.page
    page.goto(other_origin.page("swaps.html", SWAPS, live, title="Sign in"))
    page.locator("#suggest").click()
    page.locator("#show").click()
    expect(page.locator("#plain")).to_have_value("Suggested-Wombat-3307")
    inner = page.frame_locator("iframe")
    inner.locator("#pw").press_sequentially("Framed-Pelican-6612", delay=5)
    inner.locator("#show").click()
    expect(inner.locator("#plain")).to_have_value("Framed-Pelican-6612")
    view = share(customer, agent, live, page.evaluate("() => window.Tandem.start()"))
    expect(view.get_by_text("After the form")).to_be_attached()
    expect(view.frame_locator("iframe").locator("#plain")).to_be_attached()
    caught_up(customer, view)
    _assert_never_reached(agent, view, "Wombat", "3307", "Pelican", "6612")


PIN_ECHO = """<h1>Card PIN</h1>
<form>
  <input id="pin" name="pin" inputmode="numeric">
  <p id="echo"></p>
</form>
<p id="order">Order \u0661\u0662\u0663</p>
<p>After the form</p>
<script>
  // The page reads what was typed as a number and echoes it in ASCII digits.
  pin.addEventListener("input", () => {
    const ascii = pin.value.replace(/[\u0660-\u0669]/g, (d) => String(d.charCodeAt(0) - 0x660));
    echo.textContent = "PIN " + ascii + " is not the one on file";
  });
</script>"""


def test_a_pin_typed_in_arabic_indic_digits_is_hidden_where_the_page_echoes_it_in_ascii(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A PIN typed on an Arabic keyboard (`٤٧٢٩`) was remembered by its ASCII digits only (none),
    so the page's echo of it in ASCII digits ("PIN 4729 is not the one on file") reached the
    agent. Short numbers in Arabic-Indic digits elsewhere stay shown."""
    page = customer.page
    page.goto(other_origin.page("pin.html", PIN_ECHO, live, title="Card PIN"))
    view = share(customer, agent, live, page.evaluate("() => window.Tandem.start()"))
    expect(view.get_by_text("After the form")).to_be_attached()
    page.locator("#pin").press_sequentially("\u0664\u0667\u0662\u0669", delay=5)
    expect(page.locator("#echo")).to_have_text("PIN 4729 is not the one on file")
    caught_up(customer, view)
    expect(view.locator("#echo")).to_contain_text("is not the one on file")
    expect(view.locator("#order")).to_have_text("Order \u0661\u0662\u0663")
    _assert_never_reached(agent, view, "4729", "472", "\u0664\u0667\u0662")
