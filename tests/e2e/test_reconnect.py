"""Issue 13, fault 6, in real browsers: a flaky network or a reloaded console does not end a
session. The customer's page and the agent's console reach the real server through a TCP proxy
(tests/e2e/netcut.py) whose connections the test cuts, as a network drop does; the session goes
on with the same end-to-end keys. A relay that splices another customer into a rejoined session
is refused by the agent's console."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.conftest import RunningServer, ServerFactory, add_user
from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import (
    CODE_PATTERN,
    Party,
    allow,
    audit_actions,
    console_at,
    get_help,
    join,
    mirror,
    open_console_as,
)
from tests.e2e.netcut import NetCut
from tests.e2e.test_control import agent_click, grant
from tests.malicious import without_direct_send

LIVE = "You are seeing the customer's page live"


@pytest.fixture
def net(live: RunningServer) -> Iterator[NetCut]:
    proxy = NetCut(live)
    yield proxy
    proxy.close()


def share_at(
    customer: Party, agent: Party, server: RunningServer, customer_base: str, agent_base: str
) -> Any:
    customer.page.goto(f"{customer_base}/demo/")
    code = get_help(customer)
    console_at(agent, server, agent_base)
    join(agent, code)
    allow(customer)
    view = mirror(agent)
    expect(agent.page.get_by_role("status")).to_contain_text(LIVE)
    return view


def banner(customer: Party) -> Any:
    # The widget's banner: a region named by what it says (sharing, or reconnecting).
    return customer.page.get_by_role("region").filter(
        has=customer.page.get_by_role("button", name="Stop sharing")
    )


def test_a_dropped_customer_network_reconnects_and_the_session_goes_on(
    live: RunningServer, net: NetCut, customer: Party, agent: Party
) -> None:
    view = share_at(customer, agent, live, net.base, live.base)
    expect(banner(customer)).to_contain_text("Sharing this page with Alice")
    net.down()  # the customer's network is gone for a while
    expect(banner(customer)).to_contain_text("Reconnecting to the help server…")
    assert_accessible(customer.page)
    expect(agent.page.get_by_role("status")).to_contain_text(
        "Customer is reloading the page or reconnecting"
    )
    customer.page.wait_for_timeout(3000)  # a 3-second drop: attempts fail meanwhile, and go on
    net.up()
    expect(banner(customer)).to_contain_text("Sharing this page with Alice", timeout=15_000)
    expect(agent.page.get_by_role("status")).to_contain_text(LIVE)
    # The same session, the same keys: what the customer does now reaches the agent.
    customer.page.locator("#search").fill("tent after the drop")
    expect(view.locator("#search")).to_have_value("tent after the drop")
    assert customer.page.evaluate("() => window.Tandem.state") == "sharing"
    # Stop sharing works as ever.
    banner(customer).get_by_role("button", name="Stop sharing").click()
    expect(agent.page.get_by_role("status")).to_contain_text("Session ended")


def test_the_customer_is_told_plainly_when_reconnecting_gives_up(
    server_factory: ServerFactory, other_origin: Any, customer: Party, agent: Party
) -> None:
    server = server_factory(resume_grace_seconds=3)  # the server keeps the session 3 s
    net = NetCut(server)
    try:
        share_at(customer, agent, server, net.base, server.base)
        net.down()
        expect(banner(customer)).to_contain_text("Reconnecting")
        alert = customer.page.get_by_role("alert")
        expect(alert).to_contain_text("could not be restored", timeout=10_000)
        expect(alert).to_contain_text("Get help")
        assert customer.page.evaluate("() => window.Tandem.state") == "ended"
        expect(customer.page.get_by_role("button", name="Stop sharing")).to_have_count(0)
    finally:
        net.close()


def test_stop_sharing_while_reconnecting_ends_the_session_in_the_page(
    live: RunningServer, net: NetCut, customer: Party, agent: Party
) -> None:
    share_at(customer, agent, live, net.base, live.base)
    net.down()
    expect(banner(customer)).to_contain_text("Reconnecting")
    banner(customer).get_by_role("button", name="Stop sharing").click()
    expect(customer.page.get_by_role("button", name="Stop sharing")).to_have_count(0)
    assert customer.page.evaluate("() => window.Tandem.state") == "ended"
    frames_before = len(customer.frames.sent)
    net.up()
    customer.page.wait_for_timeout(1500)
    # Nothing of the page is sent after Stop: at most the resume and stop of the farewell socket.
    later = [f for f in customer.frames.sent[frames_before:] if f[:1] in (b"\x01", b"\x02")]
    assert later == []


def test_an_agent_whose_network_drops_for_3_seconds_gets_the_session_back(
    live: RunningServer, net: NetCut, customer: Party, agent: Party
) -> None:
    view = share_at(customer, agent, live, live.base, net.base)
    net.down()
    expect(agent.page.get_by_role("status")).to_contain_text("Reconnecting")
    expect(banner(customer)).to_contain_text("Alice is reconnecting…")
    agent.page.wait_for_timeout(3000)
    net.up()
    expect(agent.page.get_by_role("status")).to_contain_text(LIVE, timeout=15_000)
    expect(banner(customer)).to_contain_text("Sharing this page with Alice")
    customer.page.locator("#search").fill("back again")
    expect(mirror(agent).locator("#search")).to_have_value("back again")
    del view
    assert "agent_rejoined" in audit_actions(live)


def test_a_reloaded_console_gets_the_mirror_back_without_a_new_code(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    share_at(customer, agent, live, live.base, live.base)
    customer.page.locator("#search").fill("before the reload")
    session = agent.page.locator("#fact-session").inner_text()
    assert re.fullmatch(r"[\w-]{8,}", session), session
    agent.page.reload()
    expect(agent.page.get_by_role("status")).to_contain_text(LIVE, timeout=15_000)
    expect(agent.page.locator("#fact-session")).to_have_text(session)  # the header knows it again
    expect(mirror(agent).locator("#search")).to_have_value("before the reload")
    customer.page.locator("#search").fill("after the reload")
    expect(mirror(agent).locator("#search")).to_have_value("after the reload")
    # Control still works: the customer's browser accepts the reloaded console's commands.
    agent.page.get_by_role("button", name=re.compile("control", re.I)).first.click()
    expect(customer.page.get_by_role("dialog")).to_be_visible()
    assert customer.page.evaluate("() => window.Tandem.state") == "sharing"
    assert audit_actions(live).count("agent_joined") == 1  # no new code, no new consent
    assert "agent_rejoined" in audit_actions(live)
    agent.page.get_by_role("button", name="Leave").click()
    expect(customer.page.get_by_role("button", name="Stop sharing")).to_have_count(0)


def test_a_reloaded_console_knows_the_control_the_customer_still_grants(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    """The customer's browser keeps a grant across the agent's reload; the reloaded console is
    told so inside the encrypted channel (it offers Release control, not Request control) and
    the agent types straight away, with no second question to the customer."""
    share_at(customer, agent, live, live.base, live.base)
    grant(customer, agent)
    agent.page.reload()
    status = agent.page.get_by_role("status")
    expect(status).to_contain_text("You have control", timeout=15_000)
    expect(agent.page.get_by_role("button", name="Release control")).to_be_visible()
    expect(agent.page.get_by_role("button", name="Request control")).to_be_hidden()
    view = mirror(agent)
    agent_click(agent, view, "#search")
    agent.page.keyboard.type("typed by the agent")
    expect(customer.page.locator("#search")).to_have_value("typed by the agent")
    expect(customer.page.get_by_role("dialog")).to_have_count(0)  # not asked again
    # A navigation starts a new epoch: the grant is repeated, and the console says nothing new.
    customer.page.goto(f"{live.base}/demo/checkout.html")
    expect(mirror(agent).locator("#card")).to_be_attached()
    expect(agent.page.get_by_role("button", name="Release control")).to_be_visible()


def test_a_signed_out_console_does_not_get_the_session_back(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    share_at(customer, agent, live, live.base, live.base)
    # The sign-in is revoked everywhere (another tab, an admin): a reload cannot rejoin.
    response = agent.page.request.post(
        f"{live.base}/api/logout-everywhere", headers={"origin": live.base}
    )
    assert response.ok
    agent.page.reload()
    expect(agent.page.get_by_label("Username")).to_be_visible()
    expect(agent.page.locator('iframe[title="Customer view"]')).to_have_count(0)
    assert "agent_rejoined" not in audit_actions(live)


class FrameSwapper:
    """The relay as an attacker runs it. It tells the console sockets apart by their sign-in
    (cookie), not by the order they open in, which a slow machine's reconnects can change: it
    keeps the frames it passes to the first console's first socket (``keep="first"``: the page
    that console showed) or to another console's sockets (``keep="other"``: another customer's
    session), and sends them, once, to the first console's later sockets (its rejoin after a
    reload) in place of their own frames (``swapped`` counts the frames it withheld)."""

    def __init__(self, app: ASGIApp, keep: str) -> None:
        self.app = app
        self.keep = keep
        self.first_sign_in: bytes | None = None
        self.kept: list[bytes] = []
        self.swapped = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket" or scope.get("path") != "/ws/agent":
            await self.app(scope, receive, send)
            return
        sign_in = dict(scope["headers"]).get(b"cookie", b"")
        if self.first_sign_in is None:
            self.first_sign_in, which = sign_in, "first"
        else:
            which = "again" if sign_in == self.first_sign_in else "other"
        scope = without_direct_send(scope)  # every frame must pass relay_send

        async def relay_send(message: Message) -> None:
            frame = message.get("bytes") if message["type"] == "websocket.send" else None
            if frame is not None and which == self.keep:
                self.kept.append(frame)
            if frame is not None and which == "again" and self.kept:
                # Counted before the kept frames go: the console can see them, refuse the
                # session and close its socket before the last of them is written, and the
                # write that finds the socket closed raises.
                self.swapped += 1
                if self.swapped == 1:  # in place of this socket's own frames
                    for kept in self.kept:
                        await send({"type": "websocket.send", "bytes": kept})
                return
            await send(message)

        await self.app(scope, receive, relay_send)


def swapping_server(server_factory: ServerFactory, keep: str) -> tuple[RunningServer, FrameSwapper]:
    """A server behind a :class:`FrameSwapper` that keeps ``keep``'s frames."""
    relays: list[FrameSwapper] = []

    def wrap(app: ASGIApp) -> ASGIApp:
        relays.append(FrameSwapper(app, keep=keep))
        return relays[-1]

    server = server_factory(wrap=wrap)
    return server, relays[0]


