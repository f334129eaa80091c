"""A TCP proxy in front of a test server whose connections a test can cut, as a flaky network
does: ``cut()`` resets every open connection (the browser sees its sockets drop, 1006, with no
close frame), ``down()`` refuses new connections until ``up()``, ``hold()`` keeps what the server
sends until ``release()``. Pages opened through ``proxy.base`` reach the real server through it
(same host, so the same cookies)."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

from tests.conftest import RunningServer


class NetCut:
    def __init__(self, server: RunningServer) -> None:
        self.target = ("127.0.0.1", server.settings.port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._down = False
        self._closed = False
        self._flowing = threading.Event()  # cleared: what the server sends is held (hold())
        self._flowing.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                refuse = self._down
            if refuse:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                closed = self._closed
                if not closed:
                    self._open |= {client, upstream}
            if closed:  # accepted as close() ran: it did not cut this pair
                _reset(client)
                _reset(upstream)
                return
            for source, sink, held in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pump, args=(source, sink, held), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, may_hold: bool) -> None:
        try:
            while data := source.recv(65536):
                if may_hold:
                    self._flowing.wait()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def cut(self) -> int:
        """Reset every open connection; returns how many sockets were cut."""
        with self._lock:
            cut, self._open = self._open, set()
        for sock in cut:
            _reset(sock)
        return len(cut)

    def down(self) -> None:
        """Cut everything and refuse new connections (the network is gone)."""
        with self._lock:
            self._down = True
        self.cut()

    def up(self) -> None:
        with self._lock:
            self._down = False

    def hold(self) -> None:
        """Hold what the server sends to the browsers (kept, in order) until :meth:`release`, as a
        slow network one way does; what the browsers send still goes."""
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._flowing.set()
        with contextlib.suppress(OSError):  # wakes the accept() a close alone would leave waiting
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.cut()


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0): no FIN, no WebSocket close frame."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):  # wakes the pump blocked on it (a close alone would not)
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.close()
