"""Live sessions: owns each session's state machine and carries out its effects.

The hub is the one place that turns :mod:`tandem.protocol.session` effects into fan-out frames,
storage writes and audit records. Socket adapters (``tandem.server.ws``) call its event entry
points through a *seat* per socket (:class:`CustomerSeat`, :class:`AgentSeat`,
:class:`WatchSeat`), each an async context manager; what each message does, and the action an
agent's message needs, is one row of :data:`CUSTOMER_EVENTS`, :data:`AGENT_EVENTS` or
:data:`WATCHER_EVENTS`. The hub never touches a socket itself: it publishes frames to the fan-out
topics the adapters pump.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import logging
import math
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar

from tandem import auth, crypto, logs, metrics, revocation
from tandem.access import Action, Grant, Principal, Resource, authorize
from tandem.audit import (
    DELETIONS_RECORDED,
    WRITE_ID,
    AuditLog,
    AuditRecord,
    Entry,
    Evidence,
    backlog_mac_key,
    deleted_with_evidence,
)
from tandem.audit_backlog import AuditBacklog
from tandem.config import Settings
from tandem.event_counts import ANONYMOUS_ACTIONS, EventCounts
from tandem.exceptions import (
    AuthenticationError,
    BacklogLineWritten,
    ConfigError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ProtocolError,
    StorageError,
    TandemError,
)
from tandem.fanout.base import Fanout, Frame, Subscription
from tandem.lean import Flag
from tandem.lockout import SharedBackoff
from tandem.policy import load_policy, policy_json
from tandem.protocol import codec
from tandem.protocol.messages import (
    CLOSE_REASON_TOO_MANY_CODES,
    CLOSE_REASON_TOO_MANY_PRACTICE,
    Abort,
    AgentMessage,
    Consent,
    Create,
    Created,
    CustomerMessage,
    Ended,
    ErrorNotice,
    Handshake,
    Join,
    Leave,
    LinkStatus,
    Record,
    RecordConsent,
    RecordStop,
    Rejoin,
    Report,
    Restarting,
    Resume,
    Resumed,
    ServerMessage,
    Stop,
    TeamPolicy,
    Watch,
    WatchAbort,
    WatchConsent,
    WatchHandshake,
)
from tandem.protocol.session import (
    Actor,
    Audit,
    Effect,
    EndSession,
    EndWatch,
    Session,
    StartRecording,
    StopRecording,
    SuspendSession,
    ToAgents,
    ToCustomer,
    ToWatcher,
)
from tandem.recordings import Recorder, RecordingBacklog, Recordings, new_recording
from tandem.refusals import SUMMARY_ACTION, RefusalBudget
from tandem.storage.base import (
    DEFAULT_ORG,
    SELF_ORIGIN,
    PracticeRecord,
    SiteRecord,
    Storage,
    SuspendedSession,
    TakenCode,
    canonical_forms,
)
from tandem.storage.sql import expire_upgrade_copies
from tandem.subjects import new_pseudonym
from tandem.supervise import Supervisor, cancel_within, within_seconds
from tandem.training import SERVER_STEPS, Training, TrainingRequiredError

log = logging.getLogger("tandem.hub")
T = TypeVar("T")
TaskT = TypeVar("TaskT", bound="asyncio.Task[Any]")
events = logs.get_logger("tandem.events")
Clock = Callable[[], float]
EXPIRED_PER_RECORD = 500
"""Session ids one ``sessions_expired`` audit record names at most (more make more records)."""
RESTARTING = Restarting(
    message="The help server is restarting. This session has ended; start a new one in a moment."
)
RECONNECT = Restarting(
    message="The help server is restarting. Reconnecting to it; the session goes on.",
    reason="reconnect",
)
"""Told to both sides of a session handed over to the next process (:meth:`SessionHub.shutdown`)."""
RECONNECT_CLOSE = "server restarting: reconnect"
AGENT_TOO_SLOW = ErrorNotice(
    code="peer_too_slow",
    message="The agent's connection could not keep up and was dropped.",
)
CUSTOMER_TOO_SLOW = ErrorNotice(
    code="peer_too_slow",
    message="The customer's connection could not keep up and was dropped; it may reconnect.",
)
POLICY_CHANGED = ErrorNotice(
    code="policy_changed",
    message="Your organisation published a new privacy and security policy: this session goes "
    "on, but acknowledge the policy (console: Training) before recording or taking up a session.",
)
"""Told once to an agent in a live session when a policy version it has not acknowledged is
published (docs/training.md: the session goes on; what needs the policy waits for it)."""

NO_RECORDING_KEY = ErrorNotice(
    code="no_recording_key",
    message="Recording is not set up for your organisation: an admin adds a recording key.",
)

INVALID_CODE = ErrorNotice(
    code="invalid_code", message="That code is not valid or has expired. Ask for a new code."
)


SESSION_TOPICS = "session:"
"""The prefix of every session's topics: they stay in the process holding the session (its
sockets elsewhere reach it through tunnels), so they never need the shared fan-out."""


def customer_topic(session_id: str) -> str:
    return f"session:{session_id}:customer"


def agents_topic(session_id: str) -> str:
    return f"session:{session_id}:agents"


def watcher_topic(session_id: str) -> str:
    return f"session:{session_id}:watcher"


@dataclasses.dataclass(slots=True)
class LiveSession:
    """A session live in this process. Only the hub changes it."""

    machine: Session
    resume_digest: str
    org_id: str
    site_id: str
    customer_seat: CustomerSeat | None = None
    """The customer's current socket (a resumed page replaces the older one)."""
    team_policies: list[dict[str, object]] = dataclasses.field(default_factory=list)
    """The joined agent's teams' policies for this site, sent to the customer."""
    recorder: Recorder | None = None
    """The running recording's buffer, while the customer allows recording."""
    closing_recordings: set[asyncio.Task[None]] = dataclasses.field(default_factory=set)
    """Recordings of this session stopped here and not yet ended in storage (their last
    writes, then their end: :meth:`SessionHub._close_recording`). The session's end in storage
    waits for them: a session ended there can be erased (``tandem subject erase``), and an
    erasure must never meet a recording whose frames are still being written."""
    recording_ids: list[str] = dataclasses.field(default_factory=list)
    """The recordings started in this session here: each is ended in storage before it is."""
    recording_start: asyncio.Future[None] | None = None
    """Done when the recording being started (its row and the record of the customer's yes
    being written: :meth:`SessionHub._start_recording`) has started or failed to. A stop
    meanwhile (the timer's end of the session, a hand-over) found no recorder to stop: it is
    noted (``stopped_while_starting``) and applied once it has started, and the session's end
    in storage, or its hand-over, waits for this first."""
    stopped_while_starting: str | None = None
    """Why the recording being started was stopped before it had (its end reason)."""
    stored_state: str = "waiting"
    """The state storage last heard of (kept only with several processes)."""
    end_write_id: str = ""
    """The identity of its ``session_ended`` record (tandem.audit.WRITE_ID), made at the first
    try of its close in storage and kept for the retries: a try whose record landed though its
    answer was lost is then not written again."""
    client: str = ""
    """The address the customer's page opened the session from (its waiting limit)."""
    practice: str | None = None
    """A practice session (tandem.training): the only agent who may join it."""
    practice_steps: set[str] = dataclasses.field(default_factory=set)
    """What the hub saw of the practice exercise (tandem.training.SERVER_STEPS)."""
    agent_seat: AgentSeat | None = None
    """The joined agent's current socket (a rejoining console replaces a half-open one)."""
    agent_resume_digest: str = ""
    """Keyed digest of the joined agent's resume token (``rejoin``)."""
    agent_login: str = ""
    """The sign-in (token digest) the agent joined with: only it may rejoin."""
    closed_elsewhere: bool = False
    """Ended in storage (and recorded so) by another process that took this one for dead: it
    ends here without writing anything again (:meth:`SessionHub.taken_for_dead`)."""
    agents_topic: str = dataclasses.field(init=False)
    watcher_topic: str = dataclasses.field(init=False)
    customer_topic: str = dataclasses.field(init=False)
    """The session's fan-out topics, named once (the relay's hot path publishes to them)."""

    def __post_init__(self) -> None:
        session_id = self.machine.session_id
        self.agents_topic = agents_topic(session_id)
        self.watcher_topic = watcher_topic(session_id)
        self.customer_topic = customer_topic(session_id)

    @property
    def waiting(self) -> bool:
        """Not yet consented to: waiting for an agent, or asking the customer."""
        return self.machine.state in ("waiting", "pending_consent")


@dataclasses.dataclass(frozen=True, slots=True)
class LiveSummary:
    """A live session as a supervisor's list shows it."""

    session_id: str
    site: SiteRecord
    state: str
    agent: str | None
    created_at: float


