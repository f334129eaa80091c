"""Serving HTTPS/WSS directly: HSTS, Secure cookies, and a session over TLS."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import pytest
import trustme
from websockets.asyncio.client import connect

from tandem.config import Settings
from tandem.exceptions import ConfigError
from tests.conftest import AGENT_PASSWORD, RunningServer, ServerFactory


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(server_factory: ServerFactory, ca: trustme.CA, tmp_path: Path) -> RunningServer:
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(key_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    return server_factory(tls_cert=cert_path, tls_key=key_path)


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_https_sends_hsts_and_secure_cookie(tls_server: RunningServer, ca: trustme.CA) -> None:
    with httpx.Client(base_url=tls_server.base, verify=client_context(ca)) as client:
        response = client.post("/api/login", json={"username": "alice", "password": AGENT_PASSWORD})
    assert response.status_code == 200
    assert response.headers["strict-transport-security"].startswith("max-age=31536000")
    assert "secure" in response.headers["set-cookie"].lower()


def test_plain_http_sends_no_hsts(server: RunningServer) -> None:
    assert "strict-transport-security" not in httpx.get(f"{server.base}/healthz").headers


async def test_customer_session_over_wss(tls_server: RunningServer, ca: trustme.CA) -> None:
    async with connect(
        f"{tls_server.ws_base}/ws/customer",
        origin=tls_server.origin,  # type: ignore[arg-type]
        ssl=client_context(ca),
    ) as customer:
        await customer.send(json.dumps({"v": 1, "type": "create"}))
        assert json.loads(await customer.recv())["type"] == "created"


def test_tls_needs_both_files(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError, match="go together"):
        Settings.load(environ={}, tls_cert=cert)


def test_missing_tls_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tls-cert file not found"):
        Settings.load(environ={}, tls_cert=tmp_path / "nope.pem", tls_key=tmp_path / "k.pem")


def test_forwarded_proto_is_ignored_from_untrusted_clients(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.base}/api/login",
        json={"username": "alice", "password": AGENT_PASSWORD},
        headers={"x-forwarded-proto": "https"},
    )
    assert "strict-transport-security" not in response.headers
    assert "secure" not in response.headers["set-cookie"].lower()


def test_forwarded_proto_is_believed_from_a_trusted_proxy(server_factory: ServerFactory) -> None:
    server = server_factory(trusted_proxies=("127.0.0.1",))
    response = httpx.post(
        f"{server.base}/api/login",
        json={"username": "alice", "password": AGENT_PASSWORD},
        headers={"x-forwarded-proto": "https"},
    )
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert "secure" in response.headers["set-cookie"].lower()
