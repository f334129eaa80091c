"""Redis fan-out against the real Redis on 127.0.0.1:6379: the in-process behaviour, plus what
only several processes sharing one Redis can show (skipped when that Redis is not running;
failed instead under TANDEM_REQUIRE_SERVICES=1)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from tandem.exceptions import ConfigError
from tandem.fanout.base import FRAME_OVERHEAD, Frame, Overflow, Subscription
from tandem.fanout.redis import RedisFanout, decode_frame, encode_frame, redact_url
from tests.private_redis import PrivateRedis, running_private_redis


def frames(count: int) -> int:
    """A queue bound (bytes) holding ``count`` of these tests' small frames (up to 8 bytes)."""
    return count * (FRAME_OVERHEAD + 8)


HOST, PORT = "127.0.0.1", 6379
URL = f"redis://{HOST}:{PORT}/0"


pytestmark = pytest.mark.usefixtures("requires_redis")

Factory = Callable[..., Awaitable[RedisFanout]]


@pytest.fixture
def prefix() -> str:
    """A channel prefix (and client name) of this test alone, so parallel runs never collide."""
    return f"tandem-test-{uuid.uuid4().hex}:"


@pytest.fixture
async def make_fanout(prefix: str) -> AsyncIterator[Factory]:
    """Start RedisFanouts (each standing for one server process); all are closed afterwards."""
    started: list[RedisFanout] = []

    async def make(**options: Any) -> RedisFanout:
        options.setdefault("prefix", prefix)
        options.setdefault("client_name", prefix.rstrip(":"))
        fanout = await RedisFanout.connect(URL, **options)
        started.append(fanout)
        return fanout

    yield make
    for fanout in started:
        await fanout.close()


@pytest.fixture
async def fanout(make_fanout: Factory) -> RedisFanout:
    return await make_fanout()


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(URL)
    yield client
    await client.aclose()


async def get(subscription: Subscription) -> Frame:
    return await asyncio.wait_for(subscription.get(), 5)


async def numsub(redis: Redis, channel: str) -> int:
    [(_, count)] = await redis.pubsub_numsub(channel)
    assert isinstance(count, int)
    return count


async def has_subscribers(redis: Redis, channel: str, count: int) -> bool:
    return await numsub(redis, channel) == count


async def kill_pubsub(redis: Redis, prefix: str) -> None:
    """Kill this test's pub/sub connections only (CLIENT KILL TYPE pubsub, narrowed by the
    client name the test's fan-outs carry)."""
    clients = await redis.client_list(_type="pubsub")
    ids = [client["id"] for client in clients if client["name"] == prefix.rstrip(":")]
    assert ids
    for client_id in ids:
        await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub", "ID", client_id)


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# The behaviour of tests/fanout/test_memory.py


async def test_frames_arrive_in_order_for_every_subscriber(fanout: RedisFanout) -> None:
    a, b = fanout.subscribe("t", frames(10)), fanout.subscribe("t", frames(10))
    for i in range(3):
        fanout.publish("t", Frame(bytes([i])))
    for subscription in (a, b):
        assert [(await get(subscription)).data for _ in range(3)] == [b"\x00", b"\x01", b"\x02"]


async def test_topics_are_isolated(fanout: RedisFanout) -> None:
    a = fanout.subscribe("a", frames(10))
    fanout.subscribe("b", frames(10))
    fanout.publish("b", Frame("for b"))
    fanout.publish("a", Frame("for a"))
    assert (await get(a)).data == "for a"


async def test_a_full_queue_overflows_that_subscriber_only(fanout: RedisFanout) -> None:
    slow, fast = fanout.subscribe("t", frames(2)), fanout.subscribe("t", frames(10))
    for i in range(3):
        fanout.publish("t", Frame(str(i)))
    # Frames arrive from Redis asynchronously: once the fast one has all three, so has the slow.
    assert [(await get(fast)).data for _ in range(3)] == ["0", "1", "2"]
    with pytest.raises(Overflow):
        await get(slow)
    fanout.publish("t", Frame("3"))
    assert (await get(fast)).data == "3"


