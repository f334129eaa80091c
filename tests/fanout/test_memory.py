"""In-process fan-out: delivery order, isolation, bounded queues."""

from __future__ import annotations

import pytest

from tandem.fanout.base import Frame, Overflow
from tandem.fanout.memory import MemoryFanout


async def test_frames_arrive_in_order_for_every_subscriber() -> None:
    fanout = MemoryFanout()
    a, b = fanout.subscribe("t", 10), fanout.subscribe("t", 10)
    for i in range(3):
        fanout.publish("t", Frame(bytes([i])))
    for subscription in (a, b):
        assert [(await subscription.get()).data for _ in range(3)] == [b"\x00", b"\x01", b"\x02"]


async def test_topics_are_isolated() -> None:
    fanout = MemoryFanout()
    a = fanout.subscribe("a", 10)
    fanout.subscribe("b", 10)
    fanout.publish("b", Frame("for b"))
    fanout.publish("a", Frame("for a"))
    assert (await a.get()).data == "for a"


async def test_a_full_queue_overflows_that_subscriber_only() -> None:
    fanout = MemoryFanout()
    slow, fast = fanout.subscribe("t", 2), fanout.subscribe("t", 10)
    for i in range(3):
        fanout.publish("t", Frame(str(i)))
    with pytest.raises(Overflow):
        await slow.get()
    assert [(await fast.get()).data for _ in range(3)] == ["0", "1", "2"]


async def test_closed_subscription_receives_nothing_and_topic_is_freed() -> None:
    fanout = MemoryFanout()
    subscription = fanout.subscribe("t", 10)
    subscription.close()
    subscription.close()
    fanout.publish("t", Frame("x"))
    assert fanout.subscriber_count("t") == 0
