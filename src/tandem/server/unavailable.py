"""HTTP answers while the database is away: ``503`` problem JSON with ``Retry-After``, never a
traceback; any other unexpected error is a plain ``500`` problem JSON. Nothing to restart: the
next request after the database is back is served as usual (the pool reconnects)."""

from __future__ import annotations

import sqlite3

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tandem import logs, metrics
from tandem.server.api import problem

log = logs.get_logger("tandem.http")

STORAGE_DOWN = (
    SQLAlchemyError,
    sqlite3.Error,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    ConnectionError,
    TimeoutError,
)
"""Exceptions that mean "the database did not answer" (locked, unreachable, restarting)."""


class StorageUnavailable:
    """ASGI middleware for HTTP requests (sockets are the socket layer's)."""

    def __init__(self, app: ASGIApp, retry_after: float) -> None:
        self.app = app
        self.retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except STORAGE_DOWN as exc:
            metrics.STORAGE_ERRORS.labels(where="http").inc()
            log.error(
                "storage_unavailable",
                path=scope.get("path", ""),
                error=type(exc).__name__,
                where=logs.origin(exc),
            )
            if started:
                raise
            response = problem(
                503,
                "Service unavailable",
                "The database is not answering. Try again in a moment.",
            )
            response.headers["retry-after"] = str(max(1, round(self.retry_after)))
            await response(scope, receive, send)
        except Exception as exc:
            log.error(
                "request_failed",
                path=scope.get("path", ""),
                error=type(exc).__name__,
                where=logs.origin(exc),
            )
            if started:
                raise
            await problem(500, "Internal error", "Something went wrong on the server.")(
                scope, receive, send
            )
