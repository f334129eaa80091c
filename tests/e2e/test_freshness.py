"""The agent's view is proven fresh (docs/threat-model.md, "The agent's view is fresh"), in real
browsers: the console sends a random challenge inside the encrypted command channel, the
customer's browser echoes it inside its current epoch, and the console calls its view live only
while it holds an echo of a challenge it sent within the bound. A relay that stops passing the
customer's frames, or hands a reloaded console an epoch it held back (with or without echoes of
the console's earlier challenges in it), leaves the console saying that its view is not live; a
healthy session stays live, and a stalled network only while it stalls.

The consoles here ask every 500 ms and call a view stale after 2 s, 6 s in the tests that a
healthy view stays live (`window.__tandemFreshness`, which can only shorten the defaults:
console/freshness.ts)."""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import expect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.conftest import RunningServer, ServerFactory
from tests.e2e.conftest import RECORD_SEALED, Party, agent_plaintext, mirror, sealed_payloads
from tests.e2e.netcut import NetCut
from tests.e2e.test_control import agent_click, grant, start
from tests.e2e.test_malicious_server import malicious_server
from tests.e2e.test_reconnect import LIVE, share_at
from tests.e2e.test_supervisor import allowed_to_watch, supervisor_console
from tests.e2e.test_workspace import wait_until
from tests.malicious import without_direct_send

CHALLENGE_MS = 500
STALE_MS = 2000
NOT_LIVE = "Not live: no word from the customer's browser for"

# Every text the console's status line showed (kept across nothing: a reload starts a new list,
# which is what the reloaded console showed); and with quick timings.
WATCHED = """
window.__statusSeen = [];
new MutationObserver(() => {
    const text = document.getElementById("status")?.textContent ?? "";
    if (text && window.__statusSeen.at(-1) !== text) window.__statusSeen.push(text);
}).observe(document, { subtree: true, childList: true, characterData: true });
"""
# The tests that a healthy view stays live ask as often and wait longer before calling a view
# stale: the customer's browser answers each challenge at once, but a loaded 2-core machine (two
# test workers, three browsers each) stalled an answer past 2 s in CI, and a bound of the test's
# own that a busy machine crosses proves nothing about the product (its default is 9 s).
STEADY_STALE_MS = 6000
STEADY_INTERVALS = STEADY_STALE_MS // CHALLENGE_MS + 2


def quick(agent: Party, stale_ms: int = STALE_MS) -> Party:
    agent.page.add_init_script(
        f"window.__tandemFreshness = {{ challengeMs: {CHALLENGE_MS}, staleMs: {stale_ms} }};"
        + WATCHED
    )
    return agent


def steady(agent: Party) -> Party:
    return quick(agent, STEADY_STALE_MS)


def statuses(agent: Party) -> list[str]:
    seen: list[str] = agent.page.evaluate("() => window.__statusSeen")
    return seen


def centre(locator: Any) -> dict[str, float]:
    """The middle of ``locator``'s box in the console's page (where a real click lands)."""
    expect(locator).to_be_in_viewport()
    box = locator.bounding_box()
    assert box is not None
    return {"x": box["x"] + box["width"] / 2, "y": box["y"] + box["height"] / 2}


def not_live_mark(agent: Party) -> Any:
    """The stage marked as not live (dimmed, labelled): console.css, view.ts."""
    return agent.page.locator('#stage.not-live[data-not-live="Not live"]')


def commands_sent(agent: Party) -> int:
    """Encrypted commands (kind 0x03: here the challenges) the console sent so far."""
    return sum(1 for frame in agent.frames.sent if frame[:1] == b"\x03")


