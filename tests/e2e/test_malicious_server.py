"""A compromised relay tries to make the customer's page share without the customer's Allow.

The server is the real Tandem server wrapped in tests/malicious.py: it rewrites and injects the
control messages an attacker who runs the relay could. Consent lives in the customer's browser:
the SDK shares only after an Allow clicked there (or its own stored record of one, after a
navigation), and the agent's console shows nothing until the customer's browser says so inside
the encrypted channel.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import RunningServer, ServerFactory
from tests.e2e.conftest import (
    FrameLog,
    OtherOrigin,
    Party,
    agent_plaintext,
    allow,
    caught_up,
    get_help,
    join,
    mirror,
    open_console_as,
    share,
    sign_in,
    start_on,
)
from tests.e2e.test_workspace import wait_until
from tests.malicious import MaliciousRelay

DISTRUST = "Help was stopped for your safety"
INVALID_POLICY = (
    "Help is unavailable: the help server's privacy rules are invalid, so nothing was shared."
)
MISMATCH = "The code did not match"
DATABASES = "async () => (await indexedDB.databases()).map((d) => d.name)"
HELD = "async () => (await navigator.locks.query()).held.some((l) => l.name === 'tandem:in-use')"
LIVE = "You are seeing the customer's page live"


def malicious_server(
    server_factory: ServerFactory, **options: Any
) -> tuple[RunningServer, MaliciousRelay]:
    relays: list[MaliciousRelay] = []

    def wrap(app: Any) -> MaliciousRelay:
        relays.append(MaliciousRelay(app))
        return relays[-1]

    server = server_factory(wrap=wrap, **options)
    return server, relays[0]


def reported(relay: MaliciousRelay) -> list[str]:
    """The audit reports (``report`` events) the customer's page sends, as the relay reads them."""
    reports: list[str] = []

    def from_customer(message: dict[str, Any]) -> list[dict[str, Any]]:
        if message.get("type") == "report":
            reports.append(message["event"])
        return []

    relay.from_customer = from_customer
    return reports


def denying(*patterns: str) -> dict[str, Any]:
    """A team policy that keeps the pages matching ``patterns`` private."""
    return {"version": 1, "pages": {"deny": list(patterns)}}


def content_sent(customer: Party) -> list[bytes]:
    """Content and epoch-key frames the customer's page sent (what sharing would send)."""
    return [f for f in customer.frames.sent if f[:1] in (b"\x01", b"\x02")]


