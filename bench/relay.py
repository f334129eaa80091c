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
  latency    one session at 200 frames/s: one-way latency p50/p99 (added = Tandem - bare)
  memory     idle sessions held open: resident memory per connection
  scale      many sessions at 5 frames/s each over a window: latency p99 and CPU per 1,000
             sessions (Tandem and bare Starlette)

    .venv/bin/python bench/relay.py [--rounds 3] [--seconds 3] [--scale-sessions 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import statistics
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
BATCH = 16
SERVER_CPU, CLIENT_CPU = 0, 1
TANDEM_LIMITS = {
    "TANDEM_MAX_SESSIONS": "20000",
    "TANDEM_MAX_WAITING_PER_ADDRESS": "100000",
    "TANDEM_MAX_WAITING_PER_SITE": "100000",
}


SCENARIOS = ["1to1", "1to2", "parallel", "latency", "memory", "scale"]


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
         "--data-dir", data, "--display-name", name.title(), "--no-mfa", "--init"],
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
                stderr=subprocess.DEVNULL,
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
        message = await connection.next_json()
        if message.get("type") == kind:
            return message
        if message.get("type") in ("error", "ended"):
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


async def latency(server: Server, rate: float, seconds: float) -> tuple[float, float]:
    (session,) = await open_sessions(server, 1, 1)
    latencies: list[float] = []
    session.receivers[0].on_binary = latency_recorder(latencies)
    interval, start = 1 / rate, time.perf_counter()
    for n in range(int(rate * seconds)):
        delay = start + n * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        session.customer.send(stamped(PAYLOAD))
    await asyncio.sleep(0.2)
    session.close()
    return percentile(latencies, 50), percentile(latencies, 99)


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
    p50: float
    p99: float
    worst: float
    cpu: float  # share of one core
    sessions: int


async def scale(server: Server, sessions: int, per_second: float, seconds: float) -> ScaleResult:
    opened = await open_sessions(server, sessions, 1)
    latencies: list[float] = []
    measuring = False

    def record(payload: memoryview) -> None:
        if measuring:
            latency_recorder(latencies)(payload)

    for session in opened:
        session.receivers[0].on_binary = record
    tick, period = 0.01, 1 / per_second
    slots = max(1, round(period / tick))
    by_slot: list[list[Session]] = [[] for _ in range(slots)]
    for session in opened:
        by_slot[random.randrange(slots)].append(session)
    running = True

    async def clock() -> None:
        start, n = time.perf_counter(), 0
        while running:
            for session in by_slot[n % slots]:
                session.customer.send(stamped(PAYLOAD))
            n += 1
            delay = start + n * tick - time.perf_counter()
            await asyncio.sleep(max(0.0, delay))

    task = asyncio.create_task(clock())
    await asyncio.sleep(3.0)  # warm up
    measuring = True
    cpu_before, start = server.cpu_seconds(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu = (server.cpu_seconds() - cpu_before) / (time.perf_counter() - start)
    measuring = running = False
    await task
    for session in opened:
        session.close()
    return ScaleResult(
        percentile(latencies, 50), percentile(latencies, 99), max(latencies), cpu, sessions
    )


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


# The run


def median_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


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
    seconds = args.seconds
    with servers(names) as live:
        scenarios = set(args.only or SCENARIOS)
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
            p50s: dict[str, list[float]] = {name: [] for name in names}

            async def p99(server: Server) -> float:
                p50, p99_ = await latency(server, 200, args.seconds * 2)
                p50s[server.name].append(p50)
                return p99_

            p99s = await rounds(names, args.rounds, p99, live)
            report("latency at 200 msg/s, p50 ms", p50s, "ms", False)
            report("latency at 200 msg/s, p99 ms", p99s, "ms", False)
            added = statistics.median(
                t - b for t, b in zip(p99s["tandem"], p99s["starlette"], strict=True)
            )
            print(f"    added p99 (tandem - starlette): {added:+.2f} ms (target ≤ 0.5)")
    if "memory" in (args.only or ["memory"]):
        # Fresh servers: memory freed by earlier scenarios would be reused and hide the cost.
        with servers(names) as live:
            title = f"idle memory per connection ({args.idle_sessions} sessions)"
            memory = await rounds(names, 1, lambda s: idle_memory(s, args.idle_sessions), live)
            report(title, memory, "KiB", False)
    if "scale" in (args.only or ["scale"]):
        # Fresh servers: the memory scenario's sessions are gone, but not their allocations.
        with servers(["tandem", "starlette"]) as live:
            for name in ("starlette", "tandem"):
                result = await scale(live[name], args.scale_sessions, 5, args.scale_seconds)
                per_thousand = result.cpu / (result.sessions / 1000) * 100
                print(
                    f"{result.sessions} sessions x 5 msg/s over {args.scale_seconds:.0f} s, "
                    f"{name}: p50 {result.p50:.1f} ms, p99 {result.p99:.1f} ms, "
                    f"max {result.worst:.0f} ms, CPU {result.cpu * 100:.0f}% of a core "
                    f"({per_thousand:.1f}% per 1,000 sessions)"
                )
                sys.stdout.flush()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--idle-sessions", type=int, default=1000)
    parser.add_argument("--scale-sessions", type=int, default=3000)
    parser.add_argument("--scale-seconds", type=float, default=60.0)
    parser.add_argument("--only", nargs="*", choices=SCENARIOS)
    uvloop.run(main(parser.parse_args()))
