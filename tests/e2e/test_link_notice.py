"""Issue 13: when the link between the server's processes that carries a session is down (Redis
away, docs/scale-out.md), the server tells both sides ``{"type":"link","state":"reconnecting"}``
and ``"restored"`` when it is back. The customer's banner and the agent's console show it, in
the person's language, as a note beside what they show, never in place of it.

The server is untrusted, so the message comes here from a relay that sends it whenever it likes
(tests/malicious.py), as a compromised server could: it cannot hide the sharing banner's state,
its Stop sharing button or an end of the session."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.conftest import ServerFactory
from tests.e2e.conftest import Party, get_help, share
from tests.e2e.test_malicious_server import malicious_server

DOWN = {"v": 1, "type": "link", "state": "reconnecting"}
BACK = {"v": 1, "type": "link", "state": "restored"}


def test_both_sides_show_the_link_reconnecting_and_restored_beside_what_they_show(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    server, relay = malicious_server(server_factory)
    customer.page.goto(f"{server.base}/demo/")
    share(customer, agent, server, get_help(customer))
    banner = customer.page.get_by_role("region", name="Sharing this page with Alice")
    expect(banner).to_be_visible()
    agent_link = agent.page.locator("#link-status")
    expect(agent_link).to_be_hidden()  # nothing said: nothing shown

    relay.inject_customer(DOWN)
    relay.inject_agent(DOWN)
    note = customer.page.get_by_text("Connection to Alice interrupted. Reconnecting…", exact=True)
    expect(note).to_be_visible()
    # Beside, not instead: the banner still says what is shared, and Stop sharing is there.
    expect(banner.get_by_text("Sharing this page with Alice", exact=True)).to_be_visible()
    expect(banner.get_by_role("button", name="Stop sharing")).to_be_visible()
    expect(agent_link).to_have_text(
        "Connection to the customer interrupted: the help servers are reconnecting…"
    )
    expect(agent.page.get_by_role("button", name="Leave")).to_be_visible()

    relay.inject_customer(BACK)
    relay.inject_agent(BACK)
    expect(note).to_have_count(0)
    expect(banner.get_by_text("Sharing this page with Alice", exact=True)).to_be_visible()
    expect(agent_link).to_have_text("Connection to the customer restored.")

    # The link said down just before the session ends, and again after: the end is shown.
    def to_customer(message: dict[str, Any]) -> list[dict[str, Any]]:
        return [DOWN, message, DOWN] if message.get("type") == "ended" else [message]

    relay.to_customer = to_customer
    relay.inject_agent(DOWN)
    agent.page.get_by_role("button", name="Leave").click()
    expect(customer.page.get_by_role("alert")).to_contain_text("The agent ended the session")
    expect(customer.page.locator(".link-note")).to_have_count(0)
    expect(customer.page.get_by_role("button", name="Stop sharing")).to_have_count(0)
    assert customer.page.evaluate("() => window.Tandem.state") == "ended"
    expect(agent_link).to_be_hidden()  # the session ended: the link line went with it


def test_the_link_notice_is_in_the_persons_language(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    server, relay = malicious_server(server_factory)
    customer.page.goto(f"{server.base}/demo/")
    share(customer, agent, server, get_help(customer))
    # The widget speaks the page's language (read at each redraw).
    customer.page.evaluate("() => document.documentElement.setAttribute('lang', 'de')")
    relay.inject_customer(DOWN)
    expect(
        customer.page.get_by_text(
            "Verbindung zu Alice unterbrochen. Wird wiederhergestellt …", exact=True
        )
    ).to_be_visible()


def test_the_servers_word_on_connections_cannot_hide_control_from_the_customer(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    """The agent controls the page; the relay says the agent's console is away (``peer``) and
    the link is down: the banner adds both notes, and still says the agent is in control, with
    Take back control and Stop sharing (which still work)."""
    server, relay = malicious_server(server_factory)
    customer.page.goto(f"{server.base}/demo/")
    share(customer, agent, server, get_help(customer))
    agent.page.get_by_role("button", name="Request control").click()
    customer.page.get_by_role("dialog").get_by_role("button", name="Allow control").click()
    in_control = "Alice can control this page (Esc to stop)"
    expect(customer.page.get_by_role("region", name=in_control)).to_be_visible()

    relay.inject_customer({"v": 1, "type": "peer", "connected": False})
    note = customer.page.get_by_text("Alice is reconnecting…", exact=True)
    expect(note).to_be_visible()
    banner = customer.page.get_by_role("region", name=f"{in_control}. Alice is reconnecting…")
    expect(banner.get_by_text(in_control, exact=True)).to_be_visible()
    expect(banner.get_by_role("button", name="Take back control")).to_be_visible()
    relay.inject_customer(DOWN)  # one note at a time: the agent's own absence says more
    banner.get_by_role("button", name="Take back control").click()
    expect(customer.page.get_by_text(in_control, exact=True)).to_have_count(0)
    expect(customer.page.get_by_text("Sharing this page with Alice", exact=True)).to_be_visible()
    expect(note).to_be_visible()
    relay.inject_customer({"v": 1, "type": "peer", "connected": True})
    expect(note).to_have_count(0)
    expect(
        customer.page.get_by_text("Connection to Alice interrupted. Reconnecting…", exact=True)
    ).to_be_visible()  # the link is still said to be down
    customer.page.get_by_role("button", name="Stop sharing").click()
    assert customer.page.evaluate("() => window.Tandem.state") == "ended"
