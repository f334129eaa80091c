"""Close every client connection a server test opened, so no socket outlives its test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server.db_proxy import StoppableProxy, proxy_to_postgres


@pytest.fixture(autouse=True)
def _close_client_connections(close_client_connections: None) -> None:
    """Every server test closes the client connections it opened (tests/conftest.py)."""


@pytest.fixture
def pg_proxy() -> Iterator[StoppableProxy]:
    """The test PostgreSQL behind a proxy the test can stop (tests.server.db_proxy)."""
    with proxy_to_postgres() as proxy:
        yield proxy
