"""The Starlette application: routes, static files, and a lifespan that runs the services
(:mod:`tandem.server.services`). The one module that knows every route module."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.datastructures import URL
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from tandem import auth, crypto, metrics, sbom
from tandem.config import (
    FORWARDED_HTTPS_NOTE,
    PLAIN_HTTP_NOTE,
    PROXY_NOTE,
    Settings,
    normalize_origin,
    public_origin_warning,
)
from tandem.exceptions import ConfigError
from tandem.fanout.base import Fanout
from tandem.server import (
    admin,
    api,
    compliance_api,
    demo,
    openapi,
    operations,
    readiness,
    services,
    sso,
    training_api,
    ws,
)
from tandem.server.http import problem, services_of
from tandem.server.middleware import (
    BindAgain,
    ConsoleCors,
    FetchMetadataGuard,
    PublicOrigins,
    SameOriginWrites,
    SecurityHeaders,
    TransportWatch,
)
from tandem.server.unavailable import StorageUnavailable
from tandem.storage.base import Storage

STATIC = Path(__file__).parent / "static"
SDK_FILE = STATIC / "sdk" / "tandem.js"
OPERATIONS: tuple[operations.Operation, ...] = (
    *admin.OPERATIONS,
    *compliance_api.OPERATIONS,  # compliance, subjects, holds (issue 16)
    *training_api.OPERATIONS,  # training before live sessions (issue 16, item 5)
)
"""Every signed-in API route (:mod:`tandem.server.operations`), joined here so that no route
module imports another."""


def operation_for(method: str, path: str) -> operations.Operation | None:
    """The operation serving ``method path`` (a route's path template), if any."""
    return operations.operation_for(OPERATIONS, method, path)


OPENAPI = openapi.describe(*operations.openapi_paths(OPERATIONS))
"""The description served at /api/openapi.json: the public routes and every admin operation."""


class StaticPages(StaticFiles):
    """Static files whose redirect of a directory to its trailing slash (``/demo/img`` to
    ``/demo/img/``, for a directory with an ``index.html``) is a path on this server:
    Starlette's is an absolute URL built from the request's ``Host`` header."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if not isinstance(response, RedirectResponse):
            return response
        url = URL(scope=scope)
        if not url.path.startswith("/") or url.path.startswith("//"):
            return problem(404, "Not found", "Nothing here.")  # never to another host
        return RedirectResponse(url.path + "/" + (f"?{url.query}" if url.query else ""))


async def sdk_script(request: Request) -> Response:
    """The customer SDK, with CORS for the allowed origins only."""
    if not SDK_FILE.is_file():
        return problem(503, "SDK not built", "Run `make run` (it builds the SDK) first.")
    response = FileResponse(SDK_FILE, media_type="text/javascript")
    response.headers["vary"] = "Origin"
    response.headers["cache-control"] = "no-cache"
    origin = request.headers.get("origin")
    if origin:
        try:
            normalized = normalize_origin(origin)
        except ConfigError:
            normalized = None
        site = (
            await services_of(request).storage.site_for_origin(normalized) if normalized else None
        )
        if normalized and site is not None and site.verified:  # a proved origin only
            response.headers["access-control-allow-origin"] = normalized
    return response


async def health(request: Request) -> Response:
    # Liveness only: nothing about sessions for whoever asks.
    return JSONResponse({"status": "ok"})


async def note_proxy(app: Starlette, header: str) -> None:
    """Note in the database, for every server on it, that a request came with a reverse
    proxy's ``header`` while no public origin is set (:data:`PROXY_NOTE`)."""
    running: services.Services = app.state.services
    await running.storage.note_installation(PROXY_NOTE, header, running.clock())


async def note_transport(app: Starlette, plain: bool, what: str) -> None:
    """Note in the database, for every server on it, a request that came over plain HTTP
    (``what`` says which: :data:`PLAIN_HTTP_NOTE`), or one a trusted proxy forwarded as https
    (:data:`FORWARDED_HTTPS_NOTE`)."""
    running: services.Services = app.state.services
    name = PLAIN_HTTP_NOTE if plain else FORWARDED_HTTPS_NOTE
    await running.storage.note_installation(name, what, running.clock())


async def signed_in_over_tls(app: Starlette, scope: Scope) -> bool:
    """Whether the request carries a live sign-in in the ``__Host-`` cookie (the name used over
    TLS), which browsers set only from an https page and send only over https: evidence of the
    browser's own transport that a client's ``X-Forwarded-Proto`` alone is not."""
    running: services.Services = app.state.services
    cookie = HTTPConnection(scope).cookies.get(auth.SECURE_COOKIE_NAME)
    token = auth.cookie_token(cookie) if cookie is not None else None
    agent = await auth.agent_for_token(
        running.storage,
        token,
        running.clock(),
        running.settings.login_idle_seconds,
        touch_seconds=running.settings.login_touch_seconds,
    )
    return agent is not None


async def plain_http_noted(app: Starlette) -> bool:
    """Whether the database still holds the note of a request over plain HTTP."""
    running: services.Services = app.state.services
    return await running.storage.installation_note(PLAIN_HTTP_NOTE) is not None


async def proxy_noted(app: Starlette) -> bool:
    """Whether the database still holds the note of a reverse proxy's header."""
    running: services.Services = app.state.services
    return await running.storage.installation_note(PROXY_NOTE) is not None


async def warn_of_a_noted_proxy(settings: Settings, storage: Storage) -> None:
    """At start-up, warn of a reverse proxy that any server on the database saw (the command
    line warned already of everything it could tell without the database)."""
    if settings.exposure() is not None or settings.public_origins:
        return
    noted = await storage.installation_note(PROXY_NOTE)
    exposure = settings.exposure(noted)
    if exposure is not None:
        logging.getLogger("tandem.server").warning(public_origin_warning(exposure))


def create_app(
    settings: Settings,
    *,
    storage: Storage | None = None,
    fanout: Fanout | None = None,
    clock: Callable[[], float] = time.time,
    entropy: crypto.Entropy = crypto.system_entropy,
    tick_seconds: float = 1.0,
) -> Starlette:
    """Build the ASGI app. Storage defaults to SQLite in ``settings.data_dir``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with services.running(
            settings,
            app=app,
            tunnel_endpoints={"/ws/customer": ws.customer_endpoint, "/ws/agent": ws.agent_endpoint},
            storage=storage,
            fanout=fanout,
            clock=clock,
            entropy=entropy,
            tick_seconds=tick_seconds,
        ) as running:
            app.state.services = running
            await warn_of_a_noted_proxy(settings, running.storage)
            hub = running.hub
            app.state.background = hub.background
            app.state.live_metrics = live = metrics.LiveCollector(
                hub.session_states,
                hub.tunnelled_sockets,
                running.fanout.shared,
                lambda: hub.background.failing,
                lambda: bool(getattr(running.fanout, "connected", True)),
            )
            stop_exporter = (
                metrics.serve_on_port(settings.metrics_host, settings.metrics_port, live)
                if settings.metrics_port
                else None
            )
            try:
                async with sbom.watching(
                    settings.advisory_file,
                    settings.advisory_max_age_days,
                    settings.advisory_check_seconds,
                    clock,
                    hub.background,
                    settings.max_advisory_file_bytes,
                ):
                    yield
            finally:
                if stop_exporter is not None:
                    stop_exporter()

    routes = [
        Route("/", lambda request: RedirectResponse("/demo/")),
        Route("/healthz", health),
        Route("/readyz", readiness.ready),
        Route("/metrics", readiness.metrics_page),
        Route("/sdk/tandem.js", sdk_script),
        Route("/api/login", api.login, methods=["POST"]),
        Route("/api/logout", api.logout, methods=["POST"]),
        Route("/api/logout-everywhere", api.logout_everywhere, methods=["POST"]),
        Route("/api/me", api.me),
        Route("/api/openapi.json", openapi.endpoint(OPENAPI)),
        *operations.routes(OPERATIONS),
        Route("/api/sso/start", sso.start),
        Route("/api/sso/callback", sso.callback, name="sso_callback"),
        WebSocketRoute("/ws/customer", ws.customer_endpoint),
        WebSocketRoute("/ws/agent", ws.agent_endpoint),
        # Relative redirects: the static files' own would be built from the request's Host header.
        Route("/console", lambda request: RedirectResponse("/console/")),
        Route("/demo", lambda request: RedirectResponse("/demo/")),
        Mount("/console", StaticPages(directory=STATIC / "console", html=True, check_dir=False)),
        Route("/demo/", demo.demo_page),  # demo only: pages pinned with the server's key
        Route("/demo/{page}.html", demo.demo_page),
        Mount("/demo", StaticPages(directory=STATIC / "demo", html=True, check_dir=False)),
        Route("/practice", lambda request: RedirectResponse("/practice/")),
        # The practice customer's pages (tandem.training), framed by the console.
        Mount("/practice", StaticPages(directory=STATIC / "practice", html=True, check_dir=False)),
    ]

    async def noting_proxy(header: str) -> None:
        await note_proxy(app, header)

    async def noting_transport(plain: bool, what: str) -> None:
        await note_transport(app, plain, what)

    async def plain_noted() -> bool:
        return await plain_http_noted(app)

    async def browser_signed_in(scope: Scope) -> bool:
        return await signed_in_over_tls(app, scope)

    async def proxy_still_noted() -> bool:
        return await proxy_noted(app)

    app: Starlette = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(
                TransportWatch,
                note=noting_transport,
                behind_proxy=bool(settings.trusted_proxies) and not settings.tls,
                noted=plain_noted,
                recheck_seconds=settings.transport_note_recheck_seconds,
                signed_in=browser_signed_in,
                wait_seconds=settings.transport_note_wait_seconds,
            ),
            Middleware(
                PublicOrigins,
                public_origins=settings.public_origins,
                bind_hosts=(settings.host,),
                note_proxy=noting_proxy,
                noted=proxy_still_noted,
                recheck_seconds=settings.transport_note_recheck_seconds,
                wait_seconds=settings.transport_note_wait_seconds,
            ),
            Middleware(ConsoleCors, console_origins=settings.console_origins),
            Middleware(
                SameOriginWrites,
                console_origins=settings.console_origins,
                public_origins=settings.public_origins,
            ),
            Middleware(FetchMetadataGuard, console_origins=settings.console_origins),
            Middleware(StorageUnavailable, retry_after=settings.unavailable_retry_seconds),
            Middleware(BindAgain),
        ],
        lifespan=lifespan,
    )
    # The router's own redirect of a path with (or without) a trailing slash is an absolute URL
    # built from the Host header: `/api/sso/start/?org=x` sent the browser, and a 307 a POST
    # with its password, to whatever host the request named. Such paths are not found.
    app.router.redirect_slashes = False
    return app
