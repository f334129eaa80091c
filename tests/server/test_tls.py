"""Serving HTTPS/WSS directly: HSTS, Secure cookies, and a session over TLS."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import pytest
import trustme
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tandem.config import Settings
from tandem.exceptions import ConfigError
from tests.conftest import AGENT_PASSWORD, RunningServer, ServerFactory, two_organisations
from tests.oidc_provider import OidcProvider


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


def test_over_tls_the_sign_in_cookie_is_host_only_and_a_planted_plain_one_is_not_read(
    tls_server: RunningServer, ca: trustme.CA
) -> None:
    """Over TLS the sign-in cookie is ``__Host-tandem_agent``: Secure, Path=/, no Domain, which
    browsers keep only from the server's own secure answer. A page of a sibling subdomain (or
    a plain-HTTP answer) could set ``tandem_agent`` for the host, with a sign-in of its own
    account: the agent then worked in the planter's account (typed its notes there, enrolled
    its authenticator there). Over TLS a cookie of that name is not read at all."""
    with httpx.Client(base_url=tls_server.base, verify=client_context(ca)) as client:
        response = client.post("/api/login", json={"username": "alice", "password": AGENT_PASSWORD})
        assert response.status_code == 200, response.text
        set_cookie = response.headers["set-cookie"]
        assert set_cookie.startswith("__Host-tandem_agent="), set_cookie
        flags = [part.strip().lower() for part in set_cookie.split(";")[1:]]
        assert {"secure", "httponly", "path=/", "samesite=strict"} <= set(flags), flags
        assert not any(flag.startswith("domain") for flag in flags), flags
        token = response.cookies["__Host-tandem_agent"]

    def me(name: str) -> httpx.Response:
        with httpx.Client(base_url=tls_server.base, verify=client_context(ca)) as browser:
            browser.cookies.set(name, token)
            return browser.get("/api/me")

    assert me("tandem_agent").status_code == 401  # planted under the plain name: not read
    own = me("__Host-tandem_agent")
    assert own.status_code == 200 and own.json()["username"] == "alice"
    with httpx.Client(base_url=tls_server.base, verify=client_context(ca)) as browser:
        browser.cookies.set("__Host-tandem_agent", token)
        out = browser.post("/api/logout")
    assert out.status_code == 204
    assert out.headers["set-cookie"].startswith("__Host-tandem_agent=")
    assert me("__Host-tandem_agent").status_code == 401


async def test_over_tls_the_agent_socket_reads_only_the_host_only_cookie(
    tls_server: RunningServer, ca: trustme.CA
) -> None:
    with httpx.Client(base_url=tls_server.base, verify=client_context(ca)) as client:
        response = client.post("/api/login", json={"username": "alice", "password": AGENT_PASSWORD})
    token = response.cookies["__Host-tandem_agent"]
    for name, closed in (("tandem_agent", True), ("__Host-tandem_agent", False)):
        async with connect(
            f"{tls_server.ws_base}/ws/agent",
            origin=tls_server.origin,  # type: ignore[arg-type]
            ssl=client_context(ca),
            additional_headers={"cookie": f"{name}={token}"},
        ) as agent:
            if closed:
                with pytest.raises(ConnectionClosed) as ended:
                    await agent.recv()
                assert ended.value.rcvd is not None and ended.value.rcvd.code == 4401
            else:
                await agent.send(json.dumps({"v": 1, "type": "join", "code": "00000"}))
                answer = json.loads(await agent.recv())
                assert answer["type"] == "error", answer  # signed in: the code is what fails


def test_over_tls_an_sso_sign_in_is_bound_to_the_browser_by_a_host_only_cookie(
    server_factory: ServerFactory, ca: trustme.CA, tmp_path: Path
) -> None:
    """The pending sign-in's browser cookie is ``__Host-tandem_sso`` over TLS: one planted
    under the plain name (with the planter's own pending sign-in, whose callback link the
    planter sends) signs no one in."""
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(key_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    server = server_factory(
        tls_cert=cert_path,
        tls_key=key_path,
        seed=two_organisations,
        test_private_network=True,
    )
    provider = OidcProvider().start()
    try:
        provider.redirect_uris.add(f"{server.base}/api/sso/callback")
        with httpx.Client(base_url=server.base, verify=client_context(ca)) as ada:
            signed = ada.post("/api/login", json={"username": "ada", "password": AGENT_PASSWORD})
            assert signed.status_code == 200, signed.text
            settings = {
                "issuer": provider.issuer,
                "client_id": provider.client_id,
                "client_secret": provider.client_secret,
            }
            assert ada.put("/api/org/sso", json=settings).status_code == 200
            assert ada.put("/api/users/alice/sso", json={"subject": "u-1"}).status_code == 200
        for planted in (True, False):
            with httpx.Client(verify=client_context(ca)) as browser:
                start = browser.get(f"{server.base}/api/sso/start", params={"org": "default"})
                assert start.status_code == 303, start.text
                set_cookie = start.headers["set-cookie"]
                assert set_cookie.startswith("__Host-tandem_sso="), set_cookie
                assert "path=/;" in set_cookie.lower() + ";" and "secure" in set_cookie.lower()
                token = browser.cookies["__Host-tandem_sso"]
                back = browser.get(start.headers["location"]).headers["location"]
                if planted:
                    browser.cookies.clear()
                    browser.cookies.set("tandem_sso", token)
                done = browser.get(back)
                assert done.status_code == 303
                if planted:
                    assert done.headers["location"] == "/console/?sso=failed"
                else:
                    assert done.headers["location"] == "/console/"
                    me = browser.get(f"{server.base}/api/me")
                    assert me.status_code == 200 and me.json()["username"] == "alice"
    finally:
        provider.stop()


async def test_behind_a_trusted_tls_proxy_the_host_only_cookie_opens_the_agent_socket(
    server_factory: ServerFactory,
) -> None:
    """Behind a proxy that says https (X-Forwarded-Proto, on the upgrade too), the sign-in
    cookie is the ``__Host-`` one, and the agent's socket reads it."""
    server = server_factory(trusted_proxies=("127.0.0.1",))
    https = {"x-forwarded-proto": "https"}
    response = httpx.post(
        f"{server.base}/api/login",
        json={"username": "alice", "password": AGENT_PASSWORD},
        headers=https,
    )
    token = response.cookies["__Host-tandem_agent"]
    async with connect(
        f"{server.ws_base}/ws/agent",
        origin=server.origin.replace("http://", "https://"),  # type: ignore[arg-type,union-attr]
        additional_headers={**https, "cookie": f"__Host-tandem_agent={token}"},
    ) as agent:
        await agent.send(json.dumps({"v": 1, "type": "join", "code": "00000"}))
        answer = json.loads(await agent.recv())
        assert answer["type"] == "error", answer  # signed in: the code is what fails
