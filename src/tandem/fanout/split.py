"""Local delivery for what stays in one process, the shared fan-out for the rest.

With several processes (docs/scale-out.md) a session's sockets all end in its *owner* process:
a socket that reached another process is carried there by a tunnel (:mod:`tandem.tunnel`), and
its endpoint subscribes to the session's topics in the owner. So a session's own topics never
need Redis: :class:`SplitFanout` delivers topics under ``local_prefixes`` in-process (a
:class:`~tandem.fanout.memory.MemoryFanout`: no encoding, no round trip, and nothing lost or
ended when Redis restarts or freezes), and everything else (tunnels, revocation announcements)
through the shared fan-out.
"""

from __future__ import annotations

from tandem.fanout.base import Fanout, Frame, Subscription
from tandem.fanout.memory import MemoryFanout


class SplitFanout:
    """:class:`~tandem.fanout.base.Fanout`: ``local_prefixes`` in this process, the rest shared."""

    shared = True

    def __init__(self, shared: Fanout, local_prefixes: tuple[str, ...]) -> None:
        self.local = MemoryFanout()
        self.inner = shared
        self.local_prefixes = local_prefixes

    @property
    def connected(self) -> bool:
        """Whether the shared fan-out is connected (Redis)."""
        return bool(getattr(self.inner, "connected", True))

    @property
    def outages(self) -> int:
        """How many times the shared fan-out's connection was lost (Redis); 0 without one."""
        return int(getattr(self.inner, "outages", 0))

    def responsive(self, within: float) -> bool:
        """Whether the shared fan-out heard from Redis within ``within`` seconds."""
        responsive = getattr(self.inner, "responsive", None)
        return True if responsive is None else bool(responsive(within))

    def _is_local(self, topic: str) -> bool:
        return topic.startswith(self.local_prefixes)

    def subscribe(self, topic: str, max_bytes: int) -> Subscription:
        if self._is_local(topic):
            return self.local.subscribe(topic, max_bytes)
        return self.inner.subscribe(topic, max_bytes)

    def publish(self, topic: str, frame: Frame) -> None:
        if topic.startswith(self.local_prefixes):  # the hot path: every relayed frame
            self.local.publish(topic, frame)
        else:
            self.inner.publish(topic, frame)

    async def count(self, key: str, window: float) -> int:
        """The shared fan-out's counter (:meth:`tandem.fanout.redis.RedisFanout.count`)."""
        count = getattr(self.inner, "count", None)
        if count is None:
            raise ConnectionError("the shared fan-out keeps no counters")
        return int(await count(key, window))

    async def flush(self) -> None:
        """Wait until what was published to the shared fan-out reached it (Redis)."""
        flush = getattr(self.inner, "flush", None)
        if flush is not None:
            await flush()
