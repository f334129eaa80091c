"""A customer's page resuming its session while the database fails (tests/server/faults.py
fails each storage call of the resume in turn): the new socket is closed 1013 and the session
is left as it was, its page away. Before, the resume took the page for back before it read the
session's site: a failed read left a session that believed its customer present, with no
socket, so its resume deadline never ran and it lingered, shown live to the agent, until the
idle timeout (30 minutes)."""

from __future__ import annotations

from typing import Any

import pytest

from tandem.server.unavailable import SOCKET_REASON
from tests.conftest import RunningServer
from tests.server.faults import FailingCall
from tests.server.helpers import (
    closed_with,
    open_customer,
    recv_json,
    resume_on,
    send,
    sharing_session,
)

AWAY = {"v": 1, "type": "peer", "connected": False}
BACK = {"v": 1, "type": "peer", "connected": True}


async def failed_resume(server: RunningServer, created: dict[str, Any]) -> None:
    page = await open_customer(server)
    await send(
        page, type="resume", session_id=created["session_id"], resume_token=created["resume_token"]
    )
    assert await closed_with(page) == (1013, SOCKET_REASON)


async def test_a_resume_the_database_fails_under_leaves_the_page_away(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    resuming = FailingCall(
        server.server.config.app.state.services.storage, monkeypatch, "open_customer"
    )
    customer, agent, created = await sharing_session(server)
    await customer.close(1001)  # the page moves on
    assert await recv_json(agent) == AWAY
    resuming.arm(0)
    page, resumed = await resume_on(server, created)
    assert resumed["type"] == "resumed"
    assert await recv_json(agent) == BACK
    steps = len(resuming.calls)
    assert "get_site" in resuming.calls
    for fail_at in range(1, steps + 1):
        await page.close(1001)
        assert await recv_json(agent) == AWAY
        resuming.arm(fail_at)
        await failed_resume(server, created)
        resuming.arm(0)  # the database answers again: the next page takes the session up
        page, resumed = await resume_on(server, created)
        assert resumed["type"] == "resumed", f"failing at call {fail_at}"
        assert await recv_json(agent) == BACK  # the first word since it went away
    # A page that never comes back after a failed resume: its deadline runs as for any page.
    await page.close(1001)
    assert await recv_json(agent) == AWAY
    resuming.arm(resuming.calls.index("get_site") + 1)
    await failed_resume(server, created)
    server.clock.advance(server.settings.resume_grace_seconds + 1)
    assert await recv_json(agent) == {"v": 1, "type": "ended", "reason": "customer_lost"}
