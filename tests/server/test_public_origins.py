"""The server's public origin (``--public-origin``): the attacker chooses a request's ``Host``
header (a name pointed at the server's address, DNS rebinding; a proxy passing any ``Host``).
With public origins set, a request or WebSocket addressed to another origin is refused (421,
a socket before it is accepted), the probes still answer by address, the identity provider's
redirect URI and the cross-site write check come from the configured origin, never the Host.
Unset on a public address, ``tandem serve`` warns at start-up (the compliance check's item is
in tests/test_compliance.py)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from tandem.server.middleware import PublicOrigins, SameOriginWrites
from tests.conftest import AGENT_PASSWORD, DataTemplates, RunningServer, ServerFactory
from tests.conftest import two_organisations as seed_two_organisations
from tests.oidc_provider import OidcProvider, use_provider
from tests.test_runtime_limits import serving

PUBLIC = "http://tandem.example"
HOST = "tandem.example"
TOKEN = "metrics-token-0123456789"


@pytest.fixture
def named(server_factory: ServerFactory) -> RunningServer:
    return server_factory(public_origins=(PUBLIC,), metrics_token=TOKEN)


def at(server: RunningServer, host: str, **headers: str) -> httpx.Client:
    """A browser reaching ``server`` by the name ``host`` (what DNS made of it)."""
    return httpx.Client(base_url=server.base, headers={"host": host, **headers})


def sign_in(client: httpx.Client, username: str = "alice") -> httpx.Response:
    return client.post("/api/login", json={"username": username, "password": AGENT_PASSWORD})


def assert_misdirected(answer: httpx.Response) -> None:
    assert answer.status_code == 421, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["title"] == "Misdirected request"
    assert "TANDEM_PUBLIC_ORIGINS" in answer.json()["detail"]
    assert "location" not in answer.headers
    assert answer.headers["x-content-type-options"] == "nosniff"  # hardened like any answer


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1", "tandem.example.evil.example"])
def test_a_request_addressed_to_another_host_is_refused(named: RunningServer, host: str) -> None:
    port = urlsplit(named.base).port
    with at(named, host if host != "127.0.0.1" else f"{host}:{port}") as browser:
        assert_misdirected(sign_in(browser))  # the password is not even read
        for path in ("/api/me", "/demo/", "/console/", "/sdk/tandem.js", "/api/openapi.json"):
            assert_misdirected(browser.get(path))
        assert_misdirected(browser.post("/api/logout", headers={"origin": f"http://{host}"}))
    with at(named, HOST) as browser:  # the server's own name: served as ever
        assert browser.get("/demo/").status_code == 200
        assert browser.get("/api/me").status_code == 401
        signed_in = sign_in(browser)
        assert signed_in.status_code == 200, signed_in.text
        assert browser.get("/api/me").json()["username"] == "alice"


def test_a_malformed_or_doubled_host_is_refused(named: RunningServer) -> None:
    port = urlsplit(named.base).port
    for hosts in ([HOST, "evil.example"], ["evil.example", HOST], [f"{HOST}@evil.example"]):
        raw = "".join(f"Host: {h}\r\n" for h in hosts)
        answer = asyncio.run(raw_request(port, f"GET /api/me HTTP/1.1\r\n{raw}\r\n"))
        assert answer.startswith("HTTP/1.1 421 "), (hosts, answer)


def test_the_probes_answer_by_address(named: RunningServer) -> None:
    port = urlsplit(named.base).port
    with at(named, f"127.0.0.1:{port}") as monitor:  # a load balancer's check, by address
        assert monitor.get("/healthz").json() == {"status": "ok"}
        assert monitor.get("/readyz").json() == {"status": "ready"}
        assert monitor.get("/metrics").status_code == 401  # still needs its token
        scraped = monitor.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
        assert scraped.status_code == 200 and "tandem_" in scraped.text
        assert_misdirected(monitor.get("/healthz/"))  # the exact paths only
        assert_misdirected(monitor.get("/metricsx"))


async def raw_request(port: int, request: str) -> str:
    """``request`` as sent, and the status line and headers of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request.encode("latin-1"))
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        return head.decode("latin-1")
    finally:
        writer.close()
        await writer.wait_closed()


def upgrade(path: str, host: str, origin: str) -> str:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: {origin}\r\n\r\n"
    )


@pytest.mark.parametrize("path", ["/ws/customer", "/ws/agent"])
async def test_a_websocket_addressed_to_another_host_is_refused_before_it_is_accepted(
    named: RunningServer, path: str
) -> None:
    port = urlsplit(named.base).port
    assert port is not None
    # A page at the attacker's name, rebound to the server: same-origin with it by the Host.
    refused = await raw_request(port, upgrade(path, "evil.example", "http://evil.example"))
    assert refused.startswith("HTTP/1.1 421 "), refused
    assert "upgrade: websocket" not in refused.lower()
    by_address = await raw_request(port, upgrade(path, f"127.0.0.1:{port}", PUBLIC))
    assert by_address.startswith("HTTP/1.1 421 "), by_address
    accepted = await raw_request(port, upgrade(path, HOST, PUBLIC))
    assert accepted.startswith("HTTP/1.1 101 "), accepted


