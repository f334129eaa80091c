"""A WebSocket load client fast enough to saturate one server core from one client core.

No library on the frame path: the upgrade is written by hand, outgoing frames are pre-built
(masked with the all-zero key, which servers accept, so the payload needs no XOR), and incoming
frames are counted by reading their headers only. Text frames (Tandem's control messages) are
decoded as JSON and queued for the set-up code (a close queues ``{"type": "closed"}`` there
too). Binary payloads that carry a send time (first 8 bytes, `time.perf_counter_ns()`) give
one-way latencies: client and server share one clock.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import time
from collections.abc import Callable
from typing import Any

TEXT, BINARY, CLOSE, PING, PONG = 1, 2, 8, 9, 10


def frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (mask key 0000: the payload goes as is)."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return header + b"\0\0\0\0" + payload


def stamped(size: int) -> bytes:
    """A binary frame of `size` payload bytes whose first 8 are the time now."""
    return frame(BINARY, struct.pack("!Q", time.perf_counter_ns()) + bytes(size - 8))


class Connection(asyncio.Protocol):
    """One client WebSocket. `received` counts binary frames; `on_binary` (if set) sees each."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.texts: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.received = 0
        self.on_binary: Callable[[memoryview], None] | None = None
        self.progress: asyncio.Event | None = None  # set whenever binary frames arrive
        self.closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.writable = asyncio.Event()
        self.writable.set()

    @classmethod
    async def open(cls, port: int, path: str, headers: dict[str, str] | None = None) -> Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(cls, "127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        assert connection.transport is not None
        connection.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await asyncio.wait_for(connection.upgraded, 180)  # a busy machine: generous
        return connection

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("closed before the upgrade"))
        if not self.closed.done():
            self.closed.set_result(1006)
            self.texts.put_nowait({"type": "closed", "code": 1006})
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buffer[: buffer.find(b"\r\n")])
            del buffer[: end + 4]
            if b" 101 " not in status:
                self.upgraded.set_exception(ConnectionError(status.decode(errors="replace")))
                return
            self.upgraded.set_result(None)
        position, size, counted = 0, len(buffer), self.received
        view = memoryview(buffer)
        try:
            while size - position >= 2:
                length = buffer[position + 1] & 0x7F
                start = position + 2
                if length == 126:
                    if size - position < 4:
                        break
                    length = int.from_bytes(buffer[start : start + 2], "big")
                    start += 2
                elif length == 127:
                    if size - position < 10:
                        break
                    length = int.from_bytes(buffer[start : start + 8], "big")
                    start += 8
                end = start + length
                if end > size:
                    break
                opcode = buffer[position] & 0x0F
                if opcode == BINARY:
                    self.received += 1
                    if self.on_binary is not None:
                        self.on_binary(view[start:end])
                elif opcode == TEXT:
                    self.texts.put_nowait(json.loads(bytes(view[start:end])))
                elif opcode == PING:
                    self.send(frame(PONG, bytes(view[start:end])))
                elif opcode == CLOSE:
                    code = int.from_bytes(buffer[start : start + 2], "big") if length >= 2 else 1005
                    reason = bytes(view[start + 2 : end]).decode(errors="replace")
                    if not self.closed.done():
                        self.closed.set_result(code)
                        # A reader waiting for a control message learns it will not come.
                        self.texts.put_nowait({"type": "closed", "code": code, "reason": reason})
                position = end
        finally:
            view.release()
        del buffer[:position]
        if self.progress is not None and self.received != counted:
            self.progress.set()

    # Use

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def send_json(self, **message: Any) -> None:
        self.send(frame(TEXT, json.dumps({"v": 1, **message}).encode()))

    async def next_json(self, timeout: float = 30) -> dict[str, Any]:
        return await asyncio.wait_for(self.texts.get(), timeout)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.send(frame(CLOSE, struct.pack("!H", 1000)))
            self.transport.close()


def latency_recorder(latencies: list[float]) -> Callable[[memoryview], None]:
    """A callback for `Connection.on_binary` that records each stamped frame's age in ms."""

    def record(payload: memoryview) -> None:
        sent = struct.unpack_from("!Q", payload)[0]
        latencies.append((time.perf_counter_ns() - sent) / 1e6)

    return record
