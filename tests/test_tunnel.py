"""The tunnel's owner side without a network: envelopes in, an endpoint run on them, replies out.
The fan-out here is the in-process one (the real Redis path, lost frames and killed processes
included, is tests/server/test_scale_out.py and tests/server/test_cluster_faults.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
from starlette.websockets import WebSocket

from tandem.crypto import system_entropy
from tandem.fanout.base import Frame
from tandem.fanout.memory import MemoryFanout
from tandem.tunnel import (
    Accepted,
    Beat,
    Closed,
    Data,
    Hangup,
    Liveness,
    Open,
    Resend,
    Send,
    TunnelHost,
    conn_topic,
    node_topic,
    tunnel,
)

encode = msgspec.msgpack.Encoder().encode
replies = msgspec.msgpack.Decoder(Accepted | Send | Closed | Beat | Resend)
SLOW = Liveness(heartbeat=30.0, lost=60.0, outage=120.0)
"""No beats during a test that does not look at them."""


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


async def sleep(ws: WebSocket) -> None:
    """An endpoint that accepts and never reads."""
    await ws.accept()
    await asyncio.Event().wait()


async def next_reply(subscription: Any, skip_beats: bool = True) -> Any:
    while True:
        frame = await asyncio.wait_for(subscription.get(), 2)
        reply = replies.decode(frame.data)
        if not (skip_beats and isinstance(reply, Beat)):
            return reply


class Host:
    def __init__(self, fanout: MemoryFanout, liveness: Liveness) -> None:
        self.fanout = fanout
        self.host = TunnelHost(
            None,  # type: ignore[arg-type]
            fanout,
            "n1",
            {"/ws/echo": echo, "/ws/sleep": sleep},
            1 << 20,
            liveness,
        )
        self.runner = asyncio.create_task(self.host.run())

    def send(self, envelope: Any) -> None:
        self.fanout.publish(node_topic("n1"), Frame(encode(envelope)))

    async def close(self) -> None:
        self.runner.cancel()
        await self.host.close()


@asynccontextmanager
async def hosting(liveness: Liveness, fanout: MemoryFanout | None = None) -> AsyncIterator[Host]:
    """A running host on ``fanout`` (a fresh in-process one unless given), closed on the way out."""
    running = Host(fanout or MemoryFanout(), liveness)
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def host() -> AsyncIterator[Host]:
    async with hosting(SLOW) as running:
        yield running


async def test_the_owner_runs_its_endpoint_on_a_tunnelled_socket(host: Host) -> None:
    out = host.fanout.subscribe(conn_topic("c1"), 1 << 20)
    host.send(Open("c1", "/ws/echo", [("x-who", "edge")], ("10.0.0.9", 5), "ws"))
    host.send(Data("c1", 1, b"hello", True))
    host.send(Data("c1", 2, b"\x00\x01\xff", False))
    assert await next_reply(out) == Accepted(1)
    assert await next_reply(out) == Send(2, b"edge:hello", True)
    assert await next_reply(out) == Send(3, b"\xff\x01\x00", False)
    host.send(Data("c1", 3, b"bye", True))
    assert await next_reply(out) == Closed(4, 4000, "bye")
    host.send(Data("c1", 4, b"late", True))  # after the close: dropped
    host.send(b"\x93not an envelope")  # ignored, the host goes on
    host.fanout.publish(node_topic("n1"), Frame(b"\x91" + b"\xb9" * 100))  # invalid UTF-8
    host.send(Open("c2", "/ws/nowhere", [], ("", 0), "ws"))
    host.send(Hangup("c9", 1000))  # an unknown socket: ignored
    # The host went on: a socket opened after all that is accepted.
    after = host.fanout.subscribe(conn_topic("c3"), 1 << 20)
    host.send(Open("c3", "/ws/echo", [], ("", 0), "ws"))
    assert await next_reply(after) == Accepted(1)
    assert host.runner.done() is False


async def test_a_hangup_ends_the_endpoint_and_its_reply_closes_the_edge(host: Host) -> None:
    out = host.fanout.subscribe(conn_topic("c1"), 1 << 20)
    host.send(Open("c1", "/ws/echo", [], ("", 0), "ws"))
    assert await next_reply(out) == Accepted(1)
    host.send(Hangup("c1", 1001))
    assert isinstance(await next_reply(out), Closed)  # the endpoint returned


async def test_an_endpoint_that_does_not_read_holds_a_bounded_inbox(host: Host) -> None:
    """The edge's frames wait for the endpoint within ``socket_queue_bytes`` (1 MiB here), in
    bytes: two frames of 600 KiB pass it, and the socket is closed 1013."""
    out = host.fanout.subscribe(conn_topic("c1"), 4 << 20)
    host.send(Open("c1", "/ws/sleep", [], ("", 0), "ws"))
    assert await next_reply(out) == Accepted(1)
    host.send(Data("c1", 1, b"x" * 600_000, False))
    host.send(Data("c1", 2, b"x" * 600_000, False))
    assert await next_reply(out) == Closed(2, 1013, "too fast: receive queue full")


async def test_lost_frames_are_asked_for_again_and_delivered_once_in_order(host: Host) -> None:
    """What Redis pub/sub loses while a connection is down: the owner sees a gap, asks for the
    frames after the last it had, and takes each once, in order; it resends its own on request
    and forgets those the edge confirmed."""
    out = host.fanout.subscribe(conn_topic("c1"), 1 << 20)
    host.send(Open("c1", "/ws/echo", [("x-who", "e")], ("", 0), "ws"))
    host.send(Data("c1", 1, b"one", True))
    assert await next_reply(out) == Accepted(1)
    assert await next_reply(out) == Send(2, b"e:one", True)
    host.send(Data("c1", 3, b"three", True))  # 2 was lost
    assert await next_reply(out) == Resend("c1", 1)
    host.send(Data("c1", 2, b"two", True))  # the edge resends everything after 1
    host.send(Data("c1", 3, b"three", True))
    host.send(Data("c1", 2, b"two", True))  # a duplicate: ignored
    assert await next_reply(out) == Send(3, b"e:two", True)
    assert await next_reply(out) == Send(4, b"e:three", True)
    # A beat saying more was sent than arrived: asked for again.
    host.send(Beat("c1", ack=2, sent=4))
    assert await next_reply(out) == Resend("c1", 3)
    # The edge lost the owner's frames after 2: they come again, in order.
    host.send(Resend("c1", 2))
    assert [await next_reply(out) for _ in range(2)] == [
        Send(3, b"e:two", True),
        Send(4, b"e:three", True),
    ]
    host.send(Beat("c1", ack=4, sent=3))  # all confirmed: nothing left to resend
    host.send(Resend("c1", 0))
    host.send(Data("c1", 4, b"four", True))
    assert await next_reply(out) == Send(5, b"e:four", True)


async def test_a_silent_edge_is_taken_for_gone_and_its_endpoint_ends() -> None:
    """The edge's process died (nothing heard for ``lost`` seconds while the fan-out works):
    the endpoint sees its socket go, as for a hangup; beats went out meanwhile."""
    async with hosting(Liveness(heartbeat=0.05, lost=0.4, outage=5.0)) as running:
        out = running.fanout.subscribe(conn_topic("c1"), 1 << 20)
        running.send(Open("c1", "/ws/echo", [], ("", 0), "ws"))
        opened = time.monotonic()
        assert await next_reply(out) == Accepted(1)
        beats = 0
        while not isinstance(reply := await next_reply(out, skip_beats=False), Closed):
            assert isinstance(reply, Beat)
            beats += 1
        waited = time.monotonic() - opened
        assert 0.4 <= waited < 1.5, waited
        assert beats >= 3
        assert running.host.tunnelled == 0


class AwayFanout(MemoryFanout):
    """An in-process fan-out that says whether Redis answers, as RedisFanout.responsive does."""

    def __init__(self) -> None:
        super().__init__()
        self.answers = True

    def responsive(self, within: float) -> bool:
        return self.answers


async def test_while_redis_is_away_silence_counts_for_nothing_until_the_outage_limit() -> None:
    fanout = AwayFanout()
    async with hosting(Liveness(heartbeat=0.05, lost=0.3, outage=1.0), fanout) as running:
        out = fanout.subscribe(conn_topic("c1"), 1 << 20)
        running.send(Open("c1", "/ws/echo", [], ("", 0), "ws"))
        assert await next_reply(out) == Accepted(1)
        fanout.answers = False
        away = time.monotonic()
        await asyncio.sleep(0.6)  # twice `lost`: not given up, Redis is away
        assert running.host.tunnelled == 1
        assert isinstance(await next_reply(out), Closed)  # past `outage`
        assert 1.0 <= time.monotonic() - away < 2.5


async def test_the_owner_keeps_a_closed_tunnel_until_the_edge_confirms_the_close() -> None:
    async with hosting(Liveness(heartbeat=0.05, lost=5.0, outage=5.0)) as running:
        out = running.fanout.subscribe(conn_topic("c1"), 1 << 20)
        running.send(Open("c1", "/ws/echo", [], ("", 0), "ws"))
        running.send(Data("c1", 1, b"bye", True))
        assert await next_reply(out) == Accepted(1)
        assert await next_reply(out) == Closed(2, 4000, "bye")
        running.send(Resend("c1", 1))  # the close was lost on the way: sent again
        assert await next_reply(out) == Closed(2, 4000, "bye")
        assert "c1" in running.host._sockets
        running.send(Beat("c1", ack=2, sent=1))
        deadline = time.monotonic() + 2
        while "c1" in running.host._sockets:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)


# The edge's side, on a real Starlette WebSocket fed by the test


class Client:
    """The browser's end of an accepted socket that the edge carries."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        scope = {
            "type": "websocket",
            "path": "/ws/echo",
            "headers": [(b"x-who", b"edge")],
            "client": ("10.0.0.1", 1),
            "scheme": "ws",
        }
        self.ws = WebSocket(scope, self.incoming.get, self.outgoing.put)

    async def accept(self) -> None:
        self.incoming.put_nowait({"type": "websocket.connect"})
        await self.ws.accept()
        assert (await self.outgoing.get())["type"] == "websocket.accept"

    def say(self, text: str) -> None:
        self.incoming.put_nowait({"type": "websocket.receive", "text": text})

    async def heard(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.outgoing.get(), 5)


