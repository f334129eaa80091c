"""One relay at a time under the scale scenario's load, for comparing two checkouts of Tandem.

Starts one server (``tandem`` or ``starlette``, bench/relay.py's set-up, pinned to CPU 0; this
client on CPU 1), opens SESSIONS sessions, sends 5 stamped frames a second from each customer
for SECONDS (the first not counted) and prints the latency p50/p99 and the server's CPU per
delivered frame, user and system apart, and per 1,000 sessions. `tandem serve` runs under the
interpreter that runs this script, so another checkout's interpreter measures that checkout's
Tandem with the same load. Alternate the two and take per-round ratios: CPU per frame depends
on the machine's load (a starved server reads several frames per wake-up), so only runs next
to each other compare.

    .venv/bin/python bench/scale_cpu.py tandem 1000 15
    /path/to/other/checkout/.venv/bin/python bench/scale_cpu.py tandem 1000 15
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
import relay


def stat(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


async def main(args: argparse.Namespace) -> None:
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {relay.CLIENT_CPU})
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with relay.servers([args.server]) as live:
        server = live[args.server]
        samples: list[tuple[float, float]] = []

        def cpu_seconds(self: relay.Server) -> float:
            user, system = stat(self.process.pid)
            samples.append((user, system))
            return user + system

        relay.Server.cpu_seconds = cpu_seconds  # type: ignore[method-assign]
        opened = await relay.open_sessions(server, args.sessions, 1)
        result = relay.ScaleResult()
        await relay.traffic(server, opened, result, 5, args.seconds)
        for session in opened:
            session.close()
    (user0, system0), (user1, system1) = samples[-2], samples[-1]
    frames = max(1, result.delivered)
    print(
        f"{args.server} {args.sessions} sessions: p50 {relay.percentile(result.latencies, 50):.1f} "
        f"ms, p99 {relay.percentile(result.latencies, 99):.1f} ms; CPU "
        f"{result.cpu / result.wall * 100:.0f}% of a core; per frame "
        f"{result.cpu / frames * 1e6:.1f} µs (user {(user1 - user0) / frames * 1e6:.1f}, system "
        f"{(system1 - system0) / frames * 1e6:.1f}); per 1,000 sessions "
        f"{result.cpu / frames * 5 * 1000 * 100:.1f}% of a core; load {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", choices=["tandem", "starlette"])
    parser.add_argument("sessions", type=int)
    parser.add_argument("seconds", type=float)
    uvloop.run(main(parser.parse_args()))
