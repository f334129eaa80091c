"""A redis-server of one test alone, to stop, freeze and start again: never the shared Redis
that other tests (and other runs on the machine) use."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

from tests.conftest import free_port, service_missing


class PrivateRedis:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop it as a restart does (SIGTERM; it closes every connection)."""
        if self.process is not None:
            self.resume()
            self.process.terminate()
            self.process.wait(5)
            self.process = None

    def pause(self) -> None:
        """Freeze it (SIGSTOP): connections stay open, nothing is answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.process is not None and self.paused:
            self.process.send_signal(signal.SIGCONT)
            self.paused = False


def running_private_redis() -> Iterator[PrivateRedis]:
    """For a test module's ``private_redis`` fixture: a started PrivateRedis, stopped after."""
    binary = shutil.which("redis-server")
    if binary is None:
        service_missing("redis-server is not installed: cannot stop and restart a Redis")
    server = PrivateRedis(binary)
    server.start()
    yield server
    server.stop()
