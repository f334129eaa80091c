"""Operators can see (issue 13, fault 11): Prometheus metrics behind a bearer token or on a port
of their own, /readyz that checks the database (a real PostgreSQL behind a proxy the test
stops), access logs without query strings, and structured JSON logs with no secrets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from tandem.exceptions import ConfigError
from tests.conftest import AGENT_PASSWORD, DataTemplates, RunningServer, ServerFactory, free_port
from tests.forkserver import tandem_process
from tests.server.db_proxy import StoppableProxy, proxied_url
from tests.server.helpers import closed_with, open_customer, start_session
from tests.storage.conftest import fresh_schema

TOKEN = "a-metrics-token-of-the-tests"
SERVE = [sys.executable, "-m", "tandem", "serve"]


def scrape(server: RunningServer, token: str | None = TOKEN) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{server.base}/metrics", headers=headers)


def sample(text: str, name: str) -> float:
    [value] = [line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(name + " ")]
    return float(value)


async def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def test_metrics_are_off_unless_a_token_or_a_port_is_set(server: RunningServer) -> None:
    assert scrape(server).status_code == 404
    assert scrape(server, None).status_code == 404


def test_metrics_need_the_bearer_token(server_factory: ServerFactory) -> None:
    server = server_factory(metrics_token=TOKEN)
    assert scrape(server, None).status_code == 401
    assert scrape(server, "a-metrics-token-of-the-test5").status_code == 401
    assert scrape(server).status_code == 200


async def test_metrics_count_sessions_by_state_and_frames_relayed(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(metrics_token=TOKEN)
    before = scrape(server).text
    assert sample(before, 'tandem_sessions{state="waiting"}') == 0
    await start_session(server)
    after = scrape(server)
    assert after.headers["content-type"].startswith("text/plain")
    assert sample(after.text, 'tandem_sessions{state="waiting"}') == 1
    assert sample(after.text, "tandem_fanout_shared") == 0
    assert sample(after.text, 'tandem_background_failing{task="deadlines"}') == 0
    assert "tandem_audit_events_total" in after.text
    assert "tandem_frames_relayed_total" in after.text


def test_sign_in_failures_are_counted(server_factory: ServerFactory) -> None:
    server = server_factory(metrics_token=TOKEN)
    name = 'tandem_sign_in_failures_total{method="password"}'
    text = scrape(server).text
    before = sample(text, name) if name in text else 0.0
    wrong = {"username": "alice", "password": "not-her-password"}
    assert httpx.post(f"{server.base}/api/login", json=wrong).status_code == 401
    assert sample(scrape(server).text, name) == before + 1


def test_metrics_on_their_own_port_and_not_on_the_servers(server_factory: ServerFactory) -> None:
    # free_port() lets the port go, so the server's own port (also the kernel's pick) may be
    # that very one: then the settings refuse it, and another is drawn.
    for _ in range(5):
        port = free_port()
        try:
            server = server_factory(metrics_port=port)
            break
        except ConfigError as exc:
            assert "must differ" in str(exc)
    else:
        raise AssertionError("no metrics port apart from the server's in five draws")
    answer = httpx.get(f"http://127.0.0.1:{port}/metrics")
    assert answer.status_code == 200
    assert 'tandem_sessions{state="waiting"}' in answer.text
    assert scrape(server).status_code == 404


def test_health_says_nothing_and_readiness_checks_the_database(server: RunningServer) -> None:
    health = httpx.get(f"{server.base}/healthz")
    assert health.json() == {"status": "ok"}
    ready = httpx.get(f"{server.base}/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


async def test_readiness_http_and_sockets_refuse_cleanly_while_postgresql_is_away_then_recover(
    server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    from tandem.config import Settings
    from tandem.directory import offline
    from tests.server.test_scale_out import add_people, run_in_thread

    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)

        async def seed() -> None:
            settings = Settings.load(environ={}, data_dir=tmp_path / "seed", database_url=url)
            async with offline(settings) as directory:
                await add_people(directory)

        run_in_thread(seed)
        server = server_factory(database_url=url, audit_key_file=tmp_path / "seed" / "audit.key")
        credentials = {"username": "alice", "password": AGENT_PASSWORD}
        assert httpx.get(f"{server.base}/readyz").json() == {"status": "ready"}
        pg_proxy.down()
        ready = httpx.get(f"{server.base}/readyz", timeout=30)
        assert ready.status_code == 503
        assert ready.json() == {"status": "unavailable", "failing": ["database"]}
        refused = httpx.post(f"{server.base}/api/login", json=credentials, timeout=60)
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert "retry-after" in refused.headers and "Traceback" not in refused.text
        customer = await open_customer(server)  # the origin's site is looked up first
        assert await closed_with(customer, timeout=60) == (
            1013,
            "database not answering: try again soon",
        )
        pg_proxy.up()
        await wait_for(lambda: httpx.get(f"{server.base}/readyz").status_code == 200)
        assert httpx.post(f"{server.base}/api/login", json=credentials).status_code == 200
        customer, _ = await start_session(server)
        await customer.close()  # before the stop, which blocks this loop (no close answered)
        server.stop()  # before its schema goes


def test_the_access_log_never_holds_a_query_string(
    server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = server_factory(log_level="info")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        httpx.get(f"{server.base}/api/sso/callback?code=oidc-code-1234&state=state-5678")
        deadline = time.monotonic() + 5
        while "/api/sso/callback" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "/api/sso/callback?[redacted]" in caplog.text
    assert "oidc-code-1234" not in caplog.text and "state-5678" not in caplog.text


@contextlib.contextmanager
def _serving(
    tmp_path: Path, data_templates: DataTemplates, log_format: str
) -> Iterator[tuple[str, list[str]]]:
    """``tandem serve`` with ``--log-format``, answering: its base address, and a list that
    holds its standard error (its log) once it has stopped."""
    data_dir, port = tmp_path / "data", free_port()
    data_templates.copy_to(data_dir)
    process = tandem_process(
        [*SERVE, "--port", str(port), "--data-dir", str(data_dir), "--log-format", log_format],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    base = f"http://127.0.0.1:{port}"
    log: list[str] = []
    try:
        deadline = time.monotonic() + 60  # as ServeProcess: a start on a loaded 2-core machine
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        yield base, log
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=30)
        log.append(errors)


async def test_json_logs_tell_the_session_lifecycle_and_security_events_without_secrets(
    tmp_path: Path, data_templates: DataTemplates
) -> None:
    with _serving(tmp_path, data_templates, "json") as (base, log):
        wrong = {"username": "alice", "password": "wrong-password-xyz"}
        # A process's first sign-in (a failed one hashes too) on a loaded 2-core machine took
        # longer than httpx's 5 s.
        assert httpx.post(f"{base}/api/login", json=wrong, timeout=60).status_code == 401
        running = SimpleNamespace(ws_base=base.replace("http", "ws", 1), origin=base)
        customer, created = await start_session(running)  # type: ignore[arg-type]
        await customer.close()
        httpx.get(f"{base}/api/sso/callback?code=oidc-code-1234&state=st-5678", timeout=60)
    [errors] = log
    events = [json.loads(line) for line in errors.splitlines() if line.strip()]  # all JSON
    names = {event.get("event") for event in events}
    assert {"sign_in_failed", "session_created", "server_started"} <= names, names
    created_event = next(e for e in events if e.get("event") == "session_created")
    assert created_event["subject"] == created["session_id"] and created_event["level"] == "info"
    for secret in (
        "wrong-password-xyz",
        f'"{created["code"]}"',  # never a value (the bare digits could be in a port)
        created["resume_token"],
        "oidc-code-1234",
        "st-5678",
    ):
        assert secret not in errors, secret


def test_console_logs_show_a_signin_names_invisible_characters_visibly(
    tmp_path: Path, data_templates: DataTemplates
) -> None:
    """Anyone may try to sign in under any name, and the failure is logged with it: the console
    format writes a value without spaces unquoted, so a right-to-left override in the name went
    into the operator's terminal as it was and turned the rest of the line, the address among
    it, around ("ip=1.2.3.4" read as another). Each such character is a visible U+FFFD."""
    with _serving(tmp_path, data_templates, "console") as (base, log):
        wrong = {"username": "mallory\u202e4.3.2.1", "password": "wrong-password-xyz"}
        # A process's first sign-in (a failed one hashes too) on a loaded 2-core machine took
        # longer than httpx's 5 s.
        assert httpx.post(f"{base}/api/login", json=wrong, timeout=60).status_code == 401
    [errors] = log
    [line] = [line for line in errors.splitlines() if "sign_in_failed" in line]
    assert "\u202e" not in errors
    assert "actor=mallory\ufffd4.3.2.1 " in line, line


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_a_logged_traceback_says_where_without_local_variables(log_format: str) -> None:
    """An unhandled exception (uvicorn's "Exception in ASGI application") is logged with its
    traceback; in the console format (the default) rich drew it with every frame's local
    variables, a request's cookie among them; in JSON it was the exception's repr ("<traceback
    object at 0x…>"), with no line of where it failed."""
    script = (
        "import logging\n"
        "from tandem import logs\n"
        f"logs.configure({log_format!r})\n"
        "def endpoint():\n"
        "    cookie = 'tandem_session=secret-cookie-of-the-test'\n"
        "    raise RuntimeError('the handler failed')\n"
        "try:\n"
        "    endpoint()\n"
        "except RuntimeError:\n"
        "    logging.getLogger('uvicorn.error').exception('Exception in ASGI application')\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    said = ran.stderr
    if log_format == "json":
        [line] = [json.loads(line) for line in said.splitlines() if line.strip()]
        said = line["exception"]
    assert "RuntimeError: the handler failed" in said, ran.stderr
    assert "line 6, in endpoint" in said, said  # where it failed
    assert "secret-cookie-of-the-test" not in ran.stderr, ran.stderr