async def test_closed_subscription_receives_nothing_and_topic_is_freed(
    fanout: RedisFanout, redis: Redis, prefix: str
) -> None:
    subscription = fanout.subscribe("t", frames(10))
    await fanout.flush()
    assert await numsub(redis, prefix + "t") == 1
    subscription.close()
    subscription.close()
    fanout.publish("t", Frame("x"))
    await fanout.flush()
    assert fanout.subscriber_count("t") == 0
    await eventually(lambda: has_subscribers(redis, prefix + "t", 0))  # written, not confirmed


# Several processes on one Redis


async def test_two_processes_deliver_to_each_other(make_fanout: Factory) -> None:
    one, two = await make_fanout(), await make_fanout()
    on_one, on_two = one.subscribe("t", frames(10)), two.subscribe("t", frames(10))
    await one.flush()
    await two.flush()
    one.publish("t", Frame("from one"))
    await one.flush()
    two.publish("t", Frame("from two"))
    for subscription in (on_one, on_two):
        assert [(await get(subscription)).data for _ in range(2)] == ["from one", "from two"]


async def test_frames_round_trip_exactly(make_fanout: Factory) -> None:
    sender, receiver = await make_fanout(), await make_fanout()
    subscription = receiver.subscribe("t", 1 << 16)
    await receiver.flush()
    frames = [
        Frame("text with ünïcode ✓"),
        Frame(b"\x00\xff binary"),
        Frame(""),
        Frame(b""),
        Frame("bye", close=(4000, "session ended")),
        Frame(b"", close=(1013, "")),
    ]
    for frame in frames:
        sender.publish("t", frame)
    received = [await get(subscription) for _ in frames]
    assert received == frames
    assert [type(frame.data) for frame in received] == [type(frame.data) for frame in frames]
    assert all(frame.close is None or type(frame.close) is tuple for frame in received)


def test_frame_encoding_keeps_text_bytes_and_close_apart() -> None:
    for frame in (Frame("x"), Frame(b"x"), Frame("x", (1000, "done")), Frame(b"", (4001, "é"))):
        assert decode_frame(encode_frame(frame)) == frame
        assert type(decode_frame(encode_frame(frame)).data) is type(frame.data)


async def test_a_slow_subscriber_in_another_process_overflows_alone(
    make_fanout: Factory,
) -> None:
    sender, receiver = await make_fanout(), await make_fanout()
    slow, fast = receiver.subscribe("t", frames(5)), receiver.subscribe("t", frames(100))
    local = sender.subscribe("t", frames(100))
    await receiver.flush()
    for i in range(20):
        sender.publish("t", Frame(str(i)))
    expected = [str(i) for i in range(20)]
    assert [(await get(fast)).data for _ in range(20)] == expected
    assert [(await get(local)).data for _ in range(20)] == expected
    with pytest.raises(Overflow):
        await get(slow)


async def test_publish_never_waits(fanout: RedisFanout) -> None:
    subscription = fanout.subscribe("t", frames(20_000))
    queued = fanout._pending  # the subscription's own request is not counted
    started = time.thread_time()
    for i in range(10_000):
        fanout.publish("t", Frame(i.to_bytes(2, "big")))
    # No round trip per frame: every frame is still queued for the writer task, which has not
    # run (nothing was awaited), and queuing them took little CPU. CPU time of this thread, not
    # the wall clock, which a busy machine stretches.
    each = len(encode_frame(Frame(b"\0\0"))) + FRAME_OVERHEAD
    assert fanout._pending - queued == 10_000 * each
    assert time.thread_time() - started < 1.0
    received = [(await get(subscription)).data for _ in range(10_000)]
    assert received == [i.to_bytes(2, "big") for i in range(10_000)]
    assert fanout.dropped == 0


