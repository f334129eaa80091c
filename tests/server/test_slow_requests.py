"""A request that arrives slowly ("slowloris") is cut off: its line, headers and body must arrive
within ``http_request_timeout_seconds`` (tandem.server.http_protocol); nothing else is."""

from __future__ import annotations

import asyncio
import http.client
import select
import socket
import time

import httpx
import pytest

from tandem.config import Settings
from tandem.exceptions import ConfigError
from tests.conftest import RunningServer, ServerFactory
from tests.server.helpers import login_cookie, open_agent, recv_json, send

DEADLINE = 1.0


@pytest.fixture
def hurried(server_factory: ServerFactory) -> RunningServer:
    return server_factory(http_request_timeout_seconds=DEADLINE)


def connect(server: RunningServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.settings.port), timeout=10)


def answer_until_closed(sock: socket.socket, bound: float = 10.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed (a
    failure if it is still open after ``bound`` seconds)."""
    started, received = time.monotonic(), b""
    sock.settimeout(0.2)
    while time.monotonic() - started < bound:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    else:
        pytest.fail(f"the connection was still open after {bound} s: {received[:200]!r}")
    return received, time.monotonic() - started


def test_unfinished_headers_get_408_and_the_connection_closes(hurried: RunningServer) -> None:
    with connect(hurried) as slow:
        slow.sendall(b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")  # never ends
        answer, after = answer_until_closed(slow)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert after >= DEADLINE * 0.5  # not refused at once: cut off at its deadline


def test_an_unfinished_body_gets_408_and_the_connection_closes(
    hurried: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    with connect(hurried) as slow:
        slow.sendall(
            b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 4000\r\n\r\n{"
        )
        answer, _ = answer_until_closed(slow)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert answer.count(b"HTTP/1.1") == 1  # the application answered nothing after it
    # A client cut off (or gone) mid-body is not a server failure: nothing logged as one.
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text


def test_a_trickle_that_keeps_sending_is_still_cut_off(hurried: RunningServer) -> None:
    """Each byte resetting a timer would let a slow client stay for ever: the deadline runs
    from the request's first byte, however busy the client keeps it."""
    with connect(hurried) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        lines = 0
        try:  # a header line whenever a twentieth of the deadline passes with no answer
            while not select.select([slow], [], [], DEADLINE / 20)[0]:
                slow.sendall(b"X-A: b\r\n")
                lines += 1
                assert lines < 200, "ten deadlines' worth of trickle and still no answer"
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer, _ = answer_until_closed(slow)
    assert answer.startswith(b"HTTP/1.1 408 "), answer


def test_a_connection_that_sends_nothing_is_closed(hurried: RunningServer) -> None:
    with connect(hurried) as idle:
        answer, after = answer_until_closed(idle)
    assert answer == b""  # nothing of a request came: nothing to answer
    assert after >= DEADLINE * 0.5


async def test_whole_requests_and_sockets_outlive_the_deadline(hurried: RunningServer) -> None:
    """A request that arrived in time is answered however long the connection then stays (kept
    alive between requests as before), and a WebSocket is not a request in progress. That the
    deadline has passed for both, the server itself tells (no waiting on a clock): a request
    begun after them, left unfinished, has been cut off."""
    cookie = login_cookie(hurried, "alice")
    agent = await open_agent(hurried, cookie)
    kept = http.client.HTTPConnection("127.0.0.1", hurried.settings.port, timeout=10)
    try:
        kept.request("GET", "/healthz")
        assert kept.getresponse().read()  # a whole answer: the next request may follow
        connection = kept.sock
        with connect(hurried) as later:
            later.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")  # never ends
            answer, _ = await asyncio.to_thread(answer_until_closed, later)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        kept.request("GET", "/healthz")
        again = kept.getresponse()
        assert again.status == 200
        assert kept.sock is connection  # the same connection, kept alive (not made again)
    finally:
        kept.close()
    await send(agent, type="join", code="00000 0000000")
    assert (await recv_json(agent))["type"] == "error"  # answered: the socket is live
    await agent.close()


def test_the_deadline_is_a_setting_that_must_be_positive() -> None:
    from tandem.config import Settings
    from tandem.exceptions import ConfigError

    assert Settings().http_request_timeout_seconds == 10.0
    with pytest.raises(ConfigError, match="http_request_timeout_seconds"):
        Settings(http_request_timeout_seconds=0)


HEADER_LINE = b"X-Filler: " + b"v" * 90 + b"\r\n"  # 100 bytes


def test_headers_beyond_the_bound_get_431_at_once_and_the_connection_closes(
    hurried: RunningServer,
) -> None:
    """uvicorn kept every header it was sent: one request with 50 MB of headers, sent at once,
    held some 300 MB of the server's memory. Past ``http_max_header_bytes`` (64 KiB) the server
    answers 431 at once, before the headers end, instead of reading on."""
    with connect(hurried) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + HEADER_LINE * 700)  # 70 KB, no end
        answer, _ = answer_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
    with connect(hurried) as sock:  # a whole request over the bound, body and all
        sock.sendall(
            b"POST /api/login HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            + HEADER_LINE * 2000
            + b"content-length: 2\r\n\r\n{}"
        )
        answer, _ = answer_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
    # Large but ordinary headers (a 30 KB cookie) still pass, on a connection kept alive.
    big = httpx.get(f"{hurried.base}/healthz", headers={"cookie": "c=" + "x" * 30_000})
    assert big.status_code == 200


def test_the_header_bound_is_a_setting_of_at_least_8_kib() -> None:
    with pytest.raises(ConfigError, match="http_max_header_bytes"):
        Settings.load(environ={}, http_max_header_bytes=4096)