def test_a_resumed_the_page_never_asked_for_ends_the_session_unshared(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    server, relay = malicious_server(server_factory)
    handshakes: list[dict[str, Any]] = []

    def from_customer(message: dict[str, Any]) -> list[dict[str, Any]]:
        if message.get("type") == "handshake":
            handshakes.append(message)
            if len(handshakes) == 2:  # the customer confirmed the agent: consent would be next
                return [
                    {
                        "v": 1,
                        "type": "resumed",
                        "state": "sharing",
                        "agent": "Alice",
                        "code": None,
                        "policy": None,
                        "recording": False,
                    }
                ]
        return []

    relay.from_customer = from_customer
    customer.page.goto(f"{server.base}/demo/")
    code = get_help(customer)
    sign_in(agent, server)
    join(agent, code)
    expect(customer.page.get_by_role("alert")).to_contain_text(DISTRUST)
    assert customer.page.evaluate("() => window.Tandem.state") == "ended"
    expect(agent.page.get_by_role("status")).to_contain_text("Session ended")
    assert len(handshakes) == 2
    assert content_sent(customer) == []
    expect(agent.page.locator("iframe")).to_have_count(0)


def test_a_server_claiming_consent_after_a_navigation_is_not_believed(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    server, relay = malicious_server(server_factory)
    lied: list[dict[str, Any]] = []

    def to_customer(message: dict[str, Any]) -> list[dict[str, Any]]:
        if message.get("type") == "resumed" and message.get("state") == "pending_consent":
            lied.append(message)
            return [{**message, "state": "sharing"}]
        return [message]

    relay.to_customer = to_customer
    customer.page.goto(f"{server.base}/demo/")
    code = get_help(customer)
    sign_in(agent, server)
    join(agent, code)
    expect(customer.page.get_by_role("dialog")).to_contain_text("Alice")
    # The customer leaves the page without answering; the relay says they had allowed it.
    customer.page.goto(f"{server.base}/demo/cart.html")
    expect(customer.page.get_by_role("alert")).to_contain_text(DISTRUST)
    assert lied, "the relay never got to lie"
    assert content_sent(customer) == []
    expect(agent.page.get_by_role("status")).to_contain_text("Session ended")
    expect(agent.page.locator("iframe")).to_have_count(0)


def test_the_console_waits_for_the_customers_browser_not_the_servers_word(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    server, relay = malicious_server(server_factory)
    told: list[dict[str, Any]] = []

    def to_agent(message: dict[str, Any]) -> list[dict[str, Any]]:
        if message.get("type") == "handshake" and len(message.get("data", "")) < 50:
            # The customer's key confirmation (32 bytes): then the relay claims consent.
            told.append(message)
            return [message, {"v": 1, "type": "consent", "granted": True}]
        return [message]

    relay.to_agent = to_agent
    customer.page.goto(f"{server.base}/demo/")
    code = get_help(customer)
    sign_in(agent, server)
    join(agent, code)
    expect(customer.page.get_by_role("dialog")).to_contain_text("Alice")
    status = agent.page.get_by_role("status")
    expect(status).to_contain_text("Waiting for the customer's browser")
    assert told
    expect(agent.page.locator("iframe")).to_have_count(0)
    expect(agent.page.get_by_role("button", name="Request control")).to_be_hidden()
    # The customer's own answer decides: declined, nothing was ever shown.
    customer.page.get_by_role("dialog").get_by_role("button", name="Decline").click()
    expect(status).to_contain_text("declined")
    assert content_sent(customer) == []
    assert LIVE not in status.inner_text()


@pytest.mark.parametrize(
    "patterns", [("/reset-*",), ("/nothing-like-it*",)], ids=["matching", "not_matching"]
)
def test_a_team_policy_the_relay_sends_while_sharing_ends_the_session_and_answers_nothing(
    server_factory: ServerFactory,
    other_origin: OtherOrigin,
    customer: Party,
    agent: Party,
    patterns: tuple[str, ...],
) -> None:
    # Each policy the relay could apply mid-page was a yes/no question about the page's path
    # (sharing paused, reported as `page_paused`, or not): the path leaked a character at a
    # time. Now the rules are those of the customer's Allow; one sent later ends the session
    # the same way whether it matches the page or not.
    server, relay = malicious_server(server_factory, allow_origins=(other_origin.origin,))
    reports = reported(relay)
    url = other_origin.page("reset-9k2x7.html", "<h1>Reset your password</h1>", server)
    view = share(customer, agent, server, start_on(customer, url))
    expect(view.locator("h1")).to_have_text("Reset your password")
    relay.inject_customer({"v": 1, "type": "team_policy", "policies": [denying(*patterns)]})
    expect(customer.page.get_by_role("alert")).to_contain_text(DISTRUST)
    assert customer.page.evaluate("() => window.Tandem.state") == "ended"
    expect(agent.page.get_by_role("status")).to_contain_text("Session ended")
    assert reports == []  # no page_paused, no page_resumed: nothing to tell the answers apart


def test_a_resumed_with_other_team_policies_after_the_allow_ends_the_session_unpaused(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    # The same question asked on the next page (or after a dropped socket): the `resumed` that
    # answers the page's own resume carries team policies of the relay's choosing.
    server, relay = malicious_server(server_factory)
    reports = reported(relay)
    changed: list[dict[str, Any]] = []

    def to_customer(message: dict[str, Any]) -> list[dict[str, Any]]:
        if message.get("type") == "resumed":
            changed.append(message)
            return [{**message, "team_policies": [denying("/demo/cart*")]}]
        return [message]

    customer.page.goto(f"{server.base}/demo/")
    view = share(customer, agent, server, get_help(customer))
    expect(view.locator("h1").first).to_be_visible()
    relay.to_customer = to_customer
    customer.page.goto(f"{server.base}/demo/cart.html")
    expect(customer.page.get_by_role("alert")).to_contain_text(DISTRUST)
    assert changed, "the relay never got to change the rules"
    assert customer.page.evaluate("() => window.Tandem.state") == "ended"
    expect(agent.page.get_by_role("status")).to_contain_text("Session ended")
    assert reports == []


def test_the_relay_cannot_rename_the_agent_after_the_allow(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    server, relay = malicious_server(server_factory)
    renamed: list[dict[str, Any]] = []

    def to_customer(message: dict[str, Any]) -> list[dict[str, Any]]:
        if message.get("type") == "resumed":
            renamed.append(message)
            return [{**message, "agent": "Fraud Prevention Team"}]
        return [message]

    relay.to_customer = to_customer
    customer.page.goto(f"{server.base}/demo/")
    code = get_help(customer)
    sign_in(agent, server)
    join(agent, code)
    allow(customer)  # the dialog named Alice
    expect(mirror(agent).locator("h1").first).to_be_visible()
    customer.page.goto(f"{server.base}/demo/cart.html")  # a navigation: `resumed`
    expect(customer.page.get_by_role("alert")).to_contain_text(DISTRUST)
    assert renamed, "the relay never got to rename the agent"
    expect(customer.page.get_by_text("Fraud Prevention Team")).to_have_count(0)
    assert customer.page.evaluate("() => window.Tandem.state") == "ended"
    expect(agent.page.get_by_role("status")).to_contain_text("Session ended")
    expect(agent.page.get_by_role("button", name="Request control")).to_be_hidden()


def test_a_server_naming_an_old_session_in_created_cannot_skip_the_pairing_nor_replay_its_commands(
    server_factory: ServerFactory, customer: Party, agent: Party, supervisor: Party
) -> None:
    """The keys of a session whose tab closed without Stop sharing stay behind; a relay that
    answers a new tab's `create` with that session's id must still face SPAKE2 (its keys are
    never found for a session this tab did not pair) and cannot replay the old commands."""
    server, relay = malicious_server(server_factory)
    handshakes_from_customer: list[dict[str, Any]] = []
    created: list[dict[str, Any]] = []
    rewrite_to: dict[str, str] = {}
    held: list[dict[str, Any]] = []

    def to_customer(message: dict[str, Any]) -> list[dict[str, Any]]:
        if message.get("type") == "created":
            created.append(dict(message))
            if "session" in rewrite_to:
                return [{**message, "session_id": rewrite_to["session"]}]
        if "hold" in rewrite_to and message.get("type") == "handshake":
            held.append(message)  # the new console's answer waits until the replay was tried
            return []
        return [message]

    def from_customer(message: dict[str, Any]) -> list[dict[str, Any]]:
        if message.get("type") == "handshake":
            handshakes_from_customer.append(message)
        return []

    def to_agent(message: dict[str, Any]) -> list[dict[str, Any]]:
        if "session" in rewrite_to and message.get("type") == "consent":
            return []
        return [message]

    relay.to_customer = to_customer
    relay.to_agent = to_agent
    relay.from_customer = from_customer
    # Tab A: an honest session; the agent asks for control (a command the relay records).
    customer.page.goto(f"{server.base}/demo/")
    code1 = get_help(customer)
    sign_in(agent, server)
    join(agent, code1)
    allow(customer)
    expect(agent.page.get_by_role("status")).to_contain_text("live")
    old_session = created[0]["session_id"]
    agent.page.get_by_role("button", name="Request control").click()
    expect(customer.page.get_by_role("dialog")).to_contain_text("asks to control")
    customer.page.get_by_role("dialog").get_by_role("button", name="Refuse").click()
    commands = [f for f in customer.frames.received if f[:1] == b"\x03"]
    assert commands
    assert len(handshakes_from_customer) == 2
    # (Polled with evaluate: wait_for_function does not await an async predicate's promise.)
    wait_until(customer.page, lambda: "tandem" in customer.page.evaluate(DATABASES))

    # Tab A is closed without Stop sharing (its keys stay in IndexedDB); tab B asks for help and
    # the relay names the old session in its `created`.
    tab_b = customer.context.new_page()
    frames_b = FrameLog()
    frames_b.attach(tab_b)
    customer.page.close()
    # Its hold (a Web Lock) goes with its document, which a busy machine takes a moment to
    # destroy: only then is what it left behind no page's (a page that loads while it is still
    # held leaves it to the next one).
    tab_b.goto(f"{server.base}/healthz")
    wait_until(tab_b, lambda: not tab_b.evaluate(HELD))
    rewrite_to["session"] = old_session
    rewrite_to["hold"] = "handshake"
    tab_b.goto(f"{server.base}/demo/cart.html")
    # A page with no session of its own deletes what a closed tab left behind.
    wait_until(tab_b, lambda: "tandem" not in tab_b.evaluate(DATABASES))
    party_b = Party(customer.context, tab_b, frames_b, [])
    code2 = get_help(party_b)
    assert created[-1]["session_id"] != old_session
    open_console_as(supervisor, server, "alice")
    expect(supervisor.page.get_by_label("Session code")).to_be_visible()
    join(supervisor, code2)
    # Tab B runs SPAKE2 (its opening share) instead of finding the old keys; no consent asked.
    expect(tab_b.get_by_text("Checking the code")).to_be_visible()
    wait_until(tab_b, lambda: len(handshakes_from_customer) == 3)  # tab B's opening share
    wait_until(tab_b, lambda: bool(held))  # the console's answer, held by the relay
    expect(tab_b.get_by_role("dialog")).to_have_count(0)
    # The relay replays the old session's command, then lets the console's answer through.
    relay.inject_customer_bytes(commands[0])
    del rewrite_to["hold"]
    relay.inject_customer(held[0])
    # The console paired for the session it joined, the page for the id the relay gave it: the
    # code does not match, and the session ends with nothing shared and nothing obeyed.
    expect(tab_b.get_by_role("alert")).to_contain_text(MISMATCH)
    assert tab_b.evaluate("() => window.Tandem.state") == "ended"
    expect(supervisor.page.get_by_role("status")).to_contain_text("did not match")
    assert len(handshakes_from_customer) == 3, "tab B never confirmed a pairing"
    expect(tab_b.get_by_role("dialog")).to_have_count(0)
    sent_b = b"\n".join(frames_b.sent)
    assert b'"consent"' not in sent_b
    assert [f for f in frames_b.sent if f[:1] in (b"\x01", b"\x02")] == []
    expect(supervisor.page.locator("iframe")).to_have_count(0)


def test_a_relay_repeating_that_the_agent_is_back_cannot_keep_the_page_taking_snapshots(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    """The server's `peer` (the agent's console is back) starts a new epoch: a fresh content key
    and a full snapshot of the page, a few hundred milliseconds of a large page's main thread.
    A relay that said it again as soon as each epoch began kept the customer's page taking
    snapshots without end; now one goes at most every 2 s (PEER_REKEY_MS in session.ts)."""
    server, relay = malicious_server(server_factory)
    customer.page.goto(f"{server.base}/demo/")
    view = share(customer, agent, server, get_help(customer))
    expect(agent.page.get_by_role("status")).to_contain_text("live")

    def epochs() -> int:
        return len([f for f in customer.frames.sent if f[:1] == b"\x02"])

    before, told = epochs(), 0
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        started = epochs()
        relay.inject_customer({"v": 1, "type": "peer", "connected": True})
        told += 1
        while epochs() == started and time.monotonic() < deadline:
            customer.page.wait_for_timeout(20)  # lets Playwright log the page's frames
    started_under_attack = epochs() - before
    assert told >= 2
    assert started_under_attack <= 3, f"{started_under_attack} epochs in 3 s, {told} asked"
    # The one that waited for its turn still comes, and the session goes on.
    wait_until(customer.page, lambda: epochs() > before + started_under_attack)
    expect(agent.page.get_by_role("status")).to_contain_text("live")
    caught_up(customer, view)
    assert customer.page.evaluate("() => window.Tandem.state") == "sharing"


def test_stop_sharing_stops_at_once_when_the_relay_ignores_it(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    """The relay never passes the customer's `stop` on (the server keeps the session, waiting
    for the page to come back): the page still stops at the click. Its socket is closed and
    never opened again, nothing more is sent (not what the page shows next, not an echo of the
    agent's challenges), and its keys are gone."""
    server, relay = malicious_server(server_factory)
    swallowed = relay.swallow_stops()
    sockets: list[Any] = []
    customer.page.on("websocket", lambda ws: sockets.append(ws))
    # The console's freshness check asks every 500 ms and calls its view stale after 2 s
    # (console/freshness.ts: a test may only shorten them).
    agent.page.add_init_script("window.__tandemFreshness = { challengeMs: 500, staleMs: 2000 };")
    customer.page.goto(f"{server.base}/demo/")
    view = share(customer, agent, server, get_help(customer))
    expect(agent.page.get_by_role("status")).to_contain_text("live")
    assert len(sockets) == 1
    customer.page.get_by_role("button", name="Stop sharing").click()
    assert customer.page.evaluate("() => window.Tandem.state") == "ended"
    wait_until(customer.page, lambda: bool(swallowed) and sockets[0].is_closed())
    sent = len(customer.frames.sent)
    customer.page.evaluate(
        "() => document.body.append(Object.assign(document.createElement('p'), "
        "{textContent: 'AFTER-STOP-5561'}))"
    )
    # The agent's console asks on (its challenges go nowhere) until it says its view is stale:
    # seconds in which a page still sharing, or reconnecting, would have sent something.
    expect(agent.page.locator('#stage.not-live[data-not-live="Not live"]')).to_be_visible()
    assert customer.frames.sent[sent:] == []
    assert len(sockets) == 1, "the page opened another socket after Stop"
    assert "AFTER-STOP-5561" not in agent_plaintext(agent)
    expect(view.get_by_text("AFTER-STOP-5561")).to_have_count(0)
    assert customer.page.evaluate("() => window.Tandem.state") == "ended"
    wait_until(customer.page, lambda: "tandem" not in customer.page.evaluate(DATABASES))


ESSAY = " ".join(f"word{i}" for i in range(3000))
QUESTIONNAIRE = f"""<h1>Health</h1><form><label><input type=radio name=smoke id=yes> Yes</label>
<label><input type=radio name=smoke id=no checked> No</label></form><p id="essay">{ESSAY}</p>"""


def test_a_policy_from_the_relay_that_hides_by_what_the_customer_chose_is_refused(
    server_factory: ServerFactory,
    other_origin: OtherOrigin,
    customer: Party,
    agent: Party,
) -> None:
    """A team policy the relay writes before the Allow (as it may) that hides a large part of the
    page depending on a masked choice (`body:has(#yes:checked) #essay`) made the next full
    snapshot 7.7 kB or 0.7 kB of content: the relay read the customer's answer in the frames'
    sizes (and the agent in the mirror). A policy from the server may name elements by their
    markup only: this one ends the session before the customer is asked, nothing shared."""
    server, relay = malicious_server(server_factory, allow_origins=(other_origin.origin,))
    told: list[dict[str, Any]] = []

    def to_customer(message: dict[str, Any]) -> list[dict[str, Any]]:
        if message.get("type") == "agent_joined":  # the teams' policies come just before it
            policy = {"version": 1, "hide": ["body:has(#yes:checked) #essay"]}
            told.append(policy)
            return [{"v": 1, "type": "team_policy", "policies": [policy]}, message]
        return [message]

    relay.to_customer = to_customer
    customer.page.goto(other_origin.page("health.html", QUESTIONNAIRE, server))
    code = customer.page.evaluate("() => window.Tandem.start()")
    sign_in(agent, server)
    join(agent, code)
    expect(customer.page.get_by_role("alert")).to_have_text(INVALID_POLICY)
    assert told
    assert customer.page.evaluate("() => window.Tandem.state") == "ended"
    expect(customer.page.get_by_role("dialog")).to_have_count(0)
    expect(agent.page.get_by_role("status")).to_contain_text("Session ended")
    assert content_sent(customer) == []


@pytest.mark.parametrize("lie", ["code", "agent", "watcher", "policy"])
def test_text_of_the_relays_choosing_is_never_shown_in_the_customers_widget(
    server_factory: ServerFactory, customer: Party, agent: Party, lie: str
) -> None:
    """The widget on the customer's page is the page's own trusted UI. What it shows from the
    server is what the honest server sends: a routing code of 4 to 12 digits, an agent's or a
    supervisor's name of at most 100 characters without control characters. Anything else (a
    phone number to call, a page of text) ends the session, or (a supervisor) is not asked."""
    server, relay = malicious_server(server_factory)
    scam = "Fraud team: call 0800 555 0100 now and read them your card number. " * 3
    lied: list[str] = []

    def to_customer(message: dict[str, Any]) -> list[dict[str, Any]]:
        if lie == "code" and message.get("type") == "created":
            lied.append(message["code"])
            return [{**message, "code": scam}]
        if lie == "agent" and message.get("type") == "agent_joined":
            lied.append(message["agent"])
            return [{**message, "agent": scam}]
        if lie == "policy" and message.get("type") == "created":
            # A field named with a sentence: what is wrong with the policy quoted it (attack
            # review of the strings the widget shows).
            lied.append("policy")
            return [{**message, "policy": {"version": 1, scam: True}}]
        return [message]

    refused: list[dict[str, Any]] = []

    def from_customer(message: dict[str, Any]) -> list[dict[str, Any]]:
        if message.get("type") == "watch_consent":
            refused.append(message)
        return []

    relay.to_customer = to_customer
    relay.from_customer = from_customer
    customer.page.goto(f"{server.base}/demo/")
    if lie == "code":
        customer.page.get_by_role("button", name="Get help").click()
        expect(customer.page.get_by_role("alert").last).to_contain_text(DISTRUST)  # the widget's
    elif lie == "policy":
        customer.page.get_by_role("button", name="Get help").click()
        expect(customer.page.get_by_role("alert").last).to_have_text(INVALID_POLICY)
        # The shop's own line (start()'s rejection quotes the relay for developers only).
        expect(customer.page.locator("#help-error")).to_have_text("Help is unavailable right now.")
    elif lie == "agent":
        code = get_help(customer)
        sign_in(agent, server)
        join(agent, code)
        expect(customer.page.get_by_role("alert")).to_contain_text(DISTRUST)
        expect(agent.page.get_by_role("status")).to_contain_text("Session ended")
    else:
        share(customer, agent, server, get_help(customer))
        expect(agent.page.get_by_role("status")).to_contain_text("live")
        relay.inject_customer({"v": 1, "type": "watch_request", "watcher": scam})
        # The page received it, and ran the tasks queued meanwhile (its message handler).
        wait_until(customer.page, lambda: any(b"0800 555" in f for f in customer.frames.received))
        customer.page.evaluate("() => new Promise((done) => setTimeout(done, 0))")
        assert refused == []
        lied.append("watcher")
    assert lied
    expect(customer.page.get_by_text("0800 555 0100")).to_have_count(0)
    expect(customer.page.get_by_role("dialog")).to_have_count(0)
    if lie == "watcher":
        return
    assert customer.page.evaluate("() => window.Tandem.state") == "ended"
    assert content_sent(customer) == []


SCAM = "Fraud team: call 0800 555 0100 now\u2028and read them your card number \u202e"


def test_a_relays_close_reason_never_reaches_the_customer_nor_start_rejections_message(
    server_factory: ServerFactory, customer: Party
) -> None:
    """The relay closes the customer's socket before the session starts, with a close reason of
    its choosing. The widget says the SDK's own words for the code; start()'s rejection, which a
    site may show, says them too: the relay's words are apart (``serverWords``), one plain line,
    for the site's developers (they followed the SDK's own words in the message)."""
    server, relay = malicious_server(server_factory)
    asked = threading.Event()

    def from_customer(message: dict[str, Any]) -> list[dict[str, Any]]:
        if message.get("type") == "create":
            asked.set()
        return []

    relay.to_customer = lambda message: [] if message.get("type") == "created" else [message]
    relay.from_customer = from_customer
    customer.page.goto(f"{server.base}/demo/")
    customer.page.evaluate(
        """() => { window.__rejection = window.Tandem.start().then(() => null,
            (e) => ({ message: e.message, name: e.name, serverWords: e.serverWords })); }"""
    )
    assert asked.wait(30)
    relay.close_customer(4403, SCAM)
    rejection = customer.page.evaluate("() => window.__rejection")
    assert rejection == {
        "message": "Help is not available on this site.",
        "name": "TandemSessionError",
        "serverWords": SCAM.replace("\u2028", " ").replace("\u202e", "\ufffd"),
    }
    expect(customer.page.get_by_role("alert").last).to_have_text(
        "Help is not available on this site."
    )
    expect(customer.page.get_by_text("0800 555 0100")).to_have_count(0)


def test_a_relays_close_reason_never_reaches_the_agents_console(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    """The relay closes the agent's socket mid-session with a close reason of its choosing: the
    console shows its own sentence for the code (it showed "The server closed the connection:"
    and the relay's words, which could tell the agent to do anything)."""
    server, relay = malicious_server(server_factory)
    customer.page.goto(f"{server.base}/demo/")
    share(customer, agent, server, get_help(customer))
    expect(agent.page.get_by_role("status")).to_contain_text("live")
    relay.close_agent(4403, SCAM)
    expect(agent.page.get_by_role("status")).to_have_text(
        "The server refused this connection: your account may not do this now."
    )
    expect(agent.page.get_by_text("0800 555 0100")).to_have_count(0)


def test_a_relay_that_closes_the_socket_as_each_resume_is_answered_meets_a_growing_back_off(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    """Each resume the relay answers starts a new epoch on the customer's page (a fresh key and
    a full snapshot of the page). A relay that closed the socket (1012, "restarting") right
    after each answer had the page reconnect from its first wait each time: a full snapshot
    every few hundred milliseconds, for as long as it liked. A socket that drops again soon
    after it came back goes on with its last drop's back-off (SETTLED_MS in state.ts)."""
    server, relay = malicious_server(server_factory)
    resumes: list[float] = []

    def from_customer(message: dict[str, Any]) -> list[dict[str, Any]]:
        if message.get("type") == "resume":
            resumes.append(time.monotonic())
        return []

    relay.from_customer = from_customer
    customer.page.goto(f"{server.base}/demo/")
    share(customer, agent, server, get_help(customer))
    expect(agent.page.get_by_role("status")).to_contain_text("live")
    relay.close_customer_after = lambda m: 1012 if m.get("type") == "resumed" else None
    customer.page.goto(f"{server.base}/demo/cart.html")  # its resume is answered, then cut
    wait_until(customer.page, lambda: bool(resumes))
    deadline = resumes[0] + 6.0
    while time.monotonic() < deadline:
        customer.page.wait_for_timeout(50)  # the attack runs: the page reconnects as it likes
    within = [t for t in resumes if t <= deadline]
    # Waits of about 0.4, 0.75, 1.5 and 3 s: at most 5 resumes in 6 s (it was 15 and more).
    assert len(within) <= 6, f"{len(within)} resumes in 6 s"
    expect(customer.page.get_by_role("button", name="Stop sharing")).to_be_visible()
    # Once the relay stops cutting, the session goes on.
    relay.close_customer_after = lambda m: None
    expect(agent.page.get_by_role("status")).to_contain_text("live", timeout=20_000)
    assert customer.page.evaluate("() => window.Tandem.state") == "sharing"
