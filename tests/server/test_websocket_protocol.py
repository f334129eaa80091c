"""Stopping the server while a peer's close is under way closes that socket quietly."""

from __future__ import annotations

import asyncio

from websockets.frames import Close, Frame, Opcode
from websockets.protocol import Protocol, Side, State

from tandem.server.websocket_protocol import TandemWebSocketProtocol


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
