"""In-process fan-out: delivery order, isolation, queues bounded in bytes."""

from __future__ import annotations

import asyncio

import pytest

from tandem.fanout.base import FRAME_OVERHEAD, Frame, Overflow, frame_size
from tandem.fanout.memory import MemoryFanout

SLOT = FRAME_OVERHEAD + 8
"""Room for one of these tests' small frames."""


async def test_frames_arrive_in_order_for_every_subscriber() -> None:
    fanout = MemoryFanout()
    a, b = fanout.subscribe("t", 10 * SLOT), fanout.subscribe("t", 10 * SLOT)
    for i in range(3):
        fanout.publish("t", Frame(bytes([i])))
    for subscription in (a, b):
        assert [(await subscription.get()).data for _ in range(3)] == [b"\x00", b"\x01", b"\x02"]


async def test_topics_are_isolated() -> None:
    fanout = MemoryFanout()
    a = fanout.subscribe("a", 10 * SLOT)
    fanout.subscribe("b", 10 * SLOT)
    fanout.publish("b", Frame("for b"))
    fanout.publish("a", Frame("for a"))
    assert (await a.get()).data == "for a"


async def test_a_full_queue_overflows_that_subscriber_only() -> None:
    fanout = MemoryFanout()
    slow, fast = fanout.subscribe("t", 2 * SLOT), fanout.subscribe("t", 10 * SLOT)
    for i in range(3):
        fanout.publish("t", Frame(str(i)))
    with pytest.raises(Overflow):
        await slow.get()
    assert [(await fast.get()).data for _ in range(3)] == ["0", "1", "2"]


async def test_the_bound_is_in_bytes_not_frames() -> None:
    """One large frame fills a queue that many small ones do not: a reader that fell behind
    by more than its bound overflows, however few frames that is, and nothing stays queued."""
    fanout = MemoryFanout()
    bound = 1024 * 1024
    small, large = fanout.subscribe("s", bound), fanout.subscribe("l", bound)
    for _ in range(1000):
        fanout.publish("s", Frame(b"x" * 100))
    assert small.queued_bytes == 1000 * (100 + FRAME_OVERHEAD) <= bound
    fanout.publish("l", Frame(b"x" * (bound // 2)))
    assert large.queued_bytes == bound // 2 + FRAME_OVERHEAD
    fanout.publish("l", Frame(b"x" * (bound // 2)))  # one frame more than the bound allows
    assert large.queued_bytes == 0  # dropped, not held
    assert fanout.queued_bytes() == small.queued_bytes
    with pytest.raises(Overflow):
        await large.take()
    assert len(await small.take()) == 1000


async def test_text_counts_its_utf8_bytes() -> None:
    assert frame_size(Frame("é" * 10)) == FRAME_OVERHEAD + 20
    assert frame_size(Frame(b"")) == FRAME_OVERHEAD  # empty frames are bounded too


async def test_take_hands_over_everything_queued_in_one_wake_up() -> None:
    fanout = MemoryFanout()
    subscription = fanout.subscribe("t", 100 * SLOT)
    waiting = asyncio.create_task(subscription.take())
    await asyncio.sleep(0)  # the writer waits on its one future
    for i in range(5):
        fanout.publish("t", Frame(str(i)))
    assert [frame.data for frame in await waiting] == ["0", "1", "2", "3", "4"]
    assert subscription.queued_bytes == 0
    fanout.publish("t", Frame("5"))
    assert [frame.data for frame in await subscription.take()] == ["5"]


async def test_an_overflow_wakes_a_waiting_writer() -> None:
    fanout = MemoryFanout()
    subscription = fanout.subscribe("t", SLOT)
    waiting = asyncio.create_task(subscription.take())
    await asyncio.sleep(0)
    subscription.overflow()
    with pytest.raises(Overflow):
        await waiting


async def test_a_bound_smaller_than_one_frame_is_refused() -> None:
    with pytest.raises(ValueError):
        MemoryFanout().subscribe("t", FRAME_OVERHEAD - 1)


async def test_closed_subscription_receives_nothing_and_topic_is_freed() -> None:
    fanout = MemoryFanout()
    subscription = fanout.subscribe("t", 10 * SLOT)
    subscription.close()
    subscription.close()
    fanout.publish("t", Frame("x"))
    assert fanout.subscriber_count("t") == 0
