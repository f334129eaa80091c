"""The embedded default backend: one SQLite file, queries run off the event loop."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio.to_thread

from tandem.audit import GENESIS, Anchor, AuditRecord, record_hash
from tandem.exceptions import ConfigError, TandemError, UserExistsError
from tandem.storage.base import LoginRecord, SessionRecord, UserRecord

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
)


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
                    "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        user.username,
                        user.display_name,
                        user.role,
                        user.password_hash,
                        user.created_at,
                        user.totp_secret,
                        user.totp_last_step,
                        json.dumps(list(user.recovery_codes)),
                    ),
                )
            except sqlite3.IntegrityError:
                raise UserExistsError(f"a user named {user.username!r} already exists") from None

        await self._run(work)

    async def get_user(self, username: str) -> UserRecord | None:
        row = await self._run(
            lambda db: db.execute(
                "SELECT username, display_name, role, password_hash, created_at, totp_secret,"
                " totp_last_step, recovery_codes FROM users WHERE username = ?",
                (username,),
            ).fetchone()
        )
        if row is None:
            return None
        return UserRecord(
            username=row[0],
            display_name=row[1],
            role=row[2],
            password_hash=row[3],
            created_at=row[4],
            totp_secret=row[5],
            totp_last_step=row[6],
            recovery_codes=tuple(json.loads(row[7])),
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
                "INSERT INTO logins VALUES (?, ?, ?, ?)",
                (login.token_digest, login.username, login.expires_at, login.last_seen),
            )
        )

    async def get_login(self, token_digest: str) -> LoginRecord | None:
        row = await self._run(
            lambda db: db.execute(
                "SELECT token_digest, username, expires_at, last_seen FROM logins"
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

    async def put_join_code(self, code_digest: str, session_id: str, expires_at: float) -> None:
        def work(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    "INSERT INTO join_codes VALUES (?, ?, ?)", (code_digest, session_id, expires_at)
                )
            except sqlite3.IntegrityError:
                raise TandemError("join code collision") from None

        await self._run(work)

    async def take_join_code(self, code_digest: str, now: float) -> str | None:
        row = await self._run(
            lambda db: db.execute(
                "DELETE FROM join_codes WHERE code_digest = ? RETURNING session_id, expires_at",
                (code_digest,),
            ).fetchone()
        )
        if row is None or row[1] <= now:
            return None
        return str(row[0])

    async def delete_join_codes(self, session_id: str) -> None:
        await self._run(
            lambda db: db.execute("DELETE FROM join_codes WHERE session_id = ?", (session_id,))
        )

    async def record_session_start(self, session_id: str, created_at: float) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT INTO sessions (session_id, created_at) VALUES (?, ?)",
                (session_id, created_at),
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
                "SELECT session_id, created_at, ended_at, end_reason, agent"
                " FROM sessions WHERE session_id = ?",
                (session_id,),
            ).fetchone()
        )
        return SessionRecord(*row) if row else None

    async def purge_expired(self, now: float) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM join_codes WHERE expires_at <= ?", (now,))
            db.execute("DELETE FROM logins WHERE expires_at <= ?", (now,))

        await self._run(work)

    async def append_audit(
        self,
        at: float,
        action: str,
        actor: str,
        org: str,
        subject: str,
        details: dict[str, object],
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
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return AuditRecord(seq, at, action, actor, org, subject, details, prev, digest)

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

    async def add_anchor(self, anchor: Anchor) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO audit_anchors VALUES (?, ?, ?)",
                (anchor.seq, anchor.hash, anchor.mac),
            )
        )

    async def anchors(self) -> list[Anchor]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT seq, hash, mac FROM audit_anchors ORDER BY seq"
            ).fetchall()
        )
        return [Anchor(*row) for row in rows]

    async def close(self) -> None:
        with self._lock:
            self._db.close()
