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
from collections.abc import Awaitable
from typing import Any, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from tandem import auth, metrics
from tandem.config import Settings, normalize_origin
from tandem.exceptions import ConfigError, ForbiddenError, ProtocolError
from tandem.fanout.base import Frame, Overflow, Subscription
from tandem.fanout.memory import MemorySubscription
from tandem.hub import AGENT_SOCKET_ACTION, AgentSeat, Elsewhere, Refused, Seat, Watching
from tandem.protocol import codec
from tandem.server.http import OTHER_CLIENT, refuse_other_client, services_of, sign_in_token
from tandem.server.http import own_origin as http_own_origin
from tandem.server.websocket_protocol import AWAIT, DIRECT, TandemWebSocketProtocol
from tandem.storage.base import SELF_ORIGIN
from tandem.tunnel import Liveness, is_tunnelled, tunnel

log = logging.getLogger("tandem.ws")


def own_origin(ws: WebSocket) -> str | None:
    """The origin this server is reached at, as the browser sees it: one of ``--public-origin``
    when they are set (the one the socket was addressed to; :class:`~tandem.server.middleware.
    PublicOrigins` refused any other), else whatever the Host header says."""
    return http_own_origin(ws.scope, services_of(ws).settings.public_origins)


def origin_of(ws: WebSocket) -> str | None:
    origin = ws.headers.get("origin")
    if not origin:
        return None
    try:
        return normalize_origin(origin)
    except ConfigError:
        return None


def _direct_paths(ws: WebSocket) -> TandemWebSocketProtocol | None:
    """The socket's direct send and receive (:mod:`tandem.server.websocket_protocol`), unless
    it runs under another protocol or a middleware withdrew them."""
    direct = (ws.scope.get("extensions") or {}).get(DIRECT)
    return direct if isinstance(direct, TandemWebSocketProtocol) else None


def client_address(ws: WebSocket) -> str:
    """The peer's address: uvicorn has put a ``trusted_proxies`` proxy's X-Forwarded-For in
    its place already (``server_config``), as for every other route."""
    return ws.client.host if ws.client else ""