# -- Without a public origin (``make run``, loopback): DNS rebinding -------------------------

REBOUND = ("attacker.example", "127.0.0.1.nip.io", "localhost.attacker.example", "tandem")


def assert_misdirected_without_origin(answer: httpx.Response) -> None:
    assert answer.status_code == 421, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "--public-origin" in answer.json()["detail"]


@pytest.mark.parametrize("name", REBOUND)
def test_without_a_public_origin_a_rebound_name_is_refused(
    server: RunningServer, name: str
) -> None:
    """An attacker's name resolved to the loopback server (DNS rebinding): its page is then
    same-origin with the server in the operator's browser. It read the console, the demo and
    every anonymous API, and its writes passed the origin check (its Origin was its Host)."""
    port = urlsplit(server.base).port
    host = f"{name}:{port}"
    with at(server, host, origin=f"http://{host}") as page:
        for path in ("/console/", "/demo/", "/api/me", "/sdk/tandem.js", "/api/openapi.json"):
            assert_misdirected_without_origin(page.get(path))
        assert_misdirected_without_origin(sign_in(page))  # no guessing from inside the network
        assert_misdirected_without_origin(page.post("/api/logout"))
    with at(server, name) as default_port:
        assert_misdirected_without_origin(default_port.get("/demo/"))
    assert httpx.get(f"{server.base}/healthz").status_code == 200


@pytest.mark.parametrize("path", ["/ws/customer", "/ws/agent"])
async def test_without_a_public_origin_a_websocket_to_a_rebound_name_is_refused(
    server: RunningServer, path: str
) -> None:
    port = urlsplit(server.base).port
    assert port is not None
    page = f"attacker.example:{port}"
    refused = await raw_request(port, upgrade(path, page, f"http://{page}"))
    assert refused.startswith("HTTP/1.1 421 "), refused
    assert "upgrade: websocket" not in refused.lower()
    for own in (f"127.0.0.1:{port}", f"localhost:{port}"):
        accepted = await raw_request(port, upgrade(path, own, f"http://{own}"))
        assert accepted.startswith("HTTP/1.1 101 "), accepted


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]", "10.1.2.3"])
def test_without_a_public_origin_addresses_and_localhost_are_served(
    server: RunningServer, host: str
) -> None:
    """``make run``'s tour at http://127.0.0.1:8000 and http://localhost:8000, and a server on
    0.0.0.0 reached by its address: no name an attacker's DNS can answer."""
    port = urlsplit(server.base).port
    with at(server, f"{host}:{port}", origin=f"http://{host.lower()}:{port}") as browser:
        assert browser.get("/demo/").status_code == 200
        assert browser.get("/console/").status_code == 200
        assert sign_in(browser).status_code == 200
        assert browser.get("/api/me").json()["username"] == "alice"


def test_without_a_public_origin_the_refusal_of_a_machine_name_says_the_setting_to_use(
    server: RunningServer,
) -> None:
    """The operator's first try: ``tandem serve --host 0.0.0.0``, then
    http://their-machine:8000/console/ in a browser. The 421 said to set --public-origin "to the
    origin browsers use" and left them to work out which (scheme, name, port): it names it."""
    port = urlsplit(server.base).port
    with at(server, f"Frontdesk-PC:{port}") as browser:
        refused = browser.get("/console/")
    assert_misdirected_without_origin(refused)
    detail = refused.json()["detail"]
    assert f"--public-origin http://frontdesk-pc:{port} " in detail, detail
    bad = asyncio.run(raw_request(port, "GET /console/ HTTP/1.1\r\nHost: a b\r\n\r\n"))
    assert bad.startswith(("HTTP/1.1 400 ", "HTTP/1.1 421 ")), bad


NOT_ADDRESSES = (
    "localhost.",  # the same machine to DNS, another origin to the browser: not what it was told
    "localhost.attacker.example.",
    "x.localhost",  # browsers resolve it to loopback themselves, but nobody named it
    "127.1",  # a browser writes an address as the URL standard has it: only an attacker's
    "0x7f.1",  # client sends these forms, which a resolver (not this server) may read as one
    "2130706433",
    "127.0.0.1.",
    "127.0.0.1.nip.io",
    "xn--localhost-ss2d",
)


