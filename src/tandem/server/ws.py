"""The two WebSocket endpoints: accept, authenticate, decode, call the hub, pump.

Every decision (what a message does, who may send it, what gets audited) is the hub's
(:mod:`tandem.hub`) and its state machine's. Each accepted socket has one writer task that drains
the socket's fan-out subscription, so every send goes through one place and a slow peer fills only
its own bounded queue; :class:`Connection` owns that task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from tandem import auth, metrics
from tandem.config import normalize_origin
from tandem.exceptions import ConfigError, ForbiddenError, ProtocolError
from tandem.fanout.base import Overflow, Subscription
from tandem.hub import Elsewhere, Refused, Seat, Watching
from tandem.protocol import codec
from tandem.server.http import services_of
from tandem.storage.base import SELF_ORIGIN
from tandem.tunnel import tunnel

log = logging.getLogger("tandem.ws")


def own_origin(ws: WebSocket) -> str | None:
    """The origin this server is reached at, as the browser sees it (from the Host header)."""
    scheme = "https" if ws.url.scheme == "wss" else "http"
    host = ws.headers.get("host")
    if not host:
        return None
    try:
        return normalize_origin(f"{scheme}://{host}")
    except ConfigError:
        return None


def origin_of(ws: WebSocket) -> str | None:
    origin = ws.headers.get("origin")
    if not origin:
        return None
    try:
        return normalize_origin(origin)
    except ConfigError:
        return None


class Connection:
    """An accepted socket's writer, as an async context manager owning its tasks (a task group):
    one pumps the seat's subscription into the socket, one closes the socket if the hub kicks
    the seat. Leaving normally once the seat has finished lets the writer send the last frames
    (up to ``drain_seconds``); any other exit stops it at once."""

    def __init__(self, ws: WebSocket, seat: Seat, drain: float) -> None:
        if seat.subscription is None:
            raise ValueError("a seat pumps to its socket once it has a subscription")
        self.ws = ws
        self.seat = seat
        self.subscription: Subscription = seat.subscription
        self.drain_seconds = drain
        self._tasks = asyncio.TaskGroup()

    async def __aenter__(self) -> Connection:
        await self._tasks.__aenter__()
        self._writer = self._tasks.create_task(self._pump())
        self._kicked = self._tasks.create_task(self._close_when_kicked())
        return self

    async def __aexit__(self, kind: Any, exc: Any, traceback: Any) -> None:
        if kind is None and self.seat.finished:
            await asyncio.wait({self._writer}, timeout=self.drain_seconds)
        self._writer.cancel()
        self._kicked.cancel()
        # Its own tasks are cancelled: the group only waits for them. The body's exception (a
        # ProtocolError to close with) goes on as it is, not wrapped in an ExceptionGroup.
        await self._tasks.__aexit__(None, None, None)

    async def _pump(self) -> None:
        try:
            while True:
                frame = await self.subscription.get()
                if isinstance(frame.data, bytes):
                    if frame.data:
                        await self.ws.send_bytes(frame.data)
                else:
                    await self.ws.send_text(frame.data)
                if frame.close:
                    await _close(self.ws, *frame.close)
                    return
        except Overflow:
            metrics.QUEUE_DROPS.labels(where="socket").inc()
            await _close(self.ws, codec.CLOSE_TRY_AGAIN_LATER, "too slow: send queue full")
        except (WebSocketDisconnect, RuntimeError, OSError):
            return  # the peer went away; the reader notices too

    async def _close_when_kicked(self) -> None:
        await self.seat.kicked.wait()
        self._writer.cancel()
        await _close(self.ws, *self.seat.kick_reason)


@contextlib.asynccontextmanager
async def _closed_when_kicked(ws: WebSocket, seat: Seat) -> AsyncIterator[None]:
    """Until a :class:`Connection` takes over: close the socket if the hub kicks the seat (its
    sign-in was revoked, tandem.revocation)."""

    async def close() -> None:
        await seat.kicked.wait()
        await _close(ws, *seat.kick_reason)

    watcher = asyncio.create_task(close())
    try:
        yield
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    if ws.application_state == WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
        await ws.close(code, reason[:120])


async def _refuse(ws: WebSocket, code: int, reason: str) -> None:
    """Accept only to close with a reason the browser can show (a refused handshake has none)."""
    await ws.accept()
    await _close(ws, code, reason)


async def _receive(
    ws: WebSocket, timeout: float | None = None, waiting_for: str = "the first message"
) -> str | bytes | None:
    """Next frame, or None when the peer disconnected. Raises 4408 after ``timeout`` seconds."""
    try:
        message = await asyncio.wait_for(ws.receive(), timeout)
    except TimeoutError:
        raise ProtocolError(codec.CLOSE_TIMEOUT, f"timed out waiting for {waiting_for}") from None
    if message["type"] == "websocket.disconnect":
        return None
    text = message.get("text")
    if text is not None:
        return str(text)
    return bytes(message.get("bytes") or b"")


class _Reading(Protocol):
    """What a seat takes from its socket: decoded control messages and opaque payloads."""

    @property
    def finished(self) -> bool: ...

    async def text(self, message: Any) -> object: ...

    async def payload(self, frame: bytes) -> None: ...


async def _relay(ws: WebSocket, seat: _Reading, decode: Any, limits: tuple[int, int]) -> None:
    """Read the socket into ``seat`` until it finishes or the peer goes."""
    max_control, max_payload = limits
    while not seat.finished:
        frame = await _receive(ws)
        if frame is None:
            return
        if isinstance(frame, bytes):  # the hot path: size check, then the hub relays it
            codec.check_size(frame, max_payload)
            await seat.payload(frame)
        else:
            await seat.text(decode(frame, max_control))


async def customer_endpoint(ws: WebSocket) -> None:
    services = services_of(ws)
    settings = services.settings
    origin = origin_of(ws)
    site = None
    if origin is not None:
        site = await services.storage.site_for_origin(
            SELF_ORIGIN if origin == own_origin(ws) else origin
        )
    if site is None or not site.verified:  # an origin not proved to be the organisation's
        await _refuse(ws, codec.CLOSE_FORBIDDEN_ORIGIN, "origin not allowed")
        return
    await ws.accept()
    limits = (settings.max_control_bytes, settings.max_payload_bytes)
    try:
        first = await _receive(ws, settings.first_message_timeout_seconds)
        if first is None:
            return
        if isinstance(first, bytes):
            raise ProtocolError(codec.CLOSE_MALFORMED, "the first message must be create or resume")
        opened = await services.hub.open_customer(
            site, codec.decode_customer(first, settings.max_control_bytes)
        )
        if isinstance(opened, Elsewhere):
            await _tunnel(ws, opened.node, first)
            return
        async with opened as seat, Connection(ws, seat, settings.close_timeout_seconds):
            await _relay(ws, seat, codec.decode_customer, limits)
    except ProtocolError as exc:
        await _close(ws, exc.close_code, str(exc))


async def agent_endpoint(ws: WebSocket) -> None:
    services = services_of(ws)
    settings = services.settings
    origin = origin_of(ws)
    if origin is None or (origin != own_origin(ws) and origin not in settings.console_origins):
        await _refuse(ws, codec.CLOSE_FORBIDDEN_ORIGIN, "origin not allowed")
        return
    agent = await auth.agent_for_token(
        services.storage,
        ws.cookies.get(auth.COOKIE_NAME),
        services.clock(),
        settings.login_idle_seconds,
    )
    if agent is None:
        await _refuse(ws, codec.CLOSE_UNAUTHENTICATED, "sign in first")
        return
    try:
        seat = services.hub.agent_seat(
            agent,
            ws.client.host if ws.client else "",
            auth.login_digest(ws.cookies.get(auth.COOKIE_NAME, "")),
        )
    except ForbiddenError as exc:
        await _refuse(ws, codec.CLOSE_FORBIDDEN, str(exc))
        return
    await ws.accept()
    limits = (settings.max_control_bytes, settings.max_payload_bytes)
    drain = settings.close_timeout_seconds
    try:
        async with seat, _closed_when_kicked(ws, seat):
            timeout, waiting_for = settings.first_message_timeout_seconds, "the first message"
            while seat.live is None:  # until it joins (or watches): answers go straight back
                frame = await _receive(ws, timeout, waiting_for)
                timeout, waiting_for = settings.agent_idle_seconds, "a message (idle)"
                if frame is None:
                    return
                if isinstance(frame, bytes):
                    codec.check_size(frame, settings.max_payload_bytes)
                    await seat.payload(frame)
                    continue
                outcome = await seat.text(codec.decode_agent(frame, settings.max_control_bytes))
                if isinstance(outcome, Refused):
                    await ws.send_text(codec.encode(outcome.notice))
                elif isinstance(outcome, Elsewhere):
                    await _tunnel(ws, outcome.node, frame)
                    return
                elif isinstance(outcome, Watching):  # a supervisor's socket from now on
                    async with outcome.seat as watch, Connection(ws, watch, drain):
                        await _relay(ws, watch, codec.decode_agent, limits)
                    return
            async with Connection(ws, seat, drain):  # joined
                await _relay(ws, seat, codec.decode_agent, limits)
    except ProtocolError as exc:
        await _close(ws, exc.close_code, str(exc))


async def _tunnel(ws: WebSocket, owner: str, first: str | bytes) -> None:
    services = services_of(ws)
    await tunnel(
        ws, services.fanout, owner, first, services.entropy, services.settings.send_queue_frames
    )
