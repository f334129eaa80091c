"""An attack review of the host, origin and socket checks (``--public-origin``, the write
check, CORS, the sockets' origins, cookies and redirects): each attack as a browser or a
forging client would make it, against a real server. The basic cases (another host, two
``Host`` headers, the probes, the SSO redirect URI) are tests/server/test_public_origins.py's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tandem.audit import AuditLog
from tandem.config import PROXY_NOTE
from tandem.exceptions import StorageError
from tandem.storage.sql import SQLStorage
from tests.conftest import (
    AGENT_PASSWORD,
    DataTemplates,
    RunningServer,
    ServerFactory,
    module_server,
    tandem_in_process,
    track_connection,
)
from tests.conftest import two_organisations as seed_two_organisations
from tests.oidc_provider import OidcProvider
from tests.server.faults import FailingCall
from tests.server.helpers import INVALID_CODE, recv_json, send
from tests.server.test_organisations import api
from tests.server.test_public_origins import (
    assert_misdirected,
    at,
    provider,  # noqa: F401 (a fixture)
    raw_request,
    redirect_uri,
    sign_in,
    sso_server,  # noqa: F401 (a fixture)
)
from tests.server.test_scale_out import add_to_cluster, run_in_thread, start_cluster
from tests.test_runtime_limits import serving

PUBLIC = "http://tandem.example"
HOST = "tandem.example"
SHOP = "https://shop.example"
TOKEN = "metrics-token-0123456789"


# The servers of `named` and `with_console` are shared by the module's tests (a start each was
# most of a test's CPU): every test makes its own requests and sign-ins and reads only their
# answers, and the counts test_the_refusals_are_counted reads are compared before and after.


@pytest.fixture(scope="module")
def named(
    tmp_path_factory: pytest.TempPathFactory, data_templates: DataTemplates
) -> Iterator[RunningServer]:
    with module_server(
        tmp_path_factory,
        data_templates,
        public_origins=(PUBLIC,),
        allow_origins=(SHOP,),
        metrics_token=TOKEN,
    ) as running:
        yield running


def port_of(server: RunningServer) -> int:
    port = urlsplit(server.base).port
    assert port is not None
    return port


def status_of(head: str) -> int:
    return int(head.split(" ", 2)[1])


def get(
    server: RunningServer, host_lines: str, target: str = "/api/me", version: str = "1.1"
) -> int:
    """The status of ``GET target`` sent with exactly these header lines."""
    request = f"GET {target} HTTP/{version}\r\n{host_lines}Connection: close\r\n\r\n"
    return status_of(asyncio.run(raw_request(port_of(server), request)))


# -- Host header variants --------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "TANDEM.EXAMPLE",
        "tandem.example:80",
        "Tandem.Example:80",
        "tandem.example:080",
    ],
    ids=["case", "default-port", "case-and-default-port", "default-port-zero-padded"],
)
def test_the_same_origin_written_otherwise_is_served(named: RunningServer, host: str) -> None:
    """Host names are case-insensitive and :80 is http's default: the same origin."""
    assert get(named, f"Host: {host}\r\n") == 401  # reached /api/me: signed out


@pytest.mark.parametrize(
    "host_lines",
    [
        "Host: tandem.example.\r\n",  # trailing dot: another origin to the browser
        "Host: tandem.example:443\r\n",  # https's port by http
        "Host: tandem.example:8080\r\n",
        "Host: tandem.example:\r\n",
        "Host: tandem.example:0\r\n",  # no port at all, not the default
        "Host: tandem.example:99999\r\n",
        "Host: [::1]\r\n",
        "Host: [::1]:80\r\n",
        "Host: user@tandem.example\r\n",
        "Host: tandem.example@evil.example\r\n",
        "Host: tandem .example\r\n",
        "Host: \ttandem.example  \r\n",  # whitespace around it: refused, not trimmed
        "Host: tandem.example evil.example\r\n",
        "Host: tandem.example,evil.example\r\n",
        "Host: tandem.example\r\nHost: tandem.example\r\n",  # two, even the same
        "Host: \r\n",
        "Host: tandem.example/evil\r\n",
        "Host: tandem.example%2eevil\r\n",
        "Host: evil.example\r\nX-Forwarded-Host: tandem.example\r\n",
        "Host: evil.example\r\nForwarded: host=tandem.example;proto=http\r\n",
        "Host: evil.example\r\nX-Original-Host: tandem.example\r\n",
        "",  # no Host at all (HTTP/1.1)
    ],
)
def test_a_host_header_that_is_not_exactly_the_public_origin_is_refused(
    named: RunningServer, host_lines: str
) -> None:
    assert get(named, host_lines) == 421


