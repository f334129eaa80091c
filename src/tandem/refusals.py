"""How many refused attempts of one signed-in account reach the audit trail (docs/audit.md,
"Refused attempts").

Every refusal of a signed-in account is evidence (HIPAA §164.312(b), PCI DSS 10.2.1.4), but an
account that repeats a refused request in a loop must not flood the trail (and the database
behind it). Per account, the first ``burst`` refusals of a window of ``window`` seconds (from
its first refusal) are recorded in full; the others are only counted, and when the window
ends one summary record says how many more were refused in it.

With several processes sharing Redis the budget is the cluster's: each refusal is counted in
one Redis counter per account that expires a window after its first count
(:meth:`tandem.fanout.redis.RedisFanout.count`), and only the first ``burst`` of the count are
recorded in full, whichever process they reach; each process sums up in its own summary the
refusals it counted and did not record. While Redis does not answer, a process weighs the
refusals it gets against its own budget, as with one process (logged, and counted in
``tandem_refusals_budgeted_locally_total``): a refusal is never lost for it (docs/scale-out.md).
"""

from __future__ import annotations

import dataclasses

SUMMARY_ACTION = "access_refused_summary"
"""The audit action of a window's count of refusals not recorded one by one."""


@dataclasses.dataclass(slots=True)
class _Window:
    started: float
    recorded: int = 0
    counted: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Summary:
    """The refusals of ``actor`` (of ``org``) counted, not recorded, in the window from
    ``since``."""

    org: str
    actor: str
    since: float
    refused: int


class RefusalBudget:
    """Which refusals are recorded in full, and the summaries of the windows that ended."""

    def __init__(self, burst: int, window: float) -> None:
        self.burst = burst
        self.window = window
        self._windows: dict[tuple[str, str], _Window] = {}

    def admit(self, now: float, org: str, actor: str, shared: int | None = None) -> bool:
        """Count one refusal of ``actor``: True if it is recorded in full. ``shared``: its
        number in the account's window across every process (the shared budget), or None to
        weigh it against this process's own. Call :meth:`due` first, so that a window that
        ended is summed up before a new one starts."""
        key = (org, actor)
        window = self._windows.get(key)
        if window is None or now >= window.started + self.window:
            window = self._windows[key] = _Window(now)
        if (shared if shared is not None else window.recorded + 1) <= self.burst:
            window.recorded += 1
            return True
        window.counted += 1
        return False

    def due(self, now: float, everything: bool = False) -> list[Summary]:
        """The summaries of the windows that ended by ``now`` (all, with ``everything``: the
        server is stopping), oldest first; those windows are forgotten."""
        ended = [
            (key, window)
            for key, window in self._windows.items()
            if everything or now >= window.started + self.window
        ]
        for key, _ in ended:
            del self._windows[key]
        return [
            Summary(org, actor, window.started, window.counted)
            for (org, actor), window in sorted(ended, key=lambda item: item[1].started)
            if window.counted
        ]

    def __len__(self) -> int:
        return len(self._windows)
