"""The scale-out backend: PostgreSQL through an asyncpg connection pool.

Several servers may share one database (docs/scale-out.md). Everything that must be atomic across
them is one statement or one transaction: join codes and pending sign-ins are taken with
``DELETE ... RETURNING``, second factors with a conditional ``UPDATE``, and the audit chain is
extended under a table lock. Migrations run under an advisory lock, so servers starting together
migrate once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import asyncpg  # type: ignore[import-untyped]

from tandem.audit import GENESIS, Anchor, AnchorRule, AuditRecord, record_hash
from tandem.exceptions import (
    ConfigError,
    ConflictError,
    NotFoundError,
    TandemError,
    UserExistsError,
)
from tandem.storage.base import (
    DEFAULT_ORG,
    LoginRecord,
    OrgRecord,
    RecordingRecord,
    SessionRecord,
    SiteRecord,
    UserRecord,
)

# Each entry moves the schema one version forward; never edit a released entry. Version 1 is the
# SQLite schema as of its 7th migration, with PostgreSQL types.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE users (
        username text PRIMARY KEY,
        display_name text NOT NULL,
        role text NOT NULL,
        password_hash text NOT NULL,
        created_at double precision NOT NULL,
        totp_secret text,
        totp_last_step bigint NOT NULL DEFAULT 0,
        recovery_codes jsonb NOT NULL DEFAULT '[]',
        org_id text NOT NULL DEFAULT 'default',
        mfa_exempt boolean NOT NULL DEFAULT false,
        pending_totp text,
        oidc_subject text
    );
    CREATE TABLE logins (
        token_digest text PRIMARY KEY,
        username text NOT NULL REFERENCES users(username) ON DELETE CASCADE,
        expires_at double precision NOT NULL,
        last_seen double precision NOT NULL DEFAULT 0,
        method text NOT NULL DEFAULT 'password'
    );
    CREATE INDEX logins_username ON logins(username);
    CREATE INDEX logins_expires_at ON logins(expires_at);
    CREATE TABLE join_codes (
        code_digest text PRIMARY KEY,
        session_id text NOT NULL,
        expires_at double precision NOT NULL,
        org_id text NOT NULL DEFAULT 'default'
    );
    CREATE INDEX join_codes_session_id ON join_codes(session_id);
    CREATE INDEX join_codes_expires_at ON join_codes(expires_at);
    CREATE TABLE sessions (
        session_id text PRIMARY KEY,
        created_at double precision NOT NULL,
        ended_at double precision,
        end_reason text,
        agent text,
        org_id text NOT NULL DEFAULT 'default',
        site_id text NOT NULL DEFAULT ''
    );
    CREATE INDEX sessions_ended_at ON sessions(ended_at) WHERE ended_at IS NOT NULL;

    CREATE TABLE audit (
        seq bigint PRIMARY KEY,
        at double precision NOT NULL,
        action text NOT NULL,
        actor text NOT NULL,
        org text NOT NULL,
        subject text NOT NULL,
        details text NOT NULL,
        prev_hash text NOT NULL,
        hash text NOT NULL
    );
    CREATE INDEX audit_at ON audit(at);
    CREATE FUNCTION tandem_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the audit log is append-only'
            USING ERRCODE = 'integrity_constraint_violation';
    END;
    $$;
    CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION tandem_audit_append_only();
    CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
        FOR EACH STATEMENT EXECUTE FUNCTION tandem_audit_append_only();
    CREATE TABLE audit_anchors (
        seq bigint PRIMARY KEY,
        hash text NOT NULL,
        mac text NOT NULL
    );

    CREATE TABLE orgs (
        org_id text PRIMARY KEY,
        name text NOT NULL,
        created_at double precision NOT NULL,
        retention_days integer NOT NULL,
        oidc text
    );
    CREATE TABLE teams (
        org_id text NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
        team text NOT NULL,
        policy text,
        PRIMARY KEY (org_id, team)
    );
    CREATE TABLE team_members (
        org_id text NOT NULL,
        team text NOT NULL,
        username text NOT NULL REFERENCES users(username) ON DELETE CASCADE,
        PRIMARY KEY (org_id, team, username),
        FOREIGN KEY (org_id, team) REFERENCES teams(org_id, team) ON DELETE CASCADE
    );
    CREATE INDEX team_members_username ON team_members(username);
    CREATE TABLE sites (
        site_id text PRIMARY KEY,
        org_id text NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
        origin text NOT NULL UNIQUE,
        name text NOT NULL,
        policy text,
        token_key text,
        require_token boolean NOT NULL DEFAULT false
    );
    CREATE TABLE site_teams (
        site_id text NOT NULL REFERENCES sites(site_id) ON DELETE CASCADE,
        org_id text NOT NULL,
        team text NOT NULL,
        PRIMARY KEY (site_id, team),
        FOREIGN KEY (org_id, team) REFERENCES teams(org_id, team) ON DELETE CASCADE
    );
    CREATE TABLE oidc_pending (
        state_digest text PRIMARY KEY,
        org_id text NOT NULL,
        sealed text NOT NULL,
        expires_at double precision NOT NULL
    );

    INSERT INTO orgs (org_id, name, created_at, retention_days)
        VALUES ('default', 'Default organisation', 0, 30);
    INSERT INTO teams (org_id, team) VALUES ('default', 'support');
    INSERT INTO sites (site_id, org_id, origin, name)
        VALUES ('demo', 'default', 'self', 'Demo shop');
    INSERT INTO site_teams VALUES ('demo', 'default', 'support');
    """,
    """
    ALTER TABLE orgs ADD COLUMN recording_key text;
    CREATE TABLE recordings (
        recording_id text PRIMARY KEY,
        org_id text NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
        session_id text NOT NULL,
        site_id text NOT NULL,
        agent text NOT NULL,
        key_id text NOT NULL,
        started_at double precision NOT NULL,
        ended_at double precision,
        end_reason text,
        frames bigint NOT NULL DEFAULT 0,
        size bigint NOT NULL DEFAULT 0
    );
    CREATE INDEX recordings_org_started ON recordings(org_id, started_at);
    CREATE INDEX recordings_ended_at ON recordings(ended_at) WHERE ended_at IS NOT NULL;
    CREATE TABLE recording_frames (
        recording_id text NOT NULL REFERENCES recordings(recording_id) ON DELETE CASCADE,
        seq bigint NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (recording_id, seq)
    );
    """,
    """
    ALTER TABLE sessions ADD COLUMN node text NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN state text NOT NULL DEFAULT 'waiting';
    CREATE INDEX sessions_live ON sessions(org_id, created_at) WHERE ended_at IS NULL;
    """,
    """
    CREATE TABLE used_once (
        digest text PRIMARY KEY,
        expires_at double precision NOT NULL
    );
    CREATE INDEX used_once_expires ON used_once(expires_at);
    CREATE TABLE backoff (
        key text PRIMARY KEY,
        failures bigint NOT NULL,
        locked_until double precision NOT NULL,
        updated_at double precision NOT NULL
    );
    """,
    # Chained anchors (tandem.audit). Anchors stored before keep version 0 (LEGACY), accepted
    # only before the first chained one. Anchors become append-only like the records.
    """
    ALTER TABLE audit_anchors
        ADD COLUMN version integer NOT NULL DEFAULT 0,
        ADD COLUMN every bigint NOT NULL DEFAULT 0,
        ADD COLUMN prev_seq bigint NOT NULL DEFAULT 0,
        ADD COLUMN prev_mac text NOT NULL DEFAULT '';
    CREATE TRIGGER audit_anchors_append_only BEFORE UPDATE OR DELETE ON audit_anchors
        FOR EACH ROW EXECUTE FUNCTION tandem_audit_append_only();
    CREATE TRIGGER audit_anchors_no_truncate BEFORE TRUNCATE ON audit_anchors
        FOR EACH STATEMENT EXECUTE FUNCTION tandem_audit_append_only();
    """,
)