def test_http_1_0_without_a_host_is_refused(named: RunningServer) -> None:
    assert get(named, "", version="1.0") == 421
    assert get(named, f"Host: {HOST}\r\n", version="1.0") == 401  # with it, served


@pytest.mark.parametrize(
    ("target", "host"),
    [
        ("http://evil.example/api/me", HOST),  # the target names another host
        ("http://tandem.example/api/me", "evil.example"),  # the reverse
        ("https://tandem.example/api/me", HOST),  # another scheme
        ("http://tandem.example:8080/api/me", HOST),
    ],
)
def test_an_absolute_form_target_naming_another_origin_is_refused(
    named: RunningServer, target: str, host: str
) -> None:
    """RFC 9112 3.2.2: a server given an absolute-form target must ignore the Host header and
    use the target's authority; Tandem looked only at the Host."""
    request = f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    answer = asyncio.run(whole_answer(port_of(named), request))
    assert status_of(answer) == 421, answer
    if host == HOST:
        assert "target (absolute-form) and its Host header must name it" in answer


async def whole_answer(port: int, request: str) -> str:
    """``request`` as sent (with ``Connection: close``), and the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request.encode("latin-1"))
        await writer.drain()
        return (await asyncio.wait_for(reader.read(), 10)).decode("latin-1")
    finally:
        writer.close()
        await writer.wait_closed()


def test_an_absolute_form_target_naming_the_public_origin_is_served(named: RunningServer) -> None:
    assert get(named, f"Host: {HOST}\r\n", "http://tandem.example/api/me") == 401
    assert get(named, f"Host: {HOST}\r\n", "http://TANDEM.example:80/api/me") == 401


async def test_an_absolute_form_websocket_target_naming_another_origin_is_refused(
    named: RunningServer,
) -> None:
    request = (
        f"GET http://evil.example/ws/customer HTTP/1.1\r\nHost: {HOST}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: {PUBLIC}\r\n\r\n"
    )
    answer = await raw_request(port_of(named), request)
    # The socket's path is the whole target there: no route, refused before it is accepted.
    assert status_of(answer) in (403, 421), answer


@pytest.mark.parametrize("path", ["/ws/customer", "/ws/agent"])
@pytest.mark.parametrize(
    "host_lines",
    [
        "Host: tandem.example.\r\n",
        "Host: tandem.example:8080\r\n",
        "Host: [::1]\r\n",
        "Host: user@tandem.example\r\n",
        "Host: tandem.example\r\nHost: evil.example\r\n",
        "Host: \r\n",
        "",
        "Host: evil.example\r\nX-Forwarded-Host: tandem.example\r\n",
    ],
)
async def test_a_websocket_with_a_host_that_is_not_exactly_the_public_origin_is_refused(
    named: RunningServer, path: str, host_lines: str
) -> None:
    request = (
        f"GET {path} HTTP/1.1\r\n{host_lines}Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: {PUBLIC}\r\n\r\n"
    )
    answer = await raw_request(port_of(named), request)
    assert status_of(answer) in (400, 421), answer  # never accepted (101)


def test_behind_a_tls_proxy_https_default_port_is_the_same_origin_and_80_is_not(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        public_origins=("https://tandem.example",), trusted_proxies=("127.0.0.1",)
    )
    https = {"x-forwarded-proto": "https"}
    for host, status in (
        ("tandem.example:443", 401),
        ("TANDEM.example", 401),
        ("tandem.example:80", 421),
        ("tandem.example:8443", 421),
        ("tandem.example.", 421),
    ):
        with at(server, host, **https) as browser:
            assert browser.get("/api/me").status_code == status, host
    with at(server, HOST, **{"x-forwarded-proto": "http"}) as plain:  # the proxy says http
        assert_misdirected(plain.get("/api/me"))


def test_forwarded_host_headers_never_name_the_origin_even_from_a_trusted_proxy(
    server_factory: ServerFactory,
) -> None:
    """uvicorn applies a trusted proxy's X-Forwarded-Proto and -For only; nothing reads
    X-Forwarded-Host or Forwarded: the proxy must pass the browser's Host (docs/deployment.md)."""
    server = server_factory(public_origins=(PUBLIC,), trusted_proxies=("127.0.0.1",))
    for forged in ({"x-forwarded-host": HOST}, {"forwarded": f"host={HOST};proto=http"}):
        with at(server, "evil.example", **forged) as browser:
            assert_misdirected(browser.get("/api/me"))
    with at(server, HOST, **{"x-forwarded-host": "evil.example"}) as browser:
        assert browser.get("/api/me").status_code == 401  # the Host decides


