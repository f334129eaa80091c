"""Back-pressure (issue 13 fault 8, issue 14 item 5): a socket's queue is bounded in bytes, and
a peer that stops reading is dropped with 1013 (its side told) while the customer never stalls.

The slow agent is a raw WebSocket client on a socket with a small receive buffer that stops
reading once it has joined: the server's sends to it block, as they do for a frozen browser."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosedOK
from websockets.frames import Close, Opcode
from websockets.http11 import Response
from websockets.typing import Origin
from websockets.uri import parse_uri

from tandem.fanout.memory import MemoryFanout
from tests.conftest import RunningServer, ServerFactory
from tests.server.helpers import login_cookie, open_agent, recv_json, send, start_session

QUEUE_BYTES = 2 * 1024 * 1024
SEND_TIMEOUT = 1.0
CHUNK = 256 * 1024


class StalledClient:
    """A WebSocket client that reads only when told to (websockets' sans-I/O protocol on a plain
    non-blocking socket with a 4 KiB receive buffer)."""

    def __init__(self, server: Any, path: str, cookie: str) -> None:
        """``server``: anything with ``ws_base`` and ``origin`` (ws://127.0.0.1:<port>)."""
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.setblocking(False)
        self.protocol = ClientProtocol(
            parse_uri(f"{server.ws_base}{path}"), origin=Origin(server.origin), max_size=None
        )
        self.request = self.protocol.connect()
        self.request.headers["Cookie"] = f"tandem_agent={cookie}"
        self.port = int(server.ws_base.rsplit(":", 1)[1])
        self.received_bytes = 0
        self.close: Close | None = None
        self.eof = False

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.sock_connect(self.sock, ("127.0.0.1", self.port))
        self.protocol.send_request(self.request)
        await self._flush()
        events = await self._read_events()
        assert isinstance(events[0], Response) and events[0].status_code == 101

    async def _flush(self) -> None:
        data = b"".join(self.protocol.data_to_send())
        if data:
            await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def _read_events(self) -> list[Any]:
        events: list[Any] = []
        while not events and not self.eof:
            data = await asyncio.wait_for(
                asyncio.get_running_loop().sock_recv(self.sock, 65536), 10
            )
            if not data:
                self.eof = True
                self.protocol.receive_eof()
            else:
                self.protocol.receive_data(data)
            events = self.protocol.events_received()
            await self._flush()  # pongs and the close echo
        return events

    async def send_json(self, **message: Any) -> None:
        self.protocol.send_text(json.dumps({"v": 1, **message}).encode())
        await self._flush()

    async def next_json(self) -> dict[str, Any]:
        while True:
            for event in await self._read_events():
                if event.opcode is Opcode.TEXT:
                    message: dict[str, Any] = json.loads(event.data)
                    return message

    async def read_to_the_end(self) -> None:
        """Read everything the server sent, until its close frame (or the connection ends)."""
        while self.close is None and not self.eof:
            for event in await self._read_events():
                if event.opcode in (Opcode.BINARY, Opcode.TEXT, Opcode.CONT):
                    self.received_bytes += len(event.data)
                elif event.opcode is Opcode.CLOSE:
                    self.close = Close.parse(event.data)

    def shut(self) -> None:
        self.sock.close()


def fanout_of(server: RunningServer) -> MemoryFanout:
    fanout = server.server.config.app.state.services.fanout
    fanout = getattr(fanout, "inner", fanout)  # inside the metrics' counting wrapper
    assert isinstance(fanout, MemoryFanout)
    return fanout


async def test_an_agent_that_stops_reading_is_dropped_and_the_customer_never_stalls(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        socket_queue_bytes=QUEUE_BYTES, socket_send_timeout_seconds=SEND_TIMEOUT
    )
    customer, created = await start_session(server)
    agent = StalledClient(server, "/ws/agent", login_cookie(server))
    try:
        await agent.open()
        await agent.send_json(type="join", code=created["code"])
        assert (await agent.next_json())["type"] == "joined"
        assert (await recv_json(customer))["type"] == "agent_joined"
        await send(customer, type="consent", granted=True)
        # From here on the agent reads nothing. The customer shares 24 MiB of page content:
        # far more than the agent's queue, the kernel's buffers and the transport's together.
        fanout = fanout_of(server)
        most_queued = 0
        started = time.monotonic()
        slowest_send = 0.0
        sends = 0
        for _ in range(96):
            before = time.monotonic()
            try:
                await customer.send(b"\x00" * CHUNK)
            except ConnectionClosedOK:
                # The agent was dropped and the session ended while the customer was still
                # sending (a loaded machine sends slower than the relay drops): the notices
                # below were received before the close.
                break
            sends += 1
            slowest_send = max(slowest_send, time.monotonic() - before)
            most_queued = max(most_queued, fanout.queued_bytes())
        sent_for = time.monotonic() - started
        # The customer is told the agent was dropped, then the session ends (agent lost).
        notice = await recv_json(customer, timeout=SEND_TIMEOUT + 5)
        assert notice["type"] == "error" and notice["code"] == "peer_too_slow", notice
        assert (await recv_json(customer)) == {"v": 1, "type": "ended", "reason": "agent_lost"}
        dropped_after = time.monotonic() - started
        # Memory stayed bounded: never more than the queue's bound waited for the agent.
        assert most_queued <= QUEUE_BYTES
        # The customer's last frames (its close) may still wait for its writer: drained soon.
        deadline = time.monotonic() + 5
        while fanout.queued_bytes() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert fanout.queued_bytes() == 0
        # The customer never waited for the agent (sends are local round trips, not timeouts).
        assert slowest_send < SEND_TIMEOUT, slowest_send
        assert dropped_after < sent_for + SEND_TIMEOUT + 5
        # The agent, reading again, finds some of the content and then a 1013 close.
        await agent.read_to_the_end()
        assert agent.close is not None and agent.close.code == 1013, agent.close
        assert agent.received_bytes < sends * CHUNK
    finally:
        agent.shut()


async def test_a_customer_that_stops_reading_is_dropped_and_the_agent_is_told(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        socket_queue_bytes=QUEUE_BYTES, socket_send_timeout_seconds=SEND_TIMEOUT
    )
    customer = StalledClient(server, "/ws/customer", "")
    try:
        await customer.open()
        await customer.send_json(type="create")
        created = await customer.next_json()
        agent = await open_agent(server, login_cookie(server))
        await send(agent, type="join", code=created["code"])
        assert (await recv_json(agent))["type"] == "joined"
        assert (await customer.next_json())["type"] == "agent_joined"
        await customer.send_json(type="consent", granted=True)
        assert (await recv_json(agent))["type"] == "consent"
        # The customer's page stops reading; the agent's console sends it 12 MiB.
        for _ in range(48):
            await agent.send(b"\x01" * CHUNK)
            assert fanout_of(server).queued_bytes() <= QUEUE_BYTES
        notices = [await recv_json(agent, timeout=SEND_TIMEOUT + 5) for _ in range(2)]
        assert notices[0]["type"] == "error" and notices[0]["code"] == "peer_too_slow", notices
        assert notices[1] == {"v": 1, "type": "peer", "connected": False}  # it may resume
        await customer.read_to_the_end()
        assert customer.close is not None and customer.close.code == 1013, customer.close
    finally:
        customer.shut()
