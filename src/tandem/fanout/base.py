"""The fan-out Protocol: publish frames to a topic; each subscriber has its own bounded queue."""

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


class Overflow(Exception):
    """The subscriber fell behind and its bounded queue filled up."""


class Subscription(Protocol):
    async def get(self) -> Frame:
        """Next frame for this subscriber. Raises :class:`Overflow` once the queue overflowed."""
        ...

    def close(self) -> None:
        """Stop receiving; idempotent."""
        ...


class Fanout(Protocol):
    shared: bool
    """True when other server processes see the same topics (Redis): scale-out is on."""

    def subscribe(self, topic: str, maxsize: int) -> Subscription:
        """Receive every frame published to ``topic`` from now on, at most ``maxsize`` queued."""
        ...

    def publish(self, topic: str, frame: Frame) -> None:
        """Deliver ``frame`` to every current subscriber of ``topic`` without waiting."""
        ...
