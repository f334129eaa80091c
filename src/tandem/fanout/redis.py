"""Fan-out through Redis pub/sub, for running several server processes behind one address.

Every frame goes through Redis, including frames whose subscribers are in the publishing process,
so all subscribers of a topic see the frames of one publisher in the order it published them.

* One pub/sub connection per process. A topic's Redis channel (``prefix + topic``) is subscribed
  when its first local subscriber arrives and unsubscribed when the last one leaves. A reader task
  hands incoming frames to the local subscribers, each with its own queue bounded in bytes
  (:class:`~tandem.fanout.memory.MemoryFanout` does the local part, overflow included).
* :meth:`RedisFanout.publish` never waits: it encodes the frame (msgpack) and appends it to an
  outgoing buffer bounded in bytes (``max_pending_bytes``) that a writer task sends, in order,
  with pipelined ``PUBLISH``es. When the buffer is full (Redis frozen or away) the frame is
  dropped and counted (:attr:`RedisFanout.dropped`): memory stays bounded whatever Redis does.
* A channel is subscribed before any frame published after :meth:`RedisFanout.subscribe` is sent,
  so a subscriber receives everything its own process publishes from then on. Frames published
  by other processes reach it once Redis confirmed the subscription (:meth:`RedisFanout.flush`
  waits for that).

Lost connections: Redis pub/sub does not store messages, so frames published while a pub/sub
connection is down never reach its subscribers, and frames that cannot be sent to Redis are
dropped (logged, counted). Subscribers are *not* failed for it: they wait, and receive again once
the connection is back. What uses this fan-out either tolerates lost frames (revocation
announcements, re-checked periodically anyway) or numbers its frames and resends what the other
end did not confirm (:mod:`tandem.tunnel`). The connection is re-established with a capped
exponential back-off, each attempt logged, and every topic that still has subscribers is
subscribed again; :attr:`RedisFanout.connected` and :attr:`RedisFanout.outages` say how it is.
An outage ends (``connected``) only once every one of those subscriptions is confirmed: what other
processes publish between the reconnection and then is lost like what they published while it
was down, and the hub's re-check after an outage, and the tunnels' "restored", come after it.
Sessions whose sockets are all on one process never use Redis
(:class:`~tandem.fanout.split.SplitFanout`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Self, cast
from urllib.parse import urlsplit, urlunsplit

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tandem import metrics
from tandem.exceptions import ConfigError
from tandem.fanout.base import FRAME_OVERHEAD, Frame
from tandem.fanout.memory import MemoryFanout, MemorySubscription
from tandem.supervise import cancel_and_wait

log = logging.getLogger("tandem.fanout.redis")

_BATCH = 512
"""At most this many PUBLISHes in one pipeline."""


class _Text(msgspec.Struct, array_like=True, frozen=True, tag=0):
    """A text :class:`Frame` on the wire: ``[0, data, close]`` in msgpack."""

    data: str
    close: tuple[int, str] | None = None


class _Binary(msgspec.Struct, array_like=True, frozen=True, tag=1):
    """A binary :class:`Frame` on the wire: ``[1, data, close]`` in msgpack."""

    data: bytes
    close: tuple[int, str] | None = None


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Text | _Binary).decode


def encode_frame(frame: Frame) -> bytes:
    """The bytes published to Redis for ``frame``."""
    if isinstance(frame.data, str):
        return _encode(_Text(frame.data, frame.close))
    return _encode(_Binary(bytes(frame.data), frame.close))


def decode_frame(payload: bytes) -> Frame:
    """Inverse of :func:`encode_frame`; raises :class:`msgspec.DecodeError` on anything else."""
    envelope = _decode(payload)
    return Frame(envelope.data, envelope.close)


def redact_url(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:
        return "<unparseable Redis URL>"


class _LocalFanout(MemoryFanout):
    """Local delivery; tells its owner when a topic gains its first or loses its last subscriber."""

    def __init__(self, on_change: Callable[[str], None]) -> None:
        super().__init__()
        self._on_change = on_change

    def subscribe(self, topic: str, max_bytes: int) -> MemorySubscription:
        first = self.subscriber_count(topic) == 0
        subscription = super().subscribe(topic, max_bytes)
        if first:
            self._on_change(topic)
        return subscription

    def unsubscribe(self, topic: str, subscription: MemorySubscription) -> None:
        before = self.subscriber_count(topic)
        super().unsubscribe(topic, subscription)
        if before and not self.subscriber_count(topic):
            self._on_change(topic)

    def topics(self) -> list[str]:
        return list(self._topics)

    def overflow_all(self) -> None:
        for subscribers in self._topics.values():
            for subscription in subscribers:
                subscription.overflow()


_Item = str | tuple[bytes, bytes] | asyncio.Future[None]
"""Outgoing work, in order: a topic to (un)subscribe as needed, a (channel, payload) to publish,
or a :meth:`RedisFanout.flush` waiting for everything before it."""


_COUNT_IN_WINDOW = """
local value = redis.call('INCR', KEYS[1])
if value == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return value
"""
"""A counter's count (:meth:`RedisFanout.count`): its expiry set with its first count, in the
same step, so that no counter outlives its window however a process fails between the two."""


class RedisFanout:
    """:class:`~tandem.fanout.base.Fanout` shared by every process connected to one Redis.

    Use ``fanout = await RedisFanout.connect(url)`` (or construct, then ``await start()``), and
    ``await fanout.close()`` at shutdown; ``async with`` does both.
    """

    shared = True

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "tandem:",
        max_pending_bytes: int = 64 * 1024 * 1024,
        timeout: float = 5.0,
        ping_interval: float = 10.0,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 5.0,
        client_name: str | None = "tandem",
    ) -> None:
        """
        :param url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for TLS,
            or ``unix://path``.
        :param prefix: prepended to every topic to make its channel name; lets several
            deployments share one Redis.
        :param max_pending_bytes: bytes (payloads plus ``FRAME_OVERHEAD`` each) waiting to be
            sent to Redis before new frames are dropped.
        :param timeout: seconds for connecting, for a command's reply and for a PING's answer.
        :param ping_interval: seconds of silence on the pub/sub connection before it is PINGed.
        :param reconnect_delay: first delay before reconnecting; doubles up to
            ``max_reconnect_delay``.
        :param client_name: shown by ``CLIENT LIST`` for this process's connections.
        """
        if max_pending_bytes < FRAME_OVERHEAD:
            raise ConfigError(f"max_pending_bytes must be at least {FRAME_OVERHEAD}")
        if min(timeout, ping_interval, reconnect_delay, max_reconnect_delay) <= 0:
            raise ConfigError("Redis timeouts and delays must be positive")
        self.url = url
        self.prefix = prefix
        self.max_pending_bytes = max_pending_bytes
        self.dropped = 0
        """Frames never sent to Redis: buffer full, or Redis unreachable."""
        self.outages = 0
        """How many times the pub/sub connection was lost (each tunnel resends after one)."""
        self.task_failures = 0
        """How many times the reader or the writer failed on something unexpected (a bug, an
        error redis-py does not wrap) and was started again: never silently gone."""
        self._timeout = timeout
        self._ping_interval = ping_interval
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max(reconnect_delay, max_reconnect_delay)
        self._client_name = client_name
        self._local = _LocalFanout(self._topic_changed)
        self._redis: Redis | None = None
        self._pubsub: PubSub | None = None
        self._subscribed: set[bytes] = set()
        self._confirmations: dict[bytes, asyncio.Future[None]] = {}
        self._outbox: collections.deque[_Item] = collections.deque()
        self._pending = 0
        """Bytes in the outbox (each frame's payload plus ``FRAME_OVERHEAD``)."""
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._state = "new"
        self._publish_failing = False
        self._buffer_full = False
        self._last_heard = 0.0
        """When the pub/sub connection last heard from Redis (event loop time)."""
        self._resubscribed = False
        """Whether every topic with subscribers is subscribed on the current pub/sub connection
        (the writer reached the mark :meth:`_open_pubsub` left after them): until then, frames
        other processes publish to a topic not yet subscribed again are lost."""

    # Lifecycle

    @classmethod
    async def connect(cls, url: str = "redis://127.0.0.1:6379/0", **options: Any) -> Self:
        """A started :class:`RedisFanout`; ``options`` are those of the constructor."""
        fanout = cls(url, **options)
        await fanout.start()
        return fanout

    async def start(self) -> None:
        """Connect to Redis and start the reader and writer tasks.

        Raises :class:`~tandem.exceptions.ConfigError` if the URL is invalid or Redis cannot be
        reached (the message names the URL, without its password).
        """
        if self._state != "new":
            raise RuntimeError("RedisFanout.start() may only be called once")
        self._state = "starting"
        where = redact_url(self.url)
        try:
            self._redis = Redis.from_url(
                self.url,
                # No hidden retries: a retried PUBLISH could deliver a frame twice, and a
                # silently reconnected pub/sub connection would hide lost frames.
                retry=Retry(NoBackoff(), 0, supported_errors=()),
                # RESP2: with RESP3, redis-py 8 skips its check for pooled connections that the
                # server closed while idle, and the next PUBLISH on one would fail.
                protocol=2,
                socket_connect_timeout=self._timeout,
                socket_timeout=self._timeout,
                client_name=self._client_name,
            )
        except (ValueError, RedisError) as exc:
            self._state = "closed"
            raise ConfigError(f"invalid Redis URL {where}: {exc}") from exc
        try:
            await self._redis.ping()
            pubsub = await self._open_pubsub()
        except (RedisError, OSError) as exc:
            self._state = "closed"
            await self._redis.aclose()
            raise ConfigError(
                f"cannot reach Redis at {where}: {str(exc) or type(exc).__name__} (each wait "
                f"bounded by {self._timeout:g} s): check that Redis is running, reachable from "
                "here and not overloaded, then start again"
            ) from exc
        self._state = "running"
        self._tasks = [
            asyncio.create_task(
                self._keep("writer", self._run_writer, self._writer_again),
                name="tandem-redis-fanout-writer",
            ),
            asyncio.create_task(
                self._keep("reader", lambda: self._run_pubsub(pubsub), self._reader_again),
                name="tandem-redis-fanout-reader",
            ),
        ]

    async def close(self) -> None:
        """Send what is buffered (for up to ``timeout`` seconds), then disconnect. Idempotent.

        Local subscribers still open get :class:`~tandem.fanout.base.Overflow`.
        """
        if self._state == "closed":
            return
        if self._state == "running":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flush(), self._timeout)
        self._state = "closed"
        # A cancellation can be swallowed on its way through redis-py or asyncio.wait_for (seen
        # under load: the writer "cancelling" yet back at its wait for work): asked again.
        await cancel_and_wait(self._tasks)
        self._tasks = []
        self._local.overflow_all()
        for item in self._outbox:
            if isinstance(item, asyncio.Future) and not item.done():
                item.set_result(None)
        self._outbox.clear()
        self._pending = 0
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            await self._discard(pubsub)
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """Whether the pub/sub connection is up and every topic with subscribers is subscribed
        on it again (subscribers are then being served): after an outage, what other processes
        publish from then on arrives, so only then is the outage over."""
        return self._pubsub is not None and self._resubscribed

    def responsive(self, within: float) -> bool:
        """Whether the pub/sub connection is up and heard from Redis (a frame, or the answer to
        its PING every ``ping_interval`` of silence) within the last ``within`` seconds: false
        as soon as a frozen Redis stops answering, long before its connection times out."""
        if not self.connected:
            return False
        return asyncio.get_running_loop().time() - self._last_heard <= within

    # The Fanout protocol

    def subscribe(self, topic: str, max_bytes: int) -> MemorySubscription:
        """Receive frames published to ``topic`` by any process, at most ``max_bytes`` queued.

        While the pub/sub connection is down the subscription waits (the topic is subscribed
        once it is back); after :meth:`close` it is returned already failed: its ``get`` raises
        :class:`~tandem.fanout.base.Overflow`.
        """
        self._check_started()
        subscription = self._local.subscribe(topic, max_bytes)
        if self._state == "closed":
            subscription.overflow()
        return subscription

    def publish(self, topic: str, frame: Frame) -> None:
        """Queue ``frame`` for every subscriber of ``topic`` in every process; never waits.

        Dropped (and counted in :attr:`dropped`) when ``max_pending_bytes`` are already waiting,
        or after :meth:`close`.
        """
        self._check_started()
        if self._state != "running":
            self.dropped += 1
            return
        payload = encode_frame(frame)
        size = len(payload) + FRAME_OVERHEAD
        if self._pending + size > self.max_pending_bytes:
            if not self._buffer_full:
                self._buffer_full = True
                log.warning(
                    "Redis fan-out buffer full (%d bytes waiting for Redis); dropping frames",
                    self._pending,
                )
            self.dropped += 1
            return
        self._pending += size
        self._outbox.append((self._channel(topic), payload))
        self._wake.set()

    def subscriber_count(self, topic: str) -> int:
        """Subscribers of ``topic`` in this process."""
        return self._local.subscriber_count(topic)

    async def flush(self) -> None:
        """Wait until everything published or subscribed before this call reached Redis.

        Subscriptions are then confirmed by Redis, so frames other processes publish from now on
        arrive. Returns at once when not running.
        """
        if self._state != "running":
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outbox.append(done)
        self._wake.set()
        await done

    async def count(self, key: str, window: float) -> int:
        """Add one to the counter ``key`` that every process on this Redis shares (under the
        prefix), in one atomic step, and return its value: the first count starts it and it
        goes ``window`` seconds later (the next count starts a new one). Raises
        :class:`~redis.exceptions.RedisError` or :class:`OSError` when Redis does not answer
        within ``timeout``, and :class:`ConnectionError` at once when this process is not
        connected to it (its pub/sub connection is down: an outage)."""
        self._check_started()
        if self._redis is None or not self.connected:
            raise ConnectionError("not connected to Redis")
        milliseconds = max(1, round(window * 1000))
        value = await self._redis.eval(
            _COUNT_IN_WINDOW, 1, f"{self.prefix}count:{key}", milliseconds
        )
        return int(value)

    # Internals

    def _check_started(self) -> None:
        if self._state in ("new", "starting"):
            raise RuntimeError("RedisFanout is not started: await start() or connect() first")

    def _channel(self, topic: str) -> bytes:
        return (self.prefix + topic).encode()

    def _topic_changed(self, topic: str) -> None:
        if self._state == "running":
            self._outbox.append(topic)
            self._wake.set()

    async def _open_pubsub(self) -> PubSub:
        assert self._redis is not None
        pubsub = self._redis.pubsub()
        try:
            await pubsub.ping()  # connects; the answer is read (and ignored) by the reader
        except BaseException:
            await self._discard(pubsub)
            raise
        self._pubsub = pubsub
        self._last_heard = asyncio.get_running_loop().time()
        self._subscribed.clear()
        # Subscribe again to every topic that has subscribers, before anything published later;
        # the outage is over once the writer has (each subscription confirmed in turn).
        topics = self._local.topics()
        self._resubscribed = not topics
        if topics:
            mark: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            mark.add_done_callback(lambda _: self._mark_resubscribed(pubsub))
            self._outbox.extendleft([mark, *reversed(topics)])
        self._wake.set()
        return pubsub

    def _mark_resubscribed(self, pubsub: PubSub) -> None:
        """The writer went through every topic :meth:`_open_pubsub` queued for ``pubsub``."""
        if self._pubsub is pubsub:
            self._resubscribed = True

    async def _discard(self, pubsub: PubSub) -> None:
        aclose = cast(Callable[[], Awaitable[None]], pubsub.aclose)  # untyped in redis-py
        try:
            await aclose()
        except (RedisError, OSError) as exc:
            log.debug("closing a Redis pub/sub connection failed: %s", exc)

    def _lost(self, pubsub: PubSub) -> None:
        if self._pubsub is not pubsub:
            return
        self._pubsub = None
        self._resubscribed = False
        self.outages += 1
        self._subscribed.clear()
        for waiter in self._confirmations.values():
            if not waiter.done():
                waiter.set_result(None)

    async def _keep(
        self,
        name: str,
        first: Callable[[], Awaitable[None]],
        again: Callable[[], Awaitable[None]],
    ) -> None:
        """Supervise the reader or the writer (each meant to last): whatever it raises but a
        cancellation is logged with its traceback and counted, and it starts again (``again``)
        after the reconnection back-off. Left dead, the writer would leave every frame waiting
        (then dropped at the buffer's bound) and the reader every subscriber waiting, while the
        process looked healthy."""
        loop = asyncio.get_running_loop()
        run, delay = first, self._reconnect_delay
        while True:
            started = loop.time()
            try:
                await run()
                raise RuntimeError(f"the Redis fan-out {name} returned")  # never does
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._state == "closed":  # a clean-up turned close()'s cancellation into this
                    raise asyncio.CancelledError from exc
                if loop.time() - started > self._max_reconnect_delay:
                    delay = self._reconnect_delay  # it ran for a while: not a loop of failures
                self.task_failures += 1
                metrics.BACKGROUND_FAILURES.labels(task=f"redis_fanout_{name}").inc()
                log.error(
                    "the Redis fan-out %s at %s failed; started again in %.3gs",
                    name,
                    redact_url(self.url),
                    delay,
                    exc_info=True,
                )
            run = again
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_reconnect_delay)

    async def _writer_again(self) -> None:
        """The writer after a failure: a (un)subscription it was making may be half done, so the
        pub/sub connection is taken for lost (the reader connects again and subscribes every
        topic with subscribers afresh; each tunnel resends after an outage)."""
        if self._pubsub is not None:
            self._lost(self._pubsub)
        await self._run_writer()

    async def _reader_again(self) -> None:
        """The reader after a failure: its connection, if any is left, is dropped first."""
        pubsub = self._pubsub
        if pubsub is not None:
            self._lost(pubsub)
            await self._discard(pubsub)
        await self._run_pubsub(None)

    async def _run_pubsub(self, pubsub: PubSub | None) -> None:
        """Read the pub/sub connection; reconnect with a capped back-off when it drops."""
        loop = asyncio.get_running_loop()
        delay = self._reconnect_delay
        where = redact_url(self.url)
        while True:
            if pubsub is None:
                try:
                    pubsub = await self._open_pubsub()
                except (RedisError, OSError) as exc:
                    log.warning(
                        "Redis pub/sub at %s: reconnecting failed (%s); next attempt in %.3gs",
                        where,
                        exc,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._max_reconnect_delay)
                    continue
                log.warning("Redis pub/sub at %s: reconnected", where)
            connected_at = loop.time()
            try:
                await self._read(pubsub)
            except Exception as exc:
                if loop.time() - connected_at > self._max_reconnect_delay:
                    delay = self._reconnect_delay  # it was up for a while: not flapping
                expected = isinstance(exc, RedisError | OSError)
                log.warning(
                    "Redis pub/sub at %s: connection lost (%s); its %d subscribers wait, and "
                    "frames published until it is back are lost; reconnecting in %.3gs",
                    where,
                    str(exc) or type(exc).__name__,
                    sum(map(self._local.subscriber_count, self._local.topics())),
                    delay,
                    exc_info=not expected,
                )
            self._lost(pubsub)
            await self._discard(pubsub)
            pubsub = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_reconnect_delay)

    async def _read(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        last_heard = last_ping = loop.time()
        while True:
            connection = pubsub.connection
            # Never let redis-py reconnect this connection silently (frames would be lost).
            if self._pubsub is not pubsub or connection is None or not connection.is_connected:
                raise RedisConnectionError("connection closed")
            message = await pubsub.get_message(timeout=min(1.0, self._ping_interval))
            now = loop.time()
            if message is not None:
                last_heard = self._last_heard = now
                self._dispatch(message)
            elif last_ping > last_heard:
                if now - last_ping > self._timeout:
                    raise RedisTimeoutError(f"no answer to PING within {self._timeout}s")
            elif now - last_heard >= self._ping_interval:
                last_ping = now
                await pubsub.ping()

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = message["channel"]
        if kind == "message" and isinstance(channel, bytes) and channel.startswith(self._prefix):
            topic = channel[len(self._prefix) :].decode(errors="replace")
            try:
                frame = decode_frame(message["data"])
            except (msgspec.DecodeError, TypeError) as exc:
                log.warning("ignoring a malformed frame on Redis channel %r: %s", channel, exc)
                return
            self._local.publish(topic, frame)
        elif kind == "subscribe":
            waiter = self._confirmations.get(channel)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    @property
    def _prefix(self) -> bytes:
        return self.prefix.encode()

    async def _run_writer(self) -> None:
        while True:
            while not self._outbox:
                self._wake.clear()
                await self._wake.wait()
            item = self._outbox.popleft()
            if isinstance(item, str):
                await self._sync(item)
            elif isinstance(item, asyncio.Future):
                if not item.done():
                    item.set_result(None)
            else:
                batch = [item]
                while len(batch) < _BATCH and self._outbox:
                    following = self._outbox[0]
                    if not isinstance(following, tuple):
                        break
                    batch.append(following)
                    self._outbox.popleft()
                self._pending -= sum(len(payload) + FRAME_OVERHEAD for _, payload in batch)
                if self._pending < self.max_pending_bytes // 2:
                    self._buffer_full = False
                await self._send(batch)

    async def _send(self, batch: list[tuple[bytes, bytes]]) -> None:
        assert self._redis is not None
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for channel, payload in batch:
                    pipe.publish(channel, payload)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self.dropped += len(batch)
            log.debug("dropped %d frames: %s", len(batch), exc)
            if not self._publish_failing:
                self._publish_failing = True
                log.warning(
                    "publishing to Redis at %s failed (%s); frames are dropped until it works",
                    redact_url(self.url),
                    exc,
                )
            return
        if self._publish_failing:
            self._publish_failing = False
            log.warning("publishing to Redis at %s works again", redact_url(self.url))

    async def _sync(self, topic: str) -> None:
        """Subscribe or unsubscribe ``topic``'s channel to match whether it has subscribers."""
        pubsub = self._pubsub
        if pubsub is None:
            return  # the reconnect subscribes every topic with subscribers
        connection = pubsub.connection
        if connection is None or not connection.is_connected:
            return  # lost; the reader notices
        channel = self._channel(topic)
        wanted = self._local.subscriber_count(topic) > 0
        try:
            if wanted and channel not in self._subscribed:
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._confirmations[channel] = waiter
                self._subscribed.add(channel)
                try:
                    await pubsub.subscribe(channel)
                    await asyncio.wait_for(waiter, self._timeout)
                finally:
                    del self._confirmations[channel]
            elif not wanted and channel in self._subscribed:
                self._subscribed.discard(channel)
                await pubsub.unsubscribe(channel)
        except TimeoutError:
            log.warning("Redis did not confirm the subscription to %r in time", channel)
        except (RedisError, OSError) as exc:
            log.debug("(un)subscribing %r failed: %s", channel, exc)  # the reader reconnects
