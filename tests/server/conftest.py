"""Close every client connection a server test opened, so no socket outlives its test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.server.db_proxy import StoppableProxy, proxy_to_postgres
from tests.server.helpers import OPEN_CONNECTIONS


@pytest.fixture(autouse=True)
async def close_client_connections() -> AsyncIterator[None]:
    yield
    loop = asyncio.get_running_loop()
    while OPEN_CONNECTIONS:
        connection = OPEN_CONNECTIONS.pop()
        if connection.loop is loop:
            await connection.close()
        elif not connection.loop.is_closed():  # opened under another loop (asyncio.run)
            connection.loop.call_soon_threadsafe(connection.transport.abort)
        # else: its loop is gone, and its transport with it


@pytest.fixture
def pg_proxy() -> Iterator[StoppableProxy]:
    """The test PostgreSQL behind a proxy the test can stop (tests.server.db_proxy)."""
    with proxy_to_postgres() as proxy:
        yield proxy
