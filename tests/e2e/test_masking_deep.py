"""Masking and hiding reach into shadow roots and same-origin frames (they used to stop there).

A region the policy (or rrweb's marks) masks or hides covers the web components and the frames in
it: their text never leaves the customer's browser, their images are not carried, and the agent
may not act on their buttons. Each test does what leaked before and looks for the secret in
everything the agent's console decrypted and in its mirror.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, agent_plaintext, caught_up, share
from tests.e2e.test_control import agent_click, grant
from tests.e2e.test_masking import OUTLINED

SHOWN = '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><title>shown</title></svg>'


def _start_with(customer: Party, url: str, policy: dict[str, Any]) -> str:
    customer.page.goto(url)
    code: str = customer.page.evaluate("(policy) => window.Tandem.start({policy})", policy)
    return code


def _assert_not_shown(agent: Party, view: Any, secret: str) -> None:
    assert secret not in agent_plaintext(agent)
    # get_by_text pierces open shadow roots; a frame's content is searched apart (below).
    assert view.get_by_text(secret).count() == 0


CHAT = """
<h1>Support</h1>
<div id="region"><chat-widget id="chat"></chat-widget></div>
<p>Below the chat</p>
<script>
customElements.define("chat-widget", class extends HTMLElement {
  connectedCallback() {
    if (!this.shadowRoot) this.attachShadow({ mode: "open" });
    this.render("No messages yet");
  }
  render(text) { this.shadowRoot.innerHTML = "<p class='msg'>" + text + "</p>"; }
});
</script>
"""


@pytest.mark.parametrize(
    ("mark", "policy"),
    [
        ("", {"version": 1, "hide": ["#chat"]}),
        ("#chat", {"version": 1}),  # class="rr-block" on the host, no policy
        ("#region", {"version": 1, "hide": ["#region"]}),  # a hidden ancestor of the host
    ],
    ids=["hide-host", "rr-block-host", "hide-ancestor"],
)
def test_what_a_hidden_component_draws_later_never_reaches_the_agent(
    live: RunningServer,
    other_origin: OtherOrigin,
    customer: Party,
    agent: Party,
    mark: str,
    policy: dict[str, Any],
) -> None:
    body = CHAT.replace('<chat-widget id="chat">', '<chat-widget id="chat" class="rr-block">')
    url = other_origin.page("chat.html", body if mark == "#chat" else CHAT, live, title="Chat")
    code = _start_with(customer, url, policy)
    view = share(customer, agent, live, code)
    expect(view.get_by_text("Below the chat")).to_be_attached()
    customer.page.evaluate(
        """() => {
            const chat = document.querySelector('#chat');
            chat.render('My PIN is HIDE-SHADOW-SECRET-4417');
            // Text right in the root, an attribute and a text change later: each leaked too.
            chat.shadowRoot.append('HIDE-LOOSE-SECRET-4418');
            chat.shadowRoot.querySelector('p').title = 'HIDE-TITLE-SECRET-4419';
            chat.shadowRoot.querySelector('p').firstChild.data = 'HIDE-EDIT-SECRET-4420';
        }"""
    )
    caught_up(customer, view)
    for secret in ["HIDE-SHADOW-SECRET", "HIDE-LOOSE-SECRET", "HIDE-TITLE-SECRET", "HIDE-EDIT"]:
        _assert_not_shown(agent, view, secret)
    # Nor does anything drawn there while the agent watches.
    assert view.locator("chat-widget p").count() == 0


BALANCE = """
<h1>Account</h1>
<div class="balance">Balance: <x-amount></x-amount></div>
<p>After the balance</p>
<script>
customElements.define("x-amount", class extends HTMLElement {
  constructor() {
    super();
    this.attachShadow({ mode: "open" }).innerHTML =
      "LOOSE-SHADOW-SECRET-7730<span>MASKED-SHADOW-SECRET-7731</span>";
  }
});
</script>
"""


@pytest.mark.parametrize(
    ("body", "policy"),
    [
        (BALANCE, {"version": 1, "mask": [".balance"]}),
        (BALANCE.replace('class="balance"', 'class="rr-mask"'), {"version": 1}),
    ],
    ids=["policy-mask", "rr-mask"],
)
def test_a_masked_region_masks_the_web_components_in_it(
    live: RunningServer,
    other_origin: OtherOrigin,
    customer: Party,
    agent: Party,
    body: str,
    policy: dict[str, Any],
) -> None:
    url = other_origin.page("balance.html", body, live, title="Account")
    code = _start_with(customer, url, policy)
    view = share(customer, agent, live, code)
    expect(view.get_by_text("After the balance")).to_be_attached()
    # The component is in the mirror, its text masked (one bullet per character).
    expect(view.locator("x-amount span")).to_have_text("\u2022" * 25)
    # Drawn again while the agent watches.
    customer.page.evaluate(
        """() => document.querySelector('x-amount').shadowRoot.querySelector('span')
            .textContent = 'LATER-SHADOW-SECRET-7732'"""
    )
    caught_up(customer, view)
    for secret in ["LOOSE-SHADOW-SECRET", "MASKED-SHADOW-SECRET", "LATER-SHADOW-SECRET"]:
        _assert_not_shown(agent, view, secret)


FRAMED = """
<h1>Statement</h1>
<div class="statement"><iframe src="inner.html" width="400" height="100"></iframe></div>
<p>After the statement</p>
"""
INNER = "<!doctype html><html><body><p>IFRAME-MASKED-SECRET-5520</p></body></html>"


def test_a_masked_region_masks_the_same_origin_frame_in_it(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    (other_origin.root / "inner.html").write_text(INNER)
    url = other_origin.page("framed.html", FRAMED, live, title="Statement")
    code = _start_with(customer, url, {"version": 1, "mask": [".statement"]})
    view = share(customer, agent, live, code)
    expect(view.get_by_text("After the statement")).to_be_attached()
    # The frame's page is in the mirror, its text masked.
    expect(view.frame_locator("iframe").locator("p")).to_have_text("\u2022" * 25)
    customer.page.frame_locator("iframe").locator("p").evaluate(
        "(p) => { p.textContent = 'IFRAME-LATER-SECRET-5521' }"
    )
    caught_up(customer, view)
    expect(view.frame_locator("iframe").locator("p")).to_have_text("\u2022" * 24)
    for secret in ["IFRAME-MASKED-SECRET", "IFRAME-LATER-SECRET"]:
        assert secret not in agent_plaintext(agent)
        assert secret not in view.frame_locator("iframe").locator("html").inner_html()


IMAGES = """
<h1>Cards</h1>
<div class="private">
  <x-pic id="masked-pic" data-src="shadow-secret.svg"></x-pic>
  <iframe src="pictures.html" width="100" height="40"></iframe>
