"""Start-up against a PostgreSQL that accepts connections but never answers (a stopped VM, a
proxy that stalls; tests.server.db_proxy holds every byte): ``tandem serve`` and ``tandem db
upgrade`` fail within their bounds, in one line naming the database (never its password) and
what to check, exit code 2; a migration cut short leaves the schema as it was; once the
database answers, start-up works."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tandem.storage import migrations
from tests.conftest import free_port
from tests.forkserver import tandem_process, tandem_run
from tests.private_redis import PrivateRedis, running_private_redis
from tests.server.db_proxy import StoppableProxy, proxied_url
from tests.storage.conftest import PG_DSN, fresh_schema, pg_connect

TANDEM = [sys.executable, "-m", "tandem"]


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    yield from running_private_redis()


PASSWORD = "pw-not-shown-4711"
MIGRATION_BOUNDS = (12.0, 30.0, 90.0)
"""The whole migration's bounds tried, in turn, where the test needs the migration to reach its
last step within it (the process's start included): 12 s does on a machine loaded twice over,
not at load 26, where the run is tried again with the next bound."""
LIMIT = 60.0
"""Generous: each run below is bounded by a few seconds of settings; without the bounds, it
never ends (the runs are killed at 120 s)."""


def with_password(url: str) -> str:
    """The URL with a password (the test database trusts; the password is only to be hidden)."""
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@", 1)


def environment(url: str, bounded: bool = True, migration: float = 3.0) -> dict[str, str]:
    """``bounded``: with the short bounds the frozen runs are checked against (``migration``
    seconds for a whole migration); a run meant to work (once the database answers again) keeps
    the defaults, as a busy machine needs."""
    short = {
        "TANDEM_DATABASE_TIMEOUT_SECONDS": "1",
        "TANDEM_DATABASE_MIGRATION_TIMEOUT_SECONDS": f"{migration:g}",
    }
    return {**os.environ, "TANDEM_DATABASE_URL": with_password(url), **(short if bounded else {})}


def run(command: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    """``command`` run to its end (a ``serve`` on a free port), and how long it took."""
    if command[len(TANDEM)] == "serve":
        command = [*command, "--port", str(free_port())]
    started = time.monotonic()
    done = tandem_run(command, timeout=120, text=True, env=env)
    return done, time.monotonic() - started


def upgrade(
    url: str, data_dir: Path, bounded: bool = True, migration: float = 3.0
) -> tuple[subprocess.CompletedProcess[str], float]:
    command = [*TANDEM, "db", "upgrade", "--data-dir", str(data_dir)]
    return run(command, environment(url, bounded, migration))


def assert_one_clear_line(stderr: str, url: str, *expected: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    (line,) = lines
    assert line.startswith("tandem: cannot "), line
    assert f"the database at {url.split('?')[0]}" in line, line  # named, its password dropped
    assert PASSWORD not in line and "Traceback" not in stderr
    for words in expected:
        assert words in line, line


def assert_refused(
    done: subprocess.CompletedProcess[str],
    took: float,
    url: str,
    *expected: str,
    bound: float = 0.0,
) -> None:
    """A run that ended within the bound (``bound`` seconds of its settings, and then some),
    exit code 2, in one clear line saying ``expected``."""
    assert took < bound + LIMIT
    assert done.returncode == 2, done.stderr
    assert_one_clear_line(done.stderr, url, *expected)


def assert_upgrades(url: str, data_dir: Path) -> None:
    """Once the database answers again, the upgrade works (with the default bounds)."""
    done, _ = upgrade(url, data_dir, bounded=False)
    assert done.returncode == 0, done.stderr
    assert f"revision {migrations.HEAD}" in done.stdout


async def tables_in(schema: str) -> int:
    db = await pg_connect()
    try:
        found: int = await db.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", schema
        )
        return found
    finally:
        await db.close()


async def until_no_tables_in(schema: str) -> None:
    """The database ended a cut migration's transaction: none of its tables is left."""
    deadline = time.monotonic() + LIMIT
    while await tables_in(schema):
        assert time.monotonic() < deadline, "the cut migration's tables stayed"
        time.sleep(0.1)


async def frozen_at_the_last_step(
    pg_proxy: StoppableProxy,
    schema: str,
    start: Callable[[float], tuple[subprocess.CompletedProcess[str], float]],
) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """``start(bound)`` run (a migration with that whole-migration bound) while the database
    freezes at the migration's last step, every table made by then in its transaction; and what
    it gave, with the bound. A run whose migration did not reach that step within its bound (a
    loaded machine) proves nothing about the freeze: once its cut migration is rolled back, the
    next bound is tried (MIGRATION_BOUNDS), never one that leaves a freeze armed."""
    for bound in MIGRATION_BOUNDS:
        with pg_proxy.frozen(on=b"INSERT INTO alembic_version"):
            done, took = start(bound)
            reached = pg_proxy.freeze_at is None
        if reached:
            return done, took, bound
        await until_no_tables_in(schema)
    pytest.fail(f"the migration never reached its last step within {MIGRATION_BOUNDS[-1]:g} s")


async def test_db_upgrade_against_a_frozen_postgresql_fails_in_one_line_then_works(
    pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        with pg_proxy.frozen():
            done, took = upgrade(url, tmp_path)
        assert_refused(done, took, url, "no answer within 1 s", "PostgreSQL is running")
        assert_upgrades(url, tmp_path)


async def test_a_migration_the_database_freezes_under_is_abandoned_and_rolled_back(
    pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        # The last step stalls: the bound is the whole migration's, the process's start included.
        done, took, bound = await frozen_at_the_last_step(
            pg_proxy, schema, lambda bound: upgrade(url, tmp_path, migration=bound)
        )
        assert_refused(done, took, url, f"within {bound:g} s", "rolled back", bound=bound)
        await until_no_tables_in(schema)  # the database ends the abandoned transaction
        assert_upgrades(url, tmp_path)


async def test_a_migration_stuck_behind_another_servers_lock_gives_up(
    pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        other = await pg_connect(schema)  # another server's migration, stalled with its lock
        try:
            stuck = other.transaction()
            await stuck.start()
            await other.execute(
                "SELECT pg_advisory_xact_lock(hashtext('tandem-migrate:' || current_schema()))"
            )
            done, took = upgrade(url, tmp_path)
            await stuck.rollback()
        finally:
            await other.close()
        assert_refused(done, took, url, "within 3 s", "stuck migrating")
        assert_upgrades(url, tmp_path)


async def test_serve_against_a_frozen_postgresql_exits_in_one_line_then_starts(
    pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        serve = [*TANDEM, "serve", "--data-dir", str(tmp_path / "data")]
        # The migration must reach its last step within its bound (as above): with 3 s, a
        # loaded machine's serve gave up before it, the freeze stayed armed and froze the
        # second serve's migration, and the schema's drop waited on it for ever.
        done, took, bound = await frozen_at_the_last_step(
            pg_proxy, schema, lambda bound: run(serve, env=environment(url, migration=bound))
        )
        assert_refused(done, took, url, f"within {bound:g} s", bound=bound)
        assert "Tandem" not in done.stdout  # no banner
        port = free_port()
        process = tandem_process(
            [*serve, "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(url, bounded=False),
        )
        try:
            deadline = time.monotonic() + LIMIT
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        break
                assert process.poll() is None, process.communicate(timeout=30)[1]
                assert time.monotonic() < deadline, "tandem serve did not answer"
                time.sleep(0.1)
        finally:
            process.terminate()
            process.communicate(timeout=30)


async def test_serve_stopped_by_a_database_freezing_in_its_checks_says_so(
    pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    async with fresh_schema(migrated=True) as schema:
        url = proxied_url(pg_proxy, schema)
        # the accounts counted for the banner, after the checks
        with pg_proxy.frozen(on=b"count(*)"):
            done, took = run([*TANDEM, "serve", "--data-dir", str(tmp_path)], env=environment(url))
            assert pg_proxy.freeze_at is None, "serve never counted its accounts"
        assert_refused(done, took, url, "no answer within 1 s", "check that it is running")


def test_serve_against_a_frozen_redis_exits_in_one_line(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    url = private_redis.url.replace("redis://", f"redis://:{PASSWORD}@", 1)
    env = {
        **os.environ,
        "TANDEM_DATABASE_URL": PG_DSN,
        "TANDEM_REDIS_URL": url,
        "TANDEM_REDIS_TIMEOUT_SECONDS": "1",
    }
    private_redis.pause()
    try:
        done, took = run([*TANDEM, "serve", "--data-dir", str(tmp_path)], env=env)
    finally:
        private_redis.resume()
    assert took < LIMIT
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    where = f"redis://:***@127.0.0.1:{private_redis.port}/0"  # its password redacted
    assert lines[0].startswith(f"tandem: cannot reach Redis at {where}: "), lines[0]
    assert "bounded by 1 s" in lines[0] and "check that Redis is running" in lines[0]
    assert PASSWORD not in done.stderr
