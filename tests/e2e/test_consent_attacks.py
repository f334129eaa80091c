"""Consent and control under attack, in the real SDK and console.

The customer's questions (may the agent see this page, control it, record it; may a supervisor
watch) are answered only by the customer: not by a script on the page, not by a click the agent
or the relay made land on "Allow" by putting a question where the customer was about to click (a
question can appear at a moment of the agent's choosing, and the agent sees the customer's
pointer in the mirror), not after the customer stopped. docs/threat-model.md, "A question answers
only the customer" and "Stop takes effect at the click".
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tandem.directory import Directory
from tests.conftest import RunningServer, ServerFactory
from tests.e2e.conftest import (
    Joined,
    Party,
    agent_plaintext,
    get_help,
    join,
    share,
    sign_in,
)
from tests.e2e.test_control import agent_click, request_control
from tests.e2e.test_malicious_server import content_sent, malicious_server
from tests.e2e.test_workspace import wait_until
from tests.grants import of_org

# Waits (a frame at a time) for a question's button labelled `label` to appear in the Tandem UI
# (inside its two shadow roots), and returns where it is: the test's mouse clicks there at once,
# as a customer whose click the question appeared under. Every click that reaches the Tandem UI
# from then on is logged (before the SDK sees it: capture on the inner root) with whether the
# button said it was not answerable yet, so a test knows its click came while it was.
QUESTION_APPEARS = """async (label) => {
    const inner = () => document.querySelector("[data-tandem-ui]")?.shadowRoot
        ?.querySelector("[data-tandem-ui]")?.shadowRoot ?? null;
    const find = () => [...(inner()?.querySelectorAll(".dialog button") ?? [])]
        .find((b) => b.textContent === label) ?? null;
    let button;
    while (!(button = find())) await new Promise((done) => requestAnimationFrame(done));
    window.__clicksOnQuestion = [];
    inner().addEventListener("click", (event) => {
        if (event.composedPath()[0] !== button) return;
        window.__clicksOnQuestion.push({
            trusted: event.isTrusted, waiting: button.getAttribute("aria-disabled") === "true",
        });
    }, true);
    const box = button.getBoundingClientRect();
    return { x: box.left + box.width / 2, y: box.top + box.height / 2 };
}"""

# A script of the page's (or an extension's) answers a question through the open shadow roots:
# the button's own click(), and a click event made to look like a mouse's.
SCRIPT_CLICKS = """(label) => {
    const root = document.querySelector("[data-tandem-ui]").shadowRoot
        .querySelector("[data-tandem-ui]").shadowRoot;
    const button = [...root.querySelectorAll(".dialog button")]
        .find((b) => b.textContent === label);
    button.click();
    button.dispatchEvent(new MouseEvent("click", { bubbles: true, composed: true, detail: 1 }));
    button.dispatchEvent(new PointerEvent("click", { bubbles: true, composed: true, detail: 1 }));
}"""

QUESTION = """() => document.querySelector("[data-tandem-ui]")?.shadowRoot
    ?.querySelector("[data-tandem-ui]")?.shadowRoot
    ?.querySelector(".dialog h2")?.textContent ?? null"""


def click_at_once(customer: Party, label: str) -> dict[str, bool]:
    """Click where the question's ``label`` button appears, the moment it appears (the customer's
    click landing on a question that popped up under it); what the click found (``landed``)."""
    at = customer.page.evaluate(QUESTION_APPEARS, label)
    customer.page.mouse.click(at["x"], at["y"])
    clicks: list[dict[str, bool]] = customer.page.evaluate("() => window.__clicksOnQuestion")
    assert clicks and clicks[0]["trusted"], f"the click did not reach {label!r}: {clicks}"
    return clicks[0]


def landed_as_it_appeared(click: dict[str, bool]) -> None:
    """The click came while the question was new (its button said so): else the test did not
    try the attack it names."""
    assert click["waiting"], "the click came late: it did not land as the question appeared"


def live_view(agent: Party) -> None:
    """Until the console's view is proven live it sends nothing that acts on the page (and says
    so): an agent's action is the customer's browser's to refuse only from then on."""
    expect(agent.page.locator("#stage")).not_to_have_class(re.compile(r"\bnot-live\b"))