# -- The sockets' origins --------------------------------------------------------------------


async def socket_verdict(
    server: RunningServer, path: str, origin: str | None, cookie: str | None = None
) -> int | str:
    """Open ``path`` at the public name with this Origin: "accepted" if it answers a first
    message, else the close code (or the refused handshake's status)."""
    headers = {"cookie": f"tandem_agent={cookie}"} if cookie else {}
    try:
        ws = await connect(
            f"ws://{HOST}{path}",
            host="127.0.0.1",
            port=port_of(server),
            origin=origin,  # type: ignore[arg-type]
            additional_headers=headers,
            compression=None,
        )
    except InvalidStatus as exc:
        return exc.response.status_code
    track_connection(ws)
    try:
        if path == "/ws/agent":
            await send(ws, type="join", code="00000")
            assert await recv_json(ws) == INVALID_CODE
        else:
            await send(ws, type="create")
            assert (await recv_json(ws))["type"] == "created"
    except ConnectionClosed as exc:
        assert exc.rcvd is not None
        return exc.rcvd.code
    finally:
        await ws.close()
    return "accepted"


AGENT_ORIGINS_REFUSED = [
    None,
    "null",
    "http://evil.example",
    "http://sub.tandem.example",  # a sibling (or child) name
    "http://example",
    "https://tandem.example",  # scheme swap
    "http://tandem.example:8080",
    "http://tandem.example:443",
    "http://tandem.example:0",
    "http://tandem.example.",
    "http://tandem.example/path",
    "http://user@tandem.example",
    "http://tandem.example.evil.example",
    SHOP,  # a customer's site is no console
]


@pytest.mark.parametrize("origin", AGENT_ORIGINS_REFUSED)
async def test_the_agent_socket_refuses_every_origin_but_the_consoles(
    named: RunningServer, origin: str | None
) -> None:
    with at(named, HOST) as browser:
        cookie = sign_in(browser).cookies["tandem_agent"]
    assert await socket_verdict(named, "/ws/agent", origin, cookie) == 4403


@pytest.mark.parametrize(
    "origin", [PUBLIC, "HTTP://TANDEM.EXAMPLE", "http://tandem.example:80", f"{PUBLIC}/"]
)
async def test_the_agent_socket_takes_its_own_origin_however_written(
    named: RunningServer, origin: str
) -> None:
    with at(named, HOST) as browser:
        cookie = sign_in(browser).cookies["tandem_agent"]
    assert await socket_verdict(named, "/ws/agent", origin, cookie) == "accepted"
    assert await socket_verdict(named, "/ws/agent", origin) == 4401  # and still its cookie


CUSTOMER_ORIGINS_REFUSED = [
    None,
    "null",
    "http://shop.example",  # scheme swap
    "https://shop.example:8443",
    "https://www.shop.example",  # a sibling
    "https://shop.example.",
    "https://shop.example.evil.example",
    "https://evil.example",
    "https://tandem.example",  # the server's name by the wrong scheme
]


@pytest.mark.parametrize("origin", CUSTOMER_ORIGINS_REFUSED)
async def test_the_customer_socket_refuses_every_origin_but_an_allowed_sites(
    named: RunningServer, origin: str | None
) -> None:
    assert await socket_verdict(named, "/ws/customer", origin) == 4403


