"""How Tandem runs under uvicorn: its sans-I/O WebSocket protocol with two repairs, and a server
that stops gracefully.

* When the server stops, uvicorn closes every socket with 1012. A socket whose peer had already
  started the closing handshake is in state CLOSING, and uvicorn 0.54 sends it a second close,
  which websockets refuses with ``InvalidState``: a traceback on every stop that happens to meet a
  closing socket, and in tests a thread exception. Such a socket only needs its transport closed.
* uvicorn's ``send`` waits until the transport may be written to, a close included: a peer that
  stopped reading could never be closed. Here a close to such a peer is queued behind what is
  buffered, the socket's reader is told at once, and the connection is aborted if the peer has not
  taken the close after uvicorn's close timeout; when the server stops, at once.
* Direct paths both ways, offered to the application as one scope extension (``tandem.direct``,
  the protocol object itself), for the relay's hot path (issue 17):

  - a direct send (:meth:`TandemWebSocketProtocol.send_now`) writes a frame to the transport at
    once, without a task switch or uvicorn's ``send`` coroutine, when the transport takes it
    without waiting; otherwise the frame is queued for the socket's writer as before;
  - a direct receive (:attr:`TandemWebSocketProtocol.receiver`): while the application's reader
    waits for a message with nothing queued, a binary message goes to that callback from
    ``data_received``, not through the receive queue, a wake-up of the reader's task and
    uvicorn's pause and resume of reading (two system calls) per message. At thousands of
    sessions sending a few frames a second each, every frame arrives alone, so those costs were
    paid per frame.

  Such frames bypass the ASGI ``send`` and ``receive``: an ASGI middleware that must see or
  rewrite every frame removes the extension from the scope it passes on (as the tests'
  malicious relay does), which withdraws both.
* Incoming frames are split here, not in websockets' generator-based parser (a third of a
  relayed frame's cost in Python at thousands of sessions): once the upgrade request is read,
  a final binary frame, masked, within the size limit, while the connection is open and no
  fragmented message is under way, is unmasked here and handed on; every other frame (text,
  control, fragments, anything invalid) goes to websockets whole, so its parser always stands
  at a frame boundary and its checks, close handshake and errors stay its own. A frame that
  announces more than the size limit, or data after the connection stopped being open, goes to
  websockets with everything after it, for good (it refuses the frame on its header: 1009).
* :class:`TandemServer`: on SIGTERM (or SIGINT) uvicorn would close every socket with 1012 before
  the application's shutdown runs, so sessions would end ``agent_lost``/``customer_lost`` and
  nobody would be told why. It stops accepting, then lets Tandem tell every socket, end its
  sessions ``server_shutdown``, flush recordings and wait for the last frames, all within the
  shutdown timeout, before uvicorn closes what is left and the lifespan anchors the audit trail.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import math
import signal
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.protocol import State

from tandem import heap
from tandem.config import Settings
from tandem.exceptions import StorageError
from tandem.lean import Flag, SingleReaderQueue
from tandem.supervise import cancel_within

try:  # websockets' C unmasking, as websockets itself imports it
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover (a build without the extension)
    from websockets.utils import apply_mask

log = logging.getLogger("tandem.server")


_BINARY, _TEXT = 0x82, 0x81
"""The first header byte of a final binary and text frame (RFC 6455, section 5.2)."""


def frame_header(first: int, length: int) -> bytes:
    """The header of an unmasked WebSocket frame (a server's) of ``length`` payload bytes."""
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


DIRECT = "tandem.direct"
"""The scope extension that holds a socket's :class:`TandemWebSocketProtocol` (its direct send
and receive)."""

AWAIT = "tandem.await"
"""A message type of the direct receive: the ``receiver`` took a binary message and has work
left that must be awaited (``message["awaitable"]``) before the reader's next message."""

Receiver = Callable[[bytes], bool | Awaitable[None]]
"""A direct receiver: True if it took the message, False if the reader must take it the usual
way (queued, in order), or an awaitable when it took it but has work left for the reader."""


class TandemWebSocketProtocol(WebSocketsSansIOProtocol):
    receiver: Receiver | None = None
    """Set by the application's reader only while it waits for a message (the direct receive);
    a class attribute, so that a socket holds none of its own while nobody sets it."""
    splitting = False
    """Whether incoming frames are split here (from the end of the upgrade request on)."""
    partial: bytearray | None = None
    """The start of a frame not yet received whole, while splitting."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Memory per idle socket (issue 17): uvicorn's asyncio.Queue and asyncio.Event allocate
        # five deques up front (about 3.8 KiB); these allocate only while something waits.
        self.queue = SingleReaderQueue()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # the application's task has not run yet: it sees the extension
            scope["extensions"][DIRECT] = self

    def data_received(self, data: bytes) -> None:
        if self.splitting:
            self.split_frames(data)
            return
        super().data_received(data)
        conn = self.conn
        if (
            self.handshake_initiated  # the upgrade request is read: websockets' parser has
            and not self.close_sent  # moved on to frames, and with nothing buffered it stands
            and conn.parser_exc is None  # at a frame's start
            and not conn.reader.buffer
            and conn.state in (State.CONNECTING, State.OPEN)
            and not conn.debug
        ):
            self.splitting = True

    def split_frames(self, data: bytes) -> None:
        """Hand on every whole frame in what was received (see the module's docstring)."""
        conn = self.conn
        buffer: bytes | bytearray = data
        partial = self.partial
        if partial is not None:
            partial += data
            buffer = partial
        size, position = len(buffer), 0
        limit = conn.max_message_size
        if conn.max_fragment_size is not None:
            limit = conn.max_fragment_size if limit is None else min(limit, conn.max_fragment_size)
        while size - position >= 2:
            head1, head2 = buffer[position], buffer[position + 1]
            length = head2 & 0x7F
            start = position + 2
            if length == 126:
                if size - start < 2:
                    break
                length = int.from_bytes(buffer[start : start + 2], "big")
                start += 2
            elif length == 127:
                if size - start < 8:
                    break
                length = int.from_bytes(buffer[start : start + 8], "big")
                start += 8
            state = conn.state
            if (limit is not None and length > limit) or (
                state is not State.OPEN and state is not State.CONNECTING
            ):  # websockets takes it from here, for good: refused on its header, or discarded
                self.splitting = False
                self.partial = None
                super().data_received(bytes(buffer[position:]))
                return
            masked = head2 & 0x80
            end = start + length + (4 if masked else 0)
            if end > size:
                break
            if head1 == _BINARY and masked and state is State.OPEN and conn.current_size is None:
                self.curr_msg_data_type = "bytes"
                self.frames = [apply_mask(buffer[start + 4 : end], buffer[start : start + 4])]
                self.send_receive_event_to_app()
            else:  # anything else, whole: websockets checks it, answers it, fails on it
                conn.receive_data(bytes(buffer[position:end]))
                if conn.parser_exc is not None:
                    self.partial = None
                    self.handle_parser_exception()
                    return
                self.handle_events()
            position = end
        if position == size:
            self.partial = None
        elif partial is not None:
            del partial[:position]
        else:
            self.partial = bytearray(buffer[position:])

    def send_receive_event_to_app(self) -> None:
        receiver = self.receiver
        if (
            receiver is None
            or self.curr_msg_data_type != "bytes"
            or self.close_sent  # uvicorn drops what comes after the application's close
            or not self.queue.empty()  # the reader has messages to take first: in order
        ):
            super().send_receive_event_to_app()
            return
        frames, self.frames = self.frames, []
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        taken = receiver(data)
        if taken is True:
            return
        if taken is False:  # the reader takes it (and raises what it must, in its task)
            message: Any = {"type": "websocket.receive", "bytes": data}
        else:
            message = {"type": AWAIT, "awaitable": taken}
        self.queue.put_nowait(message)
        if not self.read_paused:  # as uvicorn does for a queued message
            self.read_paused = True
            self.transport.pause_reading()

    def send_now(self, data: bytes | str) -> bool:
        """Write one data frame now if the socket is open and its transport is not paused (the
        peer keeps up); False if not, and the caller queues the frame for the writer instead.
        The transport buffers at most its high-water mark before it pauses, so this never
        holds more than that for a peer that stopped reading."""
        if (
            not self.writable.is_set()
            or self.disconnected
            or self.close_sent
            or not self.handshake_complete
            or self.initial_response is not None
        ):
            return False
        conn = self.conn
        if (
            conn.state is not State.OPEN
            or conn.expect_continuation_frame
            or conn.extensions
            or conn.writes
            or conn.debug
        ):
            try:  # anything unusual: websockets frames it
                if isinstance(data, bytes):
                    conn.send_binary(data)
                else:
                    conn.send_text(data.encode())
            except InvalidState:
                return False
            self.transport.write(b"".join(conn.data_to_send()))
            return True
        # The common case, framed here (a third of a relayed frame's cost in websockets: a
        # Frame object, its checks, a BytesIO and two copies): one unmasked final frame from
        # the server, no extension (permessage-deflate is off), nothing else pending.
        if isinstance(data, bytes):
            self.transport.write(frame_header(_BINARY, len(data)) + data)
        else:
            payload = data.encode()
            self.transport.write(frame_header(_TEXT, len(payload)) + payload)
        return True

    def shutdown(self) -> None:
        if self.handshake_complete and not self.close_sent and self.conn.state is not State.OPEN:
            self.stop_keepalive()
            self.transport.close()
            return
        super().shutdown()
        if not self.writable.is_set():  # a peer that stopped reading would keep the stop waiting
            self.transport.abort()

    async def send(self, message: Any) -> None:
        if (
            message["type"] == "websocket.close"
            and not self.writable.is_set()  # the peer stopped reading: the transport is paused
            and self.handshake_complete
            and self.initial_response is None
            and not self.close_sent
            and not self.disconnected
        ):
            code = int(message.get("code", 1000))
            reason = str(message.get("reason", "") or "")
            self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
            self.conn.send_close(code, reason)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            self.close_timer = self.loop.call_later(self.close_timeout, self.transport.abort)
            return
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # The parsed upgrade request and the response would stay for good (websockets' parser
            # keeps the request too); the application has the request's headers in its scope
            # already. Their headers are about 2.5 KiB per socket.
            for message_ in (self.request, self.response):
                if message_ is not None:
                    message_.headers.clear()
            self.request = self.response = None  # type: ignore[assignment]


UVICORN_SECONDS: float = next(
    f.default for f in dataclasses.fields(Settings) if f.name == "shutdown_reserve_seconds"
)  # type: ignore[assignment]
"""Default of :attr:`TandemServer.reserve_seconds` (the ``shutdown_reserve_seconds``
setting's): what a stop keeps, of its timeout, for uvicorn and the lifespan after Tandem's
part."""
HURRIED_STOP_SECONDS: float = next(
    f.default for f in dataclasses.fields(Settings) if f.name == "hurried_stop_seconds"
)  # type: ignore[assignment]
"""Default of :attr:`TandemServer.hurried_seconds` (the ``hurried_stop_seconds`` setting's):
what is left of a stop once Ctrl-C is pressed again (and of a longer --shutdown-timeout): the
waits for sockets end at once, and a healthy database takes what the stop still writes (the
hand-overs under way, the recordings' last frames, ``server_stopped``) in a small part of it;
a frozen one is given up on sooner, what it did not take kept in the audit backlog."""


UVICORN_PRIVATE_PARTS = {
    "_wait_tasks_to_complete": "uvicorn.Server.shutdown's wait for the sockets it closed, ended "
    "at once by a second Ctrl-C (TandemServer._wait_tasks_to_complete)",
    "_captured_signals": "the signals uvicorn raises again once stopped (TandemServer."
    "handle_exit: Ctrl-C stays an interrupt, a SIGTERM whose stop completed a clean exit)",
}
"""What TandemServer relies on of uvicorn's private parts (requirements/*.txt pin uvicorn; a
newer one that renamed them is reported at the start, tests/server/test_uvicorn_private.py)."""


def uvicorn_private_parts_missing() -> list[str]:
    """The parts of :data:`UVICORN_PRIVATE_PARTS` this uvicorn lacks (each with what it costs)."""
    # Never served; log_config=None: uvicorn's Config applies its own logging set-up otherwise
    # (its plain "INFO:     Started server process" lines in a JSON log).
    server = uvicorn.Server(uvicorn.Config(app=None, log_config=None))  # type: ignore[arg-type]
    return [
        f"{name} ({why})"
        for name, why in UVICORN_PRIVATE_PARTS.items()
        if not hasattr(server, name)
        or (name.startswith("_wait") and not inspect.iscoroutinefunction(getattr(server, name)))
    ]


class TandemServer(uvicorn.Server):
    """uvicorn's server, with Tandem's graceful stop before uvicorn closes the sockets.

    ``timeout`` bounds Tandem's part (``shutdown_timeout_seconds``); uvicorn's own wait for the
    connections that are left is bounded by ``timeout_graceful_shutdown`` in its config."""

    def __init__(
        self,
        config: uvicorn.Config,
        app: Starlette,
        timeout: float,
        *,
        hurried_seconds: float = HURRIED_STOP_SECONDS,
        reserve_seconds: float = UVICORN_SECONDS,
    ) -> None:
        super().__init__(config)
        self.tandem_app = app
        self.stop_timeout = timeout
        self.hurried_seconds = hurried_seconds
        """What is left of the stop after a second Ctrl-C (``hurried_stop_seconds``)."""
        self.reserve_seconds = reserve_seconds
        """What the stop leaves uvicorn and the lifespan (``shutdown_reserve_seconds``)."""
        self.hurry_asked = False
        """Whether Ctrl-C came during the stop: the next forces the exit."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hurried: asyncio.Event | None = None
        for missing in uvicorn_private_parts_missing():
            log.error(
                "uvicorn %s has no %s: the stop works without it, less well (pin the uvicorn "
                "of requirements/runtime.txt)",
                uvicorn.__version__,
                missing,
            )

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._hurried = asyncio.Event()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # uvicorn forces the exit on a second Ctrl-C: its wait for the sockets and the
        # lifespan's end are skipped, so the sessions still being handed over were never told,
        # the recordings' last frames and server_stopped never written nor kept. Here a second
        # one only hurries the stop (hurried_stop_seconds); a third forces it, as uvicorn's
        # second did. A repeated SIGTERM (a supervisor's) changes nothing.
        if sig == signal.SIGINT:
            if not self.should_exit:
                self.should_exit = True
            elif not self.hurry_asked:  # after an interrupt or a SIGTERM
                self.hurry_asked = True
                self._call_in_loop(self._hurry)
            else:
                self.force_exit = True
                self._call_in_loop(self._forced)
            self._captured_signals.append(sig)  # Ctrl-C stays an interrupt once stopped
            return
        super().handle_exit(sig, frame)
        # uvicorn raises a captured signal again once it has stopped, so the process would die
        # of SIGTERM; a stop Tandem completed is a clean exit (0).
        if sig == signal.SIGTERM and sig in self._captured_signals:
            self._captured_signals.remove(sig)

    def _call_in_loop(self, callback: Callable[[], None]) -> None:
        """``callback`` soon, on the event loop (a signal handler may run in the middle of the
        loop's own work: only this is safe there)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(callback)

    def _hurry(self) -> None:
        assert self._hurried is not None
        if self._hurried.is_set():
            return
        self._hurried.set()
        log.warning(
            "second interrupt: the stop is cut to %g s (no more waiting for sockets); "
            "sessions are still told, what cannot be written is kept for the next start; "
            "press Ctrl-C again to force the exit (nothing more written nor kept)",
            self.hurried_seconds,
        )
        services = getattr(self.tandem_app.state, "services", None)
        if services is not None:
            services.hub.hurry(self.hurried_seconds)

    def _forced(self) -> None:
        log.error(
            "third interrupt: forcing the exit; what the stop had not done is left to the next "
            "start (it ends this process's sessions server_lost)"
        )

    async def _wait_tasks_to_complete(self) -> None:
        # uvicorn's wait for the sockets it closed, ended at once by a hurry (the sockets were
        # told); uvicorn then cancels their tasks, as when its timeout passes.
        assert self._hurried is not None
        waiting = asyncio.ensure_future(super()._wait_tasks_to_complete())
        hurried = asyncio.ensure_future(self._hurried.wait())
        try:
            await asyncio.wait({waiting, hurried}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hurried.cancel()
        if not waiting.done():
            await cancel_within({waiting}, 0.0)
            raise TimeoutError
        waiting.result()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:  # stop accepting first
            server.close()
        for sock in sockets or []:
            sock.close()
        deadline = time.monotonic() + self.stop_timeout
        # Tandem's part leaves uvicorn (closing what is left) and the lifespan (anchoring the
        # audit trail) the last seconds of the timeout.
        budget = max(self.stop_timeout - self.reserve_seconds, self.stop_timeout / 2)
        services = getattr(self.tandem_app.state, "services", None)
        if services is not None and not self.force_exit:
            log.info(
                "stopping: telling every socket, ending sessions (within %g s, %g s of it before "
                "uvicorn closes what is left; Ctrl-C again shortens the stop)",
                self.stop_timeout,
                budget,
            )
            # Leaving the hub and the services (the lifespan) is bounded by the same deadline.
            services.hub.stop_by(deadline)
            if self._hurried is not None and self._hurried.is_set():  # before the stop began
                services.hub.hurry(self.hurried_seconds)
            try:
                if services.tunnels is not None:  # sockets carried to other processes' sessions
                    await asyncio.wait_for(services.tunnels.restart_edges(), budget / 2)
                spent = self.stop_timeout - (deadline - time.monotonic())
                await asyncio.wait_for(services.hub.shutdown(max(budget - spent, 0.0)), budget)
            except TimeoutError:
                log.warning("sockets still open after %.1f s of the stop; closing them", budget)
            except StorageError as exc:  # the database away: each loss is logged on its own
                log.error("stopping: storage failed (%s); the stop goes on", exc)
            except Exception:  # uvicorn still closes the sockets, the lifespan still anchors
                log.exception("graceful stop failed")
            deadline = time.monotonic() + (services.hub.stop_left() or 0.0)  # hurried or not
        # What is left of the timeout, for uvicorn's wait for the sockets it closes now.
        self.config.timeout_graceful_shutdown = max(1, math.ceil(deadline - time.monotonic()))
        await super().shutdown(sockets)
        # What is still connected once the whole timeout is spent (a peer that never answered
        # its close: uvicorn's stop writes one and waits for the answer, with no timer of its
        # own) is cut, and the loop runs once more so that each socket is really closed: none
        # is left open, served by nothing, after the loop ends.
        left = [c for c in self.server_state.connections if getattr(c, "transport", None)]
        for connection in left:
            connection.transport.abort()
        if left:
            await asyncio.sleep(0)


class BannerServer(TandemServer):
    """Tandem's server (graceful stop) that prints the banner once it serves (not before a
    failure): what `tandem serve` runs."""

    def __init__(
        self,
        config: uvicorn.Config,
        app: Starlette,
        timeout: float,
        banner: Callable[[], None],
        *,
        hurried_seconds: float = HURRIED_STOP_SECONDS,
        reserve_seconds: float = UVICORN_SECONDS,
    ) -> None:
        super().__init__(
            config, app, timeout, hurried_seconds=hurried_seconds, reserve_seconds=reserve_seconds
        )
        self.banner = banner

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            settings = self.tandem_app.state.services.settings
            if settings.gc_freeze_seconds > 0:  # full collections off the event loop
                heap.settle()
                background = self.tandem_app.state.background
                background.every("gc_freeze", settings.gc_freeze_seconds, heap.freeze)
                background.every("gc_collect", settings.gc_collect_seconds, heap.collect_all)
            self.banner()
