"""The agent's console is still there (docs/threat-model.md, "The agent's console is still there"),
in real browsers: once the customer's browser has had a freshness challenge from the agent's
console (inside the encrypted command channel, which the relay can neither forge nor replay), a
long silence of the console ends the session on the customer's side, whatever the relay says or
withholds. Here the agent's tab is closed while a malicious relay swallows everything toward the
customer (its `peer` and `ended` messages, any command): the customer's widget warns, then ends
the session, says why, and sends nothing more.

The bounds are the SDK's constants (sdk/src/share/silence.ts, read from there); the customer's
page runs on Playwright's clock, moved forward past them, so the test waits minutes of the page's
time, not of the test's."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import WebSocket, expect

from tests.conftest import ServerFactory
from tests.e2e.conftest import Party
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
