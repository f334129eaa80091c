"""CPU of a command and of every process it starts, Chromium's re-parented ones included.

    .venv/bin/python bench/treecpu.py make pytest-e2e PYTEST_ARGS="-q -p no:randomly"

`/usr/bin/time` counts only the descendants its child waited for: Chromium's renderers are
re-parented away from the browser and never counted (half the browser pass's CPU). `cpuwall`
counts the whole machine's busy CPU: right only on a quiet machine. This runs the command as a
child subreaper (prctl PR_SET_CHILD_SUBREAPER), so every orphaned descendant is re-parented to it
and reaped here: the CPU it prints is the whole tree's, whatever else the machine runs (busy
neighbours still slow each CPU second down somewhat: compare runs at similar load). It also samples
/proc every 0.2 s for a breakdown by process type (Chromium's --type, Python, node); a process
that lives less than a sample is counted only in the total ("unsampled")."""

from __future__ import annotations

import collections
import ctypes
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
TICKS = os.sysconf("SC_CLK_TCK")


def kind_of(pid: int) -> str:
    """What a process is, from its command line (Chromium rewrites its title with spaces)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
    except OSError:
        return "?"
    if not args:
        return "?"
    program = os.path.basename(args[0].decode(errors="replace"))
    for arg in args:
        if arg.startswith(b"--type="):
            kind = "chromium " + arg.removeprefix(b"--type=").decode()
            for sub in args:
                if sub.startswith(b"--utility-sub-type="):
                    kind += " " + sub.rsplit(b".", 1)[-1].decode()
            return kind
    if "chrom" in program:
        return "chromium browser"
    return "python" if program.startswith("python") else program


def processes() -> dict[int, tuple[int, float]]:
    """Every process: its parent and its CPU seconds so far."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            found[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS)
    return found


def main(command: list[str]) -> int:
    if ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit("prctl(PR_SET_CHILD_SUBREAPER) failed")
    me = os.getpid()
    seen: dict[int, tuple[str, float]] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            table = processes()
            for pid, (_, cpu) in table.items():
                ancestor, depth = table[pid][0], 0
                while ancestor not in (0, 1, me) and ancestor in table and depth < 64:
                    ancestor, depth = table[ancestor][0], depth + 1
                if ancestor == me:
                    known = seen.get(pid)
                    # a forked child shows its parent's command line until it renames itself
                    settled = known and known[0] not in ("chromium browser", "chromium zygote", "?")
                    seen[pid] = (known[0] if known and settled else kind_of(pid), cpu)
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    # bench/pertest_cpu.py's PERTEST_CPU=tree counts the tree under this process.
    child = subprocess.Popen(command, env={**os.environ, "TREECPU_ROOT": str(me)})
    code: int | None = None
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if pid == child.pid:
            code = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    stop.set()
    sampler.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = usage.ru_utime + usage.ru_stime
    cpu: collections.defaultdict[str, float] = collections.defaultdict(float)
    count: collections.Counter[str] = collections.Counter()
    for kind, seconds in seen.values():
        cpu[kind] += seconds
        count[kind] += 1
    out = sys.stderr
    print(
        f"treecpu: wall {wall:.1f} s, CPU of the whole tree {total:.1f} s "
        f"(user {usage.ru_utime:.1f}, sys {usage.ru_stime:.1f}); load {os.getloadavg()[0]:.1f}",
        file=out,
    )
    for kind, seconds in sorted(cpu.items(), key=lambda item: -item[1]):
        print(f"  {seconds:7.1f} s  {count[kind]:4d} processes  {kind}", file=out)
    print(f"  {total - sum(cpu.values()):7.1f} s  unsampled (short-lived)", file=out)
    return code if code is not None else 1


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    sys.exit(main(sys.argv[1:]))
