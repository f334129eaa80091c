"""The life of one co-browsing session as a pure state machine: no I/O, no clock of its own.

Adapters feed it what happened (with the current time where it matters) and carry out the
effects it returns, in order. Anything a peer may not do in the current state raises
:class:`~tandem.exceptions.ProtocolError`, which the adapter turns into a close code.

States: ``waiting`` → ``pending_consent`` → ``sharing`` → ``ended``. Nothing about the page may
travel before ``sharing``: :meth:`Session.check_customer_payload` enforces it.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Literal

from tandem.exceptions import ProtocolError
from tandem.protocol.codec import CLOSE_MALFORMED
from tandem.protocol.messages import (
    AgentJoined,
    ConsentNotice,
    Ended,
    EndReason,
    HandshakeRelay,
    Joined,
    PeerStatus,
    RecordingReason,
    RecordingStatus,
    RecordRequest,
    Resumed,
    ServerMessage,
    WatcherJoined,
    WatcherLeft,
    Watching,
    WatchRelay,
    WatchRequest,
)

State = Literal["waiting", "pending_consent", "sharing", "ended"]
MAX_HANDSHAKES_PER_SIDE = 2
"""SPAKE2 needs two messages from the customer (share, confirmation) and one from the agent."""
WATCHER_COMMAND_KIND = b"\x07"
"""The first byte of the only frames a watching supervisor sends the customer: its freshness
challenges, sealed under its own pairwise key (docs/protocol.md, "Freshness"). The server cannot
read them; it checks the kind and the size so that a supervisor sends nothing else."""
MAX_WATCHER_FRAME_BYTES = 512
"""A challenge frame is under 100 bytes (kind, counter, a 16-byte nonce in JSON, the tag)."""
MAX_REPORTS = 200
"""Audit reports a customer may send per session of each kind, control decisions and pauses;
more are ignored, so a tampered SDK cannot flood the audit trail. Counted apart: a page that
pauses and resumes sharing again and again (a single-page app's private routes, a cover over
Stop sharing) used up the count, and the control the customer gave the agent after it went
unrecorded."""
PAUSE_REPORTS = frozenset({"page_paused", "page_resumed", "controls_hidden", "controls_shown"})
"""Reports of sharing paused or going on, counted apart from control decisions (MAX_REPORTS)."""


@dataclasses.dataclass(frozen=True, slots=True)
class ToCustomer:
    message: ServerMessage


@dataclasses.dataclass(frozen=True, slots=True)
class ToAgents:
    message: ServerMessage


@dataclasses.dataclass(frozen=True, slots=True)
class EndSession:
    """Tell everyone the session ended (already in ``ToCustomer``/``ToAgents``), then close."""

    reason: EndReason


@dataclasses.dataclass(frozen=True, slots=True)
class ToWatcher:
    message: ServerMessage


@dataclasses.dataclass(frozen=True, slots=True)
class EndWatch:
    """Close the supervisor's socket (audited as ``watch_ended``); the session goes on."""

    reason: EndReason
    watcher: str = ""
    """The supervisor's account."""


Actor = Literal["customer", "agent", "watcher"]