class Connection:
    """An accepted socket's writer, as an async context manager owning its tasks (a task group):
    one pumps the seat's subscription into the socket; if the hub kicks the seat, another
    closes the socket (started then: an idle socket costs one task). While the writer is idle,
    a frame published to the seat goes to the socket at once (``_direct``). Leaving normally
    once the seat has finished lets the writer send the last frames (up to ``drain_seconds``);
    any other exit stops it at once.

    Back-pressure: the subscription is bounded in bytes (``socket_queue_bytes``) and each send
    must complete within ``send_timeout`` seconds. A peer that falls further behind, or stops
    reading so that a send blocks, is closed with 1013 and the other side is told
    (:meth:`~tandem.hub.Seat.dropped_as_slow`); the publisher never waits for it."""

    def __init__(
        self, ws: WebSocket, seat: Seat, drain: float, send_timeout: float, notice: float
    ) -> None:
        if seat.subscription is None:
            raise ValueError("a seat pumps to its socket once it has a subscription")
        self.ws = ws
        self.seat = seat
        self.subscription: Subscription = seat.subscription
        self.drain_seconds = drain
        self.send_timeout = send_timeout
        self.notice_seconds = notice
        """How long a kick's last notice may wait for the peer (``close_notice_seconds``)."""
        self._tasks = asyncio.TaskGroup()
        self._busy = False  # the writer holds frames it took and has not sent yet
        direct = _direct_paths(ws)
        self._send_now = direct.send_now if direct is not None else None

    async def __aenter__(self) -> Connection:
        await self._tasks.__aenter__()
        self._writer = self._tasks.create_task(self._pump())
        self._closing: asyncio.Task[None] | None = None
        if self.seat.kicked.is_set():
            self._on_kick()
        else:
            self.seat.on_kick = self._on_kick
        if self._send_now is not None and isinstance(self.subscription, MemorySubscription):
            self.subscription.direct = self._direct
        return self

    def _direct(self, frame: Frame) -> bool:
        """The hot path: a frame published while the writer is idle goes to the socket at once
        (no queue, no task switch) if the transport takes it without waiting; False sends it
        the slow way, through the queue and the writer, which keeps the order."""
        if self._busy or frame.close is not None or not frame.data or self._send_now is None:
            return False
        return self._send_now(frame.data)

    async def __aexit__(self, kind: Any, exc: Any, traceback: Any) -> None:
        if isinstance(self.subscription, MemorySubscription):
            self.subscription.direct = None
        if (
            kind is None
            and self.seat.finished
            and self.ws.client_state != WebSocketState.DISCONNECTED  # else nobody to drain to
        ):
            await asyncio.wait({self._writer}, timeout=self.drain_seconds)
        self.seat.on_kick = None
        self._writer.cancel()
        # Its own tasks are cancelled: the group only waits for them. The body's exception (a
        # ProtocolError to close with) goes on as it is, not wrapped in an ExceptionGroup.
        await self._tasks.__aexit__(None, None, None)

    async def _pump(self) -> None:
        try:
            while True:  # every frame queued at each wake-up
                frames = await self.subscription.take()
                self._busy = True
                for frame in frames:
                    await self._send(frame.data)
                    if frame.close:
                        await _close(self.ws, *frame.close)
                        return
                self._busy = False
        except Overflow:
            metrics.QUEUE_DROPS.labels(where="socket").inc()
            await self._drop("too slow: send queue full")
        except TimeoutError:
            metrics.QUEUE_DROPS.labels(where="socket").inc()
            await self._drop("too slow: not reading")
        except (WebSocketDisconnect, RuntimeError, OSError):
            return  # the peer went away; the reader notices too

    async def _send(self, data: str | bytes) -> None:
        if data and self._send_now is not None and self._send_now(data):
            return  # the transport took it without waiting
        async with asyncio.timeout(self.send_timeout):
            if isinstance(data, bytes):
                if data:
                    await self.ws.send_bytes(data)
            else:
                await self.ws.send_text(data)

    async def _drop(self, reason: str) -> None:
        """Close a peer that fell behind (1013); its reader then sees the socket go."""
        log.info("closing a socket that fell behind: %s", reason)
        self.subscription.close()
        self.seat.dropped_as_slow()
        await _close(self.ws, codec.CLOSE_TRY_AGAIN_LATER, reason)

    def _on_kick(self) -> None:
        """The hub closes this socket: stop the writer, close (after its notice, if any)."""
        self.seat.on_kick = None
        self._writer.cancel()
        self._closing = self._tasks.create_task(
            _close(
                self.ws,
                *self.seat.kick_reason,
                notice=self.seat.kick_notice,
                notice_seconds=self.notice_seconds,
            )
        )


async def _close(
    ws: WebSocket,
    code: int,
    reason: str,
    notice: str | None = None,
    notice_seconds: float = 0.0,
) -> None:
    """Close ``ws`` with ``code`` (after sending ``notice``, a control message, if given). A
    close never waits for a peer that stopped reading (:mod:`tandem.server.websocket_protocol`);
    the notice waits at most ``notice_seconds`` (``close_notice_seconds``)."""
    if ws.application_state == WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError, TimeoutError):
        if notice is not None:
            await asyncio.wait_for(ws.send_text(notice), notice_seconds)
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


