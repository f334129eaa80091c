"""Prometheus metrics (prometheus-client): what operators watch and alert on (docs/operations.md).

Counters live in one process-wide :data:`REGISTRY`; what is counted at scrape time (live
sessions by state, tunnels, background tasks) comes from a :class:`LiveCollector` per app. No
metric carries a session id, a user name or anything a customer typed: labels are fixed words.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tandem.fanout.base import Fanout, Frame, Subscription

REGISTRY = CollectorRegistry(auto_describe=True)
"""Tandem's counters (shared by every app in the process: tests run several)."""


class RelayTally(Collector):
    """Frames and bytes handed to the fan-out, by the topic's audience (customer, agents,
    watcher, tunnel): plain integers on the relay's hot path, turned into the counters
    ``tandem_frames_relayed_total`` and ``tandem_bytes_relayed_total`` when scraped (a
    prometheus-client counter takes a lock per increment, a third of a relayed frame's cost)."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {}  # audience -> [frames, bytes]

    def count(self, audience: str, size: int) -> None:
        counts = self.counts.get(audience)
        if counts is None:
            counts = self.counts[audience] = [0, 0]
        counts[0] += 1
        counts[1] += size

    def collect(self) -> Iterator[Metric]:
        frames = CounterMetricFamily(
            "tandem_frames_relayed",
            "Frames handed to the fan-out, by the topic's audience "
            "(customer, agents, watcher, tunnel).",
            labels=["to"],
        )
        sizes = CounterMetricFamily(
            "tandem_bytes_relayed", "Bytes of the frames handed to the fan-out, by audience.",
            labels=["to"],
        )  # fmt: skip
        for audience, (count, size) in sorted(self.counts.items()):
            frames.add_metric([audience], count)
            sizes.add_metric([audience], size)
        yield frames
        yield sizes


RELAYED = RelayTally()
REGISTRY.register(RELAYED)

QUEUE_DROPS = Counter(
    "tandem_queue_drops",
    "Sockets closed because their bounded queue overflowed (1013), by where.",
    ["where"],
    registry=REGISTRY,
)
TUNNELS_LOST = Counter(
    "tandem_tunnels_lost",
    "Tunnelled sockets given up, by reason: silent (the other process died) or link (Redis "
    "away longer than tunnel_outage_seconds, or tunnel_buffer_bytes waiting for it).",
    ["reason"],
    registry=REGISTRY,
)
STORAGE_ERRORS = Counter(
    "tandem_storage_errors",
    "Database errors seen, by where they were caught (http, background, recording).",
    ["where"],
    registry=REGISTRY,
)
RECORDING_FLUSHES = Counter(
    "tandem_recording_flushes",
    "Recording buffers written to storage, by outcome (ok, failed).",
    ["outcome"],
    registry=REGISTRY,
)
AUDIT_EVENTS = Counter(
    "tandem_audit_events",
    "Audit records appended, by action (sign_in_failed, session_ended, ...).",
    ["action"],
    registry=REGISTRY,
)
SIGN_IN_FAILURES = Counter(
    "tandem_sign_in_failures",
    "Failed or throttled sign-ins, by method (password, sso).",
    ["method"],
    registry=REGISTRY,
)
REFUSALS_BUDGETED_LOCALLY = Counter(
    "tandem_refusals_budgeted_locally",
    "Refusals of signed-in accounts weighed against this process's own budget because the "
    "shared one (Redis) did not answer (tandem.refusals); each is still recorded or counted.",
    registry=REGISTRY,
)

AUDIT_RECORDS_HELD = Gauge(
    "tandem_audit_records_held",
    "Audit records of changes already made that the database refused, kept (in memory and in "
    "the data directory) until it takes them (tandem.audit_backlog).",
    registry=REGISTRY,
)

BACKGROUND_FAILURES = Counter(
    "tandem_background_failures",
    "Runs of a supervised background task that raised (retried with back-off).",
    ["task"],
    registry=REGISTRY,
)
BACKGROUND_FAILING = Gauge(
    "tandem_background_failing",
    "1 while a supervised background task's last run failed.",
    ["task"],
    registry=REGISTRY,
)
SESSIONS_CLOSED_AFTER_CRASH = Counter(
    "tandem_sessions_closed_after_crash",
    "Sessions and recordings of a crashed process closed by recovery, by kind.",
    ["kind"],
    registry=REGISTRY,
)
SESSIONS_HANDED_OVER = Counter(
    "tandem_sessions_handed_over",
    "Sessions a stopping process handed over to the next (suspended), taken up again by a "
    "process (restored), or ended because nobody came back within the window (expired).",
    ["outcome"],
    registry=REGISTRY,
)

ANONYMOUS_EVENTS = Counter(
    "tandem_anonymous_events",
    "Events with no signed-in actor (counted in audit_counts, not one record each), by action.",
    ["action"],
    registry=REGISTRY,
)
CUSTOMER_REFUSALS = Counter(
    "tandem_customer_refusals",
    "New customer sessions refused, by the limit reached (address, site, organisation, server).",
    ["limit"],
    registry=REGISTRY,
)

_SIGN_IN_FAILED = {
    "sign_in_failed": "password",
    "second_factor_failed": "password",
    "sign_in_throttled": "password",
    "sign_in_sprayed": "password",
    "temporary_password_expired": "password",
    "temporary_password_refused": "password",
    "sso_failed": "sso",
    "sso_throttled": "sso",
}


def audited(action: str) -> None:
    """Count an audit record (and a sign-in failure, if it is one)."""
    AUDIT_EVENTS.labels(action=action).inc()
    _sign_in_failure(action)


def anonymous(action: str) -> None:
    """Count an event with no signed-in actor (and a sign-in failure, if it is one: a
    throttled sign-in is counted, not recorded, and still a failure)."""
    ANONYMOUS_EVENTS.labels(action=action).inc()
    _sign_in_failure(action)


def _sign_in_failure(action: str) -> None:
    method = _SIGN_IN_FAILED.get(action)
    if method is not None:
        SIGN_IN_FAILURES.labels(method=method).inc()


_AUDIENCES = tuple((f":{name}", name) for name in ("agents", "customer", "watcher"))


def _audience(topic: str) -> str:
    """A topic's audience, for every relayed frame: one of a few constant strings, made
    without a new string or a cache (an LRU cache of topics missed on every frame once a
    process had more topics than it held: 3,000 sessions have 9,000)."""
    if topic.startswith("session:"):
        for suffix, audience in _AUDIENCES:
            if topic.endswith(suffix):
                return audience
        return topic[topic.rfind(":") + 1 :]
    return "tunnel"


class CountingFanout:
    """A fan-out that counts what is published through it (frames and bytes, by audience)."""

    def __init__(self, inner: Fanout) -> None:
        self.inner = inner
        self.shared = inner.shared

    @property
    def connected(self) -> bool:
        """Whether the carrier is connected (Redis); always True in one process."""
        return bool(getattr(self.inner, "connected", True))

    @property
    def outages(self) -> int:
        """How many times the carrier's connection was lost (Redis); 0 in one process."""
        return int(getattr(self.inner, "outages", 0))

    def subscribe(self, topic: str, maxsize: int) -> Subscription:
        return self.inner.subscribe(topic, maxsize)

    def responsive(self, within: float) -> bool:
        """Whether the carrier heard from Redis within ``within`` seconds (True without one)."""
        responsive = getattr(self.inner, "responsive", None)
        return True if responsive is None else bool(responsive(within))

    async def count(self, key: str, window: float) -> int:
        """The carrier's shared counter (:meth:`tandem.fanout.redis.RedisFanout.count`)."""
        count = getattr(self.inner, "count", None)
        if count is None:
            raise ConnectionError("this fan-out keeps no shared counters")
        return int(await count(key, window))

    async def flush(self) -> None:
        """Wait until what was published reached the carrier (Redis), if it has a buffer."""
        flush = getattr(self.inner, "flush", None)
        if flush is not None:
            await flush()

    def publish(self, topic: str, frame: Frame) -> None:
        RELAYED.count(_audience(topic), len(frame.data))
        self.inner.publish(topic, frame)


