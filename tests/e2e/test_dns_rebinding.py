"""DNS rebinding against a server with no public origin (``make run``, loopback): an attacker's
page at ``attacker.example``, whose name then resolves to the server, is same-origin with it in
the visitor's browser. Chromium's host resolver maps the name to 127.0.0.1 here, as the
attacker's DNS would; the attacker's page itself comes from "its" server (a routed answer)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import RunningServer
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, Party, get_help, join, mirror, sign_in

ATTACK = """async () => {
    const seen = {};
    for (const path of ["/console/", "/demo/", "/api/me", "/sdk/tandem.js"]) {
        seen[path] = (await fetch(path)).status;
    }
    seen.login = (await fetch("/api/login", {
        method: "POST", headers: {"content-type": "application/json"},
        body: JSON.stringify({username: "alice", password: "guess"}),
    })).status;
    seen.socket = await new Promise((resolve) => {
        const socket = new WebSocket(`ws://${location.host}/ws/customer`);
        socket.onopen = () => { socket.close(); resolve("open"); };
        socket.onerror = () => resolve("refused");
    });
    return seen;
}"""


@pytest.fixture
def rebinding_browser(browser: Browser) -> Iterator[Browser]:
    """A browser whose resolver answers 127.0.0.1 for attacker.example (the rebound name), and
    which lets a page of a public address fetch from a private one as Firefox and Safari do
    (Chromium's Private Network Access refuses some of it: not every browser's visitor has it,
    and it does not stop a page from opening the rebound name in a window it then reads)."""
    args = [
        *CHROMIUM_ARGS,
        "--host-resolver-rules=MAP attacker.example 127.0.0.1",
        "--disable-features=BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights,"
        "PrivateNetworkAccessRespectPreflightResults,LocalNetworkAccessChecks",
    ]
    # The session's Playwright (a second one cannot run beside it in the same process).
    rebinding = browser.browser_type.launch(executable_path=CHROMIUM, args=args)
    yield rebinding
    rebinding.close()


def test_a_rebound_page_reads_nothing_and_opens_no_socket(
    server: RunningServer, rebinding_browser: Browser
) -> None:
    port = urlsplit(server.base).port
    attacker = f"http://attacker.example:{port}"
    context = rebinding_browser.new_context()
    try:
        page = context.new_page()
        page.route(
            f"{attacker}/attack.html",
            lambda route: route.fulfill(content_type="text/html", body="<p>cheap flights</p>"),
        )
        page.goto(f"{attacker}/attack.html")
        seen = page.evaluate(ATTACK)
    finally:
        context.close()
    assert seen == {
        "/console/": 421,
        "/demo/": 421,
        "/api/me": 421,
        "/sdk/tandem.js": 421,
        "login": 421,
        "socket": "refused",
    }


def test_the_tour_works_at_localhost(server: RunningServer, customer: Party, agent: Party) -> None:
    """``make run``'s tour at http://localhost:8000, not only http://127.0.0.1:8000."""
    server.base = server.base.replace("127.0.0.1", "localhost")
    customer.page.goto(f"{server.base}/demo/checkout.html")
    code = get_help(customer)
    sign_in(agent, server)
    join(agent, code)
    customer.page.get_by_role("dialog").get_by_role("button", name="Allow").click()
    expect(agent.page.locator("#status")).to_contain_text("You are seeing the customer's page live")
    expect(mirror(agent).locator("#email")).to_be_attached()
