"""In-process fan-out: the embedded default for a single server process."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from tandem.fanout.base import Frame, Overflow

_OVERFLOWED = Frame(b"")


class MemorySubscription:
    def __init__(self, owner: MemoryFanout, topic: str, maxsize: int) -> None:
        self._owner = owner
        self._topic = topic
        self._queue: asyncio.Queue[Frame] = asyncio.Queue(maxsize)
        self._overflowed = False

    def offer(self, frame: Frame) -> None:
        if self._overflowed:
            return
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflow()

    def overflow(self) -> None:
        """Fail this subscriber as if it fell behind: ``get`` raises :class:`Overflow` from now."""
        if self._overflowed:
            return
        # Drop what is queued: the subscriber will be closed, and must wake up to learn it.
        self._overflowed = True
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(_OVERFLOWED)

    async def get(self) -> Frame:
        frame = await self._queue.get()
        if frame is _OVERFLOWED:
            raise Overflow(self._topic)
        return frame

    def close(self) -> None:
        self._owner.unsubscribe(self._topic, self)


class MemoryFanout:
    """:class:`~tandem.fanout.base.Fanout` for one process; bounded queue per subscriber."""

    shared = False

    def __init__(self) -> None:
        self._topics: defaultdict[str, set[MemorySubscription]] = defaultdict(set)

    def subscribe(self, topic: str, maxsize: int) -> MemorySubscription:
        subscription = MemorySubscription(self, topic, maxsize)
        self._topics[topic].add(subscription)
        return subscription

    def unsubscribe(self, topic: str, subscription: MemorySubscription) -> None:
        subscribers = self._topics.get(topic)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._topics[topic]

    def publish(self, topic: str, frame: Frame) -> None:
        for subscription in tuple(self._topics.get(topic, ())):
            subscription.offer(frame)

    def subscriber_count(self, topic: str) -> int:
        return len(self._topics.get(topic, ()))
