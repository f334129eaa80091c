"""How many refused attempts of one signed-in account reach the audit trail (docs/audit.md,
"Refused attempts").

Every refusal of a signed-in account is evidence (HIPAA §164.312(b), PCI DSS 10.2.1.4), but an
account that repeats a refused request in a loop must not flood the trail (and the database
behind it). Per account, the first ``burst`` refusals of a window of ``window`` seconds (from
its first refusal) are recorded in full; the others are only counted, and when the window
ends one summary record says how many more were refused in it. Held in memory per process:
with several processes each has its own budget (docs/scale-out.md).
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

    def admit(self, now: float, org: str, actor: str) -> bool:
        """Count one refusal of ``actor``: True if it is recorded in full. Call :meth:`due`
        first, so that a window that ended is summed up before a new one starts."""
        key = (org, actor)
        window = self._windows.get(key)
        if window is None or now >= window.started + self.window:
            window = self._windows[key] = _Window(now)
        if window.recorded < self.burst:
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
