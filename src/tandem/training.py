"""Training before live sessions (issue 16, item 5; docs/training.md).

Two things stand between an account and a customer's session:

1. **The policy.** Each organisation has a versioned privacy and security policy (Tandem's own
   text, :data:`DEFAULT_POLICY`, is version 1 until an admin writes another). Agents,
   supervisors and auditors must acknowledge the current version before any session or
   recording is reachable (:data:`GATED_ACTIONS`); a new version asks again.
2. **Practice.** Agents and supervisors must have completed the practice exercise within the
   organisation's re-training interval (default ``training_interval_days``, 12 months as PCI
   DSS 12.6.3 asks) before ``join`` and ``watch``.

The practice exercise is a real session (real SDK, relay and end-to-end encryption) whose
customer is a script in the agent's own browser. The console asks for a **practice ticket**
(:meth:`Training.practice_ticket`: bound to the account, short-lived, single use, MACed with the
server's secrets key); the scripted customer's page hands it to the SDK's ``create``; the hub
then opens a *practice session*: in the agent's organisation, joinable only by that agent,
never listed, watched or recorded, tagged ``practice`` in every audit record. While it runs, the
hub notes what it can see of the exercise (:data:`SERVER_STEPS`) and stores that when the session
ends; :meth:`Training.complete` records a completion only from such evidence, once per practice
session. What the server cannot see (inside the encrypted channel: that a field was masked and
that control was refused on it) the console reports (:data:`CONSOLE_STEPS`); docs/training.md
says exactly what is and is not proved.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from tandem import crypto
from tandem.access import Action, Grant, Principal, authorize
from tandem.config import Settings
from tandem.exceptions import AuthenticationError, ConfigError, ConflictError, ForbiddenError
from tandem.storage.base import PolicyRecord, Storage, TrainingRecord, UserRecord

DEFAULT_POLICY_VERSION = 1
DEFAULT_POLICY = """\
Privacy and security policy for co-browsing (Tandem's default text; your admin can replace it)

1. You see a customer's page only with the customer's consent, and only to help with what the
   customer asked for.
2. Fields the site or your organisation masks stay masked. Never ask a customer to read out or
   show what is masked (card numbers, passwords, identity numbers).
3. Take control of a customer's page only when the customer allows it, say what you do, and
   give control back as soon as you are done.
4. A private page pauses sharing. Do not ask the customer to work around it.
5. Ask to record only when your organisation requires it; the customer decides.
6. Every session, control action, recording and playback is recorded in the audit trail.
7. Report anything that looks wrong (a code you did not expect, a warning about the encrypted
   connection) to your supervisor at once.
"""

POLICY_ROLES = frozenset({"agent", "supervisor", "auditor"})
"""Roles that must acknowledge the current policy (admins write it and reach no content)."""
PRACTICE_ROLES = frozenset({"agent", "supervisor"})
"""Roles that must have practised within the interval before joining or watching."""
GATED_ACTIONS: frozenset[Action] = frozenset(
    {
        "session.join",
        "session.watch",
        "session.list",
        "session.record",
        "recording.list",
        "recording.play",
        "recording.export",
    }
)
"""What needs the policy acknowledged (for :data:`POLICY_ROLES`)."""
LIVE_ACTIONS: frozenset[Action] = frozenset({"session.join", "session.watch"})
"""What needs practice too (for :data:`PRACTICE_ROLES`)."""

SERVER_STEPS = ("code", "consent", "encrypted", "shared", "control", "paused", "ended")
"""What the hub sees of a practice session: the agent joined with the code, the customer
consented, both browsers exchanged keys, encrypted page content flowed to the agent, the
customer's browser reported control granted and a private page paused, the agent ended it."""
CONSOLE_STEPS = ("masked", "refused")
"""What only the console can see (inside the encrypted channel): the masked field and why, and
the customer's browser refusing the agent's action on it."""

DAY = 86400.0


def policy_digest(text: str) -> str:
    """The SHA-256 (hex) of a policy text as stored: written into the audit records of its
    publication and of each acknowledgement, so that the trail (MACed, tamper-evident) says
    which text was accepted even if the stored text of that version is changed later."""
    return hashlib.sha256(text.encode()).hexdigest()


class TrainingRequiredError(ForbiddenError):
    """The account must acknowledge the policy or practise first; the message says which."""

    def __init__(self, message: str, need: str) -> None:
        super().__init__(message)
        self.need = need
        """``policy`` or ``practice``."""


class Record(Protocol):
    def __call__(self, action: str, **fields: Any) -> Awaitable[None]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Standing:
    """Where one account stands: which policy version it acknowledged, when it last practised."""

    username: str
    display_name: str
    role: str
    policy_version: int
    """The organisation's current version."""
    acknowledged: int | None
    training: TrainingRecord | None
    interval_days: int
    now: float

    @property
    def needs_acknowledgement(self) -> bool:
        return self.role in POLICY_ROLES and self.acknowledged != self.policy_version

    @property
    def due_at(self) -> float | None:
        """When the last practice expires (None: never practised)."""
        if self.training is None:
            return None
        return self.training.completed_at + self.interval_days * DAY

    @property
    def needs_practice(self) -> bool:
        if self.role not in PRACTICE_ROLES:
            return False
        due = self.due_at
        return due is None or due <= self.now

    @property
    def trained(self) -> bool:
        return not (self.needs_acknowledgement or self.needs_practice)

    def refusal(self, action: Action) -> TrainingRequiredError | None:
        """Why ``action`` is refused, or None."""
        if action in GATED_ACTIONS and self.needs_acknowledgement:
            return TrainingRequiredError(
                f"acknowledge your organisation's privacy and security policy (version "
                f"{self.policy_version}) first (console: Training)",
                "policy",
            )
        if action in LIVE_ACTIONS and self.needs_practice:
            why = "your training expired" if self.training else "you have not been trained yet"
            return TrainingRequiredError(
                f"{why}: complete the practice exercise first (console: Training)", "practice"
            )
        return None

    def to_json(self) -> dict[str, object]:
        return {
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role,
            "policy_version": self.policy_version,
            "acknowledged_version": self.acknowledged,
            "needs_acknowledgement": self.needs_acknowledgement,
            "needs_practice": self.needs_practice,
            "trained": self.trained,
            "trained_at": self.training.completed_at if self.training else None,
            "trained_on_version": self.training.policy_version if self.training else None,
            "training_method": self.training.method if self.training else None,
            "due_at": self.due_at,
            "interval_days": self.interval_days,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Ticket:
    """What a practice ticket names."""

    org_id: str
    username: str
    expires_at: float
    digest: str
    """Its single-use mark."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Training:
    """Policies, acknowledgements, practice and completions of every organisation."""

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        clock: Callable[[], float],
        entropy: crypto.Entropy,
        box: crypto.SecretBox | None,
        record: Record,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.clock = clock
        self.entropy = entropy
        self.box = box
        self.record = record

    # The policy

    async def policy(self, grant: Grant) -> PolicyRecord:
        """The organisation's current policy (Tandem's default text until one is written)."""
        stored = await self.storage.latest_policy(grant)
        if stored is not None:
            return stored
        return PolicyRecord(grant.org_id, DEFAULT_POLICY_VERSION, DEFAULT_POLICY, 0.0, "tandem")

    async def set_policy(self, principal: Principal, text: str) -> PolicyRecord:
        """A new version of the policy (admins): everyone asked again."""
        grant = authorize(principal, "org.manage")
        text = text.strip()
        if not text:
            raise ConfigError("the policy text is empty")
        if len(text) > self.settings.max_policy_text_chars:
            raise ConfigError(
                f"the policy text is longer than {self.settings.max_policy_text_chars} characters"
            )
        current = await self.policy(grant)
        if current.text == text:
            raise ConflictError(f"that is the current policy (version {current.version})")
        stored = await self.storage.add_policy(
            grant, text, principal.username, self.clock(), DEFAULT_POLICY_VERSION + 1
        )
        await self.record(
            "policy_changed",
            actor=principal.username,
            org=grant.org_id,
            version=stored.version,
            chars=len(text),
            sha256=policy_digest(stored.text),
        )
        return stored

    async def acknowledge(self, principal: Principal, version: int) -> Standing:
        """The account read and accepts ``version``, which must be the current one. Raises
        ForbiddenError while the account still signs in with a password an admin chose or
        without its own second factor: the acknowledgement is the account holder's word, and
        whoever set that password (the admin who reset it) could give it in their name. A
        version already acknowledged is answered as it stands, nothing written again."""
        grant = authorize(principal, "self")
        if principal.must_change_password:
            raise ForbiddenError("choose a new password first (console: Security)")
        if principal.needs_second_factor:
            raise ForbiddenError("set up two-step sign-in first (console: Security)")
        current = await self.policy(grant)
        if version != current.version:
            raise ConflictError(
                f"version {version} is not the current policy (version {current.version}): "
                "read the current one"
            )
        standing = await self.standing(principal)
        if standing.acknowledged == version:
            # Once per version: the first acknowledgement stands, and a loop of requests
            # writes neither the database nor the trail.
            return standing
        # Recorded first: stored first, a record that then failed was never written, as the
        # account's next acknowledgement finds the version acknowledged and writes nothing.
        await self.record(
            "policy_acknowledged",
            actor=principal.username,
            org=grant.org_id,
            version=version,
            sha256=policy_digest(current.text),
        )
        await self.storage.acknowledge_policy(grant, principal.username, version, self.clock())
        return await self.standing(principal)

    # Where accounts stand

    async def interval(self, grant: Grant) -> int:
        days = await self.storage.training_interval(grant)
        return days if days is not None else self.settings.training_interval_days

    async def set_interval(self, principal: Principal, days: int | None) -> int:
        grant = authorize(principal, "org.manage")
        if days is not None and not 1 <= days <= 3650:
            raise ConfigError("the re-training interval is from 1 to 3650 days")
        await self.storage.set_training_interval(grant, days)
        chosen = await self.interval(grant)
        await self.record(
            "training_interval_changed", actor=principal.username, org=grant.org_id, days=chosen
        )
        return chosen

    async def standing(self, principal: Principal) -> Standing:
        grant = Grant.server(principal.org, "training standing")
        policy = await self.policy(grant)
        acknowledged = (await self.storage.acknowledgements(grant)).get(principal.username)
        trainings = await self.storage.latest_trainings(grant, principal.username)
        return Standing(
            principal.username,
            principal.display_name,
            principal.role,
            policy.version,
            acknowledged,
            trainings.get(principal.username),
            await self.interval(grant),
            self.clock(),
        )

    async def require(self, principal: Principal, action: Action) -> None:
        """Raise :class:`TrainingRequiredError` if ``principal`` may not yet do ``action``."""
        if action not in GATED_ACTIONS or principal.role not in POLICY_ROLES:
            return
        refused = (await self.standing(principal)).refusal(action)
        if refused is not None:
            raise refused

    async def roster(self, grant: Grant, users: Iterable[UserRecord]) -> list[Standing]:
        """Every account of the organisation (``grant``'s) and where it stands."""
        policy = await self.policy(grant)
        acknowledged = await self.storage.acknowledgements(grant)
        trainings = await self.storage.latest_trainings(grant)
        interval = await self.interval(grant)
        now = self.clock()
        return [
            Standing(
                u.username,
                u.display_name,
                u.role,
                policy.version,
                acknowledged.get(u.username),
                trainings.get(u.username),
                interval,
                now,
            )
            for u in sorted(users, key=lambda u: u.username)
            if u.org_id == grant.org_id
        ]

    # Practice

    def _mac(self, payload: str) -> str:
        if self.box is None:
            raise ConfigError("the server has no secrets key")
        return self.box.digest(payload, "practice-ticket").removeprefix("k1:")

    def _mac_matches(self, mac: str, payload: str) -> bool:
        """``mac`` is the payload's under a key of the secrets key ring (a ticket issued before
        a rotation, or by a server that has not taken the new key up yet)."""
        if self.box is None:
            raise ConfigError("the server has no secrets key")
        macs = self.box.digests(payload, "practice-ticket")
        return any([crypto.secrets_equal(mac, m.removeprefix("k1:")) for m in macs])

    async def practice_ticket(self, principal: Principal) -> str:
        """A ticket for one practice session of ``principal`` (its policy acknowledged first:
        the completion names the version)."""
        authorize(principal, "session.practise")
        standing = await self.standing(principal)
        if standing.needs_acknowledgement:
            raise TrainingRequiredError(
                "acknowledge the current policy before the practice exercise", "policy"
            )
        claims = {
            "o": principal.org,
            "u": principal.username,
            "e": int(self.clock() + self.settings.practice_ticket_seconds),
            "n": crypto.new_token(self.entropy, 12),
        }
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        # Audited when a ticket starts its session (SessionHub.create_practice), not here: a
        # ticket alone reaches nothing, and a loop of requests wrote a record each.
        return f"{payload}.{self._mac(payload)}"

    def open_ticket(self, ticket: str) -> Ticket:
        """What a practice ticket names; raises AuthenticationError for a forged, changed or
        expired one. (Single use is the caller's: ``storage.use_once(ticket.digest, ...)``.)"""
        payload, _, mac = ticket.partition(".")
        if not payload or not mac or not self._mac_matches(mac, payload):
            raise AuthenticationError("practice ticket not accepted")
        try:
            claims = json.loads(_unb64(payload))
            org, username, expires = str(claims["o"]), str(claims["u"]), float(claims["e"])
        except (ValueError, KeyError, TypeError):
            raise AuthenticationError("practice ticket not accepted") from None
        if expires <= self.clock():
            raise AuthenticationError("practice ticket expired: start the exercise again")
        # Named alike under every key of the ring: a ticket used on a server that has taken up
        # a new secrets key is used on one that has not (the payload is no secret: the page
        # holds it).
        return Ticket(org, username, expires, crypto.secret_digest(payload, "practice-used"))

    async def complete(
        self, principal: Principal, console_steps: Iterable[str], session_id: str | None = None
    ) -> TrainingRecord:
        """Record a completion from a practice session of ``principal`` (its newest that ended,
        or ``session_id``) that ended with every step of :data:`SERVER_STEPS` seen by the
        server, and the console's own checks. The completion is dated when that session ended:
        the re-training interval runs from the practice itself."""
        grant = authorize(principal, "session.practise")
        if session_id is None:
            practice = await self.storage.latest_practice(grant, principal.username)
        else:
            practice = await self.storage.get_practice(session_id)
        if practice is None or practice.username != principal.username:
            raise ConflictError("no practice session of yours has ended: run the exercise")
        session_id = practice.session_id
        if practice.ended_at is None:
            raise ConflictError("the practice session has not ended yet")
        missing = [step for step in SERVER_STEPS if step not in practice.steps]
        told = sorted(set(console_steps))
        missing += [step for step in CONSOLE_STEPS if step not in told]
        if missing:
            raise ConflictError(f"the exercise is not complete: missing {', '.join(missing)}")
        standing = await self.standing(principal)
        if standing.needs_acknowledgement:
            raise TrainingRequiredError("acknowledge the current policy first", "policy")
        if not await self.storage.use_practice(session_id):
            raise ConflictError("that practice session was counted already")
        record = TrainingRecord(
            completion_id=crypto.new_token(self.entropy, 12),
            username=principal.username,
            org_id=principal.org,
            # When the practice happened, not when the console asked: a practice kept
            # unclaimed for months would otherwise count as fresh, and stretch the interval.
            completed_at=practice.ended_at,
            policy_version=standing.policy_version,
            method="practice",
            session_id=session_id,
            steps=",".join([*practice.steps, *(f"console:{s}" for s in CONSOLE_STEPS)]),
        )
        await self.storage.add_training(Grant.server(principal.org, "training completed"), record)
        await self.record(
            "training_completed",
            actor=principal.username,
            org=principal.org,
            subject=session_id,
            version=record.policy_version,
            method="practice",
        )
        return record

    async def record_by_operator(
        self, grant: Grant, user: UserRecord, reason: str
    ) -> TrainingRecord:
        """The operator (CLI) records training done elsewhere (for example a classroom course),
        with a reason; audited. Acknowledges the current policy on the user's behalf too: the
        operator states that the user was given it."""
        if grant.kind != "operator":
            raise ForbiddenError("only the operator records training by hand")
        if user.org_id != grant.org_id:
            raise ConfigError(f"{user.username} is not of organisation {grant.org_id}")
        reason = reason.strip()
        if not reason:
            raise ConfigError("say why (--reason): where and how the training was done")
        if any("\ud800" <= c <= "\udfff" for c in reason):  # bytes not UTF-8 on the command line
            raise ConfigError("the reason is not UTF-8 text: type it in UTF-8")
        policy = await self.policy(grant)
        now = self.clock()
        await self.storage.acknowledge_policy(grant, user.username, policy.version, now)
        record = TrainingRecord(
            completion_id=crypto.new_token(self.entropy, 12),
            username=user.username,
            org_id=grant.org_id,
            completed_at=now,
            policy_version=policy.version,
            method="operator",
            steps="",
        )
        await self.storage.add_training(grant, record)
        await self.record(
            "training_recorded",
            actor="cli",
            org=grant.org_id,
            subject=user.username,
            version=policy.version,
            sha256=policy_digest(policy.text),
            reason=reason[:200],
        )
        return record
