"""One session's sockets on several server processes: a tunnel through the shared fan-out.

With several processes behind one address (docs/scale-out.md), each process has a *node* id and
the live state of a session (its state machine, deadlines, resume token, recording) stays in the
process whose customer socket created it: its *owner*, which storage records. When a socket
reaches another process (the *edge*) and needs a session held elsewhere (a customer resuming
after a navigation, an agent whose code names it, a supervisor watching it), the edge tunnels
the socket to the owner:

* the edge publishes the socket's opening (path, headers, client address) and then every frame
  it receives to the owner's topic ``node:<owner>``;
* the owner runs its ordinary endpoint (:mod:`tandem.server.ws`) on an ASGI WebSocket fed from
  that topic, so authentication, origin checks, authorisation, rate limits and the state machine
  run there exactly as for a local socket;
* everything the endpoint sends (its accept, text and binary frames, its close) comes back on the
  connection's own topic ``conn:<id>``, which the edge writes to the real socket.

Frames stay opaque (ciphertext) inside the envelopes. The fan-out (Redis) is trusted like the
database: it must be reachable by the servers only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from tandem import crypto, metrics
from tandem.fanout.base import Fanout, Frame, Overflow

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message

log = logging.getLogger("tandem.tunnel")

ACCEPT_TIMEOUT_SECONDS = 5.0
"""How long an edge waits for the owner to take a tunnelled socket before saying not found."""
CLOSE_NOT_FOUND = 4404


def node_topic(node: str) -> str:
    return f"node:{node}"


def conn_topic(conn: str) -> str:
    return f"conn:{conn}"


# Edge -> owner


class Open(msgspec.Struct, tag="open", array_like=True):
    conn: str
    path: str
    headers: list[tuple[str, str]]
    client: tuple[str, int]
    scheme: str


class Data(msgspec.Struct, tag="data", array_like=True):
    conn: str
    payload: bytes
    text: bool
    """A text frame (UTF-8 in ``payload``) or a binary one."""


class Hangup(msgspec.Struct, tag="hangup", array_like=True):
    conn: str
    code: int


# Owner -> edge


class Accepted(msgspec.Struct, tag="accepted", array_like=True):
    pass


class Send(msgspec.Struct, tag="send", array_like=True):
    payload: bytes
    text: bool


class Closed(msgspec.Struct, tag="closed", array_like=True):
    code: int
    reason: str


ToOwner = Open | Data | Hangup
ToEdge = Accepted | Send | Closed
_encode = msgspec.msgpack.Encoder().encode
_to_owner = msgspec.msgpack.Decoder(ToOwner)
_to_edge = msgspec.msgpack.Decoder(ToEdge)


def _frame(message: ToOwner | ToEdge) -> Frame:
    return Frame(_encode(message))


def _decode(decoder: msgspec.msgpack.Decoder[Any], data: str | bytes) -> Any:
    """The envelope in ``data``, or None if it is not one (never raises)."""
    if not isinstance(data, bytes):
        return None
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError, ValueError):
        return None


def decode_to_owner(data: str | bytes) -> ToOwner | None:
    envelope: ToOwner | None = _decode(_to_owner, data)
    return envelope


def decode_to_edge(data: str | bytes) -> ToEdge | None:
    envelope: ToEdge | None = _decode(_to_edge, data)
    return envelope


def _payload(message: Message) -> tuple[bytes, bool]:
    """An ASGI send/receive message's frame as (bytes, is text)."""
    text = message.get("text")
    if text is not None:
        return str(text).encode(), True
    return bytes(message.get("bytes") or b""), False


# The owner's side

INBOX_FRAMES = 512
"""Frames from the edge a tunnelled socket's endpoint may leave unread before the edge is closed
(1013); the endpoint reads them as fast as a local socket's."""


