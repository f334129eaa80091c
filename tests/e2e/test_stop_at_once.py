"""'Stop sharing' and 'Stop recording' take effect at the click, also while a recording runs.

The recording's end marker must be its last frame, and it used to wait behind what the page had
queued: a batch of page changes waits up to ASSET_WAIT_MS (3 s) for the page's own assets, which
the server serves here (the shared pages are its /demo/), so the relay held the end back just by
answering an image slowly. Meanwhile the page said "Sharing", the agent's commands were taken and
the page was still recorded. Each test holds such an image when the customer clicks, holds back
the agent's click and typing until right after it, and counts the frames the customer's page
sends after the click (its own log, checked against what the relay received)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import expect

from tandem.recordings import recording_events
from tests.conftest import ServerFactory
from tests.e2e.conftest import Party, agent_plaintext, get_help, share
from tests.e2e.test_control import agent_click, grant
from tests.e2e.test_malicious_server import DATABASES, malicious_server
from tests.e2e.test_recordings import (
    PASSPHRASE,
    key_pair,
    use_recording_key,
    wait_until_ended,
)
from tests.e2e.test_workspace import centre, pick, wait_until
from tests.server.test_organisations import api
from tests.test_recordings import key_file

HELD_IMAGE = "/demo/img/held-5519.png"

# The page's own log of the binary frames it sends (their sizes), and where in it the customer's
# armed click fell: a capturing listener on the window runs before the widget's own handler. Its
# press, that is: the banner's buttons act as the mouse presses them (a release elsewhere counts).
SEND_LOG = """
(() => {
  const sent = [];
  window.__binarySent = sent;
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if (typeof data !== "string") sent.push(data.byteLength);
    return send.call(this, data);
  };
  for (const type of ["pointerdown", "click"]) {
    addEventListener(type, () => {
      if (window.__armed && window.__clickedAt === undefined) window.__clickedAt = sent.length;
    }, true);
  }
})();
"""


def content_epoch(frame: bytes) -> int | None:
    """The epoch of a content frame (kind 0x01, then the epoch as a big-endian u64)."""
    return int.from_bytes(frame[1:9], "big") if frame[:1] == b"\x01" else None


class Setup:
    """A recorded session on the demo shop through a malicious relay, control granted; the relay
    logs the customer's binary frames and can hold back what the agent's console sends."""

    def __init__(self, server_factory: ServerFactory, customer: Party, agent: Party) -> None:
        self.server, self.relay = malicious_server(server_factory)
        self.private, public, _ = key_pair()
        use_recording_key(self.server, public)
        self.customer, self.agent = customer, agent
        self.from_customer: list[bytes] = []
        self.held: list[bytes] = []
        self.holding = False
        self.sockets: list[Any] = []

        def from_customer(frame: bytes) -> bytes:
            self.from_customer.append(frame)
            return frame

        def to_customer(frame: bytes) -> bytes | None:
            if not self.holding:
                return frame
            self.held.append(frame)
            return None

        self.relay.binary_from_customer = from_customer
        self.relay.binary_to_customer = to_customer
        self.relay.hold_http = lambda path: path == HELD_IMAGE
        customer.page.add_init_script(SEND_LOG)
        customer.page.on("websocket", lambda ws: self.sockets.append(ws))
        # The agent's mirror then fits at scale 1, so its clicks land where the test aims.
        customer.page.set_viewport_size({"width": 1000, "height": 800})
        agent.page.set_viewport_size({"width": 1400, "height": 900})
        customer.page.goto(f"{self.server.base}/demo/")
        self.view = share(customer, agent, self.server, get_help(customer))
        agent.page.get_by_role("button", name="Ask to record").click()
        customer.page.get_by_role("dialog").get_by_role("button", name="Allow recording").click()
        expect(agent.page.get_by_role("status")).to_contain_text("Recording, with the customer's")
        expect(self.view.get_by_role("button", name="Add to cart").first).to_be_visible()
        grant(customer, agent)

    def agent_highlights(self) -> None:
        """The agent highlights "Add to cart" on the customer's page, then puts the tool down."""
        pick(self.agent, "Highlight")
        x, y = centre(self.agent, self.view, "button:has-text('Add to cart')")
        self.agent.page.mouse.click(x, y)
        expect(self.customer.page.locator("[data-tandem-annotations] .mark")).to_have_count(1)
        self.agent.page.keyboard.press("Escape")
        tool = self.agent.page.get_by_role("button", name="Highlight", exact=True)
        expect(tool).to_have_attribute("aria-pressed", "false")

    def agent_acts_held_back(self) -> None:
        """The agent clicks "Add to cart" and types into the search field; the relay holds every
        frame its console sends the customer from now on."""
        self.holding = True
        # The click first: what is typed into the search field filters the products away.
        agent_click(self.agent, self.view, "button:has-text('Add to cart')")
        agent_click(self.agent, self.view, "input[type=search]")
        self.agent.page.get_by_label("Type into the customer's field").press_sequentially(
            "typed-5519"
        )
        wait_until(self.agent.page, lambda: len(self.held) >= 3)

    def recorded_epoch(self) -> int:
        """The epoch the page shares in now (recorded, the newest content frame's)."""
        return max(e for e in map(content_epoch, self.from_customer) if e is not None)

    def image_held(self) -> None:
        """An image appears on the customer's page; the relay does not answer its fetch: the
        batch that shows it waits for it (ASSET_WAIT_MS), and everything queued after it."""
        self.customer.page.evaluate(
            "(src) => document.querySelector('h1, h2').after(Object.assign("
            "document.createElement('img'), {src, alt: 'HELD-ALT-5519'}))",
            HELD_IMAGE,
        )
        wait_until(self.customer.page, lambda: HELD_IMAGE in self.relay.held_http)
        self.customer.page.evaluate("() => { window.__armed = true; }")

    def release_agent(self) -> None:
        """The relay passes on what it held of the agent's, now (after the customer's click), and
        what the console sends meanwhile, until the customer's socket is closed or refuses it."""

        def passed_on() -> bool:
            while self.held:
                try:
                    self.relay.inject_customer_bytes(self.held.pop(0))
                except Exception:  # the customer's socket is gone: nothing reaches the page
                    self.held.clear()
                    return True
            return bool(self.sockets[0].is_closed())

        wait_until(self.customer.page, passed_on)

    def sent_after_click(self) -> list[bytes]:
        """The binary frames the customer's page sent after the click, as the relay got them."""
        sizes: list[int] = self.customer.page.evaluate("() => window.__binarySent")
        at: int = self.customer.page.evaluate("() => window.__clickedAt")
        # Everything the page sent reaches the relay, in order: its log and the relay's agree.
        wait_until(self.customer.page, lambda: len(self.from_customer) >= len(sizes))
        assert [len(frame) for frame in self.from_customer[: len(sizes)]] == sizes
        return self.from_customer[at : len(sizes)]

    def not_applied(self) -> None:
        """Neither the agent's click nor its typing reached the customer's page."""
        expect(self.customer.page.locator("#cart-count")).to_have_text("0")
        expect(self.customer.page.get_by_label("Search products")).to_have_value("")
        expect(self.customer.page.get_by_text("Alice clicked")).to_have_count(0)
        expect(self.customer.page.get_by_text("Alice typed in")).to_have_count(0)


