"""A stop during `tandem serve`'s start-up, before it serves: its checks and the migration of a
new PostgreSQL schema, the database frozen in the middle (tests.server.db_proxy). SIGTERM (a
supervisor's) and Ctrl-C are each honoured at once with one clear line, and the schema is as it
was (the migration is one transaction, rolled back with its connection): never half-migrated.
Before, SIGTERM killed the process with nothing said, and Ctrl-C waited out the database's
timeouts (tens of seconds) then failed with the database's error."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.forkserver import tandem_process
from tests.server.db_proxy import StoppableProxy, proxied_url
from tests.server.test_crash_recovery import SERVE
from tests.storage.conftest import fresh_schema, pg_connect

STOPPED = "stopped during start-up"
PROMPT_SECONDS = 8.0
"""Well under the database's own waits (database_timeout_seconds 30 s, the migration's more)."""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
async def test_a_stop_while_the_schema_is_migrated_is_prompt_and_leaves_it_as_it_was(
    pg_proxy: StoppableProxy, tmp_path: Path, sig: signal.Signals
) -> None:
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        log = (tmp_path / "serve.log").open("w")
        pg_proxy.freeze_on(b"CREATE TABLE")  # inside the migration's transaction
        process = tandem_process(
            [*SERVE, "--port", str(free_port()), "--data-dir", str(tmp_path / "data")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TANDEM_DATABASE_URL": url},
        )
        try:
            deadline = time.monotonic() + 60
            while pg_proxy.held == 0:  # the migration waits on the frozen database
                assert process.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.05)
            signalled = time.monotonic()
            process.send_signal(sig)
            try:
                code = process.wait(timeout=PROMPT_SECONDS)
            except subprocess.TimeoutExpired:
                pytest.fail(f"not stopped within {PROMPT_SECONDS} s of the signal")
            took = time.monotonic() - signalled
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            pg_proxy.thaw()
            log.close()
        text = (tmp_path / "serve.log").read_text()
        assert STOPPED in text, text
        assert "Traceback" not in text, text
        assert code not in (0, -sig), (code, text)  # a failed start, not a kill by the signal
        assert took < PROMPT_SECONDS, (took, text)
        db = await pg_connect(schema)
        try:
            tables = await db.fetchval(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", schema
            )
            assert tables == 0, tables  # rolled back whole: not half-migrated
        finally:
            await db.close()
