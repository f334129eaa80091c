"""The schema histories from before Alembic, frozen: SQLite's counted by ``PRAGMA user_version``,
PostgreSQL's by the table ``tandem_schema_version``. The baseline revision runs what an old
database still lacks of them; nothing else may use or change them.
"""

from __future__ import annotations

# SQLite: each entry moves the schema one version forward (never edited once released).
SQLITE_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE users (
        username TEXT PRIMARY KEY,
        display_name TEXT NOT NULL,
        role TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE logins (
        token_digest TEXT PRIMARY KEY,
        username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
        expires_at REAL NOT NULL
    );
    CREATE TABLE join_codes (
        code_digest TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE TABLE sessions (
        session_id TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        ended_at REAL,
        end_reason TEXT,
        agent TEXT
    );
    """,
    """
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        action TEXT NOT NULL,
        actor TEXT NOT NULL,
        org TEXT NOT NULL,
        subject TEXT NOT NULL,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_at ON audit(at);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TABLE audit_anchors (
        seq INTEGER PRIMARY KEY,
        hash TEXT NOT NULL,
        mac TEXT NOT NULL
    );
    """,
    """
    ALTER TABLE users ADD COLUMN totp_secret TEXT;
    ALTER TABLE users ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE users ADD COLUMN recovery_codes TEXT NOT NULL DEFAULT '[]';
    """,
    """
    ALTER TABLE logins ADD COLUMN last_seen REAL NOT NULL DEFAULT 0;
    """,
    """
    CREATE TABLE orgs (
        org_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_at REAL NOT NULL,
        retention_days INTEGER NOT NULL
    );
    CREATE TABLE teams (
        org_id TEXT NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
        team TEXT NOT NULL,
        PRIMARY KEY (org_id, team)
    );
    CREATE TABLE team_members (
        org_id TEXT NOT NULL,
        team TEXT NOT NULL,
        username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
        PRIMARY KEY (org_id, team, username),
        FOREIGN KEY (org_id, team) REFERENCES teams(org_id, team) ON DELETE CASCADE
    );
    CREATE TABLE sites (
        site_id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
        origin TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        policy TEXT,
        token_key TEXT,
        require_token INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE site_teams (
        site_id TEXT NOT NULL REFERENCES sites(site_id) ON DELETE CASCADE,
        org_id TEXT NOT NULL,
        team TEXT NOT NULL,
        PRIMARY KEY (site_id, team),
        FOREIGN KEY (org_id, team) REFERENCES teams(org_id, team) ON DELETE CASCADE
    );
    INSERT INTO orgs VALUES ('default', 'Default organisation', 0, 30);
    INSERT INTO teams VALUES ('default', 'support');
    INSERT INTO sites VALUES ('demo', 'default', 'self', 'Demo shop', NULL, NULL, 0);
    INSERT INTO site_teams VALUES ('demo', 'default', 'support');
    ALTER TABLE users ADD COLUMN org_id TEXT NOT NULL DEFAULT 'default';
    -- Accounts made before second factors were required had opted out with --no-mfa.
    ALTER TABLE users ADD COLUMN mfa_exempt INTEGER NOT NULL DEFAULT 0;
    UPDATE users SET mfa_exempt = 1 WHERE totp_secret IS NULL;
    ALTER TABLE users ADD COLUMN pending_totp TEXT;
    INSERT INTO team_members
        SELECT 'default', 'support', username FROM users WHERE role IN ('agent', 'supervisor');
    ALTER TABLE join_codes ADD COLUMN org_id TEXT NOT NULL DEFAULT 'default';
    ALTER TABLE sessions ADD COLUMN org_id TEXT NOT NULL DEFAULT 'default';
    ALTER TABLE sessions ADD COLUMN site_id TEXT NOT NULL DEFAULT '';
    """,
    """
    ALTER TABLE teams ADD COLUMN policy TEXT;
    """,
    """
    ALTER TABLE logins ADD COLUMN method TEXT NOT NULL DEFAULT 'password';
    ALTER TABLE orgs ADD COLUMN oidc TEXT;
    ALTER TABLE users ADD COLUMN oidc_subject TEXT;
    CREATE TABLE oidc_pending (
        state_digest TEXT PRIMARY KEY,
        org_id TEXT NOT NULL,
        sealed TEXT NOT NULL,
        expires_at REAL NOT NULL
    );
    """,
    """
    ALTER TABLE orgs ADD COLUMN recording_key TEXT;
    CREATE TABLE recordings (
        recording_id TEXT PRIMARY KEY,
        org_id TEXT NOT NULL REFERENCES orgs(org_id) ON DELETE CASCADE,
        session_id TEXT NOT NULL,
        site_id TEXT NOT NULL,
        agent TEXT NOT NULL,
        key_id TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        end_reason TEXT,
        frames INTEGER NOT NULL DEFAULT 0,
        size INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX recordings_org_started ON recordings(org_id, started_at);
    CREATE TABLE recording_frames (
        recording_id TEXT NOT NULL REFERENCES recordings(recording_id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (recording_id, seq)
    );
    """,
    """
    ALTER TABLE sessions ADD COLUMN node TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN state TEXT NOT NULL DEFAULT 'waiting';
    """,
    """
    CREATE TABLE used_once (
        digest TEXT PRIMARY KEY,
        expires_at REAL NOT NULL
    );
    CREATE TABLE backoff (
        key TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        locked_until REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # Chained anchors (tandem.audit). Anchors stored before keep version 0 (LEGACY), accepted
    # only before the first chained one. Anchors become append-only like the records.
    """
    ALTER TABLE audit_anchors ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE audit_anchors ADD COLUMN every INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE audit_anchors ADD COLUMN prev_seq INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE audit_anchors ADD COLUMN prev_mac TEXT NOT NULL DEFAULT '';
    CREATE TRIGGER audit_anchors_no_update BEFORE UPDATE ON audit_anchors
        BEGIN SELECT RAISE(ABORT, 'the audit anchors are append-only'); END;
    CREATE TRIGGER audit_anchors_no_delete BEFORE DELETE ON audit_anchors
        BEGIN SELECT RAISE(ABORT, 'the audit anchors are append-only'); END;
    -- INSERT OR REPLACE deletes the row in the way without firing delete triggers.
    CREATE TRIGGER audit_anchors_no_replace BEFORE INSERT ON audit_anchors
        WHEN EXISTS (SELECT 1 FROM audit_anchors WHERE seq = NEW.seq)
        BEGIN SELECT RAISE(ABORT, 'the audit anchors are append-only'); END;
    CREATE TRIGGER audit_no_replace BEFORE INSERT ON audit
        WHEN EXISTS (SELECT 1 FROM audit WHERE seq = NEW.seq)
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
)

# PostgreSQL: version 1 is the SQLite schema as of its 7th migration, with PostgreSQL types.
POSTGRES_MIGRATIONS: tuple[str, ...] = (
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

NEWER_THAN_LEGACY = 1000
"""Written to the old counters once Alembic owns the schema, so a Tandem from before refuses the
database ("written by a newer Tandem") instead of using a schema it does not know."""
