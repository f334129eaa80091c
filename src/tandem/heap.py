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

Every collection's pause is timed into ``tandem_gc_pause_seconds`` (by generation), so an
operator, and ``make bench``, can see that no long pause happens.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Histogram

from tandem.metrics import REGISTRY

GC_PAUSES = Histogram(
    "tandem_gc_pause_seconds",
    "Time the process stood still in a garbage collection, by generation (2: full).",
    labelnames=["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
_BY_GENERATION = [GC_PAUSES.labels(generation=str(n)) for n in range(3)]
_started = [0.0]


def _timed(phase: str, info: dict[str, Any]) -> None:
    """A ``gc.callbacks`` entry: times each collection (the collector holds the GIL for all of
    it, so a start and its stop are never interleaved with another collection's)."""
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        _BY_GENERATION[min(2, int(info.get("generation", 2)))].observe(
            time.perf_counter() - _started[0]
        )


YOUNG_THRESHOLD = 20_000
"""Allocations (net of frees) before the youngest generation is collected (CPython: 700)."""


def settle() -> None:
    """After start-up: collect once, freeze what is left, raise the young threshold; time every
    collection from now on, while serving (``tandem_gc_pause_seconds``)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    if _timed not in gc.callbacks:
        gc.callbacks.append(_timed)


async def freeze() -> None:
    """Freeze what survived since the last freeze (a background task: ``gc_freeze_seconds``)."""
    gc.freeze()


async def collect_all() -> None:
    """Unfreeze, collect everything, freeze again (``gc_collect_seconds``): reclaims cyclic
    garbage that was frozen before it became garbage."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
