"""The fan-out Protocol: publish frames to a topic; each subscriber has its own queue, bounded in
bytes."""

from __future__ import annotations

import dataclasses
from typing import Protocol


@dataclasses.dataclass(frozen=True, slots=True)
class Frame:
    """One WebSocket frame to deliver: text (control) or bytes (opaque payload).

    ``close`` asks the receiving socket to close with ``(code, reason)`` after sending ``data``
    (``data`` may be empty to close only).
    """

    data: str | bytes
    close: tuple[int, str] | None = None


FRAME_OVERHEAD = 64
"""Bytes a queued frame counts besides its data, so that a flood of empty frames is bounded too."""


def frame_size(frame: Frame) -> int:
    """What ``frame`` counts against a subscriber's byte bound."""
    data = frame.data
    return FRAME_OVERHEAD + (len(data) if isinstance(data, bytes) else len(data.encode()))


class Overflow(Exception):
    """The subscriber fell behind: its queue would have held more than its byte bound."""


class Subscription(Protocol):
    async def get(self) -> Frame:
        """Next frame for this subscriber. Raises :class:`Overflow` once the queue overflowed."""
        ...

    async def take(self) -> list[Frame]:
        """Every frame queued (at least one), at once: a writer drains them per wake-up.
        Raises :class:`Overflow` once the queue overflowed."""
        ...

    def close(self) -> None:
        """Stop receiving; idempotent."""
        ...


class Fanout(Protocol):
    shared: bool
    """True when other server processes see the same topics (Redis): scale-out is on."""

    def subscribe(self, topic: str, max_bytes: int) -> Subscription:
        """Receive every frame published to ``topic`` from now on; once more than ``max_bytes``
        (:func:`frame_size`) would be queued, the subscriber overflows."""
        ...

    def publish(self, topic: str, frame: Frame) -> None:
        """Deliver ``frame`` to every current subscriber of ``topic`` without waiting."""
        ...