async def test_a_full_outgoing_buffer_drops_new_frames(make_fanout: Factory) -> None:
    """Bounded in bytes, not frames: ten frames of 1 KiB fill what a thousand tiny ones do not."""
    payload = b"x" * 1024
    size = len(encode_frame(Frame(payload))) + FRAME_OVERHEAD
    fanout = await make_fanout(max_pending_bytes=10 * size)
    subscription = fanout.subscribe("t", 100 * size)
    for _ in range(25):  # no await in between: the writer cannot send any of them yet
        fanout.publish("t", Frame(payload))
    assert fanout.dropped == 15
    assert [(await get(subscription)).data for _ in range(10)] == [payload] * 10


async def test_topics_are_freed_in_redis_after_the_last_close(
    make_fanout: Factory, redis: Redis, prefix: str
) -> None:
    one, two = await make_fanout(), await make_fanout()
    a, b, c = (
        one.subscribe("t", frames(10)),
        one.subscribe("t", frames(10)),
        two.subscribe("t", frames(10)),
    )
    await one.flush()
    await two.flush()
    assert await numsub(redis, prefix + "t") == 2  # one pub/sub connection per process
    a.close()
    await one.flush()
    assert await numsub(redis, prefix + "t") == 2  # b still listens: nothing was sent
    # An unsubscribe is written to Redis, not confirmed (flush waits for the writing only), and
    # Redis may answer the count on another connection before it has read it: wait for it.
    b.close()
    await one.flush()
    await eventually(lambda: has_subscribers(redis, prefix + "t", 1))
    c.close()
    await two.flush()
    await eventually(lambda: has_subscribers(redis, prefix + "t", 0))


async def test_close_fails_open_subscriptions_and_is_idempotent(make_fanout: Factory) -> None:
    fanout = await make_fanout()
    subscription = fanout.subscribe("t", frames(10))
    await fanout.close()
    await fanout.close()
    with pytest.raises(Overflow):
        await get(subscription)
    fanout.publish("t", Frame("after close"))  # dropped, never raises
    with pytest.raises(Overflow):
        await get(fanout.subscribe("t", frames(10)))


async def test_reconnects_after_the_pubsub_connection_is_killed(
    make_fanout: Factory, redis: Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "tandem.fanout.redis")
    sender, receiver = await make_fanout(), await make_fanout(reconnect_delay=0.05)
    before = receiver.subscribe("t", frames(10))
    await receiver.flush()
    sender.publish("t", Frame("before"))
    assert (await get(before)).data == "before"

    await kill_pubsub(redis, prefix)

    async def resubscribed() -> bool:
        return receiver.outages >= 1 and receiver.connected and await numsub(redis, channel) == 1

    channel = prefix + "t"
    await eventually(resubscribed)  # "t" still has a subscriber: resubscribed
    after = receiver.subscribe("t", frames(10))
    await receiver.flush()
    sender.publish("t", Frame("after"))
    assert (await get(after)).data == "after"
    assert (await get(before)).data == "after"  # the subscriber waited and is served again
    receiver.publish("t", Frame("own"))
    assert (await get(after)).data == "own"
    assert "connection lost" in caplog.text
    assert "reconnected" in caplog.text
    before.close()
    after.close()
    await receiver.flush()
    await eventually(lambda: has_subscribers(redis, prefix + "t", 0))  # written, not confirmed


