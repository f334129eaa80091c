"""Masking leaks a review found (each test performs the leak on a real page and shows it fails):
text typed into a contenteditable box, a password revealed before sharing, a private page framed
by a shared one, and what a masked region's attributes and CSS backgrounds carry."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, agent_plaintext, caught_up, share

MASK_PLACEHOLDER = "\u2022" * 8


def _start_with(customer: Party, url: str, policy: dict[str, object]) -> str:
    customer.page.goto(url)
    code: str = customer.page.evaluate("(policy) => window.Tandem.start({policy})", policy)
    return code


EDITABLE = """<h1>Message us</h1>
<div id="msg" contenteditable="true" style="border:1px solid;min-height:2em"></div>
<div data-tandem-unmask><div id="note" contenteditable="true" style="min-height:2em"></div></div>
<p>After the editor</p>"""


def test_a_card_typed_into_a_contenteditable_box_shows_no_digits(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    url = other_origin.page("editable.html", EDITABLE, live, title="Message")
    code = _start_with(customer, url, {"version": 1})
    view = share(customer, agent, live, code)
    expect(view.get_by_text("After the editor")).to_be_attached()
    customer.page.locator("#msg").click()
    customer.page.keyboard.type("4111111111111111", delay=60)
    # An editable region the site unmasks shows its words, but never 7 digits in a row.
    customer.page.locator("#note").click()
    customer.page.keyboard.type("Visible words 5500000000000004", delay=20)
    expect(view.locator("#note")).to_contain_text("Visible words")
    caught_up(customer, view)
    frames = agent_plaintext(agent)
    assert not re.findall(r"4111[0-9]{3,}", frames), "digits of the card left the customer"
    assert not re.findall(r"5500[0-9]{3,}", frames), "digits of the card left the customer"
    assert not re.findall(r"[0-9]{7,}", view.locator("body").inner_text())
    assert "\u2022" in view.locator("#msg").inner_text(), "the editor shows a placeholder"


LOGIN = """<h1>Sign in</h1><form data-tandem-unmask><label for="user">User</label><input id="user">
<label for="pw">Password</label><input id="pw" type="password">
<button type="button" id="show"
  onclick="pw.type = pw.type === 'password' ? 'text' : 'password'">Show</button></form>"""


def test_a_password_shown_before_sharing_stays_hidden(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    url = other_origin.page("login.html", LOGIN, live, title="Sign in")
    customer.page.goto(url)
    customer.page.locator("#pw").fill("Hunter2-PW-SECRET")
    customer.page.locator("#show").click()
    expect(customer.page.locator("#pw")).to_have_attribute("type", "text")
    code = customer.page.evaluate("() => window.Tandem.start()")
    view = share(customer, agent, live, code)
    expect(view.locator("#pw")).to_be_attached()
    customer.page.locator("#user").fill("jane")
    expect(view.locator("#user")).to_have_value("jane")  # the form is unmasked: the mirror is live
    customer.page.locator("#pw").press("End")
    customer.page.locator("#pw").press_sequentially("-more", delay=20)
    caught_up(customer, view)
    frames = agent_plaintext(agent)
    assert "Hunter2" not in frames
    assert "-more" not in frames
    assert "Hunter2" not in view.locator("#pw").input_value()


# A password field the page revealed (`type="text"`) before the SDK loaded: its name and id say
# nothing and it has no `autocomplete`, but the page still says what it is.
REVEALED = {
    "label": '<label for="f1">Password</label><input id="f1" type="password">',
    "wrapping-label": '<label>Passwort <input id="f1" type="password"></label>',
    "aria-label": '<input id="f1" type="password" aria-label="Your PIN">',
    "placeholder": '<input id="f1" type="password" placeholder="Mot de passe">',
    "labelledby": '<span id="l1">Password</span>'
    '<input id="f1" type="password" aria-labelledby="l1">',
    "toggle": '<input id="f1" type="password"><button type="button" aria-controls="f1">'
    "Show password</button>",
    "passwordrules": '<input id="f1" type="password" passwordrules="minlength: 12;">',
}


@pytest.mark.parametrize("field", list(REVEALED.values()), ids=list(REVEALED))
def test_a_password_revealed_before_the_sdk_loaded_stays_hidden_by_what_the_page_says(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party, field: str
) -> None:
    (other_origin.root / "revealed.html").write_text(
        "<!doctype html><html><head><meta charset=utf-8><title>Sign in</title></head><body>"
        f'<h1>Sign in</h1><form data-tandem-unmask><input id="user">{field}</form>'
        # The page's own "show password", before the SDK's script is even fetched.
        "<script>document.querySelector('#f1').type = 'text';</script>"
        f'<script src="{live.base}/sdk/tandem.js"></script></body></html>'
    )
    customer.page.goto(f"{other_origin.origin}/revealed.html")
    customer.page.locator("#f1").fill("Hunter2-REVEALED-SECRET")
    code = customer.page.evaluate("() => window.Tandem.start()")
    view = share(customer, agent, live, code)
    expect(view.locator("#f1")).to_be_attached()
    customer.page.locator("#user").fill("jane")
    expect(view.locator("#user")).to_have_value("jane")  # the form is unmasked: the mirror is live
    customer.page.locator("#f1").press("End")
    customer.page.locator("#f1").press_sequentially("-more", delay=20)
    caught_up(customer, view)
    frames = agent_plaintext(agent)
    assert "Hunter2" not in frames
    assert "-more" not in frames
    assert "Hunter2" not in view.locator("#f1").input_value()


def test_a_private_page_framed_by_a_shared_page_is_not_recorded(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    (other_origin.root / "private-wallet.html").write_text(
        "<!doctype html><html><body><p>PRIVATE-PAGE-SECRET-3390</p></body></html>"
    )
    (other_origin.root / "private-statement.html").write_text(
        "<!doctype html><html><body><p>PRIVATE-STATEMENT-SECRET-7741</p></body></html>"
    )
    (other_origin.root / "public-help.html").write_text(
        "<!doctype html><html><body><p>PUBLIC-FRAME-TEXT</p>"
        "<a id='go' href='private-statement.html'>statement</a></body></html>"
    )
    body = (
        "<h1>Checkout</h1><iframe id='wallet' src='private-wallet.html' width=400 height=100>"
        "</iframe><iframe id='help' src='public-help.html' width=400 height=100></iframe>"
        "<p>After the frame</p>"
    )
    url = other_origin.page("checkout.html", body, live, title="Checkout")
    code = _start_with(customer, url, {"version": 1, "pages": {"deny": ["/private-*"]}})
    view = share(customer, agent, live, code)
    expect(view.get_by_text("After the frame")).to_be_attached()
    # A shared page in a frame is shown (the test would catch frames not recorded at all) ...
    expect(view.frame_locator("#help").get_by_text("PUBLIC-FRAME-TEXT")).to_be_attached()
    # ... until it navigates to a private one.
    customer.page.frame_locator("#help").locator("#go").click()
    expect(
        customer.page.frame_locator("#help").get_by_text("PRIVATE-STATEMENT-SECRET-7741")
    ).to_be_visible()
    expect(view.frame_locator("#help").get_by_text("PUBLIC-FRAME-TEXT")).to_have_count(0)
    caught_up(customer, view)
    frames, agent_dom = agent_plaintext(agent), view.locator("html").inner_html()
    for secret in ("PRIVATE-PAGE-SECRET-3390", "PRIVATE-STATEMENT-SECRET-7741"):
        assert secret not in frames, f"{secret!r} left the customer's browser"
        assert secret not in agent_dom
    # Nor the private page's address as the frame's src (a path can say as much as the page).
    assert "private-wallet" not in agent_plaintext(agent)


CONTACT = """<h1>Your details</h1><div class="pii">
  <p>Email: <a id="mail" href="mailto:jane.customer@example.org">jane.customer@example.org</a></p>
  <p>Phone: <a href="tel:+447700900123">+44 7700 900123</a></p>
  <p><a href="/patients/diagnosis-hiv-positive/">Your diagnosis</a></p>
  <p>Born <time datetime="1984-02-29">29 February 1984</time></p></div><p>After the details</p>"""


def test_a_masked_region_carries_no_attribute_values(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    url = other_origin.page("contact.html", CONTACT, live, title="Details")
    code = _start_with(customer, url, {"version": 1, "mask": [".pii"]})
    view = share(customer, agent, live, code)
    expect(view.get_by_text("After the details")).to_be_attached()
    # Changed while sharing, too (an attribute mutation).
    customer.page.locator("#mail").evaluate(
        "(a) => a.setAttribute('href', 'mailto:late.secret@example.org')"
    )
    caught_up(customer, view)
    frames = agent_plaintext(agent)
    agent_dom = view.locator("html").inner_html()
    assert view.locator("a").count() == 3, "the links are still there, as links"
    for leak in (
        "jane.customer",
        "late.secret",
        "447700900123",
        "7700",
        "diagnosis-hiv-positive",
        "1984-02-29",
        "1984",
    ):
        # Not inside a longer number: the frames' millisecond timestamps hold any four digits
        # now and then (1796031198474 holds 1984).
        found = re.compile(rf"(?<!\d){re.escape(leak)}(?!\d)")
        assert not found.search(frames), f"{leak!r} left the customer's browser"
        assert not found.search(agent_dom), f"{leak!r} reached the agent's DOM"


SIGNATURE_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40">'
    '<text x="5" y="25">CSS-BG-SECRET-6612</text></svg>'
)
SIGNED = """<style>
  .sig { width: 200px; height: 40px; background-image: url(/signature.svg); }
  .logo { width: 20px; height: 20px; background-image: url(/logo.svg); }
