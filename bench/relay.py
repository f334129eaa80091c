"""Tandem's relay against bare relays, alternating in one run (issue 17; `make bench`).

Three servers run side by side, each pinned to CPU 0 when the machine has two or more: Tandem
(`tandem serve`, SQLite, its real protocol: a customer creates a session, an agent joins with the
code, the customer consents, a supervisor watches for 1→2), a bare Starlette/uvicorn relay and a
bare `websockets` relay (bench/relays/). The load client (bench/wsload.py) runs on CPU 1. Every
scenario is measured on each server in turn, in a rotating order, for several rounds; a ratio is
the median of the per-round ratios, so a machine that gets busier between rounds moves all
variants alike.

Scenarios (the figures of issue 17):
  1to1       300-byte frames from one customer to its agent, as fast as the relay carries them
             (a window of frames in flight), deliveries per second
  1to2       the same to an agent and a supervisor (bare relays: two agents)
  parallel   200 such sessions at once
  latency    one session per server at 200 frames/s, in alternating 1 s slices: one-way latency
             p50/p99 of the pooled samples (added = Tandem - bare)
  memory     idle sessions held open: resident memory per connection
  scale      many sessions on each server at once, 5 frames/s each, in alternating slices
             (60 s per server): latency p99 and CPU per 1,000 sessions (Tandem and bare
             Starlette)
  capacity   sessions per core: the largest of a few session counts at which each server
             (Tandem, bare Starlette) keeps p99 under 100 ms at 5 frames/s, counting down in
             alternating slices of 10 s

    .venv/bin/python bench/relay.py [--rounds 3] [--seconds 3] [--scale-sessions 3000]
        [--capacity-counts 4500 4000 ...] [--only SCENARIO ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wsload import BINARY, Connection, frame, latency_recorder, stamped

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "blue-kettle-orbit-42"
PAYLOAD = 300
WINDOW = 256
SETUP_SECONDS = 180
"""How long one step of opening a session may take: on a machine busy with other work, opening
thousands of sessions on a server pinned to one core can starve it of a core for minutes."""
BATCH = 16
SERVER_CPU, CLIENT_CPU = 0, 1
METRICS_TOKEN = "bench-metrics-token-0123456789"
TANDEM_LIMITS = {
    "TANDEM_MAX_SESSIONS": "20000",
    "TANDEM_MAX_WAITING_PER_ADDRESS": "100000",
    "TANDEM_MAX_WAITING_PER_SITE": "100000",
    "TANDEM_MAX_AGENT_SOCKETS": "100000",  # every session's agent is alice (one account)
    "TANDEM_MAX_UNHEARD_SOCKETS_PER_ADDRESS": "100000",
    "TANDEM_METRICS_TOKEN": METRICS_TOKEN,
}


LOGS = os.environ.get("BENCH_SERVER_LOGS", "")
"""A directory for the servers' logs (stderr), for a run that went wrong; none by default."""

SCENARIOS = ["1to1", "1to2", "parallel", "latency", "memory", "scale", "capacity"]