_ANCHOR_SELECT = "SELECT seq, hash, mac, version, every, prev_seq, prev_mac FROM audit_anchors"

# Text is ordered byte-wise (COLLATE "C"), like SQLite, whatever the database's locale.
_USER_SELECT = (
    "SELECT username, display_name, role, password_hash, created_at, totp_secret, totp_last_step,"
    " recovery_codes, org_id, mfa_exempt, pending_totp, ARRAY(SELECT m.team FROM team_members m"
    ' WHERE m.username = u.username ORDER BY m.team COLLATE "C") AS teams FROM users u'
)
_SITE_SELECT = (
    "SELECT site_id, org_id, origin, name, policy, token_key, require_token, ARRAY(SELECT t.team"
    ' FROM site_teams t WHERE t.site_id = s.site_id ORDER BY t.team COLLATE "C") AS teams'
    " FROM sites s"
)
_RECORDING_SELECT = (
    "SELECT recording_id, org_id, session_id, site_id, agent, key_id, started_at, ended_at,"
    " end_reason, frames, size FROM recordings"
)
_SESSION_SELECT = (
    "SELECT session_id, created_at, ended_at, end_reason, agent, org_id, site_id, node, state"
    " FROM sessions"
)
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def redact_dsn(dsn: str) -> str:
    """The DSN without its password (in the user part or a ``password=`` parameter)."""
    scheme, sep, rest = dsn.partition("://")
    if not sep:
        return "<not a URL>"
    location, qmark, query = rest.partition("?")
    netloc, slash, path = location.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if at:
        netloc = f"{userinfo.partition(':')[0]}@{hosts}"
    if qmark:
        query = "&".join(
            f"{part.partition('=')[0]}=***"
            if part.partition("=")[0].lower() == "password"
            else part
            for part in query.split("&")
        )
    return f"{scheme}://{netloc}{slash}{path}{qmark}{query}"


