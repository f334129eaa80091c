"""Shared fixtures: a real uvicorn server on loopback, with an injectable clock."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import argon2
import httpx
import httpx2
import pytest
import typer
import typer.testing
import uvicorn
from click.testing import Result
from hypothesis import settings as hypothesis_settings
from starlette.types import ASGIApp
from typer.testing import CliRunner

from tandem import auth, cli, crypto
from tandem.cli import server_config
from tandem.config import Settings
from tandem.directory import Directory, offline, operator
from tandem.fanout.base import Fanout
from tandem.server.app import create_app
from tandem.storage.base import Storage, TrainingRecord
from tandem.storage.sql import SQLStorage
from tandem.training import DEFAULT_POLICY_VERSION
from tests.grants import of_org
from tests.schedule import pytest_addoption, pytest_xdist_make_scheduler  # noqa: F401 (hooks)

# Hypothesis's per-example deadline (200 ms) is a wall-clock check: on a busy 2-core machine it
# failed tests whose property held. Properties are checked; speed is measured in bench/.
hypothesis_settings.register_profile("tandem", deadline=None)
hypothesis_settings.load_profile("tandem")


def _ast_parse_whole() -> None:
    """CPython before 3.11.8 keeps one AST-building depth per interpreter (gh-106905): Python
    code that runs inside ``ast.parse`` (a finalizer the garbage collector calls there, and
    through it another thread) and parses too (a traceback being formatted does) leaves it
    wrong, and the outer parse raises ``SystemError: AST constructor recursion depth
    mismatch``. pytest parses to rewrite a test module's asserts on import and to show a
    failure's source; the servers under test run in threads of the same process and log
    tracebacks. So each parse here runs alone, with the collector held off until it is done:
    whatever a finalizer would report is reported after it, not in pytest's place."""
    import ast
    import sys

    if sys.version_info >= (3, 11, 8):
        return
    parse = ast.parse
    alone = threading.RLock()

    def parse_whole(*args: Any, **kwargs: Any) -> Any:
        with alone:
            collecting = gc.isenabled()
            gc.disable()
            try:
                return parse(*args, **kwargs)
            finally:
                if collecting:
                    gc.enable()

    ast.parse = parse_whole  # type: ignore[assignment]


_ast_parse_whole()

AGENT_PASSWORD = "blue-kettle-orbit-42"

PROCESS_SECONDS = 600.0
"""How long a process a test starts (a fresh interpreter, a ``tandem`` command) may take to
finish before the test fails: only a hang should reach it. On two cores busy with other test
runs (load 18), a fresh interpreter importing the CLI and the server took 110 s to open a new
SQLite file and exit; the 60 s and 120 s bounds of those tests failed with the work done."""

HTTP_SECONDS = 60.0
"""How long a test's HTTP request waits for the server unless the test sets its own bound:
httpx's own default, 5 s, failed requests a server answered later on two cores busy with other
test runs (load 26: a signed-in ``GET /api/me``, an erasure after a stalled database)."""
for _function in (
    httpx.Client.__init__,
    httpx.AsyncClient.__init__,
    httpx.request,
    httpx.get,
    httpx.options,
    httpx.head,
    httpx.post,
    httpx.put,
    httpx.patch,
    httpx.delete,
):
    assert _function.__kwdefaults__ is not None and "timeout" in _function.__kwdefaults__
    _function.__kwdefaults__["timeout"] = httpx.Timeout(HTTP_SECONDS)


REQUIRE_SERVICES = os.environ.get("TANDEM_REQUIRE_SERVICES") == "1"
"""Set by .ci/run where PostgreSQL and Redis run beside the tests: there a test that cannot
reach them fails, so CI never passes with the storage and scale-out tests skipped."""


def service_missing(reason: str) -> NoReturn:
    """Skip the test for want of PostgreSQL or Redis, or fail it under TANDEM_REQUIRE_SERVICES=1."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (TANDEM_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def redis_running(host: str = REDIS_HOST, port: int = REDIS_PORT) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def requires_redis() -> None:
    """The test needs the Redis at 127.0.0.1:6379 (see :func:`service_missing`)."""
    if not redis_running():
        service_missing(f"no Redis server answering PING at {REDIS_HOST}:{REDIS_PORT}")


class FakeClock:
    """Wall-clock time plus an offset the test can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def _ephemeral_ports() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