WEBSOCKET_IMPLEMENTATIONS = {
    "tandem": "uvicorn's websockets-sansio protocol, subclassed (server/websocket_protocol.py: "
    "frames split and unmasked by Tandem, direct receive and send)",
    "starlette": "uvicorn's default (ws=auto: websockets-sansio), uvloop, httptools",
    "websockets": "websockets' own asyncio server, uvloop",
}
"""What each server speaks WebSocket with, printed with the run: the bare relays are what a
plain user of each gets; Tandem's is its own."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(command: list[str]) -> list[str]:
    if (os.cpu_count() or 1) >= 2 and Path("/usr/bin/taskset").exists():
        return ["taskset", "-c", str(SERVER_CPU), *command]
    return command


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_tandem(self) -> bool:
        return self.name == "tandem"

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server on {port} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def add_user(data: str, name: str, role: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "tandem", "user", "add", name, "--role", role,
         "--data-dir", data, "--display-name", name.title(), "--no-mfa", "--own-account",
         "--init"],
        input=PASSWORD + "\n", text=True, check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(  # agents join sessions only once trained (tandem.training)
        [sys.executable, "-m", "tandem", "training", "record", name, "--data-dir", data,
         "--reason", "benchmark account"],
        check=True, capture_output=True,
    )  # fmt: skip


@contextlib.contextmanager
def servers(names: list[str]) -> Iterator[dict[str, Server]]:
    started: dict[str, Server] = {}
    with tempfile.TemporaryDirectory() as data, contextlib.ExitStack() as stack:
        for name in names:
            port = free_port()
            if name == "tandem":
                add_user(data, "alice", "agent")
                add_user(data, "sam", "supervisor")
                command = [sys.executable, "-m", "tandem", "serve", "--port", str(port),
                           "--data-dir", data]  # fmt: skip
            else:
                command = [sys.executable, str(ROOT / "bench" / "relays" / f"bare_{name}.py"),
                           str(port)]  # fmt: skip
            process = subprocess.Popen(
                pinned(command),
                stdout=subprocess.DEVNULL,
                stderr=stack.enter_context(open(Path(LOGS) / f"{name}.log", "ab"))
                if LOGS
                else subprocess.DEVNULL,
                env={**os.environ, **TANDEM_LIMITS},
            )
            stack.callback(stop, process)
            wait_for_port(port, process)
            server = started[name] = Server(name, port, process)
            if name == "tandem":
                for user in ("alice", "sam"):
                    response = httpx.post(
                        f"{server.origin}/api/login",
                        json={"username": user, "password": PASSWORD},
                        timeout=60,
                    )
                    response.raise_for_status()
                    server.cookies[user] = response.cookies["tandem_agent"]
        yield started


@contextlib.contextmanager
def _none() -> Iterator[dict[str, Server]]:
    yield {}


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


# Sessions


@dataclass
class Session:
    customer: Connection
    receivers: list[Connection]

    def close(self) -> None:
        for connection in (self.customer, *self.receivers):
            connection.close()


async def expect(connection: Connection, kind: str) -> dict[str, object]:
    while True:
        message = await connection.next_json(SETUP_SECONDS)
        if message.get("type") == kind:
            return message
        if message.get("type") in ("error", "ended", "closed"):
            raise RuntimeError(f"wanted {kind}, got {message}")


async def open_tandem(server: Server, receivers: int) -> Session:
    origin = {"Origin": server.origin}
    customer = await Connection.open(server.port, "/ws/customer", origin)
    customer.send_json(type="create")
    created = await expect(customer, "created")
    agent = await Connection.open(
        server.port, "/ws/agent", {**origin, "Cookie": f"tandem_agent={server.cookies['alice']}"}
    )
    agent.send_json(type="join", code=created["code"])
    await expect(agent, "joined")
    await expect(customer, "agent_joined")
    customer.send_json(type="consent", granted=True)
    await expect(agent, "consent")
    session = Session(customer, [agent])
    if receivers == 2:
        sam = await Connection.open(
            server.port, "/ws/agent", {**origin, "Cookie": f"tandem_agent={server.cookies['sam']}"}
        )
        sam.send_json(type="watch", session_id=created["session_id"])
        await expect(sam, "watching")
        await expect(customer, "watch_request")
        customer.send_json(type="watch_consent", granted=True)
        await expect(sam, "consent")
        customer.send_json(type="watch_handshake", data="AAAA")
        await expect(sam, "handshake")
        sam.send_json(type="handshake", data="BBBB")
        await expect(customer, "watch_handshake")
        customer.send_json(type="watch_handshake", data="CCCC")
        await expect(sam, "handshake")
        session.receivers.append(sam)
    return session


async def open_bare(server: Server, index: int, receivers: int) -> Session:
    name = f"s{index}-{random.getrandbits(32)}"
    customer = await Connection.open(server.port, f"/ws/customer/{name}")
    agents = [await Connection.open(server.port, f"/ws/agent/{name}") for _ in range(receivers)]
    return Session(customer, agents)


async def ready(session: Session) -> None:
    """Send probes until every receiver has one (a bare relay may register a socket just after
    its upgrade), then forget them."""
    probe = frame(BINARY, bytes(PAYLOAD))
    while not all(receiver.received for receiver in session.receivers):
        session.customer.send(probe)
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    for receiver in session.receivers:
        receiver.received = 0


async def open_sessions(server: Server, count: int, receivers: int) -> list[Session]:
    semaphore = asyncio.Semaphore(50)

    async def one(index: int) -> Session:
        async with semaphore:
            if server.is_tandem:
                session = await open_tandem(server, receivers)
            else:
                session = await open_bare(server, index, receivers)
            await ready(session)
            return session

    return list(await asyncio.gather(*(one(i) for i in range(count))))


# Scenarios


CPU_PER_DELIVERY: dict[str, list[float]] = {}
"""Server CPU microseconds per delivered frame, per server, for the scenario being measured:
less sensitive than rates to a machine that is busy with other work."""


async def throughput(server: Server, sessions: int, receivers: int, seconds: float) -> float:
    """Deliveries per second (frames received by all receivers)."""
    opened = await open_sessions(server, sessions, receivers)
    batch = frame(BINARY, bytes(PAYLOAD)) * BATCH
    running = True

    async def pump(session: Session) -> None:
        sent, progress = 0, asyncio.Event()
        for receiver in session.receivers:
            receiver.progress = progress
        while running:
            slowest = min(receiver.received for receiver in session.receivers)
            if sent - slowest + BATCH > WINDOW:
                progress.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(progress.wait(), 0.1)
                continue
            await session.customer.writable.wait()
            session.customer.send(batch)
            sent += BATCH

    def delivered() -> int:
        return sum(r.received for session in opened for r in session.receivers)

    tasks = [asyncio.create_task(pump(session)) for session in opened]
    await asyncio.sleep(0.5)
    start, before, cpu = time.perf_counter(), delivered(), server.cpu_seconds()
    await asyncio.sleep(seconds)
    count = delivered() - before
    rate = count / (time.perf_counter() - start)
    CPU_PER_DELIVERY.setdefault(server.name, []).append(
        (server.cpu_seconds() - cpu) / max(1, count) * 1e6
    )
    running = False
    await asyncio.gather(*tasks)
    for session in opened:
        session.close()
    return rate


async def latency_slices(
    live: dict[str, Server], names: list[str], rate: float, slices: int, seconds: float
) -> dict[str, list[float]]:
    """One-way latencies (ms) at ``rate`` frames/s through one session per server, open for the
    whole scenario: ``slices`` rounds of ``seconds`` each, the servers in a rotating order, so
    that every server's samples come from the same stretches of the machine's load (a p99 of a
    few hundred samples is the load's, not the relay's)."""
    sessions = {name: (await open_sessions(live[name], 1, 1))[0] for name in names}
    latencies: dict[str, list[float]] = {name: [] for name in names}
    for name, session in sessions.items():
        session.receivers[0].on_binary = latency_recorder(latencies[name])
    interval = 1 / rate
    for round_ in range(slices):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            customer, start = sessions[name].customer, time.perf_counter()
            for n in range(int(rate * seconds)):
                delay = start + n * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                customer.send(stamped(PAYLOAD))
            await asyncio.sleep(0.05)  # the last frames arrive before the next server's slice
    for session in sessions.values():
        session.close()
    return latencies


async def idle_memory(server: Server, sessions: int) -> float:
    """Resident KiB per connection for `sessions` idle sessions (two connections each)."""
    before = server.rss_kib()
    opened = await open_sessions(server, sessions, 1)
    await asyncio.sleep(1.0)
    after = server.rss_kib()
    for session in opened:
        session.close()
    return (after - before) / (sessions * 2)


@dataclass
class ScaleResult:
    latencies: list[float] = field(default_factory=list)  # ms, frames sent in measured windows
    sent: int = 0
    delivered: int = 0
    cpu: float = 0.0  # server CPU seconds over the measured windows and their drain
    wall: float = 0.0


async def scale(
    live: dict[str, Server],
    names: list[str],
    sessions: int,
    per_second: float,
    slices: int,
    seconds: float,
) -> dict[str, ScaleResult]:
    """``sessions`` live sessions on every server at once (idle while another server's slice
    runs); in ``slices`` rounds, each server in a rotating order gets ``seconds`` of traffic:
    every customer sends ``per_second`` stamped frames a second to its agent, spread evenly.
    The first second of a slice warms up; the latency of every frame sent after it counts,
    however late it arrives (the slice waits for them), and so does the server's CPU time."""
    opened = {name: await open_sessions(live[name], sessions, 1) for name in names}
    results = {name: ScaleResult() for name in names}
    for round_ in range(slices):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            await traffic(live[name], opened[name], results[name], per_second, seconds)
    for name in names:
        for session in opened[name]:
            session.close()
    return results


