"""Collector tuning (issue 17, tandem.heap): full collections stop scanning long-lived objects,
cyclic garbage that was frozen is still reclaimed by the periodic full collection, and
`tandem serve` runs both as supervised background tasks."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tandem import heap
from tests.conftest import DataTemplates
from tests.test_runtime_limits import serving


@pytest.fixture
def collector_state() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    if heap._timed in gc.callbacks:
        gc.callbacks.remove(heap._timed)


def full_collections() -> float:
    return next(
        sample.value
        for metric in heap.GC_PAUSES.collect()
        for sample in metric.samples
        if sample.name.endswith("_count") and sample.labels == {"generation": "2"}
    )


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


async def test_settle_freezes_what_exists_and_raises_the_young_threshold(
    collector_state: None,
) -> None:
    heap.settle()
    assert gc.get_freeze_count() > 1000  # modules, classes, settings...
    assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD
    counted = sum(gc.get_count())
    assert counted < 1000  # what a full collection would scan now is what came after


async def test_frozen_cyclic_garbage_survives_collections_until_the_periodic_full_one(
    collector_state: None,
) -> None:
    garbage = cycle()
    await heap.freeze()  # frozen while still alive (as a session's objects are)
    assert garbage() is not None
    gc.collect()
    assert garbage() is not None, "a frozen cycle is out of reach of ordinary collections"
    await heap.collect_all()
    assert garbage() is None
    assert gc.get_freeze_count() > 0  # frozen again


async def test_every_collection_is_timed_once_settled(collector_state: None) -> None:
    """tandem_gc_pause_seconds: what an operator (and make bench) reads to see no long pause."""
    before = full_collections()
    heap.settle()  # its own collection, at start-up, is not a pause while serving
    assert full_collections() == before
    gc.collect()
    assert full_collections() == before + 1
    heap.settle()  # settling again does not time each collection twice
    assert full_collections() == before + 2
    assert gc.callbacks.count(heap._timed) == 1


async def test_unfrozen_cyclic_garbage_is_collected_as_usual(collector_state: None) -> None:
    heap.settle()
    garbage = cycle()
    gc.collect()
    assert garbage() is None


def background_tasks(tmp_path: Path, freeze_seconds: str) -> str:
    """The metrics of a `tandem serve` started with ``TANDEM_GC_FREEZE_SECONDS``."""
    token = "a-metrics-token-for-tests"
    env = {"TANDEM_GC_FREEZE_SECONDS": freeze_seconds, "TANDEM_METRICS_TOKEN": token}
    with serving(tmp_path, env=env, forked=True) as (process, _):
        argv = process.args
        port = argv[argv.index("--port") + 1]
        response = httpx.get(
            f"http://127.0.0.1:{port}/metrics",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return response.text


def test_serve_runs_the_collector_tasks_supervised_and_zero_turns_them_off(
    tmp_path: Path, data_templates: DataTemplates
) -> None:
    for name in ("on", "off"):  # migrated copies: the collectors are the subject, not a first start
        data_templates.copy_to(tmp_path / name)
    on = background_tasks(tmp_path / "on", "0.2")
    assert 'tandem_background_failing{task="gc_freeze"} 0.0' in on
    assert 'tandem_background_failing{task="gc_collect"} 0.0' in on
    assert 'tandem_gc_pause_seconds_count{generation="2"}' in on
    off = background_tasks(tmp_path / "off", "0")
    assert "gc_freeze" not in off and "gc_collect" not in off
