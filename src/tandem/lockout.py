"""Sign-in throttling: exponential back-off per account and per client address. Pure; no clock.

After ``free`` failures for a key, each further failure doubles the wait, from ``base`` seconds
up to ``cap``. A success clears the account's count (not the address's: one right password must
not unlock an address that is guessing many accounts). While a key waits, every attempt is
refused, a correct password included, so the lock-out cannot be used to test guesses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol


@dataclasses.dataclass(slots=True)
class _Entry:
    failures: int = 0
    locked_until: float = 0.0


class Backoff:
    def __init__(
        self, free: int = 3, base: float = 1.0, cap: float = 900.0, max_keys: int = 100_000
    ) -> None:
        self.free = free
        self.base = base
        self.cap = cap
        self.max_keys = max_keys
        self._entries: dict[str, _Entry] = {}

    def retry_after(self, now: float, *keys: str) -> float:
        """Seconds until any of ``keys`` may try again (0 when all may)."""
        return max(
            (max(0.0, e.locked_until - now) for k in keys if (e := self._entries.get(k))),
            default=0.0,
        )

    def failed(self, now: float, *keys: str) -> None:
        if len(self._entries) >= self.max_keys:
            self._forget_expired(now)
        for key in keys:
            entry = self._entries.setdefault(key, _Entry())
            entry.failures += 1
            entry.locked_until = lock_until(
                entry.failures, now, self.free, self.base, self.cap, entry.locked_until
            )

    def succeeded(self, key: str) -> None:
        self._entries.pop(key, None)

    def _forget_expired(self, now: float) -> None:
        # Bounded memory: entries whose wait is over and long past are dropped first.
        for key in [k for k, e in self._entries.items() if e.locked_until + self.cap < now]:
            del self._entries[key]


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
    """The same rules as :class:`Backoff`, counted in storage: with several server processes on
    one database, every process sees every failure (an attacker cannot multiply the quota by
    spreading attempts over processes)."""

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
