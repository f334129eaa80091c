"""tests/schedule.py: the slow tests go out first, longest first, to at most half the workers at
once, and every test is handed out exactly once."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.schedule import SLOW, SlowFirstScheduling, slow_units

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("key", sorted(SLOW))
def test_every_slow_entry_names_a_test(key: str) -> None:
    """A renamed or removed test would silently lose its place at the front."""
    path, _, name = key.partition("::")
    source = (ROOT / path).read_text()
    if name:
        assert re.search(rf"^(async )?def {re.escape(name)}\(", source, re.M), key
    else:  # a whole module, for a module-scoped fixture: it has one
        assert 'scope="module"' in source, key


class FakeNode:
    def __init__(self, name: str) -> None:
        self.name = name
        self.shutting_down = False
        self.sent: list[int] = []
        self.gateway = type("Gateway", (), {"id": name})()

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent.extend(indices)

    def shutdown(self) -> None:
        self.shutting_down = True


def scheduler(workers: int) -> tuple[SlowFirstScheduling, list[Any]]:
    config = type("Config", (), {})()
    config.option = type("Option", (), {"maxschedchunk": None})()
    config.getvalue = lambda name: {"tx": [f"{workers}*popen"]}[name]
    config.getoption = lambda name, default=None: {"maxschedchunk": None}.get(name, default)
    sched = SlowFirstScheduling(config)  # type: ignore[arg-type]
    nodes = [FakeNode(f"gw{i}") for i in range(workers)]
    for node in nodes:
        sched.add_node(node)  # type: ignore[arg-type]
    return sched, nodes


COLLECTION = [
    "tests/test_a.py::test_fast_1",
    "tests/server/test_cluster_faults.py::test_a_session_across_processes_survives_a_frozen_redis",
    "tests/test_a.py::test_fast_2",
    "tests/test_cli.py::test_one",
    "tests/test_cli.py::test_two",
    *(f"tests/test_b.py::test_fast_{i}" for i in range(40)),
    "tests/server/test_cluster_faults.py::test_a_killed_process_is_noticed_on_the_other_side_of_every_tunnel",
    "tests/test_heap.py::test_serve_runs_the_collector_tasks_supervised_and_zero_turns_them_off",
    "tests/server/test_tunnelled_rejoin.py::test_a_customer_whose_process_stops_resumes_on_another",
]


def test_slow_units_are_longest_first_and_a_listed_module_is_one_unit() -> None:
    units = [[COLLECTION[i] for i in unit] for unit in slow_units(COLLECTION)]
    assert units == [
        [COLLECTION[-3]],  # 13.6 s
        [COLLECTION[3], COLLECTION[4]],  # test_cli: 5.8, in collection order
        [COLLECTION[1]],  # 4.6
        [COLLECTION[-2]],  # 2.7
        [COLLECTION[-1]],  # 1.8
    ]


def test_slow_tests_go_first_to_half_the_workers_and_every_test_runs_once() -> None:
    sched, nodes = scheduler(3)
    for node in nodes:
        sched.add_node_collection(node, COLLECTION)  # type: ignore[arg-type]
    sched.schedule()
    slow = {i for unit in slow_units(COLLECTION) for i in unit}
    holding = [n for n in nodes if any(i in slow for i in sched.node2pending[n])]  # type: ignore[index]
    assert len(holding) == 2  # (3 + 1) // 2
    assert all(not n.sent or n.sent[0] not in slow for n in nodes if n not in holding)
    assert nodes[0].sent[:1] == [COLLECTION.index(COLLECTION[-3])]  # the longest, at once
    # Run to the end: each worker completes the first test it holds while it holds two (or
    # was told to stop), as an xdist worker does.
    done: list[int] = []
    while not sched.tests_finished:
        progressed = False
        for node in nodes:
            held = sched.node2pending[node]  # type: ignore[index]
            if held and (len(held) >= 2 or node.shutting_down):
                index = held[0]
                done.append(index)
                sched.mark_test_complete(node, index)  # type: ignore[arg-type]
                progressed = True
            assert sum(1 for n in nodes if set(sched.node2pending[n]) & slow) <= 2  # type: ignore[index]
        assert progressed, "the schedule stalled"
    for node in nodes:  # the last test each holds runs at shutdown
        done.extend(sched.node2pending[node])  # type: ignore[index]
    assert sorted(done) == list(range(len(COLLECTION)))
    assert sorted(i for n in nodes for i in n.sent) == list(range(len(COLLECTION)))