@pytest.mark.parametrize("origin", [SHOP, "HTTPS://Shop.Example:443", PUBLIC])
async def test_the_customer_socket_takes_an_allowed_sites_origin(
    named: RunningServer, origin: str
) -> None:
    assert await socket_verdict(named, "/ws/customer", origin) == "accepted"


# -- Cross-site writes with a valid cookie ---------------------------------------------------


@pytest.fixture
def signed_in(named: RunningServer) -> Iterator[httpx.Client]:
    with at(named, HOST) as browser:
        assert sign_in(browser).status_code == 200
        yield browser


def still_signed_in(browser: httpx.Client) -> bool:
    return browser.get("/api/me").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "cross-site"},  # no Origin: Fetch Metadata says another site
        {"sec-fetch-site": "same-site"},  # a sibling name's page
        {
            "sec-fetch-site": "cross-site",
            "sec-fetch-mode": "navigate",
            "sec-fetch-dest": "document",
        },
        {"origin": "null"},  # a sandboxed frame, a data: URL
        {"origin": "null", "sec-fetch-site": "cross-site"},
        {"referer": "http://evil.example/page"},  # Referer only
        {"referer": "http://sub.tandem.example/"},
        {"referer": "null"},
        {"origin": "http://tandem.example", "sec-fetch-site": "cross-site"},  # they disagree
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_a_cross_site_write_with_the_cookie_is_refused(
    signed_in: httpx.Client, headers: dict[str, str], method: str
) -> None:
    target = "/api/logout" if method == "POST" else "/api/me"
    answer = signed_in.request(method, target, headers=headers)
    assert answer.status_code == 403, answer.text
    assert answer.json()["detail"] == "Cross-site request refused."
    assert still_signed_in(signed_in)


def test_without_a_public_origin_the_write_check_reads_fetch_metadata_and_referer_too(
    server: RunningServer,
) -> None:
    """The same check when the server answers any Host (``make run``): its own origin is the
    Host's, and a browser's other signs of another site refuse a write all the same."""
    with httpx.Client(base_url=server.base) as browser:
        assert sign_in(browser).status_code == 200
        for headers in (
            {"sec-fetch-site": "cross-site"},
            {"referer": "http://evil.example/"},
            {"origin": "null"},
        ):
            answer = browser.post("/api/logout", headers=headers)
            assert answer.status_code == 403, (headers, answer.text)
        assert still_signed_in(browser)
        own = browser.post("/api/logout", headers={"referer": f"{server.base}/console/"})
        assert own.status_code == 204
        assert not still_signed_in(browser)


async def test_two_origin_headers_are_refused(named: RunningServer) -> None:
    """No browser sends two: the write check read the first (the server's own, then another's)."""
    with at(named, HOST) as browser:
        cookie = sign_in(browser).cookies["tandem_agent"]
    port = port_of(named)
    write = (
        f"POST /api/logout HTTP/1.1\r\nHost: {HOST}\r\nCookie: tandem_agent={cookie}\r\n"
        f"Origin: {PUBLIC}\r\nOrigin: http://evil.example\r\nContent-Length: 0\r\n"
        "Connection: close\r\n\r\n"
    )
    assert status_of(await raw_request(port, write)) == 403
    for path, first in (("/ws/agent", PUBLIC), ("/ws/customer", SHOP)):
        handshake = (
            f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\nCookie: tandem_agent={cookie}\r\n"
            f"Origin: {first}\r\nOrigin: http://evil.example\r\n\r\n"
        )
        # Held by the WebSocket library: the handshake itself is refused.
        answer = await whole_answer(port, handshake)
        assert status_of(answer) == 400 and "invalid Origin header: multiple values" in answer, (
            answer
        )


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no browser headers: the CLI, scripts
        {"origin": PUBLIC, "sec-fetch-site": "same-origin"},
        {"sec-fetch-site": "same-origin"},
        {"referer": f"{PUBLIC}/console/"},
    ],
)
def test_a_same_origin_write_goes_through(signed_in: httpx.Client, headers: dict[str, str]) -> None:
    assert signed_in.post("/api/logout", headers=headers).status_code == 204
    assert not still_signed_in(signed_in)


