"""What rrweb records beside the page's nodes never speaks of hidden content.

A hidden (`hide`) or blocked (`.rr-block`) region reaches the agent as an empty box, also what its
web components draw later. rrweb records more than nodes, though: the style sheets of a shadow
root (adopted, inserted rules, changed declarations) and the customer's pointer, clicks, focus,
typing and scrolling, each naming the node it happened on. Those of a hidden region went out as
they were: a sheet's `content: "..."` is text, and where the customer points or scrolls inside
the box is what the box hides. Each test does that on a real page and looks at every event the
agent's console decrypted; a public twin of each thing shows that it still reaches the agent.
"""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, agent_plaintext, caught_up, share

# rrweb's incremental sources that name a node the customer acts on (rrweb-events.ts).
MOUSE_MOVE, MOUSE_INTERACTION, SCROLL, INPUT = 1, 2, 3, 5
ACTIONS = {MOUSE_MOVE, MOUSE_INTERACTION, SCROLL, INPUT, 6, 7, 12, 14}  # touch, media, drag, select


def agent_events(agent: Party) -> list[dict[str, Any]]:
    """Every rrweb event the agent's console decrypted so far, in order (a payload split into
    parts is joined again)."""
    events: list[dict[str, Any]] = []
    parts: dict[int, dict[int, str]] = {}
    for line in agent_plaintext(agent).split("\n"):
        try:
            payload = json.loads(line)
        except ValueError:
            continue
        if not isinstance(payload, dict):
            continue
        if payload.get("k") == "part":
            got = parts.setdefault(payload["id"], {})
            got[payload["i"]] = payload["d"]
            if len(got) < payload["n"]:
                continue
            payload = json.loads("".join(got[i] for i in range(payload["n"])))
        if payload.get("k") == "events":
            events.extend(payload["events"])
    return events