def test_a_consent_question_appearing_under_the_customers_click_does_not_take_it(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    """The agent joins as the customer clicks where "Allow" is about to be: that click is not
    an answer (nothing is shared, the question stays). The customer's click once the question
    has been shown a moment is."""
    customer.page.goto(f"{live.base}/demo/")
    code = get_help(customer)
    sign_in(agent, live)
    join(agent, code)
    click = click_at_once(customer, "Allow")
    assert customer.page.evaluate("() => window.Tandem.state") == "pending_consent"
    assert customer.page.evaluate(QUESTION) == "Alice wants to see this page"
    assert content_sent(customer) == []
    landed_as_it_appeared(click)
    # Read, then answered: taken (Playwright's click waits for the button to be answerable).
    customer.page.get_by_role("dialog").get_by_role("button", name="Allow").click()
    expect(agent.page.get_by_role("status")).to_contain_text("live")
    assert customer.page.evaluate("() => window.Tandem.state") == "sharing"


def test_a_question_the_relay_swaps_in_under_the_customers_click_does_not_take_it(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    """The customer is about to answer the agent's control question; the relay puts a
    supervisor's watch question (its own invention) in its place, under the pointer. The click
    meant for the first question answers neither: no watch is allowed, the question stays."""
    server, relay = malicious_server(server_factory)
    answers = relay.kept_from_customer("watch_consent")
    customer.page.goto(f"{server.base}/demo/")
    share(customer, agent, server, get_help(customer))
    expect(agent.page.get_by_role("status")).to_contain_text("live")
    request_control(customer, agent)
    allow_control = customer.page.get_by_role("dialog").get_by_role("button", name="Allow control")
    expect(allow_control).to_be_enabled()
    allow_control.hover()  # the customer is about to click it
    relay.inject_customer({"v": 1, "type": "watch_request", "watcher": "Sam"})
    click = click_at_once(customer, "Allow")
    assert customer.page.evaluate(QUESTION) == "Sam, a supervisor, asks to watch too"
    expect(customer.page.get_by_text("Read this code to Sam")).to_have_count(0)
    landed_as_it_appeared(click)
    # Refusing is at once (always safe); the relay hears that answer only.
    customer.page.get_by_role("dialog").get_by_role("button", name="Refuse").click()
    wait_until(customer.page, lambda: bool(answers))
    assert answers == [{"v": 1, "type": "watch_consent", "granted": False}]


def test_a_script_on_the_page_cannot_answer_the_consent_question(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    """The widget's shadow roots are open (for assistive technology): a script of the site's,
    or an extension's, reaches its buttons. Its clicks are no answer; nothing is shared."""
    customer.page.goto(f"{live.base}/demo/")
    code = get_help(customer)
    sign_in(agent, live)
    join(agent, code)
    allow = customer.page.get_by_role("dialog").get_by_role("button", name="Allow")
    expect(allow).to_be_enabled()  # the wait is over: only the script's clicks are refused
    customer.page.evaluate(SCRIPT_CLICKS, "Allow")
    assert customer.page.evaluate("() => window.Tandem.state") == "pending_consent"
    assert content_sent(customer) == []
    allow.click()  # the customer's own
    expect(agent.page.get_by_role("status")).to_contain_text("live")


def test_a_script_on_the_page_cannot_grant_the_agent_control(joined: Joined) -> None:
    customer, agent = joined.customer, joined.agent
    request_control(customer, agent)
    allow = customer.page.get_by_role("dialog").get_by_role("button", name="Allow control")
    expect(allow).to_be_enabled()
    customer.page.evaluate(SCRIPT_CLICKS, "Allow control")
    assert customer.page.evaluate(QUESTION) == "Alice asks to control this page"
    expect(customer.page.get_by_role("button", name="Take back control")).to_have_count(0)
    customer.page.get_by_role("dialog").get_by_role("button", name="Refuse").click()
    expect(agent.page.get_by_role("status")).to_contain_text("The customer refused control.")
    assert "You have control" not in agent.page.locator("#status").inner_text()


LAST_ADD_TO_CART_BELOW = """() => [...document.querySelectorAll("button")]
    .filter((b) => /Add to cart/.test(b.textContent)).pop()
    .getBoundingClientRect().top > innerHeight"""


def covered(agent: Party) -> int:
    """How many of the agent's actions the customer's browser refused as covered by its UI."""
    return agent_plaintext(agent).count('"code":"covered"')


def test_while_a_question_is_open_the_agents_control_does_not_act_on_the_page_behind_it(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    """Control granted, a question open (here a supervisor's, which the relay may ask at any
    time): the customer reads it, the page behind is dimmed. The agent's scrolling (and anything
    out of view, which the question's backdrop does not cover) was still done then; now it is
    refused until the question is answered."""
    server, relay = malicious_server(server_factory)
    # The answer to the relay's own question stays with it (the server asked nothing).
    relay.swallow_from_customer = lambda message: message.get("type") == "watch_consent"
    customer.page.set_viewport_size({"width": 800, "height": 400})  # the shop scrolls
    agent.page.set_viewport_size({"width": 1400, "height": 900})
    customer.page.goto(f"{server.base}/demo/")
    view = share(customer, agent, server, get_help(customer))
    expect(agent.page.get_by_role("status")).to_contain_text("live")
    request_control(customer, agent)
    customer.page.get_by_role("dialog").get_by_role("button", name="Allow control").click()
    expect(agent.page.get_by_role("status")).to_contain_text("You have control")
    relay.inject_customer({"v": 1, "type": "watch_request", "watcher": "Sam"})
    expect(customer.page.get_by_role("dialog")).to_contain_text("Sam, a supervisor, asks")
    layer = agent.page.locator("#control-layer").bounding_box()
    assert layer is not None
    agent.page.mouse.move(layer["x"] + layer["width"] / 2, layer["y"] + layer["height"] / 2)
    live_view(agent)
    agent.page.mouse.wheel(0, 300)
    wait_until(agent.page, lambda: covered(agent) == 1)
    assert customer.page.evaluate("() => window.scrollY") == 0
    # A button below the customer's screen, which the question's backdrop does not cover.
    assert customer.page.evaluate(LAST_ADD_TO_CART_BELOW)
    agent_click(agent, view, "button:has-text('Add to cart') >> nth=-1")
    wait_until(agent.page, lambda: covered(agent) == 2)
    expect(customer.page.locator("#cart-count")).to_have_text("0")
    # Answered: the agent's control acts again.
    customer.page.get_by_role("dialog").get_by_role("button", name="Refuse").click()
    expect(customer.page.get_by_role("dialog")).to_have_count(0)
    agent_click(agent, view, "button:has-text('Add to cart')")
    expect(customer.page.locator("#cart-count")).to_have_text("1")
    assert customer.page.evaluate("() => window.scrollY") == 0


def test_while_a_question_is_open_stop_sharing_is_still_one_click(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    """A question takes the banner's place while it is open, and the agent (or the relay, with
    a supervisor's) can ask again the moment it is answered: the customer had to answer before
    Stop sharing was there to click, and a question asked again at once could take that click.
    Every question asked while sharing offers Stop sharing itself, and it stops at once."""
    customer.page.goto(f"{live.base}/demo/")
    share(customer, agent, live, get_help(customer))
    expect(agent.page.get_by_role("status")).to_contain_text("live")
    request_control(customer, agent)
    question = customer.page.get_by_role("dialog")
    question.get_by_role("button", name="Stop sharing").click()
    assert customer.page.evaluate("() => window.Tandem.state") == "ended"
    expect(question).to_have_count(0)
    expect(customer.page.get_by_text("You stopped sharing")).to_be_visible()
    expect(agent.page.get_by_role("status")).to_contain_text("Session ended")


def test_a_stop_the_relay_withholds_survives_a_reload_without_a_silent_resume(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    """The relay never passes the customer's `stop` on, so the server still holds the session and
    would answer a `resume`; the customer reloads the page (or moves on in the site). The page
    does not take the session up again: no socket, nothing sent, nothing shown but the page."""
    server, relay = malicious_server(server_factory)
    swallowed = relay.swallow_stops()
    agent.page.add_init_script("window.__tandemFreshness = { challengeMs: 500, staleMs: 2000 };")
    customer.page.goto(f"{server.base}/demo/")
    share(customer, agent, server, get_help(customer))
    expect(agent.page.get_by_role("status")).to_contain_text("live")
    customer.page.get_by_role("button", name="Stop sharing").click()
    wait_until(customer.page, lambda: bool(swallowed))
    sockets: list[Any] = []
    customer.page.on("websocket", lambda ws: sockets.append(ws))
    customer.page.reload()
    customer.page.goto(f"{server.base}/demo/checkout.html")
    assert customer.page.evaluate("() => window.Tandem.state") == "idle"
    assert customer.page.evaluate("() => sessionStorage.getItem('tandem.session')") is None
    expect(customer.page.get_by_role("button", name="Stop sharing")).to_have_count(0)
    # The console asks on; its view goes not live, seconds in which a resumed page would have
    # opened a socket and sent its page.
    expect(agent.page.locator('#stage.not-live[data-not-live="Not live"]')).to_be_visible()
    assert sockets == [], "the page opened a socket after Stop"


@pytest.mark.parametrize(
    "lie",
    ["Alice \u202e(your bank)", "Alice\u200f", "Al\u200bice"],
    ids=["override", "mark", "zwsp"],
)
def test_a_name_the_relay_writes_to_reorder_the_question_ends_the_session_unasked(
    server_factory: ServerFactory, customer: Party, agent: Party, lie: str
) -> None:
    """The relay names the agent with a right-to-left override in it: shown in "<name> wants
    to see this page", it turns the rest of the sentence around; with an invisible mark or
    zero-width space, "Alice" of another organisation's or team's looks like the agent the
    customer was told of. The honest server never sends such a name (its rule for display names
    refuses it): the session ends, nothing asked."""
    server, relay = malicious_server(server_factory)
    named: list[str] = []

    def to_customer(message: dict[str, Any]) -> list[dict[str, Any]]:
        if message.get("type") == "agent_joined":
            named.append(message["agent"])
            return [{**message, "agent": lie}]
        return [message]

    relay.to_customer = to_customer
    customer.page.goto(f"{server.base}/demo/")
    code = get_help(customer)
    sign_in(agent, server)
    join(agent, code)
    expect(customer.page.get_by_role("alert")).to_contain_text("Help was stopped for your safety")
    assert named == ["Alice"]
    expect(customer.page.get_by_role("dialog")).to_have_count(0)
    assert customer.page.evaluate("() => window.Tandem.state") == "ended"
    assert content_sent(customer) == []
    expect(agent.page.get_by_role("status")).to_contain_text("Session ended")


async def alices_name_from_an_earlier_version(directory: Directory) -> None:
    """alice's display name as an earlier version let it be stored: "Alice" and an invisible
    left-to-right mark, which looked like any other account's "Alice"."""
    await directory.storage.update_user(
        of_org("default"), "alice", role="agent", display_name="Alice\u200e"
    )


def test_a_name_stored_before_the_rule_is_asked_with_its_invisible_mark_shown(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    """A name an earlier version stored with an invisible character in it is no name the
    widget takes (it would end every session of that agent): the honest server sends it as the
    rule has it, its invisible character a visible U+FFFD, in the question and in the console."""
    server = server_factory(seed=alices_name_from_an_earlier_version)
    customer.page.goto(f"{server.base}/demo/")
    code = get_help(customer)
    sign_in(agent, server)
    expect(agent.page.locator("#whoami")).to_contain_text("Alice\ufffd")
    join(agent, code)
    expect(customer.page.get_by_role("dialog")).to_contain_text(
        "Alice\ufffd wants to see this page"
    )
    assert customer.page.evaluate("() => window.Tandem.state") == "pending_consent"


MALAYALAM = "\u0d05\u0d28\u0d4d\u200d\u0d35\u0d30\u0d4d\u200d"
"""Anwar in Malayalam, each chillu a virama and a joiner (the joiner last in the name)."""


async def alice_is_anwar_in_malayalam(directory: Directory) -> None:
    await directory.storage.update_user(
        of_org("default"), "alice", role="agent", display_name=MALAYALAM
    )


def test_an_agent_named_in_malayalam_is_asked_for_as_named(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    """A Malayalam name ending in a chillu (its joiner last) was refused by both halves of the
    name rule: the widget took it for a relay's trick and ended the session unasked, and an
    admin could not set it. The question names the agent as written."""
    server = server_factory(seed=alice_is_anwar_in_malayalam)
    customer.page.goto(f"{server.base}/demo/")
    code = get_help(customer)
    sign_in(agent, server)
    expect(agent.page.locator("#whoami")).to_contain_text(MALAYALAM)
    join(agent, code)
    expect(customer.page.get_by_role("dialog")).to_contain_text(
        f"{MALAYALAM} wants to see this page"
    )
    assert customer.page.evaluate("() => window.Tandem.state") == "pending_consent"


STOP_BUTTON = """() => document.querySelector("[data-tandem-ui]").shadowRoot
    .querySelector("[data-tandem-ui]").shadowRoot.querySelector(".banner button.stop")"""


def test_stop_sharing_acts_as_the_mouse_presses_it(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    """The relay's `peer` (the agent's console away, back) and `link` notes redraw the sharing
    banner and change its width, as often as the relay sends them: a press on Stop sharing and
    its release somewhere else (the button moved, or was made anew) was no click, so a relay
    sending them a few times a second kept Stop sharing from taking one. Stopping is always
    safe: it acts at the press, whatever happens before the release."""
    customer.page.goto(f"{live.base}/demo/")
    share(customer, agent, live, get_help(customer))
    expect(agent.page.get_by_role("status")).to_contain_text("live")
    box = customer.page.get_by_role("button", name="Stop sharing").bounding_box()
    assert box is not None
    customer.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    customer.page.mouse.down()
    assert customer.page.evaluate("() => window.Tandem.state") == "ended"
    expect(customer.page.get_by_text("You stopped sharing")).to_be_visible()
    customer.page.mouse.up()
    expect(agent.page.get_by_role("status")).to_contain_text("Session ended")


def test_the_relays_redraws_of_the_banner_keep_its_buttons(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    """Each redraw the relay's `peer` brought made the banner's buttons anew (a press on one and
    the release on the next is no click, for the keyboard too: focus was moved by hand). The
    banner is redrawn in place: Stop sharing is the same button before and after."""
    server, relay = malicious_server(server_factory)
    customer.page.goto(f"{server.base}/demo/")
    share(customer, agent, server, get_help(customer))
    expect(agent.page.get_by_role("status")).to_contain_text("live")
    customer.page.evaluate(f"() => {{ ({STOP_BUTTON})().dataset.seen = 'before'; }}")
    relay.inject_customer({"v": 1, "type": "peer", "connected": False})
    away = customer.page.get_by_role("region", name=re.compile("Alice is reconnecting"))
    expect(away).to_be_visible()
    relay.inject_customer({"v": 1, "type": "peer", "connected": True})
    expect(away).to_have_count(0)
    assert customer.page.evaluate(f"() => ({STOP_BUTTON})().dataset.seen") == "before"
    customer.page.get_by_role("button", name="Stop sharing").click()
    assert customer.page.evaluate("() => window.Tandem.state") == "ended"


def test_while_a_supervisors_code_shows_stop_sharing_is_still_one_click(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    """The customer allowed a supervisor, whose code to read out takes the banner's place until
    the supervisor's browser pairs: a supervisor the relay made up never does, so the code stayed
    and Stop sharing was a Cancel away. The code offers Stop sharing itself."""
    server, relay = malicious_server(server_factory)
    # The relay keeps the page's answers to its own question (the server asked nothing).
    relay.swallow_from_customer = lambda message: message.get("type", "").startswith("watch_")
    customer.page.goto(f"{server.base}/demo/")
    share(customer, agent, server, get_help(customer))
    expect(agent.page.get_by_role("status")).to_contain_text("live")
    relay.inject_customer({"v": 1, "type": "watch_request", "watcher": "Sam"})
    customer.page.get_by_role("dialog").get_by_role("button", name="Allow").click()
    code = customer.page.get_by_role("region", name="Supervisor code")
    expect(code).to_contain_text("Code for Sam")
    code.get_by_role("button", name="Stop sharing").click()
    assert customer.page.evaluate("() => window.Tandem.state") == "ended"
    expect(customer.page.get_by_text("You stopped sharing")).to_be_visible()
    expect(agent.page.get_by_role("status")).to_contain_text("Session ended")


def test_a_code_check_the_relay_never_finishes_can_be_cancelled(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    """The relay withholds the agent's key-exchange answer: the page says it is checking the
    code, for as long as the relay likes, and a reload checks again. Nothing is shared, but the
    customer could not end it short of closing the tab. Cancel ends it, for good."""
    server, relay = malicious_server(server_factory)
    withheld: list[dict[str, Any]] = []

    def to_customer(message: dict[str, Any]) -> list[dict[str, Any]]:
        if message.get("type") == "handshake":
            withheld.append(message)
            return []
        return [message]

    relay.to_customer = to_customer
    customer.page.goto(f"{server.base}/demo/")
    code = get_help(customer)
    sign_in(agent, server)
    join(agent, code)
    expect(customer.page.get_by_text("Checking the code")).to_be_visible()
    wait_until(customer.page, lambda: bool(withheld))
    customer.page.get_by_role("button", name="Cancel").click()
    assert customer.page.evaluate("() => window.Tandem.state") == "ended"
    expect(customer.page.get_by_text("Checking the code")).to_have_count(0)
    expect(agent.page.get_by_role("status")).to_contain_text("Session ended")
    customer.page.reload()
    assert customer.page.evaluate("() => window.Tandem.state") == "idle"
    assert content_sent(customer) == []


def test_the_relays_notes_do_not_take_a_question_away(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    """The agent asks for control; while the customer reads the question, the relay says the
    agent's console went away and came back (`peer`). Each note redrew the sharing banner over
    the question (and the one that starts a new epoch made the page's remote control anew): the
    question was gone, and the agent could not ask again. The question stays until answered,
    and its answer holds in the new epoch."""
    server, relay = malicious_server(server_factory)
    customer.page.set_viewport_size({"width": 1000, "height": 800})
    agent.page.set_viewport_size({"width": 1400, "height": 900})
    customer.page.goto(f"{server.base}/demo/")
    view = share(customer, agent, server, get_help(customer))
    expect(agent.page.get_by_role("status")).to_contain_text("live")
    request_control(customer, agent)
    keys_before = sum(1 for f in customer.frames.sent if f[:1] == b"\x02")
    relay.inject_customer({"v": 1, "type": "peer", "connected": False})
    relay.inject_customer({"v": 1, "type": "peer", "connected": True})
    # The second starts a new epoch: its key frame went, so both notes were taken in.
    wait_until(
        customer.page,
        lambda: sum(1 for f in customer.frames.sent if f[:1] == b"\x02") > keys_before,
    )
    question = customer.page.get_by_role("dialog")
    expect(question).to_contain_text("Alice asks to control this page")
    question.get_by_role("button", name="Allow control").click()
    expect(agent.page.get_by_role("status")).to_contain_text("You have control")
    agent_click(agent, view, "button:has-text('Add to cart')")
    expect(customer.page.locator("#cart-count")).to_have_text("1")


def test_a_control_question_another_took_the_place_of_can_be_asked_again(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    """The relay puts a supervisor's question in place of the agent's control question; the
    customer refuses it. The control question was gone, and the page took no control request of
    the agent's again (it still waited for the answer to the one it had asked)."""
    server, relay = malicious_server(server_factory)
    relay.swallow_from_customer = lambda message: message.get("type", "").startswith("watch_")
    customer.page.goto(f"{server.base}/demo/")
    share(customer, agent, server, get_help(customer))
    expect(agent.page.get_by_role("status")).to_contain_text("live")
    request_control(customer, agent)
    relay.inject_customer({"v": 1, "type": "watch_request", "watcher": "Sam"})
    question = customer.page.get_by_role("dialog")
    expect(question).to_contain_text("Sam, a supervisor, asks")
    question.get_by_role("button", name="Refuse").click()
    expect(question).to_have_count(0)
    live_view(agent)
    request_control(customer, agent)
    question.get_by_role("button", name="Allow control").click()
    expect(agent.page.get_by_role("status")).to_contain_text("You have control")
