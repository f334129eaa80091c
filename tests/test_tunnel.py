"""The tunnel's owner side without a network: envelopes in, an endpoint run on them, replies out.
The fan-out here is the in-process one (the real Redis path is tests/server/test_scale_out.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from starlette.websockets import WebSocket

from tandem.fanout.base import Frame, Overflow
from tandem.fanout.memory import MemoryFanout
from tandem.tunnel import (
    Accepted,
    Closed,
    Data,
    Hangup,
    Open,
    Send,
    TunnelHost,
    conn_topic,
    node_topic,
)

encode = msgspec.msgpack.Encoder().encode
replies = msgspec.msgpack.Decoder(Accepted | Send | Closed)


async def echo(ws: WebSocket) -> None:
    """An endpoint that accepts, echoes text and bytes, and closes on "bye"."""
    await ws.accept()
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "bye":
            await ws.close(4000, "bye")
            return
        if message.get("text") is not None:
            await ws.send_text(f"{ws.headers['x-who']}:{message['text']}")
        else:
            await ws.send_bytes(message["bytes"][::-1])


async def next_reply(subscription: Any) -> Any:
    frame = await asyncio.wait_for(subscription.get(), 2)
    return replies.decode(frame.data)


async def test_the_owner_runs_its_endpoint_on_a_tunnelled_socket() -> None:
    fanout = MemoryFanout()
    host = TunnelHost(None, fanout, "n1", {"/ws/echo": echo}, 1 << 20)  # type: ignore[arg-type]
    runner = asyncio.create_task(host.run())
    out = fanout.subscribe(conn_topic("c1"), 1 << 20)
    inbox = node_topic("n1")
    opening = Open("c1", "/ws/echo", [("x-who", "edge")], ("10.0.0.9", 5), "ws")
    fanout.publish(inbox, Frame(encode(opening)))
    fanout.publish(inbox, Frame(encode(Data("c1", b"hello", True))))
    fanout.publish(inbox, Frame(encode(Data("c1", b"\x00\x01\xff", False))))
    assert isinstance(await next_reply(out), Accepted)
    assert await next_reply(out) == Send(b"edge:hello", True)
    assert await next_reply(out) == Send(b"\xff\x01\x00", False)
    fanout.publish(inbox, Frame(encode(Data("c1", b"bye", True))))
    assert await next_reply(out) == Closed(4000, "bye")
    fanout.publish(inbox, Frame(encode(Data("c1", b"late", True))))  # after the close: dropped
    fanout.publish(inbox, Frame(b"\x93not an envelope"))  # ignored, the host goes on
    fanout.publish(inbox, Frame(b"\x91" + b"\xb9" * 100))  # invalid UTF-8 (found by atheris)
    fanout.publish(inbox, Frame(encode(Open("c2", "/ws/nowhere", [], ("", 0), "ws"))))
    fanout.publish(inbox, Frame(encode(Hangup("c9", 1000))))  # an unknown socket: ignored
    # The host went on: a socket opened after all that is accepted.
    after = fanout.subscribe(conn_topic("c3"), 1 << 20)
    fanout.publish(inbox, Frame(encode(Open("c3", "/ws/echo", [], ("", 0), "ws"))))
    assert isinstance(await next_reply(after), Accepted)
    assert runner.done() is False
    runner.cancel()
    await host.close()


async def test_a_hangup_ends_the_endpoint_and_its_reply_closes_the_edge() -> None:
    fanout = MemoryFanout()
    host = TunnelHost(None, fanout, "n1", {"/ws/echo": echo}, 1 << 20)  # type: ignore[arg-type]
    runner = asyncio.create_task(host.run())
    out = fanout.subscribe(conn_topic("c1"), 1 << 20)
    fanout.publish(node_topic("n1"), Frame(encode(Open("c1", "/ws/echo", [], ("", 0), "ws"))))
    assert isinstance(await next_reply(out), Accepted)
    fanout.publish(node_topic("n1"), Frame(encode(Hangup("c1", 1001))))
    assert isinstance(await next_reply(out), Closed)  # the endpoint returned
    runner.cancel()
    await host.close()


class LosingFanout(MemoryFanout):
    """An in-process fan-out whose first subscriptions to the node topic report lost frames,
    as Redis's do while its connection is down."""

    def __init__(self, losses: int) -> None:
        super().__init__()
        self.losses = losses
        self.subscriptions = 0

    def subscribe(self, topic: str, maxsize: int) -> Any:
        subscription = super().subscribe(topic, maxsize)
        if topic.startswith("node:"):
            self.subscriptions += 1
            if self.subscriptions <= self.losses:

                async def lost() -> Frame:
                    raise Overflow

                subscription.get = lost  # type: ignore[method-assign]
        return subscription


async def test_lost_frames_close_tunnels_and_listening_resumes_without_spinning() -> None:
    fanout = LosingFanout(losses=3)
    host = TunnelHost(None, fanout, "n1", {"/ws/echo": echo}, 1 << 20)  # type: ignore[arg-type]
    host.retry_seconds = 0.1
    started = time.monotonic()
    runner = asyncio.create_task(host.run())
    deadline = started + 5
    while fanout.subscriptions < 4:  # three lost, then one that listens
        assert time.monotonic() < deadline, "the host did not subscribe again"
        await asyncio.sleep(0.01)
    # One retry per pause, not thousands: three pauses passed, and it stopped there.
    assert time.monotonic() - started >= 3 * host.retry_seconds
    assert fanout.subscriptions == 4
    out = fanout.subscribe(conn_topic("c1"), 1 << 20)
    fanout.publish(node_topic("n1"), Frame(encode(Open("c1", "/ws/echo", [], ("", 0), "ws"))))
    assert isinstance(await next_reply(out), Accepted)  # listening again
    runner.cancel()
    await host.close()
