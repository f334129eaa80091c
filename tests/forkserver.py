"""`python -m tandem` processes forked from an interpreter that has already imported the libraries
Tandem runs on: the tests that start real `tandem serve` processes without paying ~0.7 s of
imports (SQLAlchemy, Starlette, uvicorn, structlog and rich, typer and pydantic…) for each.

One fork server per test process, started at the first :func:`tandem_process` and stopped at the
end of the session (tests/conftest.py). It is this file run as a script, with the environment
the tests run in; it imports the modules `tandem serve` imports (:data:`PRELOAD`,
:data:`TANDEM_PRELOAD`) and does nothing else (no logging set-up, no event loop, no signal
handler, no thread, no `gc` change, no descriptor left open: checked before it serves). For each
request it forks a child that takes the caller's argv, environment, working directory and
standard streams, then runs `tandem` as `python -m tandem` does (runpy, ``__main__``), and exits
through the interpreter's own shutdown
(threads joined, atexit handlers, streams flushed). The child is a real separate process: its
own pid, signals, sockets, exit status. The fork server reaps it and reports its exit status to
the caller, whose :class:`ForkedProcess` has the parts of :class:`subprocess.Popen` the tests use.

What a forked child shares with its siblings, unlike separate interpreters: the hash seed
(``PYTHONHASHSEED``) and the memory pages of what was imported. Each child reseeds `random`
(CPython does at fork). Its environment may differ from the fork server's only in ``TANDEM_*``
variables (and pytest's own ``PYTEST_CURRENT_TEST``): any other difference could have been read
by a library at import, so such a request fails loudly instead.

Tests *about* the command itself (`tests/test_cli.py`, `tests/test_runtime_limits.py`, the
port-in-use start in `tests/test_serve_failures.py`, `tests/test_release.py`) still start real
interpreters."""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

PRELOAD = (
    # Third-party modules `tandem serve` imports (python -X importtime, a SQLite data directory
    # at head): the libraries' share of its start-up. Not uvloop nor httptools, which it imports
    # as it starts: tests/test_runtime_limits.py checks that a server maps them (it runs real
    # interpreters), and preloaded they would be mapped whatever the server did.
    "asyncio",
    "sqlite3",
    "typer",
    "typer._adapters",
    "pyotp",
    "argon2",
    "cryptography.fernet",
    "msgspec",
    "sqlalchemy",
    "sqlalchemy.dialects.sqlite.aiosqlite",
    # A serve imports these only to migrate (a new data directory: the engine) or on PostgreSQL;
    # preloaded, the forked servers that do either find them loaded.
    "asyncpg",
    "sqlalchemy.ext.asyncio",
    "sqlalchemy.dialects.postgresql.asyncpg",
    "aiosqlite",
    "structlog",
    "starlette.applications",
    "starlette.staticfiles",
    "prometheus_client",
    "segno",
    "uvicorn",
    "uvicorn.protocols.websockets.websockets_sansio_impl",
)
TANDEM_PRELOAD = (
    # Tandem's own modules that `tandem serve` imports (all of them: checked by the child's
    # sys.modules in tests/test_forkserver.py). None reads the environment at import (checked
    # as they are imported, below); what they hold from their import is what a real process
    # holds from its own start, except the creation time of the Prometheus counters
    # (``*_created``), which is the fork server's.
    "tandem.cli",
    "tandem.storage.sql",
    "tandem.server.app",
    "tandem.logs",
    "tandem.server.websocket_protocol",
    "tandem.directory",
    "tandem.startup",
)
VARYING = ("TANDEM_", "PYTEST_CURRENT_TEST")
"""Environment variables a request may set or change: read by Tandem at run time only."""
MAX_REQUEST = 1 << 20


class ForkServerError(RuntimeError):
    """The fork server could not start, died, or refused a request."""


# --- the fork server (this file as a script) -------------------------------------------------