</div>
<x-pic id="shown-pic" data-src="shadow-shown.svg"></x-pic>
<p>After the pictures</p>
<script>
customElements.define("x-pic", class extends HTMLElement {
  connectedCallback() {
    if (this.shadowRoot) return;
    const img = document.createElement("img");
    img.src = this.dataset.src;
    this.attachShadow({ mode: "open" }).append(img);
  }
});
</script>
"""


def test_images_in_a_masked_regions_components_and_frames_are_not_carried(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    for name in ["shadow-secret.svg", "frame-secret.svg", "shadow-shown.svg"]:
        (other_origin.root / name).write_text(SHOWN)
    (other_origin.root / "pictures.html").write_text(
        '<!doctype html><html><body><img src="frame-secret.svg"></body></html>'
    )
    sdk_fetches: list[str] = []  # what the customer's SDK fetched (not the page's own loads)
    customer.page.on(
        "request",
        lambda request: (
            sdk_fetches.append(request.url) if request.resource_type == "fetch" else None
        ),
    )
    url = other_origin.page("pictures-page.html", IMAGES, live, title="Cards")
    code = _start_with(customer, url, {"version": 1, "mask": [".private"]})
    view = share(customer, agent, live, code)
    expect(view.get_by_text("After the pictures")).to_be_attached()
    # The shown component's image is carried: the SDK does carry images from shadow roots.
    shown = view.locator("#shown-pic img")
    expect(shown).to_have_attribute("src", re.compile(r"^data:image/svg\+xml;base64,"))
    carried = base64.b64decode((shown.get_attribute("src") or "").split(",", 1)[1])
    assert carried == SHOWN.encode()
    caught_up(customer, view)
    expect(view.frame_locator("iframe").locator("img")).to_be_attached()
    assert not [url for url in sdk_fetches if "-secret" in url], sdk_fetches
    # The masked component's image is in the mirror, without its picture.
    assert not (view.locator("#masked-pic img").get_attribute("src") or "")
    assert not (view.frame_locator("iframe").locator("img").get_attribute("src") or "")


PAY = """
<h1>Checkout</h1>
<div class="guard" GUARD><x-pay id="guarded"></x-pay></div>
<x-pay id="free"></x-pay>
<p id="log">Clicked:</p>
<script>
customElements.define("x-pay", class extends HTMLElement {
  connectedCallback() {
    if (this.shadowRoot) return;
    const button = document.createElement("button");
    button.textContent = "Pay " + this.id;
    const log = document.querySelector("#log");
    button.addEventListener("click", () => { log.textContent += " " + this.id; });
    this.attachShadow({ mode: "open" }).append(button);
  }
});
</script>
"""

# The agent's console sends the node under its pointer; `elementFromPoint` answers a shadow host,
# so an agent who patches it (the console runs in the agent's browser) picks the button inside.
PIERCE = """() => {
    const doc = document.querySelector('iframe[title="Customer view"]').contentDocument;
    const top = doc.elementFromPoint.bind(doc);
    doc.elementFromPoint = (x, y) => {
        let el = top(x, y);
        while (el && el.shadowRoot) {
            const inner = el.shadowRoot.elementFromPoint(x, y);
            if (!inner || inner === el) break;
            el = inner;
        }
        return el;
    };
}"""


@pytest.mark.parametrize(
    ("guard", "policy"),
    [
        ("data-tandem-no-control", {"version": 1}),
        ("", {"version": 1, "mask": [".guard"]}),
    ],
    ids=["no-control", "policy-mask"],
)
def test_the_agent_may_not_click_a_button_inside_a_protected_regions_component(
    live: RunningServer,
    other_origin: OtherOrigin,
    customer: Party,
    agent: Party,
    guard: str,
    policy: dict[str, Any],
) -> None:
    # The agent's mirror then fits at scale 1, so agent clicks land where the test aims.
    customer.page.set_viewport_size({"width": 1000, "height": 800})
    agent.page.set_viewport_size({"width": 1400, "height": 900})
    url = other_origin.page("pay.html", PAY.replace("GUARD", guard), live, title="Checkout")
    code = _start_with(customer, url, policy)
    view = share(customer, agent, live, code)
    expect(view.locator("#free button")).to_be_visible()
    expect(view.locator("#guarded button")).to_be_visible()
    grant(customer, agent)
    agent.page.evaluate(PIERCE)

    agent_click(agent, view, "#guarded button")
    expect(agent.page.get_by_role("status")).to_contain_text("hidden from you or protected")
    # The same agent reaches a component's button elsewhere: the refusal is the region's.
    agent_click(agent, view, "#free button")
    expect(customer.page.locator("#log")).to_have_text("Clicked: free")


FIELD = """
<h1>Sign up</h1>
<x-field></x-field>
<script>
customElements.define("x-field", class extends HTMLElement {
  constructor() {
    super();
    this.attachShadow({ mode: "open" }).innerHTML = '<label>Name <input id="inner"></label>';
  }
});
</script>
"""


def test_the_customer_sees_outlined_the_hidden_field_inside_a_component(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    url = other_origin.page("field.html", FIELD, live, title="Sign up")
    code = _start_with(customer, url, {"version": 1})
    view = share(customer, agent, live, code)
    expect(view.locator("x-field input")).to_be_attached()
    field = customer.page.locator("x-field input").element_handle()
    customer.page.wait_for_function(OUTLINED, arg=field)
