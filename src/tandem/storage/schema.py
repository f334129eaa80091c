"""Every table and index, once, for SQLite and PostgreSQL (SQLAlchemy Core).

The Alembic revisions in :mod:`tandem.storage.migrations` build this schema; a test compares a
migrated database of each kind with it, so the two cannot drift. Column types keep what the
hand-written schemas before Alembic had: SQLite's ``INTEGER``/``REAL``, PostgreSQL's
``bigint``/``double precision``/``boolean``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()

Real: sa.types.TypeEngine[float] = sa.Double().with_variant(sa.REAL(), "sqlite")
"""Seconds since the epoch and other floats: double precision everywhere."""
Int64: sa.types.TypeEngine[int] = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
Flag: sa.types.TypeEngine[bool] = sa.Boolean().with_variant(sa.INTEGER(), "sqlite")
"""A boolean; SQLite has none and stores 0 or 1."""
Text = sa.Text()


def _org_id(**options: Any) -> sa.Column[Any]:
    """An ``org_id`` column whose rows go when their organisation is deleted."""
    if not options.get("primary_key"):
        options.setdefault("nullable", False)
    return sa.Column("org_id", Text, sa.ForeignKey("orgs.org_id", ondelete="CASCADE"), **options)


def _username(**options: Any) -> sa.Column[Any]:
    """A ``username`` column whose rows go when their user is deleted."""
    if not options.get("primary_key"):
        options.setdefault("nullable", False)
    return sa.Column(
        "username", Text, sa.ForeignKey("users.username", ondelete="CASCADE"), **options
    )


users = sa.Table(
    "users",
    metadata,
    sa.Column("username", Text, primary_key=True),
    sa.Column("display_name", Text, nullable=False),
    sa.Column("role", Text, nullable=False),
    sa.Column("password_hash", Text, nullable=False),
    sa.Column("created_at", Real, nullable=False),
    sa.Column("totp_secret", Text),
    sa.Column("totp_last_step", Int64, nullable=False, server_default="0"),
    sa.Column("org_id", Text, nullable=False, server_default="default"),
    sa.Column("mfa_exempt", Flag, nullable=False, server_default=sa.false()),
    sa.Column("pending_totp", Text),
    sa.Column("oidc_subject", Text),
    sa.Column("password_change_required", Flag, nullable=False, server_default=sa.false()),
    sa.Column("disabled", Flag, nullable=False, server_default=sa.false()),
    sa.Column("password_set_at", Real),
    sa.Column("password_set_by", Text),
    # The temporary password the account's last claim replaced (revision 0020): refused as a
    # new password (tandem.auth.change_password).
    sa.Column("claimed_password_hash", Text),
)

recovery_codes = sa.Table(
    "recovery_codes",
    metadata,
    _username(primary_key=True),
    sa.Column("digest", Text, primary_key=True),
    sa.Column("position", sa.Integer(), nullable=False),
)
"""Unused recovery codes of each user (HMAC-SHA256 digests keyed with the secrets key; SHA-256
digests, unkeyed, from older versions), in the order they were issued."""

logins = sa.Table(
    "logins",
    metadata,
    sa.Column("token_digest", Text, primary_key=True),
    _username(),
    sa.Column("expires_at", Real, nullable=False),
    sa.Column("last_seen", Real, nullable=False, server_default="0"),
    sa.Column("method", Text, nullable=False, server_default="password"),
    sa.Index("logins_username", "username"),
    sa.Index("logins_expires_at", "expires_at"),
)

join_codes = sa.Table(
    "join_codes",
    metadata,
    sa.Column("code_digest", Text, primary_key=True),
    sa.Column("session_id", Text, nullable=False),
    sa.Column("expires_at", Real, nullable=False),
    sa.Column("org_id", Text, nullable=False, server_default="default"),
    sa.Index("join_codes_session_id", "session_id"),
    sa.Index("join_codes_expires_at", "expires_at"),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("session_id", Text, primary_key=True),
    sa.Column("created_at", Real, nullable=False),
    sa.Column("ended_at", Real),
    sa.Column("end_reason", Text),
    sa.Column("agent", Text),
    sa.Column("org_id", Text, nullable=False, server_default="default"),
    sa.Column("site_id", Text, nullable=False, server_default=""),
    sa.Column("node", Text, nullable=False, server_default=""),
    sa.Column("state", Text, nullable=False, server_default="waiting"),
)
_ended = sessions.c.ended_at
sa.Index(
    "sessions_ended_at",
    _ended,
    postgresql_where=_ended.isnot(None),
    sqlite_where=_ended.isnot(None),
)
sa.Index(
    "sessions_live",
    sessions.c.org_id,
    sessions.c.created_at,
    postgresql_where=_ended.is_(None),
    sqlite_where=_ended.is_(None),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("seq", Int64, primary_key=True, autoincrement=False),
    sa.Column("at", Real, nullable=False),
    sa.Column("action", Text, nullable=False),
    sa.Column("actor", Text, nullable=False),
    sa.Column("org", Text, nullable=False),
    sa.Column("subject", Text, nullable=False),
    sa.Column("details", Text, nullable=False),
    sa.Column("prev_hash", Text, nullable=False),
    sa.Column("hash", Text, nullable=False),
    # The record MAC (tandem.audit.record_mac); NULL in rows written before revision 0011.
    sa.Column("mac", Text),
    # The record's position in its organisation's trail (1, 2, ...), assigned with ``seq`` in
    # the appending transaction: what the organisation's auditors read, as ``seq`` tells the
    # other organisations' volume (revision 0013 numbered the records already there).
    sa.Column("org_seq", Int64, nullable=False, server_default="0"),
    # No index by time (``audit_at`` until revision 0022): every index is written at every
    # append, and that one served only ``tandem audit export --since``, which reads the table
    # in one pass in its own order instead (issue 12).
    # Unique: two writers that gave one organisation the same position cannot both commit.
    sa.Index("audit_org_position", "org", "org_seq", unique=True),
    # An account's own records and the changes made to it, read at each of its sign-ins
    # (Storage.account_activity; revision 0017). audit_org_subject, below, is partial.
    sa.Index("audit_org_actor", "org", "actor", "at"),
)
AUDIT_SUBJECT_NAMED = audit.c.subject != sa.literal_column("''")
"""The condition of ``audit_org_subject``'s entries: the records that name a subject (most, the
sign-ins first, name none, and are written into one index fewer: revision 0021). A query
meant to read that index carries this very term (SQLite uses a partial index only for a query
whose WHERE holds its condition as written; PostgreSQL proves it from a value it cannot see in
a generic plan), spelt with the literal, never a bound parameter."""
sa.Index(
    "audit_org_subject",
    audit.c.org,
    audit.c.subject,
    audit.c.at,
    postgresql_where=AUDIT_SUBJECT_NAMED,
    sqlite_where=AUDIT_SUBJECT_NAMED,
)

audit_anchors = sa.Table(
    "audit_anchors",
    metadata,
    sa.Column("seq", Int64, primary_key=True, autoincrement=False),
    sa.Column("hash", Text, nullable=False),
    sa.Column("mac", Text, nullable=False),
    sa.Column("version", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("every", Int64, nullable=False, server_default="0"),
    sa.Column("prev_seq", Int64, nullable=False, server_default="0"),
    sa.Column("prev_mac", Text, nullable=False, server_default=""),
    sa.Column("macs_from", Int64, nullable=False, server_default="0"),
)

audit_backlog_lines = sa.Table(
    "audit_backlog_lines",
    metadata,
    sa.Column("file_id", Text, nullable=False),
    sa.Column("line", Int64, nullable=False, autoincrement=False),
    sa.Column("seq", Int64, nullable=False),
    sa.PrimaryKeyConstraint("file_id", "line"),
)
"""The lines of audit backlog files (tandem.audit_backlog) whose records were written to the
trail, each noted in the transaction that wrote its record (``seq``): a line noted already (its
file put back, or copied from another server's data directory) is refused, never written twice
(revision 0014)."""

orgs = sa.Table(
    "orgs",
    metadata,
    sa.Column("org_id", Text, primary_key=True),
    sa.Column("name", Text, nullable=False),
    sa.Column("created_at", Real, nullable=False),
    sa.Column("retention_days", sa.Integer(), nullable=False),
    sa.Column("oidc", Text),
    sa.Column("recording_key", Text),
)

teams = sa.Table(
    "teams",
    metadata,
    _org_id(primary_key=True),
    sa.Column("team", Text, primary_key=True),
    sa.Column("policy", Text),
)

team_members = sa.Table(
    "team_members",
    metadata,
    sa.Column("org_id", Text, primary_key=True),
    sa.Column("team", Text, primary_key=True),
    _username(primary_key=True),
    sa.ForeignKeyConstraint(["org_id", "team"], ["teams.org_id", "teams.team"], ondelete="CASCADE"),
    sa.Index("team_members_username", "username"),
)

sites = sa.Table(
    "sites",
    metadata,
    sa.Column("site_id", Text, primary_key=True),
    _org_id(),
    sa.Column("origin", Text, nullable=False),
    sa.Column("name", Text, nullable=False),
    sa.Column("policy", Text),
    sa.Column("token_key", Text),
    sa.Column("require_token", Flag, nullable=False, server_default=sa.false()),
    sa.Column("verified", Flag, nullable=False, server_default=sa.true()),
    # One site per origin in an organisation; several organisations may claim an origin while
    # it is unproved, but only one site holds it verified (sites_verified_origin): an unproved
    # claim blocks no one (docs/administration.md, "Proving a site's origin").
    sa.UniqueConstraint("org_id", "origin", name="sites_org_id_origin_key"),
)
SITE_VERIFIED = sites.c.verified == sa.true()
"""The condition of the verified sites: the only ones that hold their origin."""
sa.Index(
    "sites_verified_origin",
    sites.c.origin,
    unique=True,
    postgresql_where=SITE_VERIFIED,
    sqlite_where=SITE_VERIFIED,
)

site_teams = sa.Table(
    "site_teams",
    metadata,
    sa.Column(
        "site_id", Text, sa.ForeignKey("sites.site_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("org_id", Text, nullable=False),
    sa.Column("team", Text, primary_key=True),
    sa.ForeignKeyConstraint(["org_id", "team"], ["teams.org_id", "teams.team"], ondelete="CASCADE"),
)

oidc_pending = sa.Table(
    "oidc_pending",
    metadata,
    sa.Column("state_digest", Text, primary_key=True),
    sa.Column("org_id", Text, nullable=False),
    sa.Column("sealed", Text, nullable=False),
    sa.Column("expires_at", Real, nullable=False),
    sa.Index("oidc_pending_expires_at", "expires_at"),
)

recordings = sa.Table(
    "recordings",
    metadata,
    sa.Column("recording_id", Text, primary_key=True),
    _org_id(),
    sa.Column("session_id", Text, nullable=False),
    sa.Column("site_id", Text, nullable=False),
    sa.Column("agent", Text, nullable=False),
    sa.Column("key_id", Text, nullable=False),
    sa.Column("started_at", Real, nullable=False),
    sa.Column("ended_at", Real),
    sa.Column("end_reason", Text),
    sa.Column("frames", Int64, nullable=False, server_default="0"),
    sa.Column("size", Int64, nullable=False, server_default="0"),
    sa.Index("recordings_org_started", "org_id", "started_at"),
)
sa.Index(
    "recordings_ended_at",
    recordings.c.ended_at,
    postgresql_where=recordings.c.ended_at.isnot(None),
    sqlite_where=recordings.c.ended_at.isnot(None),
)
sa.Index(  # running recordings, which crash recovery looks through every heartbeat
    "recordings_running",
    recordings.c.session_id,
    postgresql_where=recordings.c.ended_at.is_(None),
    sqlite_where=recordings.c.ended_at.is_(None),
)

recording_frames = sa.Table(
    "recording_frames",
    metadata,
    sa.Column(
        "recording_id",
        Text,
        sa.ForeignKey("recordings.recording_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seq", Int64, primary_key=True, autoincrement=False),
    sa.Column("data", sa.LargeBinary(), nullable=False),
)

used_once = sa.Table(
    "used_once",
    metadata,
    sa.Column("digest", Text, primary_key=True),
    sa.Column("expires_at", Real, nullable=False),
    sa.Index("used_once_expires", "expires_at"),
)

backoff = sa.Table(
    "backoff",
    metadata,
    sa.Column("key", Text, primary_key=True),
    sa.Column("failures", Int64, nullable=False),
    sa.Column("locked_until", Real, nullable=False),
    sa.Column("updated_at", Real, nullable=False),
    sa.Index("backoff_updated_at", "updated_at"),
)

subject_sessions = sa.Table(
    "subject_sessions",
    metadata,
    sa.Column("session_id", Text, primary_key=True),
    _org_id(),
    sa.Column("subject", Text, nullable=False),
    # The ``sub`` of the site's customer token: the person (data subject requests).
    sa.Column("pseudonym", Text, nullable=False),
    # Random, one per subject and organisation: what the audit trail names instead of ``sub``,
    # so erasing the rows leaves the trail intact but no longer linkable to the person.
    sa.Column("subject_key", Text),
    # ``subject`` in NFC (tandem.storage.base.subject_key): every canonically equivalent
    # spelling of a ``sub`` finds the links an older version stored in any of them.
    sa.Index("subject_sessions_org_subject", "org_id", "subject"),
    sa.Index("subject_sessions_org_key", "org_id", "subject_key"),
)

legal_holds = sa.Table(
    "legal_holds",
    metadata,
    _org_id(primary_key=True),
    sa.Column("kind", Text, primary_key=True),
    # ``recording`` (target: its id) or ``subject`` (target: the customer's ``sub``, or the id of
    # a session started without a customer token).
    sa.Column("target", Text, primary_key=True),
    sa.Column("reason", Text, nullable=False),
    sa.Column("placed_by", Text, nullable=False),
    sa.Column("placed_at", Real, nullable=False),
)

training_policies = sa.Table(
    "training_policies",
    metadata,
    _org_id(primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True),
    sa.Column("text", Text, nullable=False),
    sa.Column("created_at", Real, nullable=False),
    sa.Column("created_by", Text, nullable=False),
)
"""Each organisation's privacy and security policy, every version kept (tandem.training)."""

policy_acknowledgements = sa.Table(
    "policy_acknowledgements",
    metadata,
    _username(primary_key=True),
    _org_id(),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("acknowledged_at", Real, nullable=False),
)
"""The policy version each user last acknowledged (the audit trail keeps every one)."""

training_completions = sa.Table(
    "training_completions",
    metadata,
    sa.Column("completion_id", Text, primary_key=True),
    _username(),
    _org_id(),
    sa.Column("completed_at", Real, nullable=False),
    sa.Column("policy_version", sa.Integer(), nullable=False),
    sa.Column("method", Text, nullable=False),
    # ``practice`` (a practice session the server saw) or ``operator`` (tandem training record).
    sa.Column("session_id", Text, nullable=False, server_default=""),
    sa.Column("steps", Text, nullable=False, server_default=""),
    sa.Index("training_completions_user", "username", "completed_at"),
)
"""Training completions; a deleted account's go with it (a new account of that name starts
untrained)."""

practice_sessions = sa.Table(
    "practice_sessions",
    metadata,
    sa.Column("session_id", Text, primary_key=True),
    _username(),
    _org_id(),
    sa.Column("started_at", Real, nullable=False),
    sa.Column("ended_at", Real),
    sa.Column("steps", Text, nullable=False, server_default=""),
    # What the server saw of the exercise (tandem.training.SERVER_STEPS), comma-separated.
    sa.Column("used", Flag, nullable=False, server_default=sa.false()),
    # A completion was recorded from it (one completion per practice session).
)
"""Practice sessions (tandem.training): the server's evidence that an exercise happened."""

training_settings = sa.Table(
    "training_settings",
    metadata,
    _org_id(primary_key=True),
    sa.Column("interval_days", sa.Integer(), nullable=False),
)
"""An organisation's re-training interval, where it is not the default."""

APPEND_ONLY = (audit, audit_anchors, audit_backlog_lines)
"""Guarded by triggers (created per dialect in the revisions): no UPDATE, DELETE, replacing
INSERT or (PostgreSQL) TRUNCATE."""

processes = sa.Table(
    "processes",
    metadata,
    sa.Column("node", Text, primary_key=True),
    sa.Column("identity", Text, nullable=False),
    sa.Column("started_at", Real, nullable=False),
    sa.Column("heartbeat_at", Real, nullable=False),
)
"""Server processes alive, each with its last heartbeat (tandem.processes): the sessions and
recordings of a process whose heartbeat stopped are closed by the others."""

suspended_sessions = sa.Table(
    "suspended_sessions",
    metadata,
    sa.Column("session_id", Text, primary_key=True),
    _org_id(),
    sa.Column("site_id", Text, nullable=False),
    sa.Column("state", Text, nullable=False),
    sa.Column("agent", Text),
    sa.Column("agent_username", Text, nullable=False),
    sa.Column("agent_login", Text, nullable=False),
    sa.Column("resume_digest", Text, nullable=False),
    sa.Column("agent_resume_digest", Text, nullable=False),
    sa.Column("created_at", Real, nullable=False),
    sa.Column("code_expires_at", Real, nullable=False),
    sa.Column("last_activity", Real, nullable=False),
    sa.Column("suspended_at", Real, nullable=False),
    sa.Column("expires_at", Real, nullable=False),
    sa.Column("handshakes_from_customer", Int64, nullable=False),
    sa.Column("handshakes_from_agent", Int64, nullable=False),
    sa.Column("team_policies", Text, nullable=False),
    sa.Index("suspended_sessions_expires_at", "expires_at"),
)
"""Live sessions a stopping server handed over to the next process (SIGTERM: a restart or an
upgrade; tandem.hub): what resuming them needs, resume tokens as keyed digests only. A row goes
when a side resumes it (taken by one process) or when ``expires_at`` passes (ended)."""

installation_notes = sa.Table(
    "installation_notes",
    metadata,
    sa.Column("name", Text, primary_key=True),
    sa.Column("value", Text, nullable=False),
    sa.Column("noted_at", Real, nullable=False),
)
"""What a server noticed about the installation, for every server on the database (the
compliance check and the next start of any of them): ``proxy_headers_seen``, the reverse proxy's
header a request came with while no public origin was set (tandem.config.PROXY_NOTE);
``plain_http_seen`` and ``forwarded_https_seen``, the first request over plain HTTP and the first
a trusted proxy forwarded as https (PLAIN_HTTP_NOTE, FORWARDED_HTTPS_NOTE). The first note of a
name stays until the operator removes it (``tandem compliance forget-proxy``,
``forget-plain-http``). One note moves: ``recordings_purged_at``, whose ``noted_at`` is the
latest moment a recordings' purge ran at, never moved back (tandem.storage.sql.PURGED_AT_NOTE:
the least moment any server judges a recording's retention at)."""

audit_counts = sa.Table(
    "audit_counts",
    metadata,
    sa.Column("bucket", Real, nullable=False),
    sa.Column("action", Text, nullable=False),
    sa.Column("org", Text, nullable=False),
    sa.Column("node", Text, nullable=False),
    sa.Column("count", Int64, nullable=False),
    sa.Column("detail", Text, nullable=False),
    sa.PrimaryKeyConstraint("bucket", "action", "org", "node"),
)
"""Events with no signed-in actor (refused customer sockets, bad origins, rejected customer
tokens), counted per interval (``bucket``, its start), kind, organisation ("" for none) and
process instead of one audit record each (tandem.audit.EventCounts). Not part of the hash chain:
rows past ``anonymous_audit_retention_days`` are deleted."""