async def traffic(
    server: Server, sessions: list[Session], result: ScaleResult, per_second: float, seconds: float
) -> None:
    """One slice of ``seconds``: every customer of ``sessions`` sends ``per_second`` stamped
    frames a second to its agent, spread evenly; after a second of warm-up, every frame's
    latency (however late it arrives: the slice waits for them) and the server's CPU count
    into ``result``."""
    window = [2**63, 2**63]  # perf_counter_ns bounds of the frames that count

    def record(payload: memoryview) -> None:
        sent = struct.unpack_from("!Q", payload)[0]
        if window[0] <= sent <= window[1]:
            result.latencies.append((time.perf_counter_ns() - sent) / 1e6)

    tick = 0.01
    slots = max(1, round(1 / per_second / tick))
    by_slot: list[list[Session]] = [[] for _ in range(slots)]
    for session in sessions:
        session.receivers[0].on_binary = record
        by_slot[random.randrange(slots)].append(session)
    receivers = [session.receivers[0] for session in sessions]
    start, n, sent_before, counted = time.perf_counter(), 0, 0, 0
    measuring_from = measured_at = start + 1.0  # warm-up
    cpu = delivered = 0.0
    while True:
        now = time.perf_counter()
        if now >= measuring_from and window[0] == 2**63:
            window[0] = time.perf_counter_ns()
            cpu, delivered = server.cpu_seconds(), sum(r.received for r in receivers)
            measured_at, sent_before, counted = now, n, len(result.latencies)
        if now >= start + seconds:
            break
        for session in by_slot[n % slots]:
            session.customer.send(stamped(PAYLOAD))
        n += 1
        await asyncio.sleep(max(0.0, start + n * tick - time.perf_counter()))
    window[1] = time.perf_counter_ns()
    expected = sum(len(by_slot[i % slots]) for i in range(sent_before, n))
    deadline = time.perf_counter() + 30
    while len(result.latencies) - counted < expected and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)  # the backlog drains; its frames' latencies count
    result.cpu += server.cpu_seconds() - cpu
    result.wall += time.perf_counter() - measured_at
    result.sent += expected
    result.delivered += sum(r.received for r in receivers) - int(delivered)
    for session in sessions:
        session.receivers[0].on_binary = None
    await asyncio.sleep(0.5)  # stragglers of this slice stay out of the next one's CPU


