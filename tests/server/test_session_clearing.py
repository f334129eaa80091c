"""Promise 8, end-of-session clearing, on the server and both databases: once a session ended,
however it ended, the relay keeps only what the audit trail needs (the session's row, ended, and
its audit records); no join code, no handed-over resume state, no relay queue, no page bytes
(docs/privacy.md, "End of session")."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection

from tandem.config import Settings
from tandem.directory import Directory, offline, operator
from tandem.fanout.memory import MemoryFanout
from tests.conftest import (
    AGENT_PASSWORD,
    REDIS_HOST,
    REDIS_PORT,
    RunningServer,
    ServerFactory,
    mark_trained,
)
from tests.server.helpers import (
    closed_with,
    login_cookie,
    pending_session,
    recv_json,
    send,
    sharing_session,
    start_session,
)
from tests.storage.conftest import PG_DSN, fresh_schema

BACKENDS = ("sqlite", "postgresql")

# Where an ended session's id may still be found, and why: its row (when it began and ended, who
# served it: the audit trail's subject) and the audit trail itself.
KEPT = {"sessions", "audit"}


async def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def wait_until(condition: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def alice_of_support(directory: Directory) -> None:
    """What the SQLite template holds (tests.conftest.DataTemplates): Alice, a trained agent."""
    await directory.add_user(
        operator("default"),
        "alice",
        AGENT_PASSWORD,
        "agent",
        "Alice",
        ("support",),
        mfa_exempt=True,
        change_required=False,
    )
    await mark_trained(directory.storage, "alice")


@contextlib.asynccontextmanager
async def server_on(
    server_factory: ServerFactory,
    tmp_path: Path,
    backend: str,
    seed: Callable[[Directory], Awaitable[None]] | None = None,
    **overrides: Any,
) -> AsyncIterator[RunningServer]:
    """A server on ``backend``: SQLite in its data directory, or a PostgreSQL schema of this
    test alone; with ``seed`` (default: the SQLite template's Alice) in its database."""
    if backend == "sqlite":
        yield server_factory(seed=seed, **overrides)
        return
    async with fresh_schema(migrated=True) as schema:
        url = f"{PG_DSN}?search_path={schema}"
        seeded = tmp_path / "seed"

        async def seeding() -> None:
            settings = Settings.load(environ={}, data_dir=seeded, database_url=url)
            async with offline(settings) as directory:
                await (seed or alice_of_support)(directory)

        from tests.server.test_scale_out import run_in_thread  # (it imports this module)

        run_in_thread(seeding)
        server = server_factory(database_url=url, audit_key_file=seeded / "audit.key", **overrides)
        try:
            yield server
        finally:
            server.stop()  # before its schema goes


async def _pg(server: RunningServer) -> asyncpg.Connection:
    url = server.settings.database_url
    assert url is not None
    return await asyncpg.connect(PG_DSN, server_settings={"search_path": url.split("=")[-1]})


async def stored_rows_naming(server: RunningServer, needles: list[bytes]) -> dict[str, list[Any]]:
    """:func:`rows_naming` on the server's database, whichever it is (a bytea column's bytes
    are searched as PostgreSQL prints them, in hex)."""
    if not server.settings.database_url:
        return rows_naming(server.settings.database_path, needles)
    db = await _pg(server)
    try:
        schema = server.settings.database_url.split("=")[-1]
        found: dict[str, list[Any]] = {}
        for (table,) in await db.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        ):
            for (line,) in await db.fetch(f'SELECT t::text FROM "{table}" t'):
                text = str(line)
                if any(n.decode("latin-1") in text or n.hex() in text for n in needles):
                    found.setdefault(table, []).append(text)
        return found
    finally:
        await db.close()