class LosesFirstOpening(MemoryFanout):
    def __init__(self) -> None:
        super().__init__()
        self.lost = 0

    def publish(self, topic: str, frame: Frame) -> None:
        if topic == node_topic("n1") and not self.lost:
            self.lost += 1  # the opening (the first frame then reaches no tunnel)
            return
        super().publish(topic, frame)


@asynccontextmanager
async def carried(
    liveness: Liveness, fanout: MemoryFanout
) -> AsyncIterator[tuple[Host, Client, asyncio.Task[None]]]:
    """A host, and an accepted client socket whose first text "hi" the edge tunnels to the
    host's echo endpoint, with the same ``liveness`` on both ends; the edge's task is cancelled
    and the host closed on the way out."""
    async with hosting(liveness, fanout) as running:
        client = Client()
        await client.accept()
        edge = asyncio.create_task(
            tunnel(client.ws, fanout, "n1", "hi", system_entropy, 1 << 20, liveness)
        )
        try:
            yield running, client, edge
        finally:
            edge.cancel()


async def test_an_edge_sends_its_opening_again_when_it_was_lost() -> None:
    fanout = LosesFirstOpening()
    async with carried(Liveness(heartbeat=0.1, lost=5.0, outage=5.0), fanout) as (_, client, edge):
        assert await client.heard() == {"type": "websocket.send", "text": "edge:hi"}
        client.say("bye")
        assert await client.heard() == {"type": "websocket.close", "code": 4000, "reason": "bye"}
        await asyncio.wait_for(edge, 5)
        assert fanout.lost == 1


