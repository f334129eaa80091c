"""What the server stores, and the Protocol every storage backend implements.

Secrets are never stored in the clear: join codes and sign-in tokens appear only as digests
(:func:`tandem.crypto.secret_digest`), passwords only as argon2id hashes.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Sequence
from typing import Protocol

from tandem.access import Grant
from tandem.audit import AuditRecord, AuditStore, Evidence
from tandem.exceptions import ConflictError

DEFAULT_ORG = "default"
"""The organisation every installation starts with (team ``support``, site ``demo``)."""
NO_ORG = "(none)"
"""Where the audit trail files a record that is no organisation's: a failed sign-in naming no
account, on a server with several organisations. No organisation has this id (ids follow the
username rule), so no organisation's auditors read it; the operator does (``tandem audit
export``). Filed under the default organisation, such records let its auditors tell a name
some other organisation's account has (its failures are filed there) from one nobody has."""
DEFAULT_TEAM = "support"
SELF_ORIGIN = "self"
VACUUM_NOTE = "vacuum_failed"
"""The database's note (Storage.note_installation) of the vacuum task's last problem: a VACUUM
refused (the role does not own the tables), overrun, or rows an older transaction still sees.
The compliance check's ``erasure_residue`` item fails while it is there; the next round that
leaves nothing removes it."""


SET_ASIDE_BY_BINDING = "single sign-on binding"
""":attr:`UserRecord.password_set_by` of the owner's own password, made temporary when an admin
bound the account to the identity provider (no username has a space): nobody chose it for the
owner, and once expired its owner is told it was set aside by the binding, not that "this
temporary password" expired. Bindings made before this value was kept left None there."""


CLAIM_DETAIL = "temporary_chosen_by"
"""The detail of a ``password_changed`` record that replaced a temporary password: who chose
that password (None when no version kept it). Such a record is a claim, listed apart in the
owner's activity (:meth:`Storage.account_activity`)."""


@dataclasses.dataclass(frozen=True, slots=True)
class UserRecord:
    username: str
    display_name: str
    role: str
    password_hash: str
    created_at: float
    totp_secret: str | None = None
    """Encrypted (tandem.crypto.SecretBox); None when the account has no second factor."""
    totp_last_step: int = 0
    recovery_codes: tuple[str, ...] = ()
    """SHA-256 digests of unused recovery codes."""
    org_id: str = dataclasses.field(kw_only=True)
    mfa_exempt: bool = False
    """Created with ``--no-mfa`` (local demos only): may work without a second factor."""
    pending_totp: str | None = None
    """Encrypted seed being set up in the console, until a code from it is confirmed."""
    teams: tuple[str, ...] = ()
    """Teams of its organisation the user belongs to (read-only here: set with set_user_teams)."""
    oidc_identity: str | None = None
    """The identity provider account (issuer and subject, :func:`tandem.oidc.identity_key`) an
    admin or the operator bound to this user; None: no sign-in through a provider."""
    password_change_required: bool = False
    """Set by an admin's password reset: the next sign-in must choose a new password first."""
    password_set_at: float | None = None
    """When the password was set (made, reset, changed by its owner); a temporary one signs in
    only ``temporary_password_seconds`` after it. Revisions 0019 and 0020 gave the passwords
    there the upgrade's time. None: set by a version before 0019 after the upgrade (a server of
    a cluster not yet upgraded made the account: ``created_at`` stands for it)."""
    password_set_by: str | None = None
    """Who chose a temporary password (the admin's username, ``cli`` for the operator): the
    owner is shown whose password it replaced; None for a password the owner chose;
    :data:`SET_ASIDE_BY_BINDING` for the owner's own, made temporary by a binding to the
    identity provider."""
    claimed_password_hash: str | None = None
    """The hash of the temporary password the account's last claim replaced (its first own
    password change after a new account or a reset): refused as a new password, so that
    whoever claimed it first cannot give the account back the password its owner was told, no
    longer temporary (the owner never asked to choose its own)."""
    disabled: bool = False
    """Disabled by an admin or the operator: no sign-in, no socket, until enabled again."""


@dataclasses.dataclass(frozen=True, slots=True)
class OrgRecord:
    org_id: str
    name: str
    created_at: float
    retention_days: int = 30
    """How long ended sessions' metadata and recordings are kept."""
    recording_key: str | None = None
    """The organisation's recording public key (X25519, base64url), or None: no recordings.
    Its private key never reaches the server (docs/recordings.md)."""


@dataclasses.dataclass(frozen=True, slots=True)
class SiteRecord:
    """A website whose pages may start sessions: its origin, organisation and serving teams."""

    site_id: str
    org_id: str
    origin: str
    """``scheme://host[:port]``, or :data:`SELF_ORIGIN` for the server's own pages (demo shop)."""
    name: str
    teams: tuple[str, ...] = ()
    policy: str | None = None
    """The organisation's masking policy for this site (JSON text), or None for the server's."""
    token_key: str | None = None
    """Encrypted (SecretBox) HMAC key for customer tokens; None until one is issued."""
    require_token: bool = False
    """Only customers with a valid token from the site's backend may start sessions."""
    verified: bool = True
    """The origin is proved to be the organisation's (or approved by the operator); until then
    its pages start no sessions (:mod:`tandem.site_verification`)."""


@dataclasses.dataclass(frozen=True, slots=True)
class LoginRecord:
    token_digest: str
    username: str
    expires_at: float
    last_seen: float = 0.0
    method: str = "password"
    """How the user signed in (:mod:`tandem.auth`): ``password`` (alone: the account had no
    second factor), ``password+totp`` (with it) or ``oidc``."""


@dataclasses.dataclass(frozen=True, slots=True)
class TakenCode:
    """A join code taken (and so deleted): its session and when it would have expired, so a
    code put back (its session is held by another process) keeps its own expiry."""

    session_id: str
    expires_at: float


