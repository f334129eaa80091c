"""HTTP API and static routes against a real server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from websockets.asyncio.client import connect

from tandem.server.app import StaticPages
from tests.conftest import AGENT_PASSWORD, RunningServer, ServerFactory, track_connection
from tests.server.helpers import closed_with


def test_login_sets_a_strict_httponly_cookie(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.base}/api/login", json={"username": "alice", "password": AGENT_PASSWORD}
    )
    assert response.status_code == 200
    assert response.json() == {
        "username": "alice",
        "display_name": "Alice",
        "role": "agent",
        "org": "default",
        "teams": ["support"],
        "needs_second_factor": False,
        "must_change_password": False,
    }
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain http on loopback; TLS sets it


def test_wrong_password_is_401_problem_json(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.base}/api/login", json={"username": "alice", "password": "nope-nope-nope"}
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "Wrong username, password or authentication code."
    assert "set-cookie" not in response.headers


def test_form_post_is_refused(server: RunningServer) -> None:
    # A cross-site form can only send form encodings; only JSON is accepted.
    response = httpx.post(
        f"{server.base}/api/login", data={"username": "alice", "password": AGENT_PASSWORD}
    )
    assert response.status_code == 415


def test_cross_site_writes_are_refused(server: RunningServer) -> None:
    login = httpx.post(
        f"{server.base}/api/login", json={"username": "alice", "password": AGENT_PASSWORD}
    )
    cookie = login.cookies["tandem_agent"]
    evil = {"origin": "https://evil.example"}
    logout = httpx.post(f"{server.base}/api/logout", cookies={"tandem_agent": cookie}, headers=evil)
    assert logout.status_code == 403
    assert httpx.get(f"{server.base}/api/me", cookies={"tandem_agent": cookie}).status_code == 200
    same = httpx.post(
        f"{server.base}/api/logout",
        cookies={"tandem_agent": cookie},
        headers={"origin": server.origin},
    )
    assert same.status_code == 204


def test_malformed_login_body_is_400(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.base}/api/login",
        content=b'{"username": 1}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400 and "username" in response.json()["detail"]


def test_oversized_login_body_is_413(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.base}/api/login",
        content=b"x" * 10_000,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413


def test_me_and_logout(server: RunningServer) -> None:
    with httpx.Client(base_url=server.base) as client:
        assert client.get("/api/me").status_code == 401
        client.post("/api/login", json={"username": "alice", "password": AGENT_PASSWORD})
        assert client.get("/api/me").json()["username"] == "alice"
        logout = client.post("/api/logout")
        assert logout.status_code == 204
        assert logout.headers["clear-site-data"] == '"cache", "storage"'
        client.cookies.clear()
    with httpx.Client(base_url=server.base) as client:
        assert client.get("/api/me").status_code == 401


def test_logged_out_token_no_longer_works(server: RunningServer) -> None:
    login = httpx.post(
        f"{server.base}/api/login", json={"username": "alice", "password": AGENT_PASSWORD}
    )
    token = login.cookies["tandem_agent"]
    httpx.post(f"{server.base}/api/logout", cookies={"tandem_agent": token})
    me = httpx.get(f"{server.base}/api/me", cookies={"tandem_agent": token})
    assert me.status_code == 401


def test_security_headers_on_console(server: RunningServer) -> None:
    response = httpx.get(f"{server.base}/api/me")
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_sdk_cors_only_for_allowed_origins(server_factory: ServerFactory) -> None:
    server = server_factory(allow_origins=("https://shop.example",))
    allowed = httpx.get(f"{server.base}/sdk/tandem.js", headers={"origin": "https://shop.example"})
    other = httpx.get(f"{server.base}/sdk/tandem.js", headers={"origin": "https://evil.example"})
    assert allowed.status_code == 200, "the SDK must be built (make setup)"
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    assert "access-control-allow-origin" not in other.headers
    assert "Vary" in allowed.headers and "Origin" in allowed.headers["vary"]


def test_root_redirects_to_demo(server: RunningServer) -> None:
    response = httpx.get(f"{server.base}/")
    assert response.status_code in (302, 307) and response.headers["location"] == "/demo/"


def test_console_and_demo_have_a_strict_csp(server: RunningServer) -> None:
    console = httpx.get(f"{server.base}/console/").headers["content-security-policy"]
    demo = httpx.get(f"{server.base}/demo/").headers["content-security-policy"]
    for policy in (console, demo):
        assert "script-src 'self';" in policy and "'unsafe-inline'" not in policy.split(";")[1]
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert "'unsafe-eval'" not in console + demo


def test_an_idle_sign_in_ends_and_activity_keeps_it(server: RunningServer) -> None:
    idle = server.settings.login_idle_seconds
    with httpx.Client(base_url=server.base) as client:
        client.post("/api/login", json={"username": "alice", "password": AGENT_PASSWORD})
        for _ in range(3):  # used every two thirds of the idle time: stays signed in
            server.clock.advance(idle * 2 / 3)
            assert client.get("/api/me").status_code == 200
        server.clock.advance(idle + 1)
        assert client.get("/api/me").status_code == 401
        server.clock.advance(-idle - 1)
        assert client.get("/api/me").status_code == 401, "an idle sign-in is gone for good"


@pytest.mark.parametrize(("touch", "status"), [(0.0, 200), (None, 200), (500.0, 401)])
def test_a_sign_ins_use_is_written_every_login_touch_seconds(
    server_factory: ServerFactory, touch: float | None, status: int
) -> None:
    """``login_touch_seconds`` (a code constant of a minute before) bounds how often a sign-in's
    use is written, so how early a sign-in in use may idle out: with a 10-minute idle timeout,
    a use 400 s after signing in is written when the touch interval is 0 or a minute (the
    sign-in lives on at 700 s), not when it is 500 s (the sign-in idled out at 600 s)."""
    server = server_factory(login_idle_seconds=600.0, login_touch_seconds=touch)
    with httpx.Client(base_url=server.base) as client:
        signed_in = client.post(
            "/api/login", json={"username": "alice", "password": AGENT_PASSWORD}
        )
        assert signed_in.status_code == 200, signed_in.text
        server.clock.advance(400)
        assert client.get("/api/me").status_code == 200
        server.clock.advance(300)
        assert client.get("/api/me").status_code == status


def test_sign_out_everywhere_ends_every_sign_in(server: RunningServer) -> None:
    laptop, phone = (httpx.Client(base_url=server.base) for _ in range(2))
    with laptop, phone:
        for client in (laptop, phone):
            client.post("/api/login", json={"username": "alice", "password": AGENT_PASSWORD})
        response = phone.post("/api/logout-everywhere")
        assert response.status_code == 204
        assert response.headers["clear-site-data"] == '"cache", "storage"'
        assert laptop.get("/api/me").status_code == 401
        assert phone.get("/api/me").status_code == 401
        assert phone.post("/api/logout-everywhere").status_code == 401


def test_redirects_are_not_built_from_the_host_header(server: RunningServer) -> None:
    # Without a public origin any address is answered (a name other than localhost is 421).
    for path, target in (("/console", "/console/"), ("/demo", "/demo/"), ("/", "/demo/")):
        answer = httpx.get(f"{server.base}{path}", headers={"Host": "192.0.2.66"})
        assert answer.is_redirect, path
        assert answer.headers["location"] == target, path


async def test_a_directory_is_redirected_to_its_slash_on_this_server_not_the_host(
    tmp_path: Path,
) -> None:
    """Starlette's static files redirect ``/demo/img`` to ``/demo/img/`` (a directory with an
    index.html) with an absolute URL built from the Host header; the served mounts' is a path.
    No shipped directory has an index.html below its top today: this one is made for it."""
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "index.html").write_text("<p>index</p>")
    app = Starlette(routes=[Mount("/demo", StaticPages(directory=tmp_path, html=True))])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tandem.example") as client:
        moved = await client.get("/demo/img?x=1", headers={"host": "evil.example"})
        assert moved.status_code == 307 and moved.headers["location"] == "/demo/img/?x=1"
        assert (await client.get("/demo/img/")).text == "<p>index</p>"


def test_a_trailing_slash_is_not_redirected_to_the_host_the_request_names(
    server: RunningServer,
) -> None:
    """Starlette redirects ``/api/login/`` to ``/api/login`` with an absolute URL built from the
    Host header (307: a POST follows with its body): a forged or poisoned Host sent the browser
    and the password elsewhere."""
    for path in (
        "/api/login/",
        "/api/me/",
        "/api/sso/start/?org=default",
        "/healthz/",
        "/sdk/tandem.js/",
    ):
        for method in ("GET", "POST"):
            answer = httpx.request(
                method,
                f"{server.base}{path}",
                headers={"Host": "192.0.2.66", "origin": "http://192.0.2.66"},
                json={"username": "alice", "password": AGENT_PASSWORD},
            )
            assert "192.0.2.66" not in answer.headers.get("location", ""), (method, path)
            assert not answer.is_redirect, (method, path, answer.headers.get("location"))
    assert httpx.get(f"{server.base}/healthz").status_code == 200  # the paths themselves answer


MALFORMED_ORIGINS = ("http://[", "https://[::1", "http://[x]", "http://a..b", "http://a.com:99999")


async def test_a_malformed_origin_header_is_refused_never_a_server_error(
    server: RunningServer, close_client_connections: None
) -> None:
    """``Origin: http://[`` (an unclosed IPv6 bracket, which the URL parser refuses with a
    ValueError, not the ConfigError the origin checks expected) made every API write, the SDK,
    a CORS preflight and both sockets answer 500, for anyone who sent it."""
    for origin in MALFORMED_ORIGINS:
        login = httpx.post(
            f"{server.base}/api/login",
            json={"username": "alice", "password": AGENT_PASSWORD},
            headers={"origin": origin},
        )
        assert login.status_code == 403, (origin, login.text)
        assert login.json()["detail"] == "Cross-site request refused."
        sdk = httpx.get(f"{server.base}/sdk/tandem.js", headers={"origin": origin})
        assert sdk.status_code in (200, 503), (origin, sdk.text)  # 503: no SDK built here
        assert "access-control-allow-origin" not in sdk.headers
        preflight = httpx.options(
            f"{server.base}/api/me",
            headers={"origin": origin, "access-control-request-method": "GET"},
        )
        assert preflight.status_code < 500, (origin, preflight.text)
        assert "access-control-allow-origin" not in preflight.headers
        for path in ("/ws/customer", "/ws/agent"):
            socket = await connect(f"{server.ws_base}{path}", origin=origin)  # type: ignore[arg-type]
            track_connection(socket)
            assert await closed_with(socket) == (4403, "origin not allowed"), (origin, path)