</style><h1>Mandate</h1><div class="logo"></div>
<div class="pii">Signed by Jane: <div class="sig"></div></div><p>After the mandate</p>"""
LOGO_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20"><text>LOGO-OK</text></svg>'
)


def _background(view: Any, selector: str) -> str:
    background: str = view.locator(selector).evaluate(
        "(el) => getComputedStyle(el).backgroundImage"
    )
    return background


def test_a_css_background_only_a_masked_region_uses_is_not_carried(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    (other_origin.root / "signature.svg").write_text(SIGNATURE_SVG)
    (other_origin.root / "logo.svg").write_text(LOGO_SVG)
    sdk_fetches: list[str] = []  # what the customer's SDK fetched (not the page's own loads)
    customer.page.on(
        "request",
        lambda request: (
            sdk_fetches.append(request.url) if request.resource_type == "fetch" else None
        ),
    )
    url = other_origin.page("signed.html", SIGNED, live, title="Mandate")
    code = _start_with(customer, url, {"version": 1, "mask": [".pii"]})
    view = share(customer, agent, live, code)
    expect(view.get_by_text("After the mandate")).to_be_attached()
    # The same sheet's background outside the region is carried: the test sees carrying work.
    expect(view.locator(".logo")).to_have_css("background-image", re.compile(r"url\(\"?data:"))
    caught_up(customer, view)
    frames = agent_plaintext(agent)
    assert base64.b64encode(LOGO_SVG.encode()).decode() in frames
    assert "data:" not in _background(view, ".sig"), _background(view, ".sig")
    assert base64.b64encode(SIGNATURE_SVG.encode()).decode() not in frames
    assert "CSS-BG-SECRET-6612" not in frames
    assert not [url for url in sdk_fetches if url.endswith("/signature.svg")], sdk_fetches


LATER_SIGNED = """<style>
  .sig { width: 200px; height: 40px; background-image: url(/signature.svg); }
  .logo { width: 20px; height: 20px; background-image: url(/logo.svg); }