def _affected(status: str) -> int:
    """Rows touched, from a command status such as ``DELETE 3``."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


def _user(row: Any) -> UserRecord:
    return UserRecord(
        username=str(row[0]),
        display_name=str(row[1]),
        role=str(row[2]),
        password_hash=str(row[3]),
        created_at=float(row[4]),
        totp_secret=row[5],
        totp_last_step=int(row[6]),
        recovery_codes=tuple(json.loads(row[7])),
        org_id=str(row[8]),
        mfa_exempt=bool(row[9]),
        pending_totp=row[10],
        teams=tuple(row[11]),
    )


def _site(row: Any) -> SiteRecord:
    return SiteRecord(
        site_id=str(row[0]),
        org_id=str(row[1]),
        origin=str(row[2]),
        name=str(row[3]),
        policy=row[4],
        token_key=row[5],
        require_token=bool(row[6]),
        teams=tuple(row[7]),
    )


def _recording(row: Any) -> RecordingRecord:
    return RecordingRecord(
        recording_id=str(row[0]),
        org_id=str(row[1]),
        session_id=str(row[2]),
        site_id=str(row[3]),
        agent=str(row[4]),
        key_id=str(row[5]),
        started_at=float(row[6]),
        ended_at=None if row[7] is None else float(row[7]),
        end_reason=row[8],
        frames=int(row[9]),
        size=int(row[10]),
    )


def _anchor(row: Any) -> Anchor:
    return Anchor(
        int(row[0]),
        str(row[1]),
        str(row[2]),
        int(row[3]),
        int(row[4]),
        int(row[5]),
        str(row[6]),
    )


def _session(row: Any) -> SessionRecord:
    return SessionRecord(
        str(row[0]),
        float(row[1]),
        row[2],
        row[3],
        row[4],
        str(row[5]),
        str(row[6]),
        str(row[7]),
        str(row[8]),
    )


class PostgresStorage:
    """:class:`~tandem.storage.base.Storage` on PostgreSQL; build it with :meth:`connect`."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    @classmethod
    async def connect(
        cls, dsn: str, *, schema: str | None = None, max_connections: int = 10
    ) -> PostgresStorage:
        """Open a pool on ``dsn`` and bring the schema up to date.

        With ``schema``, Tandem's tables live in that schema (created if missing) instead of the
        first one on the server's search path. Raises :class:`ConfigError` (naming the DSN, never
        its password) when the database cannot be reached or set up.
        """
        if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
            raise ConfigError(f"not a plain schema name: {schema!r}")
        where = redact_dsn(dsn)
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=max_connections,
                timeout=10.0,
                server_settings={"search_path": schema} if schema else None,
            )
        except (
            OSError,
            TimeoutError,
            ValueError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
        ) as exc:
            raise ConfigError(
                f"cannot connect to the database at {where}: {_scrub(str(exc), dsn)}"
            ) from None
        storage = cls(pool)
        try:
            await storage._migrate(schema)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await pool.close()
            raise ConfigError(
                f"cannot set up the database at {where}: {_scrub(str(exc), dsn)}"
            ) from None
        except BaseException:  # ConfigError (a newer schema), cancellation
            pool.terminate()
            raise
        return storage

    async def _migrate(self, schema: str | None) -> None:
        async with self._pool.acquire() as db:
            while True:
                # One transaction per migration; the lock serialises servers starting together.
                async with db.transaction():
                    await db.execute(
                        "SELECT pg_advisory_xact_lock(hashtext('tandem-migrate:' || $1::text))",
                        schema or "",
                    )
                    if schema:
                        await db.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                    await db.execute(
                        "CREATE TABLE IF NOT EXISTS tandem_schema_version"
                        " (version integer NOT NULL)"
                    )
                    version = await db.fetchval("SELECT max(version) FROM tandem_schema_version")
                    if version is None:
                        await db.execute("INSERT INTO tandem_schema_version VALUES (0)")
                        version = 0
                    if version > len(_MIGRATIONS):
                        raise ConfigError(
                            "the database was written by a newer Tandem; upgrade first"
                        )
                    if version == len(_MIGRATIONS):
                        return
                    await db.execute(_MIGRATIONS[version])
                    await db.execute("UPDATE tandem_schema_version SET version = $1", version + 1)

    # Users

    async def add_user(self, user: UserRecord) -> None:
        try:
            await self._pool.execute(
                "INSERT INTO users (username, display_name, role, password_hash, created_at,"
                " totp_secret, totp_last_step, recovery_codes, org_id, mfa_exempt, pending_totp)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11)",
                user.username,
                user.display_name,
                user.role,
                user.password_hash,
                user.created_at,
                user.totp_secret,
                user.totp_last_step,
                json.dumps(list(user.recovery_codes)),
                user.org_id,
                user.mfa_exempt,
                user.pending_totp,
            )
        except asyncpg.IntegrityConstraintViolationError:
            raise UserExistsError(f"a user named {user.username!r} already exists") from None

    async def get_user(self, username: str) -> UserRecord | None:
        row = await self._pool.fetchrow(f"{_USER_SELECT} WHERE username = $1", username)
        return _user(row) if row else None

    async def list_users(self, org_id: str) -> list[UserRecord]:
        rows = await self._pool.fetch(
            f'{_USER_SELECT} WHERE org_id = $1 ORDER BY username COLLATE "C"', org_id
        )
        return [_user(row) for row in rows]

    async def count_users(self) -> int:
        return int(await self._pool.fetchval("SELECT count(*) FROM users"))

    async def update_user(self, username: str, *, role: str, display_name: str) -> None:
        await self._pool.execute(
            "UPDATE users SET role = $1, display_name = $2 WHERE username = $3",
            role,
            display_name,
            username,
        )

    async def set_user_teams(self, username: str, org_id: str, teams: tuple[str, ...]) -> None:
        async with self._pool.acquire() as db, db.transaction():
            rows = await db.fetch("SELECT team FROM teams WHERE org_id = $1", org_id)
            known = {row[0] for row in rows}
            for team in teams:
                if team not in known:
                    raise NotFoundError(f"no team named {team!r}")
            await db.execute("DELETE FROM team_members WHERE username = $1", username)
            await db.executemany(
                "INSERT INTO team_members (org_id, team, username) VALUES ($1, $2, $3)",
                [(org_id, team, username) for team in sorted(set(teams))],
            )

    async def delete_user(self, username: str) -> bool:
        status = await self._pool.execute("DELETE FROM users WHERE username = $1", username)
        return _affected(status) > 0

    # Second factors and single sign-on

    async def use_second_factor(
        self, username: str, step: int | None, recovery_digest: str | None
    ) -> bool:
        """Accept a TOTP step only if newer than the last one used, else consume a recovery code.
        Each is one conditional UPDATE: of two servers racing with the same code, one wins."""
        if step is not None:
            accepted = await self._pool.fetchval(
                "UPDATE users SET totp_last_step = $2 WHERE username = $1 AND totp_last_step < $2"
                " RETURNING true",
                username,
                step,
            )
            if accepted:
                return True
        if recovery_digest is not None:
            consumed = await self._pool.fetchval(
                "UPDATE users SET recovery_codes = recovery_codes - $2::text"
                " WHERE username = $1 AND recovery_codes ? $2::text RETURNING true",
                username,
                recovery_digest,
            )
            return bool(consumed)
        return False

    async def set_second_factor(
        self, username: str, totp_secret: str | None, recovery_codes: tuple[str, ...]
    ) -> None:
        await self._pool.execute(
            "UPDATE users SET totp_secret = $1, totp_last_step = 0, recovery_codes = $2::jsonb,"
            " pending_totp = NULL WHERE username = $3",
            totp_secret,
            json.dumps(list(recovery_codes)),
            username,
        )

    async def set_pending_second_factor(self, username: str, sealed: str | None) -> None:
        await self._pool.execute(
            "UPDATE users SET pending_totp = $1 WHERE username = $2", sealed, username
        )

    async def link_oidc_subject(self, username: str, subject: str) -> bool:
        """Record the identity provider's subject for a user that has none; True if the user's
        subject is (now) ``subject``."""
        bound = await self._pool.fetchval(
            "UPDATE users SET oidc_subject = COALESCE(oidc_subject, $2) WHERE username = $1"
            " RETURNING oidc_subject",
            username,
            subject,
        )
        return bool(bound == subject)

    async def get_oidc(self, org_id: str) -> str | None:
        sealed = await self._pool.fetchval("SELECT oidc FROM orgs WHERE org_id = $1", org_id)
        return str(sealed) if sealed else None

    async def set_oidc(self, org_id: str, sealed: str | None) -> None:
        await self._pool.execute("UPDATE orgs SET oidc = $1 WHERE org_id = $2", sealed, org_id)

    async def put_oidc_pending(
        self, state_digest: str, org_id: str, sealed: str, expires_at: float
    ) -> None:
        await self._pool.execute(
            "INSERT INTO oidc_pending (state_digest, org_id, sealed, expires_at)"
            " VALUES ($1, $2, $3, $4)",
            state_digest,
            org_id,
            sealed,
            expires_at,
        )

    async def take_oidc_pending(self, state_digest: str, now: float) -> tuple[str, str] | None:
        row = await self._pool.fetchrow(
            "DELETE FROM oidc_pending WHERE state_digest = $1 RETURNING org_id, sealed, expires_at",
            state_digest,
        )
        if row is None or row[2] <= now:
            return None
        return str(row[0]), str(row[1])

    # Sign-ins

    async def add_login(self, login: LoginRecord) -> None:
        await self._pool.execute(
            "INSERT INTO logins (token_digest, username, expires_at, last_seen, method)"
            " VALUES ($1, $2, $3, $4, $5)",
            login.token_digest,
            login.username,
            login.expires_at,
            login.last_seen,
            login.method,
        )

    async def get_login(self, token_digest: str) -> LoginRecord | None:
        row = await self._pool.fetchrow(
            "SELECT token_digest, username, expires_at, last_seen, method FROM logins"
            " WHERE token_digest = $1",
            token_digest,
        )
        if row is None:
            return None
        return LoginRecord(str(row[0]), str(row[1]), float(row[2]), float(row[3]), str(row[4]))

    async def touch_login(self, token_digest: str, now: float) -> None:
        await self._pool.execute(
            "UPDATE logins SET last_seen = $1 WHERE token_digest = $2", now, token_digest
        )

    async def delete_logins_of(self, username: str) -> int:
        status = await self._pool.execute("DELETE FROM logins WHERE username = $1", username)
        return _affected(status)

    async def delete_login(self, token_digest: str) -> None:
        await self._pool.execute("DELETE FROM logins WHERE token_digest = $1", token_digest)

    # Join codes and sessions

    async def put_join_code(
        self, code_digest: str, session_id: str, expires_at: float, org_id: str = DEFAULT_ORG
    ) -> None:
        try:
            await self._pool.execute(
                "INSERT INTO join_codes (code_digest, session_id, expires_at, org_id)"
                " VALUES ($1, $2, $3, $4)",
                code_digest,
                session_id,
                expires_at,
                org_id,
            )
        except asyncpg.UniqueViolationError:
            raise TandemError("join code collision") from None

    async def take_join_code(
        self, code_digest: str, now: float, org_id: str | None = None
    ) -> str | None:
        # One DELETE ... RETURNING: of concurrent takers (on any server) exactly one gets the row.
        if org_id is None:
            row = await self._pool.fetchrow(
                "DELETE FROM join_codes WHERE code_digest = $1 RETURNING session_id, expires_at",
                code_digest,
            )
        else:
            row = await self._pool.fetchrow(
                "DELETE FROM join_codes WHERE code_digest = $1 AND org_id = $2"
                " RETURNING session_id, expires_at",
                code_digest,
                org_id,
            )
        if row is None or row[1] <= now:
            return None
        return str(row[0])

    async def delete_join_codes(self, session_id: str) -> None:
        await self._pool.execute("DELETE FROM join_codes WHERE session_id = $1", session_id)

    async def record_session_start(
        self,
        session_id: str,
        created_at: float,
        org_id: str = DEFAULT_ORG,
        site_id: str = "",
        node: str = "",
    ) -> None:
        await self._pool.execute(
            "INSERT INTO sessions (session_id, created_at, org_id, site_id, node)"
            " VALUES ($1, $2, $3, $4, $5)",
            session_id,
            created_at,
            org_id,
            site_id,
            node,
        )

    async def record_session_end(
        self, session_id: str, ended_at: float, reason: str, agent: str | None
    ) -> None:
        await self._pool.execute(
            "UPDATE sessions SET ended_at = $1, end_reason = $2, agent = $3"
            " WHERE session_id = $4 AND ended_at IS NULL",
            ended_at,
            reason,
            agent,
            session_id,
        )

    async def get_session(self, session_id: str) -> SessionRecord | None:
        row = await self._pool.fetchrow(
            f"{_SESSION_SELECT} WHERE session_id = $1",
            session_id,
        )
        return _session(row) if row else None

    async def record_session_state(self, session_id: str, state: str, agent: str | None) -> None:
        await self._pool.execute(
            "UPDATE sessions SET state = $1, agent = $2 WHERE session_id = $3 AND ended_at IS NULL",
            state,
            agent,
            session_id,
        )

    async def live_sessions(self, org_id: str) -> list[SessionRecord]:
        rows = await self._pool.fetch(
            f"{_SESSION_SELECT} WHERE org_id = $1 AND ended_at IS NULL"
            ' ORDER BY created_at, session_id COLLATE "C"',
            org_id,
        )
        return [_session(row) for row in rows]

    async def backoff_state(self, keys: Sequence[str]) -> dict[str, tuple[int, float]]:
        rows = await self._pool.fetch(
            "SELECT key, failures, locked_until FROM backoff WHERE key = ANY($1::text[])",
            list(keys),
        )
        return {str(r[0]): (int(r[1]), float(r[2])) for r in rows}

    async def backoff_failed(self, key: str, now: float) -> int:
        failures = await self._pool.fetchval(
            "INSERT INTO backoff (key, failures, locked_until, updated_at) VALUES ($1, 1, 0, $2)"
            " ON CONFLICT (key) DO UPDATE SET failures = backoff.failures + 1,"
            " updated_at = excluded.updated_at RETURNING failures",
            key,
            now,
        )
        return int(failures)

    async def backoff_lock(self, key: str, locked_until: float) -> None:
        await self._pool.execute(
            "UPDATE backoff SET locked_until = GREATEST(locked_until, $1) WHERE key = $2",
            locked_until,
            key,
        )

    async def backoff_clear(self, key: str) -> None:
        await self._pool.execute("DELETE FROM backoff WHERE key = $1", key)

    async def use_once(self, digest: str, expires_at: float) -> bool:
        row = await self._pool.fetchrow(
            "INSERT INTO used_once (digest, expires_at) VALUES ($1, $2)"
            " ON CONFLICT (digest) DO NOTHING RETURNING digest",
            digest,
            expires_at,
        )
        return row is not None

    async def purge_expired(self, now: float) -> None:
        async with self._pool.acquire() as db, db.transaction():
            await db.execute("DELETE FROM join_codes WHERE expires_at <= $1", now)
            await db.execute("DELETE FROM used_once WHERE expires_at <= $1", now)
            await db.execute(
                "DELETE FROM backoff WHERE updated_at < $1 AND locked_until < $2",
                now - 86400.0,
                now,
            )
            await db.execute("DELETE FROM logins WHERE expires_at <= $1", now)
            await db.execute("DELETE FROM oidc_pending WHERE expires_at <= $1", now)
            # Each organisation's retention: ended sessions' records go when it runs out.
            await db.execute(
                "DELETE FROM sessions WHERE ended_at IS NOT NULL"
                " AND ended_at < $1::double precision - 86400.0::double precision"
                " * (SELECT retention_days FROM orgs"
                " WHERE orgs.org_id = sessions.org_id)",
                now,
            )

    # Organisations and teams

    async def add_org(self, org: OrgRecord) -> None:
        try:
            await self._pool.execute(
                "INSERT INTO orgs (org_id, name, created_at, retention_days, recording_key)"
                " VALUES ($1, $2, $3, $4, $5)",
                org.org_id,
                org.name,
                org.created_at,
                org.retention_days,
                org.recording_key,
            )
        except asyncpg.IntegrityConstraintViolationError:
            raise ConflictError(f"an organisation {org.org_id!r} already exists") from None

    async def get_org(self, org_id: str) -> OrgRecord | None:
        row = await self._pool.fetchrow(
            "SELECT org_id, name, created_at, retention_days, recording_key FROM orgs"
            " WHERE org_id = $1",
            org_id,
        )
        if row is None:
            return None
        return OrgRecord(str(row[0]), str(row[1]), float(row[2]), int(row[3]), row[4])

    async def update_org(self, org: OrgRecord) -> None:
        await self._pool.execute(
            "UPDATE orgs SET name = $1, retention_days = $2, recording_key = $3 WHERE org_id = $4",
            org.name,
            org.retention_days,
            org.recording_key,
            org.org_id,
        )

    async def add_team(self, org_id: str, team: str) -> None:
        try:
            await self._pool.execute(
                "INSERT INTO teams (org_id, team) VALUES ($1, $2)", org_id, team
            )
        except asyncpg.IntegrityConstraintViolationError:
            raise ConflictError(f"a team {team!r} already exists") from None

    async def delete_team(self, org_id: str, team: str) -> bool:
        status = await self._pool.execute(
            "DELETE FROM teams WHERE org_id = $1 AND team = $2", org_id, team
        )
        return _affected(status) > 0

    async def list_teams(self, org_id: str) -> list[str]:
        rows = await self._pool.fetch(
            'SELECT team FROM teams WHERE org_id = $1 ORDER BY team COLLATE "C"', org_id
        )
        return [str(row[0]) for row in rows]

    async def team_policies(self, org_id: str, teams: tuple[str, ...]) -> dict[str, str]:
        rows = await self._pool.fetch(
            "SELECT team, policy FROM teams WHERE org_id = $1 AND team = ANY($2::text[])"
            " AND policy IS NOT NULL",
            org_id,
            list(teams),
        )
        policies = {str(row[0]): str(row[1]) for row in rows}
        return {team: policies[team] for team in teams if team in policies}

    async def set_team_policy(self, org_id: str, team: str, policy: str | None) -> bool:
        status = await self._pool.execute(
            "UPDATE teams SET policy = $1 WHERE org_id = $2 AND team = $3", policy, org_id, team
        )
        return _affected(status) > 0

    # Sites

    async def _write_site(self, site: SiteRecord, insert: bool) -> None:
        async with self._pool.acquire() as db, db.transaction():
            rows = await db.fetch("SELECT team FROM teams WHERE org_id = $1", site.org_id)
            known = {row[0] for row in rows}
            for team in site.teams:
                if team not in known:
                    raise NotFoundError(f"no team named {team!r}")
            values = (
                site.site_id,
                site.org_id,
                site.origin,
                site.name,
                site.policy,
                site.token_key,
                site.require_token,
            )
            try:
                if insert:
                    await db.execute(
                        "INSERT INTO sites (site_id, org_id, origin, name, policy, token_key,"
                        " require_token) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        *values,
                    )
                else:
                    status = await db.execute(
                        "UPDATE sites SET org_id = $2, origin = $3, name = $4, policy = $5,"
                        " token_key = $6, require_token = $7 WHERE site_id = $1",
                        *values,
                    )
                    if not _affected(status):
                        return  # no such site: nothing to update
            except asyncpg.IntegrityConstraintViolationError:
                raise ConflictError(
                    f"a site {site.site_id!r} or one for {site.origin} already exists"
                ) from None
            await db.execute("DELETE FROM site_teams WHERE site_id = $1", site.site_id)
            await db.executemany(
                "INSERT INTO site_teams (site_id, org_id, team) VALUES ($1, $2, $3)",
                [(site.site_id, site.org_id, team) for team in sorted(set(site.teams))],
            )

    async def add_site(self, site: SiteRecord) -> None:
        await self._write_site(site, insert=True)

    async def update_site(self, site: SiteRecord) -> None:
        await self._write_site(site, insert=False)

    async def get_site(self, site_id: str) -> SiteRecord | None:
        row = await self._pool.fetchrow(f"{_SITE_SELECT} WHERE site_id = $1", site_id)
        return _site(row) if row else None

    async def site_for_origin(self, origin: str) -> SiteRecord | None:
        row = await self._pool.fetchrow(f"{_SITE_SELECT} WHERE origin = $1", origin)
        return _site(row) if row else None

    async def list_sites(self, org_id: str | None = None) -> list[SiteRecord]:
        if org_id is None:
            rows = await self._pool.fetch(f'{_SITE_SELECT} ORDER BY site_id COLLATE "C"')
        else:
            rows = await self._pool.fetch(
                f'{_SITE_SELECT} WHERE org_id = $1 ORDER BY site_id COLLATE "C"', org_id
            )
        return [_site(row) for row in rows]

    async def delete_site(self, site_id: str) -> bool:
        status = await self._pool.execute("DELETE FROM sites WHERE site_id = $1", site_id)
        return _affected(status) > 0

    # Recordings (ciphertext only; frames go with their recording by ON DELETE CASCADE)

    async def add_recording(self, recording: RecordingRecord) -> None:
        try:
            await self._pool.execute(
                "INSERT INTO recordings (recording_id, org_id, session_id, site_id, agent, key_id,"
                " started_at, ended_at, end_reason, frames, size)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                recording.recording_id,
                recording.org_id,
                recording.session_id,
                recording.site_id,
                recording.agent,
                recording.key_id,
                recording.started_at,
                recording.ended_at,
                recording.end_reason,
                recording.frames,
                recording.size,
            )
        except asyncpg.ForeignKeyViolationError:
            raise NotFoundError(f"no organisation {recording.org_id!r}") from None
        except asyncpg.IntegrityConstraintViolationError:
            raise ConflictError(f"a recording {recording.recording_id!r} already exists") from None

    async def append_recording_frames(
        self, recording_id: str, first_seq: int, frames: Sequence[bytes]
    ) -> None:
        try:
            async with self._pool.acquire() as db, db.transaction():
                # The UPDATE locks the recording's row: appends to it (from any server) and its
                # erasure wait for this transaction.
                status = await db.execute(
                    "UPDATE recordings SET frames = frames + $2, size = size + $3"
                    " WHERE recording_id = $1",
                    recording_id,
                    len(frames),
                    sum(len(frame) for frame in frames),
                )
                if not _affected(status):
                    raise NotFoundError(f"no recording {recording_id!r}")
                await db.execute(
                    "INSERT INTO recording_frames (recording_id, seq, data)"
                    " SELECT $1, $2::bigint + ordinality - 1, data"
                    " FROM unnest($3::bytea[]) WITH ORDINALITY AS f(data, ordinality)",
                    recording_id,
                    first_seq,
                    [bytes(frame) for frame in frames],
                )
        except asyncpg.UniqueViolationError:
            raise ConflictError(
                f"recording {recording_id!r} already has a frame numbered"
                f" {first_seq}..{first_seq + len(frames) - 1}"
            ) from None

    async def end_recording(self, recording_id: str, ended_at: float, reason: str) -> None:
        await self._pool.execute(
            "UPDATE recordings SET ended_at = $1, end_reason = $2"
            " WHERE recording_id = $3 AND ended_at IS NULL",
            ended_at,
            reason,
            recording_id,
        )

    async def get_recording(self, recording_id: str) -> RecordingRecord | None:
        row = await self._pool.fetchrow(
            f"{_RECORDING_SELECT} WHERE recording_id = $1", recording_id
        )
        return _recording(row) if row else None

    async def list_recordings(self, org_id: str, limit: int) -> list[RecordingRecord]:
        rows = await self._pool.fetch(
            f"{_RECORDING_SELECT} WHERE org_id = $1"
            ' ORDER BY started_at DESC, recording_id COLLATE "C" DESC LIMIT $2',
            org_id,
            limit,
        )
        return [_recording(row) for row in rows]

    async def recording_frames(self, recording_id: str) -> list[bytes]:
        rows = await self._pool.fetch(
            "SELECT data FROM recording_frames WHERE recording_id = $1 ORDER BY seq", recording_id
        )
        return [bytes(row[0]) for row in rows]

    async def delete_recording(self, recording_id: str) -> bool:
        status = await self._pool.execute(
            "DELETE FROM recordings WHERE recording_id = $1", recording_id
        )
        return _affected(status) > 0

    async def purge_recordings(self, now: float) -> list[RecordingRecord]:
        rows = await self._pool.fetch(
            "DELETE FROM recordings WHERE ended_at IS NOT NULL"
            " AND ended_at < $1::double precision - 86400.0::double precision"
            " * (SELECT retention_days FROM orgs WHERE orgs.org_id = recordings.org_id)"
            " RETURNING recording_id, org_id, session_id, site_id, agent, key_id, started_at,"
            " ended_at, end_reason, frames, size",
            now,
        )
        return sorted(map(_recording, rows), key=lambda r: (r.started_at, r.recording_id))

    # Audit trail

    async def append_audit(
        self,
        at: float,
        action: str,
        actor: str,
        org: str,
        subject: str,
        details: dict[str, object],
        anchor: AnchorRule | None = None,
    ) -> AuditRecord:
        async with self._pool.acquire() as db, db.transaction():
            # EXCLUSIVE blocks other writers (every server) until commit; readers go on.
            await db.execute("LOCK TABLE audit IN EXCLUSIVE MODE")
            row = await db.fetchrow("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            seq, prev = (int(row[0]) + 1, str(row[1])) if row else (1, GENESIS)
            digest = record_hash(seq, at, action, actor, org, subject, details, prev)
            await db.execute(
                "INSERT INTO audit (seq, at, action, actor, org, subject, details, prev_hash, hash)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                seq,
                at,
                action,
                actor,
                org,
                subject,
                json.dumps(details, sort_keys=True),
                prev,
                digest,
            )
            record = AuditRecord(seq, at, action, actor, org, subject, details, prev, digest)
            if anchor is not None:
                # Anchors are written only here, under the same lock: they follow record order.
                latest = await db.fetchrow(f"{_ANCHOR_SELECT} ORDER BY seq DESC LIMIT 1")
                sealed = anchor(record, _anchor(latest) if latest else None)
                if sealed is not None:
                    await db.execute(
                        "INSERT INTO audit_anchors (seq, hash, mac, version, every, prev_seq,"
                        " prev_mac) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        sealed.seq,
                        sealed.hash,
                        sealed.mac,
                        sealed.version,
                        sealed.every,
                        sealed.prev_seq,
                        sealed.prev_mac,
                    )
        return record

    async def audit_records(self, since: float = 0.0) -> list[AuditRecord]:
        rows = await self._pool.fetch(
            "SELECT seq, at, action, actor, org, subject, details, prev_hash, hash"
            " FROM audit WHERE at >= $1 ORDER BY seq",
            since,
        )
        return self._audit_rows(rows)

    async def audit_page(self, org: str, after_seq: int, limit: int) -> list[AuditRecord]:
        rows = await self._pool.fetch(
            "SELECT seq, at, action, actor, org, subject, details, prev_hash, hash"
            " FROM audit WHERE org = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            org,
            after_seq,
            limit,
        )
        return self._audit_rows(rows)

    @staticmethod
    def _audit_rows(rows: Any) -> list[AuditRecord]:
        return [
            AuditRecord(
                int(r[0]),
                float(r[1]),
                str(r[2]),
                str(r[3]),
                str(r[4]),
                str(r[5]),
                json.loads(r[6]),
                str(r[7]),
                str(r[8]),
            )
            for r in rows
        ]

    async def anchors(self) -> list[Anchor]:
        return [_anchor(row) for row in await self._pool.fetch(f"{_ANCHOR_SELECT} ORDER BY seq")]

    async def close(self) -> None:
        await self._pool.close()


def _scrub(message: str, dsn: str) -> str:
    """An error message with the DSN's password (if it shows up at all) blanked out."""
    userinfo = dsn.partition("://")[2].partition("/")[0].rpartition("@")[0]
    secrets = [userinfo.partition(":")[2]]
    secrets += re.findall(r"(?i)[?&]password=([^&]*)", dsn)
    for secret in [*secrets, *map(unquote, secrets)]:
        if secret:
            message = message.replace(secret, "***")
    return message
