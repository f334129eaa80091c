"""Tandem's own UI on the customer's screen (help code, questions, banner, outlines of hidden
fields, the supervisor's code, the agent's pointer, notices) is for the customer only: none of it
reaches the agent or a supervisor, and remote control cannot act on it or on what it covers.

The old leak: the UI's host was blocked, but rrweb still watched the host's (open) shadow root, so
everything drawn after the recorder started (the banner redrawn for control or recording, the
supervisor's code, the outlines, with their stylesheet) was serialised and mirrored."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import OtherOrigin, Party, agent_plaintext, share, start_on
from tests.e2e.test_control import grant
from tests.e2e.test_recordings import create_key
from tests.e2e.test_supervisor import read_watch_code, supervisor_console

# Words of the UI, in every state; none may reach an agent's or a supervisor's browser.
UI_TEXTS = (
    "Your help code",
    "wants to see this page",
    "Sharing this page with",
    "can control this page",
    "Stop sharing",
    "Take back control",
    "Stop recording",
    "● Recording",
    "asks to record this session",
    "asks to watch too",
    "asks to control this page",
    "Allow control",
    "Code for Sam",
    "Read this code to",
    "hidden from agent",
    "masked-outline",
    "Alice clicked",
    "Alice typed in",
    "tandem-title",
)

# Everything the replayed page holds, through open shadow roots and stylesheets: text,
# attributes and CSS rules (the outlines' label is CSS `content`).
MIRROR_TEXT = """(doc) => {
    const out = [];
    const rules = (sheets) => {
        for (const sheet of sheets) {
            try { for (const rule of sheet.cssRules) out.push(rule.cssText); } catch {}
        }
    };
    const visit = (node) => {
        if (node.nodeType === Node.TEXT_NODE) out.push(node.data);
        if (node.nodeType === Node.ELEMENT_NODE) {
            for (const attr of node.attributes) out.push(attr.value);
            if (node.shadowRoot) {
                rules(node.shadowRoot.adoptedStyleSheets);
                visit(node.shadowRoot);
            }
        }
        for (const child of node.childNodes) visit(child);
    };
    visit(doc);
    rules(doc.styleSheets);
    rules(doc.adoptedStyleSheets);
    return out.join("\\n");
}"""


def mirror_text(party: Party) -> str:
    text: str = party.page.evaluate(
        f"""() => ({MIRROR_TEXT})(
            document.querySelector('iframe[title="Customer view"]').contentDocument)"""
    )
    return text


def leaks(text: str, secrets: tuple[str, ...]) -> list[str]:
    return [secret for secret in secrets if secret in text]


def test_no_state_of_the_tandem_ui_reaches_the_agent_or_the_supervisor(
    live: RunningServer, customer: Party, agent: Party, supervisor: Party, tmp_path: Path
) -> None:
    create_key(supervisor, live, tmp_path)  # the organisation can record (admin, then signs out)
    supervisor_console(supervisor, live)
    customer.page.set_viewport_size({"width": 1000, "height": 800})
    agent.page.set_viewport_size({"width": 1400, "height": 900})
    customer.page.goto(f"{live.base}/demo/checkout.html")
    customer.page.get_by_role("button", name="Get help").click()
    code_widget = customer.page.get_by_role("region", name=re.compile("Help from"))
    expect(code_widget).to_contain_text("Your help code")
    code = re.sub(r"\D", "", code_widget.locator(".code").inner_text())
    view = share(customer, agent, live, code)
    expect(customer.page.locator("[data-tandem-ui] .masked-outline").first).to_be_attached()

    # Recording: a question, then the banner's recording state.
    agent.page.get_by_role("button", name="Ask to record").click()
    dialog = customer.page.get_by_role("dialog")
    expect(dialog).to_contain_text("Alice asks to record this session")
    assert_accessible(customer.page)  # every state of the widget (issue 15)
    dialog.get_by_role("button", name="Allow recording").click()
    expect(customer.page.get_by_text("● Recording")).to_be_visible()
    assert_accessible(customer.page)

    # A supervisor: a question, then a code shown only on the customer's screen.
    sam = supervisor.page
    row = sam.locator("#session-list li", has_text="Demo shop")
    row.get_by_role("button", name="Watch").click()
    dialog = customer.page.get_by_role("dialog")
    expect(dialog).to_contain_text("Sam, a supervisor, asks to watch too")
    assert_accessible(customer.page)
    dialog.get_by_role("button", name="Allow").click()
    watch_code = read_watch_code(customer)
    panel = customer.page.get_by_role("region", name="Supervisor code")
    shown_code = panel.locator(".code").inner_text().strip()
    assert_accessible(customer.page)
    expect(sam.get_by_role("status")).to_contain_text("The customer allowed it")
    sam.get_by_label("Session code").fill(watch_code)
    sam.get_by_role("button", name="Start watching").click()
    expect(sam.get_by_role("status")).to_contain_text("Watching the customer's page")
    sam_view = sam.frame_locator('iframe[title="Customer view"]')

    # Control: a question, the banner's control state, the pointer and notices.
    grant(customer, agent)
    expect(customer.page.get_by_role("button", name="Take back control")).to_be_visible()
    assert_accessible(customer.page)
    # Mid-screen on the customer's side, clear of the banner (control refuses what it covers).
    scrolled = customer.page.evaluate(
        "() => { document.getElementById('notes').scrollIntoView({block: 'center'});"
        " return window.scrollY; }"
    )
    # The agent aims once the mirror has followed that scroll: a box read before would move.
    agent.page.wait_for_function(
        """(y) => Math.abs(document.querySelector('iframe[title="Customer view"]')
            .contentWindow.scrollY - y) < 1""",
        arg=scrolled,
    )
    notes = view.locator("#notes")
    box = notes.bounding_box()
    assert box is not None
    agent.page.mouse.move(box["x"] + 10, box["y"] + 10)
    agent.page.mouse.move(box["x"] + 20, box["y"] + 12)
    expect(customer.page.locator("[data-tandem-ui] .pointer")).to_be_attached()
    agent.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(customer.page.get_by_text("Alice clicked “Delivery instructions”")).to_be_visible()
    agent.page.get_by_label("Type into the customer's field").press_sequentially("porch")
    expect(customer.page.get_by_text("Alice typed in “Delivery instructions”")).to_be_visible()

    # The customer types last, once the agent's text is all there (the notice comes with its
    # first letter): once both mirrors show it, everything before it has arrived.
    expect(customer.page.get_by_label("Delivery instructions")).to_have_value("porch")
    customer.page.get_by_label("Delivery instructions").press_sequentially(" done", delay=20)
    expect(view.locator("#notes")).to_have_value("porch done")
    expect(sam_view.locator("#notes")).to_have_value("porch done")

    secrets = (*UI_TEXTS, shown_code)
    assert len(shown_code) == 8, shown_code  # "ddd dddd": no rrweb number looks like it
    for name, party in (("agent", agent), ("supervisor", supervisor)):
        sent = leaks(agent_plaintext(party), secrets)
        assert not sent, f"the Tandem UI was sent to the {name}: {sent}"
        shown = leaks(mirror_text(party), secrets)
        assert not shown, f"the Tandem UI is in the {name}'s mirror: {shown}"
    assert "porch done" in agent_plaintext(supervisor)  # the searches above saw real content


def control_page(other_origin: OtherOrigin, live: RunningServer) -> str:
    """A page with a protected footer along the bottom, where the banner sits, and an ordinary
    button under the banner itself."""
    (other_origin.root / "own-ui.css").write_text(
        "footer { position: fixed; left: 0; right: 0; bottom: 0; height: 96px;"
        " background: #eee; z-index: 1; }\n"
        "#under { position: fixed; left: 50%; bottom: 20px; transform: translateX(-50%);"
        " width: 120px; height: 36px; z-index: 2; }\n"
    )
    return other_origin.page(
        "own-ui.html",
        '<link rel="stylesheet" href="own-ui.css">'
        "<main><h1>Your account</h1><button id='ok' type='button'>Harmless</button></main>"
        "<footer data-tandem-no-control>Footer</footer>"
        "<button id='under' type='button'>Under the banner</button>",
        live,
        title="Own UI",
    )


def modified_console_click(agent: Party, pick: str) -> None:
    """A modified console: its next click on the control layer is sent for the replayed node that
    `pick` (JS, given the replay's document) returns, whatever is under the agent's mouse. The
    status line is cleared first, so that the customer's answer to this click is what shows."""
    agent.page.evaluate(
        f"""() => {{
            const doc = document.querySelector('iframe[title="Customer view"]').contentDocument;
            const target = ({pick})(doc);
            if (!target) throw new Error("nothing to aim at");
            doc.elementFromPoint = () => target;
            // The console looks into open shadow roots at the point too (a web component's own
            // button): not into this one, the node picked is the one sent.
            if (target.shadowRoot) target.shadowRoot.elementFromPoint = () => null;
            document.querySelector('[role=status]').textContent = "";
        }}"""
    )
    layer = agent.page.locator("#control-layer").bounding_box()
    assert layer is not None
    agent.page.mouse.click(layer["x"] + 5, layer["y"] + 5)


# The deepest replayed node at a point, through shadow roots: what a console aiming at the
# mirrored banner would pick.
DEEP_AT = """(x, y) => (doc) => {
    let el = Document.prototype.elementFromPoint.call(doc, x, y);
    while (el && el.shadowRoot) {
        const inner = el.shadowRoot.elementFromPoint(x, y);
        if (!inner || inner === el) break;
        el = inner;
    }
    return el;
}"""


def center(box: dict[str, Any] | None) -> tuple[float, float]:
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_remote_control_cannot_reach_the_tandem_ui_or_what_it_covers(
    live: RunningServer, customer: Party, agent: Party, other_origin: OtherOrigin
) -> None:
    customer.page.set_viewport_size({"width": 1000, "height": 800})
    agent.page.set_viewport_size({"width": 1400, "height": 900})
    code = start_on(customer, control_page(other_origin, live))
    view = share(customer, agent, live, code)
    expect(view.locator("#under")).to_be_visible()
    grant(customer, agent)
    stop = customer.page.get_by_role("button", name="Stop sharing")
    expect(stop).to_be_visible()
    status = agent.page.get_by_role("status")

    customer.page.evaluate(
        "() => { window.clicks = 0; addEventListener('click', () => window.clicks++, true); }"
    )

    # Aimed at the banner's Stop sharing button, where the customer sees it.
    x, y = center(stop.bounding_box())
    modified_console_click(agent, f"({DEEP_AT})({x}, {y})")
    expect(status).to_contain_text("hidden from you or protected")
    # Aimed at the UI's host element, by its id in the mirror (the body's last element).
    modified_console_click(
        agent, "(doc) => doc.body.lastElementChild.tagName === 'DIV' && doc.body.lastElementChild"
    )
    expect(status).to_contain_text("hidden from you or protected")
    # Aimed at a page button that the banner covers on the customer's screen.
    modified_console_click(agent, "(doc) => doc.getElementById('under')")
    expect(status).to_contain_text("covered by the customer's Tandem controls")

    expect(stop).to_be_visible()  # sharing goes on
    expect(customer.page.get_by_text("Alice clicked")).to_have_count(0)
    assert customer.page.evaluate("() => window.clicks") == 0, "a click reached the page"