@pytest.mark.parametrize("name", NOT_ADDRESSES)
def test_without_a_public_origin_no_other_spelling_of_localhost_or_an_address_is_served(
    server: RunningServer, name: str
) -> None:
    port = urlsplit(server.base).port
    with at(server, f"{name}:{port}") as browser:
        assert_misdirected_without_origin(browser.get("/api/me"))
        assert_misdirected_without_origin(sign_in(browser))


@pytest.mark.parametrize(
    "head",
    [
        "GET /api/me HTTP/1.1\r\nHost: localhost:evilport\r\n",  # not a port
        "GET /api/me HTTP/1.1\r\nHost: [fe80::1%25eth0]:{port}\r\n",  # a zone id
        "GET /api/me HTTP/1.1\r\nHost: [fe80::1%eth0]:{port}\r\n",
        "GET /api/me HTTP/1.1\r\nHost: \r\n",  # empty
        "GET /api/me HTTP/1.1\r\nHost: localhost:{port}\r\nHost: attacker.example\r\n",
        "GET /api/me HTTP/1.1\r\nHost: attacker.example\r\nHost: localhost:{port}\r\n",
        "GET /api/me HTTP/1.0\r\n",  # no Host at all
        "GET http://attacker.example/api/me HTTP/1.1\r\nHost: localhost:{port}\r\n",
        "GET http://localhost:{port}/api/me HTTP/1.1\r\nHost: attacker.example\r\n",
        "GET /api/me HTTP/1.1\r\nHost: localhost@attacker.example\r\n",
        "GET /api/me HTTP/1.1\r\nHost: attacker.example#.localhost\r\n",
    ],
)
async def test_without_a_public_origin_a_malformed_doubled_or_missing_host_is_refused(
    server: RunningServer, head: str
) -> None:
    port = urlsplit(server.base).port
    answer = await raw_request(port, head.format(port=port) + "Connection: close\r\n\r\n")
    assert answer.startswith(("HTTP/1.1 421 ", "HTTP/1.1 400 ")), answer


@pytest.mark.parametrize("host", ["[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "8.8.8.8"])
def test_without_a_public_origin_any_address_literal_is_served(
    server: RunningServer, host: str
) -> None:
    """No DNS answers for an address: a browser sends the one it was given, so a page at
    http://8.8.8.8:port reached this server only if that address is this server's (a proxy or a
    NAT in front of it), never by an attacker's DNS."""
    port = urlsplit(server.base).port
    with at(server, f"{host}:{port}") as browser:
        assert browser.get("/api/me").status_code == 401


async def test_without_a_public_origin_the_name_it_listens_on_is_served() -> None:
    """``--host tandem.lan``: the operator named it; other names are still refused."""
    reached: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def get(guard: PublicOrigins, host: str) -> int:
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "GET",
            "scheme": "http",
            "path": "/api/me",
            "headers": [(b"host", host.encode())],
        }
        await guard(scope, receive, send)
        return int(sent[0]["status"])

    named = PublicOrigins(app, bind_hosts=("Tandem.LAN",))
    assert await get(named, "tandem.lan:8000") == 204
    assert await get(named, "localhost:8000") == 204
    assert await get(named, "other.lan:8000") == 421
    assert await get(PublicOrigins(app, bind_hosts=("0.0.0.0",)), "tandem.lan:8000") == 421
    assert reached == ["/api/me", "/api/me"]


def test_the_write_check_compares_the_origin_with_the_public_origin(named: RunningServer) -> None:
    with at(named, HOST) as browser:
        assert sign_in(browser).status_code == 200
        foreign = browser.post("/api/logout", headers={"origin": "http://evil.example"})
        assert foreign.status_code == 403
        assert browser.get("/api/me").status_code == 200
        own = browser.post("/api/logout", headers={"origin": "http://TANDEM.example:80"})
        assert own.status_code == 204
        assert browser.get("/api/me").status_code == 401


async def test_an_origin_equal_to_a_forged_host_is_refused_by_the_write_check() -> None:
    """The write check on its own (the 421 comes first in the server): with a public origin
    set, an Origin that merely equals the request's Host is cross-site; without, as before."""
    reached: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def post(guard: SameOriginWrites, host: str, origin: str) -> int:
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "scheme": "http",
            "path": "/api/logout",
            "headers": [(b"host", host.encode()), (b"origin", origin.encode())],
        }
        await guard(scope, receive, send)
        return int(sent[0]["status"])

    checked = SameOriginWrites(app, public_origins=(PUBLIC,))
    assert await post(checked, "evil.example", "http://evil.example") == 403
    assert await post(checked, HOST, "http://evil.example") == 403
    assert await post(checked, HOST, PUBLIC) == 204
    unset = SameOriginWrites(app)
    assert await post(unset, "evil.example", "http://evil.example") == 204  # today's behaviour
    assert reached == ["/api/logout", "/api/logout"]