def address_group(client: str) -> str:
    """The key of an address's waiting limit: an IPv4 address itself (also written as an
    IPv4-mapped IPv6 address), an IPv6 address's /64 (one subscriber's usual share, so rotating
    through it does not escape the limit)."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class HeldElsewhere(TandemError):
    """The session's live state is in another server process (scale-out): tunnel the socket
    there (:mod:`tandem.tunnel`)."""

    def __init__(self, node: str) -> None:
        super().__init__(f"session held by node {node}")
        self.node = node


# What an event on a socket comes to, beyond the frames the hub publishes itself.


@dataclasses.dataclass(frozen=True, slots=True)
class Joined:
    """The agent is in the session: pump ``seat.subscription`` to its socket."""

    seat: AgentSeat


@dataclasses.dataclass(frozen=True, slots=True)
class Refused:
    """Not joined (wrong code, another team's, throttled): send ``notice``; the socket stays."""

    notice: ErrorNotice


@dataclasses.dataclass(frozen=True, slots=True)
class Elsewhere:
    """Another process holds the session: tunnel the socket to ``node``, first frame again."""

    node: str


@dataclasses.dataclass(frozen=True, slots=True)
class Watching:
    """The supervisor asked to watch: its socket is now ``seat`` (an async context manager)."""

    seat: WatchSeat


Outcome = Joined | Refused | Elsewhere | Watching


class Seat:
    """One socket's place in a live session. As an async context manager it owns its fan-out
    subscription and does what a socket that went away means for the session (lost, left)."""

    def __init__(self, hub: SessionHub, subscription: Subscription | None) -> None:
        self.hub = hub
        self.subscription = subscription
        self.kicked = Flag()
        """Set when the hub closes this socket (``kick_reason``): another took its place."""
        self.kick_reason = (codec.CLOSE_NORMAL, "")
        self.kick_notice: str | None = None
        """A control message (encoded) sent before the kick's close, if any."""
        self.tunnelled = False
        """Its socket is on another process, carried here by a tunnel (tandem.tunnel)."""
        self.on_kick: Callable[[], None] | None = None
        """Called when kicked, by the socket's adapter that pumps to it (no task waits)."""

    @property
    def finished(self) -> bool:
        """Nothing more to read: the socket's part ended; its last frames are queued."""
        raise NotImplementedError

    def dropped_as_slow(self) -> None:
        """Its adapter is closing this socket with 1013 (it fell behind by more than
        ``socket_queue_bytes``, or a send took longer than ``socket_send_timeout_seconds``):
        tell the other side, before the socket's going is handled as usual."""

    async def __aenter__(self) -> Self:
        self.hub._seats.add(self)
        self.hub._seats_empty.clear()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.subscription is not None:
            self.subscription.close()
        try:
            await self._gone()
        finally:  # the shutdown waits for every seat to be gone, whatever happened
            self.hub._seats.discard(self)
            if not self.hub._seats:
                self.hub._seats_empty.set()

    async def _gone(self) -> None:
        """The socket went: tell the session."""

    def kick(self, code: int, reason: str, notice: str | None = None) -> None:
        """Close this socket (from the hub): stop its frames now, its adapter closes it (after
        sending ``notice``, an encoded control message, if given)."""
        if self.subscription is not None:
            self.subscription.close()
        self.kick_reason = (code, reason)
        self.kick_notice = notice
        self.kicked.set()
        if self.on_kick is not None:
            self.on_kick()


class CustomerSeat(Seat):
    def __init__(self, hub: SessionHub, live: LiveSession, subscription: Subscription) -> None:
        super().__init__(hub, subscription)
        self.live = live

    @property
    def finished(self) -> bool:
        return self.live.machine.ended

    async def text(self, message: CustomerMessage) -> None:
        """A control message from the customer's page (decoded): see :data:`CUSTOMER_EVENTS`."""
        await CUSTOMER_EVENTS[type(message)](self, message)

    def payload(self, frame: bytes) -> Awaitable[None] | None:
        """Page content (opaque, end-to-end encrypted): relayed, never parsed. Only while
        sharing; also to a watching supervisor and into a running recording (what that returns
        stores the frame; None when nothing records). Not a coroutine: the relay's hot path
        (issue 17) makes none per frame."""
        hub, live = self.hub, self.live
        machine = live.machine
        machine.check_customer_payload()
        machine.touch(hub.clock())
        relayed = Frame(frame)
        hub.fanout.publish(live.agents_topic, relayed)
        if live.practice is not None and machine.handshakes_from_agent:
            live.practice_steps.add("shared")
        if machine.watcher_gets_content:
            hub.fanout.publish(live.watcher_topic, relayed)
        if machine.records_content:
            return hub.recorded_frame(live, frame)
        return None

    def dropped_as_slow(self) -> None:
        if not self.live.machine.ended:
            self.hub.fanout.publish(
                agents_topic(self.live.machine.session_id), Frame(codec.encode(CUSTOMER_TOO_SLOW))
            )

    async def _gone(self) -> None:
        live = self.live
        if live.customer_seat is self:
            live.customer_seat = None
            if not live.machine.ended:
                await self.hub.apply(live, live.machine.customer_left(self.hub.clock()))


class AgentSeat(Seat):
    """An agent's socket: joins one session with a code (throttled), then acts in it."""

    def __init__(self, hub: SessionHub, principal: Principal, client: str, login: str) -> None:
        super().__init__(hub, None)
        self.principal = principal
        self.login = login
        """The sign-in's token digest: re-checked on join, watch, record and periodically."""
        self.reauth_due = hub.first_reauth()
        """When the periodic re-check (``agent_reauth_seconds``) next looks at this socket."""
        self.live: LiveSession | None = None
        self.failures = 0
        """Wrong codes on this socket."""
        # An IPv6 address counts with its /64: rotating through it does not start afresh.
        self.join_keys = (f"join-user:{principal.username}", f"join-ip:{address_group(client)}")
        self._released = False  # from the account's count of open sockets (release)
        self.org_key = f"join-org:{principal.org}"
        self.peer_close_code: int | None = None
        """How the console closed its socket, if it did: a reload (1001) or a lost network
        (1005/1006) leaves the session waiting for ``rejoin``; anything else ends it."""
        self.policy_checked = 0
        """The newest policy version this seat was checked against in its session: told of it
        (POLICY_CHANGED) unless the agent had acknowledged it."""
        self.database_failed = False
        """The database failed under one of this socket's messages: the server closes it 1013
        (try again later), which the console retries. Like a lost network, the session waits
        for its ``rejoin`` instead of ending the customer's session over a storage fault."""

    @property
    def finished(self) -> bool:
        return self.live is not None and self.live.machine.ended

    async def text(self, message: AgentMessage) -> Outcome | None:
        """A control message from the agent's console (decoded). :data:`AGENT_EVENTS` names the
        action each needs; a principal without it is refused (audited) and the socket closed."""
        action, handle = AGENT_EVENTS[type(message)]
        if isinstance(message, REAUTHORISED):
            await self.hub.reauthorize(self, message)
        await self.hub.authorize_message(self.principal, action, message, self.live)
        return await handle(self, message)

    def payload(self, frame: bytes) -> None:
        """Encrypted commands to the customer's page (remote control), only while sharing."""
        live = self.in_session()
        live.machine.check_agent_payload()
        live.machine.touch(self.hub.clock())
        self.hub.fanout.publish(live.customer_topic, Frame(frame))

    def release(self) -> None:
        """No longer counted among the account's open sockets (once; its socket closed)."""
        if not self._released:
            self._released = True
            self.hub._agent_socket_closed(self.principal.username)

    async def __aexit__(self, *exc_info: object) -> None:
        if isinstance(exc_info[1], StorageError):
            self.database_failed = True
        try:
            await super().__aexit__(*exc_info)
        finally:
            self.release()

    def in_session(self) -> LiveSession:
        if self.live is None:
            raise ProtocolError(codec.CLOSE_MALFORMED, "join a session first")
        return self.live

    def dropped_as_slow(self) -> None:
        live = self.live
        if live is not None and not live.machine.ended:
            self.hub.fanout.publish(
                customer_topic(live.machine.session_id), Frame(codec.encode(AGENT_TOO_SLOW))
            )

    async def _gone(self) -> None:
        live = self.live
        if live is None or live.machine.ended or live.agent_seat not in (self, None):
            return  # a rejoin took this socket's place
        live.agent_seat = None
        now = self.hub.clock()
        if self.peer_close_code in RESUMABLE_CLOSES or self.database_failed:
            await self.hub.apply(live, live.machine.agent_away(now))
        else:
            await self.hub.apply(live, live.machine.agent_lost(now))


class WatchSeat(Seat):
    """A supervisor's socket watching a session: leaving or losing it ends only the watch."""

    def __init__(
        self,
        hub: SessionHub,
        live: LiveSession,
        principal: Principal,
        subscription: Subscription,
        login: str,
    ) -> None:
        super().__init__(hub, subscription)
        self.live = live
        self.principal = principal
        self.login = login
        """The sign-in's token digest (see :attr:`AgentSeat.login`)."""
        self.reauth_due = hub.first_reauth()
        self._second = (float("-inf"), 0)
        """When the current second of its frames began, and how many came in it."""

    @property
    def watching(self) -> bool:
        machine = self.live.machine
        return machine.watcher_username == self.principal.username and not machine.ended

    @property
    def finished(self) -> bool:
        return not self.watching

    async def text(self, message: AgentMessage) -> None:
        action, handle = WATCHER_EVENTS.get(type(message), (WATCH_ACTION, _already_watching))
        # Checked on the site too: the supervisor's key exchange is what lets page content reach
        # it, so a site its teams no longer serve is refused here, not only by the re-checks.
        # (An agent's messages in a session open nothing the re-checks do not already close.)
        await self.hub.authorize_message(self.principal, action, message, self.live, on_site=True)
        await handle(self, message)

    def payload(self, frame: bytes) -> None:
        """The supervisor's freshness challenges (end-to-end encrypted, its own frame kind), to
        the customer's page only, once it watches; anything else closes the socket (4400)."""
        if not self.watching:
            raise ProtocolError(codec.CLOSE_MALFORMED, "a supervisor only watches")
        self.live.machine.check_watcher_payload(frame)
        now = self.hub.clock()
        began, count = self._second
        if now - began >= 1.0:
            began, count = now, 0
        self._second = (began, count + 1)
        if count + 1 > self.hub.settings.max_watcher_frames_per_second:
            raise ProtocolError(codec.CLOSE_TOO_MANY, "a supervisor's challenges came too fast")
        self.hub.fanout.publish(self.live.customer_topic, Frame(frame))

    async def _gone(self) -> None:
        if self.watching:
            await self.hub.apply(self.live, self.live.machine.watcher_leaves())


RESUMABLE_CLOSES = frozenset({1001, 1005, 1006})
"""An agent socket closed by a page being left (a reload: 1001) or lost with the network (no
close frame: uvicorn says 1005, others 1006): the session waits ``agent_resume_seconds`` for
its ``rejoin``, as it does for a socket the server closed because the database failed under
it (:attr:`AgentSeat.database_failed`). A console that closes on purpose (1000), or a socket
the server dropped for what it did, ends it at once (``agent_lost``)."""


def _expired_entries(expired: list[tuple[str, str]]) -> list[Entry]:
    """The audit records of the sessions retention deleted (``(org_id, session_id)``): at most
    ``EXPIRED_PER_RECORD`` ids a record, per organisation."""
    by_org: dict[str, list[str]] = {}
    for org_id, session_id in expired:
        by_org.setdefault(org_id, []).append(session_id)
    return [
        Entry(
            "sessions_expired",
            org_id,
            "server",
            "",
            {"sessions": ids[start : start + EXPIRED_PER_RECORD]},
        )
        for org_id, ids in sorted(by_org.items())
        for start in range(0, len(ids), EXPIRED_PER_RECORD)
    ]


class DownloadGuard:
    """A download under way (a recording's file, a subject's export), sent a chunk at a time,
    and whether its sign-in may still have it.

    Before each chunk but the first, :meth:`may_go_on` asks storage (not an announcement: a
    revocation made on any server, with the CLI, which announces nothing, or while the fan-out
    was away, is seen there); and when an announcement names its sign-in, account or
    organisation, the hub checks at once (:meth:`check`), so a download whose client reads
    nothing meanwhile is cut too, and what the server still held for it is never sent. Cut
    (its sign-in ended, its account went or was disabled, its role lost the action; or storage
    did not answer, so nobody could tell), its connection is dropped (:meth:`bind`), nothing
    more is sent and ``download_cut`` is audited once, with the bytes sent of the whole."""

    def __init__(
        self, hub: SessionHub, login: str, principal: Principal, action: Action, what: str
    ) -> None:
        self.hub = hub
        self.login = login
        self.principal = principal
        self.action = action
        self.what = what
        self.sent = 0
        """Bytes handed to the connection so far."""
        self.size = 0
        self.cut = False
        self._drop: Callable[[], None] | None = None
        self._checking: asyncio.Task[None] | None = None
        """The check an announcement asked for (:meth:`check_soon`), while it runs."""
        self._check_again = False

    def bind(self, drop: Callable[[], None] | None, size: int) -> None:
        """The download starts: its file is ``size`` bytes, and ``drop`` ends its connection
        at once (None: the next chunk's :meth:`may_go_on` stops it). From now until
        :meth:`finish`, announcements reach it."""
        self._drop, self.size = drop, size
        if not self.cut:
            self.hub._downloads.add(self)

    def finish(self) -> None:
        """The download is over (sent, cut, or its client went): no more checks."""
        self.hub._downloads.discard(self)

    async def may_go_on(self, sent: int) -> bool:
        """Before a chunk, with ``sent`` bytes handed over: True if it may be sent."""
        self.sent = sent
        if not self.cut:
            await self.check()
        return not self.cut

    def check_soon(self) -> None:
        """:meth:`check` in a task of its own (an announcement named the download), held by the
        hub: the listener that heard the announcement goes on to the next at once, so one
        check that waits for storage (up to ``database_timeout_seconds``) never holds up the
        other revocations. Asked again while a check runs, it checks once more after it (the
        running one may have read storage before the change the announcement names)."""
        if self._checking is not None:
            self._check_again = True
            return
        self._checking = asyncio.create_task(self._checks(), name="tandem:download_check")
        self.hub._download_checks.add(self._checking)
        self._checking.add_done_callback(self._checked)

    async def _checks(self) -> None:
        while True:
            self._check_again = False
            try:
                await self.check()
            except Exception as exc:  # a bug: the chunk's own check still runs
                log.error("a download's check failed (%s)", type(exc).__name__)
                return
            if self.cut or not self._check_again:
                return

    def _checked(self, task: asyncio.Task[None]) -> None:
        self.hub._download_checks.discard(task)
        self._checking = None

    async def check(self) -> None:
        """Cut the download if its sign-in no longer allows it (audited once)."""
        reason = await self.hub._download_refusal(self)
        if reason is None or self.cut:  # another check (a chunk, an announcement) cut it
            return
        self.cut = True
        self.finish()
        if self._drop is not None:
            self._drop()
        # Its own task: dropping the connection cancels the download's, which may be this one.
        recorded = asyncio.create_task(self._record(reason))
        self.hub._recording_cuts.add(recorded)
        recorded.add_done_callback(self.hub._recording_cuts.discard)
        await asyncio.shield(recorded)

    async def _record(self, reason: str) -> None:
        with contextlib.suppress(Exception):  # kept, and written once storage answers
            await self.hub.record_done(
                "download_cut",
                actor="server",
                org=self.principal.org,
                subject=self.principal.username,
                what=self.what,
                needs=self.action,
                reason=reason,
                sent=self.sent,
                size=self.size,
            )


class SessionHub:
    """All live sessions of this process. As an async context manager it runs the deadline
    ticker; leaving it ends every live session and waits for their sockets' last frames."""

    def __init__(
        self,
        *,
        settings: Settings,
        storage: Storage,
        fanout: Fanout,
        audit: AuditLog,
        box: crypto.SecretBox,
        join_backoff: SharedBackoff,
        join_org_backoff: SharedBackoff,
        clock: Clock,
        entropy: crypto.Entropy,
        node: str = "",
        tick_seconds: float = 1.0,
        backlog_dir: Path | None = None,
    ) -> None:
        """``backlog_dir``: where the audit records storage refused are kept until it takes
        them (the data directory), so that a process killed meanwhile loses none; None: in
        memory only."""
        self.settings = settings
        self.storage = storage
        self.fanout = fanout
        self.audit = audit
        self.box = box
        """Opens sites' token keys."""
        self.join_backoff = join_backoff
        """Wrong join codes per account and per client address."""
        self.join_org_backoff = join_org_backoff
        """Wrong join codes per organisation (someone guessing across its agents)."""
        self.clock = clock
        self.entropy = entropy
        self.node = node
        """This process's id among several (scale-out); empty when it runs alone."""
        self.tick_seconds = tick_seconds
        self._live: dict[str, LiveSession] = {}
        self._restoring: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        """Handed-over sessions being taken up in this process (:meth:`_restore`), one request
        at a time, so a side that comes back while the other's request is taking the session up
        finds it live, not gone. An entry lasts while a request holds or awaits its lock."""
        self._waiting_by_client: dict[str, set[str]] = {}
        self._waiting_practice: dict[str, set[str]] = {}
        """Waiting practice sessions by account (``max_waiting_practice_per_account``)."""
        self._waiting_by_site: dict[str, set[str]] = {}
        """Sessions each address and site opened that may still be waiting (pruned when
        counted): the waiting limits."""
        self._live_by_org: dict[str, int] = {}
        """Live sessions per organisation (its quota), those being started included."""
        self._starting: set[str] = set()
        """Sessions admitted but not yet live (their storage writes under way): they count
        against every limit, so that sockets opened all at once cannot pass it together."""
        self._organisations = (0, -math.inf)
        """How many organisations there are, and when that was read (the fair share)."""
        self.anonymous = EventCounts(settings.anonymous_audit_interval_seconds)
        """Events with no signed-in actor, counted per interval (tandem.event_counts)."""
        self._next_count_purge = 0.0
        self._seats: set[Seat] = set()
        self._agent_sockets: dict[str, int] = {}
        """Open agent sockets per account (:meth:`agent_seat`), for ``max_agent_sockets``."""
        self._unheard: dict[str, int] = {}
        """Customer sockets per address group not yet heard from (:meth:`customer_socket`)."""
        self._revoking: weakref.WeakSet[Seat] = weakref.WeakSet()
        """Seats being closed because their sign-in was revoked (closed and audited once)."""
        self._seats_empty = asyncio.Event()
        self._seats_empty.set()
        self.background = Supervisor(
            backoff_first=settings.background_backoff_seconds,
            backoff_max=settings.background_backoff_max_seconds,
        )
        """This process's supervised background tasks (the deadline timer, heartbeats, the
        tunnel entrance): each survives its failures (tandem.supervise)."""
        self._unfinished: dict[str, tuple[LiveSession, str]] = {}
        """Ended sessions whose storage writes failed (database away): retried each tick."""
        self._closing: set[str] = set()
        """Sessions whose storage writes are under way."""
        self._failed_recordings: dict[str, tuple[str, str, float]] = {}
        """Recordings whose flush failed, by id: (organisation, reason, when); ended in storage
        as ``unavailable`` (and audited) by the next tick that reaches the database."""
        self._abandoned: dict[str, float] = {}
        """Sessions whose creation failed part of the way (the database stopped answering, the
        customer went), by id, with when: their join code and live-looking row are ended
        (``not_started``) by :meth:`tick` once storage answers, so that no session looks live
        in storage (supervisors' lists, the limits of other processes, erasure) that nobody
        holds."""
        self._unrecorded = AuditBacklog(
            backlog_dir, backlog_mac_key(audit.key), settings.audit_backlog_max_bytes
        )
        """Audit records of what was done while they could not be written (a socket closed on
        a re-check: its close does not wait for storage; an administrator's change), oldest
        first, with their time, kept on the disk in ``backlog_dir`` too; written by
        :meth:`tick` once storage answers (:mod:`tandem.audit_backlog`)."""
        self._writing_unrecorded = asyncio.Lock()
        """Held by the one :meth:`_write_unrecorded` under way."""
        self.refusals = RefusalBudget(
            settings.refusal_audit_burst, settings.refusal_audit_window_seconds
        )
        """Which refused attempts of signed-in accounts are recorded in full (:meth:`refused`)."""
        self._refusals_budgeted_locally = False
        """Whether the shared refusal budget (Redis) failed its last count (logged once)."""
        self._refusal_counts_waiting = 0
        """Counts of the shared refusal budget waiting for Redis's answer."""
        self._downloads: set[DownloadGuard] = set()
        """Downloads under way in this process (:meth:`download_guard`), for announcements."""
        self._recording_cuts: set[asyncio.Task[None]] = set()
        """The audit records of downloads being cut (DownloadGuard.check), held until written."""
        self._download_checks: set[asyncio.Task[None]] = set()
        """The checks of downloads announcements named (DownloadGuard.check_soon), running."""
        self._recording_writes: set[asyncio.Task[None]] = set()
        self._deadline_work: dict[str, asyncio.Task[None]] = {}
        """The timer's work under way (:meth:`meet_deadlines`): each session's, and the retries
        (key ""), one at a time each."""
        self._deadline_failed: Exception | None = None
        self._deadline_outage: Exception | None = None
        """The timer's last error raised, until a retry started after it wrote everything that
        failed: the timer stays failing meanwhile (:meth:`meet_deadlines`)."""
        self._stop_deadline: float | None = None
        """When the stop must be over (time.monotonic()): :meth:`stop_by`."""
        self._hurried = asyncio.Event()
        """Set by :meth:`hurry` (a second Ctrl-C): the stop's waits for sockets end at once."""
        """The first error of that work since the timer's last run (raised by the next)."""
        """Recordings' writers (:meth:`_write_recording`, never raise), held until done."""
        self._recording_backlog = RecordingBacklog()
        """What all recordings hold in memory, not yet written: recording_backlog_total_bytes."""
        self.process_id = ""
        """This process's row in storage (tandem.processes): its sessions are stored with it."""
        self.tunnelled_sockets: Callable[[], int] = lambda: 0
        """How many sockets of other processes this one serves through tunnels (metrics)."""
        self._next_purge = 0.0
        self._next_expired_purge = 0.0
        self._next_vacuum = 0.0
        self._reauth_serial = 0
        self._heard_revocations = False
        """Whether the revocations' subscription ran before (a new one may have missed some)."""
        self._outages_seen = 0
        """The shared fan-out's outages (Redis) the re-checks have caught up with."""
        self.recordings = Recordings(
            storage,
            self.record,
            settings.max_recording_downloads,
            self.witness,
            clock,
            max_list=settings.max_recording_list,
        )
        self.training = Training(storage, settings, clock, entropy, box, self.record)
        self.server_policy = (
            load_policy(settings.policy_file, settings.max_input_file_bytes)
            if settings.policy_file
            else None
        )
        """The server's policy (--policy) as read at start, which it hands out until it stops:
        the compliance report checks this one, not the file as it is now."""
        self.policy = policy_json(self.server_policy)

    async def __aenter__(self) -> Self:
        # What an earlier process on this data directory kept and could not write before it
        # died goes first, with its own times; if storage refuses it now, the timer writes it.
        if self._unrecorded.load():
            await self._write_unrecorded()
        if self._unrecorded.refused_count:
            # Lines cut short, altered, or written by someone without the audit key: never
            # sealed into the trail, but the trail says they were there.
            await self.record(
                "audit_backlog_refused",
                actor="server",
                org=DEFAULT_ORG,
                lines=self._unrecorded.refused,
                count=self._unrecorded.refused_count,
                kept=self._unrecorded.refused_kept,
            )
        # Says that this server records every deletion of a session's or recording's rows
        # (tandem.reconcile: an older one purged sessions without a record).
        await self.record(
            "server_started", actor="server", org=DEFAULT_ORG, **{DELETIONS_RECORDED: True}
        )
        # Every tick, failing or not: its failures are the storage writes of what it applied
        # (run apart), and a back-off held every session's deadline (a code, an idle or
        # maximum-length session) up to background_backoff_max_seconds while the database was
        # away. Its own work needs no database.
        self.background.every(
            "deadlines", self.tick_seconds, self.meet_deadlines, backoff_max=self.tick_seconds
        )
        self.background.every("upkeep", self.tick_seconds, self.upkeep)
        # Apart from the purges and counts: a run of those waiting for a frozen database held
        # the next re-checks of open sockets (revocations) behind it.
        self.background.every("rechecks", self.tick_seconds, self.recheck_due)
        # What a process killed before its vacuum ran (or stopped while it failed) deleted:
        # vacuumed at this server's first round.
        self.storage.deleted_before()
        self.background.every("vacuum", self.tick_seconds, self.vacuum_deleted)
        self.background.keep_running("revocations", self._hear_revocations)
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        # Every wait below is bounded by the stop's deadline (set by the server's graceful
        # stop; else from now): with storage frozen, each waited database_timeout_seconds.
        self.stop_by(time.monotonic() + self.settings.shutdown_timeout_seconds)
        left = self.stop_left
        if await cancel_within(self.background.take_tasks(), left() or 0.0):
            log.error("stopping: background tasks did not end in time; left to the exit")
        if await cancel_within(self._deadline_work.values(), left() or 0.0):
            log.error("stopping: the timer's storage writes did not end in time")
        await cancel_within(self._download_checks, left() or 0.0)
        # A failed write of the stop (storage refusing, not only late) is logged: what comes
        # after it (the recordings' last frames, server_stopped, written or kept) still runs.
        await self.within_stop(self.shutdown(), "ending the sessions")
        # Downloads cut just now: their records go before the server's stop (never raise).
        await self.within_stop(asyncio.gather(*self._recording_cuts), "download records")
        # The stop waited for each but a lost one.
        await self.within_stop(asyncio.gather(*self._recording_writes), "recordings' frames")
        # Kept by record_done, lost with the process.
        await self.within_stop(
            self._summarise_refusals(self.clock(), everything=True), "refusal summaries"
        )
        await self.within_stop(self._write_counts(everything=True), "anonymous event counts")
        # Anchored in the same transaction (tandem.audit.ANCHORED_ACTIONS): the shutdown
        # anchor is exactly at this record, whatever other servers append meanwhile. Kept
        # first (as record_done keeps records: on the disk, after what is kept already), then
        # written from the backlog, its line noted with it: a write given up on whose COMMIT
        # reaches PostgreSQL all the same is refused when the next process on this data
        # directory writes what was kept, never on the trail twice.
        at, fields = self.clock(), {"actor": "server", "org": DEFAULT_ORG}  # as held
        self._announce("server_stopped", dict(fields))
        try:
            await self._unrecorded.hold(at, "server_stopped", self._identified(fields))
            try:
                failed = await within_seconds(self._write_unrecorded(), left())
            except Exception as exc:  # TimeoutError included
                failed = exc
            if failed is not None:
                log.error(
                    "stopping: server_stopped not written (%s); kept for later",
                    str(failed) or type(failed).__name__,
                )
        finally:  # what is left in the backlog is the next process's on this data directory
            if self._unrecorded:
                log.warning(
                    "stopped: %d audit record(s) kept in the audit backlog (audit-backlog.jsonl "
                    "in the data directory), written by the next start once the database answers",
                    len(self._unrecorded),
                )
            self._unrecorded.close()

    async def _hear_revocations(self) -> None:
        """Re-check the sockets an announcement (:mod:`tandem.revocation`) names, whichever
        process made it. Without the fan-out for a moment (Overflow) or storage, it fails and
        the supervisor subscribes again after a back-off. Announcements made meanwhile are lost,
        so a new subscription after the first makes every socket due for its re-check at the
        next tick (and a re-check that fails stays due: :meth:`recheck`)."""
        subscription = self.fanout.subscribe(revocation.TOPIC, self.settings.socket_queue_bytes)
        if self._heard_revocations:
            self._recheck_everyone_soon()
        self._heard_revocations = True
        try:
            while True:
                heard = revocation.decode((await subscription.get()).data)
                if heard is None:
                    continue
                for download in list(self._downloads):
                    if revocation.concerns(
                        heard,
                        login=download.login,
                        user=download.principal.username,
                        org=download.principal.org,
                        site=None,
                    ):
                        download.check_soon()
                if heard.everyone:  # due at the next tick: however many processes ask, once
                    self._recheck_everyone_soon()
                    continue
                await self._recheck_each(
                    seat
                    for seat in self.signed_in_seats()
                    if revocation.concerns(
                        heard,
                        login=seat.login,
                        user=seat.principal.username,
                        org=seat.principal.org,
                        site=seat.live.site_id if seat.live is not None else None,
                    )
                )
        finally:
            subscription.close()

    def first_reauth(self) -> float:
        """When a new agent's or supervisor's socket is first re-checked by the timer: within
        ``agent_reauth_seconds`` of now, at a point spread evenly over that interval (the
        golden-ratio sequence of the sockets' serial numbers), then every interval after it.
        Sockets opened in a burst (a morning's sign-ins, a process's restart handing thousands
        over) would otherwise be re-checked in one burst of storage reads every interval: at
        3,000 sessions that held frames up for 100-250 ms (bench/relay.py's scale scenario)."""
        self._reauth_serial += 1
        spread = (self._reauth_serial * 0.6180339887498949) % 1.0
        return self.clock() + self.settings.agent_reauth_seconds * spread

    def _catch_up_after_an_outage(self) -> None:
        """Once the shared fan-out (Redis) is back from an outage, every socket is re-checked:
        the revocations other processes announced meanwhile were lost (their subscription does
        not fail: it only hears nothing). And every other process re-checks its sockets: what
        this one announced meanwhile was dropped too (a publication is not queued), and theirs
        saw no outage."""
        outages = int(getattr(self.fanout, "outages", 0))
        if outages != self._outages_seen and getattr(self.fanout, "connected", True):
            self._outages_seen = outages
            self._recheck_everyone_soon()
            revocation.announce(self.fanout, everyone=True)

    def _recheck_everyone_soon(self) -> None:
        """Make every agent's and supervisor's socket due for its re-check at the next tick."""
        now = self.clock()
        for seat in self.signed_in_seats():
            seat.reauth_due = min(seat.reauth_due, now)

    def signed_in_seats(self) -> list[AgentSeat | WatchSeat]:
        """The agents' and supervisors' sockets of this process."""
        return [s for s in self._seats if isinstance(s, AgentSeat | WatchSeat)]

    async def _current(self, seat: AgentSeat | WatchSeat, activity: bool) -> tuple[int, str] | None:
        """Why ``seat``'s principal may no longer use its socket (a close code and reason), or
        None; the seat's principal is refreshed from storage (role, teams). A socket in a session
        is authorised on the session as its join or watch was (its organisation, and the teams
        serving its site now): none of the principal's teams serving the site any more closes
        it (:data:`revocation.TEAMS_CHANGED`)."""
        now = self.clock()
        agent = await auth.agent_for_login(
            self.storage,
            seat.login,
            now,
            self.settings.login_idle_seconds if activity else float("inf"),
            touch_seconds=self.settings.login_touch_seconds,
            activity=activity,
        )
        if agent is None or agent.org != seat.principal.org:
            return codec.CLOSE_UNAUTHENTICATED, revocation.SIGNED_OUT
        seat.principal = agent
        action = WATCH_ACTION if isinstance(seat, WatchSeat) else AGENT_SOCKET_ACTION
        try:
            authorize(agent, action)
        except ForbiddenError:
            return codec.CLOSE_FORBIDDEN, revocation.ROLE_CHANGED
        try:
            await self._authorize_on_site(agent, action, seat.live)
        except (ForbiddenError, NotFoundError):
            return codec.CLOSE_FORBIDDEN, revocation.TEAMS_CHANGED
        return None

    async def _authorize_on_site(
        self, principal: Principal, action: Action, live: LiveSession | None
    ) -> None:
        """Authorise ``action`` on ``live``'s site as it is now (its organisation, the teams
        serving it), when there is a live, unended session that is not a practice one (no team
        serves those). Raises ForbiddenError or NotFoundError."""
        if live is not None and live.practice is None and not live.machine.ended:
            _, resource = await self._site_of(live)
            authorize(principal, action, resource)

    async def _forced_close(
        self, seat: AgentSeat | WatchSeat, principal: Principal, code: int, reason: str
    ) -> None:
        live = seat.live
        await self.record_done(
            "socket_closed",
            actor="server",
            org=principal.org,
            subject=principal.username,
            session=live.machine.session_id if live else "",
            code=code,
            reason=reason,
        )

    async def reauthorize(self, seat: AgentSeat | WatchSeat, message: object) -> None:
        """Before ``message`` (join, watch, record): the sign-in must still be valid, the
        account still there, its role still allowing the socket and, in a session, its teams
        still serving the session's site. Otherwise the close is audited and ProtocolError (4401
        or 4403) closes the socket."""
        before = seat.principal
        refused = await self._current(seat, activity=True)
        if refused is not None:
            if seat not in self._revoking:
                self._revoking.add(seat)
                await self._forced_close(seat, before, *refused)
            raise ProtocolError(*refused)

    async def recheck(self, seat: AgentSeat | WatchSeat) -> None:
        """Close ``seat``'s socket (audited) if its sign-in ended, its account went, its role
        no longer allows the socket, or none of its teams serves its session's site any more:
        periodically and on an announcement. An agent's close ends its session as any lost
        agent's does (the customer is told); a supervisor's ends only the watch.

        If it cannot tell (storage failed: raised), the socket is due again at the next tick,
        not a whole ``agent_reauth_seconds`` later: an announcement is not heard twice."""
        if seat in self._revoking:
            return
        before = seat.principal
        try:
            refused = await self._current(seat, activity=False)
            if refused is None and isinstance(seat, AgentSeat):
                await self._tell_of_a_new_policy(seat)
        except Exception:
            seat.reauth_due = min(seat.reauth_due, self.clock())
            raise
        # Checked again after the wait: another check (the timer, an announcement, a message)
        # may have closed it meanwhile; one close, one audit record.
        if refused is not None and seat not in self._revoking:
            self._revoking.add(seat)
            # Closed first, whatever the audit trail does: a seat being revoked is never
            # checked again, so a revoked socket left open would stay open; and a record that
            # waits for the database (its write lock held, up to sqlite_busy_seconds) held the
            # close, and every revocation the listener heard after it. The record says when it
            # was closed (kept, and written once storage answers, if it fails).
            seat.kick(*refused)
            await self._forced_close(seat, before, *refused)

    async def _tell_of_a_new_policy(self, seat: AgentSeat) -> None:
        """Tell an agent in a live session, once per version, that a policy version it has not
        acknowledged was published. The session goes on (cutting it would leave the customer
        mid-help); recording, joining, rejoining and watching are refused until it is
        acknowledged (read from storage at each), and the console asks for no control."""
        live = seat.live
        if live is None or live.practice is not None or live.machine.ended:
            return
        # One row each re-check (the newest version); the standing (the organisation's
        # acknowledgements) only once per version this seat has not been checked against.
        latest = await self.training.policy(Grant.server(seat.principal.org, "policy version"))
        if latest.version <= seat.policy_checked:
            return
        standing = await self.training.standing(seat.principal)
        seat.policy_checked = standing.policy_version
        if not standing.needs_acknowledgement:
            return
        self.fanout.publish(
            agents_topic(live.machine.session_id), Frame(codec.encode(POLICY_CHANGED))
        )

    def download_guard(
        self, login: str, principal: Principal, action: Action, what: str
    ) -> DownloadGuard:
        """The guard of a download (``what``: a recording's file, a subject's export) by the
        sign-in ``login`` of ``principal``, which needed ``action``: see :class:`DownloadGuard`.
        Held by the hub from its start until it ends, so that announcements reach it."""
        return DownloadGuard(self, login, principal, action, what)

    async def _download_refusal(self, guard: DownloadGuard) -> str | None:
        """Why ``guard``'s download may not go on (a reason of :mod:`tandem.revocation`), or
        None. Storage decides; storage failing is a refusal too: nobody can tell."""
        try:
            agent = await auth.agent_for_login(
                self.storage,
                guard.login,
                self.clock(),
                touch_seconds=self.settings.login_touch_seconds,
                activity=False,
            )
        except Exception:
            return revocation.NOT_CHECKED
        if agent is None or agent.org != guard.principal.org:
            return revocation.SIGNED_OUT
        try:
            authorize(agent, guard.action)
        except ForbiddenError:
            return revocation.ROLE_CHANGED
        return None

    async def record(self, action: str, **fields: Any) -> None:
        """Append to the audit trail (no page content, no secrets: ids, names, reasons); the
        same event goes to the log and the metrics."""
        self._announce(action, fields)
        await self.audit.record(self.clock(), action, **fields)

    def _identified(self, fields: dict[str, Any]) -> dict[str, Any]:
        """``fields`` with the identity of a record that may be kept and written again
        (:data:`tandem.audit.WRITE_ID`), made before its first try."""
        return {**fields, WRITE_ID: crypto.new_token(self.entropy, 16)}

    @staticmethod
    def _announce(action: str, fields: dict[str, Any]) -> None:
        """An audited event's log line and count (before its record is written)."""
        # A practice session's events (tandem.training) are not customers' sessions: counted apart.
        practice = fields.get("practice") and not action.startswith("practice_")
        metrics.audited(f"practice_{action}" if practice else action)
        events.info(action, **fields)

    def witness(self, entries: Callable[[T], Sequence[Entry]]) -> Evidence[T]:
        """The evidence of a deletion (tandem.audit.Evidence): its records, written in its own
        transaction, at the time now; announced (log, metrics) once committed. Records kept
        meanwhile (:meth:`record_done`) are written after them, each with its own time."""
        return self.audit.evidence(self.clock(), entries, self._announce_written)

    def _announce_written(self, records: Sequence[AuditRecord]) -> None:
        for record in records:
            fields = {"actor": record.actor, "org": record.org, "subject": record.subject}
            self._announce(record.action, {**fields, **record.details})

    async def record_done(self, action: str, **fields: Any) -> None:
        """Append the record of what was done already (a socket closed, a session or recording
        closed after a crash, an administrator's change; a deletion's is written in its own
        transaction instead: :meth:`witness`): if storage fails, the record is
        kept, with the time it was done, and written by :meth:`tick` once it answers, and the
        error is raised (an HTTP request answers 503). While records are kept, the next ones
        join them, in order, without a try of their own.

        Each is given its identity before its first try (:data:`tandem.audit.WRITE_ID`), kept
        with it, and noted by the database with it: a try whose COMMIT landed though its caller
        was cancelled before the answer (or lost it) leaves the record kept, and writing it from
        the backlog then finds it on the trail, never writes it twice."""
        at = self.clock()
        self._announce(action, fields)
        fields = self._identified(fields)
        if self._unrecorded:
            await self._unrecorded.hold(at, action, fields)
            return
        if self._stop_deadline is not None:
            # Stopping: the write may be given up on (its task cancelled at the deadline) while
            # its statement reaches PostgreSQL all the same. Kept first (on the disk: a process
            # killed at the deadline leaves it to the next start), then written from the
            # backlog, its identity noted with it (as server_stopped): a second write is refused.
            await self._unrecorded.hold(at, action, fields)
            failed = await self._write_unrecorded()
            if failed is not None:
                raise failed
            return
        try:
            await self.audit.record(at, action, **fields)
        except asyncio.CancelledError:
            # Its caller went (a socket's close, a stop past its deadline) while the write
            # waited: given up before its COMMIT, it is not stored (SQLite rolls it back;
            # tandem.storage.sql _SQLiteCall), so it is kept. After the COMMIT began (SQLite's
            # worker answering, PostgreSQL's answer not yet read) it is stored all the same: its
            # identity, noted with it, makes the backlog's write of it a refusal, not a second.
            await self._unrecorded.hold(at, action, fields)
            raise
        except Exception:
            await self._unrecorded.hold(at, action, fields)
            raise

    async def authorize_message(
        self,
        principal: Principal,
        action: Action,
        message: object,
        live: LiveSession | None,
        *,
        on_site: bool = False,
    ) -> None:
        """Refuse (audited, then ProtocolError 4403) a message whose action the principal's
        role does not allow or, with ``on_site``, that acts on ``live``'s site when none of the
        principal's teams serves it any more (the site read now; the principal's teams as of its
        socket's last re-check)."""
        try:
            authorize(principal, action)
            if on_site:
                await self._authorize_on_site(principal, action, live)
        except (ForbiddenError, NotFoundError) as exc:
            await self._refused(principal, action, message, live, exc)
            raise ProtocolError(codec.CLOSE_FORBIDDEN, str(exc)) from None

    async def _refused(
        self,
        principal: Principal,
        action: Action,
        message: object,
        live: LiveSession | None,
        exc: TandemError,
    ) -> None:
        tag = getattr(getattr(message, "__struct_config__", None), "tag", type(message).__name__)
        await self.refused(
            "message_refused",
            principal,
            subject=live.machine.session_id if live else "",
            message=str(tag),
            needs=action,
            reason=str(exc),
        )

    async def refused(
        self, action: str, principal: Principal, subject: str = "", **fields: Any
    ) -> None:
        """The audit record of a refused attempt by a signed-in account (``access_refused``,
        ``recording_refused``, ``message_refused``), within the account's budget
        (:mod:`tandem.refusals`: the first ``refusal_audit_burst`` of a window in full, the
        rest counted in one ``access_refused_summary``). It never raises: the refusal's answer
        stands whatever happens to its record, and a record storage failed on is kept and
        written once it answers (:meth:`record_done`)."""
        now = self.clock()
        with contextlib.suppress(Exception):  # kept by record_done
            await self._summarise_refusals(now)
        shared = await self._shared_refusal_count(principal.org, principal.username)
        if not self.refusals.admit(now, principal.org, principal.username, shared):
            return
        with contextlib.suppress(Exception):  # kept by record_done
            await self.record_done(
                action, actor=principal.username, org=principal.org, subject=subject, **fields
            )

    async def _shared_refusal_count(self, org: str, actor: str) -> int | None:
        """The number of this refusal of ``actor`` in its window across every process (Redis:
        :mod:`tandem.refusals`), or None to weigh it against this process's own budget: with
        one process, or while Redis does not answer (logged once per outage, each such refusal
        counted in ``tandem_refusals_budgeted_locally_total``). Never raises."""
        shared_count = getattr(self.fanout, "count", None)
        if not self.fanout.shared or shared_count is None:
            return None
        key = f"refusals:{len(org)}:{org}:{actor}"
        if self._refusals_budgeted_locally and self._refusal_counts_waiting:
            # Redis did not answer the last count and another refusal is asking it again:
            # this one is answered now, weighed here, rather than wait with it.
            metrics.REFUSALS_BUDGETED_LOCALLY.inc()
            return None
        self._refusal_counts_waiting += 1
        try:
            count = await asyncio.wait_for(
                shared_count(key, self.refusals.window),
                self.settings.refusal_budget_timeout_seconds,
            )
        except Exception as exc:
            metrics.REFUSALS_BUDGETED_LOCALLY.inc()
            if not self._refusals_budgeted_locally:
                self._refusals_budgeted_locally = True
                why = (
                    f"no answer within {self.settings.refusal_budget_timeout_seconds:g} s"
                    if isinstance(exc, TimeoutError)
                    else str(exc) or type(exc).__name__
                )
                log.warning(
                    "the shared refusal budget (Redis) does not answer (%s): refusals are "
                    "weighed against this process's own refusal_audit_burst until it does",
                    why,
                )
            return None
        finally:
            self._refusal_counts_waiting -= 1
        if self._refusals_budgeted_locally:
            self._refusals_budgeted_locally = False
            log.info("the shared refusal budget (Redis) answers again")
        return int(count)

    async def _summarise_refusals(self, now: float, everything: bool = False) -> None:
        """One ``access_refused_summary`` record for each account's window that ended with
        refusals not recorded one by one (each kept by :meth:`record_done` if storage fails)."""
        failed: Exception | None = None
        for summary in self.refusals.due(now, everything):
            try:
                await self.record_done(
                    SUMMARY_ACTION,
                    actor=summary.actor,
                    org=summary.org,
                    refused=summary.refused,
                    since=summary.since,
                    window_seconds=self.refusals.window,
                )
            except Exception as exc:  # kept; raised once all are
                failed = failed or exc
        if failed is not None:
            raise failed

    def count_anonymous(self, action: str, org: str, reason: str) -> None:
        """Count an event with no signed-in actor (a refused customer socket, an origin not
        allowed, a rejected customer token): one ``audit_counts`` row per interval, kind and
        organisation, never a record each (docs/audit.md). Logged and counted in metrics."""
        if action not in ANONYMOUS_ACTIONS:
            raise ValueError(f"not an anonymous event: {action}")
        metrics.anonymous(action)
        log.debug("%s (%s): %s", action, org or "no organisation", reason)
        self.anonymous.add(self.clock(), action, org, reason)

    async def _write_counts(self, everything: bool = False) -> None:
        counts = self.anonymous.take(self.clock(), self.node or self.process_id, everything)
        try:
            await self.storage.add_audit_counts(counts)
        except Exception:
            self.anonymous.put_back(counts)
            raise

    def __len__(self) -> int:
        return len(self._live)

    def get(self, session_id: str) -> LiveSession | None:
        return self._live.get(session_id)

    async def customer_for(self, site: SiteRecord, token: str | None) -> str | None:
        """The customer a token names (its ``sub``), None without a token where the site allows
        that. Raises ProtocolError 4401 for a missing or rejected token (audited)."""
        if token is None and not site.require_token:
            return None
        try:
            if token is None:
                raise AuthenticationError("this page needs a customer token: sign in on the site")
            if site.token_key is None or self.box is None:
                raise AuthenticationError("customer token not accepted: the site has no key")
            claims = crypto.verify_customer_token(
                token,
                self.box.open(site.token_key),
                site.site_id,
                self.clock(),
                self.settings.customer_token_max_seconds,
                self.settings.customer_token_leeway_seconds,
            )
            if claims.token_id is not None:  # single use: a replay is refused
                digest = crypto.secret_digest(f"{site.site_id}:{claims.token_id}", "jti")
                # Kept past the latest moment the token is still accepted (its leeway).
                kept = claims.expires_at + self.settings.customer_token_leeway_seconds + 30
                if not await self.storage.use_once(digest, kept):
                    raise AuthenticationError("customer token not accepted: it was used already")
            return claims.subject
        except AuthenticationError as exc:
            self.count_anonymous("customer_token_rejected", site.org_id, str(exc))
            raise ProtocolError(codec.CLOSE_UNAUTHENTICATED, str(exc)) from None

    def policy_for(self, site: SiteRecord) -> dict[str, object] | None:
        """The organisation's policy for a site: its own, else the server's (--policy)."""
        if site.policy:
            value: dict[str, object] = json.loads(site.policy)
            return value
        return self.policy

    async def organisation_quota(self) -> int:
        """Live sessions one organisation may hold: ``max_sessions_per_org``, else a fair
        share of ``max_sessions`` (the number of organisations is read again each
        ``purge_interval_seconds``)."""
        if self.settings.max_sessions_per_org is not None:
            return self.settings.max_sessions_per_org
        count, read_at = self._organisations
        now = self.clock()
        if now - read_at >= self.settings.purge_interval_seconds:
            count = await self.storage.organisation_count()
            self._organisations = (count, now)
        return max(1, self.settings.max_sessions // max(1, count))

    def _still_waiting(self, index: dict[str, set[str]], key: str) -> int:
        """How many of the sessions ``index`` holds under ``key`` are still waiting (the
        others are forgotten)."""
        held = index.get(key)
        if not held:
            return 0
        held.intersection_update(
            session_id
            for session_id in tuple(held)
            if session_id in self._starting
            or (
                (live := self._live.get(session_id)) is not None
                and live.waiting
                and not live.machine.ended
            )
        )
        if not held:
            del index[key]
        return len(held)

    async def _held_elsewhere(
        self, site: SiteRecord, practice: str | None = None
    ) -> tuple[int, int, int]:
        """With several processes: the live sessions other processes hold for ``site``'s
        organisation (counted against an explicit ``max_sessions_per_org``), those of them
        still waiting on ``site`` (against ``max_waiting_per_site``), and the ``practice``
        account's practice sessions they hold waiting (against
        ``max_waiting_practice_per_account``: counted per process, a cluster of N allowed N
        times it), from storage. Processes admitting at the same instant may each pass a limit
        once."""
        if not self.node:
            return 0, 0, 0
        grant = Grant.server(site.org_id, "session limits")
        rows = await self.storage.live_sessions(grant)
        others = [row for row in rows if row.node != self.node]
        waiting = sum(
            1
            for row in others
            if row.site_id == site.site_id and row.state in ("waiting", "pending_consent")
        )
        practising = 0
        if practice:
            practising = sum(
                1
                for row in await self.storage.waiting_practice(grant, practice)
                if row.node != self.node
            )
        held = len(others) if self.settings.max_sessions_per_org is not None else 0
        return held, waiting, practising

    def _admit(
        self,
        session_id: str,
        site: SiteRecord,
        client: str,
        quota: int,
        elsewhere: tuple[int, int, int] = (0, 0, 0),
        practice: str | None = None,
    ) -> None:
        """Admit a new customer session, or refuse it beyond a limit (ProtocolError 4429 or
        4503, counted as ``customer_refused``): waiting ones per address group and per site
        (and a ``practice`` session's per account), live ones per organisation (``quota``) and
        in all. Admitted, it counts against them all at once (no await between the check and
        the count): :meth:`_release` gives it back."""
        refusal: tuple[int, str, str] | None = None
        account = f"{len(site.org_id)}:{site.org_id}:{practice}" if practice else ""
        if practice and self._still_waiting(self._waiting_practice, account) + elsewhere[2] >= (
            self.settings.max_waiting_practice_per_account
        ):
            refusal = (
                codec.CLOSE_TOO_MANY,
                "practice",
                f"{CLOSE_REASON_TOO_MANY_PRACTICE}: use one or try again in a few minutes",
            )
        elif self._still_waiting(self._waiting_by_client, client) >= (
            self.settings.max_waiting_per_address
        ):
            refusal = (
                codec.CLOSE_TOO_MANY,
                "address",
                "too many help requests from this address: try again in a few minutes",
            )
        elif self._still_waiting(self._waiting_by_site, site.site_id) + elsewhere[1] >= (
            self.settings.max_waiting_per_site
        ):
            refusal = (
                codec.CLOSE_TOO_MANY,
                "site",
                "too many help requests on this site: try again in a few minutes",
            )
        elif len(self._live) + len(self._starting) >= self.settings.max_sessions:
            refusal = (codec.CLOSE_OVERLOADED, "server", "server busy: try again in a minute")
        elif self._live_by_org.get(site.org_id, 0) + elsewhere[0] >= quota:
            refusal = (
                codec.CLOSE_OVERLOADED,
                "organisation",
                "all of this organisation's sessions are in use: try again in a minute",
            )
        if refusal is not None:
            code, limit, reason = refusal
            metrics.CUSTOMER_REFUSALS.labels(limit=limit).inc()
            self.count_anonymous("customer_refused", site.org_id, f"{limit}: {reason}")
            raise ProtocolError(code, reason)
        self._starting.add(session_id)
        if practice:
            self._waiting_practice.setdefault(account, set()).add(session_id)
        self._live_by_org[site.org_id] = self._live_by_org.get(site.org_id, 0) + 1
        self._waiting_by_client.setdefault(client, set()).add(session_id)
        self._waiting_by_site.setdefault(site.site_id, set()).add(session_id)

    def customer_socket(self, site: SiteRecord, client: str) -> Callable[[], None]:
        """Count a new customer socket of ``site`` from ``client`` (an address) until its first
        message, which the returned function says came (or that the socket went). Beyond
        ``max_unheard_sockets_per_address`` such sockets of one address group, ProtocolError
        4429, counted as ``customer_refused``: the waiting limits count sessions, so sockets
        that never speak were, until their first-message timeout, without one."""
        group = address_group(client)
        held = self._unheard.get(group, 0)
        if held >= self.settings.max_unheard_sockets_per_address:
            reason = "too many help requests from this address: try again in a few minutes"
            metrics.CUSTOMER_REFUSALS.labels(limit="address").inc()
            self.count_anonymous("customer_refused", site.org_id, f"unheard sockets: {reason}")
            raise ProtocolError(codec.CLOSE_TOO_MANY, reason)
        self._unheard[group] = held + 1
        heard = False

        def done() -> None:
            nonlocal heard
            if heard:
                return
            heard = True
            left = self._unheard.get(group, 0) - 1
            if left > 0:
                self._unheard[group] = left
            else:
                self._unheard.pop(group, None)

        return done

    def _release(self, session_id: str, org_id: str, client: str, site_id: str) -> None:
        """Give back what :meth:`_admit` counted (a session that ended, or failed to start)."""
        self._starting.discard(session_id)
        held = self._live_by_org.get(org_id, 0) - 1
        if held > 0:
            self._live_by_org[org_id] = held
        else:
            self._live_by_org.pop(org_id, None)
        for index, key in ((self._waiting_by_client, client), (self._waiting_by_site, site_id)):
            opened = index.get(key)
            if opened is not None:
                opened.discard(session_id)
                if not opened:
                    del index[key]
        for account, opened in tuple(self._waiting_practice.items()):  # a few accounts at most
            if session_id in opened:
                opened.discard(session_id)
                if not opened:
                    del self._waiting_practice[account]

    async def create_practice(
        self, site: SiteRecord, ticket_text: str, client: str
    ) -> tuple[LiveSession, Created]:
        """A practice session (tandem.training) from the server's own pages with the agent's
        ticket: in the agent's organisation, joinable by that agent only. Raises ProtocolError
        4401 for a ticket that is forged, expired or used, and 4403 from any other page."""
        if site.origin != SELF_ORIGIN:
            raise ProtocolError(codec.CLOSE_FORBIDDEN, "practice runs only on the server's pages")
        try:
            ticket = self.training.open_ticket(ticket_text)
            if not await self.storage.use_once(ticket.digest, ticket.expires_at + 60):
                raise AuthenticationError("practice ticket used already: start the exercise again")
        except AuthenticationError as exc:
            self.count_anonymous("customer_token_rejected", "", str(exc))
            raise ProtocolError(codec.CLOSE_UNAUTHENTICATED, str(exc)) from None
        practice_site = dataclasses.replace(site, org_id=ticket.org_id)
        live, created = await self.create(practice_site, None, client, ticket.username)
        await self.storage.start_practice(
            Grant.server(ticket.org_id, "practice session"),
            PracticeRecord(live.machine.session_id, ticket.username, ticket.org_id, self.clock()),
        )
        await self.record(
            "practice_started",
            actor=ticket.username,
            org=ticket.org_id,
            subject=live.machine.session_id,
            practice=ticket.username,
        )
        return live, created

    async def create(
        self,
        site: SiteRecord,
        customer: str | None = None,
        client: str = "",
        practice: str | None = None,
    ) -> tuple[LiveSession, Created]:
        """A new session of ``site`` in ``waiting`` with a fresh join code bound to the site's
        organisation. ``customer`` is the subject of a verified customer token, if any;
        ``client`` the page's address. Raises ProtocolError beyond a limit (:meth:`_admit`)."""
        quota = await self.organisation_quota()
        elsewhere = await self._held_elsewhere(site, practice)
        session_id = crypto.new_token(self.entropy, 16)
        client = address_group(client)
        self._admit(session_id, site, client, quota, elsewhere, practice)
        try:
            live, created = await self._start(site, customer, client, session_id, practice)
        except BaseException:
            self._release(session_id, site.org_id, client, site.site_id)
            self._abandoned[session_id] = self.clock()
            raise
        self._starting.discard(session_id)
        self._live[session_id] = live
        return live, created

    async def _start(
        self,
        site: SiteRecord,
        customer: str | None,
        client: str,
        session_id: str,
        practice: str | None = None,
    ) -> tuple[LiveSession, Created]:
        """The storage writes and the live state of a session :meth:`_admit` let in."""
        now = self.clock()
        resume_token = crypto.new_token(self.entropy)
        expires_at = now + self.settings.code_ttl_seconds
        grant = Grant.server(site.org_id, "customer session")
        for _ in range(5):
            code = crypto.new_join_code(self.entropy, self.settings.code_digits)
            try:
                await self.storage.put_join_code(
                    grant, self.secret_digest(code, "join"), session_id, expires_at
                )
                break
            except ConflictError:
                continue  # a live code collided; draw again
        else:
            raise ProtocolError(codec.CLOSE_OVERLOADED, "server busy: try again in a minute")
        await self.storage.record_session_start(
            grant, session_id, now, site.site_id, self.node or self.process_id
        )
        actor = "customer"
        if customer:  # the audit trail names a pseudonym (erasable link; tandem.subjects)
            pseudonym = await self.storage.link_subject(
                grant,
                customer,
                session_id,
                new_pseudonym(self.entropy),
                # The form an older version stored the same customer under, if it did: one
                # customer, one stored form (holds and purge compare it as stored).
                canonical_forms(customer)[1:],
                any_form=True,
            )
            actor = f"customer:{pseudonym}"
        await self.record(
            "session_created",
            actor=actor,
            org=site.org_id,
            subject=session_id,
            site=site.site_id,
            **({"practice": practice} if practice else {}),
        )
        live = LiveSession(
            machine=Session(
                session_id=session_id,
                code=code,
                code_expires_at=expires_at,
                resume_grace_seconds=self.settings.resume_grace_seconds,
                recording_end_seconds=self.settings.recording_end_seconds,
                created_at=now,
                idle_timeout_seconds=self.settings.idle_timeout_seconds,
                max_duration_seconds=self.settings.max_session_seconds,
                last_activity=now,
                agent_resume_seconds=self.settings.agent_resume_seconds,
            ),
            resume_digest=self.secret_digest(resume_token, "resume"),
            org_id=site.org_id,
            site_id=site.site_id,
            client=client,
            practice=practice,
        )
        created = Created(
            session_id=session_id,
            code=code,
            resume_token=resume_token,
            expires_in=int(self.settings.code_ttl_seconds),
            policy=self.policy_for(site),
            resume_seconds=int(self.settings.resume_grace_seconds),
        )
        return live, created

    async def owner_elsewhere(self, session_id: str) -> str | None:
        """The node of another process holding this session live, if scale-out is on."""
        if not self.node or session_id in self._live:
            return None
        record = await self.storage.get_session(session_id)
        if record is None or record.ended_at is not None or record.node in ("", self.node):
            return None
        return record.node

    def secret_digest(self, secret: str, purpose: str) -> str:
        """Keyed digest of a join code or resume token (HMAC with ``secrets.key``); join codes
        stored unkeyed by older versions no longer match and expire within ``code_ttl``."""
        if self.box is None:
            raise ConfigError("the session hub has no secrets key")
        return self.box.digest(secret, purpose)

    def digest_matches(self, stored: str, secret: str, purpose: str) -> bool:
        """True when ``stored`` is :meth:`secret_digest` of ``secret`` under any key of the
        secrets key ring: a session begun before a rotation of ``secrets.key``, or on a server
        that had not taken the new key up yet, is still resumed (docs/operations.md). Every
        key is compared, in constant time each."""
        if self.box is None:
            raise ConfigError("the session hub has no secrets key")
        found = [crypto.secrets_equal(stored, d) for d in self.box.digests(secret, purpose)]
        return any(found)

    def find_for_resume(self, session_id: str, resume_token: str) -> LiveSession:
        """The live session a resume token opens. Raises 4404 for anything else, one answer."""
        live = self._live.get(session_id)
        if (
            live is None
            or live.machine.ended
            or not self.digest_matches(live.resume_digest, resume_token, "resume")
        ):
            raise ProtocolError(codec.CLOSE_NOT_FOUND, "session not found")
        return live

    async def open_customer(
        self, site: SiteRecord, message: CustomerMessage, client: str = ""
    ) -> CustomerSeat | Elsewhere:
        """A customer's page opened its socket on ``site``'s origin and sent ``message`` first:
        ``create`` starts a session, ``resume`` takes one up again (a newer page replaces an
        older one, which is closed 4409). Returns the page's seat, to be entered at once."""
        if isinstance(message, Create) and message.practice is not None:
            live, created = await self.create_practice(site, message.practice, client)
            seat = self._seat_for_customer(live)
            self.send_to_customer(live, created)
            return seat
        if isinstance(message, Create):
            customer = await self.customer_for(site, message.token)
            live, created = await self.create(site, customer, client)
            seat = self._seat_for_customer(live)
            self.send_to_customer(live, created)
            return seat
        if not isinstance(message, Resume):
            raise ProtocolError(codec.CLOSE_MALFORMED, "the first message must be create or resume")
        owner = await self.owner_elsewhere(message.session_id)
        if owner:  # the page moved to this process; its session did not
            return Elsewhere(owner)
        token = message.resume_token
        restored = await self._restore(
            message.session_id, lambda row: self.digest_matches(row.resume_digest, token, "resume")
        )
        if restored is None and (owner := await self.owner_elsewhere(message.session_id)):
            return Elsewhere(owner)  # another process took it up first
        live = self.find_for_resume(message.session_id, message.resume_token)
        if live.site_id != site.site_id:
            raise ProtocolError(codec.CLOSE_NOT_FOUND, "session not found")
        # Read before anything changes: should the database fail here, the session is left as
        # it was (its page away, its resume deadline running), not taken for resumed by a page
        # whose socket is closed 1013.
        session_site = await self._session_site(live.site_id, live.org_id)
        if live.customer_seat is not None:
            live.customer_seat.kick(4409, "session resumed in another page")
        seat = self._seat_for_customer(live)
        await self.resume(live, session_site)
        return seat

    def _seat_for_customer(self, live: LiveSession) -> CustomerSeat:
        subscription = self.fanout.subscribe(
            customer_topic(live.machine.session_id), self.settings.socket_queue_bytes
        )
        live.customer_seat = CustomerSeat(self, live, subscription)
        return live.customer_seat

    def agent_seat(self, principal: Principal, client: str, login: str) -> AgentSeat:
        """An agent's socket from ``client`` (an address), signed in as ``login`` (the sign-in's
        token digest). Raises ForbiddenError when the role may not open it
        (:data:`AGENT_SOCKET_ACTION`), ProtocolError 4429 when the account holds
        ``max_agent_sockets`` already (in this process). The seat counts until it is exited or
        released (:meth:`AgentSeat.release`)."""
        authorize(principal, AGENT_SOCKET_ACTION)
        held = self._agent_sockets.get(principal.username, 0)
        if held >= self.settings.max_agent_sockets:
            # Each open socket costs memory and a sign-in check every agent_reauth_seconds: a
            # signed-in account must not open them without end.
            raise ProtocolError(
                codec.CLOSE_TOO_MANY, "too many open sockets for this account: close other tabs"
            )
        self._agent_sockets[principal.username] = held + 1
        return AgentSeat(self, principal, client, login)

    def _agent_socket_closed(self, username: str) -> None:
        left = self._agent_sockets.get(username, 0) - 1
        if left > 0:
            self._agent_sockets[username] = left
        else:
            self._agent_sockets.pop(username, None)

    async def resume(self, live: LiveSession, site: SiteRecord | None) -> Resumed:
        """The customer's page takes ``live`` up again (``site``: the session's, read by the
        caller before anything changed)."""
        resumed, effects = live.machine.customer_resumes()
        resumed.policy = self.policy_for(site) if site else self.policy
        resumed.team_policies = live.team_policies  # known before the page shares anything
        resumed.resume_seconds = int(self.settings.resume_grace_seconds)
        await self.apply(live, effects)
        return resumed

    async def agent_joins(
        self, seat: AgentSeat, live: LiveSession, site: SiteRecord | None, code_text: str
    ) -> None:
        """The agent's code was right (:meth:`session_for_code`): its teams' policies for this
        site go to the customer first, then the join itself (with a resume token for the
        agent's sign-in, when it has one).

        Nothing is the join's until its audit record is written: should the database fail
        first, the session goes back to waiting with its code valid again (the agent may enter
        it once more), the customer is told nothing and the socket is closed "try again later".
        Only when the code cannot be put back either (the database is still away) does the
        session end, as lost, rather than wait with a code nobody can use."""
        agent, login, machine = seat.principal, seat.login, live.machine
        try:
            serving = tuple(sorted(agent.teams & set(site.teams))) if site else ()
            texts = await self.storage.team_policies(
                Grant.server(live.org_id, "agent joins"), serving
            )
            policies = [json.loads(texts[team]) for team in serving if team in texts]
            token = crypto.new_token(self.entropy) if login else ""
            before = machine.state, machine.agent, machine.agent_username
            effects = machine.agent_joins(
                agent.display_name, self.clock(), agent.username, len(policies), token
            )
            expired = machine.ended  # the code expired: the effects end the session
            try:
                for effect in effects:
                    if isinstance(effect, Audit):
                        await self._audit(live, effect)
            except BaseException:
                if machine.state == "pending_consent":  # nothing ended it meanwhile
                    machine.state, machine.agent, machine.agent_username = before
                raise
        except BaseException:
            await self._give_code_back(live, code_text)
            raise
        live.team_policies = policies
        live.agent_resume_digest = self.secret_digest(token, "agent-resume") if token else ""
        live.agent_login = login
        seat.subscription = self.fanout.subscribe(
            agents_topic(machine.session_id), self.settings.socket_queue_bytes
        )
        seat.live = live
        live.agent_seat = seat
        if machine.ended and not expired and machine.end_reason:
            # the customer left while the record was written: the console hears the end
            self.fanout.publish(
                agents_topic(machine.session_id),
                Frame(codec.encode(Ended(reason=machine.end_reason))),
            )
            return
        if policies and machine.state == "pending_consent":
            self.send_to_customer(live, TeamPolicy(policies=policies))
        await self.apply(live, [effect for effect in effects if not isinstance(effect, Audit)])

    async def _give_code_back(self, live: LiveSession, code_text: str) -> None:
        """A join that failed before it was the agent's: the waiting session's code is valid
        again until it expires. If storage refuses that too, the session ends (lost), its
        customer told, rather than wait for a code that no longer works."""
        machine = live.machine
        if machine.ended or machine.state != "waiting":
            return
        digest = self.secret_digest(crypto.normalize_join_code(code_text), "join")
        try:
            await self.storage.put_join_code(
                Grant.server(live.org_id, "join code"),
                digest,
                machine.session_id,
                machine.code_expires_at,
            )
        except Exception:
            log.warning(
                "session %s: its join code could not be put back; it ends", machine.session_id
            )
            await self.apply(live, machine.agent_lost(self.clock()))

    async def agent_rejoins(self, seat: AgentSeat, message: Rejoin) -> LiveSession:
        """The agent's sign-in takes its session up again (``rejoin``): the resume token its
        ``joined`` carried, the same sign-in (``login``) and account, its team still serving the
        site. Anything else is one answer, 4404. An older socket of the agent is closed 4409."""
        token = message.resume_token
        live = await self._restore(
            message.session_id,
            lambda row: (
                bool(row.agent_resume_digest)
                and self.digest_matches(row.agent_resume_digest, token, "agent-resume")
                and crypto.secrets_equal(row.agent_login, seat.login)
                and row.agent_username == seat.principal.username
            ),
        )
        if live is None and (owner := await self.owner_elsewhere(message.session_id)):
            raise HeldElsewhere(owner)  # another process took it up first
        if (
            live is None
            or live.machine.ended
            or not live.agent_resume_digest
            or not self.digest_matches(live.agent_resume_digest, token, "agent-resume")
            or not crypto.secrets_equal(live.agent_login, seat.login)
            or live.machine.agent_username != seat.principal.username
        ):
            raise ProtocolError(codec.CLOSE_NOT_FOUND, "session not found")
        _, resource = await self._site_of(live)
        authorize(seat.principal, "session.join", resource)
        # A rejoin is a join: the current policy acknowledged and the practice not expired (a
        # new version published, or the interval run out, while the console was away). Refused
        # before anything changes: the session waits out its window for a console that is.
        await self.training.require(seat.principal, "session.join")
        away_since, seated = live.machine.agent_away_since, live.agent_seat
        effects = live.machine.agent_returns(seat.principal.username)
        # The audit record is written before this socket hears anything of the session; then
        # its subscription and its answer, with nothing awaited between them, so that `joined`
        # is its first frame. The customer's page goes on sharing the epoch the console had
        # (frames of it were lost while the console was away), and the console drops that
        # epoch's content only once it has heard `joined`: content relayed ahead of it was read
        # as tampering, and the console ended the session (seen after a restart under load).
        # Nothing is the rejoin's until its record is written: should the database fail, the
        # session still waits for its console, which is closed "try again later" and retries
        # (its socket never held the session, so its close does not end it).
        try:
            for effect in effects:
                if isinstance(effect, Audit):
                    await self._audit(live, effect)
        except BaseException:
            if live.agent_seat is seated:  # no other console took the session up meanwhile
                live.machine.agent_away_since = away_since
            raise
        older, live.agent_seat = live.agent_seat, seat
        if older is not None and older is not seat:
            older.kick(4409, "session taken up in another console")
        seat.live = live
        seat.subscription = self.fanout.subscribe(
            agents_topic(live.machine.session_id), self.settings.socket_queue_bytes
        )
        await self.apply(live, [effect for effect in effects if not isinstance(effect, Audit)])
        return live

    async def _site_of(self, live: LiveSession) -> tuple[SiteRecord | None, Resource]:
        """A live session's site, and the session as authorisation sees it (organisation and
        the teams that serve the site)."""
        site = await self._session_site(live.site_id, live.org_id)
        return site, Resource(live.org_id, frozenset(site.teams) if site else frozenset())

    async def _session_site(self, site_id: str, org_id: str) -> SiteRecord | None:
        """The site ``site_id`` of a session of ``org_id`` as stored now, or None if it went. A
        site of another organisation under its id is not it: deleting a site frees its id, and
        any organisation may register a site under it (unproved is enough); its teams would
        decide who joins the session, its policy what the customer's page masks."""
        site = await self.storage.get_site(site_id)
        return site if site is not None and site.org_id == org_id else None

    async def session_for_code(
        self, code_text: str, agent: Principal
    ) -> tuple[LiveSession, SiteRecord | None] | None:
        """Consume a join code (single use) of the agent's organisation and return its waiting
        session and its site, or None. Wrong, used, expired and other organisations' codes look
        the same to the caller, and another organisation's code stays valid for its own agents.

        Raises :class:`ForbiddenError` (the code stays valid) when the session's site is served
        by none of the agent's teams.
        """
        code = crypto.normalize_join_code(code_text)
        if not code.isdigit() or len(code) != self.settings.code_digits:
            return None
        now = self.clock()
        # The code is looked up in the agent's organisation only, before any action is
        # checked (the join itself is authorised against the session's site below). Under
        # every key of the secrets key ring: a code given out before a rotation, or by a
        # server that has not taken the new key up yet, still joins.
        grant = Grant.server(agent.org, "join code")
        if self.box is None:
            raise ConfigError("the session hub has no secrets key")
        for digest in self.box.digests(code, "join"):
            taken = await self.storage.take_join_code(grant, digest, now)
            if taken is not None:
                break
        else:
            return None
        try:
            return await self._join_with_taken_code(agent, grant, digest, taken)
        except StorageError:
            # The database failed after the code was taken (deleted): put it back, or the
            # customer's page shows a code that can never be used, and a retry reads as wrong.
            try:
                await self._put_code_back(grant, digest, taken)
            except TandemError as exc:  # still away, or put back already: the error stands
                log.warning("a join code taken could not be put back: %s", exc)
            raise

    async def _join_with_taken_code(
        self, agent: Principal, grant: Grant, digest: str, taken: TakenCode
    ) -> tuple[LiveSession, SiteRecord | None] | None:
        """:meth:`session_for_code` once the code is taken (deleted)."""
        session_id = taken.session_id
        # A waiting session handed over by a stopping server: the code proves it.
        live = await self._restore(session_id, lambda row: row.state == "waiting")
        if live is None:
            # Another process holds this session: leave its code valid for it, until it would
            # have expired (tries from here must not keep it alive), and let the caller tunnel
            # the agent's socket there (which takes the code again).
            await self._put_code_back(grant, digest, taken)
            owner = await self.owner_elsewhere(session_id)
            if owner:
                raise HeldElsewhere(owner)
            return None
        if live.machine.state != "waiting":
            return None
        site, resource = await self._site_of(live)
        if live.practice is not None:  # only its own agent; no team serves the practice page
            if live.practice != agent.username or live.org_id != agent.org:
                await self._put_code_back(grant, digest, taken)
                return None
            return live, None
        try:
            authorize(agent, "session.join", resource)
            await self.training.require(agent, "session.join")
        except ForbiddenError:
            await self._put_code_back(grant, digest, taken)
            raise
        return live, site

    async def _put_code_back(self, grant: Grant, digest: str, taken: TakenCode) -> None:
        """A taken code made valid again as it was: of the organisation it was found in, with
        its own expiry (tries that put it back must never keep it alive longer)."""
        await self.storage.put_join_code(grant, digest, taken.session_id, taken.expires_at)

    async def session_to_watch(self, session_id: str, supervisor: Principal) -> LiveSession:
        """A live session a supervisor may watch (its team serves the site). Raises
        NotFoundError (also for other organisations') or ForbiddenError."""
        authorize(supervisor, "session.watch")
        live = self._live.get(session_id)
        if live is None and (owner := await self.owner_elsewhere(session_id)):
            raise HeldElsewhere(owner)
        if live is None or live.machine.ended or live.practice is not None:
            raise NotFoundError("session not found")
        site, resource = await self._site_of(live)
        authorize(supervisor, "session.watch", resource)
        await self.training.require(supervisor, "session.watch")
        # The customer's page applies the policies of the joined agent's teams, fixed when the
        # customer allowed; a watcher sees what the agent sees. A supervisor one of whose teams
        # serving the site has a policy the session does not apply (another team's session, or
        # its team's policy changed since) would see pages and fields its team keeps private.
        serving = tuple(sorted(supervisor.teams & set(site.teams))) if site else ()
        texts = await self.storage.team_policies(
            Grant.server(live.org_id, "supervisor watches"), serving
        )
        unapplied = [
            t for t in serving if t in texts and json.loads(texts[t]) not in live.team_policies
        ]
        if unapplied:
            raise ForbiddenError(
                f"the policy of your team {unapplied[0]!r} is not applied in this session (the "
                "customer's page applies the joined agent's teams' policies): its private pages "
                "and masks would not hold for you"
            )
        return live

    async def live_sessions_for(self, agent: Principal) -> list[LiveSummary]:
        """Live sessions of the sites the agent's teams serve (for supervisors): this process's,
        or, with several processes, every process's (from storage)."""
        grant = authorize(agent, "session.list", Resource(agent.org))
        if self.node:
            rows = [
                (r.session_id, r.site_id, r.state, r.agent, r.created_at)
                for r in await self.storage.live_sessions(grant)
            ]
        else:
            rows = [
                (m.session_id, live.site_id, m.state, m.agent, m.created_at)
                for live in tuple(self._live.values())
                if live.org_id == grant.org_id
                and live.practice is None
                and not (m := live.machine).ended
            ]
        sites: dict[str, SiteRecord | None] = {}
        found = []
        for session_id, site_id, state, name, created_at in rows:
            if site_id not in sites:
                sites[site_id] = await self._session_site(site_id, grant.org_id)
            site = sites[site_id]
            if site is not None and agent.teams & set(site.teams):
                found.append(LiveSummary(session_id, site, state, name, created_at))
        return found

    async def request_recording(self, live: LiveSession, agent: Principal) -> None:
        """The agent asks to record: the customer is asked, with the organisation's recording
        key. Without a key the agent is told so and nothing happens."""
        if live.practice is not None:
            raise ForbiddenError("practice sessions are not recorded")
        _, resource = await self._site_of(live)
        grant = authorize(agent, "session.record", resource)
        # The current policy acknowledged (a new version published since the agent joined).
        await self.training.require(agent, "session.record")
        org = await self.storage.get_org(grant)
        if org is None or not org.recording_key:
            self.fanout.publish(
                agents_topic(live.machine.session_id), Frame(codec.encode(NO_RECORDING_KEY))
            )
            return
        recording_id = crypto.new_token(self.entropy, 12)
        effects = live.machine.record_requested(org.recording_key, recording_id, live.site_id)
        await self.apply(live, effects)

    async def apply_recorded(self, live: LiveSession, event: Callable[[], list[Effect]]) -> None:
        """Run a state machine event whose first effect is its audit record (a customer's
        answer: consent to share, to be watched), then carry out the rest. If that record
        cannot be written the event is undone (:meth:`Session.undo`: only what it changed) and
        the error raised: nothing is told, nothing waits for an answer that was never asked."""
        machine = live.machine
        before = machine.snapshot()
        effects = event()
        after = machine.snapshot()
        if effects and isinstance(effects[0], Audit):
            try:
                await self._audit(live, effects[0])
            except BaseException:
                machine.undo(before, after)
                raise
            effects = effects[1:]
        await self.apply(live, effects)

    def recorded_frame(self, live: LiveSession, frame: bytes) -> Awaitable[None] | None:
        """Keep a frame the customer sent while recording (ciphertext, as relayed). Storage is
        written by the recording's own task (:meth:`_write_recording`), so the customer's next
        frame never waits for the database: a frozen PostgreSQL held the customer's frames for
        up to ``database_timeout_seconds``. What returns (mostly None) tells both sides the
        recording stopped: its size limit, or storage not taking its frames in time."""
        recorder = live.recorder
        if recorder is None:
            return None
        if not recorder.add(frame):  # past the allowance for the end: cut here
            return self.apply(live, live.machine.record_stop("size_limit"))
        if recorder.size >= self.settings.max_recording_bytes:  # ask the customer to end it
            effects = live.machine.record_stop("size_limit", self.clock())
            if effects:
                # Its backlog may be full at the same frame: that stop is applied after this.
                stopped = self._write_soon(live)
                applying = self.apply(live, effects)
                return applying if stopped is None else self._in_turn(applying, stopped)
        if (
            recorder.buffered >= self.settings.recording_flush_bytes
            or self._recording_backlog.held > self.settings.recording_backlog_total_bytes
        ):
            return self._write_soon(live)
        return None

    @staticmethod
    async def _in_turn(*steps: Awaitable[None]) -> None:
        """Await ``steps`` one after another (each is awaited, even if one before fails)."""
        failed: BaseException | None = None
        for step in steps:
            try:
                await step
            except BaseException as exc:  # raised once the rest is awaited too
                failed = failed or exc
        if failed is not None:
            raise failed

    def _write_soon(self, live: LiveSession) -> Awaitable[None] | None:
        """Start the recording's writer if it has frames and none runs. While one runs (the
        database slow or frozen), frames wait in memory up to ``recording_backlog_bytes``;
        past that the recording stops (what returns tells both sides) and sharing goes on."""
        recorder = live.recorder
        if recorder is None or not recorder.buffer:
            return None
        if recorder.writing is None:
            self._start_writer(live, recorder)
            return None
        if (
            recorder.buffered <= self.settings.recording_backlog_bytes
            and self._recording_backlog.held <= self.settings.recording_backlog_total_bytes
        ):
            return None
        # Storage has not taken the last write while this much more came: the recording
        # stops; its writer ends it in storage (``unavailable``) once that write is over.
        metrics.RECORDING_FLUSHES.labels(outcome="failed").inc()
        metrics.STORAGE_ERRORS.labels(where="recording").inc()
        log.warning(
            "recording %s stopped: storage did not take its frames in time",
            recorder.recording.recording_id,
        )
        recorder.lost = "storage error"
        recorder.drop()
        self._detach_recorder(live, recorder, None)
        return self.apply(live, live.machine.record_stop("unavailable"))

    def _start_writer(self, live: LiveSession, recorder: Recorder) -> None:
        writing = asyncio.create_task(self._write_recording(live, recorder))
        recorder.writing = writing
        self._recording_writes.add(writing)
        writing.add_done_callback(self._recording_writes.discard)

    async def _write_recording(self, live: LiveSession, recorder: Recorder) -> None:
        """The recording's writer: writes its buffer, in order, until it is empty. Never raises:
        a failed write (erased, refused or the database away) stops the recording (said to both
        sides) rather than lose frames silently, and the session goes on sharing."""
        recording_id = recorder.recording.recording_id
        answered = False
        try:
            while recorder.buffer and recorder.lost is None:
                first, frames = recorder.take()
                # Still in memory until the write is over: they count against the total (taken
                # out of it, every recording held that much again behind its write).
                writing = sum(map(len, frames))
                self._recording_backlog.held += writing
                try:
                    await self.storage.append_recording_frames(recording_id, first, frames)
                except Exception as exc:
                    metrics.RECORDING_FLUSHES.labels(outcome="failed").inc()
                    # StorageError: the database did not answer (locked, away); other
                    # TandemErrors are its answers (the recording was erased, a refusal).
                    answered = isinstance(exc, TandemError) and not isinstance(exc, StorageError)
                    if not answered:
                        metrics.STORAGE_ERRORS.labels(where="recording").inc()
                    if recorder.lost is None:
                        recorder.lost = str(exc) if answered else "storage error"
                        # Its frames in this write and those queued behind it are let go:
                        # never written later (a recording erased meanwhile stays erased).
                        log.warning(
                            "recording %s stopped, %d frame(s) not written: %s",
                            recording_id,
                            len(frames) + len(recorder.buffer),
                            recorder.lost,
                        )
                    break
                finally:
                    self._recording_backlog.held -= writing
                metrics.RECORDING_FLUSHES.labels(outcome="ok").inc()
        finally:
            recorder.writing = None
        if recorder.lost is None:
            return
        recorder.drop()  # what came while the write failed: never written
        if live.recorder is recorder:  # both sides are told at once
            self._detach_recorder(live, recorder, None)
            try:
                await self.apply(live, live.machine.record_stop("unavailable"))
            except Exception as exc:  # retried by the timer (the session's end, the records)
                log.warning("recording's stop not applied: %s", type(exc).__name__)

    def _detach_recorder(self, live: LiveSession, recorder: Recorder, reason: str | None) -> None:
        """The recording keeps no more frames; its closing task (:meth:`_close_recording`)
        writes what it holds (``reason``: stopped) or lets it go (None: storage failed), then
        ends it in storage. Nothing here waits for storage: the customer's stop, or a frame
        that reaches the size limit, came on the customer's socket, and a frozen database held
        every frame after it (and both sides' notice) for up to ``database_timeout_seconds``."""
        if live.recorder is recorder:
            live.recorder = None
        if recorder.closing is not None:
            return
        closing = asyncio.create_task(self._close_recording(live, recorder, reason))
        recorder.closing = closing
        for tasks in (live.closing_recordings, self._recording_writes):
            tasks.add(closing)
            closing.add_done_callback(tasks.discard)

    async def _close_recording(
        self, live: LiveSession, recorder: Recorder, reason: str | None
    ) -> None:
        """End a detached recording in storage, after its last write: ``reason`` if every frame
        it kept was written, else ``unavailable`` (``recording_failed``), retried by the timer
        while storage does not answer. Never raises."""
        recording_id = recorder.recording.recording_id
        try:
            # What it kept since its last write is written now (unless a write is under way:
            # that writer goes on to it).
            stopped = reason is not None and recorder.lost is None
            if stopped and recorder.writing is None and recorder.buffer:
                self._start_writer(live, recorder)
            if recorder.writing is not None:  # its last write (and the rest, unless it fails)
                await asyncio.shield(recorder.writing)
            recorder.drop()  # written, unless the writer failed: then never written
            if live.closed_elsewhere:  # ended there (``interrupted``): nothing written again
                return
            if recorder.lost is None and reason is not None:

                def stopped_entries(ended: bool) -> list[Entry]:
                    if not ended:  # by another process (this one taken for dead), or erased
                        return []
                    details = {
                        "session": live.machine.session_id,
                        "reason": reason,
                        "frames": recorder.next_seq,
                        "size": recorder.size,
                    }
                    stopped = Entry(
                        "recording_stopped", live.org_id, "server", recording_id, details
                    )
                    return [stopped]

                try:
                    # Ended with its record, in one transaction: ended alone, it could be
                    # erased before the record was written (a slow or failing database), which
                    # then named the erased recording and its session after the erasure.
                    ended = await self.storage.end_recording(
                        recording_id, self.clock(), reason, self.witness(stopped_entries)
                    )
                except Exception as exc:
                    if live.closed_elsewhere:
                        return
                    # Not ended in storage (it would stay "running" there for good): the
                    # timer ends it ``unavailable`` (recorded ``recording_failed``) once
                    # storage answers.
                    self._failed_recordings[recording_id] = (
                        live.org_id,
                        "storage error",
                        self.clock(),
                    )
                    log.warning(
                        "recording %s not ended in storage (%s): ended once storage answers",
                        recording_id,
                        type(exc).__name__,
                    )
                    return
                if not ended:  # by another process (this one taken for dead), or erased
                    log.warning("recording %s was ended elsewhere: nothing recorded", recording_id)
                return
            if live.closed_elsewhere:
                return
            self._failed_recordings[recording_id] = (
                live.org_id,
                recorder.lost or "storage error",
                self.clock(),
            )
            try:
                await self._end_failed_recording(recording_id)
            except Exception as exc:  # the timer tries again
                log.warning(
                    "recording %s not ended in storage (%s): ended once storage answers",
                    recording_id,
                    type(exc).__name__,
                )
        except Exception:  # never raised into the session's tasks
            log.exception("recording %s not closed", recording_id)

    async def _recordings_closed(self, live: LiveSession) -> None:
        """Wait until every recording of ``live`` stopped here is ended in storage (its writes
        over); raises (StorageError) if one is not, the database away: the caller (the session's
        end in storage) is tried again, so that it never goes before its recordings'."""
        await self._recordings_stopped(live)
        for recording_id in live.recording_ids:
            await self._end_failed_recording(recording_id)

    @staticmethod
    async def _recordings_stopped(live: LiveSession) -> None:
        """Wait until the recording being started in ``live`` (if any) has started or failed
        to, and every recording of it stopped here has ended its writes and its end in storage
        (or failed to: :meth:`_recordings_closed` tries those again)."""
        while live.recording_start is not None or live.closing_recordings:
            waits: list[asyncio.Future[None]] = [*live.closing_recordings]
            if live.recording_start is not None:
                waits.append(live.recording_start)
            await asyncio.gather(*map(asyncio.shield, waits))

    async def _end_failed_recording(self, recording_id: str) -> None:
        """End ``unavailable`` (with its ``recording_failed`` record) a recording whose frames
        or end storage did not take, if it is still waiting for it; raises if storage fails
        (it waits again)."""
        entry = self._failed_recordings.pop(recording_id, None)  # one writer for each
        if entry is None:
            return
        org, why, at = entry

        def failed_entries(ended: bool) -> list[Entry]:
            if not ended:
                return []
            return [Entry("recording_failed", org, "server", recording_id, {"reason": why})]

        try:  # ended with its record, in one transaction (see _close_recording)
            ended = await self.storage.end_recording(
                recording_id, at, "unavailable", self.witness(failed_entries)
            )
        except Exception:
            self._failed_recordings.setdefault(recording_id, entry)
            raise
        if not ended:
            # Ended by another process that took this one for dead (``interrupted``, recorded
            # there), or erased since: nothing more is written about it, from here.
            log.warning("recording %s was ended elsewhere: nothing recorded", recording_id)

    async def _start_recording(self, live: LiveSession) -> bool:
        """Store the recording the customer allowed and keep its frames from now on; False if
        it was stopped while its start waited for storage (ended at once: nothing is kept).
        Raises if storage failed (not started)."""
        key_id = crypto.recording_key_id(live.machine.record_key)  # the key the customer used
        recording = new_recording(
            live.machine.record_id,
            self.clock(),
            org_id=live.org_id,
            session_id=live.machine.session_id,
            site_id=live.site_id,
            agent=live.machine.agent_username,
            key_id=key_id,
        )
        recorder = Recorder(
            recording,
            self.settings.max_recording_bytes + self.settings.recording_end_bytes,
            backlog=self._recording_backlog,
        )
        started = asyncio.get_running_loop().create_future()
        live.recording_start, live.stopped_while_starting = started, None
        try:
            await self.storage.add_recording(Grant.server(live.org_id, "recording"), recording)
            live.recording_ids.append(recording.recording_id)
            try:
                await self.record(
                    "recording_started",
                    actor="customer",
                    org=live.org_id,
                    subject=recording.recording_id,
                    session=live.machine.session_id,
                    agent=live.machine.agent_username,
                    key_id=key_id,
                )
            except Exception:
                # Stored, but not the record of the customer's yes: it never keeps a frame, and
                # the timer ends it ``unavailable`` (and records that) once storage answers.
                self._failed_recordings[recording.recording_id] = (
                    live.org_id,
                    "storage error",
                    self.clock(),
                )
                raise
        finally:
            stopped, live.stopped_while_starting = live.stopped_while_starting, None
            live.recording_start = None
            started.set_result(None)
        if stopped is not None or live.closed_elsewhere:
            # Stopped while its start waited for storage (the session ended, was handed over
            # or closed elsewhere): it keeps nothing and is ended now, before the session's end
            # in storage (which waited for this); its people were told it stopped.
            self._detach_recorder(live, recorder, stopped)
            return False
        live.recorder = recorder
        return True

    def _stop_recording(self, live: LiveSession, reason: str) -> None:
        """The running recording stops here (if one runs): no frame after this is kept, and it
        is ended ``reason`` in storage after its last write, by its own task."""
        if live.recorder is not None:
            self._detach_recorder(live, live.recorder, reason)
        elif live.recording_start is not None and live.stopped_while_starting is None:
            live.stopped_while_starting = reason  # applied once it has started

    def send_to_customer(self, live: LiveSession, message: ServerMessage) -> None:
        self.fanout.publish(customer_topic(live.machine.session_id), Frame(codec.encode(message)))

    async def apply(self, live: LiveSession, effects: Iterable[Effect]) -> None:
        """Carry out a state machine's effects, in order. If one fails (storage) on the way to
        the session's end, the rest of its ending is carried out all the same (and the error
        raised): the machine has ended, and a session left half-ended stayed live for good, in
        memory (counted against every limit) and in storage (its row never ended)."""
        session_id = live.machine.session_id
        effects = list(effects)
        for index, effect in enumerate(effects):
            try:
                await self._carry_out(live, effect)
            except BaseException:
                rest = effects[index + 1 :]
                if any(isinstance(later, EndSession) for later in rest):
                    for later in rest:  # their storage writes are kept and retried
                        with contextlib.suppress(Exception):
                            await self._carry_out(live, later)
                raise
        machine = live.machine
        if self.node and not machine.ended and machine.state != live.stored_state:
            live.stored_state = machine.state  # for supervisors' lists on other processes
            await self.storage.record_session_state(session_id, machine.state, machine.agent)

    async def _carry_out(self, live: LiveSession, effect: Effect) -> None:
        session_id = live.machine.session_id
        if isinstance(effect, ToCustomer):
            self.fanout.publish(customer_topic(session_id), Frame(codec.encode(effect.message)))
        elif isinstance(effect, ToAgents):
            self.fanout.publish(agents_topic(session_id), Frame(codec.encode(effect.message)))
        elif isinstance(effect, ToWatcher):
            self.fanout.publish(watcher_topic(session_id), Frame(codec.encode(effect.message)))
        elif isinstance(effect, Audit):
            await self._audit(live, effect)
        elif isinstance(effect, EndWatch):
            close = Frame(b"", close=(codec.CLOSE_NORMAL, f"watch ended: {effect.reason}"))
            self.fanout.publish(watcher_topic(session_id), close)
            await self.record_done(
                "watch_ended",
                actor=effect.watcher,
                org=live.org_id,
                subject=session_id,
                reason=effect.reason,
            )
        elif isinstance(effect, StartRecording):
            await self._start_recording(live)
        elif isinstance(effect, StopRecording):
            self._stop_recording(live, effect.reason)
        elif isinstance(effect, EndSession):
            if live.practice is not None and effect.reason == "agent_left":
                live.practice_steps.add("ended")
            await self._finish(live, effect.reason)
        elif isinstance(effect, SuspendSession):
            await self._suspend(live)

    async def _audit(self, live: LiveSession, effect: Audit) -> None:
        """Write a state machine's audit record (a practice session's step noted)."""
        practice = {}
        if live.practice is not None:
            practice = {"practice": live.practice}
            step = PRACTICE_STEP_OF.get(effect.action)
            if step:
                live.practice_steps.add(step)
        await self.record(
            effect.action,
            actor=self._actor(live, effect.actor),
            org=live.org_id,
            subject=live.machine.session_id,
            **dict(effect.details),
            **practice,
        )

    @staticmethod
    def _actor(live: LiveSession, actor: Actor) -> str:
        """The audit trail's name for a party of the session."""
        if actor == "agent":
            return live.machine.agent_username
        if actor == "watcher":
            return live.machine.watcher_username
        return "customer"

    async def _finish(self, live: LiveSession, reason: str) -> None:
        session_id = live.machine.session_id
        close = Frame(b"", close=(codec.CLOSE_NORMAL, f"session ended: {reason}"))
        self.fanout.publish(customer_topic(session_id), close)
        self.fanout.publish(agents_topic(session_id), close)
        # Live state goes first so nothing can use it while storage is written.
        if self._live.pop(session_id, None) is not None:
            self._release(session_id, live.org_id, live.client, live.site_id)
        if live.closed_elsewhere:
            return
        self._unfinished[session_id] = (live, reason)
        await self._close_in_storage(live, reason)

    async def _close_in_storage(self, live: LiveSession, reason: str) -> None:
        """An ended session's storage writes; repeated by :meth:`tick` until they all worked
        (never two at once for one session: the audit record is written once)."""
        session_id = live.machine.session_id
        if session_id in self._closing:
            return
        self._closing.add(session_id)
        try:
            self._stop_recording(live, "session_ended")  # stopped already unless it failed
            # Its recordings end in storage first: an ended session may be erased at once.
            await self._recordings_closed(live)
            await self.storage.delete_join_codes(session_id)
            await self.storage.record_session_end(
                session_id, self.clock(), reason, live.machine.agent
            )
            if live.practice is not None:
                if live.machine.handshakes_from_customer and live.machine.handshakes_from_agent:
                    live.practice_steps.add("encrypted")
                steps = [s for s in SERVER_STEPS if s in live.practice_steps]
                await self.storage.end_practice(session_id, steps, self.clock())
            fields: dict[str, Any] = {
                "actor": live.machine.agent_username,
                "org": live.org_id,
                "subject": session_id,
                "reason": reason,
                **({"practice": live.practice} if live.practice else {}),
            }
            # The whole close is tried again if any of it fails, this record too: a try whose
            # COMMIT landed while its caller was cancelled (or lost the answer) is noted under
            # the record's identity, and the retry's write of it is refused.
            live.end_write_id = live.end_write_id or crypto.new_token(self.entropy, 16)
            self._announce("session_ended", fields)
            with contextlib.suppress(BacklogLineWritten):  # on the trail already
                await self.audit.record(
                    self.clock(), "session_ended", write_id=live.end_write_id, **fields
                )
            self._unfinished.pop(session_id, None)
        finally:
            self._closing.discard(session_id)

    async def _retry_what_failed(self, outage: Exception | None = None) -> None:
        """:meth:`_write_what_failed`, raising its first error. Started after the timer raised
        ``outage``, and all written: the outage is over (:meth:`meet_deadlines`)."""
        failed = await self._write_what_failed()
        if failed is not None:
            raise failed
        if outage is not None and self._deadline_outage is outage:
            self._deadline_outage = None

    async def _write_what_failed(self) -> Exception | None:
        """Retry the storage writes that failed (database away); the first error, if any."""
        failed: Exception | None = None
        for session_id, at in tuple(self._abandoned.items()):
            try:
                await self.storage.delete_join_codes(session_id)
                await self.storage.record_session_end(session_id, at, "not_started", None)
            except Exception as exc:  # returned; tried again next time
                failed = failed or exc
            else:
                self._abandoned.pop(session_id, None)
        unwritten = await self._write_unrecorded()
        failed = failed or unwritten
        for recording_id in tuple(self._failed_recordings):
            try:
                await self._end_failed_recording(recording_id)
            except Exception as exc:  # returned; tried again next time
                failed = failed or exc
        for live, reason in tuple(self._unfinished.values()):
            try:
                await self._close_in_storage(live, reason)
            except Exception as exc:  # returned
                failed = failed or exc
        return failed

    async def _write_unrecorded(self) -> Exception | None:
        """Append the records kept while storage refused them, in order; the error that stopped
        it (tried again next time), if any. One writer at a time (another caller returns at
        once): the timer retries beside a recording's flush, which retries too, and two writers
        each appended the oldest record, then each dropped one, the second never written."""
        if self._writing_unrecorded.locked():
            return None
        async with self._writing_unrecorded:
            while self._unrecorded:
                at, action, fields = self._unrecorded.first()
                # Its identity (WRITE_ID, in ``fields``: given before its first try, which may
                # have landed) is noted with it, else (kept by an older Tandem) its line: the
                # file put back later, or copied to another server's data directory, cannot
                # write it again. The line is known once on the disk.
                line = await self._unrecorded.first_line()
                found: dict[str, Any] = {}
                if action == "session_not_handed_over":
                    try:
                        found = await self._withdraw_late_hand_over(fields)
                    except StorageError as exc:  # tried again next time, before the record
                        return exc
                try:
                    await self.audit.record(at, action, backlog_line=line, **fields, **found)
                except StorageError as exc:  # returned; tried again next time, in order
                    return exc
                except BacklogLineWritten:  # on the trail already: reported below
                    self._unrecorded.written_already()
                    continue
                except Exception as exc:  # the database's answer: it never takes this one
                    log.error("audit record refused: %s %s", action, type(exc).__name__)
                self._unrecorded.written()
        replayed = self._unrecorded.take_replayed()
        if replayed is not None:
            file_id, lines, count = replayed
            with contextlib.suppress(Exception):  # kept by record_done, written next time
                await self.record_done(
                    "audit_backlog_replayed",
                    actor="server",
                    org=DEFAULT_ORG,
                    file=file_id,
                    lines=lines,
                    count=count,
                )
        return None

    async def _withdraw_late_hand_over(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Before a stop's ``session_not_handed_over`` is written: on PostgreSQL the hand-over's
        COMMIT may have reached the database after the stop gave up waiting for its answer
        (:meth:`_cut`: both sides told the session ended), and the session is then stored
        resumable. Such a hand-over is withdrawn (the session ends ``server_shutdown``, as its
        sides were told), and ``session_hand_over_withdrawn`` recorded in the same transaction:
        the trail says what storage did, and a page that kept its resume token is refused.
        Nothing is done when the hand-over was not stored (crash recovery ends the session
        ``server_lost``). Written before the server serves, at its start: on one server nobody
        can resume the session first.

        In a cluster another process may have taken the hand-over up first (a side that missed
        its ``ended`` resumed there): it is left to that process, never withdrawn from under it
        (the row is gone: storage lets exactly one of the two win), since both sides may have
        missed ``ended`` and be live there; a side told it ended is away, and the session ends
        there by that side's window as for any side that does not come back. What the trail
        would claim is corrected instead: the fields returned (``taken_up_by``, the process)
        go into ``session_not_handed_over``, after that process's ``session_restored``."""
        session_id, org = str(fields.get("subject", "")), str(fields.get("org", DEFAULT_ORG))
        if not session_id:
            return {}

        def entries(withdrawn: bool) -> list[Entry]:
            if not withdrawn:
                return []
            details: dict[str, object] = {
                "reason": "stored_after_the_stop_gave_up",
                "ended": "server_shutdown",
            }
            return [Entry("session_hand_over_withdrawn", org, "server", session_id, details)]

        withdrawn = await deleted_with_evidence(
            lambda evidence: self.storage.withdraw_hand_over(session_id, self.clock(), evidence),
            entries,
            self.witness,
            self.record,
        )
        if withdrawn:
            log.warning(
                "session %s: its hand-over reached the database after the stop had given up on "
                "it (and told both sides it ended); withdrawn, the session ended server_shutdown",
                session_id,
            )
            return {}
        record = await self.storage.get_session(session_id)
        stopped = str(fields.get("process", ""))
        if (
            record is None
            or record.ended_at is not None
            or not stopped  # kept by an older version: not known
            or record.node in ("", stopped, self.node or self.process_id)
        ):
            return {}  # never stored (still the stopped process's), or ended since
        log.warning(
            "session %s: its hand-over reached the database after the stop had given up on it, "
            "and process %s took it up (a side that missed its ended resumed there) before it "
            "could be withdrawn; left to that process (a side told it ended is away there)",
            session_id,
            record.node,
        )
        return {"taken_up_by": record.node}

    async def tick(self) -> None:
        """:meth:`meet_deadlines` (and its work), :meth:`upkeep`, :meth:`recheck_due` (the server
        runs each in a supervised task of its own, ``deadlines``, ``upkeep``, ``rechecks``); the
        first error raised once all ran."""
        failed: Exception | None = None
        for step in (self.meet_deadlines, self._deadline_work_done, self.upkeep, self.recheck_due):
            try:
                await step()
            except Exception as exc:  # raised below
                failed = failed or exc
        if failed is not None:
            raise failed

    async def meet_deadlines(self) -> None:
        """Apply deadlines to every live session, flush recordings, and retry the storage writes
        that failed; run about once a second. Each session's work (its people told, then its
        storage writes) and the retries run in tasks of their own, one at a time for each, and
        the timer does not wait for them: the next tick meets the next deadlines whatever the
        database does. A task's error is raised by the next run (the supervisor logs it and runs
        this again). The timer's own storage work (:meth:`upkeep`) runs apart too."""
        now = self.clock()
        failed, self._deadline_failed = self._deadline_failed, None
        if failed is not None:
            self._deadline_outage = failed
        # Beside one another, and beside the timer: in turn, with the database frozen, the last
        # of N sessions ending at one tick was told after N waits of up to
        # database_timeout_seconds each; awaited by the timer, a session's end waiting for the
        # database held every later deadline (a code, an idle or maximum-length session) as long.
        if "" not in self._deadline_work:
            self._beside("", self._retry_what_failed(self._deadline_outage))
        for live in tuple(self._live.values()):
            session_id = live.machine.session_id
            if session_id in self._deadline_work:  # its earlier effects are still applied
                continue
            try:
                effects = live.machine.tick(now)
            except Exception as exc:  # raised below
                failed = failed or exc
                continue
            if effects:
                self._beside(session_id, self.apply(live, effects))
            elif live.recorder is not None and live.recorder.buffer:
                # Its writer runs apart: the timer does not wait for a frozen database.
                stopped = self._write_soon(live)
                if stopped is not None:
                    self._beside(session_id, stopped)
        if failed is not None:
            raise failed
        if self._deadline_outage is not None:
            # Nothing new failed, but what failed is not written yet (its retry is under way,
            # waiting for the database): still failing. A run that said "recovered" between
            # two retries read as no outage at all to a scrape of the failing gauge.
            raise StorageError(f"what failed is not written yet: {self._deadline_outage}")

    def _beside(self, key: str, work: Awaitable[None]) -> None:
        """Run ``work`` in a task of the timer's (``key``: a session's id, "" the retries; none
        of that key runs); its error is kept for the timer's next run."""

        async def run() -> None:
            await work

        task = asyncio.create_task(run())
        self._deadline_work[key] = task

        def done(task: asyncio.Task[None]) -> None:
            if self._deadline_work.get(key) is task:
                del self._deadline_work[key]
            if not task.cancelled() and isinstance(task.exception(), Exception):
                self._deadline_failed = self._deadline_failed or task.exception()  # type: ignore[assignment]

        task.add_done_callback(done)

    async def _deadline_work_done(self) -> None:
        """Wait for the timer's tasks under way (:meth:`tick`: tests, one step at a time)."""
        await asyncio.gather(*self._deadline_work.values(), return_exceptions=True)
        failed, self._deadline_failed = self._deadline_failed, None
        if failed is not None:
            raise failed

    async def upkeep(self) -> None:
        """The purges, the event counts and the refusal summaries; run about once a second. A
        failed write (a full disk, a locked or lost database) does not hold up the purges: each
        step is tried, side by side, and the first error raised once all were. The re-checks of
        open sockets run apart (:meth:`recheck_due`): a purge waiting for a frozen database
        held them (a revoked socket stayed open up to ``database_timeout_seconds`` more)."""
        now = self.clock()
        failed: Exception | None = None
        steps = (self._purge_due, self._count_due, self._summarise_refusals)
        for result in await asyncio.gather(*(step(now) for step in steps), return_exceptions=True):
            if isinstance(result, Exception):
                failed = failed or result
            elif isinstance(result, BaseException):  # a cancellation: the task stops
                raise result
        if failed is not None:
            raise failed

    async def _purge_due(self, now: float) -> None:
        """Expired rows and recordings past retention, each at its own interval (a purge that
        failed is tried again at its next)."""
        if now >= self._next_expired_purge:
            self._next_expired_purge = now + self.settings.purge_interval_seconds
            await self.storage.purge_expired(now, self.witness(_expired_entries))
            if not self.settings.database_url:  # SQLite: the server's own copy of the file
                await asyncio.to_thread(
                    expire_upgrade_copies,
                    self.settings.database_path,
                    now - self.settings.upgrade_copy_days * 86400,
                )
        if now >= self._next_purge:
            self._next_purge = now + self.settings.recording_purge_seconds
            await self.recordings.purge(now)

    async def vacuum_deleted(self) -> None:
        """PostgreSQL: vacuum the tables an erasure, a purge or a session's end deleted rows of
        (:meth:`~tandem.storage.sql.SQLStorage.vacuum_deleted`), so that what was erased leaves
        their pages now, not at autovacuum's time. A task of its own (``vacuum``): a long
        vacuum holds up no purge, re-check or deadline. A failure (an overrun of
        ``database_vacuum_timeout_seconds``, the database away) is logged and raised: the
        supervisor runs it again, the tables still due. One round (every table due) per
        ``database_vacuum_interval_seconds`` at most: a busy relay's session ends (join codes
        taken and deleted) would make one a second."""
        now = self.clock()
        if now < self._next_vacuum:  # at most a round per database_vacuum_interval_seconds
            return
        self._next_vacuum = now + self.settings.database_vacuum_interval_seconds
        try:
            await self.storage.vacuum_deleted()
        except StorageError as exc:
            log.warning("vacuum after deletions failed, tried again: %s", exc)
            raise

    async def recheck_due(self) -> None:
        """Re-check the sockets whose time has come (after an outage of the fan-out: all); run
        about once a second, in a task of its own (``rechecks``)."""
        now = self.clock()
        self._catch_up_after_an_outage()
        interval = self.settings.agent_reauth_seconds
        due = [seat for seat in self.signed_in_seats() if now >= seat.reauth_due]
        for seat in due:  # each socket on its own time: see first_reauth
            seat.reauth_due = now + interval
        await self._recheck_each(due)  # one that fails stays due (recheck)

    async def _recheck_each(self, seats: Iterable[AgentSeat | WatchSeat]) -> None:
        """:meth:`recheck` ``seats``, up to ``recheck_concurrency`` at once: one after another,
        each waiting for storage, the last of many sockets a revocation named was closed many
        reads late (a slow database). Each is tried; the first error is raised after."""
        waiting = iter(list(seats))
        failed: Exception | None = None

        async def rechecker() -> None:
            nonlocal failed
            for seat in waiting:  # shared: each seat is taken by one rechecker
                try:
                    await self.recheck(seat)
                except Exception as exc:  # raised below, once every seat was tried
                    failed = failed or exc

        await asyncio.gather(*(rechecker() for _ in range(self.settings.recheck_concurrency)))
        if failed is not None:
            raise failed

    async def _count_due(self, now: float) -> None:
        """Write the counts of anonymous events; purge those past retention."""
        await self._write_counts()
        if now >= self._next_count_purge:
            self._next_count_purge = now + self.settings.purge_interval_seconds
            await self.storage.purge_audit_counts(
                now - self.settings.anonymous_audit_retention_days * 86400
            )

    async def taken_for_dead(self) -> None:
        """Another process took this one for dead (it could not write its heartbeats for
        ``process_lost_seconds``: the database was away for it alone) and closed its sessions
        in storage: ended ``server_lost`` and recorded so, their join codes deleted. Those
        sessions end here too, each side told ``server_shutdown``, and nothing is written again:
        nobody stays in a session that storage, the audit trail and every other process say
        has ended (a waiting customer's code joins no more). A session storage still holds live
        (begun since) goes on."""
        for live in tuple(self._live.values()):
            stored = await self.storage.get_session(live.machine.session_id)
            # A session whose row is gone was ended there and erased since (``tandem subject
            # erase``): it ends here too (it went on relaying, and its end was recorded later,
            # linking the erased customer again).
            if live.machine.ended or (stored is not None and stored.ended_at is None):
                continue
            live.closed_elsewhere = True
            for recording_id in live.recording_ids:  # ended there: never ended from here
                self._failed_recordings.pop(recording_id, None)
            if live.recorder is not None:  # closed ``interrupted`` in storage, with what
                live.recorder.drop()  # was flushed
            live.recorder = None
            log.warning("session closed by another process: ending it here")
            await self.apply(live, live.machine.shut_down())

    async def shutdown(self, within: float | None = None) -> None:
        """Hand every live session over to the next process (server stopping: a restart), then
        wait (up to ``close_timeout_seconds``) until their sockets have sent the last frames and
        gone; all of it within ``within`` seconds (the server's graceful stop gives its share of
        ``shutdown_timeout_seconds``; None: what is left of :meth:`stop_by`'s deadline).

        Each session is stored for the next process (:meth:`_suspend`: resume tokens as
        digests only), ``session_suspended`` audited, and both sides are told
        :data:`RECONNECT` and closed 1012: they resume on the next process within the resume
        window (:meth:`_restore`). A watching supervisor's watch ends; a running recording is
        flushed and closed ``server_restart`` (docs/recordings.md). Practice sessions, and any
        session whose hand-over cannot be stored, end ``server_shutdown`` as before (each side
        told :data:`RESTARTING`, then ``ended``). The sessions are handed over side by side:
        one after another, each waiting for a frozen database (``database_timeout_seconds``
        per statement), the stop ran for minutes. One whose hand-over or end is not stored in
        time is cut (:meth:`_cut`): both sides told it ended, the loss logged and audited
        through the audit backlog. An agent's socket that is in no session is closed 1012
        after :data:`RESTARTING`. Called by the server's graceful stop before uvicorn closes
        any socket, and again (with nothing left to do) when the hub is left."""
        started = asyncio.get_running_loop().time()
        budget = self.stop_left() if within is None else within
        notice = codec.encode(RESTARTING)
        for seat in tuple(self._seats):
            if isinstance(seat, AgentSeat) and seat.live is None:  # no session's topic reaches it
                seat.kick(codec.CLOSE_SERVICE_RESTART, "server restarting", notice)
        # With each, its recording as the stop began (the hand-over lets go of it first).
        handing = {
            asyncio.create_task(self._hand_over(live, notice)): (live, live.recorder)
            for live in tuple(self._live.values())
        }
        failed: BaseException | None = None
        if handing:
            # Most of the budget for storing them; the rest for the sockets to close.
            share = self.settings.shutdown_hand_over_share
            seconds = None if budget is None else budget * share
            done, late = await self._wait_unless_hurried(set(handing), seconds, share)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    failed = failed or task.exception()
            await cancel_within(late, 0.0)  # their storage waits end; they are not awaited

            def handed_over(live: LiveSession) -> bool:  # stored, both sides told (before a cut)
                return (
                    live.machine.suspended and self._live.get(live.machine.session_id) is not live
                )

            handed = sum(1 for live, _ in handing.values() if handed_over(live))
            cut = sum(1 for task in late if not handed_over(handing[task][0]))
            for task in late:
                await self._cut(*handing[task])
            ended = len(handing) - handed - cut
            log.log(
                logging.INFO if handed == len(handing) else logging.WARNING,
                "stopping: %d session(s) handed over to the next process, %d ended for both "
                "sides (server_shutdown), %d cut (storage not answering in time)",
                handed,
                ended,
                cut,
            )

        def left() -> float | None:
            stop = self.stop_left()  # shortened by a hurry
            if budget is None:
                return stop
            mine = max(budget - (asyncio.get_running_loop().time() - started), 0.0)
            return mine if stop is None else min(mine, stop)

        waiting, remaining = self.settings.close_timeout_seconds, left()
        if remaining is not None:
            waiting = min(waiting, remaining)
        if not self._hurried.is_set():  # hurried: every socket was told; none is waited for
            closed = asyncio.create_task(self._seats_empty.wait())
            await self._wait_unless_hurried({closed}, waiting, 0.0)
            closed.cancel()
        if left() != 0.0:
            try:
                failed = await within_seconds(self._write_what_failed(), left()) or failed
            except TimeoutError:
                log.error("stopping: storage did not answer in time; failed writes not retried")
        if failed is not None:
            raise failed

    async def _hand_over(self, live: LiveSession, notice: str) -> None:
        """:meth:`shutdown`'s work for one session: handed over, or ended ``server_shutdown``."""
        session_id = live.machine.session_id
        if live.practice is None:
            self.fanout.publish(watcher_topic(session_id), Frame(notice))
            await self.apply(live, live.machine.suspend())
        if not live.machine.ended:  # a practice, or its hand-over failed
            for topic in (customer_topic, agents_topic, watcher_topic):
                self.fanout.publish(topic(session_id), Frame(notice))
            await self.apply(live, live.machine.shut_down())

    async def _cut(self, live: LiveSession, recorder: Recorder | None) -> None:
        """A session whose hand-over (or end) storage did not take within the stop's time: both
        sides are told it ended ``server_shutdown`` and closed, at once. Storage still holds it
        live, with this process: the next start on this host and port, or any other process
        once this one's heartbeat is old, ends it ``server_lost`` (tandem.processes), and its
        recording ``interrupted``, with the frames stored so far. Logged, and audited
        (``session_not_handed_over``) through the audit backlog, which the next process on this
        data directory writes. ``recorder``: its recording's, as the stop began."""
        machine = live.machine
        session_id = machine.session_id
        told = self._live.get(session_id) is not live  # ended, or handed over (then stored)
        # Handed over (stored, both sides told to reconnect): only its record was late. Not
        # ``machine.ended``, which a hand-over sets too: every such session was reported cut,
        # ``session_not_handed_over`` kept, and its hand-over withdrawn at the next start.
        if told and machine.suspended:
            log.warning(
                "stopping: session %s handed over; its session_suspended record kept for the "
                "next start (storage not answering in time)",
                session_id,
            )
            return
        # A running recording's frames in memory are dropped (a write under way may still be
        # stored): crash recovery ends it ``interrupted`` with what storage took.
        recording, dropped = "", 0
        recorder = live.recorder or recorder
        if recorder is not None:
            recording, dropped = recorder.recording.recording_id, recorder.buffered
            recorder.drop()
            live.recorder = None
        if not told:
            self._live.pop(session_id)
            self._release(session_id, live.org_id, live.client, live.site_id)
            ended = Frame(codec.encode(Ended(reason="server_shutdown")))
            close = Frame(b"", close=(codec.CLOSE_NORMAL, "session ended: server_shutdown"))
            restarting = Frame(codec.encode(RESTARTING))
            for topic in (customer_topic(session_id), agents_topic(session_id)):
                self.fanout.publish(topic, restarting)
                self.fanout.publish(topic, ended)
                self.fanout.publish(topic, close)
            self.fanout.publish(watcher_topic(session_id), restarting)
            watch_close = Frame(b"", close=(codec.CLOSE_NORMAL, "watch ended: server_shutdown"))
            self.fanout.publish(watcher_topic(session_id), watch_close)
        log.error(
            "stopping: session %s could not be handed over nor its end stored in time (storage "
            "not answering); its sides were told it ended, and storage ends it server_lost "
            "once a process takes this one's work up%s",
            session_id,
            f"; its recording's {dropped} bytes held in memory were dropped" if recording else "",
        )
        fields: dict[str, Any] = {
            "actor": "server",
            "org": live.org_id,
            "subject": session_id,
            "reason": "storage_unavailable",
            "state": machine.state,
            # Which process gave up on it: another one holding it since took the hand-over up
            # (:meth:`_withdraw_late_hand_over`).
            "process": self.node or self.process_id,
        }
        if recording:
            fields.update(recording=recording, recording_bytes_dropped=dropped)
        self._announce("session_not_handed_over", fields)
        await self._unrecorded.hold(
            self.clock(), "session_not_handed_over", self._identified(fields)
        )

    async def _wait_unless_hurried(
        self, tasks: set[TaskT], seconds: float | None, share: float
    ) -> tuple[set[TaskT], set[TaskT]]:
        """``asyncio.wait(tasks, timeout=seconds)``, the timeout cut to ``share`` of what is left
        of the stop's deadline from the moment the stop is hurried (:meth:`hurry`), however
        long it had left: (done, not done)."""
        loop = asyncio.get_running_loop()
        end = None if seconds is None else loop.time() + seconds
        hurried = asyncio.create_task(self._hurried.wait())
        pending = set(tasks)
        try:
            while pending:
                limit = None if end is None else max(end - loop.time(), 0.0)
                if hurried.done():
                    cut = (self.stop_left() or 0.0) * share
                    limit = cut if limit is None else min(limit, cut)
                    if limit == 0.0:
                        break
                    _, pending = await asyncio.wait(pending, timeout=limit)
                    break
                if limit == 0.0:
                    break
                watched: set[asyncio.Task[Any]] = {*pending, hurried}
                woken, _ = await asyncio.wait(
                    watched, timeout=limit, return_when=asyncio.FIRST_COMPLETED
                )
                pending = {task for task in pending if task not in woken}
                if not woken:  # the timeout
                    break
        finally:
            hurried.cancel()
        return set(tasks) - pending, pending

    def hurry(self, seconds: float) -> None:
        """Shorten the stop (a second Ctrl-C, tandem.server.websocket_protocol): it must be
        over within ``seconds`` from now, and its waits for sockets to close end at once. Every
        socket is still told, a hand-over not stored in time still cut (its sides told it
        ended, its record kept in the audit backlog), and what the stop writes after the
        sockets is still written, or kept, within what is left."""
        self.stop_by(time.monotonic() + seconds)
        self._hurried.set()

    def stop_by(self, deadline: float) -> None:
        """The stop must be over by ``deadline`` (time.monotonic()): every storage wait of
        :meth:`shutdown` and of leaving the hub is bounded by what is left of it."""
        self._stop_deadline = (
            deadline if self._stop_deadline is None else min(deadline, self._stop_deadline)
        )

    def stop_left(self) -> float | None:
        """Seconds left of the stop's deadline (:meth:`stop_by`), never below 0; None without
        one."""
        if self._stop_deadline is None:
            return None
        return max(self._stop_deadline - time.monotonic(), 0.0)

    async def within_stop(self, work: Awaitable[Any], what: str) -> None:
        """``work`` (a storage call of the stop), given what is left of the stop's deadline;
        past it, or if it fails, the loss is logged (``what`` names it) and the stop goes on."""
        try:
            await within_seconds(work, self.stop_left())
        except TimeoutError:
            log.error("stopping: %s: storage did not answer in time; not done", what)
        except Exception as exc:
            log.error("stopping: %s failed: %s", what, exc)

    async def _suspend(self, live: LiveSession) -> None:
        """Store what the next process needs to resume ``live`` (:class:`SuspendedSession`:
        resume tokens as digests, deadlines as absolute times), then tell both sides to
        reconnect (1012). If storage fails, the session ends ``server_shutdown`` instead."""
        machine = live.machine
        session_id = machine.session_id
        # Its recording (closed ``server_restart``) ends in storage before the hand-over: the
        # next process finds it ended. One whose end storage did not take is not handed over
        # with it: a handed-over session counts as live, so crash recovery left its recording
        # running (listed so, not erasable) while nothing wrote to it, on every process that
        # resumed the session. The session ends instead (here, or by the next start's sweep).
        await self._recordings_stopped(live)
        try:
            for recording_id in live.recording_ids:
                await self._end_failed_recording(recording_id)
        except Exception as exc:
            log.warning(
                "session %s not handed over: its recording's end is not stored (%s); it ends",
                session_id,
                type(exc).__name__,
            )
            machine.suspended = False
            return
        now = self.clock()
        window = self.settings.resume_grace_seconds
        if machine.agent is not None and live.agent_resume_digest:
            window = max(window, self.settings.agent_resume_seconds)
        suspended = SuspendedSession(
            session_id=session_id,
            org_id=live.org_id,
            site_id=live.site_id,
            state=machine.state,
            agent=machine.agent,
            agent_username=machine.agent_username,
            agent_login=live.agent_login,
            resume_digest=live.resume_digest,
            agent_resume_digest=live.agent_resume_digest,
            created_at=machine.created_at,
            code_expires_at=machine.code_expires_at,
            last_activity=machine.last_activity,
            suspended_at=now,
            expires_at=now + window,
            handshakes_from_customer=machine.handshakes_from_customer,
            handshakes_from_agent=machine.handshakes_from_agent,
            team_policies=json.dumps(live.team_policies),
        )
        try:
            await self.storage.suspend_session(suspended)
        except StorageError as exc:  # expected when the database is away: one line, no trace
            log.error(
                "stopping: session %s could not be handed over (%s); it ends server_shutdown "
                "for both sides",
                session_id,
                exc,
            )
            machine.suspended = False
            return
        except Exception:
            log.exception("session %s could not be handed over; it ends", session_id)
            machine.suspended = False
            return
        # Live state goes first: the sockets' going must not touch the session any more.
        if self._live.pop(session_id, None) is not None:
            self._release(session_id, live.org_id, live.client, live.site_id)
        live.customer_seat = live.agent_seat = None
        notice = Frame(codec.encode(RECONNECT))
        close = Frame(b"", close=(codec.CLOSE_SERVICE_RESTART, RECONNECT_CLOSE))
        for topic in (live.customer_topic, live.agents_topic):
            self.fanout.publish(topic, notice)
            self.fanout.publish(topic, close)
        metrics.SESSIONS_HANDED_OVER.labels(outcome="suspended").inc()
        # Done: its record is kept for the next start if storage does not take it in time (a
        # stop cut while it is written included), never lost with the process.
        with contextlib.suppress(StorageError):
            await self.record_done(
                "session_suspended",
                actor="server",
                org=live.org_id,
                subject=session_id,
                reason="server_restart",
                state=machine.state,
                resume_by=round(suspended.expires_at),
            )

    async def _restore(
        self, session_id: str, proof: Callable[[SuspendedSession], bool]
    ) -> LiveSession | None:
        """Take up a session a stopping server handed over (:meth:`_suspend`), if one is waiting
        for ``session_id``, its window is still open and ``proof`` (the side's resume token,
        checked against the stored digest) holds; None otherwise. Whichever side comes first
        restores it, on whichever process: the other side is away until it comes back within
        its own window (``resume_grace_seconds``, ``agent_resume_seconds``, from the stop).
        Nothing in the stored row can add to what the session allowed: its consent, its agent
        (account and sign-in), its key-exchange counts and deadlines are as they were, and a
        recording is not running."""
        live = self._live.get(session_id)
        if live is not None:
            return live
        # Both sides come back at about the same moment after a restart: without this, one
        # could look for the stored row just after the other's request took it, and before
        # that request made the session live, and be told "session not found" (seen in CI).
        lock = self._restoring.get(session_id)
        if lock is None:
            lock = self._restoring[session_id] = asyncio.Lock()
        async with lock:
            return await self._restore_one(session_id, proof)

    async def _restore_one(
        self, session_id: str, proof: Callable[[SuspendedSession], bool]
    ) -> LiveSession | None:
        live = self._live.get(session_id)
        if live is not None:  # the other side's request took it up meanwhile
            return live
        stored = await self.storage.get_suspended(session_id)
        if stored is None or not proof(stored):
            return None
        now = self.clock()
        row = await self.storage.take_suspended(session_id, self.node or self.process_id, now)
        if row is None or session_id in self._live:  # another process (or request) took it
            return self._live.get(session_id)
        joined = row.state in ("pending_consent", "sharing")
        machine = Session(
            session_id=session_id,
            code="",  # never stored: the customer's page has it
            code_expires_at=row.code_expires_at,
            resume_grace_seconds=self.settings.resume_grace_seconds,
            recording_end_seconds=self.settings.recording_end_seconds,
            created_at=row.created_at,
            idle_timeout_seconds=self.settings.idle_timeout_seconds,
            max_duration_seconds=self.settings.max_session_seconds,
            last_activity=row.last_activity,
            state=row.state,  # type: ignore[arg-type]  # one of the three live states
            agent=row.agent,
            agent_username=row.agent_username,
            customer_away_since=row.suspended_at,
            agent_away_since=row.suspended_at if joined else None,
            handshakes_from_customer=row.handshakes_from_customer,
            handshakes_from_agent=row.handshakes_from_agent,
            agent_resume_seconds=self.settings.agent_resume_seconds,
        )
        live = LiveSession(
            machine=machine,
            resume_digest=row.resume_digest,
            org_id=row.org_id,
            site_id=row.site_id,
            team_policies=json.loads(row.team_policies),
            stored_state=row.state,
            agent_resume_digest=row.agent_resume_digest,
            agent_login=row.agent_login,
        )
        self._live_by_org[row.org_id] = self._live_by_org.get(row.org_id, 0) + 1
        if live.waiting:
            self._waiting_by_site.setdefault(row.site_id, set()).add(session_id)
        self._live[session_id] = live
        metrics.SESSIONS_HANDED_OVER.labels(outcome="restored").inc()
        await self.record(
            "session_restored",
            actor="server",
            org=row.org_id,
            subject=session_id,
            reason="server_restart",
            state=row.state,
        )
        return live

    def link_changed(self, reconnecting: bool) -> None:
        """This process's Redis stopped (or started again) answering: the sockets of this
        process whose session has a side on another process (through a tunnel) are told
        ``link`` ``reconnecting`` (or ``restored``); sessions wholly here are not concerned."""
        notice = Frame(
            codec.encode(LinkStatus(state="reconnecting" if reconnecting else "restored"))
        )
        topics: set[str] = set()
        for seat in tuple(self._seats):
            live = getattr(seat, "live", None)
            if not seat.tunnelled or live is None or live.machine.ended:
                continue
            session_id = live.machine.session_id
            if isinstance(seat, CustomerSeat):
                topics.update((agents_topic(session_id), watcher_topic(session_id)))
            else:
                topics.add(customer_topic(session_id))
        for topic in topics:
            self.fanout.publish(topic, notice)

    def session_states(self) -> list[str]:
        """The state of each live session (for the metrics)."""
        return [live.machine.state for live in tuple(self._live.values()) if live.practice is None]


# The event tables: what each message on a socket does, and the action (tandem.access) an agent
# socket's message needs. Every message type has exactly one row; tests/test_hub_events.py and
# tests/server/test_authorisation_matrix.py read them.

AGENT_SOCKET_ACTION: Action = "session.join"
"""What opening the agent socket needs; each message then needs its own (AGENT_EVENTS)."""
WATCH_ACTION: Action = "session.watch"

PRACTICE_STEP_OF = {
    "agent_joined": "code",
    "consent_given": "consent",
    "control_granted": "control",
    "page_paused": "paused",
}
"""Audit actions of a practice session and the exercise step each shows (tandem.training)."""


async def _join(seat: AgentSeat, message: Join) -> Outcome:
    """A code the customer read out. Wrong codes are throttled per account, address and
    organisation (audited, with an alert when the organisation's count trips; counts decay and
    a right code does not clear them), and too many on one socket close it (4429)."""
    if seat.live is not None:
        raise ProtocolError(codec.CLOSE_MALFORMED, "already in a session")
    hub, agent = seat.hub, seat.principal
    # The account's own wait refuses it; its address's and organisation's only if it failed
    # itself (tandem.lockout): an honest agent is not refused for someone else's guesses.
    wait = await hub.join_backoff.wait(hub.clock(), *seat.join_keys, seat.org_key)
    if wait > 0:
        return Refused(
            ErrorNotice(
                code="rate_limited",
                message=f"Too many wrong codes. Try again in {math.ceil(wait)} s.",
            )
        )
    try:
        candidate = await hub.session_for_code(message.code, agent)
        notice = INVALID_CODE
    except HeldElsewhere as moved:  # the owner takes the code and the socket
        return Elsewhere(moved.node)
    except TrainingRequiredError as exc:  # the code stays valid for a trained colleague
        # Within the account's refusal budget: the socket stays open and the code valid, so
        # an account could loop on it and flood the trail.
        await hub.refused("join_refused_untrained", agent, needs=exc.need)
        return Refused(ErrorNotice(code="training_required", message=f"Not allowed: {exc}."))
    except ForbiddenError as exc:
        candidate = None
        notice = ErrorNotice(code="not_your_team", message=f"Not allowed: {exc}.")
    if candidate is None:
        org_backoff = hub.join_org_backoff
        await hub.join_backoff.failed(hub.clock(), *seat.join_keys)
        org_was_free = await org_backoff.retry_after(hub.clock(), seat.org_key) == 0
        await org_backoff.failed(hub.clock(), seat.org_key)
        seat.failures += 1
        await hub.record(
            "join_code_rejected",
            actor=agent.username,
            org=agent.org,
            attempts=seat.failures,
            reason=notice.code,
        )
        if org_was_free and await org_backoff.retry_after(hub.clock(), seat.org_key):
            # Many wrong codes across the organisation: someone may be guessing.
            await hub.record("join_code_alert", actor=agent.username, org=agent.org)
        if seat.failures >= hub.settings.max_join_attempts_per_socket:
            await hub.record("join_code_lockout", actor=agent.username, org=agent.org)
            raise ProtocolError(4429, f"{CLOSE_REASON_TOO_MANY_CODES}: wait and sign in again")
        return Refused(notice)
    live, site = candidate  # a right code clears nothing: counts decay (tandem.lockout)
    await hub.agent_joins(seat, live, site, message.code)
    return Joined(seat)


async def _rejoin(seat: AgentSeat, message: Rejoin) -> Outcome:
    """The agent's console reloaded, or its network dropped: the same session again, within
    ``agent_resume_seconds`` (issue 13, fault 6)."""
    if seat.live is not None:
        raise ProtocolError(codec.CLOSE_MALFORMED, "already in a session")
    hub = seat.hub
    owner = await hub.owner_elsewhere(message.session_id)
    if owner:
        return Elsewhere(owner)
    try:
        await hub.agent_rejoins(seat, message)
    except HeldElsewhere as moved:  # taken up by another process after a restart
        return Elsewhere(moved.node)
    except ProtocolError as exc:
        if exc.close_code == codec.CLOSE_NOT_FOUND:
            # Over, never there, or not this sign-in's (a resume token stolen, a supervisor
            # probing ids): evidence, as a watch of a session that is gone is.
            gone = NotFoundError(str(exc))
            await hub._refused(seat.principal, "session.join", message, None, gone)
        raise
    except TrainingRequiredError as exc:  # the session waits: acknowledged, the console rejoins
        await hub.refused("join_refused_untrained", seat.principal, needs=exc.need)
        return Refused(ErrorNotice(code="training_required", message=f"Not allowed: {exc}."))
    except ForbiddenError as exc:
        await hub._refused(seat.principal, "session.join", message, None, exc)
        raise ProtocolError(codec.CLOSE_FORBIDDEN, str(exc)) from None
    return Joined(seat)


async def _watch(seat: AgentSeat, message: Watch) -> Outcome:
    """A supervisor asks to watch a live session (the customer is asked)."""
    if seat.live is not None:
        raise ProtocolError(codec.CLOSE_MALFORMED, "already in a session")
    hub, supervisor = seat.hub, seat.principal
    try:
        live = await hub.session_to_watch(message.session_id, supervisor)
    except HeldElsewhere as moved:
        return Elsewhere(moved.node)
    except NotFoundError:
        # Evidence in the asker's organisation, one answer and one record whether the session
        # is another organisation's, over or never was (authorize's own "not found" for another
        # organisation's would otherwise read differently in the trail).
        gone = NotFoundError("session not found")
        await hub._refused(supervisor, WATCH_ACTION, message, None, gone)
        raise ProtocolError(codec.CLOSE_NOT_FOUND, str(gone)) from None
    except TrainingRequiredError as exc:  # within the account's refusal budget, as a join's
        await hub.refused("watch_refused_untrained", supervisor, needs=exc.need)
        return Refused(ErrorNotice(code="training_required", message=f"Not allowed: {exc}."))
    except ForbiddenError as exc:
        await hub._refused(supervisor, WATCH_ACTION, message, None, exc)
        raise ProtocolError(codec.CLOSE_FORBIDDEN, str(exc)) from None
    machine = live.machine
    subscription = hub.fanout.subscribe(
        watcher_topic(machine.session_id), hub.settings.socket_queue_bytes
    )
    before = machine.snapshot()
    try:
        request, *effects = machine.watcher_asks(supervisor.display_name, supervisor.username)
    except ProtocolError:
        subscription.close()
        raise
    after = machine.snapshot()
    try:
        assert isinstance(request, Audit)  # watch_requested, before anyone is told
        await hub._audit(live, request)
    except BaseException:
        # No watch without its record (the database failed): the session goes back to nobody
        # asking, or it stayed "watched" by nobody, and no supervisor could ever ask again.
        machine.undo(before, after)
        subscription.close()
        raise
    watch = WatchSeat(hub, live, supervisor, subscription, seat.login)
    await hub.apply(live, effects)
    return Watching(watch)


async def _leave(seat: AgentSeat, message: Leave) -> None:
    live = seat.in_session()
    await seat.hub.apply(live, live.machine.agent_leaves(seat.hub.clock()))


async def _agent_handshake(seat: AgentSeat, message: Handshake) -> None:
    live = seat.in_session()
    await seat.hub.apply(live, live.machine.handshake_from_agent(message.data))


async def _record(seat: AgentSeat, message: Record) -> None:
    """Ask to record. Refused for the site's team (audited): the agent is told, nothing more."""
    live, hub = seat.in_session(), seat.hub
    try:
        await hub.request_recording(live, seat.principal)
    except ForbiddenError as exc:
        await hub._refused(seat.principal, "session.record", message, live, exc)
        # The console says a code in its own words (never the server's): training's own code
        # sends the agent to the policy, where "forbidden" sent them to an admin.
        code = "training_required" if isinstance(exc, TrainingRequiredError) else "forbidden"
        notice = ErrorNotice(code=code, message=f"Not allowed: {exc}.")
        hub.fanout.publish(agents_topic(live.machine.session_id), Frame(codec.encode(notice)))


async def _agent_record_stop(seat: AgentSeat, message: RecordStop) -> None:
    live = seat.in_session()
    await seat.hub.apply(live, live.machine.record_stop("stopped_by_agent", seat.hub.clock()))


async def _agent_abort(seat: AgentSeat, message: Abort) -> None:
    live = seat.in_session()
    await seat.hub.apply(live, live.machine.key_mismatch("agent"))


REAUTHORISED = (Join, Watch, Record, Rejoin)
"""Messages before which the sign-in and the account are checked again (not only the role)."""

AgentEvent = Callable[[AgentSeat, Any], Awaitable[Outcome | None]]
AGENT_EVENTS: Mapping[type[AgentMessage], tuple[Action, AgentEvent]] = {
    Join: ("session.join", _join),
    Watch: (WATCH_ACTION, _watch),
    Leave: ("session.join", _leave),
    Handshake: ("session.join", _agent_handshake),
    Abort: ("session.join", _agent_abort),
    Record: ("session.record", _record),
    RecordStop: ("session.join", _agent_record_stop),
    Rejoin: ("session.join", _rejoin),
}
"""Each agent-socket message: the action it needs, and what it does."""


async def _watcher_handshake(seat: WatchSeat, message: Handshake) -> None:
    await seat.hub.apply(seat.live, seat.live.machine.handshake_from_watcher(message.data))


async def _watcher_abort(seat: WatchSeat, message: Abort) -> None:
    await seat.hub.apply(seat.live, seat.live.machine.watch_mismatch())


async def _watcher_leave(seat: WatchSeat, message: Leave) -> None:
    if seat.watching:
        await seat.hub.apply(seat.live, seat.live.machine.watcher_leaves())


async def _already_watching(seat: WatchSeat, message: object) -> None:
    raise ProtocolError(codec.CLOSE_MALFORMED, "already watching a session")


WatcherEvent = Callable[[WatchSeat, Any], Awaitable[None]]
WATCHER_EVENTS: Mapping[type[AgentMessage], tuple[Action, WatcherEvent]] = {
    Handshake: (WATCH_ACTION, _watcher_handshake),
    Abort: (WATCH_ACTION, _watcher_abort),
    Leave: (WATCH_ACTION, _watcher_leave),
}
"""A watching supervisor's messages; any other closes its socket (4400)."""


def _customer_event(
    event: Callable[[Session, Any], list[Effect]],
) -> Callable[[CustomerSeat, Any], Awaitable[None]]:
    """An event that is one state machine call: apply its effects."""

    async def handle(seat: CustomerSeat, message: Any) -> None:
        await seat.hub.apply(seat.live, event(seat.live.machine, message))

    return handle


def _customer_answer(
    event: Callable[[Session, Any], list[Effect]],
) -> Callable[[CustomerSeat, Any], Awaitable[None]]:
    """A customer's answer whose audit record comes first (consent to share, to be watched):
    unless that record is written, the answer is not taken. The session goes back to where it
    was and the error is raised (the customer's socket closes 1013; once it resumes, it is asked
    again): never sharing, nor watching, without the record of the customer's yes."""

    async def handle(seat: CustomerSeat, message: Any) -> None:
        live = seat.live
        await seat.hub.apply_recorded(live, lambda: event(live.machine, message))

    return handle


async def _record_consent(seat: CustomerSeat, message: RecordConsent) -> None:
    """The customer's answer to a recording request. A recording that cannot start (its row or
    the record of the customer's yes not written) does not: both sides are told it is
    ``unavailable``, and sharing goes on, as when a recording's write fails later on."""
    live, hub = seat.live, seat.hub
    before = live.machine.snapshot()
    effects = live.machine.record_consent(message.granted)
    after = live.machine.snapshot()
    if effects and isinstance(effects[0], StartRecording):
        try:
            started = await hub._start_recording(live)
        except Exception as exc:
            live.machine.undo(before, after)  # asked, not recording
            log.warning("recording not started: %s", type(exc).__name__)
            if isinstance(exc, StorageError):
                metrics.STORAGE_ERRORS.labels(where="recording").inc()
            await hub.apply(live, live.machine.record_stop("unavailable"))
            return
        if not started:  # stopped meanwhile, both sides told: never said to be on
            return
        effects = effects[1:]
    await hub.apply(live, effects)


async def _first_only(seat: CustomerSeat, message: object) -> None:
    raise ProtocolError(
        codec.CLOSE_MALFORMED,
        f"{type(message).__name__.lower()} is only allowed as the first message",
    )


CustomerEvent = Callable[[CustomerSeat, Any], Awaitable[None]]
CUSTOMER_EVENTS: Mapping[type[CustomerMessage], CustomerEvent] = {
    Create: _first_only,
    Resume: _first_only,
    Consent: _customer_answer(lambda machine, m: machine.consent(m.granted)),
    Stop: _customer_event(lambda machine, m: machine.customer_stops()),
    Handshake: _customer_event(lambda machine, m: machine.handshake_from_customer(m.data)),
    Abort: _customer_event(lambda machine, m: machine.key_mismatch("customer")),
    WatchConsent: _customer_answer(lambda machine, m: machine.watch_consent(m.granted)),
    WatchHandshake: _customer_event(
        lambda machine, m: machine.watch_handshake_from_customer(m.data)
    ),
    WatchAbort: _customer_event(lambda machine, m: machine.watch_mismatch()),
    RecordConsent: _record_consent,
    RecordStop: _customer_event(lambda machine, m: machine.record_stop("stopped_by_customer")),
    Report: _customer_event(lambda machine, m: machine.customer_reports(m.event)),
}
"""Each customer-socket message and what it does (the customer is not a principal: its page's
origin and the session's secrets are what let it act)."""