async def test_a_writer_that_fails_unexpectedly_is_started_again_and_frames_flow(
    make_fanout: Factory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Something redis-py does not wrap (or a bug) raised in the writer: left dead, every later
    # frame would wait in the buffer and then be dropped while the process looked healthy.
    caplog.set_level(logging.WARNING, "tandem.fanout.redis")
    sender, receiver = await make_fanout(reconnect_delay=0.05), await make_fanout()
    subscription = receiver.subscribe("t", frames(10))
    await receiver.flush()
    send = sender._send
    failures = [RuntimeError("not a Redis error")]

    async def failing_once(batch: list[tuple[bytes, bytes]]) -> None:
        if failures:
            raise failures.pop()
        await send(batch)

    monkeypatch.setattr(sender, "_send", failing_once)
    sender.publish("t", Frame("lost with the failure"))
    await eventually(lambda: _true(sender.task_failures == 1))
    sender.publish("t", Frame("after"))
    assert (await get(subscription)).data == "after"
    assert "the Redis fan-out writer" in caplog.text and "not a Redis error" in caplog.text
    await sender.flush()  # a flush after the restart is answered too (it would wait for ever)


async def test_a_reader_that_fails_unexpectedly_while_reconnecting_is_started_again(
    make_fanout: Factory,
    redis: Redis,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "tandem.fanout.redis")
    sender, receiver = await make_fanout(), await make_fanout(reconnect_delay=0.05)
    subscription = receiver.subscribe("t", frames(10))
    await receiver.flush()
    open_pubsub = receiver._open_pubsub
    failures = [RuntimeError("not a Redis error")]

    async def failing_once() -> Any:
        if failures:
            raise failures.pop()
        return await open_pubsub()

    monkeypatch.setattr(receiver, "_open_pubsub", failing_once)
    await kill_pubsub(redis, prefix)

    async def resubscribed() -> bool:
        return receiver.connected and await numsub(redis, prefix + "t") == 1

    await eventually(resubscribed)
    assert receiver.task_failures == 1 and not failures
    sender.publish("t", Frame("after"))
    assert (await get(subscription)).data == "after"  # the subscriber waited and is served again
    assert "the Redis fan-out reader" in caplog.text


async def _true(value: bool) -> bool:
    return value


async def test_a_publishing_connection_closed_while_idle_loses_nothing(
    make_fanout: Factory, redis: Redis, prefix: str
) -> None:
    """Servers close idle clients (redis.conf ``timeout``); the next frames must still go out."""
    sender, receiver = await make_fanout(), await make_fanout()
    subscription = receiver.subscribe("t", frames(10))
    await receiver.flush()
    sender.publish("t", Frame("1"))
    assert (await get(subscription)).data == "1"
    ids = [
        client["id"]
        for client in await redis.client_list()
        if client["name"] == prefix.rstrip(":") and client["cmd"] == "publish"
    ]
    assert ids
    for client_id in ids:
        await redis.execute_command("CLIENT", "KILL", "ID", client_id)

    async def killed() -> bool:
        return not {client["id"] for client in await redis.client_list()} & set(ids)

    await eventually(killed)
    sender.publish("t", Frame("2"))
    assert (await get(subscription)).data == "2"
    assert sender.dropped == 0


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    yield from running_private_redis()


async def test_survives_redis_going_away_and_coming_back(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "tandem.fanout.redis")
    async with RedisFanout(
        private_redis.url, reconnect_delay=0.05, max_reconnect_delay=0.2, timeout=1
    ) as fanout:
        before = fanout.subscribe("t", frames(10))
        fanout.publish("t", Frame("before"))
        assert (await get(before)).data == "before"

        private_redis.stop()
        during = fanout.subscribe("t", frames(10))  # waits: served once Redis is back
        fanout.publish("t", Frame("lost"))
        await fanout.flush()
        assert fanout.dropped == 1

        async def several_reconnects_failed() -> bool:  # enough to reach the cap (0.2 s)
            return caplog.text.count("reconnecting failed") >= 3

        await eventually(several_reconnects_failed)
        assert not fanout.connected

        private_redis.start()

        async def reconnected() -> bool:
            return fanout.connected

        await eventually(reconnected)
        after = fanout.subscribe("t", frames(10))
        await fanout.flush()
        fanout.publish("t", Frame("after"))
        for subscription in (after, during, before):  # nobody was failed; "lost" is lost
            assert (await get(subscription)).data == "after"

    delays = [
        float(record.getMessage().rpartition("next attempt in ")[2].rstrip("s"))
        for record in caplog.records
        if "reconnecting failed" in record.getMessage()
    ]
    assert len(delays) >= 3
    assert delays == sorted(delays)
    assert max(delays) == 0.2  # capped
    assert "connection lost" in caplog.text
    assert "reconnected" in caplog.text
    assert "frames are dropped" in caplog.text
    assert "works again" in caplog.text


async def test_a_frozen_redis_holds_no_more_than_the_buffer_and_then_delivers(
    private_redis: PrivateRedis,
) -> None:
    """SIGSTOP: connections stay open and nothing is answered. Frames wait, within
    ``max_pending_bytes`` (the rest dropped and counted); once Redis runs again, what waited is
    delivered, in order, and nobody was failed."""
    payload = b"x" * 1000
    size = len(encode_frame(Frame(payload))) + FRAME_OVERHEAD
    async with RedisFanout(
        private_redis.url, max_pending_bytes=200 * size, timeout=30, ping_interval=0.2
    ) as fanout:
        subscription = fanout.subscribe("t", 10_000 * size)
        await fanout.flush()
        private_redis.pause()

        async def frozen() -> bool:
            return not fanout.responsive(0.5)

        await eventually(frozen)
        for i in range(1000):  # while the writer waits for a frozen Redis
            fanout.publish("t", Frame(i.to_bytes(2, "big") + payload))
            if i % 100 == 0:
                await asyncio.sleep(0.01)
        assert fanout._pending <= fanout.max_pending_bytes
        assert fanout.dropped >= 1000 - 200 - 1  # at most the buffer and one batch in flight
        private_redis.resume()
        received = []
        while len(received) < 1000 - fanout.dropped:
            received.append(int.from_bytes((await get(subscription)).data[:2], "big"))
        assert received == sorted(received) and received[0] == 0
        assert fanout.responsive(1.0)


async def test_unreachable_redis_is_a_config_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connection refused
        url = f"redis://user:secret@127.0.0.1:{port}/0"
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}") as caught:
            await RedisFanout.connect(url, timeout=1)
    assert "secret" not in str(caught.value)


