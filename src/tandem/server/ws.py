"""The two WebSocket endpoints. Adapters only: decisions live in the hub and the state machine.

Each accepted socket has one writer task that drains the socket's fan-out subscription, so every
send goes through one place and a slow peer fills only its own bounded queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from tandem import auth, metrics
from tandem.access import Action, Principal, authorize
from tandem.config import normalize_origin
from tandem.exceptions import ConfigError, ForbiddenError, NotFoundError, ProtocolError
from tandem.fanout.base import Frame, Overflow, Subscription
from tandem.hub import (
    INVALID_CODE,
    HeldElsewhere,
    LiveSession,
    agents_topic,
    customer_topic,
    watcher_topic,
)
from tandem.protocol import codec
from tandem.protocol.messages import (
    Abort,
    Consent,
    Create,
    ErrorNotice,
    Handshake,
    Join,
    Leave,
    Record,
    RecordConsent,
    RecordStop,
    Report,
    Resume,
    Stop,
    Watch,
    WatchAbort,
    WatchConsent,
    WatchHandshake,
)
from tandem.storage.base import SELF_ORIGIN
from tandem.tunnel import tunnel

if TYPE_CHECKING:
    from tandem.server.app import Services

log = logging.getLogger("tandem.ws")

SOCKET_ACTION: Action = "session.join"
"""What opening the agent socket needs; some messages need more (MESSAGE_ACTIONS)."""
MESSAGE_ACTIONS: dict[str, Action] = {"watch": "session.watch", "record": "session.record"}
"""Agent-socket messages that need more than SOCKET_ACTION (checked by tandem.access)."""


def _services(ws: WebSocket) -> Services:
    services: Services = ws.app.state.services
    return services


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
    """An accepted socket plus the task that writes to it."""

    def __init__(self, ws: WebSocket, subscription: Subscription) -> None:
        self.ws = ws
        self.subscription = subscription
        self.replaced = False
        self._writer = asyncio.create_task(self._pump())

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

    async def drain(self, timeout: float) -> None:
        """Let the writer send what is queued (the session's last frames), up to ``timeout``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._writer), timeout)

    async def stop(self, close: tuple[int, str] | None = None) -> None:
        """Stop writing, optionally close the socket. Idempotent."""
        self.subscription.close()
        if not self._writer.done():
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        if close:
            await _close(self.ws, *close)


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    if ws.application_state == WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
        await ws.close(code, reason[:120])


async def _close_for_error(
    ws: WebSocket, connection: Connection | None, exc: ProtocolError
) -> None:
    """Close with the error's code and reason; the writer stops first so nothing races the close."""
    if connection:
        await connection.stop()
    await _close(ws, exc.close_code, str(exc))


async def _refuse(ws: WebSocket, code: int, reason: str) -> None:
    """Accept only to close with a reason the browser can show (a refused handshake has none)."""
    await ws.accept()
    await _close(ws, code, reason)


async def _receive(ws: WebSocket, timeout: float | None = None) -> str | bytes | None:
    """Next frame, or None when the peer disconnected. Raises 4408 after ``timeout`` seconds."""
    try:
        message = await asyncio.wait_for(ws.receive(), timeout)
    except TimeoutError:
        raise ProtocolError(
            codec.CLOSE_TIMEOUT, "timed out waiting for the first message"
        ) from None
    if message["type"] == "websocket.disconnect":
        return None
    text = message.get("text")
    if text is not None:
        return str(text)
    return bytes(message.get("bytes") or b"")


async def customer_endpoint(ws: WebSocket) -> None:
    services = _services(ws)
    settings = services.settings
    origin = origin_of(ws)
    site = None
    if origin is not None:
        site = await services.storage.site_for_origin(
            SELF_ORIGIN if origin == own_origin(ws) else origin
        )
    if site is None:
        await _refuse(ws, codec.CLOSE_FORBIDDEN_ORIGIN, "origin not allowed")
        return
    await ws.accept()
    hub = services.hub
    connection: Connection | None = None
    live: LiveSession | None = None
    try:
        first = await _receive(ws, settings.first_message_timeout_seconds)
        if first is None:
            return
        if isinstance(first, bytes):
            raise ProtocolError(codec.CLOSE_MALFORMED, "the first message must be create or resume")
        message = codec.decode_customer(first, settings.max_control_bytes)
        if isinstance(message, Create):
            customer = await hub.customer_for(site, message.token)
            live, created = await hub.create(site, customer)
            connection = _attach_customer(ws, services, live)
            hub.send_to_customer(live, created)
        elif isinstance(message, Resume):
            owner = await hub.owner_elsewhere(message.session_id)
            if owner:  # the page moved to this process; its session did not
                await _tunnel(ws, services, owner, first)
                return
            live = hub.find_for_resume(message.session_id, message.resume_token)
            if live.site_id != site.site_id:
                raise ProtocolError(codec.CLOSE_NOT_FOUND, "session not found")
            await _replace_customer(live)
            connection = _attach_customer(ws, services, live)
            await hub.resume(live)
        else:
            raise ProtocolError(codec.CLOSE_MALFORMED, "the first message must be create or resume")
        await _customer_loop(ws, services, live)
        if live.machine.ended:
            await connection.drain(settings.close_timeout_seconds)
    except ProtocolError as exc:
        await _close_for_error(ws, connection, exc)
    finally:
        if connection:
            await connection.stop()
            if live is not None and not connection.replaced and not live.machine.ended:
                await hub.apply(live, live.machine.customer_left(hub.clock()))
            if live is not None and live.customer_connection is connection:
                live.customer_connection = None


def _attach_customer(ws: WebSocket, services: Services, live: LiveSession) -> Connection:
    subscription = services.fanout.subscribe(
        customer_topic(live.machine.session_id), services.settings.send_queue_frames
    )
    connection = Connection(ws, subscription)
    live.customer_connection = connection
    return connection


async def _replace_customer(live: LiveSession) -> None:
    """A second page resumed the session: the older socket is closed, the newer one wins."""
    old = live.customer_connection
    if isinstance(old, Connection):
        old.replaced = True
        await old.stop(close=(4409, "session resumed in another page"))


async def _customer_loop(ws: WebSocket, services: Services, live: LiveSession) -> None:
    settings = services.settings
    hub = services.hub
    topic = agents_topic(live.machine.session_id)
    while not live.machine.ended:
        frame = await _receive(ws)
        if frame is None:
            return
        if isinstance(frame, bytes):
            # The hot path: size check, state check, relay. The payload is never parsed.
            codec.check_size(frame, settings.max_payload_bytes)
            live.machine.check_customer_payload()
            live.machine.touch(hub.clock())
            services.fanout.publish(topic, Frame(frame))
            if live.machine.watcher_gets_content:
                services.fanout.publish(watcher_topic(live.machine.session_id), Frame(frame))
            if live.machine.records_content:
                await hub.recorded_frame(live, frame)
            continue
        message = codec.decode_customer(frame, settings.max_control_bytes)
        if isinstance(message, Consent):
            effects = live.machine.consent(message.granted)
            await hub.record(
                "consent_given" if message.granted else "consent_declined",
                actor="customer",
                subject=live.machine.session_id,
            )
            await hub.apply(live, effects)
        elif isinstance(message, Stop):
            await hub.apply(live, live.machine.customer_stops())
        elif isinstance(message, Handshake):
            await hub.apply(live, live.machine.handshake_from_customer(message.data))
        elif isinstance(message, Abort):
            await hub.record("key_mismatch", actor="customer", subject=live.machine.session_id)
            await hub.apply(live, live.machine.key_mismatch())
        elif isinstance(message, WatchConsent):
            await hub.record(
                "watch_allowed" if message.granted else "watch_declined",
                actor="customer",
                org=live.org_id,
                subject=live.machine.session_id,
                watcher=live.watcher_username,
            )
            await hub.apply(live, live.machine.watch_consent(message.granted))
        elif isinstance(message, WatchHandshake):
            await hub.apply(live, live.machine.watch_handshake_from_customer(message.data))
        elif isinstance(message, WatchAbort):
            await hub.apply(live, live.machine.watch_mismatch())
        elif isinstance(message, RecordConsent):
            if not message.granted:
                await hub.record(
                    "recording_declined",
                    actor="customer",
                    org=live.org_id,
                    subject=live.machine.session_id,
                )
            await hub.apply(live, live.machine.record_consent(message.granted))
        elif isinstance(message, RecordStop):
            await hub.apply(live, live.machine.record_stop("stopped_by_customer"))
        elif isinstance(message, Report):
            if live.machine.customer_reports():
                await hub.record(
                    message.event,
                    actor="customer",
                    org=live.org_id,
                    subject=live.machine.session_id,
                    agent=live.agent_username,
                )
        else:
            raise ProtocolError(
                codec.CLOSE_MALFORMED,
                f"{message.__class__.__name__.lower()} is only allowed as the first message",
            )


async def agent_endpoint(ws: WebSocket) -> None:
    services = _services(ws)
    settings = services.settings
    origin = origin_of(ws)
    if origin is None or (origin != own_origin(ws) and origin not in settings.console_origins):
        await _refuse(ws, codec.CLOSE_FORBIDDEN_ORIGIN, "origin not allowed")
        return
    agent = await auth.agent_for_token(
        services.storage,
        ws.cookies.get(auth.COOKIE_NAME),
        services.clock(),
        services.settings.login_idle_seconds,
    )
    if agent is None:
        await _refuse(ws, codec.CLOSE_UNAUTHENTICATED, "sign in first")
        return
    try:
        authorize(agent, SOCKET_ACTION)
    except ForbiddenError as exc:
        await _refuse(ws, codec.CLOSE_FORBIDDEN, str(exc))
        return
    await ws.accept()
    hub = services.hub
    connection: Connection | None = None
    live: LiveSession | None = None
    failures = 0
    client = ws.client.host if ws.client else ""
    join_keys = (f"join-user:{agent.username}", f"join-ip:{client}")
    org_key = f"join-org:{agent.org}"
    try:
        while live is None or not live.machine.ended:
            frame = await _receive(ws)
            if frame is None:
                return
            if isinstance(frame, bytes):
                codec.check_size(frame, settings.max_payload_bytes)
                if live is None:
                    raise ProtocolError(codec.CLOSE_MALFORMED, "join a session first")
                live.machine.check_agent_payload()
                live.machine.touch(hub.clock())
                services.fanout.publish(customer_topic(live.machine.session_id), Frame(frame))
                continue
            message = codec.decode_agent(frame, settings.max_control_bytes)
            if isinstance(message, Watch) and live is None:
                await _watch(ws, services, agent, message.session_id, frame)
                return
            if isinstance(message, Join):
                if live is not None:
                    raise ProtocolError(codec.CLOSE_MALFORMED, "already in a session")
                wait = max(
                    await services.join_backoff.retry_after(hub.clock(), *join_keys),
                    await services.join_org_backoff.retry_after(hub.clock(), org_key),
                )
                if wait > 0:
                    await ws.send_text(
                        codec.encode(
                            ErrorNotice(
                                code="rate_limited",
                                message=f"Too many wrong codes. Try again in {int(wait) + 1} s.",
                            )
                        )
                    )
                    continue
                try:
                    candidate = await hub.session_for_code(message.code, agent)
                    notice = INVALID_CODE
                except HeldElsewhere as moved:  # the owner takes the code and the socket
                    await _tunnel(ws, services, moved.node, frame)
                    return
                except ForbiddenError as exc:
                    candidate = None
                    notice = ErrorNotice(code="not_your_team", message=f"Not allowed: {exc}.")
                if candidate is None:
                    org_backoff = services.join_org_backoff
                    await services.join_backoff.failed(hub.clock(), *join_keys)
                    org_was_free = await org_backoff.retry_after(hub.clock(), org_key) == 0
                    await org_backoff.failed(hub.clock(), org_key)
                    failures += 1
                    await hub.record(
                        "join_code_rejected",
                        actor=agent.username,
                        org=agent.org,
                        attempts=failures,
                        reason=notice.code,
                    )
                    if org_was_free and await org_backoff.retry_after(hub.clock(), org_key):
                        # Many wrong codes across the organisation: someone may be guessing.
                        await hub.record("join_code_alert", actor=agent.username, org=agent.org)
                    if failures >= settings.max_join_attempts_per_socket:
                        await hub.record("join_code_lockout", actor=agent.username, org=agent.org)
                        raise ProtocolError(4429, "too many wrong codes: wait and sign in again")
                    await ws.send_text(codec.encode(notice))
                    continue
                live, site = candidate
                await services.join_backoff.succeeded(join_keys[0])
                subscription = services.fanout.subscribe(
                    agents_topic(live.machine.session_id), settings.send_queue_frames
                )
                connection = Connection(ws, subscription)
                await hub.agent_joins(live, site, agent)
            elif live is None or isinstance(message, Watch):
                raise ProtocolError(codec.CLOSE_MALFORMED, "join a session first")
            elif isinstance(message, Leave):
                await hub.apply(live, live.machine.agent_leaves(hub.clock()))
            elif isinstance(message, Handshake):
                await hub.apply(live, live.machine.handshake_from_agent(message.data))
            elif isinstance(message, Record):
                try:
                    await hub.request_recording(live, agent)
                except ForbiddenError as exc:
                    notice = ErrorNotice(code="forbidden", message=f"Not allowed: {exc}.")
                    topic = agents_topic(live.machine.session_id)
                    services.fanout.publish(topic, Frame(codec.encode(notice)))
            elif isinstance(message, RecordStop):
                await hub.apply(live, live.machine.record_stop("stopped_by_agent", hub.clock()))
            elif isinstance(message, Abort):
                await hub.record(
                    "key_mismatch", actor=agent.username, subject=live.machine.session_id
                )
                await hub.apply(live, live.machine.key_mismatch())
        if connection and live is not None and live.machine.ended:
            await connection.drain(settings.close_timeout_seconds)
    except ProtocolError as exc:
        await _close_for_error(ws, connection, exc)
    finally:
        if connection:
            await connection.stop()
        if live is not None and not live.machine.ended:
            await hub.apply(live, live.machine.agent_lost(hub.clock()))


async def _tunnel(ws: WebSocket, services: Services, owner: str, first: str | bytes) -> None:
    await tunnel(
        ws, services.fanout, owner, first, services.entropy, services.settings.send_queue_frames
    )


async def _watch(
    ws: WebSocket, services: Services, supervisor: Principal, session_id: str, first: str
) -> None:
    """A supervisor's socket watching a session: ask the customer, relay its key exchange, then
    receive page content (never send any). Leaving or losing the socket ends only the watch."""
    hub = services.hub
    try:
        live = await hub.session_to_watch(session_id, supervisor)
    except HeldElsewhere as moved:
        await _tunnel(ws, services, moved.node, first)
        return
    except NotFoundError:
        raise ProtocolError(codec.CLOSE_NOT_FOUND, "session not found") from None
    except ForbiddenError as exc:
        raise ProtocolError(codec.CLOSE_FORBIDDEN, str(exc)) from None
    machine = live.machine
    connection = Connection(
        ws,
        services.fanout.subscribe(
            watcher_topic(machine.session_id), services.settings.send_queue_frames
        ),
    )
    try:
        effects = machine.watcher_asks(supervisor.display_name)
        live.watcher_username = supervisor.username
        await hub.record(
            "watch_requested", actor=supervisor.username, org=live.org_id, subject=session_id
        )
        await hub.apply(live, effects)
        while live.watcher_username == supervisor.username and not machine.ended:
            frame = await _receive(ws)
            if frame is None:
                break
            if isinstance(frame, bytes):
                raise ProtocolError(codec.CLOSE_MALFORMED, "a supervisor only watches")
            message = codec.decode_agent(frame, services.settings.max_control_bytes)
            if isinstance(message, Handshake):
                await hub.apply(live, machine.handshake_from_watcher(message.data))
            elif isinstance(message, Abort):
                await hub.apply(live, machine.watch_mismatch())
            elif isinstance(message, Leave):
                break
            else:
                raise ProtocolError(codec.CLOSE_MALFORMED, "already watching a session")
        if live.watcher_username == supervisor.username:  # left: end the watch, then flush
            await hub.apply(live, machine.watcher_leaves())
        await connection.drain(services.settings.close_timeout_seconds)
    finally:
        await connection.stop()
        if live.watcher_username == supervisor.username:
            await hub.apply(live, machine.watcher_leaves())
