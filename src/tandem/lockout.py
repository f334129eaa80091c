"""Throttling of sign-ins, join codes and SSO starts: exponential back-off per key (account,
client address, organisation), counted in storage so that several server processes share it.

After ``free`` failures for a key, each further failure doubles the wait, from ``base`` seconds
up to ``cap``. Counts decay: a key's count is forgotten once ``forget_after`` seconds pass without
a failure of it. A success does not clear anything (an account that joins a session it started
itself, or signs in to itself, must not wipe the count its guesses built up).

Who is refused (:meth:`SharedBackoff.wait`): a key of one's own (the account) that waits refuses
every attempt, a correct password or code included, so the wait cannot be used to test guesses.
A shared key (the client address, the organisation) that waits refuses only those accounts that
have failed themselves within ``forget_after``: an innocent colleague behind the same office
address, or an honest agent while someone else guesses codes in the organisation, is not
refused; an account that guesses from a waiting address gets one attempt, not ``free``.
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

    async def backoff_state(self, keys: Sequence[str]) -> dict[str, tuple[int, float, float]]:
        """``(failures, locked_until, last_failure)`` of those of ``keys`` that have failed."""
        ...

    async def backoff_failed(self, key: str, now: float, forget_after: float) -> int:
        """Count one more failure of ``key`` (atomically), starting again from one if its last
        failure is ``forget_after`` seconds old or older; return the new count."""
        ...

    async def backoff_lock(self, key: str, locked_until: float) -> None: ...

    async def backoff_clear(self, key: str) -> None: ...

    async def backoff_forgive(self, key: str, free: int) -> None: ...


class SharedBackoff:
    """The back-off rules above, counted in storage: with several server processes on one
    database, every process sees every failure (an attacker cannot multiply the quota by
    spreading attempts over processes). No clock of its own: callers pass ``now``."""

    def __init__(
        self, store: BackoffStore, free: int, base: float, cap: float, forget_after: float
    ) -> None:
        self.store = store
        self.free = free
        self.base = base
        self.cap = cap
        self.forget_after = forget_after

    async def retry_after(self, now: float, *keys: str) -> float:
        """Seconds until none of ``keys`` waits (0: none waits now)."""
        state = await self.store.backoff_state(keys)
        return max((max(0.0, until - now) for _, until, _ in state.values()), default=0.0)

    async def wait(self, now: float, own: str, *shared: str) -> float:
        """Seconds the holder of ``own`` (an account) must wait before its next attempt, with
        ``shared`` keys (its address, its organisation) counted only if it has failed itself
        within ``forget_after`` (the rules in the module docstring). 0: it may try now."""
        state = await self.store.backoff_state((own, *shared))
        mine = state.get(own)
        if mine is None or mine[2] <= now - self.forget_after:
            return max(0.0, mine[1] - now) if mine else 0.0
        return max(max(0.0, until - now) for _, until, _ in state.values())

    async def failed(self, now: float, *keys: str) -> None:
        for key in keys:
            failures = await self.store.backoff_failed(key, now, self.forget_after)
            if failures > self.free:
                until = lock_until(failures, now, self.free, self.base, self.cap)
                await self.store.backoff_lock(key, until)

    async def forgive(self, key: str) -> None:
        """One failure fewer of ``key`` (its wait lifted once it is within the free ones): for
        counts of unfinished work (SSO starts), when one piece of it finishes. Never for
        guesses: those decay (module docstring)."""
        await self.store.backoff_forgive(key, self.free)

    async def clear(self, key: str) -> None:
        """Forget ``key``'s count. Only for counts of unfinished work (SSO starts), never for
        guesses: those decay (module docstring)."""
        await self.store.backoff_clear(key)