async def test_an_edge_whose_owner_goes_silent_closes_its_socket_saying_so() -> None:
    liveness = Liveness(heartbeat=0.05, lost=0.4, outage=5.0)
    async with carried(liveness, MemoryFanout()) as (running, client, edge):
        assert await client.heard() == {"type": "websocket.send", "text": "edge:hi"}
        running.runner.cancel()  # the owner's process stops answering (its endpoint still waits)
        silent = time.monotonic()
        assert await client.heard() == {
            "type": "websocket.close",
            "code": 4404,
            "reason": "session ended: its server stopped answering",
        }
        # The edge counts `lost` from the owner's last beat it heard, which came up to a
        # heartbeat before the owner stopped here (a run saw 0.394 s from the stop).
        assert liveness.lost - liveness.heartbeat <= time.monotonic() - silent < 1.5
        await asyncio.wait_for(edge, 5)


class SilentForAMoment(MemoryFanout):
    """Redis up, but this process stops hearing it from ``from_seconds`` after it is made for
    ``for_seconds`` (its reader starved on a saturated machine, or a frozen Redis)."""

    def __init__(self, from_seconds: float, for_seconds: float) -> None:
        super().__init__()
        self.made = time.monotonic()
        self.silence = (from_seconds, from_seconds + for_seconds)

    def responsive(self, within: float) -> bool:
        start, end = self.silence
        return not start <= time.monotonic() - self.made < end