</style><h1>Mandate</h1><div class="logo"></div>
<div class="pii" id="pii">Your details</div><p>After the mandate</p>"""


def test_a_css_background_no_shown_element_uses_yet_is_not_carried(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    (other_origin.root / "signature.svg").write_text(SIGNATURE_SVG)
    (other_origin.root / "logo.svg").write_text(LOGO_SVG)
    url = other_origin.page("later-signed.html", LATER_SIGNED, live, title="Mandate")
    code = _start_with(customer, url, {"version": 1, "mask": [".pii"]})
    view = share(customer, agent, live, code)
    expect(view.get_by_text("After the mandate")).to_be_attached()
    # The sheet went with the snapshot, when no element showed the signature; it appears later
    # in the masked region (the mirror keeps its class, and would draw the image there).
    customer.page.evaluate(
        """() => document.querySelector('#pii').append(
            Object.assign(document.createElement('div'), {className: 'sig'}))"""
    )
    expect(view.locator("#pii .sig")).to_be_attached()
    caught_up(customer, view)
    frames = agent_plaintext(agent)
    assert base64.b64encode(LOGO_SVG.encode()).decode() in frames  # a shown one is carried
    assert base64.b64encode(SIGNATURE_SVG.encode()).decode() not in frames
    assert "CSS-BG-SECRET-6612" not in frames
    assert "data:" not in _background(view, "#pii .sig"), _background(view, "#pii .sig")


def _svg(word: str) -> str:
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><text>{word}</text></svg>'


RULED = """<style>
  .tick::before { content: ""; display: inline-block; width: 4px; height: 4px;
    background-image: url(/tick.svg); }
  .pii .stamp::after { content: ""; display: inline-block; width: 4px; height: 4px;
    background-image: url(/stamp.svg); }