P99_TARGET_MS = 100.0


async def capacity(
    live: dict[str, Server], names: list[str], counts: list[int], per_second: float, seconds: float
) -> dict[str, int | None]:
    """The largest of ``counts`` at which each server keeps p99 under ``P99_TARGET_MS``: the
    most sessions are opened on every server at once, then each server, in a rotating order,
    gets a slice of ``seconds`` at the next count down (the sessions above it closed first)
    until one meets the target. None: not even the smallest count did."""
    counts = sorted(set(counts), reverse=True)
    opened = {name: await open_sessions(live[name], counts[0], 1) for name in names}
    found: dict[str, int | None] = {name: None for name in names}
    searching = list(names)
    for step, count in enumerate(counts):
        order = searching[step % len(searching) :] + searching[: step % len(searching)]
        for name in order:
            for session in opened[name][count:]:
                session.close()
            del opened[name][count:]
            await asyncio.sleep(2.0)  # the server notices the closed sessions before the slice
            result = ScaleResult()
            await traffic(live[name], opened[name], result, per_second, seconds)
            p99 = percentile(result.latencies, 99)
            met = p99 < P99_TARGET_MS and result.delivered >= result.sent
            print(f"    {name} at {count:,} sessions: p50 {percentile(result.latencies, 50):.1f} "
                  f"ms, p99 {p99:.1f} ms, CPU {result.cpu / result.wall * 100:.0f}% of a core"
                  f"{' (meets p99 < 100 ms)' if met else ''}")  # fmt: skip
            sys.stdout.flush()
            if met:
                found[name] = count
                searching.remove(name)
        if not searching:
            break
    for sessions in opened.values():
        for session in sessions:
            session.close()
    return found


