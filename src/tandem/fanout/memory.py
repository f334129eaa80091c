"""In-process fan-out: the embedded default for a single server process."""

from __future__ import annotations

import asyncio
import collections
from collections import defaultdict
from collections.abc import Callable

from tandem.fanout.base import FRAME_OVERHEAD, Frame, Overflow, frame_size


class MemorySubscription:
    """One subscriber's queue: a deque of frames, their size in bytes, and at most one waiter.

    ``offer`` appends and wakes the waiter; once the queued bytes would pass ``max_bytes`` the
    queue is dropped and the subscriber fails with :class:`Overflow`. ``take`` hands the writer
    everything queued at once, so a wake-up costs one future, not one per frame. The deque
    exists only while frames wait (an idle subscriber holds none: issue 17, memory per socket).
    """

    __slots__ = ("_frames", "_overflowed", "_owner", "_topic", "_waiter", "direct", "max_bytes",
                 "queued_bytes")  # fmt: skip

    def __init__(self, owner: MemoryFanout, topic: str, max_bytes: int) -> None:
        if max_bytes < FRAME_OVERHEAD:
            raise ValueError(f"a subscriber's queue must hold at least {FRAME_OVERHEAD} bytes")
        self._owner = owner
        self._topic = topic
        self._frames: collections.deque[Frame] | None = None
        self.max_bytes = max_bytes
        self.queued_bytes = 0
        """Bytes queued and not yet taken (each frame counts its data plus ``FRAME_OVERHEAD``)."""
        self._waiter: asyncio.Future[None] | None = None
        self._overflowed = False
        self.direct: Callable[[Frame], bool] | None = None
        """Set by the subscriber's socket (:class:`tandem.server.ws.Connection`): tries to send
        a frame at once; a frame is queued only when nothing is queued before it and this
        returns False (the socket's writer is busy or the peer is behind)."""

    @property
    def overflowed(self) -> bool:
        return self._overflowed

    def offer(self, frame: Frame) -> None:
        if self._overflowed:
            return
        if not self._frames and self.direct is not None and self.direct(frame):
            return
        size = frame_size(frame)
        if self.queued_bytes + size > self.max_bytes:
            self.overflow()
            return
        if self._frames is None:
            self._frames = collections.deque()
        self._frames.append(frame)
        self.queued_bytes += size
        self._wake()

    def overflow(self) -> None:
        """Fail this subscriber as if it fell behind: ``get`` raises :class:`Overflow` from now."""
        if self._overflowed:
            return
        # Drop what is queued: the subscriber will be closed, and must wake up to learn it.
        self._overflowed = True
        self._frames = None
        self.queued_bytes = 0
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self) -> None:
        while not self._frames and not self._overflowed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._overflowed:
            raise Overflow(self._topic)

    async def get(self) -> Frame:
        await self._wait()
        assert self._frames is not None
        frame = self._frames.popleft()
        if not self._frames:
            self._frames = None
        self.queued_bytes -= frame_size(frame)
        return frame

    async def take(self) -> list[Frame]:
        await self._wait()
        frames = list(self._frames or ())
        self._frames = None
        self.queued_bytes = 0
        return frames

    def close(self) -> None:
        self.direct = None
        self._owner.unsubscribe(self._topic, self)


class MemoryFanout:
    """:class:`~tandem.fanout.base.Fanout` for one process; a queue bounded in bytes per
    subscriber."""

    shared = False

    def __init__(self) -> None:
        self._topics: defaultdict[str, set[MemorySubscription]] = defaultdict(set)

    def subscribe(self, topic: str, max_bytes: int) -> MemorySubscription:
        subscription = MemorySubscription(self, topic, max_bytes)
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

    def queued_bytes(self) -> int:
        """Bytes queued for every subscriber of this process, not yet taken by its writer."""
        return sum(s.queued_bytes for subscribers in self._topics.values() for s in subscribers)
