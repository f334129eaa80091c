"""Issue 13, in real browsers: the server is restarted with SIGTERM (a real `tandem serve`, then
the next one on the same data directory and port). The customer's page (the SDK on the demo
shop) and the agent's console both reconnect with their resume tokens, and the agent sees the
customer's page again, through the same end-to-end keys (the server never had them); the
control the customer granted stays granted (it is the customer's browser's to keep)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import expect

from tests.conftest import DataTemplates, free_port
from tests.e2e.conftest import Party, audit_actions, get_help, mirror, share
from tests.e2e.test_control import grant, request_control
from tests.e2e.test_reconnect import LIVE, banner
from tests.server.test_crash_recovery import ServeProcess, serve_processes

__all__ = ["serve_processes"]  # the fixture, shared with tests/server/test_crash_recovery.py


def test_customer_and_agent_reconnect_after_a_sigterm_restart_and_the_page_is_seen_again(
    tmp_path: Path,
    data_templates: DataTemplates,
    serve_processes: Callable[..., ServeProcess],
    customer: Party,
    agent: Party,
) -> None:
    data_dir, port = tmp_path / "data", free_port()
    data_templates.copy_to(data_dir)
    first = serve_processes(data_dir, port)
    customer.page.goto(f"{first.base}/demo/")
    view = share(customer, agent, first, get_help(customer))  # type: ignore[arg-type]
    status = agent.page.get_by_role("status")
    expect(status).to_contain_text(LIVE)
    customer.page.locator("#search").fill("before the restart")
    expect(view.locator("#search")).to_have_value("before the restart")
    request_control(customer, agent)
    grant(customer, agent)
    take_back = banner(customer).get_by_role("button", name="Take back control")
    expect(take_back).to_be_visible()
    expect(banner(customer)).to_contain_text("Alice can control this page")

    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(timeout=20) == 0
    expect(banner(customer)).to_contain_text("Reconnecting")
    expect(status).to_contain_text("Reconnecting")
    assert customer.page.evaluate("() => window.Tandem.state") != "ended"  # reconnecting

    second = serve_processes(data_dir, port)
    # The banner as before the restart: sharing, with the control the customer granted.
    try:
        expect(banner(customer)).to_contain_text("Alice can control this page", timeout=30_000)
    except AssertionError as failed:  # what the console said: why it left, if it did
        raise AssertionError(
            f"{failed}\nthe console's status: {status.all_inner_texts()}"
        ) from failed
    expect(status).to_contain_text(LIVE, timeout=30_000)
    view = mirror(agent)
    customer.page.locator("#search").fill("after the restart")
    expect(view.locator("#search")).to_have_value("after the restart")
    expect(take_back).to_be_visible()  # control as the customer left it: granted, revocable

    banner(customer).get_by_role("button", name="Stop sharing").click()
    expect(status).to_contain_text("Session ended")
    actions = audit_actions(second)  # type: ignore[arg-type]
    assert "session_suspended" in actions and "session_restored" in actions
    assert "agent_rejoined" in actions
