"""Tandem's WebSocket protocol under uvicorn: stopping the server while a peer's close is under
way closes that socket quietly; an accepted socket keeps little memory."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import Protocol, Side, State

from tandem.fanout.memory import MemorySubscription
from tandem.lean import Flag, SingleReaderQueue
from tandem.server.websocket_protocol import AWAIT, TandemWebSocketProtocol
from tests.conftest import RunningServer
from tests.server.helpers import sharing_session


class Transport:
    def __init__(self) -> None:
        self.closed = False
        self.written: list[bytes] = []

    def close(self) -> None:
        self.closed = True

    def write(self, data: bytes) -> None:
        self.written.append(data)


def closing_socket() -> TandemWebSocketProtocol:
    """A protocol object whose peer sent a close frame the server has not answered yet (built
    without the event loop: only what shutdown() reads is set)."""
    protocol = TandemWebSocketProtocol.__new__(TandemWebSocketProtocol)
    conn = Protocol(Side.SERVER, state=State.OPEN)  # after the handshake
    close = Frame(Opcode.CLOSE, Close(1001, "going away").serialize())
    conn.receive_data(close.serialize(mask=True))  # a client's frames are masked
    protocol.conn = conn
    protocol.transport = Transport()  # type: ignore[assignment]
    protocol.handshake_complete = True
    protocol.close_sent = False
    protocol.queue = asyncio.Queue()
    protocol.ping_timer = None
    protocol.pong_timer = None
    return protocol


def test_a_socket_in_its_closing_handshake_is_closed_without_a_second_close() -> None:
    protocol = closing_socket()
    assert protocol.conn.state is State.CLOSING
    protocol.shutdown()  # uvicorn's own shutdown raises InvalidState here
    assert protocol.transport.closed  # type: ignore[attr-defined]


async def test_a_sharing_sessions_idle_sockets_hold_no_handshake_and_no_idle_deques(
    server: RunningServer,
) -> None:
    """Memory per idle connection (issue 17): once accepted, a socket no longer holds the
    parsed upgrade request's headers (the application has them in its scope), and its receive
    queue, writable flag and fan-out queue hold no deque while nothing waits in them. Frames
    still flow both ways afterwards."""
    customer, agent, _ = await sharing_session(server)
    await customer.send(b"page")
    assert await asyncio.wait_for(agent.recv(), 5) == b"page"
    sockets = [c for c in server.server.server_state.connections if c.handshake_complete]
    assert len(sockets) == 2 and all(isinstance(c, TandemWebSocketProtocol) for c in sockets)

    def idle() -> bool:
        return all(
            isinstance(c.queue, SingleReaderQueue) and c.queue._items is None for c in sockets
        )

    deadline = time.monotonic() + 10  # the reader takes what it was given: wait for that
    while not idle():
        assert time.monotonic() < deadline, "the sockets' receive queues stayed non-empty"
        await asyncio.sleep(0.01)
    for c in sockets:
        assert c.request is None and c.response is None
        assert isinstance(c.writable, Flag) and c.writable.is_set() and c.writable._waiters is None
    seats = list(server.server.config.app.state.services.hub._seats)
    subscriptions = [
        s.subscription for s in seats if isinstance(s.subscription, MemorySubscription)
    ]
    assert len(subscriptions) == 2 and all(s._frames is None for s in subscriptions)
    await agent.send(b"answer")
    assert await asyncio.wait_for(customer.recv(), 5) == b"answer"
    await customer.close()
    await agent.close()


async def test_frames_framed_by_the_direct_send_arrive_whole_at_every_length_boundary(
    server: RunningServer,
) -> None:
    """The relay's direct send writes a frame's header itself (issue 17): payloads at each of
    the header's length boundaries (7-bit, 16-bit, 64-bit lengths) arrive byte for byte, both
    ways, and a client that checks frames strictly (websockets) accepts every one."""
    customer, agent, _ = await sharing_session(server)
    sizes = [1, 125, 126, 127, 65535, 65536, 70001]
    assert max(sizes) <= server.settings.max_payload_bytes
    for size in sizes:
        page = bytes(range(256)) * (size // 256) + bytes(size % 256)
        await customer.send(page)
        assert await asyncio.wait_for(agent.recv(), 5) == page
        command = page[::-1]
        await agent.send(command)
        assert await asyncio.wait_for(customer.recv(), 5) == command
    await customer.send(b"still open")
    assert await asyncio.wait_for(agent.recv(), 5) == b"still open"


def test_a_direct_send_falls_back_to_websockets_framing_while_a_frame_is_pending() -> None:
    """Bytes websockets framed and not yet written go first: the direct send then frames
    through websockets too, so the order on the wire is kept."""
    protocol = TandemWebSocketProtocol.__new__(TandemWebSocketProtocol)
    protocol.conn = Protocol(Side.SERVER, state=State.OPEN)
    protocol.transport = Transport()  # type: ignore[assignment]
    protocol.writable = Flag()
    protocol.writable.set()
    protocol.disconnected = protocol.close_sent = False
    protocol.handshake_complete = True
    protocol.initial_response = None
    protocol.conn.send_text(b"first")  # framed, not yet taken by data_to_send
    assert protocol.send_now(b"second") and protocol.send_now("third")
    client = Protocol(Side.CLIENT, state=State.OPEN)
    client.receive_data(b"".join(protocol.transport.written))  # type: ignore[attr-defined]
    frames = [(e.opcode, e.data) for e in client.events_received()]
    assert frames == [(Opcode.TEXT, b"first"), (Opcode.BINARY, b"second"), (Opcode.TEXT, b"third")]


class SplitTransport(Transport):
    """What the frame splitter's socket writes, and whether it paused reading."""

    def __init__(self) -> None:
        super().__init__()
        self.paused = False

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def frames(self) -> list[Frame]:
        """What the server wrote, read as a client reads it."""
        client = Protocol(Side.CLIENT, state=State.OPEN)
        client.receive_data(b"".join(self.written))
        return [event for event in client.events_received() if isinstance(event, Frame)]