class LiveCollector(Collector):
    """Counted when scraped: this process's live sessions by state, its tunnelled sockets,
    whether its fan-out is shared, and which background tasks are failing."""

    def __init__(
        self,
        session_states: Callable[[], Iterable[str]],
        tunnels: Callable[[], int],
        shared_fanout: bool,
        failing_tasks: Callable[[], Iterable[str]],
        fanout_connected: Callable[[], bool] = lambda: True,
    ) -> None:
        self.fanout_connected = fanout_connected
        self.session_states = session_states
        self.tunnels = tunnels
        self.shared_fanout = shared_fanout
        self.failing_tasks = failing_tasks

    def collect(self) -> Iterator[Metric]:
        sessions = GaugeMetricFamily(
            "tandem_sessions", "Live sessions held by this process, by state.", labels=["state"]
        )
        counts = Tally({"waiting": 0, "pending_consent": 0, "sharing": 0})
        counts.update(self.session_states())
        for state, count in sorted(counts.items()):
            sessions.add_metric([state], count)
        yield sessions
        yield GaugeMetricFamily(
            "tandem_tunnelled_sockets",
            "Sockets of other processes' edges served here through tunnels.",
            value=self.tunnels(),
        )
        yield GaugeMetricFamily(
            "tandem_fanout_shared",
            "1 when sessions are carried between processes (Redis), else 0.",
            value=1 if self.shared_fanout else 0,
        )
        yield GaugeMetricFamily(
            "tandem_fanout_connected",
            "1 while the fan-out's connection (Redis) is up; always 1 in one process.",
            value=1 if self.fanout_connected() else 0,
        )
        yield GaugeMetricFamily(
            "tandem_background_tasks_failing",
            "Supervised background tasks whose last run failed.",
            value=len(list(self.failing_tasks())),
        )


def exposition(live: Collector) -> bytes:
    """The text exposition of Tandem's counters and ``live``'s gauges."""
    own = CollectorRegistry(auto_describe=False)
    own.register(live)
    return generate_latest(REGISTRY) + generate_latest(own)


class _Both(Collector):
    def __init__(self, live: Collector) -> None:
        self.live = live

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()
        yield from self.live.collect()


def serve_on_port(host: str, port: int, live: Collector) -> Callable[[], None]:
    """Serve the exposition at ``http://host:port/metrics`` (no token: keep the port private).
    Returns what stops it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Both(live))
    server, thread = start_http_server(port, addr=host, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return stop