def test_behind_a_tls_proxy_the_scheme_is_the_browsers(server_factory: ServerFactory) -> None:
    server = server_factory(
        public_origins=("https://tandem.example",), trusted_proxies=("127.0.0.1",)
    )
    with at(server, HOST, **{"x-forwarded-proto": "https"}) as browser:
        assert browser.get("/api/me").status_code == 401  # reached as https://tandem.example
    with at(server, HOST) as direct:  # the proxy said nothing: plain http, not the public origin
        answer = direct.get("/api/me")
        assert_misdirected(answer)
        assert "--trusted-proxy" in answer.json()["detail"]
    untrusted = server_factory(public_origins=("https://tandem.example",))
    with at(untrusted, HOST, **{"x-forwarded-proto": "https"}) as forged:
        assert_misdirected(forged.get("/api/me"))  # no one else may say it was https


@pytest.fixture
def sso_server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(
        seed=seed_two_organisations,
        test_private_network=True,
        public_origins=(PUBLIC, "http://help.tandem.example"),
    )


@pytest.fixture
def provider(sso_server: RunningServer) -> Iterator[OidcProvider]:
    running = OidcProvider().start()
    running.redirect_uris.update(
        {f"{PUBLIC}/api/sso/callback", "http://help.tandem.example/api/sso/callback"}
    )
    with at(sso_server, HOST, origin=PUBLIC) as ada:
        assert sign_in(ada, "ada").status_code == 200
        use_provider(ada, running, {"alice": "u-1"})
    yield running
    running.stop()


def redirect_uri(start: httpx.Response) -> str:
    assert start.status_code == 303, start.text
    [uri] = parse_qs(urlsplit(start.headers["location"]).query)["redirect_uri"]
    return uri


def test_the_sso_redirect_uri_names_the_public_origin_never_the_host(
    sso_server: RunningServer, provider: OidcProvider
) -> None:
    # The Host as a browser may write it: Starlette's url_for would echo it (port and case).
    with at(sso_server, "TANDEM.example:80") as browser:
        start = browser.get("/api/sso/start", params={"org": "default"})
        assert redirect_uri(start) == f"{PUBLIC}/api/sso/callback"
        at_provider = httpx.get(start.headers["location"])
        assert at_provider.status_code == 302, at_provider.text
        back = urlsplit(at_provider.headers["location"])
        assert f"{back.scheme}://{back.netloc}" == PUBLIC
        finished = browser.get(f"{back.path}?{back.query}")  # the browser, at tandem.example
        assert finished.status_code == 303 and finished.headers["location"] == "/console/"
        assert browser.get("/api/me").json()["username"] == "alice"
    with at(sso_server, "help.tandem.example") as other:  # each public name its own
        start = other.get("/api/sso/start", params={"org": "default"})
        assert redirect_uri(start) == "http://help.tandem.example/api/sso/callback"
    before = provider.requests
    with at(sso_server, "evil.example") as forged:  # no start, no redirect at all
        assert_misdirected(forged.get("/api/sso/start", params={"org": "default"}))
    assert provider.requests == before  # not even the provider's discovery was fetched


@pytest.fixture
def data_dir(tmp_path: Path, data_templates: DataTemplates) -> Path:
    data_templates.copy_to(tmp_path / "data")
    return tmp_path / "data"


WARNING = "no public origin is set and it listens on 0.0.0.0"


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        ({"TANDEM_HOST": "0.0.0.0"}, True),
        ({"TANDEM_HOST": "0.0.0.0", "TANDEM_PUBLIC_ORIGINS": "https://tandem.example"}, False),
        ({}, False),  # loopback, no proxy: make run, the tests
    ],
    ids=["public-address", "public-address-named", "loopback"],
)
def test_serving_on_a_public_address_without_a_public_origin_warns(
    data_dir: Path, env: dict[str, str], warned: bool
) -> None:
    with serving(data_dir, env={**env, "TANDEM_LOG_FORMAT": "json"}, forked=True) as (process, err):
        assert process.stdout is not None
        demo = ""
        while "demo shop" not in demo:  # the banner's next lines, printed with its first
            demo = process.stdout.readline()
            assert demo, "the banner ended without its demo shop line"
    public = env.get("TANDEM_PUBLIC_ORIGINS")
    # Named, the banner's links are the public origin's: the listening address is refused.
    assert demo.split()[-1].startswith(f"{public}/demo/" if public else "http://"), demo
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    warnings = [line for line in lines if "public origin" in line.get("event", "")]
    if warned:
        [warning] = warnings
        assert warning["level"] == "warning", warning
        assert WARNING in warning["event"] and "--public-origin" in warning["event"]
    else:
        assert warnings == [], warnings
    assert os.environ.get("TANDEM_PUBLIC_ORIGINS") is None  # nothing leaked into the tests
