"""tandem.lean: the relay's per-socket flag and receive queue behave like asyncio's Event and
Queue where the relay uses them, and hold no deque while nobody waits (issue 17: memory per idle
connection)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from tandem.lean import Flag, SingleReaderQueue


async def test_a_flag_wakes_every_waiter_and_stays_set() -> None:
    flag = Flag()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters) and not flag.is_set()
    flag.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert flag.is_set() and await flag.wait()  # set: returns at once
    flag.clear()
    assert not flag.is_set()


async def test_a_cancelled_wait_leaves_no_waiter_behind() -> None:
    flag = Flag()
    waiter = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not flag._waiters  # nothing kept for a task that stopped waiting
    other = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    flag.set()
    assert await other


async def test_the_queue_keeps_order_and_wakes_its_reader() -> None:
    queue: SingleReaderQueue[int] = SingleReaderQueue()
    reader = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert not reader.done()
    queue.put_nowait(1)
    queue.put_nowait(2)
    queue.put_nowait(3)
    assert await reader == 1
    assert queue.qsize() == 2 and not queue.empty()
    assert [await queue.get(), queue.get_nowait()] == [2, 3]
    assert queue.empty() and queue.qsize() == 0
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()


async def test_a_cancelled_get_loses_nothing() -> None:
    queue: SingleReaderQueue[str] = SingleReaderQueue()
    reader = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    queue.put_nowait("kept")
    assert await asyncio.wait_for(queue.get(), 5) == "kept"


async def test_a_second_concurrent_reader_is_an_error_not_a_lost_wake_up() -> None:
    queue: SingleReaderQueue[int] = SingleReaderQueue()
    first = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="already waiting"):
        await queue.get()
    queue.put_nowait(7)
    assert await first == 7


def test_idle_primitives_are_smaller_than_asyncios() -> None:
    """The point of the module: an idle flag and an empty queue hold no deque."""
    flag, queue = Flag(), SingleReaderQueue[int]()
    flag.set()
    queue.put_nowait(1)
    queue.get_nowait()
    assert flag._waiters is None and queue._items is None
    asyncio_event_deque = sys.getsizeof(asyncio.Event()._waiters)  # type: ignore[attr-defined]
    assert sys.getsizeof(flag) + sys.getsizeof(queue) < asyncio_event_deque / 4