def splitting_socket(max_size: int = 1 << 20) -> TandemWebSocketProtocol:
    """An accepted socket whose incoming frames are split by Tandem's protocol, as after the
    upgrade request (built without the event loop: only what receiving reads is set)."""
    protocol = TandemWebSocketProtocol.__new__(TandemWebSocketProtocol)
    protocol.conn = Protocol(Side.SERVER, state=State.OPEN, max_size=max_size)
    protocol.transport = SplitTransport()  # type: ignore[assignment]
    protocol.queue = SingleReaderQueue()  # type: ignore[assignment]
    protocol.frames = []
    protocol.curr_msg_data_type = "bytes"
    protocol.handshake_complete = True
    protocol.close_sent = protocol.read_paused = False
    protocol.pending_ping_payload = None
    protocol.close_timer = None
    protocol.splitting = True
    return protocol


def client_bytes(*sends: tuple[str, object]) -> bytes:
    """A browser's frames (masked) for ("binary" | "text" | "ping" | "fragment" | "last", data)."""
    client = Protocol(Side.CLIENT, state=State.OPEN)
    for kind, data in sends:
        if kind == "binary":
            client.send_binary(data)  # type: ignore[arg-type]
        elif kind == "text":
            client.send_text(str(data).encode())
        elif kind == "ping":
            client.send_ping(data)  # type: ignore[arg-type]
        elif kind == "fragment":
            client.send_binary(data, fin=False)  # type: ignore[arg-type]
        else:
            client.send_continuation(data, fin=True)  # type: ignore[arg-type]
    return b"".join(client.data_to_send())


def queued(protocol: TandemWebSocketProtocol) -> list[object]:
    items = []
    while not protocol.queue.empty():
        message = protocol.queue.get_nowait()
        items.append(message.get("bytes", message.get("text", message["type"])))
    return items


def test_frames_split_by_tandem_arrive_whole_and_in_order_however_the_bytes_are_cut() -> None:
    """The relay splits incoming frames itself (issue 17): whatever the TCP reads cut them into,
    every message reaches the application whole and in order, a ping is answered, and text,
    fragmented messages and control frames still go through websockets."""
    big = bytes(range(256)) * 273 + b"!"  # a 64-bit length header
    stream = client_bytes(
        ("binary", bytes(300)),
        ("text", "hello"),
        ("ping", b"p"),
        ("binary", b"m" * 126),  # a 16-bit length header
        ("binary", big),
        ("fragment", b"frag-"),
        ("last", b"ment"),
        ("binary", b"last"),
    )
    for cut in ([1], [2, 3, 7], [126, 1000], [len(stream)]):
        protocol = splitting_socket()
        position, n = 0, 0
        while position < len(stream):
            size = cut[n % len(cut)]
            protocol.data_received(stream[position : position + size])
            position, n = position + size, n + 1
        assert queued(protocol) == [bytes(300), "hello", b"m" * 126, big, b"frag-ment", b"last"], (
            f"cut into pieces of {cut}"
        )
        assert protocol.splitting and protocol.partial is None
        pongs = [f for f in protocol.transport.frames() if f.opcode is Opcode.PONG]  # type: ignore[attr-defined]
        assert [f.data for f in pongs] == [b"p"]