@dataclasses.dataclass(frozen=True, slots=True)
class SessionRecord:
    session_id: str
    created_at: float
    ended_at: float | None
    end_reason: str | None
    agent: str | None
    org_id: str = dataclasses.field(kw_only=True)
    site_id: str = ""
    node: str = ""
    """The server process holding the session's live state (scale-out, docs/scale-out.md)."""
    state: str = "waiting"
    """Kept current only with several processes (for supervisors' lists on every process)."""


@dataclasses.dataclass(frozen=True, slots=True)
class SuspendedSession:
    """A live session a stopping server handed over to the next process (tandem.hub): what
    resuming it needs, and nothing that would let anyone in. Resume tokens are keyed digests
    (HMAC under the server's secrets key): a copied row opens nothing."""

    session_id: str
    org_id: str
    site_id: str
    state: str
    """``waiting``, ``pending_consent`` or ``sharing``: the customer's consent as it was."""
    agent: str | None
    """The joined agent's display name."""
    agent_username: str
    agent_login: str
    """Digest of the sign-in the agent joined with: only it may rejoin."""
    resume_digest: str
    agent_resume_digest: str
    created_at: float
    """The session's start: its absolute limit (``max_session_seconds``) runs from here."""
    code_expires_at: float
    last_activity: float
    suspended_at: float
    expires_at: float
    """The end of the resume window: no side back by then, the session ends."""
    handshakes_from_customer: int
    handshakes_from_agent: int
    """Key-exchange messages relayed so far (their limit is not reset by a restart)."""
    team_policies: str
    """The joined agent's teams' policies sent to the customer (JSON list)."""


@dataclasses.dataclass(frozen=True, slots=True)
class RecordingRecord:
    """A recording of one session, made with the customer's consent. Its frames are the
    customer's ciphertext as relayed; the content keys inside are wrapped for the organisation's
    recording key, whose private half the server never has."""

    recording_id: str
    org_id: str
    session_id: str
    site_id: str
    agent: str
    """Username of the agent who asked to record."""
    key_id: str
    """Which recording key of the organisation the content keys are wrapped for."""
    started_at: float
    ended_at: float | None = None
    end_reason: str | None = None
    frames: int = 0
    size: int = 0
    """Bytes of frames stored."""


@dataclasses.dataclass(frozen=True, slots=True)
class HoldRecord:
    """A legal hold: while it exists, purge and erasure leave its target alone."""

    org_id: str
    kind: str
    """``recording`` (target: a recording id) or ``subject`` (target: a customer's ``sub``, or
    the id of a session started without a customer token, whose customer has no ``sub``)."""
    target: str
    reason: str
    placed_by: str
    placed_at: float


class ViewChanged(ConflictError):
    """What a customer's export found changed before its transaction read it again
    (:meth:`Storage.read_for_export`): nothing was given out or recorded; find it again."""


def _exported_session(session: SessionRecord) -> tuple[object, ...]:
    """What an export says of a session (tandem.subjects.session_json), and whose it is."""
    return (
        session.session_id,
        session.org_id,
        session.site_id,
        session.created_at,
        session.ended_at,
        session.end_reason,
        session.agent,
    )


def _exported_recording(recording: RecordingRecord) -> RecordingRecord:
    """A recording as an export gives it out: a running one's growing frame count and size
    left out (the export reads the frames its header counts, not those added since)."""
    if recording.ended_at is None:
        return dataclasses.replace(recording, frames=0, size=0)
    return recording