def actions(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The incremental events about what the customer does (pointer, clicks, keys, scrolling)."""
    return [e["data"] for e in events if e.get("type") == 3 and e["data"].get("source") in ACTIONS]


COMPONENTS = """
<h1>Support</h1>
<chat-widget id="chat"></chat-widget>
<pub-widget id="pub"></pub-widget>
<div id="vault" class="rr-block" style="width:300px;height:60px">
  <button id="vb">Vault</button></div>
<button id="public-btn">Public button</button>
<input id="public-input" data-tandem-unmask>
<div id="public-scroll" style="height:40px;overflow:auto">
  <div style="height:400px">Scroll</div></div>
<p>Below the chat</p>
<script>
const hiddenSheet = new CSSStyleSheet();
hiddenSheet.replaceSync('p::after { content: "ADOPTED-SECRET-5101" }');
const publicSheet = new CSSStyleSheet();
publicSheet.replaceSync('p::after { content: "PUBLIC-ADOPTED-OK-5201" }');
customElements.define("chat-widget", class extends HTMLElement {
  connectedCallback() {
    if (this.shadowRoot) return;
    this.attachShadow({ mode: "open" }).adoptedStyleSheets = [hiddenSheet];
    this.shadowRoot.innerHTML = "<p>No messages yet</p>";
  }
  render() {
    this.shadowRoot.innerHTML = "<style>p { color: blue }</style><p>Chat</p>" +
      "<button id='hb' style='width:200px;height:30px'>Hidden button</button>" +
      "<input id='hi'><div id='hs' style='height:40px;overflow:auto'>" +
      "<div style='height:400px'>Scroll me</div></div>";
  }
});
customElements.define("pub-widget", class extends HTMLElement {
  connectedCallback() {
    if (this.shadowRoot) return;
    this.attachShadow({ mode: "open" }).adoptedStyleSheets = [publicSheet];
    this.shadowRoot.innerHTML = "<p>Public widget</p>";
  }
});
</script>
"""


def _start(customer: Party, live: RunningServer, other_origin: OtherOrigin) -> str:
    url = other_origin.page("components.html", COMPONENTS, live, title="Chat")
    customer.page.goto(url)
    code: str = customer.page.evaluate(
        "() => window.Tandem.start({policy: {version: 1, hide: ['#chat']}})"
    )
    return code


def test_style_sheets_of_a_hidden_component_never_reach_the_agent(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    code = _start(customer, live, other_origin)
    view = share(customer, agent, live, code)
    expect(view.get_by_text("Below the chat")).to_be_attached()
    # What the component draws later is in rrweb's mirror (dropped, but known by id) once
    # its mutations are recorded: its <style>'s rules are then recorded too.
    customer.page.evaluate("() => document.querySelector('#chat').render()")
    caught_up(customer, view)
    customer.page.evaluate(
        """() => {
            const root = document.querySelector('#chat').shadowRoot;
            // A rule inserted into a <style> of the hidden root, a declaration changed there,
            // a rule of its adopted sheet, and a sheet it adopts later: each an rrweb event.
            const sheet = root.querySelector('style').sheet;
            sheet.insertRule('p::before { content: "RULE-SECRET-5102" }', 1);
            sheet.cssRules[0].style.setProperty('--said', '"DECL-SECRET-5103"');
            hiddenSheet.insertRule('i::after { content: "CONSTRUCTED-RULE-SECRET-5105" }');
            const late = new CSSStyleSheet();
            late.replaceSync('b::after { content: "LATE-ADOPTED-SECRET-5104" }');
            root.adoptedStyleSheets = [...root.adoptedStyleSheets, late];
            // The public twin: its sheet's rules and a rule added later reach the agent.
            publicSheet.insertRule('i::after { content: "PUBLIC-RULE-OK-5202" }');
        }"""
    )
    caught_up(customer, view)
    frames = agent_plaintext(agent)
    for shown in ("PUBLIC-ADOPTED-OK-5201", "PUBLIC-RULE-OK-5202"):
        assert shown in frames, f"{shown!r} of the public component did not reach the agent"
    expect(view.locator("#pub")).to_be_attached()
    secrets = [
        "ADOPTED-SECRET-5101",
        "RULE-SECRET-5102",
        "DECL-SECRET-5103",
        "LATE-ADOPTED-SECRET-5104",
        "CONSTRUCTED-RULE-SECRET-5105",
    ]
    leaked = [secret for secret in secrets if secret in frames]
    assert not leaked, f"the hidden component's style sheets reached the agent: {leaked}"


def test_what_the_customer_does_inside_hidden_content_never_reaches_the_agent(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    code = _start(customer, live, other_origin)
    view = share(customer, agent, live, code)
    expect(view.get_by_text("Below the chat")).to_be_attached()
    customer.page.evaluate("() => document.querySelector('#chat').render()")
    caught_up(customer, view)
    before = len(agent_events(agent))
    page = customer.page
    # Point at, click, type into and scroll what the hidden component draws (open shadow root),
    # and point at a blocked region's button (light DOM).
    page.locator("#chat #hb").click()
    page.locator("#chat #hi").click()
    page.keyboard.type("typed in hidden", delay=10)
    page.locator("#chat #hs").hover()
    page.mouse.wheel(0, 120)
    expect(page.locator("#chat #hs")).not_to_have_js_property("scrollTop", 0)
    page.locator("#vb").hover()
    page.mouse.move(20, 500)  # leave for the page's top corner, over nothing hidden
    page.mouse.move(5, 5)
    caught_up(customer, view)
    during = actions(agent_events(agent)[before:])
    hidden_ids = {a.get("id") for a in during if a.get("source") != MOUSE_MOVE}
    moved_ids = {
        p.get("id") for a in during if a.get("source") == MOUSE_MOVE for p in a["positions"]
    }
    # Only moves over the page itself, on the way out, may go: nothing with an id inside.
    assert not hidden_ids, f"actions inside hidden content reached the agent: {during}"
    assert moved_ids <= _page_ids(agent_events(agent)), during
    # The public twin: a click, typing and scrolling on the page itself do reach the agent.
    before = len(agent_events(agent))
    page.locator("#public-btn").click()
    page.locator("#public-input").fill("typed in public")
    page.locator("#public-scroll").hover()
    page.mouse.wheel(0, 120)
    expect(view.locator("#public-input")).to_have_value("typed in public")
    caught_up(customer, view)
    sources = {a["source"] for a in actions(agent_events(agent)[before:])}
    assert {MOUSE_INTERACTION, INPUT, SCROLL} <= sources, sources


def _page_ids(events: list[dict[str, Any]]) -> set[Any]:
    """Ids of the nodes of the page outside hidden content that the agent knows: the full
    snapshot's and those added since, without what hidden regions' placeholders hold."""
    ids: set[Any] = set()
    stack: list[Any] = []
    for e in events:
        if e.get("type") == 2:
            stack.append(e["data"]["node"])
        elif e.get("type") == 3 and e["data"].get("source") == 0:
            stack.extend(add["node"] for add in e["data"].get("adds", []))
    while stack:
        node = stack.pop()
        attrs = node.get("attributes") or {}
        if "rr_width" in attrs:  # a blocked region's placeholder: it and all in it are hidden
            continue
        ids.add(node.get("id"))
        stack.extend(node.get("childNodes", []))
    return ids
