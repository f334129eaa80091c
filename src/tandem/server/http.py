"""What every HTTP and WebSocket route shares: the app's services, problem JSON, a bounded JSON
body, the signed-in agent and its cookie. Route modules import this, never each other."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Final

import msgspec
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from tandem import auth, crypto, revocation
from tandem.config import normalize_origin
from tandem.exceptions import ConfigError

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from tandem.hub import DownloadGuard
    from tandem.server.services import Services

MAX_BODY_BYTES = 4096
"""Largest body of a sign-in (``POST /api/login``), read before anyone is signed in: its
name, password and code fit in it at 4 bytes a character (UTF-8, as browsers send JSON). A
signed-in request's body is bounded by the ``max_request_body_bytes`` setting instead
(tandem.server.operations)."""


class AgentInfo(msgspec.Struct, forbid_unknown_fields=True):
    """The signed-in agent, as /api/login and /api/me answer (the shape of :func:`agent_json`)."""

    username: str
    display_name: str
    role: str
    org: str
    teams: list[str]
    needs_second_factor: bool
    must_change_password: bool


def agent_json(agent: auth.Agent) -> dict[str, object]:
    return {
        "username": agent.username,
        "display_name": agent.display_name,
        "role": agent.role,
        "org": agent.org,
        "teams": sorted(agent.teams),
        "needs_second_factor": agent.needs_second_factor,
        "must_change_password": agent.must_change_password,
    }


def services_of(connection: HTTPConnection) -> Services:
    """The services the app was started with (:func:`tandem.server.services.running`)."""
    services: Services = connection.app.state.services
    return services


def problem(status: int, title: str, detail: str) -> JSONResponse:
    """An RFC 9457 problem JSON response (the one shape of every error this server answers)."""
    return JSONResponse(
        {"title": title, "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
    )


def too_many_attempts(wait: float, what: str) -> JSONResponse:
    """``429`` after too many ``what`` (e.g. "failed sign-ins"): try again in ``wait`` seconds,
    rounded up, said in the detail and in ``Retry-After``."""
    seconds = math.ceil(wait)
    response = problem(429, "Too many attempts", f"Too many {what}. Try again in {seconds} s.")
    response.headers["retry-after"] = str(seconds)
    return response


SENT_CHUNK_BYTES = 256 * 1024

ABORT = "tandem.abort"
"""The scope's extension (set by :mod:`tandem.server.http_protocol`) that drops the request's
connection at once, unsent bytes and all: a download cut (:func:`download`) ends so, short of its
``Content-Length``, which no client takes for a whole file."""


class DownloadCut(Exception):
    """A download whose sign-in no longer allows it, on a server without :data:`ABORT`: raised
    from its body, so the server closes the connection (never the rest of the file)."""


class _Download(StreamingResponse):
    abort: Callable[[], None] | None = None

    def __init__(self, guard: DownloadGuard, done: Callable[[], None], **options: Any) -> None:
        super().__init__(**options)
        self.guard, self.done = guard, done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.abort = (scope.get("extensions") or {}).get(ABORT)
        self.guard.bind(self.abort, int(self.headers["content-length"]))
        try:
            await super().__call__(scope, receive, send)
        finally:  # sent, cut, the client gone, or an error: never left counted or guarded
            self.done()


def download(
    data: bytes,
    media_type: str,
    headers: dict[str, str],
    sent: Callable[[], None],
    guard: DownloadGuard,
) -> StreamingResponse:
    """``data`` as an answer sent a chunk at a time, each when the client has taken enough of
    the last (one body message would go to the transport whole, and the answer count as sent
    at once); ``sent`` is called once it is sent, cut, or the client went. ``guard`` may cut
    it (:class:`tandem.hub.DownloadGuard`): before each chunk but the first, or at once on a
    revocation's announcement; the connection is then dropped short of the
    ``Content-Length`` announced, so the client knows the file is not whole."""

    def done() -> None:
        guard.finish()
        sent()

    async def chunks() -> AsyncIterator[bytes]:
        view = memoryview(data)
        for start in range(0, len(view), SENT_CHUNK_BYTES):
            if start and not await guard.may_go_on(start):
                if response.abort is None:  # else the guard dropped the connection
                    raise DownloadCut
                return
            yield bytes(view[start : start + SENT_CHUNK_BYTES])
        guard.sent = len(view)

    response = _Download(
        guard,
        done,
        content=chunks(),
        media_type=media_type,
        headers={**headers, "content-length": str(len(data))},
    )
    return response


def busy(retry_after: float, detail: str) -> JSONResponse:
    """``503`` when the server already does as much costly work (password hashes) as it may:
    try again in ``retry_after`` seconds (``Retry-After``, rounded up)."""
    response = problem(503, "Busy", detail)
    response.headers["retry-after"] = str(math.ceil(retry_after))
    return response


async def json_body(request: Request, limit: int | None = None) -> bytes | JSONResponse:
    """The request body, or a problem response for a non-JSON or oversized request (over
    ``limit`` bytes, by default :data:`MAX_BODY_BYTES`).

    Requiring ``application/json`` also stops cross-site form posts (they cannot send that type
    without a CORS preflight, which this server never grants).
    """
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return problem(415, "Unsupported media type", "Send JSON (Content-Type: application/json).")
    most = MAX_BODY_BYTES if limit is None else limit
    # Gathered in one growing buffer: `bytes += chunk` copied all read so far at each chunk, so
    # a body near a large max_request_body_bytes (64 MiB allowed) sent in small segments cost
    # its square in copying, the event loop held the while (bench/request_body.py).
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > most:
                return problem(413, "Request too large", f"At most {most} bytes.")
    except ClientDisconnect:  # gone, or cut off by the request deadline (http_protocol)
        return problem(408, "Request timeout", "The request's body did not arrive in time.")
    return bytes(body)


OTHER_CLIENT: Final = (
    "sign in again: this sign-in was made in another browser or network, and has ended"
)
"""Why a sign-in bound to its client (``login_bind_client``) was refused: the owner whose
browser updated or whose address moved to another network is told, not just sent back to the
sign-in form (a close reason: 123 bytes at most)."""

_ENDED_HERE: Final = "tandem.sign_in_other_client"


def not_signed_in(request: Request) -> Response:
    """401 for a request without a live sign-in: saying so when it ended because its cookie
    came from another client than the one it was bound to (:func:`refuse_other_client`)."""
    if request.scope.get(_ENDED_HERE):
        return problem(401, "Not signed in", OTHER_CLIENT[:1].upper() + OTHER_CLIENT[1:] + ".")
    return problem(401, "Not signed in", "Sign in first.")


async def current_agent(request: Request) -> auth.Agent | None:
    """The signed-in agent of this request (absolute and idle expiry applied; a sign-in bound
    to another client ended: :func:`refuse_other_client`)."""
    services = services_of(request)
    agent = await auth.agent_for_token(
        services.storage,
        sign_in_token(request),
        services.clock(),
        services.settings.login_idle_seconds,
        touch_seconds=services.settings.login_touch_seconds,
    )
    if agent is not None and await refuse_other_client(request, agent):
        return None
    return agent


def _client_bindings(connection: HTTPConnection, token: str) -> tuple[str, ...]:
    """What a sign-in cookie of ``token`` carries after its dot when ``connection``'s client
    made it (``login_bind_client``): a MAC under every key of the secrets key ring (the
    current one's first) over the token and the client's User-Agent and/or network."""
    services = services_of(connection)
    mode = services.settings.login_bind_client
    agent = connection.headers.get("user-agent", "") if mode in ("browser", "both") else ""
    network = client_network(connection) if mode in ("network", "both") else ""
    bound = f"{token}\n{mode}\n{agent}\n{network}"
    return tuple(d.removeprefix("k1:")[:32] for d in services.box.digests(bound, "sign-in-client"))


def client_network(connection: HTTPConnection) -> str:
    """The client address's network: an IPv4 address's /24, an IPv6 address's /64."""
    client = connection.client.host if connection.client else ""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    bits = 24 if isinstance(address, ipaddress.IPv4Address) else 64
    return str(ipaddress.ip_network((address, bits), strict=False))


async def refuse_other_client(connection: HTTPConnection, agent: auth.Agent) -> bool:
    """True, and the sign-in ended everywhere and recorded (``sign_in_other_client``), when
    ``login_bind_client`` is on and the connection's cookie was not made for its client (a
    copied cookie, or a sign-in made before the setting was turned on). The owner signs in
    again; the copy is of no further use."""
    services = services_of(connection)
    if services.settings.login_bind_client == "any":
        return False
    value = connection.cookies.get(cookie_name(connection)) or ""
    token, _, mac = value.partition(".")
    bindings = _client_bindings(connection, token)
    matched = [crypto.secrets_equal(mac, b) for b in bindings]
    if any(matched):
        if not matched[0]:  # bound under a previous key of the ring: bound again
            await _bind_again(connection, token, bindings[0])
        return False
    connection.scope[_ENDED_HERE] = True
    digest = auth.login_digest(token)
    if await services.storage.get_login(digest) is None:
        return True
    await services.storage.delete_login(digest)
    revocation.announce(services.fanout, login=digest)
    client = connection.client.host if connection.client else ""
    await services.hub.record(
        "sign_in_other_client",
        actor=agent.username,
        org=agent.org,
        ip=client,
        bound=services.settings.login_bind_client,
    )
    return True


REBOUND: Final = "tandem.sign_in_rebound"
"""The scope's list of Set-Cookie values :class:`tandem.server.middleware.BindAgain` adds to
the answer (a sign-in's cookie bound again under the current key)."""


async def _bind_again(connection: HTTPConnection, token: str, binding: str) -> None:
    """The cookie of a sign-in bound under a previous key of the secrets key ring (made before
    a rotation) set again, bound under the current key, for the rest of the sign-in's life: by
    the time ``tandem secrets retire`` drops the previous key, every sign-in in use carries the
    current key's binding. (Before, the retirement ended each such sign-in, recorded as a
    copied cookie: ``sign_in_other_client``.) A socket's upgrade cannot set a cookie: the
    console's next request does."""
    rebound = connection.scope.get(REBOUND)
    if rebound is None:
        return
    services = services_of(connection)
    login = await services.storage.get_login(auth.login_digest(token))
    if login is None:
        return
    answer = Response()
    answer.set_cookie(
        cookie_name(connection),
        f"{token}.{binding}",
        max_age=max(0, int(login.expires_at - services.clock())),
        **cookie_flags(connection),
    )
    rebound += [value for name, value in answer.raw_headers if name == b"set-cookie"]


def over_tls(connection: HTTPConnection) -> bool:
    """Whether the browser reached the server over TLS (directly, or through a trusted
    proxy that says so)."""
    return connection.url.scheme in ("https", "wss")


ABSOLUTE_TARGET = "tandem.absolute_target"
"""The scope's extension holding a request's target when it came in absolute form (``GET
http://host/path``; set by :mod:`tandem.server.http_protocol`): RFC 9112 says its authority,
not the ``Host`` header, names the origin addressed; :func:`addressed_origin` refuses a request
whose two disagree."""


HOST_HEADER = re.compile(r"(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
"""A ``Host`` header as browsers send it: a name in ASCII or an address, and a port."""


def addressed_origin(scope: Scope) -> str | None:
    """The origin a request or WebSocket was addressed to: its scheme (``ws``/``wss`` as
    ``http``/``https``; a trusted proxy's ``X-Forwarded-Proto``, applied by uvicorn) and its
    ``Host`` header, normalised. Whoever sends the request chooses the ``Host`` (DNS rebinding,
    a proxy that passes any): None for none, several, or one that is no host."""
    hosts = Headers(scope=scope).getlist("host")
    if len(hosts) != 1 or not HOST_HEADER.fullmatch(hosts[0]):
        return None
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme"))
    try:
        addressed = normalize_origin(f"{scheme}://{hosts[0]}")
    except ConfigError:
        return None
    target = (scope.get("extensions") or {}).get(ABSOLUTE_TARGET)
    if target is not None and _target_origin(target) != addressed:
        return None  # `GET http://evil/ HTTP/1.1` with a good Host (RFC 9112: the target names it)
    return addressed


def _target_origin(target: str) -> str | None:
    """The origin an absolute-form request target names (``http://host:port/path``)."""
    scheme, sep, rest = target.partition("://")
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    if not sep or not HOST_HEADER.fullmatch(authority):
        return None
    try:
        return normalize_origin(f"{scheme.lower()}://{authority}")
    except ConfigError:
        return None


def own_origin(scope: Scope, public_origins: tuple[str, ...]) -> str | None:
    """The origin this server is reached at, as the browser sees it: with ``public_origins``,
    the one the request was addressed to, if it is one of them (else None: the request named
    a host this server is not); without, whatever the ``Host`` header says."""
    addressed = addressed_origin(scope)
    if public_origins and addressed not in public_origins:
        return None
    return addressed


def cookie_name(connection: HTTPConnection) -> str:
    """The sign-in cookie's name: ``__Host-`` prefixed over TLS (:data:`auth.SECURE_COOKIE_NAME`);
    over TLS a cookie of the plain name is never read (anyone could have set it)."""
    return auth.SECURE_COOKIE_NAME if over_tls(connection) else auth.COOKIE_NAME


def sign_in_token(connection: HTTPConnection) -> str | None:
    """The sign-in cookie's token the request or socket carries, if any (without the client
    binding after its dot: :func:`refuse_other_client`)."""
    value = connection.cookies.get(cookie_name(connection))
    return auth.cookie_token(value) if value is not None else None


def set_sign_in_cookie(response: Response, request: Request, token: str, ttl: float) -> None:
    """The agent's sign-in cookie (password or identity provider sign-in alike); with
    ``login_bind_client`` on, bound to the client it is set for."""
    if services_of(request).settings.login_bind_client != "any":
        token = f"{token}.{_client_bindings(request, token)[0]}"
    response.set_cookie(cookie_name(request), token, max_age=int(ttl), **cookie_flags(request))


async def end_earlier_sign_in(request: Request, digest: str = "") -> None:
    """End the sign-in the browser carried when it signed in again (whoever's it was) and close
    its sockets in every process: the browser now holds another, and the earlier one (a shared
    desk's previous agent; one planted or copied before) must not live on without it. The
    request's cookie names it, or ``digest`` (an identity provider's sign-in: noted at its
    start, since the provider's redirect back carries no SameSite=Strict cookie)."""
    token = sign_in_token(request)
    if not digest and token and len(token) <= 128:
        digest = auth.login_digest(token)
    if not digest:
        return
    services = services_of(request)
    if await services.storage.get_login(digest) is None:
        return
    await services.storage.delete_login(digest)
    revocation.announce(services.fanout, login=digest)


def delete_sign_in_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(cookie_name(request), **cookie_flags(request))


def cookie_flags(request: HTTPConnection) -> dict[str, Any]:
    """The sign-in cookie's flags, the same when it is set and when it is cleared."""
    return {
        "path": "/",
        "httponly": True,
        "samesite": "strict",
        "secure": over_tls(request),
    }