EPHEMERAL_PORTS = _ephemeral_ports()


def free_port() -> int:
    """A loopback port no socket holds now, for a server in another process to listen on (one
    in this process gets :func:`bound_socket` instead). Drawn below the kernel's ephemeral range:
    a port from there (what binding port 0 gives) can be taken meanwhile by any outgoing
    connection on the machine (a test's client, a PostgreSQL connection, a browser), and the
    server then failed with "address already in use"; below it only another such draw can."""
    low = EPHEMERAL_PORTS[0]
    for _ in range(50) if low > 11_000 else ():
        port = secrets.randbelow(low - 10_000) + 10_000
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        bound: int = sock.getsockname()[1]
        return bound


def bound_socket() -> socket.socket:
    """A loopback TCP socket bound to a port of its own, for a server to listen on. Held from
    here until the server closes it, so no other test (nor another pytest-xdist worker, nor
    another run on the machine) can take the port in between, as it could after free_port()."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


OPEN_CONNECTIONS: list[Any] = []
"""Every WebSocket client connection a test opened (tests/server/helpers.py); closed when it ends
by :func:`close_client_connections`, which every test that opens one must use."""
_TRACKING: list[bool] = []


@pytest.fixture
async def close_client_connections() -> AsyncIterator[None]:
    """Close every client connection the test opened, on its own loop, so no socket outlives its
    test (one left open is collected later, in another test, as a ResourceWarning). Autouse for
    tests/server; other async tests that open connections ask for it."""
    _TRACKING.append(True)
    try:
        yield
    finally:
        _TRACKING.pop()
        loop = asyncio.get_running_loop()
        while OPEN_CONNECTIONS:
            connection = OPEN_CONNECTIONS.pop()
            if connection.loop is loop:
                await connection.close()
            elif not connection.loop.is_closed():  # opened under another loop (asyncio.run)
                connection.loop.call_soon_threadsafe(connection.transport.abort)
            else:
                raise RuntimeError(
                    "a client connection outlived the loop it was opened on: close it there"
                )


def track_connection(connection: Any) -> None:
    """Called for each client connection a test helper opens."""
    if not _TRACKING:
        connection.transport.abort()
        raise RuntimeError(
            "a test opened a WebSocket client without the close_client_connections fixture "
            "(its socket would outlive the test)"
        )
    OPEN_CONNECTIONS.append(connection)


class RunningServer:
    def __init__(
        self,
        settings: Settings,
        clock: FakeClock,
        fanout: Fanout | None = None,
        log_level: str = "warning",
        wrap: Callable[[ASGIApp], ASGIApp] | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        """``sock``: a socket bound to ``settings.port`` (see :func:`bound_socket`); without one,
        uvicorn binds the port itself."""
        self.settings = settings
        self.sockets = [sock] if sock is not None else None
        self.clock = clock
        scheme = "https" if settings.tls else "http"
        self.base = f"{scheme}://127.0.0.1:{settings.port}"
        self.ws_base = f"{'wss' if settings.tls else 'ws'}://127.0.0.1:{settings.port}"
        self.origin = self.base
        app: ASGIApp = create_app(settings, clock=clock, fanout=fanout, tick_seconds=0.05)
        if wrap is not None:  # e.g. tests/malicious.py: the same server, run by an attacker
            app = wrap(app)
        config = server_config(app, settings, log_level=log_level)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, args=(self.sockets,), daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30  # a condition, not a sleep: generous for busy machines
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def stop_later(self) -> None:
        """Ask the server to stop, without waiting (:func:`stopping_servers` joins it)."""
        self.server.should_exit = True
        _STOPPING.append(self)


_STOPPING: list[RunningServer] = []


@pytest.fixture(scope="session", autouse=True)
def stopping_servers() -> Iterator[None]:
    """A test's servers are told to stop when it ends, and the next test starts meanwhile:
    uvicorn takes at least 0.2 s to stop (a 0.1 s tick to notice, a 0.1 s grace for its
    connections), the whole of many tests' teardown. Each has its own port, data directory,
    PostgreSQL schema and Redis prefix, so nothing of one test reaches the next. They are all
    joined here, at the end of the run; one that did not stop fails the run."""
    yield
    hung = []
    for running in _STOPPING:
        running.thread.join(timeout=10)
        if running.thread.is_alive():
            hung.append(running.base)
    _STOPPING.clear()
    assert not hung, f"servers that did not stop within 10 s: {hung}"


_CLICK_COMMANDS: dict[int, Any] = {}
_build_click_command = typer.testing._get_command


def _built_click_command(app: typer.Typer) -> Any:
    command = _CLICK_COMMANDS.get(id(app))
    if command is None:
        command = _CLICK_COMMANDS[id(app)] = _build_click_command(app)
    return command


@pytest.fixture(scope="session", autouse=True)
def click_command_built_once() -> Iterator[None]:
    """Typer's test runner builds the Click command from ``cli.app`` (a walk over every command's
    signature and type hints: about a tenth of a second of CPU) at each call; here once per
    process, as the ``tandem`` entry point does at its start. Click makes a new context for each
    call, so nothing carries over from one call to the next."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typer.testing, "_get_command", _built_click_command)
        yield


