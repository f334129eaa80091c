"""HTTP hardening applied to every response, and the origin check for state-changing requests."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tandem.config import PROXY_HEADERS, is_loopback, normalize_origin
from tandem.exceptions import ConfigError
from tandem.server.http import ABSOLUTE_TARGET, REBOUND, addressed_origin, own_origin, problem

log = logging.getLogger("tandem.server")

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


HSTS = "max-age=31536000; includeSubDomains"

# No inline or foreign script anywhere. The console renders the customer's page styles in its
# (script-less, sandboxed) mirror, so it allows inline styles; images and fonts only from here or
# from data:/blob: (what came inside the encrypted channel): the customer's page must not make the
# agent's browser fetch anything elsewhere (issue 14, item 7; sdk/src/console/assets.ts).
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data: blob:; connect-src 'self'; "
    "frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
DEMO_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

PRACTICE_CSP = DEMO_CSP.replace("frame-ancestors 'none'", "frame-ancestors 'self'")
"""The practice pages (tandem.training) are the demo shop's, framed by the console only."""


def _normalized(origin: str) -> str | None:
    try:
        return normalize_origin(origin)
    except ConfigError:
        return None


PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
"""Paths answered whatever the ``Host``: load balancers and monitoring ask them by address
(``10.0.0.5:8000``). None says anything about sessions or builds a URL; /metrics needs its
bearer token."""


