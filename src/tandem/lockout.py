"""Sign-in throttling: exponential back-off per account and per client address. Pure; no clock.

After ``free`` failures for a key, each further failure doubles the wait, from ``base`` seconds
up to ``cap``. A success clears the account's count (not the address's: one right password must
not unlock an address that is guessing many accounts). While a key waits, every attempt is
refused, a correct password included, so the lock-out cannot be used to test guesses.
"""

from __future__ import annotations

import dataclasses


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
            over = entry.failures - self.free
            if over > 0:
                entry.locked_until = now + min(self.cap, self.base * 2 ** (over - 1))

    def succeeded(self, key: str) -> None:
        self._entries.pop(key, None)

    def _forget_expired(self, now: float) -> None:
        # Bounded memory: entries whose wait is over and long past are dropped first.
        for key in [k for k, e in self._entries.items() if e.locked_until + self.cap < now]:
            del self._entries[key]