def test_the_direct_receive_takes_binary_frames_only_while_nothing_is_queued_before_them() -> None:
    """While the reader waits, page content goes to its receiver at once; a frame behind a
    queued message (a control message the reader has not handled yet) is queued after it, so
    the order holds; what the receiver declines, or leaves work for, goes to the reader."""
    protocol = splitting_socket()
    taken: list[bytes] = []

    def receiver(data: bytes) -> bool:
        taken.append(data)
        return True

    protocol.receiver = receiver
    protocol.data_received(client_bytes(("binary", b"A"), ("text", "T"), ("binary", b"B")))
    assert taken == [b"A"]
    assert queued(protocol) == ["T", b"B"]
    protocol.data_received(client_bytes(("binary", b"C")))
    assert taken == [b"A", b"C"] and protocol.queue.empty()

    protocol.receiver = lambda data: False  # declined: the reader takes it (and raises there)
    protocol.data_received(client_bytes(("binary", b"D")))
    assert queued(protocol) == [b"D"] and protocol.transport.paused  # type: ignore[attr-defined]

    async def store() -> None:
        return None

    pending = store()
    protocol.receiver = lambda data: pending  # taken, with work left for the reader
    protocol.data_received(client_bytes(("binary", b"E")))
    message = protocol.queue.get_nowait()
    assert message == {"type": AWAIT, "awaitable": pending}
    pending.close()


def test_frames_the_splitter_does_not_take_are_refused_by_websockets_with_its_close_codes() -> None:
    """A frame announcing more than the size limit is refused on its header (1009) before its
    payload is buffered; an unmasked frame, or a new message inside a fragmented one, is a
    protocol error (1002). The application is told the socket is gone."""
    cases = [
        (Frame(Opcode.BINARY, bytes(2000)).serialize(mask=True)[:20], 1009),
        (Frame(Opcode.BINARY, b"unmasked").serialize(mask=False), 1002),
        (  # a client library refuses to send this: framed by hand
            client_bytes(("fragment", b"a")) + Frame(Opcode.BINARY, b"b").serialize(mask=True),
            1002,
        ),
    ]
    for data, code in cases:
        protocol = splitting_socket(max_size=1000)
        protocol.data_received(data)
        closes = [f for f in protocol.transport.frames() if f.opcode is Opcode.CLOSE]  # type: ignore[attr-defined]
        assert len(closes) == 1 and Close.parse(closes[0].data).code == code
        assert protocol.transport.closed  # type: ignore[attr-defined]
        assert queued(protocol)[-1] == "websocket.disconnect"


async def test_a_failure_while_relaying_a_direct_frame_is_raised_in_the_sockets_task(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The direct receive relays from the protocol's data_received: an unexpected failure
    there (here the fan-out's publish) must not escape into the event loop's transport
    callback ("Fatal error on transport", outside the application). It is raised in the
    socket's own task, as on the queued path: the application logs the failed request, the
    customer's seat is cleaned up (the agent is told the customer left), and the server goes
    on serving."""
    customer, agent, _ = await sharing_session(server)
    hub = server.server.config.app.state.services.hub
    publish = hub.fanout.publish

    def failing(topic: str, frame: object) -> None:
        if getattr(frame, "data", None) == b"explode":
            raise RuntimeError("the fan-out failed")
        publish(topic, frame)

    monkeypatch.setattr(hub.fanout, "publish", failing)
    await customer.send(b"page")
    assert await asyncio.wait_for(agent.recv(), 5) == b"page"
    await customer.send(b"explode")
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(customer.recv(), 5)
    notice = json.loads(await asyncio.wait_for(agent.recv(), 5))
    assert notice["type"] in {"peer", "ended"}, notice
    assert not [r for r in caplog.records if r.name == "asyncio"], "failed outside the app"
    assert any(
        r.name == "tandem.http" and "request_failed" in r.getMessage() for r in caplog.records
    )
    monkeypatch.undo()
    customer2, agent2, _ = await sharing_session(server)  # the server still serves
    await customer2.send(b"again")
    assert await asyncio.wait_for(agent2.recv(), 5) == b"again"
    for ws in (agent, customer2, agent2):
        await ws.close()
