"""Answers while the database is away: HTTP ``503`` problem JSON with ``Retry-After``, never a
traceback (any other unexpected error is a ``500`` problem JSON); a socket is closed with
``1013`` and a reason. Nothing to restart: the
next request after the database is back is served as usual (the pool reconnects)."""

from __future__ import annotations

import contextlib
import sqlite3
import sys

from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tandem import logs, metrics
from tandem.exceptions import StorageError
from tandem.protocol import codec
from tandem.server.http import problem

log = logs.get_logger("tandem.http")

STORAGE_DOWN = (
    StorageError,  # what storage makes of any driver error (tandem.storage.sql)
    SQLAlchemyError,
    sqlite3.Error,
    ConnectionError,
    TimeoutError,
)
"""Exceptions that mean "the database did not answer" (locked, unreachable, restarting), besides
asyncpg's (:func:`storage_down`)."""


def storage_down(exc: BaseException) -> bool:
    """Whether ``exc`` means "the database did not answer": one of :data:`STORAGE_DOWN`, or
    asyncpg's server or interface errors. asyncpg is imported only by a server on PostgreSQL
    (tandem.storage.sql); while it is not imported, none of its errors can have been raised."""
    if isinstance(exc, STORAGE_DOWN):
        return True
    asyncpg = sys.modules.get("asyncpg")
    return asyncpg is not None and isinstance(exc, (asyncpg.PostgresError, asyncpg.InterfaceError))


SOCKET_REASON = "database not answering: try again soon"
"""The close reason (code 1013) of a socket whose work needed the database while it was away."""


class StorageUnavailable:
    """ASGI middleware around every HTTP request and socket."""

    def __init__(self, app: ASGIApp, retry_after: float) -> None:
        self.app = app
        self.retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        sent: set[str] = set()

        async def tracking_send(message: Message) -> None:
            sent.add(message["type"])
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if not storage_down(exc):
                await self._failed(scope, receive, send, sent, exc)
                return
            metrics.STORAGE_ERRORS.labels(where=scope["type"]).inc()
            log.error(
                "storage_unavailable",
                path=scope.get("path", ""),
                error=type(exc).__name__,
                where=logs.origin(exc),
            )
            if scope["type"] == "websocket":
                await self._close_socket(sent, send)
                return
            if "http.response.start" in sent:
                raise
            response = problem(
                503,
                "Service unavailable",
                "The database is not answering. Try again in a moment.",
            )
            response.headers["retry-after"] = str(max(1, round(self.retry_after)))
            await response(scope, receive, send)

    @staticmethod
    async def _failed(
        scope: Scope, receive: Receive, send: Send, sent: set[str], exc: Exception
    ) -> None:
        """Any other error: logged, and a ``500`` problem JSON unless a response had begun."""
        log.error(
            "request_failed",
            path=scope.get("path", ""),
            error=type(exc).__name__,
            where=logs.origin(exc),
        )
        if scope["type"] == "websocket" or "http.response.start" in sent:
            raise exc
        await problem(500, "Internal error", "Something went wrong on the server.")(
            scope, receive, send
        )

    @staticmethod
    async def _close_socket(sent: set[str], send: Send) -> None:
        """Close with 1013 and a reason the page can show (accepted first if need be: a refused
        handshake carries none)."""
        if "websocket.close" in sent:
            return
        with contextlib.suppress(Exception):  # the peer may be gone already
            if "websocket.accept" not in sent:
                await send({"type": "websocket.accept"})
            await send(
                {
                    "type": "websocket.close",
                    "code": codec.CLOSE_TRY_AGAIN_LATER,
                    "reason": SOCKET_REASON,
                }
            )
