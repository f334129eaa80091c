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

Tunnels survive a Redis restart or freeze and notice a dead process (issue 13, faults 4 and 5):

* every frame each end sends (the socket's frames, the owner's accept and close) is numbered and
  kept until the other end confirms it, within ``tunnel_buffer_bytes``;
* each end sends a *beat* every ``tunnel_heartbeat_seconds``: what it received so far (the other
  end forgets those frames) and what it sent (the other end asks again for any it missed, which
  Redis pub/sub loses while a connection is down);
* an end that hears nothing for ``tunnel_lost_seconds`` while Redis answers its own process takes
  the other process for dead: the edge closes the real socket 4404 "its server stopped", the owner
  handles the socket as gone, as a lost network (1006): the customer is told its agent is away,
  whose console may rejoin within ``agent_resume_seconds``; a customer lost may resume;
* while Redis does not answer (down, frozen), silence counts for nothing; after
  ``tunnel_outage_seconds`` of it, or once the frames waiting for confirmation pass the buffer,
  the socket is closed 1013 "server link lost" (the client reconnects; resuming sends a fresh
  snapshot, the key frame) rather than memory growing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from tandem import crypto, metrics
from tandem.fanout.base import FRAME_OVERHEAD, Fanout, Frame, Overflow
from tandem.protocol import codec
from tandem.protocol.messages import LinkStatus, Restarting

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message

    from tandem.config import Settings

log = logging.getLogger("tandem.tunnel")

CLOSE_NOT_FOUND = 4404
CLOSE_GOING_AWAY = 1001
SERVER_STOPPED = "session ended: its server stopped answering"
"""The edge's close reason (4404) when the owner process went silent (it died)."""
LINK_LOST = "server link lost: reconnect"
"""The close reason (1013) when Redis stayed away too long or too much waited for it."""
EDGE_RESTARTING = Restarting(
    message="The help server is restarting; reconnect to continue the session."
)
"""Told to a socket this process carries to another's session when this process stops."""


TUNNELLED = "tandem.tunnelled"
"""The scope key marking a socket run here for another process (through a tunnel)."""


def is_tunnelled(ws: WebSocket) -> bool:
    """Whether ``ws`` is a socket of another process, carried here by a tunnel."""
    return bool(ws.scope.get(TUNNELLED))


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
    seq: int
    payload: bytes
    text: bool
    """A text frame (UTF-8 in ``payload``) or a binary one."""


class Hangup(msgspec.Struct, tag="hangup", array_like=True):
    conn: str
    code: int


# Both ways: liveness and repair


class Beat(msgspec.Struct, tag="beat", array_like=True):
    """Alive; every numbered frame up to ``ack`` arrived; frames up to ``sent`` were sent."""

    conn: str
    ack: int
    sent: int


class Resend(msgspec.Struct, tag="resend", array_like=True):
    """Send again every numbered frame after ``after`` (some were lost)."""

    conn: str
    after: int


# Owner -> edge


class Accepted(msgspec.Struct, tag="accepted", array_like=True):
    seq: int


class Send(msgspec.Struct, tag="send", array_like=True):
    seq: int
    payload: bytes
    text: bool


class Closed(msgspec.Struct, tag="closed", array_like=True):
    seq: int
    code: int
    reason: str


ToOwner = Open | Data | Hangup | Beat | Resend
ToEdge = Accepted | Send | Closed | Beat | Resend
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


@dataclasses.dataclass(frozen=True, slots=True)
class Liveness:
    """A tunnel's timing and buffer (Settings ``tunnel_*``)."""

    heartbeat: float = 1.0
    lost: float = 5.0
    outage: float = 30.0
    buffer_bytes: int = 8 * 1024 * 1024
    accept: float = 5.0
    """How long an edge waits for the owner to take its socket (``tunnel_accept_seconds``)."""

    @property
    def redis_window(self) -> float:
        """Redis "answers" this process if its pub/sub connection heard from Redis within this
        many seconds (half ``lost``, at least two heartbeats)."""
        return max(self.lost / 2, 2 * self.heartbeat)

    @property
    def redis_ping_seconds(self) -> float:
        """How long the pub/sub connection may be quiet before it PINGs Redis: a quarter of
        :attr:`redis_window` (at most a second), so that an idle, healthy connection is heard
        several times per window. At a PING each ``window`` (1 s with ``lost`` 2 s), every
        second the last answer was a window old before the next arrived: Redis "did not
        answer" for a moment on any host, and often on a busy one."""
        return min(1.0, self.redis_window / 4)

    @classmethod
    def of(cls, settings: Settings) -> Liveness:
        return cls(
            settings.tunnel_heartbeat_seconds,
            settings.tunnel_lost_seconds,
            settings.tunnel_outage_seconds,
            settings.tunnel_buffer_bytes,
            settings.tunnel_accept_seconds,
        )