async def test_an_invalid_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="ftp://nowhere"):
        await RedisFanout.connect("ftp://nowhere")


def test_passwords_are_redacted_from_urls() -> None:
    assert redact_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert redact_url("rediss://u:pw@h/0") == "rediss://u:***@h/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"


def test_using_it_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="start"):
        RedisFanout().publish("t", Frame("x"))


async def test_a_servers_idle_fanout_is_heard_well_within_the_tunnels_redis_window(
    prefix: str, tmp_path: Any
) -> None:
    """A server's fan-out (tandem.server.services) PINGs an idle Redis often enough that the
    tunnels' question "heard within ``redis_window``?" (1 s with the tests' fast tunnels) never
    meets an answer most of a window old: with a PING each second it was a full window old
    every second (Redis "did not answer" for a moment, on any host; often on a busy one).
    Samples taken late (this loop was starved) are not judged."""
    import contextlib

    from tandem.config import Settings
    from tandem.server.services import _open_fanout
    from tandem.tunnel import Liveness
    from tests.storage.conftest import PG_DSN

    settings = Settings.load(
        environ={},
        data_dir=tmp_path,
        redis_url=URL,
        redis_prefix=prefix,
        database_url=PG_DSN,  # required with a Redis; never opened here
        tunnel_heartbeat_seconds=0.25,
        tunnel_lost_seconds=2.0,
    )
    window = Liveness.of(settings).redis_window
    async with contextlib.AsyncExitStack() as stack:

        def on_leaving(close: Any, _what: str) -> None:  # as the server's stop is given it
            stack.push_async_callback(close)

        fanout = await _open_fanout(settings, on_leaving)
        # 60 samples (3 s: three PING intervals), each judged only when taken on time: a
        # starved loop (a busy machine) takes longer to gather them, not fewer.
        judged = []
        give_up = time.monotonic() + 120
        while len(judged) < 60 and time.monotonic() < give_up:
            before = time.monotonic()
            await asyncio.sleep(0.05)
            if time.monotonic() - before < 0.1:
                judged.append(fanout.responsive(0.6 * window))  # type: ignore[attr-defined]
        assert len(judged) == 60 and all(judged), judged