@pytest.mark.parametrize(
    ("silent_for", "code"),
    [(0.3, 4404), (60.0, 1013)],
    ids=["redis-heard-again-not-found", "redis-silent-link-lost"],
)
async def test_an_edge_whose_owner_never_takes_the_socket_says_not_found_only_if_redis_answers(
    monkeypatch: pytest.MonkeyPatch, silent_for: float, code: int
) -> None:
    """The owner named by the database is gone (a crash): after the accept wait (0.3 s here),
    4404 "session not found" (final) when Redis answers, even if this process hears it again
    only a moment after the wait (it was too busy to read); 1013 "server link lost" (try again)
    when Redis stays silent."""
    client = Client()
    await client.accept()
    fanout = SilentForAMoment(0.15, silent_for)  # heard at the start, not at the deadline
    liveness = Liveness(heartbeat=0.1, lost=1.0, outage=5.0, accept=0.3)  # answers: 0.5 s
    edge = asyncio.create_task(
        tunnel(client.ws, fanout, "gone", "hi", system_entropy, 1 << 20, liveness)
    )
    closed = await asyncio.wait_for(client.outgoing.get(), 5)
    assert closed["type"] == "websocket.close" and closed["code"] == code, closed
    await asyncio.wait_for(edge, 5)


class SilentOnce(MemoryFanout):
    """Redis up; once ``silence()`` is called, the next ``responsive`` says it was not heard (a
    process too busy to read Redis for a moment: its reader catches up at once), or each one
    while ``away`` (a frozen Redis)."""

    def __init__(self) -> None:
        super().__init__()
        self.silent_checks = 0
        self.away = False

    def silence(self) -> None:
        self.silent_checks = 1

    def responsive(self, within: float) -> bool:
        if self.away:
            return False
        if self.silent_checks:
            self.silent_checks -= 1
            return False
        return True


async def link_changes_until(changes: list[bool], expected: list[bool]) -> None:
    deadline = time.monotonic() + 5
    while changes != expected:
        assert time.monotonic() < deadline, (changes, expected)
        await asyncio.sleep(0.02)


async def test_the_owner_says_redis_is_away_only_when_silent_at_two_beats_in_a_row() -> None:
    """One beat finding Redis silent (this process did not run its reader for a moment) tells
    no one; silence at the next beat too does (on_link_change: the hub tells the sockets whose
    peer is tunnelled), and the first beat that hears it again says it is back."""
    fanout = SilentOnce()
    async with hosting(Liveness(heartbeat=0.05, lost=5.0, outage=30.0), fanout) as running:
        changes: list[bool] = []
        running.host.on_link_change = changes.append
        for _ in range(3):
            fanout.silence()
            while fanout.silent_checks:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.15)  # three more beats
        assert changes == []
        fanout.away = True
        await link_changes_until(changes, [True])
        fanout.away = False
        await link_changes_until(changes, [True, False])