async def _receive_unless_kicked(
    ws: WebSocket,
    seat: Seat,
    notice_seconds: float,
    timeout: float | None = None,
    waiting_for: str = "a message",
) -> str | bytes | None:
    """Next frame of an agent's socket that is in no session yet, or None once the peer went or
    the hub kicked the seat (the server is stopping, or its sign-in was revoked: the socket is
    then told, its notice waiting up to ``notice_seconds``, and closed). Raises 4408 after
    ``timeout`` seconds of silence."""
    receiving = asyncio.ensure_future(_receive(ws, timeout, waiting_for))
    kicked = asyncio.ensure_future(seat.kicked.wait())
    try:
        await asyncio.wait({receiving, kicked}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        kicked.cancel()
        if not receiving.done():
            receiving.cancel()
    if receiving.done() and not receiving.cancelled():
        return receiving.result()
    await _close(ws, *seat.kick_reason, notice=seat.kick_notice, notice_seconds=notice_seconds)
    return None


def _pacing(settings: Settings) -> tuple[float, float, float]:
    """A connection's drain time, send timeout and wait for a kick's last notice."""
    return (
        settings.close_timeout_seconds,
        settings.socket_send_timeout_seconds,
        settings.close_notice_seconds,
    )


class _Reading(Protocol):
    """What a seat takes from its socket: decoded control messages and opaque payloads."""

    @property
    def finished(self) -> bool: ...

    async def text(self, message: Any) -> object: ...

    def payload(self, frame: bytes) -> Awaitable[None] | None: ...


async def _relay(ws: WebSocket, seat: _Reading, decode: Any, limits: tuple[int, int]) -> None:
    """Read the socket into ``seat`` until it finishes or the peer goes. The hot path: while
    this waits for a message, page content goes to the seat from the socket's protocol at once
    (the direct receive: no queue, no task switch); otherwise the raw ASGI receive (Starlette's
    wrapper only re-checks the socket's state for each message)."""
    max_control, max_payload = limits
    receive = ws._receive
    direct = _direct_paths(ws)

    def receive_now(data: bytes) -> bool | Awaitable[None]:
        """A binary message with nothing queued before it, relayed now as the loop below would.
        False leaves it to the loop (in order), which raises what it must in this task: the
        seat finished, the frame is too large, or the seat refuses content (before any effect)."""
        if seat.finished or len(data) > max_payload:
            return False
        try:
            pending = seat.payload(data)
        except ProtocolError:
            return False
        except Exception as error:
            # Not into the loop's transport callback: raised in this task, below, as on the
            # queued path (a failed request logged, the seat's clean-up).
            failed = asyncio.get_running_loop().create_future()
            failed.set_exception(error)
            return failed
        return True if pending is None else pending

    try:
        while not seat.finished:
            if direct is not None:
                direct.receiver = receive_now  # only while waiting: everything stays in order
            message = await receive()
            if direct is not None:
                direct.receiver = None
            data = message.get("bytes")
            if data is not None:  # page content: size check, then the hub relays it unparsed
                if len(data) > max_payload:
                    codec.check_size(data, max_payload)
                pending = seat.payload(data)
                if pending is not None:  # a recording stores it
                    await pending
            elif message["type"] == AWAIT:  # a recording stores what the direct receive took
                await message["awaitable"]
            elif message["type"] == "websocket.disconnect":
                ws.client_state = WebSocketState.DISCONNECTED
                if hasattr(seat, "peer_close_code"):  # an agent's reload or lost network
                    setattr(seat, "peer_close_code", int(message.get("code") or 1005))  # noqa: B010
                return
            else:
                await seat.text(decode(str(message.get("text") or ""), max_control))
    finally:
        if direct is not None:
            direct.receiver = None


async def customer_endpoint(ws: WebSocket) -> None:
    services = services_of(ws)
    settings = services.settings
    origin = origin_of(ws)
    site = None
    if origin is not None:
        site = await services.storage.site_for_origin(
            SELF_ORIGIN if origin == own_origin(ws) else origin
        )
    # Only the site that holds the origin verified: an unproved registration (any organisation
    # may have one) is never found, and its organisation is not told of the origin's traffic.
    if site is None or not site.verified:
        services.hub.count_anonymous("customer_origin_refused", "", "origin not allowed")
        await _refuse(ws, codec.CLOSE_FORBIDDEN_ORIGIN, "origin not allowed")
        return
    try:
        heard = services.hub.customer_socket(site, client_address(ws))
    except ProtocolError as exc:  # its address has as many silent sockets open as it may
        await _refuse(ws, exc.close_code, str(exc))
        return
    limits = (settings.max_control_bytes, settings.max_payload_bytes)
    try:
        try:
            await ws.accept()
            first = await _receive(ws, settings.first_message_timeout_seconds)
        finally:
            heard()
        if first is None:
            return
        if isinstance(first, bytes):
            raise ProtocolError(codec.CLOSE_MALFORMED, "the first message must be create or resume")
        opened = await services.hub.open_customer(
            site,
            codec.decode_customer(first, settings.max_control_bytes),
            client_address(ws),
        )
        if isinstance(opened, Elsewhere):
            await _tunnel(ws, opened.node, first)
            return
        opened.tunnelled = is_tunnelled(ws)
        async with opened as seat, Connection(ws, seat, *_pacing(settings)):
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
        sign_in_token(ws),
        services.clock(),
        settings.login_idle_seconds,
        touch_seconds=settings.login_touch_seconds,
    )
    if agent is None:
        await _refuse(ws, codec.CLOSE_UNAUTHENTICATED, "sign in first")
        return
    if await refuse_other_client(ws, agent):
        await _refuse(ws, codec.CLOSE_UNAUTHENTICATED, OTHER_CLIENT)
        return
    try:
        seat = services.hub.agent_seat(
            agent,
            client_address(ws),
            auth.login_digest(sign_in_token(ws) or ""),
        )
    except ForbiddenError as exc:  # a role with nothing live (auditor, admin): audited
        await services.hub.refused(
            "access_refused",
            agent,
            needs=AGENT_SOCKET_ACTION,
            method="WEBSOCKET",
            route="/ws/agent",
            reason=str(exc)[:200],
        )
        await _refuse(ws, codec.CLOSE_FORBIDDEN, str(exc))
        return
    except ProtocolError as exc:  # the account holds as many sockets as it may
        await _refuse(ws, exc.close_code, str(exc))
        return
    try:
        await _agent_socket(ws, seat)
    finally:
        seat.release()  # also when it never got as far as its session