@dataclasses.dataclass(frozen=True, slots=True)
class ExportView:
    """What a customer's export found (tandem.subjects.Subjects.find), and how it read it:
    :meth:`Storage.read_for_export` reads, in its transaction once it holds what was found,
    the trail concerning it, then the customer's links, sessions and recordings again, and
    gives out nothing (:class:`ViewChanged`) unless those are what was found. So the archive
    is one moment's view: the trail it hands out is every record concerning what it lists, as
    it was when that trail was read. (Read apart and outside any transaction, as they were, a
    recording ended, erased or started, or a session of the customer begun, between the reads
    went out listed one way and told the other way in the trail.)"""

    org_id: str
    forms: tuple[str, ...]
    """The spellings of the customer's ``sub`` whose links were read."""
    links: tuple[tuple[str, str], ...]
    """(session id, pseudonym) of every link found under ``forms``."""
    session_ids: tuple[str, ...]
    sessions: tuple[SessionRecord, ...]
    recordings: tuple[RecordingRecord, ...]
    audit_subjects: tuple[str, ...]
    """The trail's records concerning these (the sessions' and recordings' ids) ..."""
    audit_actors: tuple[str, ...]
    """... or written by these (the customer's pseudonyms) are the customer's."""
    now: float | None = None
    """When the look-up read the recordings (:meth:`Storage.recordings_of_sessions`): those
    past their retention then are left out of the re-read as they were of the look-up."""

    def frame_counts(self) -> dict[str, int]:
        """How many frames of each recording the export gives out (those its header counts),
        by recording id: looked up in a mapping, not in the list for each recording, which
        took a customer with tens of thousands of recordings minutes."""
        return {recording.recording_id: recording.frames for recording in self.recordings}

    def same(
        self,
        links: Sequence[tuple[str, str]],
        sessions: Sequence[SessionRecord],
        recordings: Sequence[RecordingRecord],
    ) -> bool:
        """Whether what the transaction read is what was found."""
        mine = [s for s in sessions if s.org_id == self.org_id]
        return (
            sorted(links) == sorted(self.links)
            and sorted(map(_exported_session, mine), key=repr)
            == sorted(map(_exported_session, self.sessions), key=repr)
            and sorted(map(_exported_recording, recordings), key=repr)
            == sorted(map(_exported_recording, self.recordings), key=repr)
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ExportRead:
    """What a customer's export read in its transaction (:meth:`Storage.read_for_export`)."""

    frames: list[list[bytes]]
    """Every frame of each recording read, in the order asked."""
    audit: tuple[AuditRecord, ...] = ()
    """The trail concerning the customer (:class:`ExportView`), in the organisation's order."""


@dataclasses.dataclass(frozen=True, slots=True)
class SubjectErasure:
    """What :meth:`Storage.erase_subject` removed (counts and ids only, for the audit trail)."""

    sessions: tuple[str, ...]
    recordings: tuple[str, ...]
    links: int


@dataclasses.dataclass(frozen=True, slots=True)
class Inventory:
    """The sessions' and recordings' rows stored, ``(org_id, id)`` each, read after the audit
    trail's head ``head_seq`` (0: no record yet): what ``tandem audit verify`` compares with
    what the trail says exists (tandem.reconcile)."""

    head_seq: int
    sessions: frozenset[tuple[str, str]]
    recordings: frozenset[tuple[str, str]]


@dataclasses.dataclass(frozen=True, slots=True)
class PolicyRecord:
    """One version of an organisation's privacy and security policy (tandem.training)."""

    org_id: str
    version: int
    text: str
    created_at: float
    created_by: str


@dataclasses.dataclass(frozen=True, slots=True)
class TrainingRecord:
    """A training completion: a practice exercise the server saw, or one the operator recorded."""

    completion_id: str
    username: str
    org_id: str
    completed_at: float
    policy_version: int
    method: str
    """``practice`` or ``operator``."""
    session_id: str = ""
    steps: str = ""
    """Comma-separated: what the server saw, then what the console reported (tandem.training)."""


@dataclasses.dataclass(frozen=True, slots=True)
class PracticeRecord:
    """A practice session and the steps of the exercise the server saw in it."""

    session_id: str
    username: str
    org_id: str
    started_at: float
    ended_at: float | None = None
    steps: tuple[str, ...] = ()
    used: bool = False
    """A completion was recorded from it already."""


@dataclasses.dataclass(frozen=True, slots=True)
class AuditCount:
    """How many events of one kind with no signed-in actor one process saw in one interval
    (docs/audit.md, "Events with no signed-in actor")."""

    bucket: float
    """The interval's start (epoch seconds)."""
    action: str
    org: str
    """The organisation the event concerned ("" when none: an unknown origin)."""
    node: str
    count: int
    detail: str
    """The last reason seen in the interval."""


@dataclasses.dataclass(frozen=True, slots=True)
class SealedSecret:
    """A value stored sealed with the secrets key (:class:`tandem.crypto.SecretBox`), as a
    rotation of the key reseals it: ``kind`` names where (:data:`SEALED_KINDS`), ``key`` the
    row (a username, site id, organisation id or state digest)."""

    kind: str
    key: str
    sealed: str


SEALED_KINDS = ("totp_secret", "pending_totp", "site_token_key", "org_oidc", "oidc_pending")
"""Everything the database keeps sealed with the secrets key: an account's authenticator seed
and one being set up, a site's customer-token key, an organisation's single sign-on settings
(its client secret), a single sign-on start under way."""


class Storage(AuditStore, Protocol):
    """Async storage. Implementations must make :meth:`take_join_code` atomic (single use) and
    :meth:`append_audit` atomic (sequence and chain)."""

    retention_clock_skew: float
    """How far ahead of a reader's own clock the recordings' purges' clock is believed, in
    seconds (:meth:`read_recording`; the ``max_retention_clock_skew_seconds`` setting): a
    recording past its retention by the last purge's clock is given out by no server, even one
    whose clock is behind, up to this much behind (a clock set far ahead would otherwise have
    every server refuse every recording for as long)."""
    audit_append_attempts: int
    """Attempts at appending one audit record while other servers take the next numbers first,
    before the append fails (the ``audit_append_attempts`` setting)."""

    async def add_user(self, grant: Grant, user: UserRecord) -> None:
        """Raises :class:`~tandem.exceptions.UserExistsError` if the name is taken, and
        NotFoundError if ``user`` is not of the grant's organisation."""
        ...

    async def get_user(self, username: str) -> UserRecord | None: ...

    async def use_second_factor(
        self, username: str, step: int | None, recovery_digest: str | tuple[str, ...] | None
    ) -> bool:
        """Accept a TOTP step newer than the last used, or consume a recovery code stored under
        ``recovery_digest`` (or any of several forms of one code: one statement); atomic."""
        ...

    async def count_users(self) -> int: ...

    async def sealed_secrets(self) -> list[SealedSecret]:
        """Every value sealed with the secrets key (:data:`SEALED_KINDS`), read at once (a few
        per account and site): for ``tandem secrets``."""
        ...

    async def reseal_secret(self, secret: SealedSecret, resealed: str) -> bool:
        """Replace ``secret`` with ``resealed`` (the same value sealed with another key) if its
        row still holds ``secret.sealed``: False, and nothing changed, if it went or changed
        meanwhile (a new authenticator, new settings). One statement: a crash leaves either."""
        ...

    async def name_recovery_digests(self, key_id: str) -> int:
        """Name ``key_id`` in every recovery-code digest keyed before digests named their key
        (``k1:<mac>`` becomes ``k2:<key_id>:<mac>``; the MAC is unchanged): done with the key
        current until a rotation. Returns how many; one statement."""
        ...

    async def forget_recovery_codes(self, codes: list[tuple[str, str]]) -> int:
        """Delete these (username, digest) recovery codes (keyed with a key retired: they can
        match nothing again); returns how many there were. One transaction."""
        ...

    async def recovery_code_digests(self) -> list[tuple[str, str]]:
        """(username, digest) of every unused recovery code: which key each was keyed with
        (``tandem secrets``)."""
        ...

    async def add_login(self, login: LoginRecord, proved: UserRecord | None = None) -> bool:
        """Store a sign-in. With ``proved`` (the account as the sign-in checked it), only if the
        account's password, second factor and provider binding are still those and it is not
        disabled (False otherwise): a change committed while the sign-in was checked ended
        every sign-in of the account, and must end this one too. Atomic with such changes."""
        ...

    async def get_login(self, token_digest: str) -> LoginRecord | None: ...

    async def delete_login(self, token_digest: str) -> None: ...

    async def touch_login(self, token_digest: str, now: float) -> None:
        """Record activity on a sign-in (for idle expiry)."""
        ...

    async def delete_logins_of(self, grant: Grant, username: str) -> int:
        """Sign a user of the grant's organisation out everywhere; returns how many sign-ins
        ended (0 when ``username`` is no account of that organisation: usernames are free
        again once deleted, and the name may be another organisation's by now)."""
        ...

    async def delete_logins_by_method(self, grant: Grant, method: str) -> int:
        """End every sign-in made by ``method`` (``oidc``: through the identity provider) of
        the grant's organisation's accounts; returns how many ended."""
        ...

    async def put_join_code(
        self, grant: Grant, code_digest: str, session_id: str, expires_at: float
    ) -> None:
        """A join code of the grant's organisation. Raises
        :class:`~tandem.exceptions.TandemError` if the digest is already live."""
        ...

    async def take_join_code(self, grant: Grant, code_digest: str, now: float) -> TakenCode | None:
        """Return the session and expiry of a live code of the grant's organisation and delete
        the code, atomically; else None. Another organisation's code is not taken (it stays
        valid)."""
        ...

    async def delete_join_codes(self, session_id: str) -> None: ...

    async def record_session_start(
        self,
        grant: Grant,
        session_id: str,
        created_at: float,
        site_id: str = "",
        node: str = "",
    ) -> None:
        """A session of the grant's organisation started."""
        ...

    async def record_session_end(
        self, session_id: str, ended_at: float, reason: str, agent: str | None
    ) -> None: ...

    async def get_session(self, session_id: str) -> SessionRecord | None: ...

    async def sessions_of(self, grant: Grant, session_ids: Sequence[str]) -> list[SessionRecord]:
        """The organisation's sessions among ``session_ids`` still stored, in the order asked
        (any number of ids: one statement, where one :meth:`get_session` each took a customer
        with tens of thousands of sessions minutes)."""
        ...

    async def record_session_state(self, session_id: str, state: str, agent: str | None) -> None:
        """A live session's state and agent (display name) changed (scale-out only)."""
        ...

    async def live_sessions(self, grant: Grant) -> list[SessionRecord]:
        """The organisation's sessions that have not ended, oldest first."""
        ...

    async def waiting_practice(self, grant: Grant, username: str) -> list[SessionRecord]:
        """The organisation's practice sessions (tandem.training) of ``username`` still waiting
        for the agent (``waiting`` or ``pending_consent``, not handed over), oldest first:
        whichever process holds them (``max_waiting_practice_per_account``)."""
        ...

    # Organisations, teams, sites, user administration. Names are validated by the caller.

    async def add_org(self, org: OrgRecord) -> None:
        """Raises :class:`~tandem.exceptions.ConflictError` if the id is taken."""
        ...

    async def get_org(self, grant: Grant) -> OrgRecord | None: ...

    async def all_orgs(self) -> list[OrgRecord]:
        """Every organisation, by id (the operator's `tandem org list`)."""
        ...

    async def only_org(self) -> str | None:
        """The id of the only organisation while there is exactly one, else None; reads two
        rows at most (asked for every throttled sign-in and single sign-on start)."""
        ...

    async def update_org(self, grant: Grant, org: OrgRecord) -> None:
        """Store ``org``'s name, retention and recording key. Raises NotFoundError if ``org``
        is not the grant's organisation."""
        ...

    async def add_team(self, grant: Grant, team: str) -> None:
        """Raises ConflictError if the team exists."""
        ...

    async def delete_team(self, grant: Grant, team: str) -> bool: ...

    async def list_teams(self, grant: Grant) -> list[str]: ...

    async def team_policies(self, grant: Grant, teams: tuple[str, ...]) -> dict[str, str]:
        """The policies (JSON text) of those of ``teams`` that have one."""
        ...

    async def set_team_policy(self, grant: Grant, team: str, policy: str | None) -> bool:
        """Set or clear a team's policy; False if there is no such team."""
        ...

    async def list_users(self, grant: Grant) -> list[UserRecord]: ...

    async def update_user(
        self, grant: Grant, username: str, *, role: str, display_name: str
    ) -> bool:
        """Change ``username`` of ``grant``'s organisation; False if there is none (usernames
        are unique on the server but free again once deleted: a name checked a moment ago may be
        another organisation's account now, and must not be changed through this grant)."""
        ...

    async def set_user_teams(self, grant: Grant, username: str, teams: tuple[str, ...]) -> None:
        """Replace the user's teams. Raises NotFoundError naming a team that does not exist,
        or the user if it is not of ``grant``'s organisation."""
        ...

    async def set_second_factor(
        self, grant: Grant, username: str, totp_secret: str | None, recovery_codes: tuple[str, ...]
    ) -> bool:
        """Replace (or, with None, remove) the TOTP seed and recovery code digests of
        ``username`` of ``grant``'s organisation; False if there is none."""
        ...

    async def renew_recovery_codes(
        self, username: str, totp_secret: str, password_hash: str, recovery_codes: tuple[str, ...]
    ) -> bool:
        """Replace every recovery code of ``username`` with ``recovery_codes`` (digests), if the
        account still has this seed and password (those the renewal was proved with): False,
        and nothing changed, otherwise. One transaction: the old codes stop working as the new
        ones start."""
        ...

    async def enable_second_factor(
        self,
        username: str,
        pending: str,
        recovery_codes: tuple[str, ...],
        step: int,
        login: LoginRecord,
        password_hash: str | None = None,
    ) -> bool:
        """Turn on the seed pending for ``username`` (still ``pending``, the account not
        disabled, and with ``password_hash`` given still that password) with ``recovery_codes``
        (digests), ``step`` spent, every sign-in of the account ended and ``login`` opened in
        their place: all in one transaction, so a failure leaves the account as it was. False
        (nothing written) if the account, its pending seed or its password changed meanwhile
        (a password change ended every sign-in: the enrolling one too)."""
        ...

    async def set_pending_second_factor(self, username: str, sealed: str | None) -> None:
        """Keep (or drop) an encrypted TOTP seed that is being set up."""
        ...

    async def set_oidc_identity(self, grant: Grant, username: str, identity: str | None) -> bool:
        """Bind ``username`` of ``grant``'s organisation to an identity provider account (or,
        with None, unbind it); False if there is no such user."""
        ...

    async def user_for_oidc_identity(self, identity: str) -> UserRecord | None:
        """The user bound to that identity provider account, if exactly one is: None when
        none is, and when two are (two admins' bindings that raced past the check of the
        other's), so that the provider's sign-in reaches neither rather than either."""
        ...

    async def set_user_disabled(self, grant: Grant, username: str, disabled: bool) -> bool:
        """Disable or enable ``username`` of ``grant``'s organisation; False if there is none."""
        ...

    async def set_password(
        self,
        grant: Grant,
        username: str,
        password_hash: str,
        change_required: bool,
        *,
        at: float,
        chosen_by: str | None,
        replacing: str | None = None,
        claimed: str | None = None,
    ) -> int:
        """Replace the password hash of ``username`` of ``grant``'s organisation and end every
        sign-in of the user, in one transaction (a sign-in check never sees a live sign-in of the
        new password's account); ``change_required``: it must be changed at the next sign-in (an
        admin's reset). ``at`` (when) and ``chosen_by`` (who chose a temporary one) are kept
        with it (:attr:`UserRecord.password_set_at`, :attr:`UserRecord.password_set_by`);
        ``claimed``, the hash of the temporary password a claim replaces, is kept too
        (:attr:`UserRecord.claimed_password_hash`; None leaves the one kept). With
        ``replacing``, only if the stored hash is still that one (the owner's change, checked
        against it): ConflictError, nothing written, if another change was stored since.
        Returns the number of sign-ins ended. Raises NotFoundError (nothing written) if the
        organisation has no such user: the name may have been deleted and made another
        organisation's account while the password was hashed."""
        ...

    async def get_oidc(self, grant: Grant) -> str | None:
        """The organisation's identity provider settings (encrypted JSON), if any."""
        ...

    async def set_oidc(self, grant: Grant, sealed: str | None) -> None: ...

    async def put_oidc_pending(
        self, grant: Grant, state_digest: str, sealed: str, expires_at: float
    ) -> None:
        """Keep a sign-in to the grant's organisation that went to the identity provider
        (encrypted), by its state."""
        ...

    async def take_oidc_pending(self, state_digest: str, now: float) -> tuple[str, str] | None:
        """Return and delete a pending sign-in (org, sealed); None if unknown or expired."""
        ...

    async def delete_user(self, grant: Grant, username: str) -> bool:
        """Delete ``username`` of ``grant``'s organisation; False if there is none."""
        ...

    async def add_site(self, grant: Grant, site: SiteRecord) -> None:
        """Raises ConflictError if the id is taken, if the organisation has a site for the
        origin, or if ``site`` is verified and another site holds the origin verified;
        NotFoundError for a missing team or a site not of the grant's organisation. An
        unverified site never conflicts with another organisation's site of its origin."""
        ...

    async def update_site(self, grant: Grant, site: SiteRecord) -> None:
        """Store every field of ``site`` (teams replaced); same errors as add_site, and
        NotFoundError if the grant's organisation has no site ``site.site_id``."""
        ...

    async def mark_site_verified(self, grant: Grant, site_id: str, origin: str) -> SiteRecord:
        """Mark the grant's organisation's site ``site_id`` verified, if its origin is still
        ``origin`` (the one proved), and return it as stored; nothing else of it is written (a
        proof takes seconds: what its admin changed meanwhile stays). Raises NotFoundError if
        there is no such site (or its origin changed), ConflictError if another site holds the
        origin verified (``sites_verified_origin``)."""
        ...

    async def get_site(self, site_id: str) -> SiteRecord | None: ...

    async def site_for_origin(self, origin: str) -> SiteRecord | None:
        """The verified site that holds ``origin`` (at most one server-wide), or None. Unproved
        registrations of the origin (any organisation may have one) are never returned: every
        lookup that decides what an origin's pages get (sessions, tokens, policies, CORS) goes
        through here."""
        ...

    async def org_site_for_origin(self, grant: Grant, origin: str) -> SiteRecord | None:
        """The grant's organisation's site for ``origin``, verified or not (at most one)."""
        ...

    async def list_sites(self, grant: Grant) -> list[SiteRecord]: ...

    async def all_sites(self) -> list[SiteRecord]:
        """Every organisation's sites: for the operator (the CLI) and start-up checks only."""
        ...

    async def delete_site(self, grant: Grant, site_id: str) -> bool:
        """Delete ``site_id`` of ``grant``'s organisation; False if there is none."""
        ...

    # Recordings (ciphertext only).

    async def add_recording(self, grant: Grant, recording: RecordingRecord) -> None:
        """Raises ConflictError if the id is taken, NotFoundError if ``recording`` is not of the
        grant's organisation."""
        ...

    async def append_recording_frames(
        self, recording_id: str, first_seq: int, frames: Sequence[bytes]
    ) -> None:
        """Store frames numbered ``first_seq``, ``first_seq + 1``, ... and grow the recording's
        ``frames`` and ``size``, atomically. Raises NotFoundError if the recording is gone
        (erased meanwhile) or has ended (a late frame is not kept), and ConflictError if a
        number is already taken."""
        ...

    async def end_recording(
        self,
        recording_id: str,
        ended_at: float,
        reason: str,
        evidence: Evidence[bool] | None = None,
    ) -> bool:
        """Mark a recording ended (no-op if it is gone or already ended); whether this call
        ended it (False: erased, or ended already, by another process too). The records
        ``evidence`` makes of that are appended in the same transaction: ended with them, or
        not at all (an erasure, which needs it ended, never goes before its end's record)."""
        ...

    async def get_recording(
        self, recording_id: str, now: float | None = None
    ) -> RecordingRecord | None:
        """The recording, or None if there is none; given ``now``, None too if it is past its
        organisation's retention then and under no legal hold (as :meth:`read_recording`)."""
        ...

    async def list_recordings(
        self, grant: Grant, limit: int, now: float | None = None
    ) -> list[RecordingRecord]:
        """The organisation's recordings, newest first, at most ``limit``; given ``now``,
        without those past their retention then and under no legal hold (as
        :meth:`read_recording`: as if erased, awaiting the purge)."""
        ...

    async def recording_frames(self, recording_id: str) -> list[bytes]:
        """Every frame of a recording, in order (empty if none or gone)."""
        ...

    async def read_recording(
        self,
        recording_id: str,
        evidence: Evidence[RecordingRecord | None] | None = None,
        now: float | None = None,
    ) -> tuple[RecordingRecord, list[bytes]] | None:
        """A recording and every frame of it, in order, read in one transaction with the audit
        records ``evidence`` makes of it (its playback, its export) appended in it: None (and
        no record) if it is not there, or, given ``now``, if it is past its organisation's
        retention then and under no legal hold (what :meth:`purge_recordings` erases). Its
        erasure waits for this, or this finds it gone: a playback is never recorded after the
        erasure of what it gave out."""
        ...

    async def read_for_export(
        self,
        session_ids: Sequence[str],
        recording_ids: Sequence[str],
        evidence: Evidence[ExportRead | None] | None = None,
        linked_ids: Sequence[str] = (),
        *,
        listed_ids: Sequence[str] = (),
        view: ExportView | None = None,
    ) -> ExportRead | None:
        """Every frame of each of ``recording_ids`` (in that order), read in one transaction
        with the records ``evidence`` makes (a customer's export) appended in it, the sessions
        ``session_ids``, those recordings and ``listed_ids`` (listed, not read: too large for
        the archive) and the customer's links to the sessions ``linked_ids`` held against an
        erasure meanwhile; None (and ``evidence`` given None: nothing recorded) if one of them
        is no longer there (erased since the caller found it). With ``view``: the trail
        concerning the customer read too, and what was found read again after it, and the
        same, or :class:`ViewChanged` (nothing read out, nothing recorded); a running
        recording's frames up to the count ``view`` gives it."""
        ...

    async def delete_recording(
        self, recording_id: str, evidence: Evidence[bool] | None = None
    ) -> bool:
        """Erase a recording and its frames; False if there was none. ``evidence`` (if
        any): its audit records, appended in the same transaction (tandem.audit.Evidence).
        Raises ConflictError, erasing nothing, if a legal hold covers the recording or the
        customer its session served (checked in the erasing transaction)."""
        ...

    async def purge_recordings(
        self, now: float, evidence: Evidence[list[RecordingRecord]] | None = None
    ) -> list[RecordingRecord]:
        """Erase ended recordings older than their organisation's retention (``ended_at`` before
        ``now - retention_days * 86400``) and return what was erased (for the audit trail).
        Never waits for a reader: one a playback or an export holds now is left to the next
        purge (none starts on a recording past its retention: :meth:`read_recording`).
        ``evidence`` (if any): its audit records, appended in the same transaction
        (tandem.audit.Evidence)."""
        ...

    async def overdue_recordings(self, now: float) -> list[RecordingRecord]:
        """The ended recordings past their organisation's retention at ``now`` and under no
        legal hold (what :meth:`purge_recordings` erases), oldest first: after a purge, those
        it skipped because a reader held them. Read, never locked or waited for."""
        ...

    async def inventory(self) -> Inventory:
        """The head of the audit trail, then every session's and recording's id (in that order:
        a row whose creation record is at or before the head was stored before it was read)."""
        ...

    async def audit_page(self, grant: Grant, after_seq: int, limit: int) -> list[AuditRecord]:
        """One organisation's audit records after position ``after_seq`` of its own trail
        (:attr:`AuditRecord.org_seq`, never the chain's ``seq``), at most ``limit``, in order."""
        ...

    async def audit_search(
        self, grant: Grant, before_seq: int, limit: int, text: str = ""
    ) -> list[AuditRecord]:
        """One organisation's audit records before position ``before_seq`` of its own trail
        (:attr:`AuditRecord.org_seq`), newest first, at most
        ``limit``; with ``text``, only those whose action, actor or subject contains it
        (case-insensitive)."""
        ...

    async def add_audit_counts(self, counts: Sequence[AuditCount]) -> None:
        """Store interval counts of events with no signed-in actor; a row already there for the
        same interval, kind, organisation and process is added to."""
        ...

    async def audit_counts(
        self, since: float = 0.0, grant: Grant | None = None, limit: int = 1000
    ) -> list[AuditCount]:
        """Stored counts of intervals starting at ``since`` or later, by interval, at most
        ``limit``: of the organisation ``grant`` was given for, or of all (the operator) with
        ``grant`` None."""
        ...

    async def purge_audit_counts(self, before: float) -> int:
        """Delete counts of intervals that started before ``before``; how many rows went."""
        ...

    async def organisation_count(self) -> int:
        """How many organisations there are (the fair share of live sessions)."""
        ...

    # Back-off counts (tandem.lockout.SharedBackoff): keys are "user:…", "ip:…", "join-org:…".

    async def backoff_state(self, keys: Sequence[str]) -> dict[str, tuple[int, float, float]]:
        """``(failures, locked_until, last_failure)`` of those of ``keys`` that have failed."""
        ...

    async def backoff_failed(self, key: str, now: float, forget_after: float) -> int:
        """Count one more failure of ``key`` (atomically), from one again if its last failure
        was ``forget_after`` seconds ago or longer; return the new count."""
        ...

    async def backoff_lock(self, key: str, locked_until: float) -> None:
        """Make ``key`` wait until ``locked_until`` (never shortens a longer wait)."""
        ...

    async def backoff_clear(self, key: str) -> None: ...

    async def backoff_forgive(self, key: str, free: int) -> None:
        """One failure fewer of ``key`` (atomically; never below none), and no wait once it
        has ``free`` or fewer."""
        ...

    async def use_once(self, digest: str, expires_at: float) -> bool:
        """Mark a single-use secret (a customer token's id) used until ``expires_at``; True the
        first time, False while the mark lasts. Atomic across processes."""
        ...

    async def purge_expired(
        self, now: float, evidence: Evidence[list[tuple[str, str]]] | None = None
    ) -> list[tuple[str, str]]:
        """Delete expired codes, sign-ins and single-use marks, and ended sessions past their
        organisation's retention (with their customers' links); return the ``(org_id,
        session_id)`` of those sessions. ``evidence`` (if
        any): its audit records, appended in the same transaction (tandem.audit.Evidence)."""
        ...

    def deleted_before(self) -> None:
        """PostgreSQL: make every table an erasure, a purge or a session's end deletes rows of
        due for :meth:`vacuum_deleted` (an earlier process may have been killed before its
        vacuum ran). Nothing to do on SQLite."""
        ...

    async def vacuum_deleted(self) -> tuple[str, ...]:
        """PostgreSQL: vacuum the tables rows were erased, purged or cleared from since the last
        call, so that their dead tuples leave the tables' pages now, not at autovacuum's time;
        return the tables vacuumed. Raises StorageError if one fails (it stays due). Nothing
        to do on SQLite."""
        ...

    # Data subject requests and legal holds (tandem.subjects).

    async def link_subject(
        self,
        grant: Grant,
        subject: str,
        session_id: str,
        pseudonym: str,
        forms: Sequence[str] = (),
        *,
        any_form: bool = False,
    ) -> str:
        """Remember that ``session_id`` served the customer ``subject`` and return the subject's
        pseudonym in the organisation: the one it already has, else ``pseudonym``. ``forms``
        are other spellings of the same text (tandem.subjects.canonical_forms): a customer
        linked under one of them only, or (``any_form``) under any other canonically
        equivalent one (by an older version: partly composed), is linked under it again, with
        its pseudonym, so that one customer has one stored form."""
        ...

    async def subject_sessions(self, grant: Grant, subject: str) -> list[tuple[str, str]]:
        """``(session_id, pseudonym)`` of every session linked to ``subject``, oldest first."""
        ...

    async def stored_forms(self, grant: Grant, subject: str) -> tuple[str, ...]:
        """Every spelling of ``subject`` (any canonically equivalent form, :func:`subject_key`)
        the organisation's customer links or subject holds are stored under: an older version
        stored them as the site or the admin wrote them, in any form."""
        ...

    async def subject_of_session(self, session_id: str) -> tuple[str, str, str] | None:
        """``(org_id, subject, pseudonym)`` of the customer a session served, if known."""
        ...

    async def recordings_of_sessions(
        self, grant: Grant, session_ids: Sequence[str], now: float | None = None
    ) -> list[RecordingRecord]:
        """The organisation's recordings of those sessions, oldest first; given ``now``, those
        past their organisation's retention then and under no legal hold left out (what
        :meth:`purge_recordings` erases: a customer's export gives them out no more, as
        :meth:`read_recording` does not)."""
        ...

    async def account_activity(
        self,
        grant: Grant,
        username: str,
        since: float,
        limit: int,
        own: Sequence[str],
        changes: Sequence[str],
    ) -> list[AuditRecord]:
        """The organisation's audit records from ``since`` (epoch seconds) about ``username``'s
        account: those of the ``own`` actions it made (its sign-ins) and of the ``changes``
        others made to it (whose subject it is), newest first, at most ``limit`` of each action
        (a flood of one action does not push another out), the claims of a temporary password
        (``password_changed`` records with :data:`CLAIM_DETAIL`) counted apart from the
        account's other password changes."""
        ...

    async def audit_concerning(
        self, grant: Grant, subjects: Sequence[str], actors: Sequence[str]
    ) -> list[AuditRecord]:
        """The organisation's audit records whose subject is one of ``subjects`` or whose actor
        is one of ``actors``, in order."""
        ...

    async def erase_subject(
        self,
        grant: Grant,
        subject: str,
        session_ids: Sequence[str],
        evidence: Evidence[SubjectErasure] | None = None,
        forms: Sequence[str] = (),
    ) -> SubjectErasure:
        """Delete, in one transaction, the sessions (their records, join codes, recordings and
        frames) and their links to ``subject`` (or one of ``forms``, other spellings of the
        same text); the audit trail is untouched but for ``evidence`` (if any): its records,
        appended in the same transaction. Raises ConflictError, erasing nothing, if a legal
        hold covers ``subject`` or one of ``forms``, one of the sessions (by id) or one of
        their recordings."""
        ...

    async def put_hold(self, grant: Grant, hold: HoldRecord) -> bool:
        """Place a hold; False if that target is held already. Raises NotFoundError if the
        hold is not of the grant's organisation."""
        ...

    async def delete_hold(self, grant: Grant, kind: str, target: str) -> HoldRecord | None:
        """Lift a hold and return it; None if there was none."""
        ...

    async def list_holds(self, grant: Grant) -> list[HoldRecord]: ...

    # Training before live sessions (tandem.training)

    async def latest_policy(self, grant: Grant) -> PolicyRecord | None:
        """The organisation's newest policy version, None if it never wrote one."""
        ...

    async def add_policy(
        self, grant: Grant, text: str, created_by: str, created_at: float, first_version: int
    ) -> PolicyRecord:
        """Store a new version (the newest plus one, at least ``first_version``)."""
        ...

    async def acknowledge_policy(
        self, grant: Grant, username: str, version: int, at: float
    ) -> None: ...

    async def acknowledgements(self, grant: Grant) -> dict[str, int]:
        """The policy version each user of the organisation last acknowledged."""
        ...

    async def training_interval(self, grant: Grant) -> int | None: ...

    async def set_training_interval(self, grant: Grant, days: int | None) -> None:
        """Set the re-training interval (None: back to the default)."""
        ...

    async def add_training(self, grant: Grant, training: TrainingRecord) -> None:
        """Raises NotFoundError if the record is not of the grant's organisation."""
        ...

    async def latest_trainings(
        self, grant: Grant, username: str | None = None
    ) -> dict[str, TrainingRecord]:
        """Each user's newest training completion (of one user, with ``username``)."""
        ...

    async def start_practice(self, grant: Grant, practice: PracticeRecord) -> None: ...

    async def end_practice(self, session_id: str, steps: Sequence[str], ended_at: float) -> None:
        """The server's evidence of a practice session, written when it ends."""
        ...

    async def get_practice(self, session_id: str) -> PracticeRecord | None: ...

    async def latest_practice(self, grant: Grant, username: str) -> PracticeRecord | None:
        """The user's newest practice session that has ended."""
        ...

    async def use_practice(self, session_id: str) -> bool:
        """Mark a practice session as counted for a completion; False if it was already."""
        ...

    async def close(self) -> None: ...

    # Operations (tandem.server.readiness, tandem.processes)

    async def ping(self) -> None:
        """Raise unless the database answers a trivial query."""
        ...

    async def register_process(self, node: str, identity: str, now: float) -> None:
        """Record a starting server process (``identity``: host and port, the same after a
        restart)."""
        ...

    async def heartbeat(self, node: str, now: float) -> bool:
        """Mark ``node`` alive at ``now``; False if its row is gone (taken for dead)."""
        ...

    async def unregister_process(self, node: str) -> None:
        """Remove a process that stops cleanly."""
        ...

    async def note_installation(self, name: str, value: str, at: float) -> None:
        """Note ``value`` as ``name`` for every server on this database, unless a note of that
        name is there already (the first stays)."""
        ...

    async def installation_note(self, name: str) -> str | None:
        """The note ``name`` (None: there is none)."""
        ...

    async def forget_installation_note(self, name: str) -> bool:
        """Remove the note ``name``; False if there was none."""
        ...

    async def close_lost_processes(
        self,
        node: str,
        identity: str,
        lost_before: float,
        now: float,
        evidence: Evidence[tuple[list[SessionRecord], list[RecordingRecord]]] | None = None,
    ) -> tuple[list[SessionRecord], list[RecordingRecord]]:
        """In one transaction: forget processes (other than ``node``) whose heartbeat is older
        than ``lost_before`` or that ran as ``identity`` before (this process, before a crash);
        end every live session no registered process holds (``server_lost``, its join codes
        deleted) unless it was handed over (:meth:`suspend_session`) and its resume window is
        still open; end those whose window has passed (``server_shutdown``); end every running
        recording whose session is no longer live (``interrupted``). Returns what it closed
        (each session with its ``end_reason``). ``evidence`` (if any): the records of what it
        closed, appended in the same transaction (a process killed between the closing and its
        records left sessions ended with no record of it)."""
        ...

    async def suspend_session(self, suspended: SuspendedSession) -> None:
        """Hand a live session over to the next process (a stopping server): keep ``suspended``
        and mark the session held by no process."""
        ...

    async def withdraw_hand_over(
        self, session_id: str, now: float, evidence: Evidence[bool] | None = None
    ) -> bool:
        """Withdraw ``session_id``'s hand-over if it is stored (a stop gave up on it, and told
        both sides it ended, while its COMMIT was on its way): the stored row goes and the
        session ends ``server_shutdown`` at ``now``, in one transaction with the records
        ``evidence`` makes of the result. Whether there was one."""
        ...

    async def get_suspended(self, session_id: str) -> SuspendedSession | None:
        """A handed-over session still waiting to be resumed (its window may have passed)."""
        ...

    async def take_suspended(
        self, session_id: str, node: str, now: float
    ) -> SuspendedSession | None:
        """Take a handed-over session whose window is still open (``now`` before its
        ``expires_at``) into process ``node``, in one transaction: of processes taking it at
        once exactly one gets it, and the session is stored as held by that one. None if there
        is none or its window has passed."""
        ...


def subject_key(subject: str) -> str:
    """What every canonically equivalent spelling of ``subject`` has in common (NFC): a
    customer's links are looked up by it (``subject_sessions.subject_key``)."""
    return unicodedata.normalize("NFC", subject)


def canonical_forms(subject: str) -> tuple[str, ...]:
    """The spellings of ``subject`` that are the same text (Unicode canonical equivalence):
    NFC first (how a customer token's ``sub`` is stored since the leftovers review), then NFD
    and ``subject`` as given (how an older version may have stored it). Compatibility
    look-alikes (full-width letters, ligatures) are other text and not among them."""
    return tuple(
        dict.fromkeys(
            (unicodedata.normalize("NFC", subject), unicodedata.normalize("NFD", subject), subject)
        )
    )
