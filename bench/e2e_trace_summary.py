"""Where a Chrome trace's CPU went (bench/e2e_trace_probe.py writes one).

    .venv/bin/python bench/e2e_trace_summary.py TRACE [TOP]   # the summary below
    .venv/bin/python bench/e2e_trace_summary.py TRACE --inclusive console.js   # per function
    .venv/bin/python bench/e2e_trace_summary.py TRACE --under getWnafPrecomputes  # its stacks

The summary: per process and thread, the top-level trace events' thread time (`tdur`); for the
renderers' main threads, self thread time by event name (parsing, compiling, style, layout,
paint); and from the V8 sampling profiler, self time by script and by function. V8's samples
count wall time, not CPU time (a busy machine inflates them): compare their shares, not their
sums. For readable names, trace a build with identifiers kept (esbuild `minify: false`).
"""

from __future__ import annotations

import collections
import json
import sys
from collections.abc import Iterator
from typing import Any

Event = dict[str, Any]


def load(path: str) -> list[Event]:
    with open(path) as f:
        data = json.load(f)
    events: list[Event] = data["traceEvents"] if isinstance(data, dict) else data
    return events


def frame(node: Event) -> str:
    cf = node["callFrame"]
    url = cf.get("url", "").rsplit("/", 1)[-1] or f"({cf.get('functionName', '')})"
    return f"{cf.get('functionName') or '(anon)'} {url}:{cf.get('lineNumber', -1) + 1}"


def samples(events: list[Event]) -> Iterator[tuple[list[Event], float]]:
    """Each V8 sample as its stack (innermost first) and the time until the next sample (µs)."""
    nodes: dict[tuple[Any, Any, int], Event] = {}
    for e in events:
        if e.get("name") != "ProfileChunk":
            continue
        data = e["args"]["data"]
        profile = data.get("cpuProfile", {})
        for n in profile.get("nodes", []):
            nodes[(e["pid"], e["id"], n["id"])] = n
        deltas = data.get("timeDeltas", [])
        for i, sample in enumerate(profile.get("samples", [])):
            stack = []
            key = (e["pid"], e["id"], sample)
            while key in nodes:
                stack.append(nodes[key])
                if "parent" not in nodes[key]:
                    break
                key = (e["pid"], e["id"], nodes[key]["parent"])
            yield stack, (deltas[i + 1] if i + 1 < len(deltas) else 0)


def summary(events: list[Event], top: int) -> None:
    pname: dict[int, str] = {}
    tname: dict[tuple[int, int], str] = {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "process_name":
            pname[e["pid"]] = e["args"]["name"]
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            tname[(e["pid"], e["tid"])] = e["args"]["name"]
    by_thread: dict[tuple[int, int], list[Event]] = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and "tdur" in e:
            by_thread[(e["pid"], e["tid"])].append(e)
    thread_cpu: collections.Counter[str] = collections.Counter()
    main_self: collections.Counter[str] = collections.Counter()
    for key, evs in by_thread.items():
        evs.sort(key=lambda e: (e["ts"], -e.get("dur", 0)))
        stack: list[tuple[float, Event, list[float]]] = []  # (end, event, [children's tdur])
        ended: list[tuple[Event, list[float]]] = []
        for e in evs:
            while stack and stack[-1][0] <= e["ts"]:
                ended.append(stack.pop()[1:])
            if stack:
                stack[-1][2][0] += e["tdur"]
            else:
                thread_cpu[f"{pname.get(key[0], '?')}/{tname.get(key, '?')}"] += e["tdur"]
            stack.append((e["ts"] + e.get("dur", 0), e, [0.0]))
        ended.extend(entry[1:] for entry in stack)
        if tname.get(key) == "CrRendererMain":
            for event, children in ended:
                main_self[event["name"]] += event["tdur"] - children[0]
    print("thread CPU by process/thread (top-level events, ms):")
    show(thread_cpu, top)
    print("renderer main threads, self thread time by event (ms):")
    show(main_self, top)
    by_script: collections.Counter[str] = collections.Counter()
    by_function: collections.Counter[str] = collections.Counter()
    for stack, us in samples(events):
        if stack:
            by_script[stack[0]["callFrame"].get("url") or frame(stack[0])] += us
            by_function[frame(stack[0])] += us
    print("V8 samples, self time by script (ms):")
    show(by_script, top)
    print("V8 samples, self time by function (ms):")
    show(by_function, top)


def show(times: collections.Counter[str], top: int) -> None:
    """The ``top`` largest of ``times`` (microseconds), in milliseconds."""
    for name, us in times.most_common(top):
        print(f"  {us / 1000:9.1f}  {name}")


def inclusive(events: list[Event], script: str, top: int) -> None:
    """Inclusive sampled time of every function in samples that touch `script`."""
    total: collections.Counter[str] = collections.Counter()
    for stack, us in samples(events):
        names = {frame(n) for n in stack}
        if any(script in name for name in names):
            for name in names:
                total[name] += us
    show(total, top)


def under(events: list[Event], needle: str, top: int) -> None:
    """The sampled stacks through the first function whose name contains `needle`: two frames
    below it and six above."""
    total: collections.Counter[str] = collections.Counter()
    for stack, us in samples(events):
        names = [frame(n) for n in stack]
        hits = [i for i, name in enumerate(names) if needle in name]
        if hits:
            i = hits[0]
            total[" < ".join(names[max(0, i - 2) : i + 6])] += us
    show(total, top)


def main() -> None:
    args = sys.argv[1:]
    events = load(args[0])
    if len(args) >= 3 and args[1] == "--inclusive":
        inclusive(events, args[2], 60)
    elif len(args) >= 3 and args[1] == "--under":
        under(events, args[2], 20)
    else:
        summary(events, int(args[1]) if len(args) > 1 else 25)


if __name__ == "__main__":
    main()