class _Note:
    """A note for the compliance check that one process makes once (:attr:`made`, set before
    any await: one note, however many requests come at once) and, once made, looks for again at
    most every ``recheck_seconds`` (:meth:`due`, :meth:`still_there`): the operator may remove it
    while what it notes still happens. ``what`` names it in a log line."""

    def __init__(
        self,
        noted: Callable[[], Awaitable[bool]] | None,
        recheck_seconds: float,
        what: str,
        wait_seconds: float = 1.0,
    ) -> None:
        self.noted = noted
        self.wait_seconds = wait_seconds
        self.recheck_seconds = recheck_seconds
        self.what = what
        self.made = False
        self.logged = False
        self.checked_at = 0.0
        self._beside: asyncio.Task[None] | None = None

    def busy(self) -> bool:
        """Whether a write or recheck started by :meth:`beside` is still waiting for storage."""
        return self._beside is not None and not self._beside.done()

    async def beside(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` (the note's write, its recheck) beside the request that asked for it,
        one at a time, waiting for it ``wait_seconds`` at most: awaited in full, the note held
        a request that needed no database (a probe, the SDK's script) for
        ``database_timeout_seconds`` while the database was frozen, and the next one again.
        It is held here until it ends (within that bound); meanwhile no other starts."""

        async def run() -> None:
            try:
                await work()
            except Exception as exc:  # a bug: the next such request tries again
                log.error("cannot note %s for the compliance check: %s", self.what, exc)

        self._beside = asyncio.create_task(run(), name=f"tandem:{self.what}")
        await asyncio.wait({self._beside}, timeout=self.wait_seconds)

    def due(self) -> bool:
        """Whether the note made is to be looked for again (never without ``noted``)."""
        return (
            self.noted is not None
            and asyncio.get_running_loop().time() - self.checked_at >= self.recheck_seconds
        )

    def make(self) -> None:
        self.made = True
        self.checked_at = asyncio.get_running_loop().time()

    async def still_there(self) -> bool:
        """Whether the note is still in the database, looked for now; the database away, it is
        taken as there and looked for again at the next recheck."""
        assert self.noted is not None
        self.checked_at = asyncio.get_running_loop().time()  # before any await
        try:
            return await self.noted()
        except Exception as exc:
            log.error("cannot look for %s for the compliance check: %s", self.what, exc)
            return True


class PublicOrigins:
    """With ``--public-origin`` set, every request and WebSocket addressed to another origin
    (its scheme and ``Host`` header: a name an attacker pointed at the server, DNS rebinding,
    or a proxy passing any ``Host``) is refused with 421 Misdirected Request before anything
    reads it; a WebSocket before it is accepted. The probes (:data:`PROBES`) pass by address.
    Unset (``make run``, loopback), only a ``Host`` naming an IP address, ``localhost`` or one
    of ``bind_hosts`` (``--host``) is answered, any port (:func:`named_without_origin`): any
    other name is one the server was never told of, and DNS rebinding makes an attacker's name
    resolve to the server (its page is then same-origin with it in the visitor's browser); it
    is refused 421 the same way. Also unset, the first request that comes
    with a reverse proxy's header (:data:`~tandem.config.PROXY_HEADERS`: a proxy forwards to
    this server, passing on any ``Host``) is logged and noted with ``note_proxy`` (in the
    database, for every server on it: the compliance check and the next start-up's warning,
    Settings.exposure). A note the database refused is made again at the next such request; one
    the operator removed (``tandem compliance forget-proxy``) while the proxy still forwards is
    made again too (``noted``, looked at most every ``recheck_seconds``, as TransportWatch does
    for plain HTTP): noted once per process, it stayed removed and the item passed until the
    next restart."""

    def __init__(
        self,
        app: ASGIApp,
        public_origins: tuple[str, ...] = (),
        note_proxy: Callable[[str], Awaitable[None]] | None = None,
        noted: Callable[[], Awaitable[bool]] | None = None,
        recheck_seconds: float = 60.0,
        wait_seconds: float = 1.0,
        bind_hosts: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.public_origins = frozenset(public_origins)
        self.known_names = frozenset({"localhost", *(h.strip("[]").lower() for h in bind_hosts)})
        self.schemes = {origin.partition("://")[2]: origin for origin in public_origins}
        self.note_proxy = note_proxy
        self.proxy = _Note(noted, recheck_seconds, "the reverse proxy's note", wait_seconds)

    async def _note_proxy(self, scope: Scope, note_proxy: Callable[[str], Awaitable[None]]) -> None:
        headers = Headers(scope=scope)
        header = next((name for name in PROXY_HEADERS if name in headers), None)
        if header is not None:
            await self.proxy.beside(lambda: self._noting_proxy(header, note_proxy))

    async def _noting_proxy(
        self, header: str, note_proxy: Callable[[str], Awaitable[None]]
    ) -> None:
        if self.proxy.made and await self.proxy.still_there():  # a recheck
            return
        self.proxy.make()
        if not self.proxy.logged:
            self.proxy.logged = True
            log.warning(
                "a request came with %s: a reverse proxy forwards to this server, which has no "
                "public origin: whatever name the browser used, the proxy's Host is what this "
                "server checks (an address passes). Set --public-origin "
                "(TANDEM_PUBLIC_ORIGINS) to the origin browsers use (docs/deployment.md)",
                header,
            )
        try:
            await note_proxy(header)
        except Exception as exc:  # the database away: the next such request notes it
            self.proxy.made = False
            log.error("cannot note the reverse proxy for the compliance check: %s", exc)

    def _refusal(self, scope: Scope) -> Response | None:
        addressed = addressed_origin(scope)
        if not self.public_origins:
            if named_without_origin(addressed, self.known_names):
                return None
            # The operator's first try (`--host 0.0.0.0`, then http://their-machine:8000 in a
            # browser) is told the exact setting. The name is the request's, but only letters,
            # digits, dots and hyphens (HOST_HEADER), in a JSON body: it can say nothing else.
            fix = (
                f" This request was addressed to {addressed}: to serve that name, start the "
                f"server with --public-origin {addressed} (repeat it for each origin browsers "
                "use; then only those are answered)."
                if addressed is not None
                else ""
            )
            return problem(
                421,
                "Misdirected request",
                "This server has no public origin (--public-origin, TANDEM_PUBLIC_ORIGINS): it "
                "answers only requests addressed to an IP address, localhost or its --host. "
                "Set --public-origin to the origin browsers use to reach it by name." + fix,
            )
        if addressed in self.public_origins:
            return None
        detail = "This server answers only at its public origin (TANDEM_PUBLIC_ORIGINS)."
        if ABSOLUTE_TARGET in (scope.get("extensions") or {}):
            detail += " The request's target (absolute-form) and its Host header must name it both."
        if addressed is not None and addressed.partition("://")[2] in self.schemes:
            # The right host by the wrong scheme: a TLS proxy Tandem does not believe.
            detail += (
                f" This request came by {addressed.partition('://')[0]}: behind a TLS proxy, "
                "name it with --trusted-proxy and have it send X-Forwarded-Proto."
            )
        return problem(421, "Misdirected request", detail)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if (
            not self.public_origins
            and self.note_proxy is not None
            and (not self.proxy.made or self.proxy.due())
            and not self.proxy.busy()
        ):
            await self._note_proxy(scope, self.note_proxy)
        if scope["type"] == "http" and scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        hosts = ", ".join(Headers(scope=scope).getlist("host"))[:100]
        _count(scope, "host_misdirected", f"{scope['type']} {scope['path'][:100]} Host: {hosts!r}")
        if scope["type"] == "http" or "websocket.http.response" in scope.get("extensions", {}):
            await refusal(scope, receive, send)  # a WebSocket's: the HTTP answer to its upgrade
        else:  # a server without denial responses answers the upgrade 403
            await send({"type": "websocket.close", "code": 1008})


def named_without_origin(addressed: str | None, known_names: frozenset[str]) -> bool:
    """Whether a request addressed to ``addressed`` (:func:`~tandem.server.http.addressed_origin`)
    is answered by a server with no public origin: its host is an IP address (no DNS name to
    rebind: a browser sends the address it was given) or one of ``known_names`` (``localhost``,
    which browsers resolve to loopback themselves, and the ``--host`` it listens on)."""
    if addressed is None:
        return False
    host = urlsplit(addressed).hostname
    if host is None:
        return False
    if host in known_names:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class TransportWatch:
    """Notes what the requests show of the browsers' transport, for the compliance check's
    "transport" item (Settings.transport_seen): the first request that came over plain HTTP
    (its scheme, as the connection or a trusted proxy's ``X-Forwarded-Proto`` says), and the
    first one a trusted proxy forwarded as https. With ``--trusted-proxy`` and no TLS of its
    own, the server took HTTPS on the proxy's word: the item passed for a proxy that forwarded
    plain HTTP (a port 80 it served, an ``X-Forwarded-Proto`` it never sent). The probes
    (:data:`PROBES`, which load balancers ask by address) and requests from this machine that
    carry no proxy header (an operator's ``curl``) cross no network and are not noted. The
    notes are made with ``note`` in the database, for every server on it (a plain request seen
    by one server of a cluster fails every server's item). One note of each kind per process,
    the first plain one also logged; a note the database refused is made again at the next such
    request; the plain one is noted again when the operator removed it while plain requests
    still come (``noted``, looked at most every ``recheck_seconds``): noted once per process, a
    note removed before the proxy was fixed left the item passing until the next restart.

    A request forwarded as https is noted only when ``signed_in`` says it carries a live
    sign-in in its ``__Host-`` cookie, which a browser sets only from an https page and sends
    back only over https. A proxy that passes the client's own ``X-Forwarded-Proto`` through
    (or sets it only when the client sent none) cannot be told from one that sets it: one
    anonymous request saying ``X-Forwarded-Proto: https`` over plain HTTP made the item pass,
    before any browser had come."""

    def __init__(
        self,
        app: ASGIApp,
        note: Callable[[bool, str], Awaitable[None]],
        behind_proxy: bool = False,
        noted: Callable[[], Awaitable[bool]] | None = None,
        recheck_seconds: float = 60.0,
        signed_in: Callable[[Scope], Awaitable[bool]] | None = None,
        wait_seconds: float = 1.0,
    ) -> None:
        self.app = app
        self.note = note
        self.plain = _Note(noted, recheck_seconds, "the transport's note", wait_seconds)
        # Without a proxy, nothing to learn from https; without a way to tell a browser's
        # request from a client's word, nothing either.
        self.https_noted = not behind_proxy or signed_in is None
        self.signed_in = signed_in

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] in ("http", "websocket")
            and (
                not (self.plain.made and self.https_noted)
                or (self.plain.made and scope.get("scheme") in ("http", "ws"))
            )
            and not (scope["type"] == "http" and scope["path"] in PROBES)
            and not self.plain.busy()
        ):
            # Beside the request (_Note.beside): it waits for the database a moment at most.
            await self.plain.beside(functools.partial(self._watch, scope))
        await self.app(scope, receive, send)

    async def _watch(self, scope: Scope) -> None:
        plain = scope.get("scheme") in ("http", "ws")
        headers = Headers(scope=scope)
        proxied = next((name for name in PROXY_HEADERS if name in headers), None)
        client = scope.get("client") or ("", 0)
        if proxied is None and is_loopback(str(client[0])):
            return  # from this machine, through no proxy: it crossed no network
        if plain and self.plain.made and self.plain.due() and not await self.plain.still_there():
            self.plain.made = False  # deleted, yet plain requests still come: noted again
        if plain and not self.plain.made:
            self.plain.make()
            what = (
                f"{scope['type']} {scope['path'][:100]} from {str(client[0])[:60]} over plain "
                f"HTTP ({'forwarded: ' + proxied if proxied else 'direct'})"
            )
            if not self.plain.logged:
                self.plain.logged = True
                log.warning(
                    "a request came over plain HTTP (%s): browsers reach this server "
                    "unencrypted. Serve HTTPS only (--tls-cert, or a proxy that redirects http "
                    "to https and sends X-Forwarded-Proto: https; docs/deployment.md)",
                    what,
                )
        elif not plain and proxied and not self.https_noted:
            if not await self._signed_in(scope):
                return  # the client's word alone (its own X-Forwarded-Proto, passed through)
            self.https_noted = True
            what = f"{scope['type']} {scope['path'][:100]} forwarded as https, signed in"
        else:
            return
        try:
            await self.note(plain, what)
        except Exception as exc:  # the database away: the next such request notes it
            if plain:
                self.plain.made = False
            else:
                self.https_noted = False
            log.error("cannot note the transport for the compliance check: %s", exc)

    async def _signed_in(self, scope: Scope) -> bool:
        assert self.signed_in is not None
        try:
            return await self.signed_in(scope)
        except Exception as exc:  # the database away: a later request proves it
            log.error("cannot note the transport for the compliance check: %s", exc)
            return False


class BindAgain:
    """Adds to an answer the Set-Cookie of a sign-in bound again under the current key of the
    secrets key ring (``login_bind_client``; :func:`tandem.server.http.refuse_other_client`
    puts it in the scope's :data:`tandem.server.http.REBOUND` list)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rebound: list[bytes] = []
        scope[REBOUND] = rebound

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and rebound:
                headers = list(message.get("headers", []))
                # An answer that sets or clears the cookie itself (a sign-out, a new sign-in)
                # has the last word: bound again after it, a signed-out browser kept one.
                if not any(name.lower() == b"set-cookie" for name, _ in headers):
                    headers += [(b"set-cookie", c) for c in rebound]
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)


class SameOriginWrites:
    """CSRF defence for every state-changing request (anything but GET/HEAD/OPTIONS): a browser
    that names another origin is refused with 403. Cookies are also SameSite=Strict and bodies must
    be JSON; this check covers requests without a body, such as sign-out. The server's own
    origin is one of ``--public-origin`` when they are set (the one the request was addressed
    to), else whatever the ``Host`` header names; the origins that host the console
    (``--console-origin``) are the only others allowed.

    What names the requesting page, in order: ``Origin``; without it, a browser's
    ``Sec-Fetch-Site`` other than ``same-origin`` (another site, a sibling name, a typed or
    bookmarked URL: no page of this server) is refused unless the ``Origin`` is a console's;
    without both, the ``Referer``'s origin. A request with none of them (the CLI, scripts) is
    no browser's and passes; several ``Origin`` headers (no browser sends two) are refused. Each
    refusal is counted (``cross_site_refused``)."""

    SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(
        self,
        app: ASGIApp,
        console_origins: tuple[str, ...] = (),
        public_origins: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.console_origins = frozenset(console_origins)
        self.public_origins = tuple(public_origins)

    def _same_origin(self, scope: Scope, origin: str) -> bool:
        if not self.public_origins:  # as the Host header says (docs/threat-model.md)
            host = Headers(scope=scope).get("host", "")
            return origin.lower() == f"{scope.get('scheme', 'http')}://{host}".lower()
        own = own_origin(scope, self.public_origins)
        return own is not None and _normalized(origin) == own

    def _refusal(self, scope: Scope) -> str | None:
        """Why the request is refused (for the count), or None."""
        headers = Headers(scope=scope)
        if len(headers.getlist("origin")) > 1:  # no browser sends two
            return "several Origin headers"
        origin = headers.get("origin")
        consoles = origin is not None and _normalized(origin) in self.console_origins
        site = headers.get("sec-fetch-site")
        if site is not None and site != "same-origin" and not consoles:
            return f"Sec-Fetch-Site: {site[:20]}"
        if origin is None:
            referer = headers.get("referer")
            if referer is None:
                return None
            origin = _referer_origin(referer)
        if self._same_origin(scope, origin) or _normalized(origin) in self.console_origins:
            return None
        return f"from {origin[:100]}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in self.SAFE:
            reason = self._refusal(scope)
            if reason is not None:
                _count(
                    scope, "cross_site_refused", f"{scope['method']} {scope['path'][:100]} {reason}"
                )
                await problem(403, "Forbidden", "Cross-site request refused.")(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _referer_origin(referer: str) -> str:
    """The origin of a ``Referer`` URL (``null`` for one that names none)."""
    try:
        parts = urlsplit(referer.strip())
    except ValueError:
        return "null"
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "null"
    return f"{parts.scheme}://{parts.netloc}"


def _count(scope: Scope, action: str, reason: str) -> None:
    """Count a refusal made before any route (``Hub.count_anonymous``), if the app is running."""
    state = getattr(scope.get("app"), "state", None)
    services = getattr(state, "services", None)
    if services is not None:
        services.hub.count_anonymous(action, "", reason)


class FetchMetadataGuard:
    """Refuse API requests that no page of Tandem's makes (issue 14, item 7): a customer's page
    replayed in the agent's mirror could make the agent's browser load ``/api/me`` as an image or
    a style sheet, with the agent's cookie. Browsers say what a request is for (Fetch Metadata):
    on ``/api/`` only ``fetch()`` (``Sec-Fetch-Dest: empty``) from this origin or a configured
    console origin, and top-level navigations (``document``: the sign-in redirects), which the
    sandboxed mirror cannot make, pass. Clients that send no such headers (the CLI, tests) pass.
    """

    def __init__(self, app: ASGIApp, console_origins: tuple[str, ...] = ()) -> None:
        self.app = app
        self.console_origins = frozenset(console_origins)

    def _refused(self, scope: Scope) -> bool:
        headers = Headers(scope=scope)
        dest = headers.get("sec-fetch-dest")
        if dest is None or dest == "document":
            return False
        if dest != "empty":
            return True
        site = headers.get("sec-fetch-site")
        if site is None or site == "same-origin":
            return False
        return _normalized(headers.get("origin", "")) not in self.console_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/") and self._refused(scope):
            refused = problem(403, "Forbidden", "Only the console may call the API.")
            await refused(scope, receive, send)
            return
        await self.app(scope, receive, send)


class ConsoleCors:
    """CORS on /api/* for the origins that host the agent console (``--console-origin``) and for
    no one else: their pages may read answers and send the sign-in cookie (which the browser sends
    only when they are the same site as this server: it is SameSite=Strict)."""

    METHODS = "GET, POST, PUT, PATCH, DELETE"
    HEADERS = "Content-Type"
    EXPOSED = "Tandem-Second-Factor"
    """Answer headers beyond CORS's safelisted ones the console reads (a reset-mfa's 204 says
    with it what the account is left with)."""

    def __init__(self, app: ASGIApp, console_origins: tuple[str, ...] = ()) -> None:
        self.app = app
        self.console_origins = frozenset(console_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        allowed = _normalized(origin) if origin else None
        if allowed not in self.console_origins:
            allowed = None
        if (
            allowed is not None
            and scope["method"] == "OPTIONS"
            and "access-control-request-method" in headers
        ):
            preflight = Response(status_code=204)
            preflight.headers.update(
                {
                    "access-control-allow-origin": allowed,
                    "access-control-allow-credentials": "true",
                    "access-control-allow-methods": self.METHODS,
                    "access-control-allow-headers": self.HEADERS,
                    "access-control-max-age": "600",
                    "vary": "Origin",
                }
            )
            await preflight(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                response_headers.add_vary_header("Origin")
                if allowed is not None:
                    response_headers["access-control-allow-origin"] = allowed
                    response_headers["access-control-allow-credentials"] = "true"
                    response_headers["access-control-expose-headers"] = self.EXPOSED
            await send(message)

        await self.app(scope, receive, send_with_cors)


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS`; the console may not be framed by anyone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if scope.get("scheme") == "https":
                    headers.setdefault("strict-transport-security", HSTS)
                if path.startswith(("/console", "/api")):
                    headers.setdefault("x-frame-options", "DENY")
                    headers.setdefault("cache-control", "no-store")
                if path.startswith("/console"):
                    headers.setdefault("content-security-policy", CONSOLE_CSP)
                elif path.startswith("/practice"):  # framed by the console (docs/training.md)
                    headers.setdefault("content-security-policy", PRACTICE_CSP)
                    headers.setdefault("x-frame-options", "SAMEORIGIN")
                elif path.startswith("/demo"):
                    headers.setdefault("content-security-policy", DEMO_CSP)
                    headers.setdefault("x-frame-options", "DENY")
            await send(message)

        await self.app(scope, receive, send_with_headers)
