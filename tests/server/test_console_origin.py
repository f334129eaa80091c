"""A console hosted on another origin (--console-origin): CORS, writes and the agent socket are
open to the listed origins and to no other."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tandem import cli
from tandem.server.app import STATIC
from tests.conftest import RunningServer, ServerFactory, two_organisations
from tests.server.helpers import (
    INVALID_CODE,
    _tracked,
    closed_with,
    login_cookie,
    recv_json,
    send,
)

CONSOLE = "https://console.bank.example"
EVIL = "https://evil.example"


@pytest.fixture
def relay(server_factory: ServerFactory) -> RunningServer:
    return server_factory(console_origins=(CONSOLE,))


def _preflight(server: RunningServer, origin: str, method: str = "PATCH") -> httpx.Response:
    return httpx.options(
        f"{server.base}/api/users/bob",
        headers={
            "origin": origin,
            "access-control-request-method": method,
            "access-control-request-headers": "content-type",
        },
    )


def test_listed_console_origin_gets_credentialed_cors(relay: RunningServer) -> None:
    preflight = _preflight(relay, CONSOLE)
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == CONSOLE
    assert preflight.headers["access-control-allow-credentials"] == "true"
    methods = {m.strip() for m in preflight.headers["access-control-allow-methods"].split(",")}
    assert methods == {"GET", "POST", "PUT", "PATCH", "DELETE"}
    assert preflight.headers["access-control-allow-headers"].lower() == "content-type"
    assert "Origin" in preflight.headers["vary"]

    cookie = login_cookie(relay)
    me = httpx.get(
        f"{relay.base}/api/me", cookies={"tandem_agent": cookie}, headers={"origin": CONSOLE}
    )
    assert me.status_code == 200
    assert me.headers["access-control-allow-origin"] == CONSOLE
    assert me.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in me.headers["vary"]


@pytest.mark.parametrize("listed", [True, False], ids=["with-console-origin", "without"])
def test_other_origins_get_no_cors(server_factory: ServerFactory, listed: bool) -> None:
    server = server_factory(console_origins=(CONSOLE,) if listed else ())
    for origin in (EVIL, server.origin) if listed else (EVIL, CONSOLE):
        preflight = _preflight(server, origin)
        assert "access-control-allow-origin" not in preflight.headers
        me = httpx.get(
            f"{server.base}/api/me",
            cookies={"tandem_agent": login_cookie(server)},
            headers={"origin": origin},
        )
        assert "access-control-allow-origin" not in me.headers
        assert "access-control-allow-credentials" not in me.headers
    # Not /api: the console origin gets nothing more from the rest of the server.
    page = httpx.get(f"{server.base}/console/", headers={"origin": CONSOLE})
    assert "access-control-allow-origin" not in page.headers


def test_writes_from_the_console_origin_are_accepted_others_refused(relay: RunningServer) -> None:
    cookie = login_cookie(relay)
    evil = httpx.post(
        f"{relay.base}/api/logout", cookies={"tandem_agent": cookie}, headers={"origin": EVIL}
    )
    assert evil.status_code == 403
    assert httpx.get(f"{relay.base}/api/me", cookies={"tandem_agent": cookie}).status_code == 200
    console = httpx.post(
        f"{relay.base}/api/logout", cookies={"tandem_agent": cookie}, headers={"origin": CONSOLE}
    )
    assert console.status_code == 204
    assert console.headers["access-control-allow-origin"] == CONSOLE
    assert httpx.get(f"{relay.base}/api/me", cookies={"tandem_agent": cookie}).status_code == 401


def test_the_console_origin_may_read_what_a_reset_mfa_left(server_factory: ServerFactory) -> None:
    """The reset-mfa 204 says in its Tandem-Second-Factor header what the account is left with
    (a --no-mfa account: none). CORS hides every answer header but a safelisted few from a
    console on another origin, which then said such an account sets up a new authenticator."""
    relay = server_factory(seed=two_organisations, console_origins=(CONSOLE,))
    reset = httpx.post(
        f"{relay.base}/api/users/alice/reset-mfa",
        cookies={"tandem_agent": login_cookie(relay, "ada")},
        headers={"origin": CONSOLE},
    )
    assert (reset.status_code, reset.headers["tandem-second-factor"]) == (204, "none")
    exposed = {h.strip().lower() for h in reset.headers["access-control-expose-headers"].split(",")}
    assert "tandem-second-factor" in exposed
    evil = httpx.get(f"{relay.base}/api/me", headers={"origin": EVIL})
    assert "access-control-expose-headers" not in evil.headers


async def test_agent_socket_from_the_console_origin(relay: RunningServer) -> None:
    cookie = {"cookie": f"tandem_agent={login_cookie(relay)}"}
    refused = await _tracked(
        f"{relay.ws_base}/ws/agent",
        origin=EVIL,  # type: ignore[arg-type]
        additional_headers=cookie,
    )
    assert await closed_with(refused) == (4403, "origin not allowed")
    accepted = await _tracked(
        f"{relay.ws_base}/ws/agent",
        origin=CONSOLE,  # type: ignore[arg-type]
        additional_headers=cookie,
    )
    await send(accepted, type="join", code="00000")
    assert await recv_json(accepted) == INVALID_CODE
    await accepted.close()


async def test_console_origin_is_not_a_customer_origin(relay: RunningServer) -> None:
    customer = await _tracked(
        f"{relay.ws_base}/ws/customer",
        origin=CONSOLE,  # type: ignore[arg-type]
    )
    assert await closed_with(customer) == (4403, "origin not allowed")


def test_tandem_console_copies_the_console_for_another_origin(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli.app, ["console", "--copy-to", str(tmp_path), "--relay", "https://Tandem.Bank.example/"]
    )
    assert result.exit_code == 0, result.output
    built = (STATIC / "console" / "console.js").read_bytes()
    integrity = "sha384-" + base64.b64encode(hashlib.sha384(built).digest()).decode()
    assert result.stdout.strip() == f"console.js {integrity}"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(cli.CONSOLE_FILES)
    assert (tmp_path / "console.js").read_bytes() == built
    page = (tmp_path / "index.html").read_text()
    assert '<meta name="tandem-relay" content="https://tandem.bank.example">' in page
    assert f'<script src="console.js" integrity="{integrity}" defer>' in page
    assert "/console/" not in page


@pytest.mark.parametrize(
    "relay", ["https://tandem.bank.example/console/", "tandem.bank.example", "ftp://t.example"]
)
def test_tandem_console_refuses_a_relay_that_is_not_an_origin(tmp_path: Path, relay: str) -> None:
    result = CliRunner().invoke(cli.app, ["console", "--copy-to", str(tmp_path), "--relay", relay])
    assert result.exit_code == 2
    assert "origin" in result.output
    assert not any(tmp_path.iterdir())