async def test_after_a_reconnect_it_says_connected_only_once_every_topic_is_subscribed_again(
    make_fanout: Factory, redis: Redis, prefix: str
) -> None:
    """Topics are subscribed again one after another once the pub/sub connection is back; a
    frame another process publishes before its topic's subscription is confirmed is lost. So
    the outage is not over (``connected``, on which the hub re-checks its sockets and tunnels
    report the link restored) until every topic is subscribed again: what is published after
    ``connected`` says so arrives."""
    sender, receiver = await make_fanout(), await make_fanout(reconnect_delay=0.05)
    topics = [f"t{n}" for n in range(300)]  # resubscribed one round trip each: a while
    subscriptions = [receiver.subscribe(topic, frames(10)) for topic in topics]
    await receiver.flush()
    await kill_pubsub(redis, prefix)
    deadline = time.monotonic() + 30
    while not (receiver.outages >= 1 and receiver.connected):
        assert time.monotonic() < deadline, "never reconnected"
        await asyncio.sleep(0)  # no later than the first moment it says so
    for topic in topics:
        sender.publish(topic, Frame(topic))
    await sender.flush()
    for topic, subscription in zip(topics, subscriptions, strict=True):
        assert (await get(subscription)).data == topic


async def test_topics_subscribed_while_down_or_while_resubscribing_are_subscribed_for_good(
    make_fanout: Factory, redis: Redis, prefix: str
) -> None:
    """A topic wanted while the pub/sub connection is down, or while the topics are being
    subscribed again after it came back, is subscribed once it is back: never left out."""
    sender = await make_fanout()
    receiver = await make_fanout(reconnect_delay=0.5, max_reconnect_delay=0.5)
    early = [receiver.subscribe(f"e{n}", frames(10)) for n in range(200)]
    await receiver.flush()
    await kill_pubsub(redis, prefix)
    await eventually(lambda: _true(not receiver.connected and receiver.outages >= 1))
    while_down = receiver.subscribe("down", frames(10))  # the connection is away for 0.5 s
    deadline = time.monotonic() + 30
    while receiver._pubsub is None:  # back, its 200 topics being subscribed again
        assert time.monotonic() < deadline, "never reconnected"
        await asyncio.sleep(0)
    assert not receiver.connected
    while_resubscribing = receiver.subscribe("during", frames(10))
    await eventually(lambda: _true(receiver.connected), timeout=30)
    await receiver.flush()
    for topic, subscription in (("down", while_down), ("during", while_resubscribing)):
        sender.publish(topic, Frame(topic))
        await sender.flush()
        assert (await get(subscription)).data == topic
        assert await numsub(redis, prefix + topic) == 1
    sender.publish("e199", Frame("last"))
    assert (await get(early[-1])).data == "last"


async def test_a_count_is_shared_by_every_process_and_goes_with_its_window(
    make_fanout: Factory, redis: Redis, prefix: str
) -> None:
    """One counter for all processes (the cluster's refusal budget, tandem.refusals): counts
    made at once are each counted once, and the counter expires a window after its first."""
    one, two = await make_fanout(), await make_fanout()
    counts = await asyncio.gather(*(f.count("k", 0.5) for f in (one, two) for _ in range(5)))
    assert sorted(counts) == list(range(1, 11))
    assert 0 < await redis.pttl(f"{prefix}count:k") <= 500
    assert await one.count("other", 60) == 1  # another key, its own count
    deadline = time.monotonic() + 10
    while await redis.exists(f"{prefix}count:k"):  # gone once its window passed (Redis's clock)
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert await two.count("k", 0.5) == 1  # a new window


async def test_a_count_without_redis_raises_at_once(
    private_redis: PrivateRedis, prefix: str
) -> None:
    fanout = await RedisFanout.connect(
        private_redis.url, prefix=prefix, reconnect_delay=0.05, max_reconnect_delay=0.2, timeout=1
    )
    try:
        assert await fanout.count("k", 60) == 1
        private_redis.stop()
        deadline = time.monotonic() + 10
        while fanout.connected:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        with pytest.raises(ConnectionError):
            await fanout.count("k", 60)
    finally:
        await fanout.close()