def redis_answers(fanout: Fanout, within: float) -> bool:
    """Whether the shared fan-out heard from Redis within ``within`` seconds (always true for
    one that has no connection to lose)."""
    responsive = getattr(fanout, "responsive", None)
    return True if responsive is None else bool(responsive(within))


async def redis_heard_again(fanout: Fanout, within: float) -> bool:
    """:func:`redis_answers`, or if it says no, whether it says yes within ``within`` more
    seconds. The pub/sub reader PINGs Redis after each second of silence: a process too busy to
    run its reader for a moment (a saturated machine) hears Redis again at once, a frozen or
    unreachable Redis stays silent. For a verdict that cannot be taken back (4404: the session
    is gone), not for the periodic checks."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not redis_answers(fanout, within):
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(min(0.1, within / 10))
    return True


AWAY_AFTER_SILENT_BEATS = 2
"""Redis is said to be away (to the people of a session, in the log) once this process found
it silent at this many beats in a row: between two, its reader had a heartbeat to read what
had arrived. A process too busy to run its reader for a moment (a saturated machine) finds Redis
"silent" at one beat, then hears it at once; it is not told the link is down."""

Verdict = str
"""Why a tunnel is given up: ``silent`` (the other process died) or ``link`` (Redis away too
long, or too much waiting for it)."""


class _Link:
    """One end of a tunnel: numbers what it sends and keeps it until confirmed (resending on
    request), accepts what it receives in order, beats, and judges the other end's silence."""

    def __init__(
        self, fanout: Fanout, topic: str, conn: str, liveness: Liveness, now: float
    ) -> None:
        self.fanout = fanout
        self.topic = topic
        self.conn = conn
        self.liveness = liveness
        self.sent = 0
        self.unacked: collections.deque[tuple[int, Frame]] = collections.deque()
        self.unacked_bytes = 0
        self.received = 0
        self.unconfirmed_bytes = 0
        self.heard = now
        self.asked = (-1, -math.inf)
        self.outage_since: float | None = None
        self.silent_beats = 0
        """Beats in a row at which Redis was found silent (:data:`AWAY_AFTER_SILENT_BEATS`)."""
        self.overflowed = False

    def send(self, make: Callable[[int], ToOwner | ToEdge]) -> None:
        """Number, keep and send a frame (dropped once the buffer overflowed: the tunnel is
        then given up by the next :meth:`verdict`)."""
        if self.overflowed:
            return
        self.sent += 1
        frame = _frame(make(self.sent))
        self.unacked.append((self.sent, frame))
        self.unacked_bytes += len(frame.data)
        if self.unacked_bytes > self.liveness.buffer_bytes:
            self.overflowed = True
        self.fanout.publish(self.topic, frame)

    def accept(self, seq: int, size: int, now: float) -> bool:
        """Whether a numbered frame is the next one (to be delivered); a later one means some
        were lost: they are asked for again."""
        self.heard = now
        if seq == self.received + 1:
            self.received = seq
            self.unconfirmed_bytes += size
            if self.unconfirmed_bytes > self.liveness.buffer_bytes // 4:
                self.beat()  # confirm early: the sender's buffer empties before it fills
            return True
        if seq > self.received + 1:
            self.ask(now)
        return False

    def hear(self, envelope: Beat | Resend, now: float) -> None:
        self.heard = now
        if isinstance(envelope, Resend):
            self.resend(envelope.after)
            return
        while self.unacked and self.unacked[0][0] <= envelope.ack:
            self.unacked_bytes -= len(self.unacked.popleft()[1].data)
        if envelope.sent > self.received:
            self.ask(now)

    def resend(self, after: int) -> None:
        """Send again every frame kept (not yet confirmed) numbered above ``after``."""
        for seq, frame in tuple(self.unacked):
            if seq > after:
                self.fanout.publish(self.topic, frame)

    def ask(self, now: float) -> None:
        """Ask for the frames after the last received (once per heartbeat for the same gap)."""
        if self.asked[0] != self.received or now - self.asked[1] >= self.liveness.heartbeat:
            self.asked = (self.received, now)
            self.fanout.publish(self.topic, _frame(Resend(self.conn, self.received)))

    def beat(self) -> None:
        self.unconfirmed_bytes = 0
        self.fanout.publish(self.topic, _frame(Beat(self.conn, self.received, self.sent)))

    @property
    def redis_away(self) -> bool:
        """Whether Redis was silent long enough to tell the person (frames wait)."""
        return self.silent_beats >= AWAY_AFTER_SILENT_BEATS

    @property
    def confirmed(self) -> bool:
        """Everything sent was confirmed by the other end."""
        return not self.unacked

    def verdict(self, now: float) -> Verdict | None:
        """Whether to give up the tunnel now (see :data:`Verdict`)."""
        liveness = self.liveness
        if not redis_answers(self.fanout, liveness.redis_window):
            self.heard = now  # Redis is away or frozen: silence says nothing of the other end
            self.silent_beats += 1
            if self.outage_since is None:
                self.outage_since = now
            return "link" if now - self.outage_since > liveness.outage else None
        self.outage_since = None
        self.silent_beats = 0
        if self.overflowed:
            return "link"
        if now - self.heard > liveness.lost:
            return "silent"
        return None


