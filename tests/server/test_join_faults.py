"""Joining a session with its code under storage faults: the code is taken (deleted) before the
session and its site are looked at, so the database failing after that step must not leave the
code gone. The customer's page still shows it and waits; an agent's retry with it was refused
as a wrong code (and counted towards the lockout), and no one could ever join."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import RunningServer
from tests.server.faults import FailingCall
from tests.server.helpers import login_cookie, open_agent, recv_json, send, start_session

JOINING = "session_for_code"
"""The hub's method that takes the code and looks the session up: its storage calls fail."""


async def join(server: RunningServer, code: str) -> str:
    """What an agent's join with ``code`` answers (the message type), or "closed"."""
    agent = await open_agent(server, login_cookie(server, "alice"))
    await send(agent, type="join", code=code)
    try:
        return str((await recv_json(agent))["type"])
    except ConnectionClosed:
        return "closed"


async def test_the_database_failing_after_the_code_was_taken_leaves_the_code_valid(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = FailingCall(server.server.config.app.state.services.storage, monkeypatch, JOINING)
    _, created = await start_session(server)
    faults.arm(0)
    assert await join(server, created["code"]) == "joined"
    assert faults.calls[0] == "take_join_code"
    steps = len(faults.calls)
    assert steps >= 2, faults.calls
    for fail_at in range(2, steps + 1):
        _, created = await start_session(server)
        faults.arm(fail_at)
        failed = await join(server, created["code"])
        where = f"failing at call {fail_at} ({faults.calls[-1]})"
        assert failed != "joined", where
        faults.arm(0)
        assert await join(server, created["code"]) == "joined", where
