"""A Tandem server run by an attacker, for tests only (never shipped: it lives under tests/).

``MaliciousRelay`` wraps the real ASGI app. It sees every JSON control message the server sends
to, and receives from, the customer's and the agent's sockets, and can rewrite, drop or inject
them, and drop or alter binary frames. Everything the real server does otherwise stays the same,
which is what a compromised relay is: the honest code plus an attacker's edits.

The browsers must notice every edit that would change what the customer shares (docs/threat-
model.md); tests drive real browsers through this relay and check that they do.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

Rewrite = Callable[[dict[str, Any]], list[dict[str, Any]]]
Observe = Callable[[dict[str, Any]], list[dict[str, Any]]]
BinaryRewrite = Callable[[bytes], bytes | None]


def _unchanged(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [message]


def _ignore(message: dict[str, Any]) -> list[dict[str, Any]]:
    return []


def _bytes_unchanged(frame: bytes) -> bytes | None:
    return frame


from tandem.server.websocket_protocol import DIRECT  # noqa: E402


def without_direct_send(scope: Scope) -> Scope:
    """A copy of ``scope`` whose server cannot write to or read from the socket past the ASGI
    ``send`` and ``receive``: the direct paths (one scope extension, both ways,
    tandem.server.websocket_protocol) are withdrawn, as any middleware that sees, rewrites or
    drops frames must, so every frame passes its hooks."""
    extensions = dict(scope.get("extensions") or {})
    extensions.pop(DIRECT, None)
    return {**scope, "extensions": extensions}


class MaliciousRelay:
    """ASGI middleware: the attacker's hooks on the relay's sockets (set them from the test).

    - ``to_customer`` / ``to_agent``: called for each JSON message the server sends on that side;
      return the messages to send instead (``[]`` drops it, several inject more).
    - ``from_customer`` / ``from_agent``: observe each JSON message the server receives; return
      messages to send back on that socket at once (the server itself still gets the message).
    - ``swallow_from_customer``: whether the server never gets a JSON message the customer's page
      sent (it is observed first); ``swallow_stops()`` sets it for the customer's ``stop``.
    - ``close_customer_after``: a close code to close the customer's socket with right after a
      JSON message the server sent it was passed on (None: leave it open).
    - ``binary_to_agent`` / ``binary_from_customer`` / ``binary_to_customer`` (what the agent's
      console sends the customer): return the frame to pass on, or None to drop it.
    - ``inject_customer(message)`` / ``inject_agent(message)``: send a JSON message to the
      latest customer (agent) socket now (callable from the test's thread).
    - ``close_customer(code)``: close the latest customer socket now, as a relay that forces the
      page to reconnect does (callable from the test's thread).
    - ``hold_http``: whether an HTTP request for this path is held back (the server serves the
      shared pages too, so their assets come through it) until ``release_http()``; the paths
      held are listed in ``held_http``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.to_customer: Rewrite = _unchanged
        self.to_agent: Rewrite = _unchanged
        self.from_customer: Observe = _ignore
        self.from_agent: Observe = _ignore
        self.swallow_from_customer: Callable[[dict[str, Any]], bool] = lambda message: False
        self.close_customer_after: Callable[[dict[str, Any]], int | None] = lambda message: None
        self.binary_to_agent: BinaryRewrite = _bytes_unchanged
        self.binary_from_customer: BinaryRewrite = _bytes_unchanged
        self.binary_to_customer: BinaryRewrite = _bytes_unchanged
        self._held_to_customer: list[bytes] = []
        self.hold_http: Callable[[str], bool] = lambda path: False
        self.held_http: list[str] = []
        self._released_http = threading.Event()
        self._lock = threading.Lock()
        self._customer: tuple[asyncio.AbstractEventLoop, Send] | None = None
        self._agent: tuple[asyncio.AbstractEventLoop, Send] | None = None
        self._close_customer: (
            tuple[asyncio.AbstractEventLoop, Callable[[int, str], Awaitable[None]]] | None
        ) = None
        self._close_agent: (
            tuple[asyncio.AbstractEventLoop, Callable[[int, str], Awaitable[None]]] | None
        ) = None
        self.sent_to_customer: list[dict[str, Any]] = []

    def swallow_stops(self) -> list[dict[str, Any]]:
        """From now on the customer's ``stop`` never reaches the server; the list returned fills
        with each one swallowed."""
        swallowed: list[dict[str, Any]] = []

        def swallow(message: dict[str, Any]) -> bool:
            if message.get("type") == "stop":
                swallowed.append(message)
                return True
            return False

        self.swallow_from_customer = swallow
        return swallowed

    def kept_from_customer(self, kind: str) -> list[dict[str, Any]]:
        """From now on (as ``from_customer``) the list returned fills with each JSON message of
        type ``kind`` the customer's page sends; they still reach the server."""
        kept: list[dict[str, Any]] = []

        def keep(message: dict[str, Any]) -> list[dict[str, Any]]:
            if message.get("type") == kind:
                kept.append(message)
            return []

        self.from_customer = keep
        return kept

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and self.hold_http(path):
            self.held_http.append(path)
            # At most a minute: a test that forgets to release does not hang the server's end.
            await asyncio.get_running_loop().run_in_executor(None, self._released_http.wait, 60)
        if scope["type"] != "websocket" or path not in ("/ws/customer", "/ws/agent"):
            await self.app(scope, receive, send)
            return
        scope = without_direct_send(scope)  # every frame must pass these hooks
        customer = path == "/ws/customer"
        rewrite = (lambda m: self.to_customer(m)) if customer else (lambda m: self.to_agent(m))
        observe = (lambda m: self.from_customer(m)) if customer else (lambda m: self.from_agent(m))

        closed = [False]  # the relay closed this socket: the server's later sends go nowhere

        async def relay_send(message: Message) -> None:
            if closed[0]:
                return
            if message["type"] == "websocket.send" and message.get("text") is not None:
                try:
                    parsed = json.loads(message["text"])
                except ValueError:
                    await send(message)
                    return
                for out in rewrite(parsed):
                    if customer:
                        self.sent_to_customer.append(out)
                    await send({"type": "websocket.send", "text": json.dumps(out)})
                code = self.close_customer_after(parsed) if customer else None
                if code is not None:
                    closed[0] = True
                    await send({"type": "websocket.close", "code": code})
                return
            if message["type"] == "websocket.send" and message.get("bytes") is not None:
                frame = message["bytes"] if customer else self.binary_to_agent(message["bytes"])
                if frame is not None:
                    await send({"type": "websocket.send", "bytes": frame})
                return
            await send(message)

        async def relay_receive() -> Message:
            while True:
                message = await receive()
                if message["type"] != "websocket.receive":
                    return message
                if message.get("text") is not None:
                    try:
                        parsed = json.loads(message["text"])
                    except ValueError:
                        return message
                    for reply in observe(parsed):
                        await relay_send({"type": "websocket.send", "text": json.dumps(reply)})
                    if customer and self.swallow_from_customer(parsed):
                        continue
                    return message
                if message.get("bytes") is not None:
                    hook = self.binary_from_customer if customer else self.binary_to_customer
                    frame = hook(message["bytes"])
                    if frame is None:
                        continue
                    return {"type": "websocket.receive", "bytes": frame}
                return message

        async def close_now(code: int, reason: str = "") -> None:
            if closed[0]:
                return
            closed[0] = True
            await send({"type": "websocket.close", "code": code, "reason": reason})

        with self._lock:
            if customer:
                self._customer = (asyncio.get_running_loop(), relay_send)
                self._close_customer = (asyncio.get_running_loop(), close_now)
            else:
                self._agent = (asyncio.get_running_loop(), relay_send)
                self._close_agent = (asyncio.get_running_loop(), close_now)
        await self.app(scope, relay_receive, relay_send)

    def release_http(self) -> None:
        """Let the HTTP requests ``hold_http`` held (and any later ones) through."""
        self._released_http.set()

    def hold_to_customer(self) -> list[bytes]:
        """Hold every binary frame the agent sends to the customer from now on, in order, until
        :meth:`release_to_customer`; the list they are held in."""
        held: list[bytes] = []
        self._held_to_customer = held
        self.binary_to_customer = lambda frame: held.append(frame)  # None: not passed on
        return held

    def release_to_customer(self) -> None:
        """Pass the held frames on to the customer in order, then let later ones through. Done on
        the server's loop, where the hook runs: a frame the agent sends meanwhile is held behind
        them (set free at the same time, it could overtake them, and the customer's browser
        would drop them as replays)."""
        with self._lock:
            target = self._customer
        if target is None:
            raise RuntimeError("no customer socket yet")
        loop, send = target
        held = self._held_to_customer

        async def drain() -> None:
            while held:
                await send({"type": "websocket.send", "bytes": held.pop(0)})
            self.binary_to_customer = _bytes_unchanged  # no await since the last look: none left

        asyncio.run_coroutine_threadsafe(drain(), loop).result(timeout=5)

    def inject_customer_bytes(self, frame: bytes) -> None:
        """Send a binary ``frame`` to the latest customer socket (as if the agent had sent it)."""
        with self._lock:
            target = self._customer
        if target is None:
            raise RuntimeError("no customer socket yet")
        loop, send = target
        future = asyncio.run_coroutine_threadsafe(
            send({"type": "websocket.send", "bytes": frame}), loop
        )
        future.result(timeout=5)

    def close_customer(self, code: int, reason: str = "") -> None:
        """Close the latest customer socket with ``code`` and ``reason`` (from any thread; waits
        until sent)."""
        with self._lock:
            target = self._close_customer
        if target is None:
            raise RuntimeError("no customer socket yet")
        loop, close_now = target
        asyncio.run_coroutine_threadsafe(close_now(code, reason), loop).result(timeout=5)

    def close_agent(self, code: int, reason: str = "") -> None:
        """Close the latest agent socket with ``code`` and ``reason`` (from any thread; waits
        until sent)."""
        with self._lock:
            target = self._close_agent
        if target is None:
            raise RuntimeError("no agent socket yet")
        loop, close_now = target
        asyncio.run_coroutine_threadsafe(close_now(code, reason), loop).result(timeout=5)

    def inject_customer(self, message: dict[str, Any]) -> None:
        """Send ``message`` to the latest customer socket (from any thread; waits until sent)."""
        with self._lock:
            target = self._customer
        if target is None:
            raise RuntimeError("no customer socket yet")
        self._inject(target, message)

    def inject_agent(self, message: dict[str, Any]) -> None:
        """Send ``message`` to the latest agent socket (from any thread; waits until sent)."""
        with self._lock:
            target = self._agent
        if target is None:
            raise RuntimeError("no agent socket yet")
        self._inject(target, message)

    def _inject(
        self, target: tuple[asyncio.AbstractEventLoop, Send], message: dict[str, Any]
    ) -> None:
        loop, send = target
        text = json.dumps(message)
        future = asyncio.run_coroutine_threadsafe(
            send({"type": "websocket.send", "text": text}), loop
        )
        future.result(timeout=5)