# The owner's side


class _Tunnelled:
    """One tunnelled socket at the owner: the ASGI receive/send pair its endpoint runs on. Its
    inbox holds at most ``max_bytes`` of the edge's frames the endpoint has not read (it reads
    them as fast as a local socket's); past that the socket is closed 1013."""

    def __init__(self, link: _Link, max_bytes: int) -> None:
        self.link = link
        self.conn = link.conn
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.inbox.put_nowait({"type": "websocket.connect"})
        self.max_bytes = max_bytes
        self.queued_bytes = 0
        self.closed = False
        """The owner closed it (its endpoint returned or closed the socket)."""
        self.gone = False
        """The endpoint was told the socket went."""
        self.finished = False
        """The endpoint returned: kept until the edge confirmed the close (or went)."""

    def deliver(self, message: Message) -> None:
        if self.gone:
            return
        if message["type"] == "websocket.disconnect":
            self.gone = True
        size = FRAME_OVERHEAD + len(message.get("bytes") or message.get("text") or "")
        if self.queued_bytes + size > self.max_bytes:  # faster than the session takes it
            metrics.QUEUE_DROPS.labels(where="tunnel").inc()
            self._close(1013, "too fast: receive queue full")
            with contextlib.suppress(asyncio.QueueEmpty):
                while True:
                    self.inbox.get_nowait()
            self.queued_bytes = 0
            self.gone = True
            self.inbox.put_nowait({"type": "websocket.disconnect", "code": 1013})
            return
        self.queued_bytes += size
        self.inbox.put_nowait(message)

    def hang_up(self, code: int) -> None:
        """The socket went (the edge said so, or is gone): the endpoint sees it disconnect."""
        self.deliver({"type": "websocket.disconnect", "code": code})

    async def receive(self) -> Message:
        message = await self.inbox.get()
        self.queued_bytes = max(
            0,
            self.queued_bytes
            - FRAME_OVERHEAD
            - len(message.get("bytes") or message.get("text") or ""),
        )
        return message

    async def send(self, message: Message) -> None:
        if self.closed:
            return
        kind = message["type"]
        if kind == "websocket.accept":
            self.link.send(Accepted)
        elif kind == "websocket.send":
            payload, text = _payload(message)
            self.link.send(lambda seq: Send(seq, payload, text))
        elif kind == "websocket.close":
            self._close(int(message.get("code", 1000)), str(message.get("reason") or ""))

    def finish(self) -> None:
        """The endpoint returned: the edge closes the real socket too."""
        self._close(1000, "")
        self.finished = True

    def _close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.link.send(lambda seq: Closed(seq, code, reason))


Endpoint = Callable[[WebSocket], Awaitable[None]]