def tandem_in_process(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``tandem`` command (:func:`tandem.cli.main`'s Typer app) in this process, in a
    thread of its own (it runs its own event loop), instead of paying a new interpreter's start-up
    (most of a second of CPU here) for each call. Exit code, stdout and stderr are as a subprocess
    would see them; an exception the command does not handle is raised here, as a test failure.
    ``env`` is the whole environment, as for subprocess.run. tests/test_cli.py runs the real
    ``python -m tandem`` in subprocesses."""
    outcome: list[Result] = []
    # ``env``, as subprocess.run's: the whole environment (what it leaves out is unset).
    overrides: dict[str, str | None] | None = None
    if env is not None:
        overrides = {name: None for name in os.environ if name not in env}
        overrides.update(env)

    def invoke() -> None:
        outcome.append(CliRunner().invoke(cli.app, list(args), input=stdin, env=overrides))

    worker = threading.Thread(target=invoke, daemon=True)
    worker.start()
    worker.join(timeout=60)  # as subprocess.run's timeout: a command that hangs fails the test
    if worker.is_alive():
        raise TimeoutError(f"tandem {' '.join(args)} did not return within 60 s")
    [result] = outcome
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(
        ["tandem", *args], result.exit_code, result.stdout, result.stderr
    )


def add_user(
    data_dir: Path,
    username: str,
    role: str = "agent",
    display_name: str | None = None,
    password: str = AGENT_PASSWORD,
    *,
    org: str = "default",
    teams: tuple[str, ...] | None = None,
    mfa_exempt: bool = True,
    trained: bool = True,
) -> None:
    """An account without a second factor (exempt, like ``--no-mfa``), unless told otherwise;
    trained (:func:`mark_trained`) unless ``trained=False``."""

    async def run() -> None:
        storage = await SQLStorage.open_sqlite(data_dir / "tandem.sqlite3")
        try:
            await auth.create_user(
                storage,
                username,
                password,
                role,
                display_name,
                time.time(),
                grant=of_org(org),
                teams=teams,
                mfa_exempt=mfa_exempt,
            )
            if trained:
                await mark_trained(storage, username, org)
        finally:
            await storage.close()

    # Tests may already run an event loop in this thread.
    worker = threading.Thread(target=asyncio.run, args=(run(),))
    worker.start()
    worker.join()


async def mark_trained(storage: Storage, username: str, org: str = "default") -> None:
    """Test accounts join sessions without the practice exercise (tandem.training): Tandem's
    default policy acknowledged and a completion recorded now, straight in storage, as
    ``tandem training record`` would (which also audits it). tests/server/test_training.py
    tests untrained accounts (``add_user(..., trained=False)``)."""
    grant, now = of_org(org), time.time()
    await storage.acknowledge_policy(grant, username, DEFAULT_POLICY_VERSION, now)
    record = TrainingRecord(f"test-{username}", username, org, now, DEFAULT_POLICY_VERSION, "test")
    await storage.add_training(grant, record)


ServerFactory = Callable[..., RunningServer]

# Production hashes passwords with argon2id's RFC 9106 low-memory profile (64 MiB, 3 passes,
# about half a second on these machines); the suite hashes thousands. Tests swap in argon2id at
# the smallest cost the library accepts. The swap lives here, not behind a setting or an
# environment variable, so nothing a deployment can set makes production hash cheaply;
# tests/test_crypto.py checks the production profile with `production_password_hashing`.
PRODUCTION_PASSWORD_HASHER = crypto._hasher
CHEAP_PASSWORD_HASHER = argon2.PasswordHasher(
    time_cost=1, memory_cost=8, parallelism=1, type=argon2.Type.ID
)


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(crypto, "_hasher", CHEAP_PASSWORD_HASHER)
        yield


# Every httpx.get/post and new httpx.Client loads a CA bundle into a new SSL context: a third of a
# second each on these machines, for clients that mostly speak plain HTTP to loopback. Tests reuse
# the context made for the same CA bundle (the same SSL_CERT_FILE/SSL_CERT_DIR); a test that
# passes its own `verify` or `cert` still gets a new one. The same for httpx2, the client Tandem
# itself talks to identity providers and verified sites with (a new one for each sign-in).
_SSLContextMaker = Callable[..., ssl.SSLContext]


def _reusing(new_ssl_context: _SSLContextMaker) -> _SSLContextMaker:
    made: dict[tuple[bool, str | None, str | None], ssl.SSLContext] = {}

    def reused_default_ssl_context(
        verify: Any = True, cert: Any = None, trust_env: bool = True
    ) -> ssl.SSLContext:
        if verify is not True or cert is not None:
            return new_ssl_context(verify=verify, cert=cert, trust_env=trust_env)
        store = (trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        if store not in made:
            made[store] = new_ssl_context(trust_env=trust_env)
        return made[store]

    return reused_default_ssl_context


@pytest.fixture(scope="session", autouse=True)
def reused_ssl_context() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for transports in (httpx._transports.default, httpx2._transports.default):
            patch.setattr(transports, "create_ssl_context", _reusing(transports.create_ssl_context))
        yield


@pytest.fixture
def production_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test hashes and verifies with the production hasher."""
    monkeypatch.setattr(crypto, "_hasher", PRODUCTION_PASSWORD_HASHER)


_SQLITE_TEMPLATE: list[Path] = []
"""Where :func:`migrated_sqlite` keeps this process's migrated empty database (set by
:func:`sqlite_template_directory`, made on first use)."""


@pytest.fixture(scope="session", autouse=True)
def sqlite_template_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    _SQLITE_TEMPLATE.append(tmp_path_factory.mktemp("sqlite-template") / "tandem.sqlite3")
    yield
    _SQLITE_TEMPLATE.clear()


def migrated_sqlite(path: Path) -> Path:
    """``path``, made a copy of an empty SQLite database migrated once per test process: what
    ``SQLStorage.open_sqlite`` makes of a new file, without running every migration again for
    each test (a tenth of a second of CPU each). The migrations themselves are tested from
    empty and from every earlier schema in tests/storage (test_schema, test_legacy_upgrade)."""
    [template] = _SQLITE_TEMPLATE
    if not template.exists():

        async def make() -> None:
            await (await SQLStorage.open_sqlite(template.with_suffix(".new"))).close()

        worker = threading.Thread(target=asyncio.run, args=(make(),))  # a loop may be running
        worker.start()
        worker.join()
        made = template.with_suffix(".new")
        assert not Path(f"{made}-wal").exists(), "the template's WAL was not checkpointed"
        made.rename(template)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(template, path)
    return path


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SQLStorage]:
    """A fresh SQLite storage in a temporary directory."""
    store = await SQLStorage.open_sqlite(migrated_sqlite(tmp_path / "db.sqlite3"))
    yield store
    await store.close()


class DataTemplates:
    """Data directories made once per run and copied for each server: a migrated database with
    alice, and optionally a seed (:func:`two_organisations`) on top. Copies, not shared
    directories: every server still starts from its own files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: dict[Callable[[Directory], Awaitable[None]] | None, Path] = {}

    def copy_to(
        self, data_dir: Path, seed: Callable[[Directory], Awaitable[None]] | None = None
    ) -> None:
        if seed is not None and seed not in TEMPLATED_SEEDS:
            self.copy_to(data_dir)  # a seed of one test: run on a copy of the plain template
            seed_directory(data_dir, seed)
            return
        if seed not in self.made:
            template = self.root / f"template{len(self.made)}"
            add_user(template, "alice", display_name="Alice")
            if seed is not None:
                seed_directory(template, seed)
            self.made[seed] = template
        shutil.copytree(self.made[seed], data_dir, dirs_exist_ok=True)


@pytest.fixture(scope="session")
def data_templates(
    tmp_path_factory: pytest.TempPathFactory, cheap_password_hashing: None
) -> DataTemplates:
    return DataTemplates(tmp_path_factory.mktemp("data-templates"))


@pytest.fixture
def server_factory(tmp_path: Path, data_templates: DataTemplates) -> Iterator[ServerFactory]:
    """Start real servers with settings overrides; each is stopped at the end of the test."""
    started: list[RunningServer] = []

    def start(
        fanout: Fanout | None = None,
        log_level: str = "warning",
        seed: Callable[[Directory], Awaitable[None]] | None = None,
        wrap: Callable[[ASGIApp], ASGIApp] | None = None,
        **overrides: object,
    ) -> RunningServer:
        data_dir = tmp_path / f"data{len(started)}"
        sock = bound_socket()
        port = sock.getsockname()[1]
        try:
            settings = Settings.load(environ={}, data_dir=data_dir, port=port, **overrides)
            data_templates.copy_to(data_dir, seed)
            running = RunningServer(
                settings, FakeClock(), fanout=fanout, log_level=log_level, wrap=wrap, sock=sock
            )
        except BaseException:
            sock.close()  # a server that was never made does not keep its port open
            raise
        running.start()
        started.append(running)
        return running

    yield start
    # Servers on this test's PostgreSQL schema or Redis fan-out stop before those go (the
    # test's own fixtures, torn down next); the others stop while the next test runs.
    shared = [r for r in started if r.settings.database_url or r.settings.redis_url]
    for running in started:
        running.stop_later()
    for running in shared:
        running.thread.join(timeout=10)


@pytest.fixture
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests carry the `e2e` marker (a conftest's ``pytestmark`` marks nothing, so it is
    added here; ``-m "not e2e"`` leaves them out) and run last: sync Playwright keeps an event
    loop running in the main thread while its browser is open, which async tests cannot share."""
    for item in items:
        if "e2e" in item.path.parts:
            item.add_marker(pytest.mark.e2e)
    items.sort(key=lambda item: "e2e" in item.path.parts)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """``-m "not e2e"`` (`make pytest-fast`, `make check`) leaves out every test under tests/e2e
    (the marker is given by the path, above), so their modules are not even imported: each
    pytest-xdist worker collects every module, and these import Playwright (about a second of
    CPU per worker in all)."""
    if config.option.markexpr == "not e2e" and collection_path == E2E_DIRECTORY:
        return True
    return None


E2E_DIRECTORY = Path(__file__).parent / "e2e"


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, ``--dist load`` hands each worker its tests in collection order, so
    a worker's browser tests still come after its async ones; ``worksteal`` moves tests from the
    end of one worker's queue to another's, and would run async tests in a worker whose browser
    is open. A run that may hold browser tests distributes with ``load`` instead (`make test`
    runs them in a pass of their own, ``-m e2e``, after ``-m "not e2e"`` with worksteal)."""
    if config.getoption("dist", "no") == "worksteal" and config.option.markexpr != "not e2e":
        config.option.dist = "load"


def pytest_collection_finish(session: pytest.Session) -> None:
    """What exists once the tests are collected (about 1,200 modules, the test items, their
    marks) lives as long as the process: frozen out of the collector, as `tandem serve` does at
    start (tandem.heap), so each full collection during the tests no longer walks it. Objects the
    tests make are collected as before (the thresholds are unchanged)."""
    gc.collect()
    gc.freeze()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """At the end of a run: this process's fork server of `tandem` processes
    (tests/forkserver.py) stops, if one started; and (in pytest-xdist's controller, once) the
    PostgreSQL catalogs its schemas bloated are vacuumed where the test role may
    (tests/storage/conftest.py), so that the next run does not pay for this one's dead rows
    where autovacuum is off."""
    from tests.forkserver import close_fork_server

    close_fork_server()
    if hasattr(session.config, "workerinput"):
        return
    from tests.storage.conftest import vacuum_catalogs

    # In a thread of its own: a browser run's main thread may still hold Playwright's loop.
    vacuum = threading.Thread(target=asyncio.run, args=(vacuum_catalogs(),))
    vacuum.start()
    vacuum.join()


def pytest_report_header(config: pytest.Config) -> str | None:
    asked = " ".join(config.invocation_params.args)
    if config.getoption("dist", "no") == "load" and "worksteal" in asked:
        return "--dist worksteal became --dist load: this run may hold browser tests"
    return None


def seed_directory(data_dir: Path, work: Callable[[Directory], Awaitable[None]]) -> None:
    """Run ``work`` on the data directory's organisation directory (like the CLI does)."""

    async def run() -> None:
        settings = Settings.load(environ={}, data_dir=data_dir)
        async with offline(settings) as directory:
            await work(directory)

    worker = threading.Thread(target=asyncio.run, args=(run(),))
    worker.start()
    worker.join()


ACME_ORIGIN = "http://acme.test"


async def add_users(
    directory: Directory, grant: Any, users: Iterable[tuple[str, str, tuple[str, ...]]]
) -> None:
    """Accounts (username, role, teams) in `grant`'s organisation, set up as the tests use them:
    the tests' password, kept (not a temporary one), and no second factor."""
    for username, role, teams in users:
        await directory.add_user(
            grant,
            username,
            AGENT_PASSWORD,
            role,
            None,
            teams,
            mfa_exempt=True,
            change_required=False,
        )


async def two_organisations(directory: Directory) -> None:
    """The default organisation (demo site, team support; team billing serves nothing) and Acme
    (its own site and team), with a user of every role in each."""
    default = operator("default")
    await directory.add_team(default, "billing")
    await add_users(
        directory,
        default,
        (
            ("sam", "supervisor", ("support",)),
            ("ada", "admin", ()),
            ("aud", "auditor", ()),
            ("bob", "agent", ("billing",)),
        ),
    )
    await directory.add_org("acme", "Acme Bank")
    acme = operator("acme")
    await directory.add_team(acme, "support")
    await directory.add_site(acme, "acme-shop", ACME_ORIGIN, "Acme shop", ("support",))
    await add_users(
        directory,
        acme,
        (
            ("mallory", "agent", ("support",)),
            ("mary", "supervisor", ("support",)),
            ("max", "admin", ()),
            ("mo", "auditor", ()),
        ),
    )
    for org, usernames in (("default", ("sam", "aud", "bob")), ("acme", ("mallory", "mary", "mo"))):
        for username in usernames:
            await mark_trained(directory.storage, username, org)


TEMPLATED_SEEDS: tuple[Callable[[Directory], Awaitable[None]], ...] = (two_organisations,)


@pytest.fixture
def orgs_server(server_factory: ServerFactory) -> RunningServer:
    """A server holding two organisations (see :func:`two_organisations`)."""
    running = server_factory(seed=two_organisations)
    return running


@contextlib.contextmanager
def module_server(
    tmp_path_factory: pytest.TempPathFactory,
    data_templates: DataTemplates,
    seed: Callable[[Directory], Awaitable[None]] | None = None,
    **overrides: object,
) -> Iterator[RunningServer]:
    """A server for a module-scoped fixture (one start for the module's tests instead of one
    each), as :func:`server_factory` makes them: for tests that change nothing another test
    looks at (each module says why its tests may share)."""
    data_dir = tmp_path_factory.mktemp("shared") / "data"
    sock = bound_socket()
    try:
        settings = Settings.load(
            environ={}, data_dir=data_dir, port=sock.getsockname()[1], **overrides
        )
        data_templates.copy_to(data_dir, seed)
        running = RunningServer(settings, FakeClock(), sock=sock)
    except BaseException:
        sock.close()
        raise
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def shared_orgs_server(
    tmp_path_factory: pytest.TempPathFactory, data_templates: DataTemplates
) -> Iterator[RunningServer]:
    """One two-organisation server for every test of a module, for modules whose tests change
    nothing another test looks at (each says why it may share)."""
    with module_server(tmp_path_factory, data_templates, two_organisations) as running:
        yield running
