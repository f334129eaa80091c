"""Events with no signed-in actor, counted instead of written one audit record each.

Anyone can open a customer socket, so a record per refused socket, bad origin or rejected
customer token would let one anonymous client grow the append-only audit trail without bound.
These events are counted per interval (``anonymous_audit_interval_seconds``), kind and
organisation, and each interval's counts are written once it has ended: one ``audit_counts`` row
per interval, kind and organisation, whatever the flood. They stay outside the hash chain, so
they can be purged past ``anonymous_audit_retention_days`` without breaking it.
"""

from __future__ import annotations

import math

from tandem.storage.base import AuditCount

ANONYMOUS_ACTIONS = frozenset(
    {
        "customer_origin_refused",
        "customer_token_rejected",
        "customer_refused",
        # Refused before anything was checked, so they cost a client nothing: a record each let
        # one client grow the chain as fast as it could send (a sign-in on a waiting account or
        # address; an SSO start from a waiting address).
        "sign_in_throttled",
        "sso_throttled",
        # A wrong password from an address that waits: one try for each name it has not tried
        # yet, a record each let one client grow the chain with a name a try.
        "sign_in_sprayed",
        # A state-changing request another site's page made (the write check), or one addressed
        # to a host that is not the public origin (421): refused before any route.
        "cross_site_refused",
        "host_misdirected",
    }
)
"""The kinds counted here (docs/audit.md)."""


class EventCounts:
    """In-memory counts of the current and not yet written intervals. Their keys are bounded by
    the kinds, the organisations and the intervals awaiting a write, never by the traffic."""

    def __init__(self, interval: float) -> None:
        if not interval > 0:
            raise ValueError("the counting interval must be positive")
        self.interval = interval
        self._counts: dict[tuple[float, str, str], tuple[int, str]] = {}

    def bucket(self, now: float) -> float:
        """The start of the interval holding ``now``."""
        return math.floor(now / self.interval) * self.interval

    def add(self, now: float, action: str, org: str, detail: str) -> None:
        key = (self.bucket(now), action, org)
        count, _ = self._counts.get(key, (0, ""))
        self._counts[key] = (count + 1, detail[:200])

    def take(self, now: float, node: str, everything: bool = False) -> list[AuditCount]:
        """Remove and return the counts of intervals that have ended by ``now`` (of every
        interval with ``everything``, when the server stops)."""
        current = self.bucket(now)
        taken = [key for key in self._counts if everything or key[0] < current]
        return [AuditCount(key[0], key[1], key[2], node, *self._counts.pop(key)) for key in taken]

    def put_back(self, counts: list[AuditCount]) -> None:
        """Counts whose write failed (the database away): kept for the next try."""
        for count in counts:
            key = (count.bucket, count.action, count.org)
            held, _ = self._counts.get(key, (0, ""))
            self._counts[key] = (held + count.count, count.detail)
