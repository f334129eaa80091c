"""Live sessions: owns each session's state machine and carries out its effects.

The hub is the one place that turns :mod:`tandem.protocol.session` effects into fan-out frames and
storage writes. Socket adapters (``tandem.server.ws``) call it; it never touches a socket itself.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from tandem import crypto, logs, metrics
from tandem.access import Principal, Resource, authorize
from tandem.audit import AuditLog
from tandem.config import Settings
from tandem.exceptions import (
    AuthenticationError,
    ForbiddenError,
    NotFoundError,
    ProtocolError,
    TandemError,
)
from tandem.fanout.base import Fanout, Frame
from tandem.policy import load_policy, policy_json
from tandem.protocol import codec
from tandem.protocol.messages import Created, ErrorNotice, Resumed, ServerMessage, TeamPolicy
from tandem.protocol.session import (
    Effect,
    EndSession,
    EndWatch,
    Session,
    StartRecording,
    StopRecording,
    ToAgents,
    ToCustomer,
    ToWatcher,
)
from tandem.recordings import Recorder, Recordings, new_recording
from tandem.storage.base import DEFAULT_ORG, SiteRecord, Storage

log = logging.getLogger("tandem.hub")
events = logs.get_logger("tandem.events")
Clock = Callable[[], float]
RECORDING_PURGE_SECONDS = 60.0
"""How often recordings past their organisation's retention are looked for."""
NO_RECORDING_KEY = ErrorNotice(
    code="no_recording_key",
    message="Recording is not set up for your organisation: an admin adds a recording key.",
)

INVALID_CODE = ErrorNotice(
    code="invalid_code", message="That code is not valid or has expired. Ask for a new code."
)


def customer_topic(session_id: str) -> str:
    return f"session:{session_id}:customer"


def agents_topic(session_id: str) -> str:
    return f"session:{session_id}:agents"


def watcher_topic(session_id: str) -> str:
    return f"session:{session_id}:watcher"


@dataclasses.dataclass(slots=True)
class LiveSession:
    machine: Session
    resume_digest: str
    customer_connection: object | None = None
    agent_username: str = ""
    watcher_username: str = ""
    org_id: str = DEFAULT_ORG
    site_id: str = ""
    team_policies: list[dict[str, object]] = dataclasses.field(default_factory=list)
    """The joined agent's teams' policies for this site, sent to the customer."""
    record_requester: str = ""
    """Username of the agent who asked to record."""
    recorder: Recorder | None = None
    """The running recording's buffer, while the customer allows recording."""
    stored_state: str = "waiting"
    """The state storage last heard of (kept only with several processes)."""


@dataclasses.dataclass(frozen=True, slots=True)
class LiveSummary:
    """A live session as a supervisor's list shows it."""

    session_id: str
    site: SiteRecord
    state: str
    agent: str | None
    created_at: float


class HeldElsewhere(TandemError):
    """The session's live state is in another server process (scale-out): tunnel the socket
    there (:mod:`tandem.tunnel`)."""

    def __init__(self, node: str) -> None:
        super().__init__(f"session held by node {node}")
        self.node = node


