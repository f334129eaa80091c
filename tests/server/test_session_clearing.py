"""Promise 8, end-of-session clearing, on the server: once a session ended, however it ended, the
relay keeps only what the audit trail needs (the session's row, ended, and its audit records);
no join code, no handed-over resume state, no relay queue, no page bytes (docs/privacy.md,
"End of session")."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from tandem.fanout.memory import MemoryFanout
from tests.conftest import RunningServer, ServerFactory
from tests.server.helpers import (
    closed_with,
    login_cookie,
    pending_session,
    recv_json,
    send,
    sharing_session,
    start_session,
)

# Where an ended session's id may still be found, and why: its row (when it began and ended, who
# served it: the audit trail's subject) and the audit trail itself.
KEPT = {"sessions", "audit"}


async def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def rows_naming(database: Path, needles: list[bytes]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table that holds one of ``needles`` in any column, by table."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    with sqlite3.connect(database) as db:
        tables = [
            name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    raw = value if isinstance(value, bytes) else str(value).encode()
                    if any(needle in raw for needle in needles):
                        found.setdefault(table, []).append(row)
                        break
    return found


def ended_row(database: Path, session_id: str) -> tuple[Any, ...] | None:
    with sqlite3.connect(database) as db:
        row: tuple[Any, ...] | None = db.execute(
            "SELECT ended_at, end_reason FROM sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
    return row


async def relayed(customer: ClientConnection, agent: ClientConnection, page: bytes) -> None:
    """Page bytes (as sealed content would be: opaque to the relay) went from customer to agent."""
    await customer.send(page)
    assert await asyncio.wait_for(agent.recv(), 5) == page


async def by_stop(server: RunningServer, page: bytes) -> tuple[str, str]:
    customer, agent, created = await sharing_session(server)
    await relayed(customer, agent, page)
    await send(customer, type="stop")
    assert (await closed_with(agent))[0] == 1000
    return created["session_id"], "stopped"


async def by_cancel(server: RunningServer, page: bytes) -> tuple[str, str]:
    customer, created = await start_session(server)  # a code shown, no agent yet: its code live
    await send(customer, type="stop")
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "stopped"}
    return created["session_id"], "stopped"


async def by_leave(server: RunningServer, page: bytes) -> tuple[str, str]:
    customer, agent, created = await sharing_session(server)
    await relayed(customer, agent, page)
    await send(agent, type="leave")
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "agent_left"}
    return created["session_id"], "agent_left"


async def by_decline(server: RunningServer, page: bytes) -> tuple[str, str]:
    customer, agent, created = await pending_session(server)
    await send(customer, type="consent", granted=False)
    assert await recv_json(agent) == {"v": 1, "type": "ended", "reason": "declined"}
    return created["session_id"], "declined"


async def by_idle(server: RunningServer, page: bytes) -> tuple[str, str]:
    customer, agent, created = await sharing_session(server)
    await relayed(customer, agent, page)
    server.clock.advance(server.settings.idle_timeout_seconds + 1)
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "idle_timeout"}
    return created["session_id"], "idle_timeout"


async def by_unused_code(server: RunningServer, page: bytes) -> tuple[str, str]:
    customer, created = await start_session(server)
    server.clock.advance(server.settings.code_ttl_seconds + 1)
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "code_expired"}
    return created["session_id"], "code_expired"


async def by_closed_tab(server: RunningServer, page: bytes) -> tuple[str, str]:
    customer, agent, created = await sharing_session(server)
    await relayed(customer, agent, page)
    await customer.close()  # the tab closed: no stop, the page just went
    assert (await recv_json(agent))["type"] == "peer"
    assert await recv_json(agent) == {"v": 1, "type": "ended", "reason": "customer_lost"}
    return created["session_id"], "customer_lost"


async def by_revocation(server: RunningServer, page: bytes) -> tuple[str, str]:
    customer, agent, created = await sharing_session(server)
    await relayed(customer, agent, page)
    with httpx.Client(base_url=server.base, headers={"origin": server.origin}) as client:
        client.cookies.set("tandem_agent", login_cookie(server, "alice"))
        assert client.post("/api/logout-everywhere").status_code == 204
    assert (await closed_with(agent))[0] == 4401
    while (told := await recv_json(customer))["type"] != "ended":
        pass
    return created["session_id"], told["reason"]


ENDINGS: dict[str, Callable[[RunningServer, bytes], Awaitable[tuple[str, str]]]] = {
    "customer stops": by_stop,
    "customer cancels the code": by_cancel,
    "agent leaves": by_leave,
    "customer declines": by_decline,
    "idle timeout": by_idle,
    "code unused": by_unused_code,
    "tab closed": by_closed_tab,
    "sign-in revoked": by_revocation,
}


@pytest.mark.parametrize("ending", ENDINGS)
async def test_an_ended_session_leaves_only_its_audit_trail(
    server_factory: ServerFactory, ending: str
) -> None:
    server = server_factory(resume_grace_seconds=0.3)
    services = server.server.config.app.state.services
    hub, fanout = services.hub, services.fanout.inner  # counted (tandem.metrics), in memory
    page = b"\x01" + b"page-bytes-" + secrets.token_hex(8).encode()
    session_id, reason = await ENDINGS[ending](server, page)
    database = server.settings.database_path
    # The end is written (the session's row says so), and nothing of it is still being written.
    await wait_for(lambda: (ended_row(database, session_id) or (None,))[0] is not None)
    await wait_for(lambda: session_id not in hub._unfinished and session_id not in hub._closing)
    assert (ended_row(database, session_id) or (None, None))[1] == reason
    # In memory: not live, not counted, no relay queue (topic) left for it.
    assert session_id not in hub._live
    assert session_id not in hub._starting
    for index in (hub._waiting_by_client, hub._waiting_by_site):
        assert not any(session_id in opened for opened in index.values())
    assert isinstance(fanout, MemoryFanout)
    await wait_for(lambda: not [t for t in fanout._topics if session_id in t])
    # In the database: the id only where the audit trail needs it; no join code, no resume state.
    found = rows_naming(database, [session_id.encode(), page])
    assert set(found) <= KEPT, {table: found[table] for table in set(found) - KEPT}
    assert not any(page in str(row).encode() for rows in found.values() for row in rows)
    # Nor any of the page's bytes anywhere in the data directory (the database, its journal).
    for path in server.settings.data_dir.rglob("*"):
        if path.is_file():
            assert page not in path.read_bytes(), f"page bytes left in {path}"