def test_a_relay_that_stops_passing_the_customers_frames_is_shown_not_live_within_the_bound(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    server, relay = malicious_server(server_factory)
    view = share_at(customer, quick(agent), server, server.base, server.base)
    expect(not_live_mark(agent)).to_have_count(0)
    # The relay freezes the console: the sockets stay open, the customer's frames stop there.
    withheld: list[bytes] = []

    def freeze(frame: bytes) -> None:
        withheld.append(frame)

    relay.binary_to_agent = freeze
    frozen_at = time.monotonic()
    customer.page.locator("#search").fill("typed after the freeze")
    expect(agent.page.get_by_role("status")).to_contain_text(NOT_LIVE, timeout=STALE_MS + 4000)
    assert time.monotonic() - frozen_at < STALE_MS + 4, "not live within the bound"
    expect(not_live_mark(agent)).to_be_visible()
    assert withheld, "the customer's browser went on sending (its echoes too)"
    expect(view.locator("#search")).not_to_have_value("typed after the freeze")


class HoldingRelay:
    """The relay as an attacker runs it to pass an old page off as the customer's page now. Once
    :meth:`hold` is called, it passes the first console's socket nothing more of the customer's:
    it keeps the frames from the customer's next epoch key on (the customer's next page) and,
    unless ``pass_commands``, drops the console's commands (its challenges). When the same
    sign-in's console comes back (a reload), it hands it the kept frames, once, in place of the
    customer's own (``swapped`` counts those it withheld). ``log`` records, while holding, each
    command passed and each frame kept, in order."""

    def __init__(self, app: ASGIApp, pass_commands: bool) -> None:
        self.app = app
        self.pass_commands = pass_commands
        self.holding = False
        self.first_sign_in: bytes | None = None
        self.kept: list[bytes] = []
        self.log: list[str] = []
        self.swapped = 0

    def hold(self) -> None:
        self.holding = True

    def answered_challenges(self) -> int:
        """Commands passed to the customer after its next page began that a kept frame followed
        (the echoes are among those frames)."""
        log = self.log[self.log.index("kept") :] if "kept" in self.log else []
        return sum(
            1 for i, entry in enumerate(log) if entry == "command" and "kept" in log[i + 1 :]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket" or scope.get("path") != "/ws/agent":
            await self.app(scope, receive, send)
            return
        sign_in = dict(scope["headers"]).get(b"cookie", b"")
        if self.first_sign_in is None:
            self.first_sign_in, which = sign_in, "first"
        else:
            which = "again" if sign_in == self.first_sign_in else "other"
        scope = without_direct_send(scope)  # every frame must pass these hooks

        async def relay_send(message: Message) -> None:
            frame = message.get("bytes") if message["type"] == "websocket.send" else None
            if frame is not None and which == "first" and self.holding:
                if self.kept or frame[:1] == b"\x02":  # from the next epoch's key on
                    self.kept.append(frame)
                    self.log.append("kept")
                return
            if frame is not None and which == "again" and self.kept:
                self.swapped += 1  # before the sends, which raise once the console closes
                if self.swapped == 1:
                    for kept in self.kept:
                        await send({"type": "websocket.send", "bytes": kept})
                return
            await send(message)

        async def relay_receive() -> Message:
            while True:
                message = await receive()
                held = which == "first" and self.holding
                if held and message["type"] == "websocket.receive" and message.get("bytes"):
                    if not self.pass_commands:
                        continue
                    self.log.append("command")
                return message

        await self.app(scope, relay_receive, relay_send)


def holding_server(
    server_factory: ServerFactory, pass_commands: bool
) -> tuple[RunningServer, HoldingRelay]:
    relays: list[HoldingRelay] = []

    def wrap(app: ASGIApp) -> ASGIApp:
        relays.append(HoldingRelay(app, pass_commands))
        return relays[-1]

    server = server_factory(wrap=wrap)
    return server, relays[0]


def held_back_page_to_a_reloaded_console(
    server: RunningServer, relay: HoldingRelay, customer: Party, agent: Party
) -> Any:
    """The customer shares the shop's front page; the relay holds the console there while the
    customer goes to the checkout; the console reloads and the relay hands it the checkout epoch
    it kept (the reloaded console opens it: an epoch newer than the one it held), in place of
    what the customer's browser shares now."""
    customer.page.add_init_script(RECORD_SEALED)
    share_at(customer, quick(agent), server, server.base, server.base)
    relay.hold()
    customer.page.goto(f"{server.base}/demo/checkout.html")

    def checkout_kept() -> bool:
        """The relay kept the frame carrying the checkout's snapshot (its card field), and so
        the epoch's key and everything before it: the customer's browser sends the snapshot only
        once its widget is seen, which a loaded machine delays past other frames of the page."""
        snapshots = [sealed for text, sealed in sealed_payloads(customer) if '"id":"card"' in text]
        return any(frame.endswith(snapshots[0]) for frame in relay.kept) if snapshots else False

    wait_until(agent.page, checkout_kept, timeout=30)
    return relay


def assert_never_live(agent: Party) -> None:
    """The reloaded console shows the held-back page, never called live: checking, then Not
    live once the bound has passed, with the mirror marked."""
    expect(mirror(agent).locator("#card")).to_be_attached(timeout=15_000)  # the checkout: handed
    expect(agent.page.get_by_role("status")).to_contain_text(NOT_LIVE, timeout=STALE_MS + 4000)
    expect(not_live_mark(agent)).to_be_visible()
    assert not any(LIVE in text for text in statuses(agent)), statuses(agent)


def test_a_reloaded_console_never_shows_as_live_an_epoch_the_relay_held_back(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    server, relay = holding_server(server_factory, pass_commands=False)
    held_back_page_to_a_reloaded_console(server, relay, customer, agent)
    agent.page.reload()
    assert_never_live(agent)
    assert relay.swapped > 0, "the customer's own frames were withheld from the reloaded console"


def test_echoes_of_earlier_challenges_a_relay_replays_to_a_reloaded_console_do_not_count(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    server, relay = holding_server(server_factory, pass_commands=True)
    held_back_page_to_a_reloaded_console(server, relay, customer, agent)
    # The console's challenges still reach the customer's browser, which echoes them on its new
    # page; the relay keeps those echoes with the page and replays them after the reload.
    wait_until(agent.page, lambda: relay.answered_challenges() >= 2)
    agent.page.reload()
    expect(mirror(agent).locator("#card")).to_be_attached(timeout=15_000)
    wait_until(agent.page, lambda: '"k":"echo"' in agent_plaintext(agent))  # the replay arrived
    assert_never_live(agent)


def test_a_live_session_stays_live_and_the_view_recovers_after_a_network_stall(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    net = NetCut(live)
    try:
        view = share_at(customer, steady(agent), live, live.base, net.base)
        expect(not_live_mark(agent)).to_have_count(0)
        # More intervals than the bound holds (each a challenge, each answered): live all along.
        asked = commands_sent(agent)
        wait_until(agent.page, lambda: commands_sent(agent) >= asked + STEADY_INTERVALS)
        expect(agent.page.get_by_role("status")).to_contain_text(LIVE)
        seen = statuses(agent)
        assert not any(NOT_LIVE in text for text in seen), seen
        expect(not_live_mark(agent)).to_have_count(0)
        # The console's network stalls (nothing reaches it; its sockets stay up): not live...
        net.hold()
        expect(agent.page.get_by_role("status")).to_contain_text(
            NOT_LIVE, timeout=STEADY_STALE_MS + 4000
        )
        expect(not_live_mark(agent)).to_be_visible()
        customer.page.locator("#search").fill("typed during the stall")
        # ...and live again once it flows: the next answered challenge says so.
        net.release()
        expect(agent.page.get_by_role("status")).to_contain_text(LIVE, timeout=STALE_MS + 4000)
        expect(not_live_mark(agent)).to_have_count(0)
        expect(view.locator("#search")).to_have_value("typed during the stall")
    finally:
        net.close()


class WatcherFreezer:
    """The relay freezing only a watching supervisor's console: once :attr:`freezing`, the
    customer's frames stop at the supervisor's socket (the one that sent `watch`), which stays
    open; the agent's console is left alone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.freezing = False
        self.withheld = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket" or scope.get("path") != "/ws/agent":
            await self.app(scope, receive, send)
            return
        scope = without_direct_send(scope)  # every frame must pass these hooks
        watcher = False

        async def relay_receive() -> Message:
            nonlocal watcher
            message = await receive()
            if message["type"] == "websocket.receive" and '"type":"watch"' in (
                message.get("text") or ""
            ).replace(" ", ""):
                watcher = True
            return message

        async def relay_send(message: Message) -> None:
            if watcher and self.freezing and message.get("bytes") is not None:
                self.withheld += 1
                return
            await send(message)

        await self.app(scope, relay_receive, relay_send)


def watching(
    supervisor: Party, customer: Party, server: RunningServer, stale_ms: int = STALE_MS
) -> Any:
    """The supervisor (quick timings) watches the customer's shared page: asked, allowed, paired
    with the customer's code; its view of the page."""
    quick(supervisor, stale_ms)
    supervisor_console(supervisor, server)
    sam = supervisor.page
    code = allowed_to_watch(supervisor, customer)
    sam.get_by_label("Session code").fill(code)
    sam.get_by_role("button", name="Start watching").click()
    return mirror(supervisor)


def watcher_challenges(supervisor: Party) -> int:
    """The supervisor's challenges (kind 0x07, its own channel to the customer) sent so far."""
    return sum(1 for frame in supervisor.frames.sent if frame[:1] == b"\x07")


WATCHING_LIVE = "Watching the customer's page."


def test_a_watching_supervisors_view_stays_live_while_the_customers_browser_answers(
    live: RunningServer, customer: Party, agent: Party, supervisor: Party
) -> None:
    share_at(customer, agent, live, live.base, live.base)
    sam_view = watching(supervisor, customer, live, STEADY_STALE_MS)
    expect(sam_view.locator("#search")).to_be_attached()
    expect(supervisor.page.get_by_role("status")).to_contain_text(WATCHING_LIVE)
    # More intervals than the bound holds, each a challenge of the supervisor's, each answered:
    # live all along.
    asked = watcher_challenges(supervisor)
    wait_until(supervisor.page, lambda: watcher_challenges(supervisor) >= asked + STEADY_INTERVALS)
    expect(supervisor.page.get_by_role("status")).to_contain_text(WATCHING_LIVE)
    seen = statuses(supervisor)
    assert not any(NOT_LIVE in text for text in seen), seen
    expect(not_live_mark(supervisor)).to_have_count(0)
    customer.page.locator("#search").fill("seen by the supervisor")
    expect(sam_view.locator("#search")).to_have_value("seen by the supervisor")


def test_a_relay_that_freezes_a_supervisors_view_is_shown_not_live_within_the_bound(
    server_factory: ServerFactory, customer: Party, agent: Party, supervisor: Party
) -> None:
    relays: list[WatcherFreezer] = []

    def wrap(app: ASGIApp) -> ASGIApp:
        relays.append(WatcherFreezer(app))
        return relays[-1]

    server = server_factory(wrap=wrap)
    relay = relays[0]
    share_at(customer, quick(agent), server, server.base, server.base)
    sam_view = watching(supervisor, customer, server)
    expect(supervisor.page.get_by_role("status")).to_contain_text(WATCHING_LIVE)
    expect(not_live_mark(supervisor)).to_have_count(0)
    # The page is drawn before the freeze (an echo can overtake a snapshot whose images are
    # still loading: on a busy machine the freeze came first, and an empty stage is no view).
    expect(sam_view.locator("#search")).to_be_attached()
    # The relay freezes the supervisor's view only: its socket stays open, nothing more arrives.
    relay.freezing = True
    frozen_at = time.monotonic()
    customer.page.locator("#search").fill("typed after the freeze")
    expect(supervisor.page.get_by_role("status")).to_contain_text(NOT_LIVE, timeout=STALE_MS + 4000)
    assert time.monotonic() - frozen_at < STALE_MS + 4, "not live within the bound"
    expect(not_live_mark(supervisor)).to_be_visible()
    assert relay.withheld, "the customer's browser went on sending (its echoes too)"
    expect(sam_view.locator("#search")).not_to_have_value("typed after the freeze")
    # The agent's view, which the relay leaves alone, stays live (past the bound by now).
    expect(not_live_mark(agent)).to_have_count(0)
    assert not any(NOT_LIVE in text for text in statuses(agent)), statuses(agent)


TOOLS_OFF = "Control and pointing are off until the customer's browser answers again"


def test_while_the_view_is_not_live_the_agents_clicks_and_typing_never_reach_the_customer(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    net = NetCut(live)
    try:
        view = start(customer, quick(agent), live, "/demo/", console_base=net.base)
        expect(agent.page.get_by_role("status")).to_contain_text(LIVE)
        grant(customer, agent)
        agent_click(agent, view, "input[type=search]")
        typing = agent.page.get_by_label("Type into the customer's field")
        typing.press_sequentially("stove")
        expect(customer.page.get_by_label("Search products")).to_have_value("stove")
        expect(view.locator("input[type=search]")).to_have_value("stove")
        expect(view.locator("button:has-text('Add to cart')")).to_have_count(1)
        at = centre(view.locator("button:has-text('Add to cart')").first)
        # The console's network stalls (what the customer's browser sends is held; what the
        # console sends still goes): past the bound the view is not live, the tools are off.
        net.hold()
        expect(agent.page.get_by_role("status")).to_contain_text(NOT_LIVE, timeout=STALE_MS + 4000)
        expect(agent.page.locator("#not-live-tools")).to_contain_text(TOOLS_OFF)
        expect(agent.page.locator("#control-layer")).to_be_hidden()
        expect(typing).to_be_disabled()
        expect(agent.page.locator("#tool-laser")).to_be_disabled()
        # The agent clicks "Add to cart" and types anyway: with the mouse (the layer is off),
        # and past the view, straight into the control layer and the typing box.
        agent.page.mouse.click(at["x"], at["y"])
        agent.page.evaluate(
            """(at) => {
                const layer = document.getElementById('control-layer');
                const click = {clientX: at.x, clientY: at.y, bubbles: true};
                layer.dispatchEvent(new MouseEvent('click', click));
                const box = document.getElementById('typing-input');
                box.value = 'stove typed while not live';
                box.dispatchEvent(new Event('input', {bubbles: true}));
            }""",
            at,
        )
        # Back live: the next answered challenge says so, and control works again.
        net.release()
        expect(agent.page.get_by_role("status")).to_contain_text(LIVE, timeout=STALE_MS + 4000)
        expect(agent.page.locator("#not-live-tools")).to_be_hidden()
        agent_click(agent, view, "button:has-text('Add to cart')")
        # Commands arrive in order: once the click after the stall did its work, anything sent
        # during it had arrived too. Neither the click nor the typing did.
        expect(customer.page.locator("#cart-count")).to_have_text("1")
        expect(customer.page.get_by_label("Search products")).to_have_value("stove")
        agent_click(agent, view, "input[type=search]")
        typing.press_sequentially(" camp")
        expect(customer.page.get_by_label("Search products")).to_have_value("stove camp")
    finally:
        net.close()


def test_an_agents_click_the_relay_held_past_the_bound_never_acts_on_the_customers_page(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    """The console sends a click only while its view is live, but the relay can hold it (and
    every command after it: the customer's browser refuses a counter older than one it opened)
    and hand it over long after, on whatever page the customer is on then. The customer's browser
    takes an acting command only if it names an echo it sent in this epoch within the bound."""
    server, relay = malicious_server(server_factory)
    customer.page.set_viewport_size({"width": 1000, "height": 800})
    agent.page.set_viewport_size({"width": 1400, "height": 900})
    view = share_at(customer, quick(agent), server, server.base, server.base)
    grant(customer, agent)
    held = relay.hold_to_customer()
    agent_click(agent, view, "button:has-text('Add to cart')")
    clicked_at = time.monotonic()
    wait_until(agent.page, lambda: len(held) > 0)
    # The console says its view is not live; the click it sent while live is still held, past
    # the customer's bound (ACTION_PROOF_MS, 9 s: the console's default bound).
    expect(agent.page.get_by_role("status")).to_contain_text(NOT_LIVE, timeout=STALE_MS + 4000)
    time.sleep(max(0.0, 10.5 - (time.monotonic() - clicked_at)))
    # In order, ahead of anything the console sends meanwhile: the click reaches the customer's
    # browser and is refused there for its age, not dropped as a replay behind a newer command.
    relay.release_to_customer()
    expect(not_live_mark(agent)).to_have_count(0, timeout=STALE_MS + 4000)
    # Said as late (the relay held it), never as aimed at a part of the page gone.
    wait_until(agent.page, lambda: LATE in statuses(agent))
    assert not any(GONE in line for line in statuses(agent))
    assert customer.page.locator("#cart-count").text_content() == "0"
    # Live again: the agent's next click acts.
    agent_click(agent, view, "button:has-text('Add to cart')")
    expect(customer.page.locator("#cart-count")).to_have_text("1")


LATE = (
    "Not done: That arrived too late to be sure the customer's page was still as you saw it"
    " — try again."
)
REFRESHING = "The customer's page is being refreshed — try again in a moment."
CROSSED = "Not done: The customer's page was refreshed before that arrived — try again in a moment."
GONE = "That part of the page is gone"


def epoch_keys(customer: Party) -> int:
    """Epoch-key frames (kind 0x02) the customer's page sent so far: one per epoch it began."""
    return sum(1 for frame in customer.frames.sent if frame[:1] == b"\x02")


def test_right_after_a_new_epoch_of_the_same_page_the_agents_click_is_held_and_said_never_gone(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    """A new epoch of the same page (a supervisor pairs, the console comes back: here the relay's
    `peer`, which asks for one) numbers its nodes afresh, and the customer's browser takes an
    acting command only with a proof echoed in it. Until the console has that proof and the new
    snapshot, its stage is not live and the agent's click is not sent (never sent later either):
    the agent is told the page is being refreshed. A click already under way when the epoch
    began is refused as such, not as aimed at a page gone. Default timings: the window stays
    open while the relay holds the console's challenges, well within the bound."""
    server, relay = malicious_server(server_factory)
    customer.page.set_viewport_size({"width": 1000, "height": 800})
    agent.page.set_viewport_size({"width": 1400, "height": 900})
    agent.page.add_init_script(WATCHED)
    view = share_at(customer, agent, server, server.base, server.base)
    grant(customer, agent)
    at = centre(view.locator("button:has-text('Add to cart')").first)

    # The window: the relay holds the console's commands (its challenges), and asks the
    # customer's browser for a new epoch. The console learns of it, and gets no echo in it.
    relay.hold_to_customer()
    epochs = epoch_keys(customer)
    relay.inject_customer({"v": 1, "type": "peer", "connected": True})
    wait_until(agent.page, lambda: epoch_keys(customer) > epochs)
    expect(not_live_mark(agent)).to_be_visible()
    expect(agent.page.locator("#control-layer")).to_be_hidden()
    # The agent clicks "Add to cart" anyway: told plainly (the layer is off: nothing is sent)...
    agent.page.mouse.click(at["x"], at["y"])
    expect(agent.page.get_by_role("status")).to_have_text(REFRESHING)
    # ...and a click straight into the control layer is not sent either.
    agent.page.evaluate(
        """(at) => document.getElementById('control-layer').dispatchEvent(
            new MouseEvent('click', {clientX: at.x, clientY: at.y, bubbles: true}))""",
        at,
    )
    expect(agent.page.get_by_role("status")).to_have_text(REFRESHING)
    # The relay lets the commands through: the new epoch's echo comes, the stage is live again.
    relay.release_to_customer()
    expect(not_live_mark(agent)).to_have_count(0)
    expect(agent.page.get_by_role("status")).to_contain_text(LIVE)
    agent_click(agent, view, "button:has-text('Add to cart')")
    # Commands arrive in order: the click made while refreshing never went.
    expect(customer.page.locator("#cart-count")).to_have_text("1")

    # A click under way as a new epoch begins: the relay holds it until the customer's browser
    # began the next epoch (asked for again), then passes it on.
    held = relay.hold_to_customer()
    before = commands_sent(agent)
    shown = len(statuses(agent))
    agent_click(agent, view, "button:has-text('Add to cart')")
    wait_until(agent.page, lambda: before < commands_sent(agent) <= before + len(held))
    epochs = epoch_keys(customer)
    relay.inject_customer({"v": 1, "type": "peer", "connected": True})
    wait_until(agent.page, lambda: epoch_keys(customer) > epochs)
    # In order, before anything the console sent since (set free at once, a newer command could
    # overtake them, and the customer's browser would drop them as replays).
    relay.release_to_customer()
    # Said, among the lines shown since the click (the status line may have moved on by the time
    # it is read): by the customer's browser, which refused it; or, where the console's sealing
    # of the click (in turn behind its keys' store) ended after it learnt of the new epoch, by
    # the console, which then sends it not at all (the frame the test saw leave was then a
    # periodic challenge: the likely reading of two CI runs under load that found neither line
    # as the last one). Either way it never acts, and is never called gone.
    try:
        wait_until(
            agent.page,
            lambda: CROSSED in statuses(agent)[shown:] or REFRESHING in statuses(agent)[shown:],
        )
    except AssertionError:
        cart = customer.page.locator("#cart-count").text_content()
        raise AssertionError(f"not said: {statuses(agent)[shown:]}, cart {cart}") from None
    expect(not_live_mark(agent)).to_have_count(0)
    assert customer.page.locator("#cart-count").text_content() == "1"
    assert not any(GONE in text for text in statuses(agent)), statuses(agent)
    # Live in the new epoch: the agent's next click acts.
    agent_click(agent, view, "button:has-text('Add to cart')")
    expect(customer.page.locator("#cart-count")).to_have_text("2")


RECORD_CLICKS = """
window.__clicks = [];
document.addEventListener("click", (event) => window.__clicks.push(
    event.target instanceof Element ? event.target.outerHTML.slice(0, 80) : String(event.target)
), true);
"""


def test_an_agents_click_the_relay_held_across_a_navigation_never_acts_on_the_next_page(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    """The relay holds a click the agent made on one page while the customer goes to another,
    then hands it over well within the bound: its proof is an echo of the page before, which
    the next page never sent, so nothing on the next page is clicked (its nodes are numbered
    afresh: the same id names something else there)."""
    server, relay = malicious_server(server_factory)
    customer.page.set_viewport_size({"width": 1000, "height": 800})
    agent.page.set_viewport_size({"width": 1400, "height": 900})
    customer.page.add_init_script(RECORD_CLICKS)
    agent.page.add_init_script(WATCHED)
    view = share_at(customer, agent, server, server.base, server.base)
    grant(customer, agent)
    held = relay.hold_to_customer()
    before = commands_sent(agent)
    agent_click(agent, view, "button:has-text('Add to cart')")
    clicked_at = time.monotonic()
    wait_until(agent.page, lambda: commands_sent(agent) > before and len(held) > 0)
    epochs = epoch_keys(customer)
    customer.page.goto(f"{server.base}/demo/checkout.html")
    wait_until(agent.page, lambda: epoch_keys(customer) > epochs)  # sharing the next page
    relay.release_to_customer()
    # Refused there as aimed at a page gone; the next page's clicks list stays empty.
    wait_until(agent.page, lambda: any(GONE in line for line in statuses(agent)))
    assert time.monotonic() - clicked_at < 9, "delivered past the bound: the test proves less"
    assert customer.page.evaluate("() => window.__clicks") == []


def test_the_view_of_a_page_the_customer_left_is_marked_not_live_at_once(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    """The customer goes to another page: until that page's first echo and snapshot, the agent
    sees the last state of one that is gone. The server says the customer's page went (`peer`),
    which can only take the view's proof away: the stage is marked and the tools are off at
    once, not only once the bound (9 s, default timings here) passed. The relay passes nothing
    of the next page, so only the server's word marks it within these few seconds."""
    server, relay = malicious_server(server_factory)
    customer.page.set_viewport_size({"width": 1000, "height": 800})
    agent.page.set_viewport_size({"width": 1400, "height": 900})
    share_at(customer, agent, server, server.base, server.base)
    grant(customer, agent)
    expect(agent.page.locator("#control-layer")).to_be_visible()
    expect(not_live_mark(agent)).to_have_count(0)
    relay.binary_to_agent = lambda frame: None  # nothing of the next page reaches the console
    customer.page.goto(f"{server.base}/demo/cart.html")
    expect(not_live_mark(agent)).to_be_visible(timeout=3000)
    expect(agent.page.locator("#control-layer")).to_be_hidden(timeout=1000)
