"""Graceful stop (issue 13 fault 7): SIGTERM to a real `tandem serve` tells every socket why,
hands its sessions over to the next process (`session_suspended`, both sides told to reconnect:
not `agent_lost`; tests/server/test_restart_handover.py resumes them), anchors the audit trail and
exits 0 in time."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.conftest import add_user, free_port, tandem_in_process
from tests.forkserver import ForkedProcess, tandem_process
from tests.server.helpers import (
    login_cookie,
    open_agent,
    pending_session,
    recv_json,
    send,
    start_session,
)
from tests.server.test_back_pressure import StalledClient

TANDEM = [sys.executable, "-m", "tandem"]
# The server's whole stop, Python's exit included, must fit in this; 10 s leaves a busy
# machine room for the exit, while a stop that waited on a frozen socket (uvicorn's wait for
# it, then its 10 s close timeout) still overruns it.
SHUTDOWN_TIMEOUT = 10.0
FROZEN_CLOSE_TIMEOUT = 2.0
"""The ``close_timeout_seconds`` of the stop with a frozen agent: the stop's wait for its socket."""


@dataclasses.dataclass
class Served:
    """What the socket helpers need of a server (a subprocess here)."""

    base: str
    ws_base: str
    origin: str
    process: ForkedProcess
    data_dir: Path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from serving(tmp_path)


@pytest.fixture
def served_closing_sooner(tmp_path: Path) -> Iterator[Served]:
    """As :func:`served`, its ``close_timeout_seconds`` :data:`FROZEN_CLOSE_TIMEOUT`."""
    yield from serving(tmp_path, TANDEM_CLOSE_TIMEOUT_SECONDS=str(FROZEN_CLOSE_TIMEOUT))


def serving(tmp_path: Path, **env: str) -> Iterator[Served]:
    """A `tandem serve` with alice, its environment with ``env`` added."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    add_user(data_dir, "alice", display_name="Alice")
    port = free_port()
    process = tandem_process(
        [
            *TANDEM,
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--shutdown-timeout",
            str(SHUTDOWN_TIMEOUT),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # as ServeProcess: a start on a loaded 2-core machine
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "server did not start"
            time.sleep(0.1)
        yield Served(base, f"ws://127.0.0.1:{port}", base, process, data_dir)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


async def messages_until_closed(ws: ClientConnection) -> tuple[list[dict[str, Any]], int]:
    """Every control message the server sends until it closes; and the close code."""
    received: list[dict[str, Any]] = []
    try:
        while True:
            frame = await ws.recv()
            if isinstance(frame, str):
                received.append(json.loads(frame))
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, f"dropped without a close frame after {received}"
        return received, exc.rcvd.code


def audit_records(data_dir: Path) -> list[dict[str, Any]]:
    exported = tandem_in_process("audit", "export", "--data-dir", str(data_dir))
    assert exported.returncode == 0, exported.stderr
    return [json.loads(line) for line in exported.stdout.splitlines() if line.strip()]


async def test_sigterm_tells_both_sides_to_reconnect_hands_over_and_exits_in_time(
    served: Served,
) -> None:
    customer, agent, created = await pending_session(served)  # type: ignore[arg-type]
    lobby = await open_agent(served, login_cookie(served))  # type: ignore[arg-type]  # no session
    stopping = time.monotonic()
    served.process.send_signal(signal.SIGTERM)

    for ws in (customer, agent):
        messages, code = await messages_until_closed(ws)
        assert [m["type"] for m in messages] == ["restarting"] and code == 1012, messages
        assert messages[0]["reason"] == "reconnect" and "restarting" in messages[0]["message"]
    messages, code = await messages_until_closed(lobby)
    assert [m["type"] for m in messages] == ["restarting"] and code == 1012
    assert messages[0]["reason"] == "server_shutdown"

    assert served.process.wait(timeout=SHUTDOWN_TIMEOUT + 5) == 0
    assert time.monotonic() - stopping < SHUTDOWN_TIMEOUT

    verify = tandem_in_process("audit", "verify", "--data-dir", str(served.data_dir))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    records = audit_records(served.data_dir)
    suspended = [r for r in records if r["action"] == "session_suspended"]
    assert len(suspended) == 1 and suspended[0]["subject"] == created["session_id"], suspended
    assert suspended[0]["details"]["reason"] == "server_restart", suspended
    assert not [r for r in records if r["action"] == "session_ended"]
    assert not [r for r in records if "agent_lost" in json.dumps(r)]
    assert records[-1]["action"] == "server_stopped"


async def test_an_agent_that_stopped_reading_does_not_hold_up_the_stop(
    served_closing_sooner: Served,
) -> None:
    """A frozen agent's socket cannot take `restarting`: the customer is still told at once,
    and the process still exits 0 within the shutdown timeout. What the stop waits for the
    frozen socket is ``close_timeout_seconds`` (shortened here from 5 s)."""
    served = served_closing_sooner
    customer, created = await start_session(served)  # type: ignore[arg-type]
    agent = StalledClient(served, "/ws/agent", login_cookie(served))  # type: ignore[arg-type]
    try:
        await agent.open()
        await agent.send_json(type="join", code=created["code"])
        assert (await agent.next_json())["type"] == "joined"
        assert (await recv_json(customer))["type"] == "agent_joined"
        await send(customer, type="consent", granted=True)
        for _ in range(24):  # 6 MiB the agent never reads: its buffers are full
            await customer.send(b"\x00" * (256 * 1024))
        stopping = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        messages, code = await messages_until_closed(customer)
        assert [m["type"] for m in messages][-1:] == ["restarting"] and code == 1012, messages
        assert messages[-1]["reason"] == "reconnect"
        assert served.process.wait(timeout=SHUTDOWN_TIMEOUT + 5) == 0
        assert time.monotonic() - stopping < SHUTDOWN_TIMEOUT
    finally:
        agent.shut()
    records = audit_records(served.data_dir)
    suspended = [r for r in records if r["action"] == "session_suspended"]
    assert [r["details"]["reason"] for r in suspended] == ["server_restart"]
    assert not [r for r in records if r["action"] == "session_ended"]


async def test_no_socket_outlives_a_stopped_servers_loop_half_open(
    server_factory: Any,
) -> None:
    """A peer that never answers the close (a frozen page, or a test whose loop is blocked while
    it stops the server): once the stop's time is up, its connection is cut, not left open with
    nobody to serve it (the socket stayed open until garbage collection, a ResourceWarning
    that failed whichever test ran then)."""
    server = server_factory(shutdown_timeout_seconds=3.0, close_timeout_seconds=30.0)
    client = StalledClient(server, "/ws/customer", "")
    await client.open()
    await client.send_json(type="create")
    await asyncio.sleep(0)  # hand the message to the socket
    server.stop()  # blocks this loop: the client answers nothing meanwhile
    assert not server.thread.is_alive()
    gc.collect()  # a transport left open would warn now (pytest fails the test on it)
    client.sock.setblocking(True)
    client.sock.settimeout(10)
    received = b""
    try:
        while chunk := client.sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass  # cut: as good as an end
    finally:
        client.sock.close()
