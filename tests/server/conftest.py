"""Close every client connection a server test opened, so no socket outlives its test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.server.helpers import OPEN_CONNECTIONS


@pytest.fixture(autouse=True)
async def close_client_connections() -> AsyncIterator[None]:
    yield
    while OPEN_CONNECTIONS:
        await OPEN_CONNECTIONS.pop().close()
