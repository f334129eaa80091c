"""The life of one co-browsing session as a pure state machine: no I/O, no clock of its own.

Adapters feed it what happened (with the current time where it matters) and carry out the
effects it returns, in order. Anything a peer may not do in the current state raises
:class:`~tandem.exceptions.ProtocolError`, which the adapter turns into a close code.

States: ``waiting`` → ``pending_consent`` → ``sharing`` → ``ended``. Nothing about the page may
travel before ``sharing``: :meth:`Session.check_customer_payload` enforces it.
"""

from __future__ import annotations

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
MAX_REPORTS = 200
"""Audit reports a customer may send per session (control and pause decisions); more are
ignored, so a tampered SDK cannot flood the audit trail."""
"""SPAKE2 needs two messages from the customer (share, confirmation) and one from the agent."""


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
    """Close the supervisor's socket; the session goes on."""

    reason: EndReason


@dataclasses.dataclass(frozen=True, slots=True)
class StartRecording:
    """The customer allowed recording: store its frames from now on."""


@dataclasses.dataclass(frozen=True, slots=True)
class StopRecording:
    """Stop storing frames and close the recording."""

    reason: str


Effect = ToCustomer | ToAgents | EndSession | ToWatcher | EndWatch | StartRecording | StopRecording
WatchState = Literal["asked", "pairing", "watching"]
RecordState = Literal["asked", "on"]


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
    end_reason: EndReason | None = None
    customer_away_since: float | None = None
    handshakes_from_customer: int = 0
    handshakes_from_agent: int = 0
    watcher: str | None = None
    """The supervisor watching too (or asking to), by display name."""
    watch_state: WatchState | None = None
    watch_handshakes_from_customer: int = 0
    watch_handshakes_from_watcher: int = 0
    recording: RecordState | None = None
    """The agent asked to record (``asked``) or the customer allowed it (``on``)."""
    record_key: str = ""
    """The recording public key the customer was asked to wrap content keys for."""
    reports: int = 0

    @property
    def ended(self) -> bool:
        return self.state == "ended"

    def _end(self, reason: EndReason) -> list[Effect]:
        if self.ended:
            return []
        self.state = "ended"
        self.end_reason = reason
        notice = Ended(reason=reason)
        effects: list[Effect] = [ToCustomer(notice), ToAgents(notice)]
        if self.recording == "on":
            effects.append(StopRecording("session_ended"))
        self.recording = None
        if self.watcher is not None:
            effects += [ToWatcher(notice), EndWatch(reason)]
            self.watcher = self.watch_state = None
        return [*effects, EndSession(reason)]

    def _require(self, *states: State, doing: str) -> None:
        if self.state not in states:
            raise ProtocolError(CLOSE_MALFORMED, f"{doing} is not allowed while {self.state}")

    # Agent side

    def agent_joins(self, agent: str, now: float) -> list[Effect]:
        """An agent presented this session's (already verified) code."""
        self._require("waiting", doing="joining")
        if now >= self.code_expires_at:
            return self._end("code_expired")
        self.state = "pending_consent"
        self.agent = agent
        return [
            ToAgents(Joined(session_id=self.session_id)),
            ToCustomer(AgentJoined(agent=agent)),
        ]

    def agent_leaves(self) -> list[Effect]:
        return self._end("agent_left")

    def agent_lost(self) -> list[Effect]:
        return self._end("agent_lost")

    # Customer side

    def consent(self, granted: bool) -> list[Effect]:
        self._require("pending_consent", doing="consent")
        if not granted:
            return self._end("declined")
        self.state = "sharing"
        return [ToAgents(ConsentNotice(granted=True))]

    def customer_stops(self) -> list[Effect]:
        return self._end("stopped")

    def customer_left(self, now: float) -> list[Effect]:
        """The customer's socket closed without ``stop`` (navigation, reload or a lost network)."""
        if self.ended:
            return []
        self.customer_away_since = now
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
            code=self.code if self.state == "waiting" else None,
            recording=self.recording == "on",
        )
        effects: list[Effect] = [ToCustomer(resumed)]
        if was_away and self.agent:
            effects.append(ToAgents(PeerStatus(connected=True)))
        if self.state == "pending_consent" and self.agent:
            effects.append(ToCustomer(AgentJoined(agent=self.agent)))
        if self.recording == "asked" and self.agent:  # the question was on the page it left
            effects.append(ToCustomer(RecordRequest(agent=self.agent, key=self.record_key)))
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

    def watcher_asks(self, watcher: str) -> list[Effect]:
        self._require("sharing", doing="watching")
        if self.watcher is not None:
            raise ProtocolError(CLOSE_MALFORMED, "someone already watches this session")
        self.watcher = watcher
        self.watch_state = "asked"
        return [
            ToWatcher(Watching(session_id=self.session_id)),
            ToCustomer(WatchRequest(watcher=watcher)),
        ]

    def watch_consent(self, granted: bool) -> list[Effect]:
        if self.watch_state != "asked":
            raise ProtocolError(CLOSE_MALFORMED, "no supervisor is asking to watch")
        if not granted:
            return self._end_watch("declined", tell_customer=False)
        self.watch_state = "pairing"
        return [ToWatcher(ConsentNotice(granted=True))]

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
        self.watcher = self.watch_state = None
        self.watch_handshakes_from_customer = self.watch_handshakes_from_watcher = 0
        effects: list[Effect] = [ToWatcher(Ended(reason=reason)), EndWatch(reason)]
        if tell_customer:
            effects.append(ToCustomer(WatcherLeft()))
        if was_watching:
            effects.append(ToAgents(WatcherLeft()))
        return effects

    # Recording: asked by the agent, allowed by the customer, stopped by either at any time.

    def record_requested(self, key: str) -> list[Effect]:
        """The agent asks to record; ``key`` is the organisation's recording public key."""
        self._require("sharing", doing="recording")
        if self.recording is not None:
            raise ProtocolError(CLOSE_MALFORMED, "recording is already on or asked for")
        self.recording = "asked"
        self.record_key = key
        return [ToCustomer(RecordRequest(agent=self.agent or "", key=key))]

    def record_consent(self, granted: bool) -> list[Effect]:
        if self.recording != "asked" or self.ended:
            raise ProtocolError(CLOSE_MALFORMED, "nobody asked to record")
        if not granted:
            self.recording = None
            return [ToAgents(RecordingStatus(on=False, reason="declined"))]
        self.recording = "on"
        status = RecordingStatus(on=True)
        return [StartRecording(), ToAgents(status), ToCustomer(status)]

    def record_stop(self, reason: RecordingReason) -> list[Effect]:
        """Stop recording (or withdraw the question); a no-op when nothing is recorded, so a
        second click or a race with the other side is harmless."""
        if self.recording is None or self.ended:
            return []
        was_on = self.recording == "on"
        self.recording = None
        status = RecordingStatus(on=False, reason=reason)
        effects: list[Effect] = [StopRecording(reason)] if was_on else []
        return [*effects, ToAgents(status), ToCustomer(status)]

    def customer_reports(self) -> bool:
        """A report for the audit trail (only while sharing); False once past MAX_REPORTS."""
        self._require("sharing", doing="reporting")
        self.reports += 1
        return self.reports <= MAX_REPORTS

    @property
    def records_content(self) -> bool:
        return self.recording == "on" and not self.ended

    def key_mismatch(self) -> list[Effect]:
        """Either browser found the key confirmation wrong: end now; the code is spent."""
        return self._end("key_mismatch")

    def check_customer_payload(self) -> None:
        """Raise unless page content may flow now (only after consent)."""
        self._require("sharing", doing="sending page content")

    def check_agent_payload(self) -> None:
        self._require("sharing", doing="sending to the customer")

    def shut_down(self) -> list[Effect]:
        """The server is stopping."""
        return self._end("server_shutdown")

    # Time

    def touch(self, now: float) -> None:
        """Either side sent something: the session is not idle."""
        self.last_activity = now

    def tick(self, now: float) -> list[Effect]:
        """Apply deadlines: an unused code expires; a customer away past the grace is lost; a
        joined session ends after ``idle_timeout_seconds`` without traffic and after
        ``max_duration_seconds`` in all."""
        if self.state == "waiting" and now >= self.code_expires_at:
            return self._end("code_expired")
        if now - self.created_at >= self.max_duration_seconds:
            return self._end("max_duration")
        if self.state in ("pending_consent", "sharing") and (
            now - max(self.last_activity, self.created_at) >= self.idle_timeout_seconds
        ):
            return self._end("idle_timeout")
        if (
            self.customer_away_since is not None
            and now - self.customer_away_since >= self.resume_grace_seconds
        ):
            return self._end("customer_lost")
        return []
