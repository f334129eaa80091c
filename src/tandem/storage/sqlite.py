"""The embedded default backend: one SQLite file, queries run off the event loop."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

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

T = TypeVar("T")

# Each entry moves the schema one version forward; never edit a released entry.
_MIGRATIONS: tuple[str, ...] = (
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

_USER_COLUMNS = (
    "username, display_name, role, password_hash, created_at, totp_secret, totp_last_step,"
    " recovery_codes, org_id, mfa_exempt, pending_totp"
)
_SITE_COLUMNS = "site_id, org_id, origin, name, policy, token_key, require_token"
_SESSION_COLUMNS = (
    "session_id, created_at, ended_at, end_reason, agent, org_id, site_id, node, state"
)
_ANCHOR_COLUMNS = "seq, hash, mac, version, every, prev_seq, prev_mac"
_RECORDING_COLUMNS = (
    "recording_id, org_id, session_id, site_id, agent, key_id, started_at, ended_at, end_reason,"
    " frames, size"
)


def _latest_anchor(db: sqlite3.Connection) -> Anchor | None:
    row = db.execute(
        f"SELECT {_ANCHOR_COLUMNS} FROM audit_anchors ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    return Anchor(*row) if row else None


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class SQLiteStorage:
    """:class:`~tandem.storage.base.Storage` on a SQLite file (WAL mode)."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the database at {path}: {exc}") from None
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        # Erased rows (ended sessions, codes, recordings) are overwritten, not left in free pages.
        self._db.execute("PRAGMA secure_delete=ON")
        self._migrate()

    def _migrate(self) -> None:
        with self._lock:
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
            if version > len(_MIGRATIONS):
                raise ConfigError("the database was written by a newer Tandem; upgrade first")
            for index in range(version, len(_MIGRATIONS)):
                self._db.executescript(
                    f"BEGIN; {_MIGRATIONS[index]} PRAGMA user_version={index + 1}; COMMIT;"
                )

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                return work(self._db)

        return await anyio.to_thread.run_sync(locked)

    async def add_user(self, user: UserRecord) -> None:
        def work(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    f"INSERT INTO users ({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        user.username,
                        user.display_name,
                        user.role,
                        user.password_hash,
                        user.created_at,
                        user.totp_secret,
                        user.totp_last_step,
                        json.dumps(list(user.recovery_codes)),
                        user.org_id,
                        int(user.mfa_exempt),
                        user.pending_totp,
                    ),
                )
            except sqlite3.IntegrityError:
                raise UserExistsError(f"a user named {user.username!r} already exists") from None

        await self._run(work)

    @staticmethod
    def _user(db: sqlite3.Connection, row: tuple[Any, ...]) -> UserRecord:
        teams = tuple(
            team
            for (team,) in db.execute(
                "SELECT team FROM team_members WHERE username = ? ORDER BY team", (row[0],)
            )
        )
        return UserRecord(
            username=row[0],
            display_name=row[1],
            role=row[2],
            password_hash=row[3],
            created_at=row[4],
            totp_secret=row[5],
            totp_last_step=row[6],
            recovery_codes=tuple(json.loads(row[7])),
            org_id=row[8],
            mfa_exempt=bool(row[9]),
            pending_totp=row[10],
            teams=teams,
        )

    async def get_user(self, username: str) -> UserRecord | None:
        def work(db: sqlite3.Connection) -> UserRecord | None:
            row = db.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?",
                (username,),
            ).fetchone()
            return self._user(db, row) if row else None

        return await self._run(work)

    async def list_users(self, org_id: str) -> list[UserRecord]:
        def work(db: sqlite3.Connection) -> list[UserRecord]:
            rows = db.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE org_id = ? ORDER BY username",
                (org_id,),
            ).fetchall()
            return [self._user(db, row) for row in rows]

        return await self._run(work)

    async def update_user(self, username: str, *, role: str, display_name: str) -> None:
        await self._run(
            lambda db: db.execute(
                "UPDATE users SET role = ?, display_name = ? WHERE username = ?",
                (role, display_name, username),
            )
        )

    async def set_user_teams(self, username: str, org_id: str, teams: tuple[str, ...]) -> None:
        def work(db: sqlite3.Connection) -> None:
            with _transaction(db):
                known = {
                    t for (t,) in db.execute("SELECT team FROM teams WHERE org_id = ?", (org_id,))
                }
                for team in teams:
                    if team not in known:
                        raise NotFoundError(f"no team named {team!r}")
                db.execute("DELETE FROM team_members WHERE username = ?", (username,))
                db.executemany(
                    "INSERT INTO team_members VALUES (?, ?, ?)",
                    [(org_id, team, username) for team in sorted(set(teams))],
                )

        await self._run(work)

    async def set_second_factor(
        self, username: str, totp_secret: str | None, recovery_codes: tuple[str, ...]
    ) -> None:
        await self._run(
            lambda db: db.execute(
                "UPDATE users SET totp_secret = ?, totp_last_step = 0, recovery_codes = ?,"
                " pending_totp = NULL WHERE username = ?",
                (totp_secret, json.dumps(list(recovery_codes)), username),
            )
        )

    async def set_pending_second_factor(self, username: str, sealed: str | None) -> None:
        await self._run(
            lambda db: db.execute(
                "UPDATE users SET pending_totp = ? WHERE username = ?", (sealed, username)
            )
        )

    async def link_oidc_subject(self, username: str, subject: str) -> bool:
        """Record the identity provider's subject for a user that has none; True if the user's
        subject is (now) ``subject``."""

        def work(db: sqlite3.Connection) -> bool:
            with _transaction(db):
                db.execute(
                    "UPDATE users SET oidc_subject = ? WHERE username = ? AND oidc_subject IS NULL",
                    (subject, username),
                )
                row = db.execute(
                    "SELECT oidc_subject FROM users WHERE username = ?", (username,)
                ).fetchone()
            return bool(row) and row[0] == subject

        return await self._run(work)

    async def get_oidc(self, org_id: str) -> str | None:
        row = await self._run(
            lambda db: db.execute("SELECT oidc FROM orgs WHERE org_id = ?", (org_id,)).fetchone()
        )
        return str(row[0]) if row and row[0] else None

    async def set_oidc(self, org_id: str, sealed: str | None) -> None:
        await self._run(
            lambda db: db.execute("UPDATE orgs SET oidc = ? WHERE org_id = ?", (sealed, org_id))
        )

    async def put_oidc_pending(
        self, state_digest: str, org_id: str, sealed: str, expires_at: float
    ) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT INTO oidc_pending VALUES (?, ?, ?, ?)",
                (state_digest, org_id, sealed, expires_at),
            )
        )

    async def take_oidc_pending(self, state_digest: str, now: float) -> tuple[str, str] | None:
        row = await self._run(
            lambda db: db.execute(
                "DELETE FROM oidc_pending WHERE state_digest = ?"
                " RETURNING org_id, sealed, expires_at",
                (state_digest,),
            ).fetchone()
        )
        if row is None or row[2] <= now:
            return None
        return str(row[0]), str(row[1])

    async def delete_user(self, username: str) -> bool:
        cursor = await self._run(
            lambda db: db.execute("DELETE FROM users WHERE username = ?", (username,))
        )
        return bool(cursor.rowcount)

    async def add_org(self, org: OrgRecord) -> None:
        def work(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    "INSERT INTO orgs (org_id, name, created_at, retention_days, recording_key)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (org.org_id, org.name, org.created_at, org.retention_days, org.recording_key),
                )
            except sqlite3.IntegrityError:
                raise ConflictError(f"an organisation {org.org_id!r} already exists") from None

        await self._run(work)

    async def get_org(self, org_id: str) -> OrgRecord | None:
        row = await self._run(
            lambda db: db.execute(
                "SELECT org_id, name, created_at, retention_days, recording_key FROM orgs"
                " WHERE org_id = ?",
                (org_id,),
            ).fetchone()
        )
        return OrgRecord(*row) if row else None

    async def update_org(self, org: OrgRecord) -> None:
        await self._run(
            lambda db: db.execute(
                "UPDATE orgs SET name = ?, retention_days = ?, recording_key = ? WHERE org_id = ?",
                (org.name, org.retention_days, org.recording_key, org.org_id),
            )
        )

    async def add_team(self, org_id: str, team: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            try:
                db.execute("INSERT INTO teams (org_id, team) VALUES (?, ?)", (org_id, team))
            except sqlite3.IntegrityError:
                raise ConflictError(f"a team {team!r} already exists") from None

        await self._run(work)

    async def delete_team(self, org_id: str, team: str) -> bool:
        cursor = await self._run(
            lambda db: db.execute("DELETE FROM teams WHERE org_id = ? AND team = ?", (org_id, team))
        )
        return bool(cursor.rowcount)

    async def team_policies(self, org_id: str, teams: tuple[str, ...]) -> dict[str, str]:
        def work(db: sqlite3.Connection) -> dict[str, str]:
            found = {}
            for team in teams:
                row = db.execute(
                    "SELECT policy FROM teams WHERE org_id = ? AND team = ? AND policy IS NOT NULL",
                    (org_id, team),
                ).fetchone()
                if row:
                    found[team] = str(row[0])
            return found

        return await self._run(work)

    async def set_team_policy(self, org_id: str, team: str, policy: str | None) -> bool:
        cursor = await self._run(
            lambda db: db.execute(
                "UPDATE teams SET policy = ? WHERE org_id = ? AND team = ?", (policy, org_id, team)
            )
        )
        return bool(cursor.rowcount)

    async def list_teams(self, org_id: str) -> list[str]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT team FROM teams WHERE org_id = ? ORDER BY team", (org_id,)
            ).fetchall()
        )
        return [row[0] for row in rows]

    @staticmethod
    def _site(db: sqlite3.Connection, row: tuple[Any, ...]) -> SiteRecord:
        teams = tuple(
            team
            for (team,) in db.execute(
                "SELECT team FROM site_teams WHERE site_id = ? ORDER BY team", (row[0],)
            )
        )
        return SiteRecord(
            site_id=row[0],
            org_id=row[1],
            origin=row[2],
            name=row[3],
            policy=row[4],
            token_key=row[5],
            require_token=bool(row[6]),
            teams=teams,
        )

    def _write_site(self, db: sqlite3.Connection, site: SiteRecord, insert: bool) -> None:
        with _transaction(db):
            known = {
                t for (t,) in db.execute("SELECT team FROM teams WHERE org_id = ?", (site.org_id,))
            }
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
                int(site.require_token),
            )
            try:
                if insert:
                    db.execute(
                        f"INSERT INTO sites ({_SITE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        values,
                    )
                else:
                    db.execute(
                        "UPDATE sites SET org_id = ?, origin = ?, name = ?, policy = ?,"
                        " token_key = ?, require_token = ? WHERE site_id = ?",
                        (*values[1:], site.site_id),
                    )
            except sqlite3.IntegrityError:
                raise ConflictError(
                    f"a site {site.site_id!r} or one for {site.origin} already exists"
                ) from None
            db.execute("DELETE FROM site_teams WHERE site_id = ?", (site.site_id,))
            db.executemany(
                "INSERT INTO site_teams VALUES (?, ?, ?)",
                [(site.site_id, site.org_id, team) for team in sorted(set(site.teams))],
            )

    async def add_site(self, site: SiteRecord) -> None:
        await self._run(lambda db: self._write_site(db, site, insert=True))

    async def update_site(self, site: SiteRecord) -> None:
        await self._run(lambda db: self._write_site(db, site, insert=False))

    async def _one_site(self, where: str, value: str) -> SiteRecord | None:
        def work(db: sqlite3.Connection) -> SiteRecord | None:
            row = db.execute(
                f"SELECT {_SITE_COLUMNS} FROM sites WHERE {where} = ?",
                (value,),
            ).fetchone()
            return self._site(db, row) if row else None

        return await self._run(work)

    async def get_site(self, site_id: str) -> SiteRecord | None:
        return await self._one_site("site_id", site_id)

    async def site_for_origin(self, origin: str) -> SiteRecord | None:
        return await self._one_site("origin", origin)

    async def list_sites(self, org_id: str | None = None) -> list[SiteRecord]:
        def work(db: sqlite3.Connection) -> list[SiteRecord]:
            if org_id is None:
                rows = db.execute(f"SELECT {_SITE_COLUMNS} FROM sites ORDER BY site_id").fetchall()
            else:
                rows = db.execute(
                    f"SELECT {_SITE_COLUMNS} FROM sites WHERE org_id = ? ORDER BY site_id",
                    (org_id,),
                ).fetchall()
            return [self._site(db, row) for row in rows]

        return await self._run(work)

    async def delete_site(self, site_id: str) -> bool:
        cursor = await self._run(
            lambda db: db.execute("DELETE FROM sites WHERE site_id = ?", (site_id,))
        )
        return bool(cursor.rowcount)

    # Recordings (ciphertext only; frames go with their recording: foreign_keys is on)

    async def add_recording(self, recording: RecordingRecord) -> None:
        def work(db: sqlite3.Connection) -> None:
            with _transaction(db):
                if not db.execute(
                    "SELECT 1 FROM orgs WHERE org_id = ?", (recording.org_id,)
                ).fetchone():
                    raise NotFoundError(f"no organisation {recording.org_id!r}")
                try:
                    db.execute(
                        f"INSERT INTO recordings ({_RECORDING_COLUMNS})"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
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
                        ),
                    )
                except sqlite3.IntegrityError:
                    raise ConflictError(
                        f"a recording {recording.recording_id!r} already exists"
                    ) from None

        await self._run(work)

    async def append_recording_frames(
        self, recording_id: str, first_seq: int, frames: Sequence[bytes]
    ) -> None:
        def work(db: sqlite3.Connection) -> None:
            with _transaction(db):
                cursor = db.execute(
                    "UPDATE recordings SET frames = frames + ?, size = size + ?"
                    " WHERE recording_id = ?",
                    (len(frames), sum(len(frame) for frame in frames), recording_id),
                )
                if not cursor.rowcount:
                    raise NotFoundError(f"no recording {recording_id!r}")
                try:
                    db.executemany(
                        "INSERT INTO recording_frames (recording_id, seq, data) VALUES (?, ?, ?)",
                        [
                            (recording_id, first_seq + index, bytes(frame))
                            for index, frame in enumerate(frames)
                        ],
                    )
                except sqlite3.IntegrityError:
                    raise ConflictError(
                        f"recording {recording_id!r} already has a frame numbered"
                        f" {first_seq}..{first_seq + len(frames) - 1}"
                    ) from None

        await self._run(work)

    async def end_recording(self, recording_id: str, ended_at: float, reason: str) -> None:
        await self._run(
            lambda db: db.execute(
                "UPDATE recordings SET ended_at = ?, end_reason = ?"
                " WHERE recording_id = ? AND ended_at IS NULL",
                (ended_at, reason, recording_id),
            )
        )

    async def get_recording(self, recording_id: str) -> RecordingRecord | None:
        row = await self._run(
            lambda db: db.execute(
                f"SELECT {_RECORDING_COLUMNS} FROM recordings WHERE recording_id = ?",
                (recording_id,),
            ).fetchone()
        )
        return RecordingRecord(*row) if row else None

    async def list_recordings(self, org_id: str, limit: int) -> list[RecordingRecord]:
        rows = await self._run(
            lambda db: db.execute(
                f"SELECT {_RECORDING_COLUMNS} FROM recordings WHERE org_id = ?"
                " ORDER BY started_at DESC, recording_id DESC LIMIT ?",
                (org_id, limit),
            ).fetchall()
        )
        return [RecordingRecord(*row) for row in rows]

    async def recording_frames(self, recording_id: str) -> list[bytes]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT data FROM recording_frames WHERE recording_id = ? ORDER BY seq",
                (recording_id,),
            ).fetchall()
        )
        return [bytes(row[0]) for row in rows]

    async def delete_recording(self, recording_id: str) -> bool:
        cursor = await self._run(
            lambda db: db.execute("DELETE FROM recordings WHERE recording_id = ?", (recording_id,))
        )
        return bool(cursor.rowcount)

    async def purge_recordings(self, now: float) -> list[RecordingRecord]:
        rows = await self._run(
            lambda db: db.execute(
                "DELETE FROM recordings WHERE ended_at IS NOT NULL AND ended_at < ? - 86400.0 *"
                " (SELECT retention_days FROM orgs WHERE orgs.org_id = recordings.org_id)"
                f" RETURNING {_RECORDING_COLUMNS}",
                (now,),
            ).fetchall()
        )
        return sorted(
            (RecordingRecord(*row) for row in rows), key=lambda r: (r.started_at, r.recording_id)
        )

    async def use_second_factor(
        self, username: str, step: int | None, recovery_digest: str | None
    ) -> bool:
        """Atomically accept a TOTP step (only if newer than the last one used) or consume a
        recovery code. False when the step was already used or the code is unknown."""

        def work(db: sqlite3.Connection) -> bool:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT totp_last_step, recovery_codes FROM users WHERE username = ?",
                    (username,),
                ).fetchone()
                ok = False
                if row and step is not None and step > row[0]:
                    db.execute(
                        "UPDATE users SET totp_last_step = ? WHERE username = ?", (step, username)
                    )
                    ok = True
                elif row and recovery_digest is not None:
                    codes = json.loads(row[1])
                    if recovery_digest in codes:
                        codes.remove(recovery_digest)
                        db.execute(
                            "UPDATE users SET recovery_codes = ? WHERE username = ?",
                            (json.dumps(codes), username),
                        )
                        ok = True
                db.execute("COMMIT")
                return ok
            except BaseException:
                db.execute("ROLLBACK")
                raise

        return await self._run(work)

    async def count_users(self) -> int:
        row = await self._run(lambda db: db.execute("SELECT count(*) FROM users").fetchone())
        return int(row[0])

    async def add_login(self, login: LoginRecord) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT INTO logins (token_digest, username, expires_at, last_seen, method)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    login.token_digest,
                    login.username,
                    login.expires_at,
                    login.last_seen,
                    login.method,
                ),
            )
        )

    async def get_login(self, token_digest: str) -> LoginRecord | None:
        row = await self._run(
            lambda db: db.execute(
                "SELECT token_digest, username, expires_at, last_seen, method FROM logins"
                " WHERE token_digest = ?",
                (token_digest,),
            ).fetchone()
        )
        return LoginRecord(*row) if row else None

    async def touch_login(self, token_digest: str, now: float) -> None:
        await self._run(
            lambda db: db.execute(
                "UPDATE logins SET last_seen = ? WHERE token_digest = ?", (now, token_digest)
            )
        )

    async def delete_logins_of(self, username: str) -> int:
        cursor = await self._run(
            lambda db: db.execute("DELETE FROM logins WHERE username = ?", (username,))
        )
        return int(cursor.rowcount)

    async def delete_login(self, token_digest: str) -> None:
        await self._run(
            lambda db: db.execute("DELETE FROM logins WHERE token_digest = ?", (token_digest,))
        )

    async def put_join_code(
        self, code_digest: str, session_id: str, expires_at: float, org_id: str = DEFAULT_ORG
    ) -> None:
        def work(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    "INSERT INTO join_codes (code_digest, session_id, expires_at, org_id)"
                    " VALUES (?, ?, ?, ?)",
                    (code_digest, session_id, expires_at, org_id),
                )
            except sqlite3.IntegrityError:
                raise TandemError("join code collision") from None

        await self._run(work)

    async def take_join_code(
        self, code_digest: str, now: float, org_id: str | None = None
    ) -> str | None:
        query = "DELETE FROM join_codes WHERE code_digest = ?"
        args: tuple[str, ...] = (code_digest,)
        if org_id is not None:
            query, args = f"{query} AND org_id = ?", (code_digest, org_id)
        row = await self._run(
            lambda db: db.execute(f"{query} RETURNING session_id, expires_at", args).fetchone()
        )
        if row is None or row[1] <= now:
            return None
        return str(row[0])

    async def delete_join_codes(self, session_id: str) -> None:
        await self._run(
            lambda db: db.execute("DELETE FROM join_codes WHERE session_id = ?", (session_id,))
        )

    async def record_session_start(
        self,
        session_id: str,
        created_at: float,
        org_id: str = DEFAULT_ORG,
        site_id: str = "",
        node: str = "",
    ) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT INTO sessions (session_id, created_at, org_id, site_id, node)"
                " VALUES (?, ?, ?, ?, ?)",
                (session_id, created_at, org_id, site_id, node),
            )
        )

    async def record_session_end(
        self, session_id: str, ended_at: float, reason: str, agent: str | None
    ) -> None:
        await self._run(
            lambda db: db.execute(
                "UPDATE sessions SET ended_at = ?, end_reason = ?, agent = ?"
                " WHERE session_id = ? AND ended_at IS NULL",
                (ended_at, reason, agent, session_id),
            )
        )

    async def get_session(self, session_id: str) -> SessionRecord | None:
        row = await self._run(
            lambda db: db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id = ?",
                (session_id,),
            ).fetchone()
        )
        return SessionRecord(*row) if row else None

    async def record_session_state(self, session_id: str, state: str, agent: str | None) -> None:
        await self._run(
            lambda db: db.execute(
                "UPDATE sessions SET state = ?, agent = ?"
                " WHERE session_id = ? AND ended_at IS NULL",
                (state, agent, session_id),
            )
        )

    async def live_sessions(self, org_id: str) -> list[SessionRecord]:
        rows = await self._run(
            lambda db: db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions"
                " WHERE org_id = ? AND ended_at IS NULL ORDER BY created_at, session_id",
                (org_id,),
            ).fetchall()
        )
        return [SessionRecord(*row) for row in rows]

    async def backoff_state(self, keys: Sequence[str]) -> dict[str, tuple[int, float]]:
        if not keys:
            return {}
        marks = ", ".join("?" * len(keys))
        rows = await self._run(
            lambda db: db.execute(
                f"SELECT key, failures, locked_until FROM backoff WHERE key IN ({marks})",
                tuple(keys),
            ).fetchall()
        )
        return {str(key): (int(failures), float(until)) for key, failures, until in rows}

    async def backoff_failed(self, key: str, now: float) -> int:
        def work(db: sqlite3.Connection) -> int:
            row = db.execute(
                "INSERT INTO backoff (key, failures, locked_until, updated_at) VALUES (?, 1, 0, ?)"
                " ON CONFLICT (key) DO UPDATE SET failures = failures + 1,"
                " updated_at = excluded.updated_at RETURNING failures",
                (key, now),
            ).fetchone()
            return int(row[0])

        return await self._run(work)

    async def backoff_lock(self, key: str, locked_until: float) -> None:
        await self._run(
            lambda db: db.execute(
                "UPDATE backoff SET locked_until = MAX(locked_until, ?) WHERE key = ?",
                (locked_until, key),
            )
        )

    async def backoff_clear(self, key: str) -> None:
        await self._run(lambda db: db.execute("DELETE FROM backoff WHERE key = ?", (key,)))

    async def use_once(self, digest: str, expires_at: float) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            try:
                db.execute(
                    "INSERT INTO used_once (digest, expires_at) VALUES (?, ?)", (digest, expires_at)
                )
            except sqlite3.IntegrityError:
                return False
            return True

        return await self._run(work)

    async def purge_expired(self, now: float) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM join_codes WHERE expires_at <= ?", (now,))
            db.execute("DELETE FROM used_once WHERE expires_at <= ?", (now,))
            # Counts forgotten a day after the last failure, once no wait is running.
            db.execute(
                "DELETE FROM backoff WHERE updated_at < ? AND locked_until < ?",
                (now - 86400.0, now),
            )
            db.execute("DELETE FROM logins WHERE expires_at <= ?", (now,))
            db.execute("DELETE FROM oidc_pending WHERE expires_at <= ?", (now,))
            # Each organisation's retention: ended sessions' records go when it runs out.
            db.execute(
                "DELETE FROM sessions WHERE ended_at IS NOT NULL AND ended_at < ? - 86400.0 *"
                " (SELECT retention_days FROM orgs WHERE orgs.org_id = sessions.org_id)",
                (now,),
            )

        await self._run(work)

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
        def work(db: sqlite3.Connection) -> AuditRecord:
            # IMMEDIATE: another process (the CLI) cannot interleave between read and insert.
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
                digest = record_hash(seq, at, action, actor, org, subject, details, prev)
                db.execute(
                    "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        seq,
                        at,
                        action,
                        actor,
                        org,
                        subject,
                        json.dumps(details, sort_keys=True),
                        prev,
                        digest,
                    ),
                )
                record = AuditRecord(seq, at, action, actor, org, subject, details, prev, digest)
                sealed = anchor(record, _latest_anchor(db)) if anchor else None
                if sealed is not None:
                    db.execute(
                        f"INSERT INTO audit_anchors ({_ANCHOR_COLUMNS})"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            sealed.seq,
                            sealed.hash,
                            sealed.mac,
                            sealed.version,
                            sealed.every,
                            sealed.prev_seq,
                            sealed.prev_mac,
                        ),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return record

        return await self._run(work)

    async def audit_records(self, since: float = 0.0) -> list[AuditRecord]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT seq, at, action, actor, org, subject, details, prev_hash, hash"
                " FROM audit WHERE at >= ? ORDER BY seq",
                (since,),
            ).fetchall()
        )
        return [
            AuditRecord(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8])
            for r in rows
        ]

    async def audit_page(self, org: str, after_seq: int, limit: int) -> list[AuditRecord]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT seq, at, action, actor, org, subject, details, prev_hash, hash"
                " FROM audit WHERE org = ? AND seq > ? ORDER BY seq LIMIT ?",
                (org, after_seq, limit),
            ).fetchall()
        )
        return [
            AuditRecord(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7], r[8])
            for r in rows
        ]

    async def anchors(self) -> list[Anchor]:
        rows = await self._run(
            lambda db: db.execute(
                f"SELECT {_ANCHOR_COLUMNS} FROM audit_anchors ORDER BY seq"
            ).fetchall()
        )
        return [Anchor(*row) for row in rows]

    async def close(self) -> None:
        with self._lock:
            self._db.close()
