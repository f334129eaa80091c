"""Per-test CPU, for finding where a pass's time goes (bench/RESULTS.md, "Fifteenth session").

A pytest plugin: each test's CPU from its setup to its teardown's end, written per process to
``$PERTEST_CPU_OUT.<worker>`` (JSON rows: test id, CPU seconds, wall seconds). Two measures:

- ``PERTEST_CPU=machine`` (the default): the whole machine's busy CPU (/proc/stat). Right with one
  worker (``-n 1``) on a quiet machine: it counts Chromium's renderers, the servers and PostgreSQL.
- ``PERTEST_CPU=process``: the worker's own CPU and its waited-for children's
  (``getrusage``). Right with several workers or a busy machine; misses Chromium and
  PostgreSQL.
- ``PERTEST_CPU=tree``: the CPU of every process under the one ``bench/treecpu.py`` started
  pytest as (it is a child subreaper, so Chromium's re-parented renderers stay under it): the
  living ones' own and reaped children's CPU (/proc/<pid>/stat), and what the root reaped. Right
  on a busy machine with one worker (``-n 1``): it counts Chromium, not PostgreSQL, and not
  other people's processes.

    PERTEST_CPU=tree PYTHONPATH=$PWD/src:$PWD .venv/bin/python bench/treecpu.py \
      .venv/bin/python -m pytest -m e2e -n 1 -p bench.pertest_cpu -p no:randomly tests/e2e/...

    PYTHONPATH=. .venv/bin/python -m pytest -m e2e -n 1 -p bench.pertest_cpu -p no:randomly \
      tests/e2e
    .venv/bin/python bench/pertest_cpu.py            # the summary, by file and costliest tests
"""

from __future__ import annotations

import collections
import glob
import json
import os
import resource
import statistics
import sys
import time
from typing import Any

OUT = os.environ.get("PERTEST_CPU_OUT", "/tmp/pertest-cpu.json")
MEASURE = os.environ.get("PERTEST_CPU", "machine")
TICKS = os.sysconf("SC_CLK_TCK")


def _tree_seconds(root: int) -> float:
    """CPU of ``root`` and every process under it, reaped descendants included (each counted in
    its reaper's cutime/cstime once it is waited for)."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            # ppid; utime + stime + cutime + cstime (cutime, cstime: waited-for children)
            # (the root's own CPU is its /proc sampling, not the tests': only what it reaped)
            counted = fields[13:15] if int(entry) == root else fields[11:15]
            table[int(entry)] = (int(fields[1]), sum(int(v) for v in counted))
    total = 0
    for pid, (_, ticks) in table.items():
        ancestor, depth = pid, 0
        while ancestor != root and ancestor in table and depth < 64:
            ancestor, depth = table[ancestor][0], depth + 1
        if ancestor == root:
            total += ticks
    return total / TICKS


def cpu_seconds() -> float:
    if MEASURE == "tree":
        return _tree_seconds(int(os.environ["TREECPU_ROOT"]))
    if MEASURE == "process":
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / TICKS  # all but idle and iowait


_started: dict[str, tuple[float, float]] = {}
_rows: list[tuple[str, float, float]] = []


def pytest_runtest_setup(item: Any) -> None:
    _started[item.nodeid] = (cpu_seconds(), time.monotonic())


def pytest_runtest_logfinish(nodeid: str, location: Any) -> None:
    if nodeid in _started:
        cpu, wall = _started.pop(nodeid)
        _rows.append((nodeid, cpu_seconds() - cpu, time.monotonic() - wall))
        _write()  # after every test: a run stopped half-way still has its rows


def _write() -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(f"{OUT}.{worker}", "w") as out:
        json.dump(_rows, out)


def pytest_sessionfinish(session: Any) -> None:
    _write()


def summary(pattern: str = f"{OUT}.*", top: int = 20) -> None:
    rows: list[tuple[str, float, float]] = []
    for path in glob.glob(pattern):
        with open(path) as f:
            rows += [tuple(row) for row in json.load(f)]
    if not rows:
        sys.exit(f"no rows in {pattern}")
    cpus = sorted(cpu for _, cpu, _ in rows)
    print(
        f"{len(rows)} tests: CPU {sum(cpus):.1f} s, wall {sum(w for *_, w in rows):.1f} s; "
        f"per test median {statistics.median(cpus):.2f} s, "
        f"p10 {cpus[len(cpus) // 10]:.2f} s, p90 {cpus[len(cpus) * 9 // 10]:.2f} s"
    )
    files: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0])
    for nodeid, cpu, wall in rows:
        entry = files[nodeid.split("::")[0]]
        entry[0] += 1
        entry[1] += cpu
        entry[2] += wall
    for name, (count, cpu, wall) in sorted(files.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"  {cpu:7.1f} s CPU {wall:7.1f} s wall {count:4d} tests  {name}")
    print("costliest tests:")
    for nodeid, cpu, wall in sorted(rows, key=lambda row: -row[1])[:top]:
        print(f"  {cpu:6.2f} s CPU {wall:6.2f} s wall  {nodeid}")


if __name__ == "__main__":
    summary(*sys.argv[1:2])