async def stored_end(server: RunningServer, session_id: str) -> tuple[Any, ...] | None:
    """:func:`ended_row` on the server's database, whichever it is."""
    if not server.settings.database_url:
        return ended_row(server.settings.database_path, session_id)
    db = await _pg(server)
    try:
        row = await db.fetchrow(
            "SELECT ended_at, end_reason FROM sessions WHERE session_id = $1", session_id
        )
        return None if row is None else tuple(row)
    finally:
        await db.close()


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
@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_ended_session_leaves_only_its_audit_trail(
    server_factory: ServerFactory, tmp_path: Path, backend: str, ending: str
) -> None:
    async with server_on(server_factory, tmp_path, backend, resume_grace_seconds=0.3) as server:
        await _leaves_only_its_audit_trail(server, ending)


async def _leaves_only_its_audit_trail(server: RunningServer, ending: str) -> None:
    services = server.server.config.app.state.services
    hub, fanout = services.hub, services.fanout.inner  # counted (tandem.metrics), in memory
    page = b"\x01" + b"page-bytes-" + secrets.token_hex(8).encode()
    session_id, reason = await ENDINGS[ending](server, page)

    async def ended() -> bool:
        return ((await stored_end(server, session_id)) or (None,))[0] is not None

    # The end is written (the session's row says so), and nothing of it is still being written.
    await wait_until(ended)
    await wait_for(lambda: session_id not in hub._unfinished and session_id not in hub._closing)
    assert ((await stored_end(server, session_id)) or (None, None))[1] == reason
    # In memory: not live, not counted, no relay queue (topic) left for it.
    assert session_id not in hub._live
    assert session_id not in hub._starting
    for index in (hub._waiting_by_client, hub._waiting_by_site):
        assert not any(session_id in opened for opened in index.values())
    assert isinstance(fanout, MemoryFanout)
    await wait_for(lambda: not [t for t in fanout._topics if session_id in t])
    # In the database: the id only where the audit trail needs it; no join code, no resume state.
    found = await stored_rows_naming(server, [session_id.encode(), page])
    assert set(found) <= KEPT, {table: found[table] for table in set(found) - KEPT}
    assert "audit" in found  # (the search sees what is there)
    assert await stored_rows_naming(server, [page]) == {}
    # Nor any of the page's bytes anywhere in the data directory (the database, its journal;
    # with PostgreSQL, the keys).
    for path in server.settings.data_dir.rglob("*"):
        if path.is_file():
            assert page not in path.read_bytes(), f"page bytes left in {path}"


@pytest.mark.parametrize("ending", ENDINGS)
async def test_an_ended_session_leaves_nothing_in_redis(
    requires_redis: None, server_factory: ServerFactory, tmp_path: Path, ending: str
) -> None:
    """Scaled out (PostgreSQL and Redis): once a session ended, however it ended, Redis holds no
    key and no pub/sub channel naming it, nor any of its page's bytes (its relay topics were
    channels only while subscribed; the only keys Tandem writes are the refusal counters, which
    name an organisation and an agent and go with their window)."""
    prefix = f"t-{secrets.token_hex(6)}:"
    async with server_on(
        server_factory,
        tmp_path,
        "postgresql",
        redis_url=f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
        redis_prefix=prefix,
        resume_grace_seconds=0.3,
    ) as server:
        services = server.server.config.app.state.services
        assert services.fanout.shared  # through Redis
        hub = services.hub
        page = b"\x01" + b"page-bytes-" + secrets.token_hex(8).encode()
        session_id, _ = await ENDINGS[ending](server, page)

        async def ended() -> bool:
            return ((await stored_end(server, session_id)) or (None,))[0] is not None

        await wait_until(ended)
        await wait_for(lambda: session_id not in hub._unfinished and session_id not in hub._closing)
        shared = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT)
        try:

            async def channels_naming_it() -> list[bytes]:
                channels = await shared.pubsub_channels(f"{prefix}*")
                return [c for c in channels if session_id.encode() in c]

            async def none_left() -> bool:
                return not await channels_naming_it()

            await wait_until(none_left)
            async for key in shared.scan_iter(match=f"{prefix}*"):
                assert session_id.encode() not in key, key
                if await shared.type(key) == b"string":
                    value = await shared.get(key)
                    assert value is None or (session_id.encode() not in value and page not in value)
                assert await shared.pttl(key) > 0, f"{key!r} never expires"
        finally:
            await shared.aclose()