class _Tunnelled:
    """One tunnelled socket at the owner: the ASGI receive/send pair its endpoint runs on."""

    def __init__(self, fanout: Fanout, conn: str, maxsize: int) -> None:
        self.fanout = fanout
        self.conn = conn
        self.inbox: asyncio.Queue[Message] = asyncio.Queue(maxsize)
        self.inbox.put_nowait({"type": "websocket.connect"})
        self.closed = False

    def deliver(self, message: Message) -> None:
        try:
            self.inbox.put_nowait(message)
        except asyncio.QueueFull:  # the edge sends faster than the session takes: drop it
            metrics.QUEUE_DROPS.labels(where="tunnel").inc()
            self._close(1013, "too fast: receive queue full")
            with contextlib.suppress(asyncio.QueueEmpty):
                while True:
                    self.inbox.get_nowait()
            self.inbox.put_nowait({"type": "websocket.disconnect", "code": 1013})

    async def receive(self) -> Message:
        return await self.inbox.get()

    async def send(self, message: Message) -> None:
        if self.closed:
            return
        kind = message["type"]
        if kind == "websocket.accept":
            self.fanout.publish(conn_topic(self.conn), _frame(Accepted()))
        elif kind == "websocket.send":
            self.fanout.publish(conn_topic(self.conn), _frame(Send(*_payload(message))))
        elif kind == "websocket.close":
            self._close(int(message.get("code", 1000)), str(message.get("reason") or ""))

    def finish(self) -> None:
        """The endpoint returned: the edge closes the real socket too."""
        self._close(1000, "")

    def _close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.fanout.publish(conn_topic(self.conn), _frame(Closed(code, reason)))


Endpoint = Callable[[WebSocket], Awaitable[None]]


class TunnelHost:
    """The owner's side: runs tunnelled sockets of this node's sessions on its endpoints."""

    def __init__(
        self,
        app: ASGIApp,
        fanout: Fanout,
        node: str,
        endpoints: dict[str, Endpoint],
        queue_bytes: int,
    ) -> None:
        self.app = app
        self.fanout = fanout
        self.node = node
        self.endpoints = endpoints
        self.queue_bytes = queue_bytes
        """Each tunnel's reply queue (``socket_queue_bytes``); this node's inbox holds 32 times
        as much."""
        self.retry_seconds = 0.5
        """Pause before listening again after lost frames."""
        self._sockets: dict[str, _Tunnelled] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscription = fanout.subscribe(node_topic(node), 32 * queue_bytes)

    async def run(self) -> None:
        """Take envelopes from this node's topic until cancelled."""
        while True:
            try:
                frame = await self._subscription.get()
            except Overflow:  # frames were lost (Redis went away): every tunnel is unreliable
                log.warning("tunnel inbox lost frames; closing tunnelled sockets")
                for tunnelled in tuple(self._sockets.values()):
                    tunnelled.deliver({"type": "websocket.disconnect", "code": 1013})
                await asyncio.sleep(self.retry_seconds)  # while Redis is away, not in a spin
                self._subscription = self.fanout.subscribe(
                    node_topic(self.node), 32 * self.queue_bytes
                )
                continue
            envelope = decode_to_owner(frame.data)
            if envelope is None:
                log.warning("ignored a malformed tunnel envelope")
                continue
            self._dispatch(envelope)

    def _dispatch(self, envelope: ToOwner) -> None:
        if isinstance(envelope, Open):
            endpoint = self.endpoints.get(envelope.path)
            if endpoint is None or envelope.conn in self._sockets:
                return
            opened = _Tunnelled(self.fanout, envelope.conn, INBOX_FRAMES)
            self._sockets[envelope.conn] = opened
            scope: dict[str, Any] = {
                "type": "websocket",
                "asgi": {"version": "3.0"},
                "app": self.app,
                "scheme": envelope.scheme,
                "path": envelope.path,
                "raw_path": envelope.path.encode(),
                "query_string": b"",
                "headers": [
                    (k.encode("latin-1"), v.encode("latin-1")) for k, v in envelope.headers
                ],
                "client": envelope.client,
                "server": None,
                "subprotocols": [],
                "state": {},
            }
            task = asyncio.create_task(self._serve(endpoint, scope, opened))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        tunnelled = self._sockets.get(envelope.conn)
        if tunnelled is None:
            return
        if isinstance(envelope, Data):
            message: Message = {"type": "websocket.receive"}
            if envelope.text:
                message["text"] = envelope.payload.decode()
            else:
                message["bytes"] = envelope.payload
            tunnelled.deliver(message)
        else:
            tunnelled.deliver({"type": "websocket.disconnect", "code": envelope.code})

    async def _serve(
        self, endpoint: Endpoint, scope: dict[str, Any], tunnelled: _Tunnelled
    ) -> None:
        try:
            await endpoint(WebSocket(scope, tunnelled.receive, tunnelled.send))
        except Exception:
            log.exception("tunnelled socket failed")
        finally:
            tunnelled.finish()
            self._sockets.pop(tunnelled.conn, None)

    async def close(self) -> None:
        for task in tuple(self._tasks):
            task.cancel()
        for task in tuple(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._subscription.close()


# The edge's side


async def tunnel(
    ws: WebSocket,
    fanout: Fanout,
    owner: str,
    first: str | bytes,
    entropy: crypto.Entropy,
    queue_bytes: int,
) -> None:
    """Carry an accepted socket to the session's owner, starting with ``first`` (the message
    that named the session), until either side closes. Closes 4404 if the owner does not take
    it in time (its process is gone)."""
    conn = crypto.new_token(entropy, 12)
    replies = fanout.subscribe(conn_topic(conn), queue_bytes)
    try:
        flush = getattr(fanout, "flush", None)
        if flush is not None:
            await flush()  # Redis confirmed the subscription: the owner's answers will arrive
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in ws.scope["headers"]]
        client = ws.scope.get("client") or ("", 0)
        where = (str(client[0]), int(client[1]))
        scheme = str(ws.scope.get("scheme", "ws"))
        fanout.publish(
            node_topic(owner), _frame(Open(conn, ws.scope["path"], headers, where, scheme))
        )
        text = isinstance(first, str)
        payload = first.encode() if isinstance(first, str) else first
        fanout.publish(node_topic(owner), _frame(Data(conn, payload, text)))
        try:
            reply = await asyncio.wait_for(_next(replies), ACCEPT_TIMEOUT_SECONDS)
        except TimeoutError:
            await ws.close(CLOSE_NOT_FOUND, "session not found")
            return
        if not isinstance(reply, Accepted):
            await _to_socket(ws, reply)
            if isinstance(reply, Closed):
                return
        # Until either side is done: the owner closes (downstream ends) or the client goes
        # (upstream ends, having told the owner); then the other direction stops too.
        upstream = asyncio.create_task(_upstream(ws, fanout, owner, conn))
        downstream = asyncio.create_task(_downstream(ws, replies))
        try:
            await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (upstream, downstream):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    except (WebSocketDisconnect, RuntimeError, OSError):
        fanout.publish(node_topic(owner), _frame(Hangup(conn, 1006)))
    finally:
        replies.close()