</style><h1>Mandate</h1><p><span class="tick">Checked</span></p>
<div class="pii">Signed <span class="stamp">here</span></div>
<x-badge></x-badge><p>After the mandate</p>
<script>
customElements.define("x-badge", class extends HTMLElement {
  connectedCallback() {
    if (this.shadowRoot) return;
    const root = this.attachShadow({ mode: "open" });
    const sheet = new CSSStyleSheet();
    sheet.replaceSync('.b::before { content: ""; display: inline-block; width: 4px; height: 4px; ' +
      'background-image: url(/badge.svg) }');
    root.adoptedStyleSheets = [sheet];
    root.innerHTML = '<span class="b">badge</span>';
  }
});
</script>"""


def test_css_images_are_judged_by_the_elements_their_rules_match(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """Which elements show a stylesheet's image is found from the rules' selectors (the page's
    tree and its components' shadow roots); a rule no selector can answer for (an image in a
    custom property, used by another rule) makes every element be looked at."""
    for word in ["tick", "stamp", "badge", "icon"]:
        (other_origin.root / f"{word}.svg").write_text(_svg(f"{word.upper()}-7310"))
    url = other_origin.page("ruled.html", RULED, live, title="Mandate")
    code = _start_with(customer, url, {"version": 1, "mask": [".pii"]})
    view = share(customer, agent, live, code)
    expect(view.get_by_text("After the mandate")).to_be_attached()
    customer.page.evaluate(
        """() => {
        const style = document.createElement('style');
        style.textContent = ':root { --icon: url(/icon.svg) } ' +
          '.ic { width: 4px; height: 4px; background-image: var(--icon) }';
        const icon = Object.assign(document.createElement('div'), {className: 'ic', id: 'ic'});
        document.body.append(style, icon);
    }"""
    )
    expect(view.locator("#ic")).to_be_attached()
    caught_up(customer, view)
    frames = agent_plaintext(agent)
    for shown in ["tick", "badge", "icon"]:
        assert base64.b64encode(_svg(f"{shown.upper()}-7310").encode()).decode() in frames, shown
    assert base64.b64encode(_svg("STAMP-7310").encode()).decode() not in frames
    assert "STAMP-7310" not in frames


SRCDOC = (
    '<p class="rr-mask">SRCDOC-MASKED-4410</p><div id="chat">SRCDOC-HIDDEN-4411</div>'
    '<input type="password" value="Hunter2-SRCDOC">'
    "<p>SRCDOC-SHOWN</p>"
)
FRAMED = f"""<h1>Help</h1><iframe id="sd" srcdoc='{SRCDOC}' width=400 height=120></iframe>
<div id="later"></div><p>After the frame</p>"""


def test_a_frames_srcdoc_never_carries_its_markup(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A frame's `srcdoc` is its document's markup as written: what masking hides in the frame's
    document (masked text, a hidden region, a password's value) was in the attribute as it is,
    in the snapshot, in a frame added later and in a changed `srcdoc`."""
    url = other_origin.page("framed.html", FRAMED, live, title="Help")
    code = _start_with(customer, url, {"version": 1, "hide": ["#chat"]})
    view = share(customer, agent, live, code)
    # The frame's document is still recorded, masked: the mirror shows its shown text.
    expect(view.frame_locator("#sd").get_by_text("SRCDOC-SHOWN")).to_be_attached()
    customer.page.evaluate(
        """(markup) => {
        const added = Object.assign(document.createElement('iframe'), {id: 'added'});
        added.srcdoc = markup.replaceAll('4410', '4420').replaceAll('4411', '4421');
        document.querySelector('#later').append(added);
        document.querySelector('#sd').srcdoc = markup.replaceAll('4410', '4430');
    }""",
        SRCDOC,
    )
    expect(view.frame_locator("#added").get_by_text("SRCDOC-SHOWN")).to_be_attached()
    caught_up(customer, view)
    frames = agent_plaintext(agent)
    for secret in ("4410", "4411", "4420", "4421", "4430", "Hunter2"):
        assert not re.search(rf"(?<!\d){secret}(?!\d)", frames), f"{secret!r} left the customer"
    assert "srcdoc" not in view.locator("html").inner_html()


