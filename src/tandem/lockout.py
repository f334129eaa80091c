"""Throttling of sign-ins, join codes and SSO starts: exponential back-off per key (account,
client address, organisation), counted in storage so that several server processes share it.

After ``free`` failures for a key, each further failure doubles the wait, from ``base`` seconds
up to ``cap``. A success clears the account's count (not the address's: one right password must
not unlock an address that is guessing many accounts). While a key waits, every attempt is
refused, a correct password included, so the lock-out cannot be used to test guesses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


def lock_until(
    failures: int, now: float, free: int, base: float, cap: float, before: float = 0.0
) -> float:
    """When a key that has just failed for the ``failures``-th time may try again."""
    over = failures - free
    if over <= 0:
        return before
    return now + min(cap, base * 2.0 ** min(over - 1, 64))


class BackoffStore(Protocol):
    """Where :class:`SharedBackoff` keeps its counts (the server's storage)."""

    async def backoff_state(self, keys: Sequence[str]) -> dict[str, tuple[int, float]]:
        """``(failures, locked_until)`` of those of ``keys`` that have failed."""
        ...

    async def backoff_failed(self, key: str, now: float) -> int:
        """Count one more failure of ``key`` (atomically); return the new count."""
        ...

    async def backoff_lock(self, key: str, locked_until: float) -> None: ...

    async def backoff_clear(self, key: str) -> None: ...


class SharedBackoff:
    """The back-off rules above, counted in storage: with several server processes on one
    database, every process sees every failure (an attacker cannot multiply the quota by
    spreading attempts over processes). No clock of its own: callers pass ``now``."""

    def __init__(self, store: BackoffStore, free: int, base: float, cap: float) -> None:
        self.store = store
        self.free = free
        self.base = base
        self.cap = cap

    async def retry_after(self, now: float, *keys: str) -> float:
        state = await self.store.backoff_state(keys)
        return max((max(0.0, until - now) for _, until in state.values()), default=0.0)

    async def failed(self, now: float, *keys: str) -> None:
        for key in keys:
            failures = await self.store.backoff_failed(key, now)
            if failures > self.free:
                until = lock_until(failures, now, self.free, self.base, self.cap)
                await self.store.backoff_lock(key, until)

    async def succeeded(self, key: str) -> None:
        await self.store.backoff_clear(key)