class TunnelHost:
    """This process's tunnels: the owner's side (runs tunnelled sockets of this node's sessions
    on its endpoints, beating for each) and the edges it carries to other processes (told
    ``restarting`` when it stops)."""

    def __init__(
        self,
        app: ASGIApp,
        fanout: Fanout,
        node: str,
        endpoints: dict[str, Endpoint],
        queue_bytes: int,
        liveness: Liveness | None = None,
    ) -> None:
        self.app = app
        self.fanout = fanout
        self.node = node
        self.endpoints = endpoints
        self.queue_bytes = queue_bytes
        """Each tunnel's reply queue (``socket_queue_bytes``); this node's inbox holds 32 times
        as much."""
        self.liveness = liveness or Liveness()
        self._sockets: dict[str, _Tunnelled] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscription = fanout.subscribe(node_topic(node), 32 * queue_bytes)
        self.edges: set[Edge] = set()
        """Sockets of this process carried to other processes' sessions."""
        self.on_link_change: Callable[[bool], None] = lambda reconnecting: None
        """Called when Redis stops (True) or starts again (False) answering this process."""
        self.redis_away = False
        self._silent_beats = 0

    @property
    def tunnelled(self) -> int:
        """Sockets of other processes this one serves (metrics)."""
        return sum(1 for t in self._sockets.values() if not t.finished)

    async def run(self) -> None:
        """Take envelopes from this node's topic, and beat for every tunnel, until cancelled.

        Both or neither: if either fails, the other stops and the failure is raised (its first
        exception, not a group) for the supervisor that runs this (``tunnel_entrance``) to log,
        count and start again. A beat left dead alone would have every edge take this process
        for silent and hang up its sockets, while it looked healthy."""
        tasks = [
            asyncio.create_task(self._beat_forever(), name="tandem:tunnel_beats"),
            asyncio.create_task(self._take_forever(), name="tandem:tunnel_inbox"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # raises what it raised
            raise RuntimeError("the tunnel entrance's beat or inbox returned")  # never does
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)  # both ended (an asyncio.TaskGroup would leave this task
            # counted as cancelled on Python 3.11, and its supervisor could not tell a stop)

    async def _take_forever(self) -> None:
        """Take envelopes from this node's topic and hand them to their tunnels."""
        while True:
            try:
                frame = await self._subscription.get()
            except Overflow:  # this process fell behind: the tunnels ask for what was lost
                log.warning("tunnel inbox overflowed; lost frames are asked for again")
                self._subscription = self.fanout.subscribe(
                    node_topic(self.node), 32 * self.queue_bytes
                )
                continue
            envelope = decode_to_owner(frame.data)
            if envelope is None:
                log.warning("ignored a malformed tunnel envelope")
                continue
            self._dispatch(envelope, len(frame.data))

    async def _beat_forever(self) -> None:
        loop = asyncio.get_running_loop()
        liveness = self.liveness
        while True:
            await asyncio.sleep(liveness.heartbeat)
            now = loop.time()
            silent = not redis_answers(self.fanout, liveness.redis_window)
            self._silent_beats = self._silent_beats + 1 if silent else 0
            away = self._silent_beats >= AWAY_AFTER_SILENT_BEATS
            if away != self.redis_away:
                self.redis_away = away
                log.warning("Redis %s", "does not answer" if away else "answers again")
                self.on_link_change(away)
            for tunnelled in tuple(self._sockets.values()):
                link = tunnelled.link
                verdict = link.verdict(now)
                if tunnelled.finished and (link.confirmed or verdict is not None):
                    self._sockets.pop(tunnelled.conn, None)  # the edge has the close, or is gone
                    continue
                if verdict is not None and not tunnelled.gone:
                    log.warning(
                        "tunnelled socket given up: %s",
                        "its process went silent" if verdict == "silent" else "Redis away",
                    )
                    metrics.TUNNELS_LOST.labels(reason=verdict).inc()
                    tunnelled.hang_up(1006)
                link.beat()

    def _dispatch(self, envelope: ToOwner, size: int) -> None:
        if isinstance(envelope, Open):
            self._open(envelope)
            return
        tunnelled = self._sockets.get(envelope.conn)
        if tunnelled is None:
            return
        now = asyncio.get_running_loop().time()
        if isinstance(envelope, Beat | Resend):
            tunnelled.link.hear(envelope, now)
        elif isinstance(envelope, Data):
            if tunnelled.link.accept(envelope.seq, size, now):
                message: Message = {"type": "websocket.receive"}
                if envelope.text:
                    message["text"] = envelope.payload.decode(errors="replace")
                else:
                    message["bytes"] = envelope.payload
                tunnelled.deliver(message)
        else:
            tunnelled.link.heard = now
            tunnelled.hang_up(envelope.code)

    def _open(self, envelope: Open) -> None:
        endpoint = self.endpoints.get(envelope.path)
        if endpoint is None or envelope.conn in self._sockets:
            return
        link = _Link(
            self.fanout,
            conn_topic(envelope.conn),
            envelope.conn,
            self.liveness,
            asyncio.get_running_loop().time(),
        )
        opened = _Tunnelled(link, self.queue_bytes)
        self._sockets[envelope.conn] = opened
        scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "app": self.app,
            "scheme": envelope.scheme,
            "path": envelope.path,
            "raw_path": envelope.path.encode(),
            "query_string": b"",
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in envelope.headers],
            "client": envelope.client,
            "server": None,
            "subprotocols": [],
            "state": {},
            TUNNELLED: True,
        }
        task = asyncio.create_task(self._serve(endpoint, scope, opened))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(
        self, endpoint: Endpoint, scope: dict[str, Any], tunnelled: _Tunnelled
    ) -> None:
        try:
            await endpoint(WebSocket(scope, tunnelled.receive, tunnelled.send))
        except Exception:
            log.exception("tunnelled socket failed")
        finally:
            tunnelled.finish()

    async def restart_edges(self) -> None:
        """This process stops: tell each socket it carries to another process (``restarting``),
        close it 1012 and hang up at the owner, whose session goes on (the client reconnects)."""
        await asyncio.gather(*(edge.restarting() for edge in tuple(self.edges)))

    async def close(self) -> None:
        await self.restart_edges()
        for task in tuple(self._tasks):
            task.cancel()
        for task in tuple(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._subscription.close()


# The edge's side


class Edge:
    """A real socket of this process carried to its session's owner."""

    def __init__(self, ws: WebSocket, fanout: Fanout, owner: str, conn: str, link: _Link) -> None:
        self.ws = ws
        self.fanout = fanout
        self.owner = owner
        self.conn = conn
        self.link = link
        self.done = asyncio.Event()

    def hang_up(self, code: int) -> None:
        self.fanout.publish(node_topic(self.owner), _frame(Hangup(self.conn, code)))

    async def restarting(self) -> None:
        if self.done.is_set():
            return
        self.done.set()
        # "Going away" at the owner, as a reload is: the session waits for the client to come
        # back through another process (an agent's rejoin, a customer's resume). The real
        # socket hears 1012, which tells the client to reconnect.
        self.hang_up(CLOSE_GOING_AWAY)
        await _close_socket(
            self.ws, codec.CLOSE_SERVICE_RESTART, "server restarting", codec.encode(EDGE_RESTARTING)
        )


async def tunnel(
    ws: WebSocket,
    fanout: Fanout,
    owner: str,
    first: str | bytes,
    entropy: crypto.Entropy,
    queue_bytes: int,
    liveness: Liveness | None = None,
    edges: set[Edge] | None = None,
) -> None:
    """Carry an accepted socket to the session's owner, starting with ``first`` (the message
    that named the session), until either side closes. Closes 4404 if the owner does not take
    it in time (while Redis answers, :func:`redis_heard_again`) or goes silent (its process is
    gone), 1013 if Redis does not answer (at the opening too: :func:`redis_heard_again`, as a
    process too busy to read Redis for a moment would otherwise send the client away)."""
    liveness = liveness or Liveness()
    loop = asyncio.get_running_loop()
    if not await redis_heard_again(fanout, liveness.redis_window):
        await _close_socket(ws, codec.CLOSE_TRY_AGAIN_LATER, LINK_LOST)
        return
    conn = crypto.new_token(entropy, 12)
    replies = fanout.subscribe(conn_topic(conn), queue_bytes)
    link = _Link(fanout, node_topic(owner), conn, liveness, loop.time())
    edge = Edge(ws, fanout, owner, conn, link)
    if edges is not None:
        edges.add(edge)
    try:
        flush = getattr(fanout, "flush", None)
        if flush is not None:
            await flush()  # Redis confirmed the subscription: the owner's answers will arrive
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in ws.scope["headers"]]
        client = ws.scope.get("client") or ("", 0)
        where = (str(client[0]), int(client[1]))
        scheme = str(ws.scope.get("scheme", "ws"))
        opening = _frame(Open(conn, ws.scope["path"], headers, where, scheme))
        fanout.publish(node_topic(owner), opening)
        text = isinstance(first, str)
        payload = first.encode() if isinstance(first, str) else first
        link.send(lambda seq: Data(conn, seq, payload, text))
        deadline = loop.time() + liveness.accept
        while True:
            try:
                wait = min(liveness.heartbeat, max(0.0, deadline - loop.time()))
                reply = await asyncio.wait_for(_next(replies, link), wait)
                break
            except TimeoutError:
                if loop.time() < deadline:  # the opening may have been lost: again
                    fanout.publish(node_topic(owner), opening)
                    link.resend(0)
                    continue
                if await redis_heard_again(fanout, liveness.redis_window):
                    await _close_socket(ws, CLOSE_NOT_FOUND, "session not found")
                else:
                    await _close_socket(ws, codec.CLOSE_TRY_AGAIN_LATER, LINK_LOST)
                return
        if not isinstance(reply, Accepted):
            await _to_socket(ws, reply)
            if isinstance(reply, Closed):
                link.beat()  # the owner may forget it
                return
        # Until either side is done: the owner closes (downstream ends), the client goes
        # (upstream ends, having told the owner), the owner goes silent or Redis stays away
        # (the beat ends); then the others stop too.
        tasks = {
            asyncio.create_task(_upstream(ws, edge)),
            asyncio.create_task(_downstream(ws, replies, link)),
            asyncio.create_task(_beat(edge)),
            asyncio.create_task(edge.done.wait()),
        }
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    except (WebSocketDisconnect, RuntimeError, OSError):
        edge.hang_up(1006)
    finally:
        replies.close()
        if edges is not None:
            edges.discard(edge)


