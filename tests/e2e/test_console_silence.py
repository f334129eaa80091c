"""The agent's console is still there (docs/threat-model.md, "The agent's console is still there"),
in real browsers: the agent's console sends freshness challenges from the first page (inside the
encrypted command channel, which the relay can neither forge nor replay), and from the start of
sharing a long silence of the console ends the session on the customer's side, whatever the relay
says or withholds. Here the agent's tab is closed while a malicious relay swallows everything
toward the customer (its `peer` and `ended` messages, any command); or the relay withholds every
command of the console's from the start, also while it forces the customer's page to reconnect
and while the customer moves to another page: the customer's widget warns, then ends the session,
says why, and sends nothing more. A console that goes on challenging, or whose first challenge
comes late, keeps the session.

The bounds are the SDK's constants (sdk/src/share/silence.ts, read from there); the customer's
page runs on Playwright's clock, moved forward past them, so the test waits minutes of the page's
time, not of the test's."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import WebSocket, expect

from tests.conftest import RunningServer, ServerFactory
from tests.e2e.conftest import Party, allow, console_at, get_help, join
from tests.e2e.test_malicious_server import malicious_server
from tests.e2e.test_reconnect import banner, share_at
from tests.e2e.test_workspace import wait_until

SILENCE_TS = Path(__file__).parents[2] / "sdk" / "src" / "share" / "silence.ts"


def constant(name: str) -> int:
    """A timing constant of the customer SDK (ms), as silence.ts defines it."""
    found = re.search(rf"export const {name} = ([\d_]+);", SILENCE_TS.read_text())
    assert found, name
    return int(found.group(1).replace("_", ""))


AGENT_QUIET_MS = constant("AGENT_QUIET_MS")
AGENT_SILENT_MS = constant("AGENT_SILENT_MS")
LOOK_EVERY_MS = constant("LOOK_EVERY_MS")
WARNING = "Alice's console has not answered for over a minute. Sharing stops if it stays silent."
ENDED = "The agent's console stopped answering, so sharing stopped. Nothing is shared any more."


def forward(customer: Party, moved: int, to: int, step: int = 30_000) -> int:
    """Move the customer's page clock on from ``moved`` to ``to`` ms, in steps (each fires the
    page's due timers once); returns ``to``."""
    while moved < to:
        customer.page.clock.fast_forward(min(step, to - moved))
        moved = min(moved + step, to)
    return moved


def page_now(customer: Party) -> int:
    """The customer's page's clock (ms): Playwright's, which the SDK reads."""
    return int(customer.page.evaluate("() => Date.now()"))


def forward_to(customer: Party, at: int, step: int = 30_000) -> None:
    """Move the customer's page clock on until it reads at least ``at`` (ms), in steps shorter
    than silence.ts's ASLEEP_MS (a longer jump counts as a sleep)."""
    while (now := page_now(customer)) < at:
        customer.page.clock.fast_forward(min(step, at - now))


def epochs_begun(customer: Party) -> int:
    """The epoch keys (kind 0x02) the customer's page sent: one each time sharing (re)starts."""
    return sum(1 for frame in customer.frames.sent if frame[:1] == b"\x02")


def start_sharing(customer: Party, agent: Party, server: RunningServer) -> tuple[int, int]:
    """The customer shares the demo shop with alice (nothing asked of the console's view: the
    relay may be withholding what would make it live); the customer's page time just before
    the customer allowed, and once the first epoch's key went: the watch began between."""
    customer.page.goto(f"{server.base}/demo/")
    code = get_help(customer)
    console_at(agent, server, server.base)
    join(agent, code)
    expect(customer.page.get_by_role("dialog")).to_contain_text("Alice")
    before = page_now(customer)
    allow(customer)
    wait_until(customer.page, lambda: epochs_begun(customer) >= 1)
    after = page_now(customer)
    expect(banner(customer)).to_contain_text("Sharing this page with Alice")
    return before, after


def state(customer: Party) -> str:
    return str(customer.page.evaluate("() => window.Tandem.state"))