@dataclasses.dataclass(frozen=True, slots=True)
class Audit:
    """Append ``action`` to the audit trail, done by one of the session's parties. The hub names
    the party (the customer, or the agent's or supervisor's username) and adds the session and its
    organisation. ``details`` hold ids, names and reasons only: never page content or secrets."""

    action: str
    actor: Actor
    details: tuple[tuple[str, str | int], ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class SuspendSession:
    """Hand the session over to the next server process (the hub stores what resuming it needs)
    and close both sides' sockets with "restarting: reconnect" (1012)."""


@dataclasses.dataclass(frozen=True, slots=True)
class StartRecording:
    """The customer allowed recording: store its frames from now on."""


@dataclasses.dataclass(frozen=True, slots=True)
class StopRecording:
    """Stop storing frames and close the recording."""

    reason: str


Effect = (
    ToCustomer
    | ToAgents
    | EndSession
    | ToWatcher
    | EndWatch
    | StartRecording
    | StopRecording
    | Audit
    | SuspendSession
)
WatchState = Literal["asked", "pairing", "watching"]
RecordState = Literal["asked", "on", "ending"]
"""``ending``: the customer's browser was asked to end the recording; its frames are still kept
until its end marker and ``record_stop`` arrive (or ``recording_end_seconds`` pass)."""


@dataclasses.dataclass(slots=True)
class Session:
    """One session's state. Mutated only through its methods."""

    session_id: str
    code: str
    code_expires_at: float
    resume_grace_seconds: float
    created_at: float = 0.0
    idle_timeout_seconds: float = float("inf")
    max_duration_seconds: float = float("inf")
    last_activity: float = 0.0
    state: State = "waiting"
    agent: str | None = None
    agent_username: str = ""
    """The joined agent's account (``agent`` is its display name)."""
    end_reason: EndReason | None = None
    customer_away_since: float | None = None
    handshakes_from_customer: int = 0
    handshakes_from_agent: int = 0
    watcher: str | None = None
    """The supervisor watching too (or asking to), by display name."""
    watcher_username: str = ""
    """That supervisor's account."""
    watch_state: WatchState | None = None
    watch_handshakes_from_customer: int = 0
    watch_handshakes_from_watcher: int = 0
    recording: RecordState | None = None
    """The agent asked to record (``asked``), the customer allowed it (``on``), or it is being
    ended (``ending``: waiting for the customer's end marker)."""
    record_key: str = ""
    """The recording public key the customer was asked to wrap content keys for."""
    record_request: RecordRequest | None = None
    """The question put to the customer (asked again after a page navigation)."""
    recording_end_seconds: float = 0.0
    """How long to wait for the customer's end marker before a recording is closed without it
    (0: never wait)."""
    record_end_by: float = float("inf")
    record_end_reason: str = ""
    """Why the recording is ending (kept in storage as its end reason)."""
    record_end_notice: RecordingReason | None = None
    """What the customer was told when asked to end it (told again after a navigation)."""
    closing: EndReason | None = None
    """The session ends as soon as its recording has (end marker or deadline): set by a
    graceful end (the agent left, timeouts) while the customer's browser records."""
    reports: int = 0
    pause_reports: int = 0
    agent_resume_seconds: float = 0.0
    """How long a joined agent whose socket was lost (not closed on purpose) may take the
    session up again (``rejoin``) before it ends ``agent_lost``; 0: it ends at once."""
    agent_away_since: float | None = None
    suspended: bool = False
    """Handed over to the next server process (:meth:`suspend`): over in this one."""

    @property
    def ended(self) -> bool:
        """Nothing more happens to the session here: it ended, or it was handed over."""
        return self.state == "ended" or self.suspended

    def _end(self, reason: EndReason, now: float | None = None) -> list[Effect]:
        """End the session. With ``now`` (a graceful end) while the customer's browser records,
        first let it send the recording's end marker: the session ends when the recording has,
        or ``recording_end_seconds`` after ``now``."""
        if self.ended:
            return []
        if self.closing is not None:
            if now is not None:
                return []  # already ending gracefully
            reason = self.closing
        elif (
            now is not None
            and self.recording in ("on", "ending")
            and self.customer_away_since is None
            and self.recording_end_seconds > 0
        ):
            self.closing = reason
            if self.recording == "on":
                self.recording = "ending"
                self.record_end_reason = "session_ended"
            self.record_end_notice = "session_ending"
            self.record_end_by = min(self.record_end_by, now + self.recording_end_seconds)
            return [ToCustomer(RecordingStatus(on=False, reason="session_ending"))]
        self.state = "ended"
        self.end_reason = reason
        notice = Ended(reason=reason)
        effects: list[Effect] = [ToCustomer(notice), ToAgents(notice)]
        if self.recording in ("on", "ending"):
            effects.append(StopRecording(self.record_end_reason or "session_ended"))
        self.recording = None
        if self.watcher is not None:
            effects += [ToWatcher(notice), EndWatch(reason, self.watcher_username)]
            self.watcher = self.watch_state = None
            self.watcher_username = ""
        return [*effects, EndSession(reason)]

    def _require(self, *states: State, doing: str) -> None:
        if self.state not in states:
            raise ProtocolError(CLOSE_MALFORMED, f"{doing} is not allowed while {self.state}")

    # Agent side

    def agent_joins(
        self,
        agent: str,
        now: float,
        username: str = "",
        team_policies: int = 0,
        resume_token: str = "",
    ) -> list[Effect]:
        """An agent presented this session's (already verified) code; ``team_policies`` is how
        many of its teams' policies the customer was sent (audited); ``resume_token`` lets its
        sign-in take the session up again after a reload (:meth:`agent_returns`)."""
        self._require("waiting", doing="joining")
        if now >= self.code_expires_at:
            return self._end("code_expired")
        self.state = "pending_consent"
        self.agent = agent
        self.agent_username = username
        return [
            Audit("agent_joined", "agent", (("team_policies", team_policies),)),
            ToAgents(
                Joined(
                    session_id=self.session_id,
                    resume_token=resume_token,
                    resume_seconds=int(self.agent_resume_seconds) if resume_token else 0,
                )
            ),
            ToCustomer(AgentJoined(agent=agent)),
        ]

    def agent_leaves(self, now: float | None = None) -> list[Effect]:
        """The agent leaves; with ``now``, a recording is first ended by the customer's browser."""
        return self._end("agent_left", now)

    def agent_lost(self, now: float | None = None) -> list[Effect]:
        return self._end("agent_lost", now)

    def agent_away(self, now: float) -> list[Effect]:
        """The agent's socket was lost (a reload, a dropped network): the session waits
        ``agent_resume_seconds`` for :meth:`agent_returns`, the customer is told; without a
        window, or before the agent joined, it is lost at once."""
        if self.ended:
            return []
        if (
            self.agent_resume_seconds <= 0
            or self.state not in ("pending_consent", "sharing")
            or self.closing is not None
        ):
            return self.agent_lost(now)
        if self.agent_away_since is not None:
            return []
        self.agent_away_since = now
        return [ToCustomer(PeerStatus(connected=False))]

    def agent_returns(self, username: str) -> list[Effect]:
        """The joined agent's sign-in presented its resume token again (checked by the hub):
        the same session goes on; the customer's browser starts a new epoch for it."""
        if self.ended or self.state not in ("pending_consent", "sharing"):
            raise ProtocolError(4404, "session not found")
        if username != self.agent_username:
            raise ProtocolError(4404, "session not found")
        was_away = self.agent_away_since is not None
        self.agent_away_since = None
        effects: list[Effect] = [
            Audit("agent_rejoined", "agent"),
            ToAgents(Joined(session_id=self.session_id, resumed=True)),
        ]
        if was_away:
            effects.append(ToCustomer(PeerStatus(connected=True)))
        return effects

    def snapshot(self) -> Session:
        """This state as it is now, for :meth:`undo` (a shallow copy: an event that changes a
        container in place is not taken back; the answers and requests undone change none)."""
        return copy.copy(self)

    def undo(self, before: Session, after: Session) -> None:
        """Take back what one event changed, from ``before`` to ``after`` (snapshots taken just
        around it): it did not happen (its audit record, which had to come first, could not be
        written). Field by field, and only where nothing changed the field since: what other
        events did meanwhile (the session ended, a frame came) stays."""
        for field in dataclasses.fields(self):
            old, new = getattr(before, field.name), getattr(after, field.name)
            if old != new and getattr(self, field.name) == new:
                setattr(self, field.name, old)

    # Customer side

    def consent(self, granted: bool) -> list[Effect]:
        self._require("pending_consent", doing="consent")
        if not granted:
            return [Audit("consent_declined", "customer"), *self._end("declined")]
        self.state = "sharing"
        return [Audit("consent_given", "customer"), ToAgents(ConsentNotice(granted=True))]

    def customer_stops(self) -> list[Effect]:
        return self._end("stopped")

    def customer_left(self, now: float) -> list[Effect]:
        """The customer's socket closed without ``stop`` (navigation, reload or a lost network)."""
        if self.ended:
            return []
        self.customer_away_since = now
        if self.closing is not None:  # no end marker can come now
            return self._end(self.closing)
        return [ToAgents(PeerStatus(connected=False))] if self.agent else []

    def customer_resumes(self) -> tuple[Resumed, list[Effect]]:
        """A new customer socket presented the session's resume token."""
        if self.ended:
            raise ProtocolError(CLOSE_MALFORMED, "the session has ended")
        was_away = self.customer_away_since is not None
        self.customer_away_since = None
        resumed = Resumed(
            state=self.state,  # type: ignore[arg-type]  # not "ended": checked above
            agent=self.agent,
            code=(self.code or None) if self.state == "waiting" else None,
            recording=self.recording in ("on", "ending"),
        )
        effects: list[Effect] = [ToCustomer(resumed)]
        if was_away and self.agent:
            effects.append(ToAgents(PeerStatus(connected=True)))
        if self.state == "pending_consent" and self.agent:
            effects.append(ToCustomer(AgentJoined(agent=self.agent)))
        if self.recording == "asked" and self.record_request:  # asked on the page it left
            effects.append(ToCustomer(self.record_request))
        if self.recording == "ending" and self.record_end_notice:  # end it on this page
            effects.append(ToCustomer(RecordingStatus(on=False, reason=self.record_end_notice)))
        return resumed, effects

    # Key exchange between the browsers (SPAKE2): relayed while consent is pending, a few each way.

    def handshake_from_customer(self, data: str) -> list[Effect]:
        self._require("pending_consent", doing="a key exchange")
        self.handshakes_from_customer += 1
        if self.handshakes_from_customer > MAX_HANDSHAKES_PER_SIDE:
            raise ProtocolError(CLOSE_MALFORMED, "too many key-exchange messages")
        return [ToAgents(HandshakeRelay(data=data))]

    def handshake_from_agent(self, data: str) -> list[Effect]:
        self._require("pending_consent", doing="a key exchange")
        self.handshakes_from_agent += 1
        if self.handshakes_from_agent > MAX_HANDSHAKES_PER_SIDE:
            raise ProtocolError(CLOSE_MALFORMED, "too many key-exchange messages")
        return [ToCustomer(HandshakeRelay(data=data))]

    # A supervisor watching too: asked by the server, allowed by the customer, then its own
    # key exchange with the customer (a second code the customer reads out).

    def watcher_asks(self, watcher: str, username: str = "") -> list[Effect]:
        self._require("sharing", doing="watching")
        if self.watcher is not None:
            raise ProtocolError(CLOSE_MALFORMED, "someone already watches this session")
        self.watcher = watcher
        self.watcher_username = username
        self.watch_state = "asked"
        return [
            Audit("watch_requested", "watcher"),
            ToWatcher(Watching(session_id=self.session_id)),
            ToCustomer(WatchRequest(watcher=watcher)),
        ]

    def watch_consent(self, granted: bool) -> list[Effect]:
        if self.watch_state != "asked":
            raise ProtocolError(CLOSE_MALFORMED, "no supervisor is asking to watch")
        audit = Audit(
            "watch_allowed" if granted else "watch_declined",
            "customer",
            (("watcher", self.watcher_username),),
        )
        if not granted:
            return [audit, *self._end_watch("declined", tell_customer=False)]
        self.watch_state = "pairing"
        return [audit, ToWatcher(ConsentNotice(granted=True))]

    def watch_handshake_from_customer(self, data: str) -> list[Effect]:
        if self.watch_state not in ("pairing", "watching") or self.ended:
            raise ProtocolError(CLOSE_MALFORMED, "no supervisor key exchange is running")
        self.watch_handshakes_from_customer += 1
        if self.watch_handshakes_from_customer > MAX_HANDSHAKES_PER_SIDE:
            raise ProtocolError(CLOSE_MALFORMED, "too many key-exchange messages")
        effects: list[Effect] = [ToWatcher(HandshakeRelay(data=data))]
        if self.watch_handshakes_from_customer == MAX_HANDSHAKES_PER_SIDE:
            # The customer confirmed the supervisor's key: page content may reach it now.
            self.watch_state = "watching"
            effects.append(ToAgents(WatcherJoined(watcher=self.watcher or "")))
        return effects

    def handshake_from_watcher(self, data: str) -> list[Effect]:
        if self.watch_state != "pairing":
            raise ProtocolError(CLOSE_MALFORMED, "a key exchange is not allowed now")
        self.watch_handshakes_from_watcher += 1
        if self.watch_handshakes_from_watcher > MAX_HANDSHAKES_PER_SIDE:
            raise ProtocolError(CLOSE_MALFORMED, "too many key-exchange messages")
        return [ToCustomer(WatchRelay(data=data))]

    def watch_mismatch(self) -> list[Effect]:
        """The supervisor's code did not match: the watch ends, the session goes on."""
        return self._end_watch("key_mismatch", tell_customer=True)

    def watcher_leaves(self) -> list[Effect]:
        return self._end_watch("watch_ended", tell_customer=True)

    @property
    def watcher_gets_content(self) -> bool:
        return self.watch_state == "watching" and not self.ended

    def _end_watch(self, reason: EndReason, tell_customer: bool) -> list[Effect]:
        if self.watcher is None or self.ended:
            return []
        was_watching = self.watch_state == "watching"
        watcher, self.watcher_username = self.watcher_username, ""
        self.watcher = self.watch_state = None
        self.watch_handshakes_from_customer = self.watch_handshakes_from_watcher = 0
        effects: list[Effect] = [ToWatcher(Ended(reason=reason)), EndWatch(reason, watcher)]
        if tell_customer:
            effects.append(ToCustomer(WatcherLeft()))
        if was_watching:
            effects.append(ToAgents(WatcherLeft()))
        return effects

    # Recording: asked by the agent, allowed by the customer, stopped by either at any time.

    def record_requested(self, key: str, recording_id: str, site: str) -> list[Effect]:
        """The agent asks to record; ``key`` is the organisation's recording public key, and the
        recording will be ``recording_id`` (the customer's browser binds it into the
        recording's first frame, with ``site``)."""
        self._require("sharing", doing="recording")
        if self.recording is not None or self.closing is not None:
            raise ProtocolError(CLOSE_MALFORMED, "recording is already on or asked for")
        self.recording = "asked"
        self.record_key = key
        self.record_request = RecordRequest(
            agent=self.agent or "", key=key, recording_id=recording_id, site=site
        )
        return [Audit("recording_requested", "agent"), ToCustomer(self.record_request)]

    @property
    def record_id(self) -> str:
        """The id of the recording asked for or running."""
        return self.record_request.recording_id if self.record_request else ""

    def record_consent(self, granted: bool) -> list[Effect]:
        """The customer's answer. A refusal nobody asked for is ignored: the customer's browser
        refuses requests that a relay made up, which this server never sent."""
        declined = Audit("recording_declined", "customer")
        if self.recording != "asked" or self.ended:
            if not granted:
                return [declined]  # audited all the same: the customer said no
            raise ProtocolError(CLOSE_MALFORMED, "nobody asked to record")
        if not granted:
            self.recording = None
            return [declined, ToAgents(RecordingStatus(on=False, reason="declined"))]
        self.recording = "on"
        status = RecordingStatus(on=True)
        return [StartRecording(), ToAgents(status), ToCustomer(status)]

    def record_stop(self, reason: RecordingReason, now: float | None = None) -> list[Effect]:
        """Stop recording (or withdraw the question); a no-op when nothing is recorded, so a
        second click or a race with the other side is harmless.

        The customer's ``record_stop`` (``stopped_by_customer``) follows its end marker: the
        recording closes. The agent's, or the server's at the size limit, with ``now``: the
        customer's browser is asked to end it, and it closes when its ``record_stop`` comes or
        ``recording_end_seconds`` pass. Without ``now`` it closes at once (storage failed)."""
        if self.recording is None or self.ended:
            return []
        if self.recording == "asked":
            self.recording = None
            status = RecordingStatus(on=False, reason=reason)
            return [ToAgents(status), ToCustomer(status)]
        if self.recording == "ending":
            if reason == "stopped_by_customer" or now is None:
                return self._recording_closed(self.record_end_reason)
            return []
        if (
            reason == "stopped_by_customer"
            or now is None
            or self.recording_end_seconds <= 0
            or self.customer_away_since is not None
        ):
            return self._recording_closed(reason, reason)
        self.recording = "ending"
        self.record_end_reason = reason
        self.record_end_notice = reason
        self.record_end_by = now + self.recording_end_seconds
        status = RecordingStatus(on=False, reason=reason)
        return [ToAgents(status), ToCustomer(status)]

    def _recording_closed(self, reason: str, notice: RecordingReason | None = None) -> list[Effect]:
        """Stop keeping frames; tell both sides (``notice``) unless they were told when it began
        ending; finish a graceful session end that waited for it."""
        was_on = self.recording == "on"
        self.recording = None
        self.record_end_reason = ""
        self.record_end_notice = None
        self.record_end_by = float("inf")
        effects: list[Effect] = [StopRecording(reason)]
        if was_on and notice is not None:
            status = RecordingStatus(on=False, reason=notice)
            effects += [ToAgents(status), ToCustomer(status)]
        if self.closing is not None:
            effects += self._end(self.closing)
        return effects

    def customer_reports(self, event: str) -> list[Effect]:
        """A report for the audit trail (only while sharing), ignored once past MAX_REPORTS of
        its kind (pauses, control decisions)."""
        self._require("sharing", doing="reporting")
        if event in PAUSE_REPORTS:
            self.pause_reports += 1
            if self.pause_reports > MAX_REPORTS:
                return []
        else:
            self.reports += 1
            if self.reports > MAX_REPORTS:
                return []
        return [Audit(event, "customer", (("agent", self.agent_username),))]

    @property
    def records_content(self) -> bool:
        return self.recording in ("on", "ending") and not self.ended

    def key_mismatch(self, by: Actor = "customer") -> list[Effect]:
        """Either browser found the key confirmation wrong: end now; the code is spent."""
        return [Audit("key_mismatch", by), *self._end("key_mismatch")]

    def check_customer_payload(self) -> None:
        """Raise unless page content may flow now (only after consent)."""
        if self.state != "sharing":  # every relayed frame: no tuple, no keywords when it may
            self._require("sharing", doing="sending page content")

    def check_agent_payload(self) -> None:
        if self.state != "sharing":
            self._require("sharing", doing="sending to the customer")

    def check_watcher_payload(self, frame: bytes) -> None:
        """Raise unless ``frame`` may go from the watching supervisor to the customer: only once
        the supervisor's key exchange is done, only its own kind of command frame (its freshness
        challenges: it never controls), at most :data:`MAX_WATCHER_FRAME_BYTES`."""
        if not self.watcher_gets_content:
            raise ProtocolError(CLOSE_MALFORMED, "a supervisor sends nothing before it watches")
        if frame[:1] != WATCHER_COMMAND_KIND or len(frame) > MAX_WATCHER_FRAME_BYTES:
            raise ProtocolError(CLOSE_MALFORMED, "a supervisor only sends its challenges")

    def shut_down(self) -> list[Effect]:
        """The server is stopping: at once (the customer's sockets are closing anyway)."""
        return self._end("server_shutdown")

    def suspend(self) -> list[Effect]:
        """The server is stopping and hands the session over to the next process (a restart):
        both sides are told to reconnect there, with their resume tokens. What the next process
        must not inherit ends here: a supervisor's watch (it asks again), and a recording,
        closed where it is (its frames stored so far stay verifiable, labelled incomplete; it
        does not go on after the resume unless the agent asks and the customer allows again).
        A session already ending (waiting for a recording's end marker) ends instead."""
        if self.ended:
            return []
        if self.closing is not None:
            return self._end(self.closing)
        effects = self._end_watch("server_shutdown", tell_customer=True)
        if self.recording in ("on", "ending"):
            effects.append(StopRecording("server_restart"))
        self.recording = None
        self.record_request = None
        self.record_end_reason = ""
        self.record_end_notice = None
        self.record_end_by = float("inf")
        self.suspended = True
        return [*effects, SuspendSession()]

    # Time

    def touch(self, now: float) -> None:
        """Either side sent something: the session is not idle."""
        self.last_activity = now

    def tick(self, now: float) -> list[Effect]:
        """Apply deadlines: an unused code expires; a customer away past the grace is lost; a
        joined session ends after ``idle_timeout_seconds`` without traffic and after
        ``max_duration_seconds`` in all; a recording whose end marker did not come in time is
        closed without it."""
        if self.recording == "ending" and now >= self.record_end_by:
            return self._recording_closed(self.record_end_reason or "session_ended")
        if self.state == "waiting" and now >= self.code_expires_at:
            return self._end("code_expired")
        if now - self.created_at >= self.max_duration_seconds:
            return self._end("max_duration", now)
        if self.state in ("pending_consent", "sharing") and (
            now - max(self.last_activity, self.created_at) >= self.idle_timeout_seconds
        ):
            return self._end("idle_timeout", now)
        if (
            self.customer_away_since is not None
            and now - self.customer_away_since >= self.resume_grace_seconds
        ):
            return self._end("customer_lost")
        if (
            self.agent_away_since is not None
            and now - self.agent_away_since >= self.agent_resume_seconds
        ):
            return self._end("agent_lost")
        return []