def anonymous_events(server: RunningServer, action: str) -> float:
    """The server's count of ``action`` (tandem_anonymous_events_total), asked by address."""
    scraped = httpx.get(f"{server.base}/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert scraped.status_code == 200, scraped.text
    wanted = f'tandem_anonymous_events_total{{action="{action}"}} '
    found = [line for line in scraped.text.splitlines() if line.startswith(wanted)]
    return float(found[0].split()[-1]) if found else 0.0


def test_the_refusals_are_counted(named: RunningServer, signed_in: httpx.Client) -> None:
    """Refused before any route, with no account read: counted, never a record each
    (docs/audit.md, "Events with no signed-in actor")."""
    writes, misdirected = (
        anonymous_events(named, "cross_site_refused"),
        anonymous_events(named, "host_misdirected"),
    )
    refused = signed_in.post("/api/logout", headers={"sec-fetch-site": "cross-site"})
    assert refused.status_code == 403
    assert get(named, "Host: evil.example\r\n") == 421
    assert anonymous_events(named, "cross_site_refused") == writes + 1
    assert anonymous_events(named, "host_misdirected") == misdirected + 1


def test_a_rebound_name_refused_without_a_public_origin_is_counted(
    server_factory: ServerFactory,
) -> None:
    unnamed = server_factory(metrics_token=TOKEN)
    misdirected = anonymous_events(unnamed, "host_misdirected")
    assert get(unnamed, f"Host: attacker.example:{port_of(unnamed)}\r\n") == 421
    assert anonymous_events(unnamed, "host_misdirected") == misdirected + 1


# -- CORS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def with_console(
    tmp_path_factory: pytest.TempPathFactory, data_templates: DataTemplates
) -> Iterator[RunningServer]:
    with module_server(
        tmp_path_factory,
        data_templates,
        public_origins=(PUBLIC,),
        console_origins=("http://console.tandem.example",),
    ) as running:
        yield running


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "null",
        "http://console.tandem.example.evil.example",
        "https://console.tandem.example",
        "http://console.tandem.example:8080",
        "http://xconsole.tandem.example",
        PUBLIC,  # same-origin needs no CORS
    ],
)
def test_a_preflight_from_anyone_but_a_console_origin_allows_nothing(
    with_console: RunningServer, origin: str
) -> None:
    with at(with_console, HOST) as browser:
        for path in ("/api/logout", "/api/me", "/api/login"):
            answer = browser.options(
                path,
                headers={
                    "origin": origin,
                    "access-control-request-method": "POST",
                    "access-control-request-headers": "content-type",
                },
            )
            assert "access-control-allow-origin" not in answer.headers, (origin, path)
            assert "access-control-allow-credentials" not in answer.headers
            plain = browser.get(path, headers={"origin": origin})
            assert "access-control-allow-origin" not in plain.headers, (origin, path)


def test_a_console_origins_preflight_names_it_never_a_wildcard(with_console: RunningServer) -> None:
    console = "http://console.tandem.example"
    with at(with_console, HOST) as browser:
        answer = browser.options(
            "/api/logout",
            headers={
                "origin": "HTTP://Console.Tandem.Example",
                "access-control-request-method": "POST",
            },
        )
        assert answer.status_code == 204
        assert answer.headers["access-control-allow-origin"] == console
        assert answer.headers["access-control-allow-credentials"] == "true"
        assert "*" not in answer.headers["access-control-allow-methods"]
        assert "origin" in answer.headers["vary"].lower()
        sdk = browser.get("/sdk/tandem.js", headers={"origin": "http://evil.example"})
        assert "access-control-allow-origin" not in sdk.headers


# -- Cookies ---------------------------------------------------------------------------------


def cookie_attributes(answer: httpx.Response, name: str) -> dict[str, str]:
    [line] = [v for v in answer.headers.get_list("set-cookie") if v.startswith(f"{name}=")]
    attributes: dict[str, str] = {}
    for part in line.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        attributes[key.lower()] = value
    return attributes