def assert_ended_here(customer: Party, sockets: list[WebSocket]) -> None:
    """The session ended on the customer's side for the console's silence; the widget says so."""
    expect(customer.page.get_by_role("alert")).to_contain_text(ENDED)
    expect(customer.page.get_by_role("button", name="Stop sharing")).to_have_count(0)
    assert state(customer) == "ended"
    assert customer.page.evaluate("() => sessionStorage.getItem('tandem.session')") is None
    wait_until(customer.page, lambda: bool(sockets) and all(ws.is_closed() for ws in sockets))
    told = [f for f in customer.frames.sent if f.startswith(b"{") and b'"stop"' in f]
    assert told, "the server was told, as Stop sharing tells it"


def challenges_received(customer: Party) -> int:
    """The agent's encrypted commands (kind 0x03; here its challenges) the customer's page got."""
    return sum(1 for frame in customer.frames.received if frame[:1] == b"\x03")


def test_a_closed_console_ends_the_customers_session_though_the_relay_withholds_the_end(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    server, relay = malicious_server(server_factory)
    sockets: list[WebSocket] = []
    customer.page.on("websocket", lambda ws: sockets.append(ws))
    customer.page.clock.install()  # runs on its own, until moved forward below
    share_at(customer, agent, server, server.base, server.base)
    # The console challenges when the page starts: the customer's browser has had one.
    wait_until(customer.page, lambda: challenges_received(customer) >= 1)

    # The relay swallows everything toward the customer from now on: the server's word that the
    # console went (`peer`, later `ended`), and anything of the agent's.
    swallowed: list[dict[str, Any]] = []

    def swallow(message: dict[str, Any]) -> list[dict[str, Any]]:
        swallowed.append(message)
        return []

    relay.to_customer = swallow
    relay.binary_to_customer = lambda frame: None
    agent.page.close()  # the agent's tab is closed: no goodbye
    wait_until(customer.page, lambda: any(m.get("type") == "peer" for m in swallowed))
    expect(banner(customer)).to_contain_text("Sharing this page with Alice")
    expect(customer.page.get_by_text(WARNING)).to_have_count(0)

    # A minute and a half of the customer's page later: warned, still sharing. (The page's time
    # moves in steps shorter than silence.ts's ASLEEP_MS: a longer jump counts as a sleep.)
    moved = forward(customer, 0, AGENT_QUIET_MS + LOOK_EVERY_MS)
    expect(banner(customer)).to_contain_text(WARNING)
    assert customer.page.evaluate("() => window.Tandem.state") == "sharing"

    # Past the bound: the session ends on the customer's side, and the widget says why.
    forward(customer, moved, AGENT_SILENT_MS + LOOK_EVERY_MS)
    expect(customer.page.get_by_role("alert")).to_contain_text(ENDED)
    expect(customer.page.get_by_role("button", name="Stop sharing")).to_have_count(0)
    assert customer.page.evaluate("() => window.Tandem.state") == "ended"
    assert customer.page.evaluate("() => sessionStorage.getItem('tandem.session')") is None
    # Nothing more is sent: the page closed its socket (with a `stop` for an honest server).
    wait_until(customer.page, lambda: bool(sockets) and all(ws.is_closed() for ws in sockets))
    told = [f for f in customer.frames.sent if f.startswith(b"{") and b'"stop"' in f]
    assert told, "the server was told, as Stop sharing tells it"


def test_a_console_that_goes_on_challenging_keeps_the_session_however_long_it_runs(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    server, _relay = malicious_server(server_factory)  # an honest relay, the same set-up
    customer.page.clock.install()
    share_at(customer, agent, server, server.base, server.base)
    wait_until(customer.page, lambda: challenges_received(customer) >= 1)
    # Twice the bound of the customer's page time, in steps; a challenge comes between each
    # (every 3 s of the console's time, which runs on its own).
    moved = 0
    while moved < 2 * AGENT_SILENT_MS:
        seen = challenges_received(customer)
        moved = forward(customer, moved, moved + 30_000)
        wait_until(customer.page, lambda seen=seen: challenges_received(customer) > seen)
    expect(banner(customer)).to_contain_text("Sharing this page with Alice")
    expect(customer.page.get_by_text(WARNING)).to_have_count(0)
    assert customer.page.evaluate("() => window.Tandem.state") == "sharing"


def test_a_relay_that_withholds_every_command_from_the_start_ends_the_customers_session(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    server, relay = malicious_server(server_factory)
    # From before the pairing, nothing of the agent's console reaches the customer's page: no
    # challenge ever (as a console that crashed right after the pairing would send none).
    relay.binary_to_customer = lambda frame: None
    sockets: list[WebSocket] = []
    customer.page.on("websocket", lambda ws: sockets.append(ws))
    customer.page.clock.install()
    before, after = start_sharing(customer, agent, server)

    # Not warned before a minute and a half of sharing; warned after it, still sharing.
    forward_to(customer, before + AGENT_QUIET_MS - 10_000)
    expect(customer.page.get_by_text(WARNING)).to_have_count(0)
    assert state(customer) == "sharing"
    forward_to(customer, after + AGENT_QUIET_MS + LOOK_EVERY_MS)
    expect(banner(customer)).to_contain_text(WARNING)
    # Not ended before the bound; ended past it, in the page.
    forward_to(customer, before + AGENT_SILENT_MS - 10_000)
    assert state(customer) == "sharing"
    forward_to(customer, after + AGENT_SILENT_MS + LOOK_EVERY_MS)
    assert_ended_here(customer, sockets)
    assert challenges_received(customer) == 0, "nothing of the console's ever reached the page"


def test_forced_reconnections_and_a_new_page_do_not_start_the_silence_afresh(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    server, relay = malicious_server(server_factory)
    relay.binary_to_customer = lambda frame: None  # no command of the console's, from the start
    sockets: list[WebSocket] = []
    customer.page.on("websocket", lambda ws: sockets.append(ws))
    customer.page.clock.install()
    before, after = start_sharing(customer, agent, server)

    # Every 50 s of sharing (less than the warning's bound, and the bound), the relay closes the
    # customer's socket: the page reconnects and shares again. Then the customer moves on to
    # another page of the site. Neither starts the watch afresh; the time the page was not
    # sharing (reconnecting, loading) is not counted, so the end may come that much later.
    away = 0
    for change in ("reconnect", "reconnect", "navigate"):
        forward_to(customer, page_now(customer) + 50_000)
        began = epochs_begun(customer)
        left = page_now(customer)
        if change == "reconnect":
            relay.close_customer(1012)
        else:
            # (Playwright may not see a left page's socket close: only the new page's count.)
            del sockets[:]
            customer.page.goto(f"{server.base}/demo/checkout.html")
        wait_until(customer.page, lambda began=began: epochs_begun(customer) > began)
        expect(banner(customer)).to_contain_text("Sharing this page with Alice")
        assert state(customer) == "sharing"
        away += page_now(customer) - left
    # 150 s shared: warned, which no new start would be.
    forward_to(customer, page_now(customer) + LOOK_EVERY_MS)
    expect(banner(customer)).to_contain_text(WARNING)
    forward_to(customer, before + AGENT_SILENT_MS - 10_000)
    assert state(customer) == "sharing", "not before the bound"
    forward_to(customer, after + away + AGENT_SILENT_MS + LOOK_EVERY_MS)
    assert_ended_here(customer, sockets)


def test_a_console_whose_first_challenge_comes_late_keeps_the_session(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    server, relay = malicious_server(server_factory)
    # The console's challenges reach the page only after 100 s of sharing (as if its first came
    # that late): warned meanwhile, then the warning is taken back and the session goes on.
    late = [True]
    relay.binary_to_customer = lambda frame: None if late[0] else frame
    customer.page.clock.install()
    _before, after = start_sharing(customer, agent, server)
    forward_to(customer, after + AGENT_QUIET_MS + 10_000)
    expect(banner(customer)).to_contain_text(WARNING)
    late[0] = False
    wait_until(customer.page, lambda: challenges_received(customer) >= 2)
    expect(customer.page.get_by_text(WARNING)).to_have_count(0)
    # Past twice the bound of the page's time, a challenge between each step: still sharing.
    while page_now(customer) < after + 2 * AGENT_SILENT_MS:
        seen = challenges_received(customer)
        forward_to(customer, page_now(customer) + 30_000)
        wait_until(customer.page, lambda seen=seen: challenges_received(customer) > seen)
    expect(banner(customer)).to_contain_text("Sharing this page with Alice")
    expect(customer.page.get_by_text(WARNING)).to_have_count(0)
    assert state(customer) == "sharing"