class SessionHub:
    """All live sessions of this process."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        fanout: Fanout,
        clock: Clock,
        entropy: crypto.Entropy,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.fanout = fanout
        self.clock = clock
        self.entropy = entropy
        self._live: dict[str, LiveSession] = {}
        self._unfinished: dict[str, tuple[LiveSession, str]] = {}
        """Ended sessions whose storage writes failed (database away): retried each tick."""
        self._closing: set[str] = set()
        """Sessions whose storage writes are under way."""
        self._failed_recordings: dict[str, tuple[str, str, float]] = {}
        """Recordings whose flush failed, by id: (organisation, reason, when); ended in storage
        as ``unavailable`` (and audited) by the next tick that reaches the database."""
        self.node = ""
        """This process's id among several (scale-out); empty when it runs alone."""
        self.process_id = ""
        """This process's row in storage (tandem.processes): its sessions are stored with it."""
        self._next_purge = 0.0
        self._next_expired_purge = 0.0
        self.recordings = Recordings(storage, self.record)
        self.audit: AuditLog | None = None
        self.box: crypto.SecretBox | None = None
        """Opens sites' token keys; set by the app."""
        self.policy = policy_json(
            load_policy(settings.policy_file) if settings.policy_file else None
        )

    async def record(self, action: str, **fields: Any) -> None:
        """Append to the audit trail (no page content, no secrets: ids, names, reasons); the
        same event goes to the log and the metrics."""
        metrics.audited(action)
        events.info(action, **fields)
        if self.audit is not None:
            await self.audit.record(self.clock(), action, **fields)

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
            )
            if claims.token_id is not None:  # single use: a replay is refused
                digest = crypto.secret_digest(f"{site.site_id}:{claims.token_id}", "jti")
                if not await self.storage.use_once(digest, claims.expires_at + 60):
                    raise AuthenticationError("customer token not accepted: it was used already")
            return claims.subject
        except AuthenticationError as exc:
            await self.record(
                "customer_token_rejected",
                actor="customer",
                org=site.org_id,
                subject=site.site_id,
                reason=str(exc),
            )
            raise ProtocolError(codec.CLOSE_UNAUTHENTICATED, str(exc)) from None

    def policy_for(self, site: SiteRecord) -> dict[str, object] | None:
        """The organisation's policy for a site: its own, else the server's (--policy)."""
        if site.policy:
            value: dict[str, object] = json.loads(site.policy)
            return value
        return self.policy

    async def create(
        self, site: SiteRecord, customer: str | None = None
    ) -> tuple[LiveSession, Created]:
        """A new session of ``site`` in ``waiting`` with a fresh join code bound to the site's
        organisation. ``customer`` is the subject of a verified customer token, if any. Raises
        ProtocolError when full."""
        if len(self._live) >= self.settings.max_sessions:
            raise ProtocolError(codec.CLOSE_OVERLOADED, "server busy: try again in a minute")
        now = self.clock()
        session_id = crypto.new_token(self.entropy, 16)
        resume_token = crypto.new_token(self.entropy)
        expires_at = now + self.settings.code_ttl_seconds
        for _ in range(5):
            code = crypto.new_join_code(self.entropy, self.settings.code_digits)
            try:
                await self.storage.put_join_code(
                    crypto.secret_digest(code, "join"), session_id, expires_at, site.org_id
                )
                break
            except TandemError:
                continue  # a live code collided; draw again
        else:
            raise ProtocolError(codec.CLOSE_OVERLOADED, "server busy: try again in a minute")
        await self.storage.record_session_start(
            session_id, now, site.org_id, site.site_id, self.node or self.process_id
        )
        await self.record(
            "session_created",
            actor=f"customer:{customer}" if customer else "customer",
            org=site.org_id,
            subject=session_id,
            site=site.site_id,
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
            ),
            resume_digest=crypto.secret_digest(resume_token, "resume"),
            org_id=site.org_id,
            site_id=site.site_id,
        )
        self._live[session_id] = live
        created = Created(
            session_id=session_id,
            code=code,
            resume_token=resume_token,
            expires_in=int(self.settings.code_ttl_seconds),
            policy=self.policy_for(site),
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

    def find_for_resume(self, session_id: str, resume_token: str) -> LiveSession:
        """The live session a resume token opens. Raises 4404 for anything else, one answer."""
        live = self._live.get(session_id)
        digest = crypto.secret_digest(resume_token, "resume")
        if (
            live is None
            or live.machine.ended
            or not crypto.secrets_equal(live.resume_digest, digest)
        ):
            raise ProtocolError(codec.CLOSE_NOT_FOUND, "session not found")
        return live

    async def resume(self, live: LiveSession) -> Resumed:
        resumed, effects = live.machine.customer_resumes()
        site = await self.storage.get_site(live.site_id)
        resumed.policy = self.policy_for(site) if site else self.policy
        resumed.team_policies = live.team_policies  # known before the page shares anything
        await self.apply(live, effects)
        return resumed

    async def agent_joins(
        self, live: LiveSession, site: SiteRecord | None, agent: Principal
    ) -> None:
        """The agent's code was right (:meth:`session_for_code`): its teams' policies for this
        site go to the customer first, then the join itself."""
        serving = tuple(sorted(agent.teams & set(site.teams))) if site else ()
        texts = await self.storage.team_policies(live.org_id, serving)
        live.team_policies = [json.loads(texts[team]) for team in serving if team in texts]
        live.agent_username = agent.username
        effects = live.machine.agent_joins(agent.display_name, self.clock())
        if live.team_policies and live.machine.state == "pending_consent":
            self.send_to_customer(live, TeamPolicy(policies=live.team_policies))
        await self.record(
            "agent_joined",
            actor=agent.username,
            org=agent.org,
            subject=live.machine.session_id,
            team_policies=len(live.team_policies),
        )
        await self.apply(live, effects)

    async def _site_of(self, live: LiveSession) -> tuple[SiteRecord | None, Resource]:
        """A live session's site, and the session as authorisation sees it (organisation and
        the teams that serve the site)."""
        site = await self.storage.get_site(live.site_id)
        return site, Resource(live.org_id, frozenset(site.teams) if site else frozenset())

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
        digest = crypto.secret_digest(code, "join")
        session_id = await self.storage.take_join_code(digest, now, agent.org)
        if session_id is None:
            return None
        live = self._live.get(session_id)
        if live is None:
            # Another process holds this session: leave its code valid for it, and let the
            # caller tunnel the agent's socket there (which takes the code again).
            await self.storage.put_join_code(
                digest, session_id, now + self.settings.code_ttl_seconds, agent.org
            )
            owner = await self.owner_elsewhere(session_id)
            if owner:
                raise HeldElsewhere(owner)
            return None
        if live.machine.state != "waiting":
            return None
        site, resource = await self._site_of(live)
        try:
            authorize(agent, "session.join", resource)
        except ForbiddenError:
            await self.storage.put_join_code(
                digest, live.machine.session_id, live.machine.code_expires_at, live.org_id
            )
            raise
        return live, site

    async def session_to_watch(self, session_id: str, supervisor: Principal) -> LiveSession:
        """A live session a supervisor may watch (its team serves the site). Raises
        NotFoundError (also for other organisations') or ForbiddenError."""
        authorize(supervisor, "session.watch")
        live = self._live.get(session_id)
        if live is None and (owner := await self.owner_elsewhere(session_id)):
            raise HeldElsewhere(owner)
        if live is None or live.machine.ended:
            raise NotFoundError("session not found")
        _, resource = await self._site_of(live)
        authorize(supervisor, "session.watch", resource)
        return live

    async def live_sessions_for(self, agent: Principal) -> list[LiveSummary]:
        """Live sessions of the sites the agent's teams serve (for supervisors): this process's,
        or, with several processes, every process's (from storage)."""
        authorize(agent, "session.list", Resource(agent.org))
        if self.node:
            rows = [
                (r.session_id, r.site_id, r.state, r.agent, r.created_at)
                for r in await self.storage.live_sessions(agent.org)
            ]
        else:
            rows = [
                (m.session_id, live.site_id, m.state, m.agent, m.created_at)
                for live in tuple(self._live.values())
                if live.org_id == agent.org and not (m := live.machine).ended
            ]
        sites: dict[str, SiteRecord | None] = {}
        found = []
        for session_id, site_id, state, name, created_at in rows:
            if site_id not in sites:
                sites[site_id] = await self.storage.get_site(site_id)
            site = sites[site_id]
            if site is not None and agent.teams & set(site.teams):
                found.append(LiveSummary(session_id, site, state, name, created_at))
        return found

    async def request_recording(self, live: LiveSession, agent: Principal) -> None:
        """The agent asks to record: the customer is asked, with the organisation's recording
        key. Without a key the agent is told so and nothing happens."""
        _, resource = await self._site_of(live)
        authorize(agent, "session.record", resource)
        org = await self.storage.get_org(live.org_id)
        if org is None or not org.recording_key:
            self.fanout.publish(
                agents_topic(live.machine.session_id), Frame(codec.encode(NO_RECORDING_KEY))
            )
            return
        recording_id = crypto.new_token(self.entropy, 12)
        effects = live.machine.record_requested(org.recording_key, recording_id, live.site_id)
        live.record_requester = agent.username
        await self.record(
            "recording_requested",
            actor=agent.username,
            org=live.org_id,
            subject=live.machine.session_id,
        )
        await self.apply(live, effects)

    async def recorded_frame(self, live: LiveSession, frame: bytes) -> None:
        """Keep a frame the customer sent while recording (ciphertext, as relayed)."""
        recorder = live.recorder
        if recorder is None:
            return
        if not recorder.add(frame):  # past the allowance for the end: cut here
            await self.apply(live, live.machine.record_stop("size_limit"))
            return
        if recorder.size >= self.settings.max_recording_bytes:  # ask the customer to end it
            await self.apply(live, live.machine.record_stop("size_limit", self.clock()))
        if recorder.buffered >= self.settings.recording_flush_bytes:
            await self._flush(live)

    async def _flush(self, live: LiveSession) -> None:
        recorder = live.recorder
        if recorder is None or not recorder.buffer:
            return
        first, frames = recorder.take()
        try:
            await self.storage.append_recording_frames(
                recorder.recording.recording_id, first, frames
            )
        except Exception as exc:  # erased, refused or the database away: the
            # recording stops (said to both sides) rather than lose frames silently, and the
            # session goes on sharing.
            metrics.RECORDING_FLUSHES.labels(outcome="failed").inc()
            reason = str(exc) if isinstance(exc, TandemError) else "storage error"
            if not isinstance(exc, TandemError):
                metrics.STORAGE_ERRORS.labels(where="recording").inc()
            log.warning("recording stopped: %s", reason)
            live.recorder = None
            # Storage that answered (erased, refused) hears of it now; a database that did not
            # answer, from the timer (retried until it does), so that the customer's socket
            # does not wait for it again. Both sides are told at once either way.
            self._failed_recordings[recorder.recording.recording_id] = (
                live.org_id,
                reason,
                self.clock(),
            )
            if isinstance(exc, TandemError):
                await self._write_what_failed()
            await self.apply(live, live.machine.record_stop("unavailable"))
            return
        metrics.RECORDING_FLUSHES.labels(outcome="ok").inc()

    async def _start_recording(self, live: LiveSession) -> None:
        key_id = crypto.recording_key_id(live.machine.record_key)  # the key the customer used
        recording = new_recording(
            live.machine.record_id,
            self.clock(),
            org_id=live.org_id,
            session_id=live.machine.session_id,
            site_id=live.site_id,
            agent=live.record_requester,
            key_id=key_id,
        )
        await self.storage.add_recording(recording)
        live.recorder = Recorder(
            recording, self.settings.max_recording_bytes + self.settings.recording_end_bytes
        )
        await self.record(
            "recording_started",
            actor="customer",
            org=live.org_id,
            subject=recording.recording_id,
            session=live.machine.session_id,
            agent=live.record_requester,
            key_id=key_id,
        )

    async def _stop_recording(self, live: LiveSession, reason: str) -> None:
        await self._flush(live)
        recorder, live.recorder = live.recorder, None
        if recorder is None:
            return
        recording_id = recorder.recording.recording_id
        await self.storage.end_recording(recording_id, self.clock(), reason)
        await self.record(
            "recording_stopped",
            actor="server",
            org=live.org_id,
            subject=recording_id,
            session=live.machine.session_id,
            reason=reason,
            frames=recorder.next_seq,
            size=recorder.size,
        )

    def send_to_customer(self, live: LiveSession, message: ServerMessage) -> None:
        self.fanout.publish(customer_topic(live.machine.session_id), Frame(codec.encode(message)))

    async def apply(self, live: LiveSession, effects: Iterable[Effect]) -> None:
        """Carry out a state machine's effects, in order."""
        session_id = live.machine.session_id
        for effect in effects:
            if isinstance(effect, ToCustomer):
                self.fanout.publish(customer_topic(session_id), Frame(codec.encode(effect.message)))
            elif isinstance(effect, ToAgents):
                self.fanout.publish(agents_topic(session_id), Frame(codec.encode(effect.message)))
            elif isinstance(effect, ToWatcher):
                self.fanout.publish(watcher_topic(session_id), Frame(codec.encode(effect.message)))
            elif isinstance(effect, EndWatch):
                close = Frame(b"", close=(codec.CLOSE_NORMAL, f"watch ended: {effect.reason}"))
                self.fanout.publish(watcher_topic(session_id), close)
                await self.record(
                    "watch_ended",
                    actor=live.watcher_username,
                    org=live.org_id,
                    subject=session_id,
                    reason=effect.reason,
                )
                live.watcher_username = ""
            elif isinstance(effect, StartRecording):
                await self._start_recording(live)
            elif isinstance(effect, StopRecording):
                await self._stop_recording(live, effect.reason)
            elif isinstance(effect, EndSession):
                await self._finish(live, effect.reason)
        machine = live.machine
        if self.node and not machine.ended and machine.state != live.stored_state:
            live.stored_state = machine.state  # for supervisors' lists on other processes
            await self.storage.record_session_state(session_id, machine.state, machine.agent)

    async def _finish(self, live: LiveSession, reason: str) -> None:
        session_id = live.machine.session_id
        close = Frame(b"", close=(codec.CLOSE_NORMAL, f"session ended: {reason}"))
        self.fanout.publish(customer_topic(session_id), close)
        self.fanout.publish(agents_topic(session_id), close)
        # Live state goes first so nothing can use it while storage is written.
        self._live.pop(session_id, None)
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
            await self._stop_recording(live, "session_ended")  # stopped already unless it failed
            await self.storage.delete_join_codes(session_id)
            await self.storage.record_session_end(
                session_id, self.clock(), reason, live.machine.agent
            )
            await self.record(
                "session_ended",
                actor=live.agent_username,
                org=live.org_id,
                subject=session_id,
                reason=reason,
            )
            self._unfinished.pop(session_id, None)
        finally:
            self._closing.discard(session_id)

    async def _write_what_failed(self) -> Exception | None:
        """Retry the storage writes that failed (database away); the first error, if any."""
        failed: Exception | None = None
        for recording_id in tuple(self._failed_recordings):
            entry = self._failed_recordings.pop(recording_id, None)  # one writer for each
            if entry is None:
                continue
            org, why, at = entry
            try:
                await self.storage.end_recording(recording_id, at, "unavailable")
                await self.record(
                    "recording_failed", actor="server", org=org, subject=recording_id, reason=why
                )
            except Exception as exc:  # returned; tried again next time
                self._failed_recordings.setdefault(recording_id, entry)
                failed = failed or exc
        for live, reason in tuple(self._unfinished.values()):
            try:
                await self._close_in_storage(live, reason)
            except Exception as exc:  # returned
                failed = failed or exc
        return failed

    async def tick(self) -> None:
        """Apply deadlines to every live session; run about once a second. One session's storage
        error does not hold up the others: the first is raised once all were tried (the
        supervisor logs it and runs this again)."""
        now = self.clock()
        failed = await self._write_what_failed()
        for live in tuple(self._live.values()):
            try:
                effects = live.machine.tick(now)
                if effects:
                    await self.apply(live, effects)
                elif live.recorder is not None:
                    await self._flush(live)
            except Exception as exc:  # raised below
                failed = failed or exc
        if failed is not None:
            raise failed
        if now >= self._next_expired_purge:
            self._next_expired_purge = now + self.settings.purge_interval_seconds
            await self.storage.purge_expired(now)
        if now >= self._next_purge:
            self._next_purge = now + RECORDING_PURGE_SECONDS
            await self.recordings.purge(now)

    async def shutdown(self) -> None:
        """End every live session (server stopping)."""
        for live in tuple(self._live.values()):
            await self.apply(live, live.machine.shut_down())
        failed = await self._write_what_failed()
        if failed is not None:
            raise failed

    def session_states(self) -> list[str]:
        """The state of each live session (for the metrics)."""
        return [live.machine.state for live in tuple(self._live.values())]