def test_the_sign_in_cookie_over_https_is_host_prefixed_secure_http_only_strict(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        public_origins=("https://tandem.example",), trusted_proxies=("127.0.0.1",)
    )
    with at(server, HOST, **{"x-forwarded-proto": "https"}) as browser:
        answer = sign_in(browser)
        assert answer.status_code == 200
        flags = cookie_attributes(answer, "__Host-tandem_agent")
        assert {"secure", "httponly"} <= flags.keys()
        assert flags["samesite"].lower() == "strict" and flags["path"] == "/"
        assert "domain" not in flags
    with at(server, HOST) as plain:  # the same name by http: no cookie without Secure at all
        answer = plain.post("/api/login", json={"username": "alice", "password": AGENT_PASSWORD})
        assert_misdirected(answer)
        assert "set-cookie" not in answer.headers


def test_the_sign_in_cookie_over_http_is_http_only_and_strict(named: RunningServer) -> None:
    with at(named, HOST) as browser:
        flags = cookie_attributes(sign_in(browser), "tandem_agent")
        assert "httponly" in flags and flags["samesite"].lower() == "strict"
        assert "domain" not in flags and flags["path"] == "/"


# -- Redirects -------------------------------------------------------------------------------

OPEN_REDIRECTS = [
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https:evil.example",
    "https://evil.example",
    "%2F%2Fevil.example",
    "/%2F%2Fevil.example",
    "%5C%5Cevil.example",
    "/%09/evil.example",
    "javascript:alert(1)",
]


@pytest.mark.parametrize("where", OPEN_REDIRECTS)
def test_no_redirect_leaves_the_server(named: RunningServer, where: str) -> None:
    """No route takes a return-to parameter: every redirect is a fixed path on this server,
    whatever parameter names another place."""
    with at(named, HOST) as browser:
        for path in (
            f"/api/sso/start?org=default&next={where}&return_to={where}&redirect_uri={where}",
            f"/api/sso/callback?state=x&next={where}",
            f"/console?next={where}",
            f"/demo?next={where}",
            f"/?next={where}",
            f"/practice?next={where}",
        ):
            answer = browser.get(path)
            assert answer.is_redirect, (path, answer.status_code)  # each answers with one
            location = answer.headers["location"]
            assert location.startswith("/") and not location.startswith(("//", "/\\")), (
                path,
                location,
            )
            assert "evil" not in location, (path, location)


def test_the_sso_start_takes_no_redirect_uri_or_return_to_from_the_request(
    sso_server: RunningServer,  # noqa: F811
    provider: OidcProvider,  # noqa: F811
) -> None:
    with at(sso_server, HOST) as browser:
        start = browser.get(
            "/api/sso/start",
            params={
                "org": "default",
                "redirect_uri": "http://evil.example/api/sso/callback",
                "next": "//evil.example",
                "state": "chosen",
            },
        )
        assert redirect_uri(start) == f"{PUBLIC}/api/sso/callback"
        assert "evil" not in start.headers["location"]
        assert "state=chosen" not in start.headers["location"]


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "//evil.example/demo",
        "/\\evil.example/",
        "/demo//evil.example",
        "/demo/..//evil.example",
        "/console//evil.example",
        "/demo/%2F%2Fevil.example",
        "/%2F%2Fevil.example",
    ],
)
def test_a_path_shaped_like_another_host_is_never_redirected_there(
    named: RunningServer, target: str
) -> None:
    request = f"GET {target} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
    head = asyncio.run(raw_request(port_of(named), request))
    for line in head.split("\r\n"):
        if line.lower().startswith("location:"):
            location = line.split(":", 1)[1].strip()
            assert location.startswith("/") and not location.startswith(("//", "/\\")), head


# -- The compliance check --------------------------------------------------------------------


def public_origin_item(server: RunningServer) -> tuple[dict[str, str], dict[str, str]]:
    """The ``public_origin`` item as the running server's report says it (an admin's
    /api/compliance), and as ``tandem compliance check`` on its data directory does."""
    with httpx.Client(base_url=server.base) as ada:
        assert sign_in(ada, "ada").status_code == 200
        [report] = ada.get("/api/compliance", params={"profile": "gdpr"}).json()
    [served] = [r for r in report["results"] if r["requirement"] == "public_origin"]
    data_dir = str(server.settings.data_dir)
    check = ["compliance", "check", "--profile", "gdpr", "--format", "json", "--data-dir", data_dir]
    ran = tandem_in_process(*check, env={"PATH": "/usr/bin:/bin"})
    [offline] = [
        r for r in json.loads(ran.stdout)["results"] if r["requirement"] == "public_origin"
    ]
    return served, offline


