"""The Starlette application: routes, static files, lifespan (storage, hub, deadline ticker)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from tandem import crypto, metrics
from tandem.audit import AuditLog, load_or_create_key
from tandem.config import Settings, normalize_origin
from tandem.directory import Directory, operator
from tandem.exceptions import ConfigError
from tandem.fanout.base import Fanout
from tandem.fanout.memory import MemoryFanout
from tandem.hub import SessionHub
from tandem.lockout import SharedBackoff
from tandem.processes import ProcessRegistry
from tandem.server import admin, api, demo, openapi, readiness, sso, ws
from tandem.server.middleware import ConsoleCors, SameOriginWrites, SecurityHeaders
from tandem.server.unavailable import StorageUnavailable
from tandem.storage import open_storage
from tandem.storage.base import DEFAULT_ORG, DEFAULT_TEAM, Storage
from tandem.supervise import Supervisor
from tandem.tunnel import TunnelHost

STATIC = Path(__file__).parent / "static"
SDK_FILE = STATIC / "sdk" / "tandem.js"


@dataclasses.dataclass(slots=True)
class Services:
    """What the adapters share; built once per app."""

    settings: Settings
    storage: Storage
    fanout: Fanout
    hub: SessionHub
    clock: Callable[[], float]
    entropy: crypto.Entropy
    backoff: SharedBackoff
    box: crypto.SecretBox
    join_backoff: SharedBackoff
    join_org_backoff: SharedBackoff
    directory: Directory
    sso_backoff: SharedBackoff


async def sdk_script(request: Request) -> Response:
    """The customer SDK, with CORS for the allowed origins only."""
    if not SDK_FILE.is_file():
        return api.problem(503, "SDK not built", "Run `make run` (it builds the SDK) first.")
    response = FileResponse(SDK_FILE, media_type="text/javascript")
    response.headers["vary"] = "Origin"
    response.headers["cache-control"] = "no-cache"
    origin = request.headers.get("origin")
    if origin:
        try:
            normalized = normalize_origin(origin)
        except ConfigError:
            normalized = None
        if normalized and await request.app.state.services.storage.site_for_origin(normalized):
            response.headers["access-control-allow-origin"] = normalized
    return response


async def health(request: Request) -> Response:
    # Liveness only: nothing about sessions for whoever asks.
    return JSONResponse({"status": "ok"})


async def register_allowed_origins(directory: Directory, settings: Settings) -> None:
    """Origins given with --allow-origin become sites of the default organisation, served by its
    default team, unless a site already has them."""
    for origin in settings.allow_origins:
        if await directory.storage.site_for_origin(origin) is not None:
            continue
        site_id = re.sub(r"[^a-z0-9]+", "-", origin.split("://", 1)[1]).strip("-")[:64]
        known = await directory.storage.list_teams(DEFAULT_ORG)
        teams = (DEFAULT_TEAM,) if DEFAULT_TEAM in known else ()
        await directory.add_site(operator(DEFAULT_ORG), site_id, origin, origin, teams)


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
        store = storage if storage is not None else await open_storage(settings)
        carrier: Fanout = fanout or MemoryFanout()
        own_fanout = None
        if fanout is None and settings.redis_url:
            from tandem.fanout.redis import RedisFanout

            try:
                own_fanout = carrier = await RedisFanout.connect(
                    settings.redis_url,
                    prefix=settings.redis_prefix,
                    client_name=f"tandem-{settings.port}",
                )
            except ConfigError:
                await store.close()
                raise
        carrier = metrics.CountingFanout(carrier)
        hub = SessionHub(settings, store, carrier, clock, entropy)
        tunnels = None
        if carrier.shared:  # several processes: this one's id, and its tunnel entrance
            hub.node = crypto.new_token(entropy, 9)
            tunnels = TunnelHost(
                app,
                carrier,
                hub.node,
                {"/ws/customer": ws.customer_endpoint, "/ws/agent": ws.agent_endpoint},
                settings.send_queue_frames,
            )
        hub.audit = AuditLog(
            store, load_or_create_key(settings.audit_key_path), settings.audit_anchor_every
        )
        hub.process_id = hub.node or crypto.new_token(entropy, 9)
        registry = ProcessRegistry(store, settings, clock, hub.process_id, hub.record)
        await registry.start()  # closes what this server held before a crash
        # Counted in storage, so that several processes share one count per key.
        backoff = SharedBackoff(
            store,
            settings.login_free_failures,
            settings.login_backoff_seconds,
            settings.login_backoff_max_seconds,
        )
        box = crypto.SecretBox(settings.secrets_key_path)
        hub.box = box
        join_backoff = SharedBackoff(store, settings.join_free_failures, 2.0, 600.0)
        join_org_backoff = SharedBackoff(store, settings.join_org_free_failures, 2.0, 600.0)
        directory = Directory(store, hub.record, clock, box, entropy)
        await register_allowed_origins(directory, settings)
        app.state.services = Services(
            settings,
            store,
            hub.fanout,
            hub,
            clock,
            entropy,
            backoff,
            box,
            join_backoff,
            join_org_backoff,
            directory,
            SharedBackoff(store, settings.sso_free_starts, 2.0, 600.0),
        )

        # After everything that may fail: a server whose start-up failed leaves no start (or
        # stop) in the trail.
        await hub.record("server_started", actor="server")
        background = Supervisor(
            backoff_first=settings.background_backoff_seconds,
            backoff_max=settings.background_backoff_max_seconds,
        )
        background.every("deadlines", tick_seconds, hub.tick)
        background.every("heartbeat", settings.heartbeat_seconds, registry.beat)
        background.every("lost_processes", settings.heartbeat_seconds, registry.sweep)
        if tunnels:
            background.keep_running("tunnel_entrance", tunnels.run)
        app.state.background = background
        app.state.live_metrics = live_metrics = metrics.LiveCollector(
            hub.session_states,
            lambda: len(tunnels._sockets) if tunnels else 0,
            carrier.shared,
            lambda: background.failing,
            lambda: carrier.connected,
        )
        stop_exporter = (
            metrics.serve_on_port(settings.metrics_host, settings.metrics_port, live_metrics)
            if settings.metrics_port
            else None
        )
        try:
            yield
        finally:
            if stop_exporter is not None:
                stop_exporter()
            await background.close()
            if tunnels:
                await tunnels.close()
            await hub.shutdown()
            # Anchored in the same transaction (tandem.audit.ANCHORED_ACTIONS): the shutdown
            # anchor is exactly at this record, whatever other servers append meanwhile.
            await hub.record("server_stopped", actor="server")
            await registry.stop()
            await asyncio.sleep(0.05)  # let the writers send the last frames
            if own_fanout is not None:
                await own_fanout.close()
            await store.close()

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
        Route("/api/openapi.json", openapi.openapi),
        *admin.routes(),
        Route("/api/sso/start", sso.start),
        Route("/api/sso/callback", sso.callback, name="sso_callback"),
        WebSocketRoute("/ws/customer", ws.customer_endpoint),
        WebSocketRoute("/ws/agent", ws.agent_endpoint),
        # Relative redirects: the static files' own would be built from the request's Host header.
        Route("/console", lambda request: RedirectResponse("/console/")),
        Route("/demo", lambda request: RedirectResponse("/demo/")),
        Mount("/console", StaticFiles(directory=STATIC / "console", html=True, check_dir=False)),
        Route("/demo/", demo.demo_page),  # demo only: pages pinned with the server's key
        Route("/demo/{page}.html", demo.demo_page),
        Mount("/demo", StaticFiles(directory=STATIC / "demo", html=True, check_dir=False)),
    ]
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(ConsoleCors, console_origins=settings.console_origins),
            Middleware(SameOriginWrites, console_origins=settings.console_origins),
            Middleware(StorageUnavailable, retry_after=settings.unavailable_retry_seconds),
        ],
        lifespan=lifespan,
    )
