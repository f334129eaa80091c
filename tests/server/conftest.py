"""Close every client connection a server test opened, so no socket outlives its test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.server.db_proxy import StoppableProxy, proxy_to_postgres
from tests.server.helpers import OPEN_CONNECTIONS


@pytest.fixture(autouse=True)
async def close_client_connections() -> AsyncIterator[None]:
    yield
    while OPEN_CONNECTIONS:
        await OPEN_CONNECTIONS.pop().close()


@pytest.fixture
def pg_proxy() -> Iterator[StoppableProxy]:
    """The test PostgreSQL behind a proxy the test can stop (tests.server.db_proxy)."""
    with proxy_to_postgres() as proxy:
        yield proxy
