"""The agent console served from an origin the relay's operator does not control: the copy written
by `tandem console --copy-to` is hosted by another web server (the same site as the relay, as the
SameSite=Strict sign-in cookie requires), signs the agent in there and shows the customer's page."""

from __future__ import annotations

from playwright.sync_api import expect
from typer.testing import CliRunner

from tandem import cli
from tests.conftest import AGENT_PASSWORD, ServerFactory
from tests.e2e.conftest import OtherOrigin, Party, allow, get_help, join, mirror


def test_console_copied_to_another_origin_signs_in_and_mirrors(
    server_factory: ServerFactory, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    relay = server_factory(console_origins=(other_origin.origin,))
    copied = CliRunner().invoke(
        cli.app,
        ["console", "--copy-to", str(other_origin.root / "console"), "--relay", relay.base],
    )
    assert copied.exit_code == 0, copied.output

    api_hosts: set[str] = set()
    agent.page.on(
        "request",
        lambda request: (
            api_hosts.add(request.url.split("/api/")[0]) if "/api/" in request.url else None
        ),
    )
    sockets: list[str] = []
    agent.page.on("websocket", lambda ws: sockets.append(ws.url))
    agent.page.goto(f"{other_origin.origin}/console/")
    expect(agent.page.get_by_role("button", name="Continue with your organisation")).to_be_hidden()
    agent.page.get_by_label("Username").fill("alice")
    agent.page.get_by_label("Password").fill(AGENT_PASSWORD)
    agent.page.get_by_role("button", name="Sign in").click()
    expect(agent.page.get_by_label("Session code")).to_be_visible()

    customer.page.goto(f"{relay.base}/demo/")
    code = get_help(customer)
    join(agent, code)
    allow(customer)
    view = mirror(agent)
    customer.page.get_by_label("Search products").press_sequentially("tent", delay=30)
    expect(view.locator("input[type=search]")).to_have_value("tent")

    assert agent.page.url.startswith(other_origin.origin)
    assert api_hosts == {relay.base}  # every API call went to the relay, none to the page's host
    assert sockets == [f"{relay.ws_base}/ws/agent"]
    assert not agent.console_errors and not customer.console_errors