async def _next(replies: Any) -> ToEdge:
    while True:
        frame = await replies.get()
        reply = decode_to_edge(frame.data)
        if reply is not None:
            return reply
        log.warning("ignored a malformed tunnel reply")


async def _downstream(ws: WebSocket, replies: Any) -> None:
    """The owner's frames, to the real socket, until the owner closes it."""
    while True:
        try:
            reply = await _next(replies)
        except Overflow:
            await ws.close(1013, "too slow: send queue full")
            return
        try:
            await _to_socket(ws, reply)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return  # the client went; upstream tells the owner
        if isinstance(reply, Closed):
            return


async def _to_socket(ws: WebSocket, reply: ToEdge) -> None:
    if isinstance(reply, Send):
        if reply.text:
            await ws.send_text(reply.payload.decode())
        else:
            await ws.send_bytes(reply.payload)
    elif isinstance(reply, Closed):
        with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
            await ws.close(reply.code, reply.reason[:120])


async def _upstream(ws: WebSocket, fanout: Fanout, owner: str, conn: str) -> None:
    """The real socket's frames, to the owner, until it disconnects."""
    topic = node_topic(owner)
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                fanout.publish(topic, _frame(Hangup(conn, int(message.get("code", 1000)))))
                return
            fanout.publish(topic, _frame(Data(conn, *_payload(message))))
    except (WebSocketDisconnect, RuntimeError, OSError):
        fanout.publish(topic, _frame(Hangup(conn, 1006)))
