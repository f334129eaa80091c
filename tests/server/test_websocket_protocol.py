"""Tandem's WebSocket protocol under uvicorn: stopping the server while a peer's close is under
way closes that socket quietly; an accepted socket keeps little memory."""

from __future__ import annotations

import asyncio
import time

from websockets.frames import Close, Frame, Opcode
from websockets.protocol import Protocol, Side, State

from tandem.fanout.memory import MemorySubscription
from tandem.lean import Flag, SingleReaderQueue
from tandem.server.websocket_protocol import TandemWebSocketProtocol
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