def gc_pauses(server: Server) -> str:
    """Tandem's collections so far from its metrics: how many (full ones apart), and by
    generation how many took longer than 50 and 100 ms."""
    text = httpx.get(
        f"{server.origin}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=60
    ).text
    counts: dict[str, float] = {}
    within: dict[tuple[str, float], float] = {}
    for line in text.splitlines():
        if not line.startswith("tandem_gc_pause_seconds_"):
            continue
        generation = line.split('generation="')[1].split('"')[0]
        value = float(line.rsplit(" ", 1)[1])
        if line.startswith("tandem_gc_pause_seconds_count"):
            counts[generation] = value
        elif line.startswith("tandem_gc_pause_seconds_bucket"):
            bound = line.split('le="')[1].split('"')[0]
            if bound in ("0.05", "0.1"):
                within[generation, float(bound)] = value
    slow = ", ".join(
        f"gen {g}: {counts[g] - within.get((g, 0.05), 0):.0f} over 50 ms, "
        f"{counts[g] - within.get((g, 0.1), 0):.0f} over 100 ms"
        for g in sorted(counts)
        if counts[g]
    )
    return f"{sum(counts.values()):.0f} collections ({counts.get('2', 0):.0f} full); {slow}"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


# The run


def median_ratio(a: list[float], b: list[float]) -> float:
    """Median of the per-round ratios; a round where the anchor measured nothing (the machine
    starved it: no frame moved in the window) has no ratio and is left out."""
    ratios = [x / y for x, y in zip(a, b, strict=True) if y > 0]
    return statistics.median(ratios) if ratios else float("nan")


Measure = Callable[[Server], Awaitable[float]]


async def rounds(
    names: list[str], count: int, measure: Measure, live: dict[str, Server]
) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(count):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            results[name].append(await measure(live[name]))
    return results


