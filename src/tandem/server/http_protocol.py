"""uvicorn's HTTP protocol (httptools) with a deadline for each request to arrive.

uvicorn bounds the idle time between requests on a kept-alive connection (its keep-alive
timeout), but not a request that arrives slowly: a client that opens a connection and sends
nothing, or sends its headers or its body a byte at a time ("slowloris"), holds a connection, a
file descriptor and, once its headers are in, a task, for as long as it likes. Here a request's
line, headers and body must all arrive within ``http_request_timeout_seconds`` of its first byte
(the first request's, of the connection opening). Past that, a request whose answer has not
begun gets ``408 Request Timeout`` and the connection closes; a connection with nothing of a
request yet just closes, as after the keep-alive timeout. A WebSocket upgrade stops the clock
(the socket's own first-message timeout takes over), and so does a request fully received:
how long the answer takes is the application's business.

An answer the client stops reading is cut off too: uvicorn hands a response's body to the
transport whole (a recording's file: up to ``max_recording_bytes``), which keeps what the
client has not taken. While the transport holds more than it should (writing paused), what it
holds must go down every ``send_timeout`` seconds (``socket_send_timeout_seconds``, as for a
socket's peer), or the connection is dropped and what it held freed. And an answer the
application cuts (a download whose sign-in was revoked, tandem.server.http.download) drops its
connection at once through the scope's ``tandem.abort`` extension.

A request's line and headers together are bounded too (``http_max_header_bytes``): uvicorn keeps
every header it is sent, and a single request with 50 MB of headers, sent at once, held some
300 MB of the server's memory until it was answered. Past the bound the request gets ``431
Request Header Fields Too Large`` at once, and the connection closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import struct
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tandem.server.http import ABORT, ABSOLUTE_TARGET

HEADERS_TOO_LARGE_RESPONSE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\n"
    b"content-length: 42\r\n\r\n"
    b"The request's headers are far too large.\n"
)


class _HeadersTooLarge(Exception):
    """Raised in the parser's callback: httptools stops parsing (uvicorn's data_received then
    answers, through :meth:`DeadlineHttpProtocol.send_400_response`, with 431)."""


TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\n"
    b"content-length: 35\r\n\r\n"
    b"The request took too long to send.\n"
)


class DeadlineHttpProtocol(HttpToolsProtocol):
    """See the module. ``request_timeout`` is set on the subclass :func:`http_protocol` makes."""

    request_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024
    send_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0  # of the request line and headers of the request arriving
        self._headers_too_large = False
        self._deadline: asyncio.TimerHandle | None = None
        self._stall: asyncio.TimerHandle | None = None  # while writing is paused
        self._unsent = 0  # what the transport held at the last look
        self._begun = False  # some of a request has arrived and not all of it
        self._cycle: Any = None  # that request's cycle, once its headers are in

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._watch_stall(False)
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        self._watch_stall(True)

    def resume_writing(self) -> None:
        self._watch_stall(False)
        super().resume_writing()

    def _watch_stall(self, paused: bool) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        if paused:
            self._unsent = self.transport.get_write_buffer_size()
            self._stall = self.loop.call_later(self.send_timeout, self._check_stall)

    def _check_stall(self) -> None:
        """Writing has been paused for ``send_timeout``: go on watching if the client took
        something meanwhile, else drop the connection (and what the transport held)."""
        self._stall = None
        unsent = self.transport.get_write_buffer_size()
        if unsent < self._unsent:
            self._unsent = unsent
            self._stall = self.loop.call_later(self.send_timeout, self._check_stall)
            return
        self.transport.abort()  # connection_lost follows: the application's sends end

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun, self._cycle = True, None
        self._header_bytes = 0
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._headers_too_large:  # answered and closing: the rest is not parsed
            return
        super().data_received(data)

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_header_bytes(self, more: int) -> None:
        self._header_bytes += more
        if self._header_bytes > self.max_header_bytes:
            self._headers_too_large = True
            raise _HeadersTooLarge

    def send_400_response(self, msg: str) -> None:
        if not self._headers_too_large:
            super().send_400_response(msg)
            return
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(HEADERS_TOO_LARGE_RESPONSE)
            self.transport.close()

    def on_headers_complete(self) -> None:
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
        if self.url[:1] not in (b"/", b"*"):  # absolute-form: http://host/path (RFC 9112 3.2.2)
            extensions[ABSOLUTE_TARGET] = self.url.decode("latin-1")
        super().on_headers_complete()
        self._cycle = self.cycle
        if self.cycle is not None and self.cycle.scope is self.scope:  # not an upgrade
            extensions[ABORT] = functools.partial(self._abort, self.cycle)

    def _abort(self, cycle: Any) -> None:
        """Drop ``cycle``'s connection now (:data:`tandem.server.http.ABORT`): what the transport
        and the kernel still hold is discarded (a reset, not an orderly close), and the
        application's further sends are ignored, as for a client that went."""
        if cycle.response_complete or self.transport.is_closing():
            return
        cycle.disconnected = True  # its reads end (http.disconnect), its sends do nothing
        cycle.message_event.set()
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    def on_message_complete(self) -> None:
        self._begun = False
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.request_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self._cycle
        if self._begun and not (cycle is not None and cycle.response_started):
            self.transport.write(TIMEOUT_RESPONSE)
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the application's reads end (http.disconnect)
            cycle.message_event.set()
        self.transport.close()


def http_protocol(
    request_timeout: float, max_header_bytes: int = 64 * 1024, send_timeout: float = 10.0
) -> type[DeadlineHttpProtocol]:
    """The protocol class for uvicorn's ``http`` setting, with this deadline per request, this
    bound on its line and headers, and this time an answer may stall."""
    return type(
        "TandemHttpProtocol",
        (DeadlineHttpProtocol,),
        {
            "request_timeout": request_timeout,
            "max_header_bytes": max_header_bytes,
            "send_timeout": send_timeout,
        },
    )