async def _next(replies: Any, link: _Link) -> Accepted | Send | Closed:
    """The owner's next numbered frame, in order; beats and resend requests are handled."""
    loop = asyncio.get_running_loop()
    while True:
        frame = await replies.get()
        reply = decode_to_edge(frame.data)
        if reply is None:
            log.warning("ignored a malformed tunnel reply")
        elif isinstance(reply, Beat | Resend):
            link.hear(reply, loop.time())
        elif link.accept(reply.seq, len(frame.data), loop.time()):
            return reply


async def _downstream(ws: WebSocket, replies: Any, link: _Link) -> None:
    """The owner's frames, to the real socket, until the owner closes it."""
    while True:
        try:
            reply = await _next(replies, link)
        except Overflow:
            await _close_socket(ws, codec.CLOSE_TRY_AGAIN_LATER, "too slow: send queue full")
            return
        try:
            await _to_socket(ws, reply)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return  # the client went; upstream tells the owner
        if isinstance(reply, Closed):
            link.beat()  # confirms the close: the owner forgets the tunnel
            return


async def _beat(edge: Edge) -> None:
    """Beat every heartbeat until the owner goes silent or Redis stays away too long."""
    link, loop = edge.link, asyncio.get_running_loop()
    away = False
    while True:
        await asyncio.sleep(link.liveness.heartbeat)
        link.beat()
        verdict = link.verdict(loop.time())
        if verdict is None:
            if link.redis_away != away:  # tell the person: frames wait
                away = not away
                notice = LinkStatus(state="reconnecting" if away else "restored")
                with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError, TimeoutError):
                    await asyncio.wait_for(edge.ws.send_text(codec.encode(notice)), 2.0)
            continue
        metrics.TUNNELS_LOST.labels(reason=verdict).inc()
        edge.hang_up(1006)
        if verdict == "silent":
            log.warning("the process holding a tunnelled session went silent")
            await _close_socket(edge.ws, CLOSE_NOT_FOUND, SERVER_STOPPED)
        else:
            log.warning("a tunnel waited too long for Redis; its socket is told to reconnect")
            await _close_socket(edge.ws, codec.CLOSE_TRY_AGAIN_LATER, LINK_LOST)
        return


async def _to_socket(ws: WebSocket, reply: Accepted | Send | Closed) -> None:
    if isinstance(reply, Send):
        if reply.text:
            await ws.send_text(reply.payload.decode(errors="replace"))
        else:
            await ws.send_bytes(reply.payload)
    elif isinstance(reply, Closed):
        await _close_socket(ws, reply.code, reply.reason)


async def _close_socket(ws: WebSocket, code: int, reason: str, notice: str | None = None) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError, TimeoutError):
        if notice is not None:
            await asyncio.wait_for(ws.send_text(notice), 2.0)
    with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
        await ws.close(code, reason[:120])


def _data(conn: str, payload: bytes, text: bool, seq: int) -> Data:
    return Data(conn, seq, payload, text)


async def _upstream(ws: WebSocket, edge: Edge) -> None:
    """The real socket's frames, to the owner, until it disconnects."""
    link = edge.link
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                edge.hang_up(int(message.get("code", 1000)))
                return
            link.send(functools.partial(_data, edge.conn, *_payload(message)))
    except (WebSocketDisconnect, RuntimeError, OSError):
        edge.hang_up(1006)