def exported_recording(s: Setup) -> tuple[dict[str, Any], list[Any]]:
    """The session's recording once the server ended it, exported by an auditor and opened
    with the organisation's key: its header and events (it raises unless whole)."""
    recording = wait_until_ended(s.server)
    with api(s.server, "aud") as aud:
        data = aud.get(f"/api/recordings/{recording['recording_id']}/export").content
    return recording_events(data, key_file(s.private), PASSPHRASE)


@pytest.mark.parametrize("relay", ["passes stop on", "ignores stop"])
def test_stop_sharing_during_a_recording_takes_effect_at_the_click(
    server_factory: ServerFactory, customer: Party, agent: Party, relay: str
) -> None:
    s = Setup(server_factory, customer, agent)
    swallowed: list[dict[str, Any]] | None = None
    if relay == "ignores stop":
        swallowed = s.relay.swallow_stops()
    try:
        stop_sharing(s, customer, agent, swallowed)
    finally:
        s.relay.release_http()


def stop_sharing(
    s: Setup, customer: Party, agent: Party, swallowed: list[dict[str, Any]] | None
) -> None:
    """`swallowed`: the relay never passes the customer's `stop` on (it lists it there)."""
    s.agent_highlights()
    s.agent_acts_held_back()
    s.image_held()
    recorded_epoch = s.recorded_epoch()
    customer.page.get_by_role("button", name="Stop sharing").click()
    # At the click, not once the recording's end went: over here, and the customer is told;
    # the agent's marks are gone with the layer they are drawn on.
    assert customer.page.evaluate("() => window.Tandem.state") == "ended"
    assert customer.page.get_by_text("You stopped sharing.").count() == 1
    assert customer.page.get_by_role("button", name="Stop sharing").count() == 0
    assert customer.page.locator("[data-tandem-annotations]").count() == 0
    customer.page.evaluate(
        "() => document.body.append(Object.assign(document.createElement('p'), "
        "{textContent: 'AFTER-STOP-5519'}))"
    )
    s.release_agent()
    wait_until(customer.page, lambda: s.sockets[0].is_closed())
    after = s.sent_after_click()
    # Only the end marker (the agent told, then `recording_end`): two frames of the recorded
    # epoch; not the batch waiting for its image, nor anything the page did since.
    assert len(after) == 2, [frame[:17].hex() for frame in after]
    assert [content_epoch(frame) for frame in after] == [recorded_epoch, recorded_epoch]
    s.not_applied()
    assert "AFTER-STOP-5519" not in agent_plaintext(agent)
    assert "HELD-ALT-5519" not in agent_plaintext(agent)
    assert len(s.sockets) == 1, "the page opened another socket after Stop"
    wait_until(customer.page, lambda: "tandem" not in customer.page.evaluate(DATABASES))
    s.relay.release_http()
    if swallowed is not None:
        # The server never heard it (it keeps the session for the page to come back): the page
        # ended all the same, sent its marker and closed its socket.
        wait_until(customer.page, lambda: bool(swallowed))
        return
    header, events = exported_recording(s)  # whole, or it raises
    assert header["bound"]["end"]["reason"] == "stopped"
    recorded = json.dumps(events)
    for later in ("AFTER-STOP-5519", "HELD-ALT-5519", "typed-5519"):
        assert later not in recorded