def _serve(control: int, listener: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """Answer requests until ``control`` (the caller's pipe) closes. In a forked child, return
    its request and file descriptors (every other descriptor of the server closed)."""
    poller = select.epoll()
    poller.register(control, select.EPOLLIN)
    poller.register(listener.fileno(), select.EPOLLIN)
    connections: dict[int, socket.socket] = {}
    children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> pid, its connection
    while True:
        for fd, _ in poller.poll():
            if fd == control:
                if not os.read(control, 1):
                    return None  # the caller is gone: so is the server (children go on)
            elif fd == listener.fileno():
                connection, _ = listener.accept()
                connections[connection.fileno()] = connection
                poller.register(connection.fileno(), select.EPOLLIN)
            elif fd in connections:
                connection = connections.pop(fd)
                poller.unregister(fd)
                try:
                    message, fds, _, _ = socket.recv_fds(connection, MAX_REQUEST, 3)
                except OSError:  # the caller went away
                    message, fds = b"", []
                if not message:
                    connection.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    poller.close()
                    listener.close()
                    for other in (*connections.values(), connection):
                        other.close()
                    for pidfd, _ in children.items():
                        os.close(pidfd)
                    for _, other in children.values():
                        other.close()
                    os.close(control)
                    return json.loads(message), fds
                for received in fds:
                    os.close(received)
                pidfd = os.pidfd_open(pid)
                children[pidfd] = (pid, connection)
                poller.register(pidfd, select.EPOLLIN)
                with contextlib.suppress(OSError):  # the caller may have gone
                    connection.sendall(json.dumps({"pid": pid}).encode())
            elif fd in children:
                pid, connection = children.pop(fd)
                poller.unregister(fd)
                os.close(fd)
                _, status = os.waitpid(pid, 0)
                with contextlib.suppress(OSError):  # the caller may have gone
                    connection.sendall(
                        json.dumps({"returncode": os.waitstatus_to_exitcode(status)}).encode()
                    )
                connection.close()


def _run_child(request: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: become `python -m tandem <args>` as the caller asked."""
    for target, received in enumerate(fds):
        os.dup2(received, target)  # inheritable, as Popen's
    for received in fds:
        os.close(received)
    for stream in (sys.stdout, sys.stderr):
        # as the interpreter's start: line-buffered on a terminal (stderr always)
        stream.reconfigure(line_buffering=stream is sys.stderr or stream.isatty())  # type: ignore[attr-defined]
    for name, (soft, hard) in request["rlimits"].items():
        resource.setrlimit(getattr(resource, f"RLIMIT_{name}"), (soft, hard))
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.path.insert(0, os.getcwd())  # as `python -m` puts the working directory first
    sys.orig_argv = [sys.executable, "-m", "tandem", *request["args"]]
    sys.argv = ["-m", *request["args"]]
    import runpy

    runpy.run_module("tandem", run_name="__main__", alter_sys=True)


class _GuardedEnviron(dict[str, str]):
    """``os.environ`` while Tandem is imported: which variables it read, and whether it went
    through all of them."""

    def __init__(self, environ: Mapping[str, str], prefixes: tuple[str, ...]) -> None:
        super().__init__(environ)
        self.prefixes = prefixes
        self.read: set[str] = set()

    def _note(self, key: object) -> None:
        if isinstance(key, str) and key.startswith(self.prefixes):
            self.read.add(key)

    def __getitem__(self, key: str) -> str:
        self._note(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self._note(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self._note(key)
        return super().__contains__(key)

    def __iter__(self) -> Any:
        self.read.add("(every variable)")
        return super().__iter__()

    def items(self) -> Any:
        self.read.add("(every variable)")
        return super().items()

    def copy(self) -> dict[str, str]:
        self.read.add("(every variable)")
        return dict(super().items())


@contextlib.contextmanager
def _environment_unread(prefixes: tuple[str, ...]) -> Any:
    """Fail when what is imported meanwhile reads a variable a child may set differently."""
    real = os.environ
    guarded = _GuardedEnviron(real, prefixes)
    os.environ = guarded  # type: ignore[assignment]  # noqa: B003 (the same variables)
    try:
        yield
    finally:
        os.environ = real  # noqa: B003
    assert not guarded.read, f"read at import, so not forkable: {sorted(guarded.read)}"


def _check_pristine(signals_before: dict[int, Any]) -> None:
    """What a child inherits is what a fresh interpreter has: fail loudly otherwise."""
    import gc

    assert threading.active_count() == 1, threading.enumerate()
    assert gc.isenabled() and gc.get_freeze_count() == 0, "the collector was changed"
    assert gc.get_threshold() == (700, 10, 10), gc.get_threshold()
    changed = {
        signal.Signals(number).name
        for number, handler in signals_before.items()
        if signal.getsignal(number) != handler
    }
    assert not changed, f"signal dispositions changed by the imports: {changed}"
    assert not signal.pthread_sigmask(signal.SIG_BLOCK, []), "signals blocked"
    import asyncio
    import logging

    assert not logging.getLogger().handlers, "logging was configured"
    assert asyncio.events._event_loop_policy is None, "an event loop policy was set"  # type: ignore[attr-defined]
    assert "uvloop" not in sys.modules and "httptools" not in sys.modules


def _main(path: str) -> None:
    signals_before = {
        number: signal.getsignal(number)
        for number in signal.valid_signals()
        if number not in (signal.SIGKILL, signal.SIGSTOP)
    }
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    with _environment_unread(VARYING):
        for name in TANDEM_PRELOAD:
            importlib.import_module(name)
    _check_pristine(signals_before)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(64)
    open_fds = {int(fd) for fd in os.listdir("/proc/self/fd")}
    expected = {0, 1, 2, listener.fileno()}
    assert open_fds <= expected | {max(open_fds)}, open_fds  # (listdir's own descriptor)
    os.write(1, b"ready\n")
    served = _serve(0, listener)
    if served is None:
        # The caller closed the control pipe: exit now. The interpreter's own shutdown would
        # tear down every preloaded module's objects for nothing (its one output, "ready",
        # went out through os.write; the caller removes its socket's directory): 3-7 s on a
        # loaded machine (load average 13), past the caller's wait (seen: "timed out after
        # 10 seconds" at the end of a session); 0.1 s so.
        os._exit(0)
    _run_child(*served)  # its SystemExit, or an exception, ends it as an interpreter's would


# --- the caller's side -----------------------------------------------------------------------


class ForkServer:
    """The fork server of this test process: started by :meth:`start`, stopped by :meth:`close`."""

    def __init__(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="tandem-forks-")
        self.path = os.path.join(self._directory.name, "forks")
        self.environ = dict(os.environ)
        # its own errors go to a file of its own (the caller's stderr may be a test's capture)
        self.errors = open(os.path.join(self._directory.name, "stderr"), "w+b")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, __file__, self.path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            env=self.environ,
        )
        assert self.process.stdout is not None
        ready = self.process.stdout.readline()
        if ready != b"ready\n":
            self.process.kill()
            raise ForkServerError(f"the fork server did not start: {self._gone()}")

    def _gone(self) -> str:
        """The exit status and last words of a fork server that stopped."""
        self.errors.seek(0)
        said = self.errors.read().decode(errors="replace")[-3000:]
        return f"exit {self.process.wait()}, stderr:\n{said}"

    def spawn(
        self,
        args: Sequence[str],
        fds: Sequence[int],
        env: Mapping[str, str],
        cwd: str,
        rlimits: Mapping[str, tuple[int, int]],
    ) -> socket.socket:
        if self.process.poll() is not None:
            raise ForkServerError(f"the fork server is gone: {self._gone()}")
        unexpected = {
            name
            for name in set(env) ^ set(self.environ)
            | {name for name in env if self.environ.get(name) != env[name]}
            if not name.startswith(VARYING)
        }
        if unexpected:
            raise ForkServerError(
                f"a forked child cannot have these variables differ from the fork server's "
                f"(a library may have read them at import): {sorted(unexpected)}"
            )
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        connection.connect(self.path)
        request = {"args": list(args), "env": dict(env), "cwd": cwd, "rlimits": dict(rlimits)}
        socket.send_fds(connection, [json.dumps(request).encode()], list(fds))
        return connection

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()  # the server's control pipe: it exits
        try:
            self.process.wait(timeout=10)
        finally:
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.errors.close()
            self._directory.cleanup()


_server: ForkServer | None = None


def fork_server() -> ForkServer:
    """This test process's fork server, started at the first call."""
    global _server
    if _server is None:
        _server = ForkServer()
    return _server


def close_fork_server() -> None:
    """Stop this process's fork server, if it was started (at the end of the session)."""
    global _server
    if _server is not None:
        server, _server = _server, None
        server.close()


StreamSpec = int | IO[Any] | None


class ForkedProcess:
    """A forked `python -m tandem`: as much of :class:`subprocess.Popen` as the tests use."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        stdin: StreamSpec = None,
        stdout: StreamSpec = None,
        stderr: StreamSpec = None,
        text: bool = False,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        rlimits: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        if list(args[:3]) != [sys.executable, "-m", "tandem"]:
            raise ForkServerError(f"only `python -m tandem …` is forked, not {args!r}")
        self.args = list(args)
        self.returncode: int | None = None
        self.stdin: IO[Any] | None = None
        self.stdout: IO[Any] | None = None
        self.stderr: IO[Any] | None = None
        child_fds: list[int] = []
        to_close: list[int] = []
        ours: list[tuple[str, int, str]] = []
        for number, spec in enumerate((stdin, stdout, stderr)):
            if spec is None:
                child_fds.append(number)
            elif spec == subprocess.PIPE:
                read, write = os.pipe()
                child, mine = (read, write) if number == 0 else (write, read)
                child_fds.append(child)
                to_close.append(child)
                mode = "w" if number == 0 else "r"
                ours.append((("stdin", "stdout", "stderr")[number], mine, mode))
            elif spec == subprocess.DEVNULL:
                null = os.open(os.devnull, os.O_RDWR)
                child_fds.append(null)
                to_close.append(null)
            elif spec == subprocess.STDOUT:
                assert number == 2
                child_fds.append(child_fds[1])
            elif isinstance(spec, int):
                child_fds.append(spec)
            else:
                child_fds.append(spec.fileno())
        try:
            self._connection = fork_server().spawn(
                self.args[3:],
                child_fds,
                os.environ if env is None else env,
                os.fspath(cwd) if cwd is not None else os.getcwd(),
                rlimits or {},
            )
        finally:
            for fd in to_close:
                os.close(fd)
        for name, fd, mode in ours:
            opened = open(fd, mode + ("" if text else "b"))  # noqa: SIM115 (closed with us)
            setattr(self, name, opened)
        answer = self._receive(timeout=30)
        if answer is None or "pid" not in answer:
            raise ForkServerError(f"the fork server did not fork: {answer!r}")
        self.pid: int = answer["pid"]

    def _receive(self, timeout: float | None) -> dict[str, Any] | None:
        ready, _, _ = select.select([self._connection], [], [], timeout)
        if not ready:
            return None
        message = self._connection.recv(4096)
        if not message:
            self._connection.close()
            why = (
                _server._gone()
                if _server is not None and _server.process.poll() is not None
                else ""
            )
            raise ForkServerError(
                f"the fork server closed the connection without an exit status {why}"
            )
        answer: dict[str, Any] = json.loads(message)
        return answer

    def poll(self) -> int | None:
        if self.returncode is None:
            answer = self._receive(timeout=0)
            if answer is not None:
                self.returncode = answer["returncode"]
                self._connection.close()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            answer = self._receive(timeout)
            if answer is None:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            self.returncode = answer["returncode"]
            self._connection.close()
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:  # as Popen: never a signal to a pid that may be reused
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(
        self, input: str | bytes | None = None, timeout: float | None = None
    ) -> tuple[Any, Any]:
        """As Popen's: write ``input``, read stdout and stderr to their end, wait."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.stdin is not None:
            if input:
                self.stdin.write(input)
            self.stdin.close()
        readers = {f.fileno(): f for f in (self.stdout, self.stderr) if f is not None}
        chunks: dict[int, list[bytes]] = {fd: [] for fd in readers}
        with select.epoll() as poller:
            for fd in readers:
                poller.register(fd, select.EPOLLIN)
            open_fds = set(readers)
            while open_fds:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(self.args, timeout or 0)
                for fd, _ in poller.poll(left):
                    data = os.read(fd, 32768)
                    if data:
                        chunks[fd].append(data)
                    else:
                        poller.unregister(fd)
                        open_fds.discard(fd)
        results = []
        for stream in (self.stdout, self.stderr):
            if stream is None:
                results.append(None)
                continue
            data = b"".join(chunks[stream.fileno()])
            if isinstance(stream, io.TextIOBase):
                text = data.decode(stream.encoding).replace("\r\n", "\n").replace("\r", "\n")
                results.append(text)
            else:
                results.append(data)
            stream.close()
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        self.wait(left)
        return results[0], results[1]

    def __enter__(self) -> ForkedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        for stream in (self.stdout, self.stderr, self.stdin):
            if stream is not None:
                stream.close()
        self.wait()


def tandem_process(args: Sequence[str], **options: Any) -> ForkedProcess:
    """``subprocess.Popen(args, **options)`` for ``args`` = ``[sys.executable, "-m", "tandem",
    …]``, forked from this test process's fork server (options: stdin, stdout, stderr, text,
    env, cwd, and ``rlimits`` by name, as ``{"NOFILE": (soft, hard)}``)."""
    return ForkedProcess(args, **options)


def tandem_run(
    args: Sequence[str], *, timeout: float, text: bool = False, **options: Any
) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run(args, capture_output=True, timeout=timeout, text=text, **options)``
    for ``args`` = ``[sys.executable, "-m", "tandem", …]``, forked (options as
    :func:`tandem_process`'s)."""
    with tandem_process(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=text, **options
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    return subprocess.CompletedProcess(process.args, process.wait(), stdout, stderr)


if __name__ == "__main__":
    del sys.path[0]  # this file's directory (tests/): nothing of it is imported by a child
    _main(sys.argv[1])
