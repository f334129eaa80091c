"""Every service the routes share, built in one place (:func:`running`), by keyword.

The composition root of the server: storage, fan-out, the audit log, the hub (given its audit log,
secret box and join throttles when it is built), the directory and the sign-in throttles; and,
with several processes, this one's tunnel entrance. Leaving :func:`running` ends every live
session, waits for their sockets' last frames, then closes the fan-out and storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.types import ASGIApp

from tandem import crypto, metrics, revocation
from tandem.access import Grant
from tandem.audit import AuditLog, load_or_create_key
from tandem.compliance import AuditChecks
from tandem.config import Settings, note_serving_settings
from tandem.directory import Directory, check_allowed_origins, operator
from tandem.exceptions import ConflictError
from tandem.fanout.base import Fanout
from tandem.fanout.memory import MemoryFanout
from tandem.fanout.split import SplitFanout
from tandem.hub import SESSION_TOPICS, SessionHub
from tandem.lockout import SharedBackoff
from tandem.processes import ProcessRegistry
from tandem.storage import open_storage
from tandem.storage.base import DEFAULT_ORG, DEFAULT_TEAM, Storage
from tandem.tunnel import Endpoint, Liveness, TunnelHost

log = logging.getLogger("tandem.server")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    """What the adapters share; built once per app by :func:`running`."""

    settings: Settings
    storage: Storage
    fanout: Fanout
    hub: SessionHub
    directory: Directory
    box: crypto.SecretBox
    """Seals secrets kept in storage (second factors, sites' token keys, SSO settings)."""
    sign_in_backoff: SharedBackoff
    """Failed password sign-ins, per account and per client address."""
    sso_backoff: SharedBackoff
    """SSO sign-ins started, per client address."""
    hashing: crypto.PasswordHashing
    """Password hashes, off the event loop and bounded (sign-in, password changes)."""
    audit_checks: AuditChecks
    """The audit trail's check for the compliance API, at most once per
    ``compliance_audit_check_seconds``."""
    clock: Callable[[], float]
    entropy: crypto.Entropy
    tunnels: TunnelHost | None = None
    """With several processes: this process's tunnels (its entrance, and the sockets it carries
    to other processes' sessions)."""


@contextlib.asynccontextmanager
async def running(
    settings: Settings,
    *,
    app: ASGIApp,
    tunnel_endpoints: dict[str, Endpoint],
    storage: Storage | None = None,
    fanout: Fanout | None = None,
    clock: Callable[[], float] = time.time,
    entropy: crypto.Entropy = crypto.system_entropy,
    tick_seconds: float = 1.0,
) -> AsyncIterator[Services]:
    """Open storage (SQLite in ``settings.data_dir`` unless given) and the fan-out (Redis with
    ``settings.redis_url``, else in-process, unless given), build every service, run the hub and,
    with a shared fan-out, the tunnel entrance for ``tunnel_endpoints`` of ``app``."""
    async with contextlib.AsyncExitStack() as stack:
        # Each step of leaving is bounded by what is left of the stop's time (the hub's
        # deadline, once it runs): with the database or Redis frozen, each waited its timeout.
        stopping: list[SessionHub] = []

        def bounded(close: Callable[[], Awaitable[None]], what: str) -> None:
            async def leave() -> None:
                if stopping:
                    await stopping[0].within_stop(close(), what)
                else:
                    await close()

            stack.push_async_callback(leave)

        store = storage if storage is not None else await open_storage(settings)
        store.retention_clock_skew = settings.max_retention_clock_skew_seconds
        store.audit_append_attempts = settings.audit_append_attempts
        bounded(store.close, "closing storage")
        carrier = metrics.CountingFanout(
            fanout if fanout is not None else await _open_fanout(settings, bounded)
        )
        # Counted in storage, so that several processes share one count per key.
        throttle: Callable[[int], SharedBackoff] = lambda free: SharedBackoff(  # noqa: E731
            store,
            free,
            settings.throttle_backoff_seconds,
            settings.throttle_backoff_max_seconds,
            settings.backoff_forget_seconds,
        )
        box = crypto.SecretBox(settings.secrets_key_path)
        hashing = crypto.PasswordHashing(
            settings.password_hash_parallel,
            settings.password_hash_waiting,
            settings.password_hash_per_client,
        )
        hub = SessionHub(
            settings=settings,
            storage=store,
            fanout=carrier,
            audit=AuditLog(
                store, load_or_create_key(settings.audit_key_path), settings.audit_anchor_every
            ),
            box=box,
            join_backoff=throttle(settings.join_free_failures),
            join_org_backoff=throttle(settings.join_org_free_failures),
            clock=clock,
            entropy=entropy,
            # Several processes: this one's id, for its sessions and its tunnel entrance.
            node=crypto.new_token(entropy, 9) if carrier.shared else "",
            tick_seconds=tick_seconds,
            backlog_dir=settings.data_dir,  # made private at start (tandem.startup)
        )
        stopping.append(hub)
        tunnels = None
        if hub.node:
            tunnels = TunnelHost(
                app,
                carrier,
                hub.node,
                tunnel_endpoints,
                settings.socket_queue_bytes,
                Liveness.of(settings),
            )
        services = Services(
            settings=settings,
            storage=store,
            fanout=carrier,
            hub=hub,
            directory=Directory(
                store,
                hub.record_done,  # its records follow the changes: kept if they fail
                clock,
                box,
                entropy,
                reserved_origins=frozenset(settings.allow_origins),
                allow_private_network=settings.test_private_network,
                revoked=functools.partial(revocation.announce, carrier),
                hashing=hashing,
            ),
            box=box,
            sign_in_backoff=SharedBackoff(
                store,
                settings.login_free_failures,
                settings.login_backoff_seconds,
                settings.login_backoff_max_seconds,
                settings.backoff_forget_seconds,
            ),
            sso_backoff=throttle(settings.sso_free_starts),
            hashing=hashing,
            audit_checks=AuditChecks(settings.compliance_audit_check_seconds),
            clock=clock,
            entropy=entropy,
            tunnels=tunnels,
        )
        hub.process_id = hub.node or crypto.new_token(entropy, 9)
        registry = ProcessRegistry(
            store,
            settings,
            clock,
            hub.process_id,
            hub.record_done,
            hub.taken_for_dead,
            witness=hub.witness,
        )
        await registry.start()  # closes what this server held before a crash
        bounded(registry.stop, "removing this process's row (the next start ends its sessions)")
        await stack.enter_async_context(hub)
        # A heartbeat that failed (the database away) is tried again each interval, not after a
        # back-off of up to half a minute: once the database answers, every process beats
        # within an interval, well inside the others' wait before a sweep (processes.py).
        beats = settings.heartbeat_seconds
        hub.background.every("heartbeat", beats, registry.beat, backoff_max=beats)
        hub.background.every("lost_processes", beats, registry.sweep)
        if tunnels is not None:
            bounded(tunnels.close, "closing the tunnels")
            hub.background.keep_running("tunnel_entrance", tunnels.run)
            hub.tunnelled_sockets = lambda: tunnels.tunnelled
            tunnels.on_link_change = hub.link_changed
        await register_allowed_origins(services.directory, settings)
        try:  # for `tandem compliance check`, which reads its own environment's settings
            await asyncio.to_thread(note_serving_settings, settings)
        except OSError as exc:
            log.error("cannot note this server's settings for the compliance check: %s", exc)
        yield services


async def _open_fanout(
    settings: Settings, bounded: Callable[[Callable[[], Awaitable[None]], str], None]
) -> Fanout:
    """The fan-out ``settings`` name; its close given to ``bounded`` (to run when leaving)."""
    if not settings.redis_url:
        return MemoryFanout()
    from tandem.fanout.redis import RedisFanout

    redis = await RedisFanout.connect(  # ConfigError when unreachable: storage closes too
        settings.redis_url,
        prefix=settings.redis_prefix,
        client_name=f"tandem-{settings.port}",
        max_pending_bytes=settings.redis_buffer_bytes,
        timeout=settings.redis_timeout_seconds,
        # A PING after a quarter of the tunnels' Redis window of silence (at most a second):
        # tunnels learn within seconds that Redis froze (and so do not take a silent peer for
        # dead), and an idle, healthy connection is never a window old; reconnect attempts at
        # least each second, so all processes are back within about a second of each other
        # after a Redis restart.
        ping_interval=Liveness.of(settings).redis_ping_seconds,
        max_reconnect_delay=1.0,
    )
    bounded(redis.close, "closing the Redis connection")
    # A session's frames between sockets of this process never go through Redis.
    return SplitFanout(redis, (SESSION_TOPICS,))


async def register_allowed_origins(directory: Directory, settings: Settings) -> None:
    """Origins given with --allow-origin become verified sites of the default organisation,
    served by its default team, unless it holds them verified already (an unproved site of its
    own for the origin is approved). Raises ConfigError (one line) when another organisation
    holds one of them verified; other organisations' unproved registrations of them stay, and
    can never be verified while the default organisation holds the origin."""
    await check_allowed_origins(directory.storage, settings.allow_origins)
    for origin in settings.allow_origins:
        for attempt in range(settings.allow_origin_attempts):
            try:
                await _hold_allowed_origin(directory, origin)
                break
            except ConflictError:
                # Another server of the deployment, starting beside this one, added or approved
                # it first (or took the site id this one chose): what this one wanted, if the
                # default organisation holds the origin now; else try again, with a fresh look.
                held = await directory.storage.site_for_origin(origin)
                if held is not None and held.org_id == DEFAULT_ORG:
                    break
                if attempt + 1 == settings.allow_origin_attempts:
                    raise


async def _hold_allowed_origin(directory: Directory, origin: str) -> None:
    """One try of :func:`register_allowed_origins` for ``origin``; ConflictError if another
    writer got in its way."""
    grant = Grant.server(DEFAULT_ORG, "--allow-origin at start-up")
    await check_allowed_origins(directory.storage, (origin,))  # again: this may be a retry
    if await directory.storage.site_for_origin(origin) is not None:
        return  # the default organisation's (just checked)
    own = await directory.storage.org_site_for_origin(grant, origin)
    if own is not None:
        await directory.approve_site(operator(DEFAULT_ORG), own.site_id)
        return
    base = re.sub(r"[^a-z0-9]+", "-", origin.split("://", 1)[1]).strip("-")[:64]
    # Site ids are unique server-wide: another organisation may have taken this one (an
    # id is no claim on an origin), so the next free one is used.
    site_id, number = base, 1
    while await directory.storage.get_site(site_id) is not None:
        number += 1
        site_id = f"{base[:56]}-{number}"
    known = await directory.storage.list_teams(grant)
    teams = (DEFAULT_TEAM,) if DEFAULT_TEAM in known else ()
    await directory.add_site(operator(DEFAULT_ORG), site_id, origin, origin, teams)