def test_stop_recording_takes_effect_at_the_click(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    s = Setup(server_factory, customer, agent)
    try:
        stop_recording(s, customer, agent)
    finally:
        s.relay.release_http()


def stop_recording(s: Setup, customer: Party, agent: Party) -> None:
    s.image_held()
    recorded_epoch = s.recorded_epoch()
    customer.page.get_by_role("button", name="Stop recording").click()
    # At the click: the banner no longer says recording, and sharing goes on.
    assert customer.page.get_by_text("● Recording").count() == 0
    assert customer.page.evaluate("() => window.Tandem.state") == "sharing"
    customer.page.evaluate(
        "() => document.body.append(Object.assign(document.createElement('p'), "
        "{textContent: 'AFTER-RECORDING-5519'}))"
    )
    view = s.view
    expect(view.get_by_text("AFTER-RECORDING-5519")).to_be_visible()  # shared, not recorded
    expect(agent.page.get_by_role("status")).not_to_contain_text("Recording, with the customer's")
    after = s.sent_after_click()
    # Of the recorded epoch, only its end marker after the click; the rest is a new epoch.
    assert [content_epoch(frame) for frame in after].count(recorded_epoch) == 2
    assert content_epoch(after[0]) == content_epoch(after[1]) == recorded_epoch
    s.relay.release_http()
    customer.page.get_by_role("button", name="Stop sharing").click()
    header, events = exported_recording(s)  # whole, or it raises
    assert header["bound"]["end"]["reason"] == "stopped_by_customer"
    recorded = json.dumps(events)
    assert "AFTER-RECORDING-5519" not in recorded
    assert "HELD-ALT-5519" not in recorded