async def _agent_socket(ws: WebSocket, seat: AgentSeat) -> None:
    """The accepted agent socket of ``seat``, until it closes."""
    settings = services_of(ws).settings
    seat.tunnelled = is_tunnelled(ws)
    await ws.accept()
    limits = (settings.max_control_bytes, settings.max_payload_bytes)
    pacing = _pacing(settings)
    try:
        async with seat:
            timeout, waiting_for = settings.first_message_timeout_seconds, "the first message"
            while seat.live is None:  # until it joins (or watches): answers go straight back
                frame = await _receive_unless_kicked(
                    ws, seat, settings.close_notice_seconds, timeout, waiting_for
                )
                timeout, waiting_for = settings.agent_idle_seconds, "a message (idle)"
                if frame is None:
                    return
                if isinstance(frame, bytes):
                    codec.check_size(frame, settings.max_payload_bytes)
                    seat.payload(frame)
                    continue
                outcome = await seat.text(codec.decode_agent(frame, settings.max_control_bytes))
                if isinstance(outcome, Refused):
                    await ws.send_text(codec.encode(outcome.notice))
                elif isinstance(outcome, Elsewhere):
                    await _tunnel(ws, outcome.node, frame)
                    return
                elif isinstance(outcome, Watching):  # a supervisor's socket from now on
                    outcome.seat.tunnelled = seat.tunnelled
                    async with outcome.seat as watch, Connection(ws, watch, *pacing):
                        await _relay(ws, watch, codec.decode_agent, limits)
                    return
            async with Connection(ws, seat, *pacing):  # joined
                await _relay(ws, seat, codec.decode_agent, limits)
    except ProtocolError as exc:
        await _close(ws, exc.close_code, str(exc))


async def _tunnel(ws: WebSocket, owner: str, first: str | bytes) -> None:
    services = services_of(ws)
    settings = services.settings
    await tunnel(
        ws,
        services.fanout,
        owner,
        first,
        services.entropy,
        settings.socket_queue_bytes,
        Liveness.of(settings),
        services.tunnels.edges if services.tunnels is not None else None,
    )