async def test_an_edge_tells_its_socket_the_link_is_down_only_when_silent_at_two_beats() -> None:
    """As at the owner: a socket carried to another process hears ``link`` ``reconnecting``
    when Redis was silent at two of its tunnel's beats in a row, not at one."""
    fanout = SilentOnce()
    edge_liveness = Liveness(heartbeat=0.05, lost=30.0, outage=30.0)
    async with hosting(SLOW, fanout):  # the owner never beats: only the edge asks
        client = Client()
        await client.accept()
        edge = asyncio.create_task(
            tunnel(client.ws, fanout, "n1", "hi", system_entropy, 1 << 20, edge_liveness)
        )
        try:
            assert await client.heard() == {"type": "websocket.send", "text": "edge:hi"}
            for _ in range(3):
                fanout.silence()
                while fanout.silent_checks:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.15)
            assert client.outgoing.empty(), client.outgoing.get_nowait()
            fanout.away = True
            notice = await client.heard()
            assert json.loads(notice["text"]) == {"v": 1, "type": "link", "state": "reconnecting"}
            fanout.away = False
            notice = await client.heard()
            assert json.loads(notice["text"]) == {"v": 1, "type": "link", "state": "restored"}
        finally:
            edge.cancel()


@pytest.mark.parametrize(
    ("silent_for", "heard"),
    [
        (0.3, {"type": "websocket.send", "text": "edge:hi"}),
        (60.0, {"type": "websocket.close", "code": 1013, "reason": "server link lost: reconnect"}),
    ],
    ids=["redis-heard-again-carried", "redis-silent-link-lost"],
)
async def test_an_edge_opens_its_tunnel_when_redis_is_heard_again_a_moment_later(
    silent_for: float, heard: dict[str, Any]
) -> None:
    """At the opening, Redis not heard for a moment (this process was too busy to read it)
    is not "server link lost": the socket is carried once Redis is heard again within the
    window (0.5 s here); it is told 1013 (try again) only when Redis stays silent."""
    fanout = SilentForAMoment(0.0, silent_for)
    liveness = Liveness(heartbeat=0.1, lost=1.0, outage=5.0)  # "answers": heard within 0.5 s
    async with carried(liveness, fanout) as (_, client, edge):
        assert await client.heard() == heard
        if heard["type"] == "websocket.close":
            await asyncio.wait_for(edge, 5)


async def test_a_beat_that_fails_stops_the_entrance_and_its_supervisor_starts_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Something unexpected in the beat: left dead alone, the beats would stop and every edge
    take this process for silent and hang up (while the inbox went on and all looked fine).
    The entrance fails whole, with the beat's own exception, and is started again."""
    from tandem import tunnel as tunnel_module
    from tandem.supervise import Supervisor

    answers = tunnel_module.redis_answers
    failures = [RuntimeError("a bug in the beat")]

    def failing_once(fanout: Any, within: float) -> bool:
        if failures:
            raise failures.pop()
        return answers(fanout, within)

    monkeypatch.setattr(tunnel_module, "redis_answers", failing_once)
    fanout = MemoryFanout()
    host = TunnelHost(
        None,  # type: ignore[arg-type]
        fanout,
        "n1",
        {"/ws/echo": echo},
        1 << 20,
        Liveness(heartbeat=0.05, lost=30.0, outage=60.0),
    )
    out = fanout.subscribe(conn_topic("c1"), 1 << 20)
    async with Supervisor(backoff_first=0.01, backoff_max=0.01) as supervisor:
        supervisor.keep_running("tunnel_entrance", host.run)
        fanout.publish(node_topic("n1"), Frame(encode(Open("c1", "/ws/echo", [], ("", 0), "ws"))))
        assert await next_reply(out) == Accepted(1)
        beats = 0
        while beats < 3 or failures:  # beats after the failure, from the started-again beat
            assert isinstance(await next_reply(out, skip_beats=False), Beat)
            beats += 0 if failures else 1
        health = supervisor.health["tunnel_entrance"]
        assert (health.failures, health.last_error) == (1, "RuntimeError")
        # The inbox was started again too: a socket opened now is taken.
        after = fanout.subscribe(conn_topic("c2"), 1 << 20)
        fanout.publish(node_topic("n1"), Frame(encode(Open("c2", "/ws/echo", [], ("", 0), "ws"))))
        assert await next_reply(after) == Accepted(1)
    await host.close()