ADDRESSED = """<h1>Addresses</h1>
<iframe id="pay" src="{other}/pay.html?token=RRSRC-TOKEN-5521" width=40 height=40></iframe>
<img srcset="/a.png?user=SRCSET-5522 1x, /b.png?user=SRCSET-5523 2x" width=4 height=4 alt="">
<object data="/statement.pdf?account=OBJECT-5524" width=4 height=4></object>
<a href="/help" ping="/track?user=PING-5525">help</a>
<blockquote cite="/thread?user=CITE-5526">quoted</blockquote>
<a href="https://jane:Hunter2-5527@files.example/statement">statement</a>
<div id="avatar" style="width:4px;height:4px;background-image:url(/avatar.png?email=STYLE-5528)">
</div><p>After the addresses</p>"""


def test_every_attribute_that_names_an_address_loses_its_query(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """Queries often carry data (`?token=`, `?account=`): removed from links and `src`, and from
    every other attribute that names an address: another origin's frame (`rr_src`), image
    candidates, an object's `data`, a link's `ping`, a quote's `cite`, an inline style's
    `url()`. An address's user name and password never go, whatever the policy."""
    url = other_origin.page("addressed.html", ADDRESSED.format(other=live.base), live)
    code = _start_with(customer, url, {"version": 1})
    view = share(customer, agent, live, code)
    expect(view.get_by_text("After the addresses")).to_be_attached()
    customer.page.evaluate(
        """() => {
        const pay = document.querySelector('#pay');
        pay.src = pay.src.replace('5521', '5531');
        document.querySelector('#avatar').style.backgroundImage = 'url(/avatar.png?email=5532)';
    }"""
    )
    caught_up(customer, view)
    frames = agent_plaintext(agent)
    for secret in ("5521", "5522", "5523", "5524", "5525", "5526", "5527", "5528", "5531", "5532"):
        assert not re.search(rf"(?<!\d){secret}(?!\d)", frames), f"{secret!r} left the customer"
    assert "pay.html" in frames and "statement.pdf" in frames  # the addresses themselves go
    assert "https://files.example/statement" in frames


ADDRESSES_ELSEWHERE = """<h1>Account</h1>
<div id="d" data-url="/account/reset?token=TOKEN-7751" data-config='{"next":"https://shop.example/x?t=TOKEN-7752"}'>Reset</div>
<style>#d { background: url(/bg.png?token=TOKEN-7753) } @import "/theme.css?u=TOKEN-7754";</style>
<p>Your link: https://shop.example/r?token=TOKEN-7755 (one day)</p>
<p>After the addresses</p>"""


def test_addresses_outside_address_attributes_and_in_style_text_lose_their_query(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A query is data wherever the address is: in a `data-*` attribute or JSON in one, page
    text that shows a link, a `<style>` element's `url()` and `@import`, rules the page inserts
    and sheets it adopts while shared (`content: url(…)`)."""
    url = other_origin.page("elsewhere.html", ADDRESSES_ELSEWHERE, live)
    code = _start_with(customer, url, {"version": 1})
    view = share(customer, agent, live, code)
    expect(view.get_by_text("After the addresses")).to_be_attached()
    customer.page.evaluate(
        """() => {
        const sheet = document.head.appendChild(document.createElement('style')).sheet;
        sheet.insertRule('#d::after { content: url(/badge.svg?token=TOKEN-7756) }', 0);
        const adopted = new CSSStyleSheet();
        adopted.replaceSync('#d::before { content: url(/b.svg?token=TOKEN-7757) }');
        document.adoptedStyleSheets = [adopted];
        adopted.insertRule('#d { cursor: url(/c.cur?token=TOKEN-7758), auto }', 0);
        document.querySelector('#d').dataset.url = '/account/reset?token=TOKEN-7759';
    }"""
    )
    caught_up(customer, view)
    frames = agent_plaintext(agent)
    mirror = view.locator("html").evaluate("(el) => el.outerHTML")
    for where, seen in (("the frames", frames), ("the mirror", mirror)):
        assert "TOKEN-77" not in seen, f"a query reached the agent in {where}"
    assert "/account/reset" in frames and "/bg.png" in frames  # the addresses themselves go


CARD_STATE = """<h1>Pay</h1><form>
<div id="wrap" class="field"><label>Card
<input id="card" autocomplete="cc-number" class="input"></label></div>
</form><p>After the form</p>
<script>
card.addEventListener("input", () => {
  const visa = card.value.startsWith("4");
  card.className = "input " + (visa ? "card-visa is-valid" : "card-other is-invalid");
  card.setAttribute("aria-invalid", String(!visa));
  card.dataset.brand = visa ? "visa" : "other";
  wrap.className = "field " + (visa ? "brand-visa has-success" : "has-error");
});
</script>"""


def test_a_hidden_fields_state_classes_do_not_tell_the_card_brand(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A page marks the card field and its wrapper with what it recognised in the number (its
    brand, whether it is valid): those classes, `aria-invalid` and `data-*` are not sent; the
    layout classes are."""
    url = other_origin.page("pay.html", CARD_STATE, live)
    code = _start_with(customer, url, {"version": 1})
    view = share(customer, agent, live, code)
    expect(view.get_by_text("After the form")).to_be_attached()
    customer.page.locator("#card").press_sequentially("4111111111111111", delay=20)
    expect(customer.page.locator("#wrap")).to_have_class("field brand-visa has-success")
    caught_up(customer, view)
    frames = agent_plaintext(agent)
    mirror = view.locator("html").evaluate("(el) => el.outerHTML")
    for where, seen in (("the frames", frames), ("the mirror", mirror)):
        for leak in ("visa", "is-valid", "is-invalid", "has-success", "has-error", "aria-invalid"):
            at = seen.find(leak)
            assert at < 0, (
                f"{leak!r} reached the agent in {where}: {seen[max(0, at - 300) : at + 60]}"
            )
    expect(view.locator("#wrap")).to_have_class("field")
    expect(view.locator("#card")).to_have_class("input")


COPIED = """<h1>Sign up</h1><form>
<label>Email <input id="email" oninput="this.dataset.value = this.value"></label>
<label>Password <input id="pw" type="password"
  oninput="this.setAttribute('ng-reflect-model', this.value.slice(0, 30))"></label>
<label>Country <select id="country" onchange="this.dataset.chosen = this.value">
  <option value="">Choose</option><option value="NZ-CHOSEN-7733">New Zealand</option>
</select></label>
</form><p>After the form</p>"""


def test_a_hidden_fields_value_copied_into_its_attributes_stays_hidden(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """Pages copy what is typed into an attribute of the field (`data-value` for their styles,
    Angular's `ng-reflect-model` in development builds, cut at 30 characters): those copies of
    a hidden value are hidden with it, in the snapshot and as they change."""
    url = other_origin.page("signup.html", COPIED, live, title="Sign up")
    customer.page.goto(url)
    customer.page.locator("#email").fill("jane.COPIED-7731@example.org")
    code = customer.page.evaluate("() => window.Tandem.start()")
    view = share(customer, agent, live, code)
    expect(view.get_by_text("After the form")).to_be_attached()
    customer.page.locator("#pw").press_sequentially(
        "Hunter2-COPIED-7732-and-more-than-thirty", delay=5
    )
    customer.page.locator("#country").select_option("NZ-CHOSEN-7733")
    customer.page.locator("#email").press_sequentially("-later", delay=5)
    expect(customer.page.locator("#country")).to_have_attribute("data-chosen", "NZ-CHOSEN-7733")
    caught_up(customer, view)
    frames = agent_plaintext(agent)
    for secret in ("COPIED-7731", "Hunter2", "COPIED-7732", "NZ-CHOSEN", "-later"):
        assert secret not in frames, f"{secret!r} left the customer's browser"
    # The attributes are still there, hidden as the values are.
    expect(view.locator("#email")).to_have_attribute("data-value", MASK_PLACEHOLDER)
    expect(view.locator("#pw")).to_have_attribute("ng-reflect-model", MASK_PLACEHOLDER)


ECHOES = """<h1>Checkout</h1><form>
<label>Card number <input id="card" autocomplete="cc-number"
  oninput="preview.textContent = 'Card ending ' + this.value.replace(/\\D/g, '').slice(-4)"></label>
<p id="preview">Card ending</p>
<label>PIN <input id="pin" type="password" inputmode="numeric"></label>
<button type="button" id="check"
  onclick="err.textContent = 'PIN ' + pin.value + ' is wrong'; pin.value = ''">Check</button>
<p id="err"></p>
<label>Password <input id="pw" type="password" oninput="echo(this.value)"></label>
<input id="copy" data-tandem-unmask readonly>
<span id="hint">Hint</span><style id="live"></style>
</form><p>After the form</p>
<script>
const sheet = document.head.appendChild(document.createElement("style")).sheet;
function echo(v) {
  hint.title = "You typed " + v; hint.setAttribute("aria-label", v); hint.dataset.echo = v;
  hint.textContent = "Strength of " + v + ": weak";
  copy.setAttribute("value", v); copy.value = v;
  live.textContent = '#hint::after { content: "' + v + '" }';
  sheet.insertRule('#hint::before { content: "' + v + '" }', 0);
  document.title = "Sign up as " + v;
}
</script>"""


ECHO_LEAKS = (
    r"ending\s*\d",
    r"\b4444\b",
    r"PIN\s*\d",
    r"\b4729\b",
    r"(?i)zebra",
    r"(?i)echo-8812",
    r"\b8812\b",
)


def test_a_hidden_value_the_page_copies_elsewhere_never_reaches_the_agent(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A page echoes what the customer types into hidden fields: a live preview of the card's last
    digits, an error message naming the PIN (the field then cleared), and a password copied into
    another element's text, attributes, an unmasked field, a style element, an inserted CSS rule
    and the page's title. None of it reaches the agent, on the wire or in the mirror."""
    url = other_origin.page("echo.html", ECHOES, live, title="Checkout")
    customer.page.goto(url)
    code = customer.page.evaluate("() => window.Tandem.start()")
    view = share(customer, agent, live, code)
    expect(view.get_by_text("After the form")).to_be_attached()
    customer.page.locator("#card").press_sequentially("5555555555554444", delay=20)
    customer.page.locator("#pin").press_sequentially("4729", delay=20)
    customer.page.locator("#check").click()
    customer.page.locator("#pw").press_sequentially("Zebra-ECHO-8812", delay=20)
    expect(customer.page.locator("#err")).to_have_text("PIN 4729 is wrong")
    expect(customer.page).to_have_title("Sign up as Zebra-ECHO-8812")
    caught_up(customer, view)
    expect(view.locator("#err")).to_contain_text("is wrong")
    frames = agent_plaintext(agent)
    mirror = view.locator("html").evaluate("(el) => el.outerHTML")
    rules = view.locator("html").evaluate(
        "(el) => Array.from(el.ownerDocument.styleSheets).flatMap((s) =>"
        " Array.from(s.cssRules, (r) => r.cssText)).join('\\n')"
    )
    for where, seen in (("the frames", frames), ("the mirror", mirror), ("its style rules", rules)):
        for leak in ECHO_LEAKS:
            found = re.search(leak, seen)
            context = seen[max(0, found.start() - 300) : found.end() + 100] if found else ""
            assert not found, f"{leak!r} reached the agent in {where}: {context}"
    assert "zebra" not in view.locator("#copy").input_value().lower(), "the unmasked copy shows it"
    assert agent.page.get_by_text("Sign up as").count() == 0, "the title reached the console"


INLINE_DOCUMENTS = """<h1>Statement</h1>
<iframe id="df" src="data:text/html,<p class=rr-mask>DATA-FRAME-7741</p>" width=40></iframe>
<embed src="data:text/html,<p>DATA-EMBED-7742</p>" width=4 height=4>
<object data="data:text/html,<p>DATA-OBJECT-7743</p>" width=4 height=4></object>
<img alt="" width=4 height=4 src="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E">
<p>After the statement</p>"""


def test_a_document_given_as_a_data_address_is_never_sent(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A frame, embed or object showing a `data:` address holds its document's markup in the
    address itself; the browser gives that document an origin of its own, so it is never
    recorded (nor masked), and the address went as it was (a frame's as `rr_src`), also when
    changed later. An image's `data:` source still goes."""
    url = other_origin.page("inline.html", INLINE_DOCUMENTS, live, title="Statement")
    code = _start_with(customer, url, {"version": 1})
    view = share(customer, agent, live, code)
    expect(view.get_by_text("After the statement")).to_be_attached()
    customer.page.evaluate(
        "() => document.querySelector('#df').src = 'data:text/html,<p>DATA-FRAME-7744</p>'"
    )
    caught_up(customer, view)
    frames = agent_plaintext(agent)
    for secret in ("7741", "7742", "7743", "7744"):
        assert not re.search(rf"(?<!\d){secret}(?!\d)", frames), f"{secret!r} left the customer"
    expect(view.locator("img[src^='data:image/svg+xml']")).to_have_count(1)


COMMENTED = """<h1>Your account</h1>
<div class="pii"><!-- customer jane.COMMENT-8801@example.org --><p>Balance</p></div>
<div id="editor" contenteditable="true" style="min-height:2em"></div><p>After the account</p>"""


def test_a_comments_text_never_leaves_the_browser(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A comment shows nothing, and pages leave much in them: a template's data inside a masked
    region, the author a document pasted into an editor names. Its text went as it was (not
    even a masked region's rules reached it), in the snapshot, in added comments and as it
    changed."""
    url = other_origin.page("commented.html", COMMENTED, live, title="Account")
    code = _start_with(customer, url, {"version": 1, "mask": [".pii"]})
    view = share(customer, agent, live, code)
    expect(view.get_by_text("After the account")).to_be_attached()
    customer.page.evaluate(
        """() => {
        const pasted = '[if gte mso 9]><xml><o:Author>COMMENT-8802 Jane Doe</o:Author></xml>';
        document.querySelector('#editor').append(document.createComment(pasted), 'Hello');
        document.querySelector('.pii').firstChild.data = ' customer COMMENT-8803 ';
    }"""
    )
    expect(view.locator("#editor")).not_to_be_empty()
    caught_up(customer, view)
    frames = agent_plaintext(agent)
    for secret in ("COMMENT-8801", "COMMENT-8802", "COMMENT-8803", "Jane Doe"):
        assert secret not in frames, f"{secret!r} left the customer's browser"


COMPOSED = """<h1>Contact</h1><input id="name" aria-label="Name">
<div id="note" contenteditable="true" style="min-height:2em"></div>
<div data-tandem-unmask><input id="ref" aria-label="Reference"></div><p>After the form</p>"""


def test_text_composed_with_an_input_method_is_masked_as_typed_text(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """An input method (Japanese, Chinese, a phone's keyboard) shows what is being composed in
    the field itself, one change per step, before it commits: each step is masked as typing is,
    in a hidden field, a hidden editor and (7 digits or more) a field the site unmasks."""
    url = other_origin.page("composed.html", COMPOSED, live, title="Contact")
    code = _start_with(customer, url, {"version": 1})
    view = share(customer, agent, live, code)
    expect(view.get_by_text("After the form")).to_be_attached()
    cdp = customer.context.new_cdp_session(customer.page)
    fields = (("#name", "IMENAME"), ("#note", "IMENOTE"), ("#ref", "REF 5500000000000004"))
    for selector, word in fields:
        customer.page.locator(selector).click()
        for i in range(1, len(word) + 1):
            step = {"text": word[:i], "selectionStart": i, "selectionEnd": i}
            cdp.send("Input.imeSetComposition", step)
        cdp.send("Input.insertText", {"text": word})
    expect(customer.page.locator("#ref")).to_have_value("REF 5500000000000004")
    expect(customer.page.locator("#note")).to_have_text("IMENOTE")
    expect(view.locator("#ref")).to_have_value(re.compile(r"^REF \u2022+$"))  # the mirror is live
    caught_up(customer, view)
    frames = agent_plaintext(agent)
    for secret in ("IMEN", "IMENO", "5500000"):
        assert secret not in frames, f"{secret!r} left the customer's browser"
