"""Keeping full garbage collections off the relay's event loop (issue 17).

CPython's cyclic collector pauses the process for a full collection in time proportional to
every tracked object: at 2,000 live sessions that was 0.5-1 M objects and pauses of 0.4-0.75 s,
during which no frame moved. Nearly all of those objects live as long as the process (modules,
settings, compiled statements) or as long as a session, and are freed by reference counting,
not by the cyclic collector. So, in `tandem serve`:

* after start-up everything that exists is collected once and frozen (``gc.freeze``): moved to
  the permanent generation, which collections do not scan;
* every ``gc_freeze_seconds`` what survived since is frozen too, so a full collection only
  scans what was made in the last interval;
* every ``gc_collect_seconds`` (hourly by default) everything is unfrozen, collected and frozen
  again: frozen objects are still freed by reference counting, but cyclic garbage that was
  frozen is reclaimed only here (one full pause an hour, at a known time, instead of many);
* the young generation's threshold is raised, so short-lived frames and messages rarely trigger
  a collection at all.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000
"""Allocations (net of frees) before the youngest generation is collected (CPython: 700)."""


def settle() -> None:
    """After start-up: collect once, freeze what is left, raise the young threshold."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


async def freeze() -> None:
    """Freeze what survived since the last freeze (a background task: ``gc_freeze_seconds``)."""
    gc.freeze()


async def collect_all() -> None:
    """Unfreeze, collect everything, freeze again (``gc_collect_seconds``): reclaims cyclic
    garbage that was frozen before it became garbage."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