async def refuse_to_record(*args: object, **kwargs: object) -> None:
    raise StorageError("disk full")


def test_a_reverse_proxy_seen_without_a_public_origin_fails_the_compliance_check(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On loopback, with no --trusted-proxy, the check passed: but nginx on the same machine,
    forwarding to 127.0.0.1, passes on whatever Host the browser sent. Its headers say so."""
    server = server_factory(seed=seed_two_organisations)
    for item in public_origin_item(server):
        assert item["status"] == "pass" and "loopback only" in item["detail"], item
    through_proxy = {"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https"}
    assert httpx.get(f"{server.base}/demo/", headers=through_proxy).status_code == 200
    for item in public_origin_item(server):
        assert item["status"] == "fail", item
        assert "reverse proxy (x-forwarded-for seen" in item["detail"], item
        assert "--public-origin" in item["fix"]
        assert "tandem compliance forget-proxy" in item["fix"], item
    # Once no proxy forwards to it, the operator removes the note: never unrecorded (a
    # database refusing the record leaves the note and says so).
    data_dir = str(server.settings.data_dir)
    with monkeypatch.context() as patched:
        patched.setattr(AuditLog, "record", refuse_to_record)
        refused = tandem_in_process("compliance", "forget-proxy", "--data-dir", data_dir)
    assert refused.returncode != 0 and "disk full" in refused.stderr, refused
    assert served_public_origin(server)["status"] == "fail"
    forgot = tandem_in_process("compliance", "forget-proxy", "--data-dir", data_dir)
    assert forgot.stdout.strip() == "the reverse proxy's note is removed", forgot
    for item in public_origin_item(server):
        assert item["status"] == "pass", item
    again = tandem_in_process("compliance", "forget-proxy", "--data-dir", data_dir)
    assert again.stdout.strip() == "no reverse proxy was noted", again
    # The removal is evidence (the note failed an item): on record once, for the one removal.
    with api(server, "aud") as aud:
        trail = aud.get("/api/audit").json()
    forgotten = [r for r in trail if r["action"] == "compliance_note_forgotten"]
    assert [(r["actor"], r["subject"]) for r in forgotten] == [("cli", "proxy_headers_seen")]


def test_a_removed_proxy_note_comes_back_while_a_proxy_still_forwards(
    server_factory: ServerFactory,
) -> None:
    """The operator removes the note before the proxy is gone (or an insider wants a clean
    report): noted once per process, it stayed removed and the item passed until a restart.
    The next proxied request notes it again (looked for every transport_note_recheck_seconds),
    as a removed plain-HTTP note is."""
    server = server_factory(seed=seed_two_organisations, transport_note_recheck_seconds=0)
    through_proxy = {"x-forwarded-for": "203.0.113.7"}
    assert httpx.get(f"{server.base}/demo/", headers=through_proxy).status_code == 200
    assert served_public_origin(server)["status"] == "fail"
    data_dir = str(server.settings.data_dir)
    forgot = tandem_in_process("compliance", "forget-proxy", "--data-dir", data_dir)
    assert forgot.stdout.strip() == "the reverse proxy's note is removed", forgot
    assert served_public_origin(server)["status"] == "pass"  # nothing proxied since
    assert httpx.get(f"{server.base}/demo/", headers=through_proxy).status_code == 200
    item = served_public_origin(server)
    assert item["status"] == "fail" and "x-forwarded-for seen" in item["detail"], item


def test_a_reverse_proxy_seen_by_one_server_of_a_cluster_fails_every_servers_check(
    requires_redis: None, server_factory: ServerFactory, tmp_path: Path
) -> None:
    """Each server noted the proxy in its own data directory: on a cluster behind one proxy
    that reached one server so far, the others' checks passed, and their next starts warned of
    nothing. The note is the database's: every server's check fails, any server's start warns."""
    with start_cluster(server_factory, tmp_path) as start:
        a, b = start(), start()
        add_admin_to_cluster(a, tmp_path)
        for server in (a, b):
            assert served_public_origin(server)["status"] == "pass"
        through_proxy = {"x-forwarded-for": "203.0.113.7"}
        assert httpx.get(f"{a.base}/demo/", headers=through_proxy).status_code == 200
        for server in (b, a):
            item = served_public_origin(server)
            assert item["status"] == "fail", item
            assert "reverse proxy (x-forwarded-for seen" in item["detail"], item
        env = {
            "TANDEM_LOG_FORMAT": "json",
            "TANDEM_DATABASE_URL": str(a.settings.database_url),
            "TANDEM_AUDIT_KEY": str(a.settings.audit_key_file),
            "TANDEM_REDIS_URL": str(a.settings.redis_url),
            "TANDEM_REDIS_PREFIX": a.settings.redis_prefix,
        }
        with serving(tmp_path / "third", env=env, forked=True) as (_, err):
            pass
    events = [json.loads(line).get("event", "") for line in err.splitlines() if line[:1] == "{"]
    [warning] = [e for e in events if "no public origin is set" in e]
    assert "requests came through a reverse proxy (x-forwarded-for seen" in warning


def test_a_proxy_note_the_database_refused_is_made_at_the_next_proxied_request(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = server_factory(seed=seed_two_organisations)
    failing = FailingCall(
        server.server.config.app.state.services.storage, monkeypatch, "note_proxy"
    )
    failing.arm(1)
    through_proxy = {"x-forwarded-for": "203.0.113.7"}
    assert httpx.get(f"{server.base}/demo/", headers=through_proxy).status_code == 200
    assert failing.calls == ["note_installation"]  # refused: nothing noted
    assert served_public_origin(server)["status"] == "pass"
    assert httpx.get(f"{server.base}/demo/", headers=through_proxy).status_code == 200
    assert failing.calls == ["note_installation", "note_installation"]
    assert served_public_origin(server)["status"] == "fail"


def served_public_origin(server: RunningServer) -> dict[str, str]:
    """The ``public_origin`` item of an admin's /api/compliance on ``server``."""
    with httpx.Client(base_url=server.base) as ada:
        assert sign_in(ada, "ada").status_code == 200
        [report] = ada.get("/api/compliance", params={"profile": "gdpr"}).json()
    [item] = [r for r in report["results"] if r["requirement"] == "public_origin"]
    return item


def add_admin_to_cluster(server: RunningServer, tmp_path: Path) -> None:
    """The default organisation's admin ``ada`` on the database ``server`` shares with its
    cluster, made as the CLI does."""
    add_to_cluster(server, tmp_path, "ada", "admin", trained=False)


def test_a_proxy_header_is_not_noted_with_a_public_origin(named: RunningServer) -> None:
    forwarded = {"x-forwarded-for": "203.0.113.7", "forwarded": "for=203.0.113.7"}
    with at(named, HOST, **forwarded) as browser:
        assert browser.get("/demo/").status_code == 200
    assert not named.settings.proxy_seen_path.exists()


@pytest.mark.parametrize("noted_in", ["database", "data directory (an earlier version)"])
def test_a_noted_proxy_warns_at_the_next_start(
    tmp_path: Path, data_templates: DataTemplates, noted_in: str
) -> None:
    data_dir = tmp_path / "data"
    data_templates.copy_to(data_dir)
    if noted_in == "database":

        async def note() -> None:
            storage = await SQLStorage.open_sqlite(data_dir / "tandem.sqlite3")
            try:
                await storage.note_installation(PROXY_NOTE, "x-forwarded-for", 1.0)
            finally:
                await storage.close()

        run_in_thread(note)
    else:
        (data_dir / "proxy-headers-seen").write_text("x-forwarded-for\n")
    with serving(data_dir, env={"TANDEM_LOG_FORMAT": "json"}, forked=True) as (_, err):
        pass
    events = [json.loads(line).get("event", "") for line in err.splitlines() if line[:1] == "{"]
    [warning] = [e for e in events if "no public origin is set" in e]
    assert "requests came through a reverse proxy (x-forwarded-for seen" in warning