def report(title: str, results: dict[str, list[float]], unit: str, higher_is_better: bool) -> None:
    line = ", ".join(f"{name} {statistics.median(v):,.1f}" for name, v in results.items())
    print(f"{title}: {line} {unit}")
    if "tandem" in results:
        for anchor in (name for name in results if name != "tandem"):
            ratio = median_ratio(results["tandem"], results[anchor])
            note = "" if higher_is_better else " (lower is better)"
            print(f"    tandem/{anchor}: {ratio:.2f}{note}")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {CLIENT_CPU})
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    names = ["tandem", "starlette", "websockets"]
    print(f"bench/relay.py: {args.rounds} rounds, {args.seconds} s per measurement, "
          f"servers on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}")  # fmt: skip
    for name, implementation in WEBSOCKET_IMPLEMENTATIONS.items():
        print(f"    {name}: {implementation}")
    seconds = args.seconds
    scenarios = set(args.only or SCENARIOS)
    # These scenarios share one set of servers; the others start their own.
    with servers(names) if scenarios & {"1to1", "1to2", "parallel", "latency"} else _none() as live:
        throughputs: list[tuple[str, str, Measure]] = [
            ("1to1", "1→1, 300 B frames, deliveries/s", lambda s: throughput(s, 1, 1, seconds)),
            ("1to2", "1→2 (agent, supervisor), per s", lambda s: throughput(s, 1, 2, seconds)),
            ("parallel", "200 sessions x 1→1, per s", lambda s: throughput(s, 200, 1, seconds)),
        ]  # fmt: skip
        for key, title, measure in throughputs:
            if key in scenarios:
                CPU_PER_DELIVERY.clear()
                report(title, await rounds(names, args.rounds, measure, live), "", True)
                report("    server CPU per delivery", dict(CPU_PER_DELIVERY), "µs", False)
        if "latency" in scenarios:
            slices = max(10, args.rounds * 10)
            pooled = await latency_slices(live, names, 200, slices, 1.0)
            for p in (50, 99):
                line = ", ".join(f"{n} {percentile(v, p):.2f}" for n, v in pooled.items())
                print(f"latency at 200 msg/s, p{p} (ms, {slices} alternating 1 s slices): {line}")
            for anchor in names[1:]:
                added = percentile(pooled["tandem"], 99) - percentile(pooled[anchor], 99)
                added50 = percentile(pooled["tandem"], 50) - percentile(pooled[anchor], 50)
                print(f"    added vs {anchor}: p50 {added50:+.3f} ms, p99 {added:+.3f} ms "
                      "(target: p99 ≤ +0.5 ms vs starlette)")  # fmt: skip
            sys.stdout.flush()
    if "memory" in (args.only or ["memory"]):
        # Fresh servers: memory freed by earlier scenarios would be reused and hide the cost.
        with servers(names) as live:
            title = f"idle memory per connection ({args.idle_sessions} sessions)"
            memory = await rounds(names, 1, lambda s: idle_memory(s, args.idle_sessions), live)
            report(title, memory, "KiB", False)
    if "scale" in (args.only or ["scale"]):
        # Fresh servers: the memory scenario's sessions are gone, but not their allocations.
        pair = ["tandem", "starlette"]
        slices = max(1, round(args.scale_seconds / args.scale_slice))
        with servers(pair) as live:
            results = await scale(live, pair, args.scale_sessions, 5, slices, args.scale_slice)
            pauses = gc_pauses(live["tandem"])
        print(
            f"{args.scale_sessions} sessions x 5 msg/s, {slices} alternating slices of "
            f"{args.scale_slice:.0f} s per server (the first second of each not counted):"
        )
        per_thousand: dict[str, float] = {}
        for name, result in results.items():
            share = result.cpu / result.wall
            # CPU per frame delivered, times the frames 1,000 sessions send: what they need,
            # whether or not the machine's other work left the server that much.
            per_thousand[name] = result.cpu / max(1, result.delivered) * 5 * 1000
            print(
                f"    {name}: p50 {percentile(result.latencies, 50):.1f} ms, "
                f"p99 {percentile(result.latencies, 99):.1f} ms, "
                f"max {max(result.latencies, default=float('nan')):.0f} ms "
                f"(target p99 < 100) over {len(result.latencies):,} of {result.sent:,} frames "
                "sent; "
                f"CPU {share * 100:.0f}% of a core while measured; per 1,000 sessions "
                f"{per_thousand[name] * 100:.1f}% of a core (one core: about "
                f"{1000 / max(per_thousand[name], 1e-9):,.0f} sessions)"
            )
        ratio = per_thousand["tandem"] / per_thousand["starlette"]
        print(f"    CPU per 1,000 sessions, tandem/starlette: {ratio:.2f} (lower is better)")
        print(f"    tandem's garbage collections over the run (tandem_gc_pause_seconds): {pauses}")
        sys.stdout.flush()
    if "capacity" in (args.only or ["capacity"]):
        pair = ["tandem", "starlette"]
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        counts = [c for c in args.capacity_counts if 4 * c + 1000 <= limit]
        if len(counts) < len(args.capacity_counts):
            print(f"    (counts above {(limit - 1000) // 4:,} left out: the load client may open "
                  f"{limit:,} files, and needs four sockets per session)")  # fmt: skip
        print(f"sessions per core at 5 msg/s with p99 < {P99_TARGET_MS:.0f} ms (counts "
              f"{', '.join(f'{c:,}' for c in sorted(counts, reverse=True))}; slices of "
              f"{args.capacity_slice:.0f} s, the first second not counted):")  # fmt: skip
        with servers(pair) as live:
            found = await capacity(live, pair, counts, 5, args.capacity_slice)
        for name, count in found.items():
            print(f"    {name}: " + (f"{count:,} sessions" if count else f"under {min(counts):,}"))
        if found["tandem"] and found["starlette"]:
            print(f"    tandem/starlette: {found['tandem'] / found['starlette']:.2f}")
        sys.stdout.flush()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--idle-sessions", type=int, default=1000)
    parser.add_argument("--scale-sessions", type=int, default=3000)
    parser.add_argument("--scale-seconds", type=float, default=60.0, help="per server")
    parser.add_argument("--scale-slice", type=float, default=15.0, help="seconds per slice")
    parser.add_argument(
        "--capacity-counts",
        type=int,
        nargs="+",
        default=[4500, 4000, 3500, 3000, 2500, 2000, 1500, 1000],
        help="session counts to try, most first (both servers hold theirs at once: the load "
        "client needs four sockets per session, within its open-file limit)",
    )
    parser.add_argument("--capacity-slice", type=float, default=10.0, help="seconds per count")
    parser.add_argument("--only", nargs="*", choices=SCENARIOS)
    uvloop.run(main(parser.parse_args()))
