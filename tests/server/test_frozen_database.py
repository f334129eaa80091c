"""A PostgreSQL that stops answering without closing anything (a network partition, a stalled
database host: the proxy of tests.server.db_proxy holds every byte) must not hang the server:
every statement and every wait for a connection is bounded by ``database_timeout_seconds``, so
sign-in answers 503, a new customer's socket is closed 1013, the background tasks fail and try
again, and all of it works again once the database answers, without a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import AGENT_PASSWORD, ServerFactory
from tests.server.db_proxy import StoppableProxy, proxied_url
from tests.server.helpers import closed_with, open_customer, start_session
from tests.storage.conftest import fresh_schema

TIMEOUT = 1.0
"""The servers' database_timeout_seconds here."""
BOUND = 8 * TIMEOUT + 5
"""How long an answer may take while the database is frozen: a statement, the cancel request
it sends, a fresh connection and a first statement on it, with room for a slow machine (far
below the test's own limits: without the bound, the answers never come)."""


async def wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_a_frozen_postgresql_gets_clear_refusals_in_bounded_time_then_recovers(
    server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    from tandem.config import Settings
    from tandem.directory import offline
    from tests.server.test_scale_out import add_people, run_in_thread

    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)

        async def seed() -> None:
            settings = Settings.load(environ={}, data_dir=tmp_path / "seed", database_url=url)
            async with offline(settings) as directory:
                await add_people(directory)

        run_in_thread(seed)
        server = server_factory(
            database_url=url,
            audit_key_file=tmp_path / "seed" / "audit.key",
            database_timeout_seconds=TIMEOUT,
            heartbeat_seconds=0.5,
        )
        credentials = {"username": "alice", "password": AGENT_PASSWORD}
        assert httpx.post(f"{server.base}/api/login", json=credentials).status_code == 200
        with pg_proxy.frozen():
            started = time.monotonic()
            refused = httpx.post(f"{server.base}/api/login", json=credentials, timeout=120)
            assert time.monotonic() - started < BOUND
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert "retry-after" in refused.headers and "Traceback" not in refused.text
            started = time.monotonic()
            customer = await open_customer(server)  # its site is looked up first
            assert await closed_with(customer, timeout=120) == (
                1013,
                "database not answering: try again soon",
            )
            assert time.monotonic() - started < BOUND
            # The heartbeat met the frozen database too: it failed, and runs again.
            await wait_for(lambda: "heartbeat" in server.server.config.app.state.background.failing)
        await wait_for(lambda: httpx.get(f"{server.base}/readyz").status_code == 200)
        await wait_for(lambda: not server.server.config.app.state.background.failing)
        assert httpx.post(f"{server.base}/api/login", json=credentials).status_code == 200
        await start_session(server)
        server.stop()  # before its schema goes