def test_a_relay_that_splices_another_customer_into_a_rejoined_session_is_refused(
    server_factory: ServerFactory, customer: Party, agent: Party, supervisor: Party, browser: Any
) -> None:
    # bob's sockets (another customer's session) into alice's rejoined one
    server, relay = swapping_server(server_factory, keep="other")
    add_user(server.settings.data_dir, "bob", display_name="Bob")
    share_at(customer, agent, server, server.base, server.base)  # alice: the first console
    # Another customer shares another page with bob: the relay keeps its frames.
    other_customer = browser.new_context().new_page()
    other_customer.goto(f"{server.base}/demo/checkout.html")
    other_customer.get_by_role("button", name="Get help").click()
    match = CODE_PATTERN.search(other_customer.get_by_text(CODE_PATTERN).inner_text())
    assert match
    code = "".join(match.groups())
    open_console_as(supervisor, server, "bob")
    join(supervisor, code)
    other_customer.get_by_role("dialog").get_by_role("button", name="Allow").click()
    expect(mirror(supervisor).locator("#notes")).to_be_attached()
    assert relay.kept
    # alice reloads: the relay answers her rejoin with the other session's frames.
    agent.page.reload()
    expect(agent.page.get_by_role("status")).to_contain_text("integrity check", timeout=15_000)
    assert relay.swapped > 0
    expect(agent.page.locator('iframe[title="Customer view"]')).to_have_count(0)
    # Her own customer's session ends (she left); the other customer's page never showed.
    expect(customer.page.get_by_role("button", name="Stop sharing")).to_have_count(0)
    other_customer.context.close()


def test_a_relay_that_replays_an_old_page_to_a_reloaded_console_is_refused(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    # the console's first socket (the page it showed) into its reloaded one
    server, relay = swapping_server(server_factory, keep="first")
    share_at(customer, agent, server, server.base, server.base)
    assert relay.kept
    # The console reloads; the relay answers its rejoin with the page the console showed before.
    agent.page.reload()
    expect(agent.page.get_by_role("status")).to_contain_text("integrity check", timeout=15_000)
    assert relay.swapped > 0
    expect(agent.page.locator('iframe[title="Customer view"]')).to_have_count(0)
    expect(customer.page.get_by_role("button", name="Stop sharing")).to_have_count(0)
