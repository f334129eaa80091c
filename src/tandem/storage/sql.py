"""The one storage implementation, on SQLAlchemy Core: an embedded SQLite file (aiosqlite) or a
PostgreSQL shared by several servers (asyncpg; docs/scale-out.md).

Everything that must be atomic across processes is one statement or one transaction. Join codes
and pending sign-ins are taken with ``DELETE ... RETURNING``, second factors with a conditional
``UPDATE`` or ``DELETE``. Transactions on SQLite begin ``IMMEDIATE`` (the write lock first, so
a read-then-write cannot be interleaved by another process); single statements run without one.
The audit chain is extended without any lock: the next record's number is its primary key, so
of two servers appending at once one wins and the other reads the new head and tries again
(:meth:`SQLStorage.append_audit`). The record's position in its organisation's trail is read in
the same statement as the head, so it is taken (and given up) with the number.
"""

from __future__ import annotations

import asyncio
import calendar
import concurrent.futures
import contextlib
import dataclasses
import functools
import glob
import hashlib
import json
import logging
import math
import operator
import os
import queue
import re
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import compiler
from sqlalchemy.util.concurrency import await_, greenlet_spawn

from tandem.access import Grant
from tandem.audit import (
    GENESIS,
    Anchor,
    AnchorRule,
    AuditRecord,
    Evidence,
    RecordSeal,
    record_hash,
)
from tandem.config import Settings
from tandem.exceptions import (
    BacklogLineWritten,
    ConfigError,
    ConflictError,
    NotFoundError,
    StorageError,
    UserExistsError,
)
from tandem.names import REPLACEMENT, shown_name
from tandem.private_files import private_directory, private_file, private_files_beside
from tandem.storage import migrations
from tandem.storage.base import (
    CLAIM_DETAIL,
    VACUUM_NOTE,
    AuditCount,
    ExportRead,
    ExportView,
    HoldRecord,
    Inventory,
    LoginRecord,
    OrgRecord,
    PolicyRecord,
    PracticeRecord,
    RecordingRecord,
    SealedSecret,
    SessionRecord,
    SiteRecord,
    SubjectErasure,
    SuspendedSession,
    TakenCode,
    TrainingRecord,
    UserRecord,
    ViewChanged,
    canonical_forms,
    subject_key,
)
from tandem.storage.schema import (
    AUDIT_SUBJECT_NAMED,
    SITE_VERIFIED,
    audit,
    audit_anchors,
    audit_backlog_lines,
    audit_counts,
    backoff,
    installation_notes,
    join_codes,
    legal_holds,
    logins,
    metadata,
    oidc_pending,
    orgs,
    policy_acknowledgements,
    practice_sessions,
    processes,
    recording_frames,
    recordings,
    recovery_codes,
    sessions,
    site_teams,
    sites,
    subject_sessions,
    suspended_sessions,
    team_members,
    teams,
    training_completions,
    training_policies,
    training_settings,
    used_once,
    users,
)

if TYPE_CHECKING:
    # Imported where an engine is built (migrations, schema checks, copies): the package
    # imports SQLAlchemy's ORM, which a storage already at head never needs.
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("tandem.storage")
T = TypeVar("T")

DAY = 86400.0
_SQLITE_TAKEN = ("the audit log is append-only", "the audit backlog notes are append-only")
"""What SQLite's no-replace triggers (the baseline's, revision 0016's) raise for a key taken."""
AUDIT_APPEND_ATTEMPTS: int = next(
    f.default for f in dataclasses.fields(Settings) if f.name == "audit_append_attempts"
)  # type: ignore[assignment]
"""The default of :attr:`SQLStorage.audit_append_attempts` (the setting's)."""
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# asyncpg is imported only by the code that runs on PostgreSQL (a SQLite process never loads it).


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


def _scrub(message: str, dsn: str) -> str:
    """An error message with the DSN's password (if it shows up at all) blanked out."""
    userinfo = dsn.partition("://")[2].partition("/")[0].rpartition("@")[0]
    secrets = [userinfo.partition(":")[2]]
    secrets += re.findall(r"(?i)[?&]password=([^&]*)", dsn)
    for secret in [*secrets, *map(unquote, secrets)]:
        if secret:
            message = message.replace(secret, "***")
    return message


def _error_text(exc: BaseException) -> str:
    """The driver's own message (SQLAlchemy wraps it with the statement, which we never show)."""
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc)


def _read_only(data_dir: Path) -> str | None:
    """Why SQLite cannot write in ``data_dir`` when it is read-only (its own words are "unable
    to open database file" or "attempt to write a readonly database"), else None."""
    existing = next((p for p in (data_dir, *data_dir.parents) if p.exists()), data_dir)
    try:  # a data directory still to be made: where it would be made
        if os.statvfs(existing).f_flag & os.ST_RDONLY:
            where = "on a read-only file system"
        elif not os.access(existing, os.W_OK):
            where = "read-only for this account"
        else:
            return None
    except OSError:
        return None  # missing or unreadable: the error itself says more
    return (
        f"the data directory {data_dir} is {where}: Tandem writes its database and the files "
        "SQLite keeps beside it there; make it writable (or give --data-dir a writable one)"
    )


# Rows to records


def _json_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(json.loads(value) if isinstance(value, str | bytes) else value)


def _optional(coerce: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else coerce(value)


_COERCE: dict[str, Callable[[Any], Any]] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,  # SQLite stores flags as 0 or 1
    "str | None": _optional(str),
    "float | None": _optional(float),
}


_Coercions = tuple[tuple[str, Callable[[Any], Any] | None], ...]
_coercions: dict[type[Any], _Coercions] = {}


def _coercions_of(cls: type[Any]) -> _Coercions:
    found = _coercions.get(cls)
    if found is None:
        fields = dataclasses.fields(cls)
        found = _coercions[cls] = tuple((f.name, _COERCE.get(str(f.type))) for f in fields)
    return found


R = TypeVar("R")


def _record(cls: type[R], row: Any, /, **stored_otherwise: Any) -> R:
    """A record (a dataclass of tandem.storage.base) from a row with a column named for each of
    its fields, each value coerced to the field's type; the fields stored another way (JSON
    lists, comma-joined names, a column of another name) come in ``stored_otherwise``."""
    values = dict(stored_otherwise)
    for name, coerce in _coercions_of(cls):
        if name not in values:
            if coerce is None:
                raise TypeError(f"{cls.__name__}.{name} is not a column: pass its value")
            values[name] = coerce(row[name])
    return cls(**values)


def _teams(row: Any) -> tuple[str, ...]:
    return tuple(sorted(map(str, _json_list(row["teams"]))))


# Names are shown as the name rule has them (tandem.names) whatever the database holds: one
# stored before the rule, or written behind the server's back, would otherwise reach the
# customer's widget and every list as it is (an invisible U+200E making "Ann Smith" another's).


def _user(row: Any) -> UserRecord:
    codes = sorted(_json_list(row["codes"]), key=lambda pair: int(pair[0]))
    return _record(
        UserRecord,
        row,
        display_name=shown_name(str(row["display_name"]), str(row["username"])),
        recovery_codes=tuple(str(digest) for _, digest in codes),
        teams=_teams(row),
        oidc_identity=row["oidc_subject"],
    )


def _site(row: Any) -> SiteRecord:
    name = shown_name(str(row["name"]), str(row["site_id"]))
    return _record(SiteRecord, row, teams=_teams(row), name=name)


def _recording(row: Any) -> RecordingRecord:
    return _record(RecordingRecord, row)


def _session(row: Any) -> SessionRecord:
    agent = row["agent"]
    return _record(
        SessionRecord, row, agent=None if agent is None else shown_name(str(agent), REPLACEMENT)
    )


def _suspended(row: Any) -> SuspendedSession:
    agent = row["agent"]
    return _record(
        SuspendedSession,
        row,
        agent=None if agent is None else shown_name(str(agent), REPLACEMENT),
    )


def _org_name(row: Any) -> str:
    return shown_name(str(row[1]), str(row[0]))


def _owned(grant: Grant, org_id: str, what: str) -> None:
    """Refuse to write a record of another organisation than the grant's (as not found, like
    every other reach into another organisation)."""
    if org_id != grant.org_id:
        raise NotFoundError(f"no {what} in organisation {grant.org_id!r}")


def _fields_of(record: Any, table: sa.Table) -> dict[str, Any]:
    """The values of a record's fields that are columns of ``table`` (by name)."""
    return {
        column.name: getattr(record, column.name)
        for column in table.c
        if hasattr(record, column.name)
    }


def _anchor(row: Any) -> Anchor:
    # As stored, not coerced: a value of the wrong type (written behind Tandem's back) must
    # reach the verifier, which reports the anchor forged, rather than fail here.
    return Anchor(*row)


def _audit_record(row: Any) -> AuditRecord:
    seq, at, action, actor, org, subject, details, prev_hash, digest, mac, org_seq = row
    # The MAC and position as stored, like an anchor's: the verifier judges them.
    return AuditRecord(
        seq, at, action, actor, org, subject, json.loads(details), prev_hash, digest, mac, org_seq
    )


_AUDIT_COLUMNS = (
    audit.c.seq,
    audit.c.at,
    audit.c.action,
    audit.c.actor,
    audit.c.org,
    audit.c.subject,
    audit.c.details,
    audit.c.prev_hash,
    audit.c.hash,
    audit.c.mac,
    audit.c.org_seq,
)
_ANCHOR_COLUMNS = tuple(audit_anchors.c)
_RECORD_KEYS = tuple(column.key for column in _AUDIT_COLUMNS)
"""The columns an appended record's row gives, in :func:`_audit_record`'s order."""
_RECORDING_COLUMNS = tuple(recordings.c)


_NOT_YET_REMOVABLE = re.compile(
    r"tuples: \d+ removed, \d+ remain, (\d+) are dead but not yet removable"
)
"""What ``VACUUM (VERBOSE)`` says (PostgreSQL 13 and later, in English) of the deleted rows it
left for a transaction that sees them: when heard, the count, as the vacuum made it."""

_MAY_VACUUM = """
SELECT pg_has_role(c.relowner, 'USAGE') OR pg_has_role(d.datdba, 'USAGE'){maintain}
FROM pg_class AS c, pg_database AS d
WHERE c.oid = to_regclass(quote_ident($1)) AND d.datname = current_database()
"""
"""Whether the role may vacuum the table (PostgreSQL's own rule: a superuser, the table's or the
database's owner, or, from PostgreSQL 17, one granted MAINTAIN), in the connection's schema."""

_DEAD_LEFT = """
SELECT coalesce(pg_stat_get_dead_tuples(c.oid), 0)
    + coalesce(pg_stat_get_dead_tuples(nullif(c.reltoastrelid, 0)), 0)
FROM pg_class AS c WHERE c.oid = to_regclass(quote_ident($1))
"""
"""The table's (and its TOAST table's) dead rows as the statistics count them: right after a
vacuum, those it left because a transaction may still see them."""

_ACCOUNT_ROWS = (
    logins,
    recovery_codes,
    team_members,
    practice_sessions,
    training_completions,
    policy_acknowledgements,
)
"""The rows a user's deletion takes with it (ON DELETE CASCADE)."""

_DELETED_FROM = (
    join_codes,
    used_once,
    backoff,
    oidc_pending,
    sessions,
    subject_sessions,
    recordings,
    recording_frames,
    suspended_sessions,
    legal_holds,
    users,
    *_ACCOUNT_ROWS,
)
"""The tables an erasure, a purge, a session's end, a hold lifted or an account's deletion
deletes rows of (:meth:`SQLStorage.deleted_before`)."""


class _Violation(ConflictError):
    """A constraint refused a change (a key taken, a row referenced that is not there); the
    methods that expect one turn it into their own message."""

    def __init__(self, message: str, *, key_taken: bool) -> None:
        super().__init__(message)
        self.key_taken = key_taken


class _Statement:
    """A Core statement compiled for one dialect: the driver's SQL text, the names of its
    parameters in placeholder order, the values written into the statement itself
    (``.where(c == value)``) by name, and whether it returns rows."""

    __slots__ = ("defaults", "names", "returns_rows", "sql")

    def __init__(self, sql: str, names: tuple[str, ...], defaults: Any, returns_rows: bool) -> None:
        self.sql = sql
        self.names = names
        self.defaults = defaults
        self.returns_rows = returns_rows

    @classmethod
    def of(cls, compiled: sa.engine.interfaces.Compiled) -> _Statement:
        assert isinstance(compiled, sa.sql.compiler.SQLCompiler)
        dml = compiled.isinsert or compiled.isupdate or compiled.isdelete
        return cls(
            compiled.string,
            tuple(compiled.positiontup or ()),
            compiled.construct_params(_check=False),
            not dml or bool(compiled.effective_returning),
        )

    def args(self, params: Any) -> list[Any]:
        if not params:
            return [self.defaults[name] for name in self.names]
        defaults = self.defaults
        return [params[name] if name in params else defaults[name] for name in self.names]


class _Shape:
    """A statement's compiled form shared by every statement of the same shape (SQLAlchemy's
    cache key: the same SQL, whatever values it carries) on the same dialect, across storages
    and threads: the values of each statement are read from its own cache key."""

    __slots__ = ("compiled", "names", "returns_rows", "sql")

    def __init__(self, compiled: sa.sql.compiler.SQLCompiler) -> None:
        self.compiled = compiled
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup or ())
        dml = compiled.isinsert or compiled.isupdate or compiled.isdelete
        self.returns_rows = not dml or bool(compiled.effective_returning)


_SHAPES: dict[tuple[Any, ...], _Shape | None] = {}
"""Compiled statement shapes, by dialect, cache key and parameter names (None: a shape whose
SQL depends on its values, an ``IN`` list's length, compiled for each statement instead). What
SQLAlchemy's engine keeps per engine, kept here per process: every storage (a server's, a
command's, each test's) compiles a shape once."""
_SHAPES_LOCK = threading.Lock()
_MAX_SHAPES = 2000
"""Beyond this many shapes (the product has a few hundred) the oldest are forgotten."""


def _dialect_key(dialect: sa.Dialect) -> tuple[Any, ...]:
    """What a statement's compiled SQL depends on besides the statement: the dialect and driver,
    and what the dialect learnt of its server (PostgreSQL's version sets some of its features)."""
    return (
        type(dialect),
        dialect.server_version_info,
        dialect.paramstyle,
        dialect.label_length,
        dialect.max_identifier_length,
    )


def _compile(
    dialect: sa.Dialect, statement: sa.Executable, keys: tuple[str, ...] | None
) -> _Statement:
    """``statement`` compiled for ``dialect`` (``keys``: the names of the parameters passed
    with it), from the shape cache where it can be."""
    cache_key = statement._generate_cache_key()  # type: ignore[attr-defined]
    if cache_key is not None:
        key = (_dialect_key(dialect), cache_key.key, keys)
        try:
            shape = _SHAPES[key]
        except KeyError:
            compiled = statement.compile(  # type: ignore[attr-defined]
                dialect=dialect,
                cache_key=cache_key,
                column_keys=list(keys) if keys else None,
            )
            # Parameters rendered at execution (an IN list's values): SQL of each statement's own.
            shared = not (compiled.post_compile_params or compiled.literal_execute_params)
            shape = _Shape(compiled) if shared else None
            with _SHAPES_LOCK:
                if len(_SHAPES) >= _MAX_SHAPES:
                    del _SHAPES[next(iter(_SHAPES))]
                _SHAPES[key] = shape
        if shape is not None:
            defaults = shape.compiled.construct_params(
                extracted_parameters=cache_key.bindparams,
                _check=False,
                _collected_params=cache_key.params,
            )
            return _Statement(shape.sql, shape.names, defaults, shape.returns_rows)
    return _Statement.of(
        statement.compile(  # type: ignore[attr-defined]
            dialect=dialect,
            column_keys=list(keys) if keys else None,
            compile_kwargs={"render_postcompile": True},
        )
    )


class _Result:
    """Rows (``sqlite3.Row`` or ``asyncpg.Record``: by index or by column name) and the number
    of rows an INSERT, UPDATE or DELETE touched."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def first(self) -> Any | None:
        return self.rows[0] if self.rows else None

    def scalars(self) -> list[Any]:
        return [row[0] for row in self.rows]


class _Db:
    """What a storage call's work sees: one connection. :meth:`execute` runs one Core
    statement (committing itself unless inside :meth:`atomic`). The work is plain synchronous
    code, run in the SQLite worker thread or, for PostgreSQL, in a greenlet that switches to the
    event loop only to wait for the server."""

    def execute(self, statement: sa.Executable, params: Any = None) -> _Result:
        raise NotImplementedError

    def run(self, compiled: _Statement, args: Sequence[Any]) -> _Result:
        """One statement compiled already, with its arguments in placeholder order."""
        raise NotImplementedError

    def _begin(self) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """One transaction: committed if the block ends, rolled back if it raises. On SQLite it
        begins IMMEDIATE (the write lock first, so another process cannot interleave a read
        and a write)."""
        self._begin()
        try:
            yield
            # A COMMIT that fails (SQLite: busy, or abandoned by its caller) leaves the
            # transaction open on the connection: rolled back too, never taken up by the
            # next storage call's statements (and committed with them).
            self._commit()
        except BaseException:
            self._rollback()
            raise


class _SQLiteDb(_Db):
    def __init__(self, storage: SQLStorage, connection: sqlite3.Connection) -> None:
        self._storage = storage
        self._connection = connection

    def _begin(self) -> None:
        self._connection.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        call = self._storage._sqlite_call
        if call is not None and not call.commit():
            # Its caller gave up on it (a stop's deadline passed while the file was locked):
            # told it failed, it never lands later (rolled back by atomic()).
            raise sqlite3.OperationalError("abandoned by its caller before its commit")
        self._connection.execute("COMMIT")

    def _rollback(self) -> None:
        if self._connection.in_transaction:
            self._connection.execute("ROLLBACK")

    def execute(self, statement: sa.Executable, params: Any = None) -> _Result:
        compiled = self._storage._compiled(statement, params)
        if isinstance(params, list):
            cursor = self._connection.executemany(
                compiled.sql, [compiled.args(each) for each in params]
            )
            return _Result([], cursor.rowcount)
        return self.run(compiled, compiled.args(params))

    def run(self, compiled: _Statement, args: Sequence[Any]) -> _Result:
        cursor = self._connection.execute(compiled.sql, args)
        rows = cursor.fetchall() if compiled.returns_rows else []
        return _Result(rows, cursor.rowcount)


class _PostgresDb(_Db):
    def __init__(self, storage: SQLStorage, connection: Any) -> None:
        self._storage = storage
        self._connection = connection

    def _begin(self) -> None:
        await_(self._connection.execute(self._storage._postgres_begin))

    def _commit(self) -> None:
        await_(self._connection.execute("COMMIT"))

    def _rollback(self) -> None:
        # A connection that cannot roll back (a statement cancelled mid-way) is closed instead,
        # so no transaction outlives its work.
        import asyncpg  # type: ignore[import-untyped]

        try:
            await_(self._connection.execute("ROLLBACK"))
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
            self._connection.terminate()

    def execute(self, statement: sa.Executable, params: Any = None) -> _Result:
        compiled = self._storage._compiled(statement, params)
        if isinstance(params, list):
            await_(self._connection.executemany(compiled.sql, [compiled.args(p) for p in params]))
            return _Result([], len(params))
        return self.run(compiled, compiled.args(params))

    def run(self, compiled: _Statement, args: Sequence[Any]) -> _Result:
        if compiled.returns_rows:
            rows = await_(self._connection.fetch(compiled.sql, *args))
            return _Result(rows, len(rows))
        return _Result([], _status_count(await_(self._connection.execute(compiled.sql, *args))))


def _status_count(status: str) -> int:
    """Rows touched, from asyncpg's command status (``UPDATE 3``, ``INSERT 0 1``)."""
    count = status.rpartition(" ")[2]
    return int(count) if count.isdigit() else 0


@functools.cache
def _pooled_connection() -> type[Any]:
    """asyncpg's connection class, handed back to the pool without asyncpg's reset query
    (``pg_advisory_unlock_all``, ``CLOSE ALL``, ``UNLISTEN *``, ``RESET ALL``: a round trip on
    every release). This storage never leaves any of that behind: it takes only
    transaction-level advisory locks, opens no cursors, listens to nothing and sets nothing for
    the session (the search path is a connection parameter). An open transaction is still rolled
    back on release. Made on first use: asyncpg is imported only on PostgreSQL."""
    import asyncpg

    class _PooledConnection(asyncpg.Connection):  # type: ignore[misc]
        def get_reset_query(self) -> str:
            return ""

    return _PooledConnection


class _MigrationOverran(Exception):
    """Bringing the schema up to date took longer than its bound, and was abandoned."""


def _startup_error_text(exc: BaseException, dsn: str, timeout: float) -> str:
    """Why start-up could not use PostgreSQL, and what to check: a database that never answered
    (a stopped host, a proxy or network that stalls) is named as such, not left blank."""
    if isinstance(exc, TimeoutError):
        return (
            f"no answer within {timeout:g} s: check that PostgreSQL is running, reachable from "
            "here and not overloaded (database_timeout_seconds bounds each wait), then start again"
        )
    return _scrub(_error_text(exc), dsn)


def _connect_errors() -> tuple[type[BaseException], ...]:
    """What failing to reach or set up PostgreSQL raises."""
    import asyncpg

    return (
        OSError,
        TimeoutError,
        ValueError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        SQLAlchemyError,
    )


_LINTING = compiler.NO_LINTING ^ compiler.COLLECT_CARTESIAN_PRODUCTS
"""The compiler linting ``create_engine`` gives a dialect (``enable_from_linting``, its default)."""


@functools.cache
def _engineless_dialect(postgres: bool) -> sa.Dialect:
    """The dialect statements are compiled with, built without an engine (an engine's package
    imports SQLAlchemy's ORM, and its first connection initialises its dialect): on SQLite,
    pysqlite's on the standard ``sqlite3`` (the driver the storage runs statements on, whose
    SQLite version sets the dialect's features, as the engine's aiosqlite dialect reads it); on
    PostgreSQL, the engine's asyncpg dialect, uninitialised as the engine's is until it first
    connects (every start at head). tests/storage/test_statement_cache.py checks that on SQLite
    each statement compiles to the same SQL as with an engine's initialised dialect. One per
    process: dialects hold no connection state, and compiling reads them only."""
    if postgres:
        from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

        dbapi = PGDialect_asyncpg.import_dbapi()  # type: ignore[no-untyped-call]
        return PGDialect_asyncpg(dbapi=dbapi, compiler_linting=_LINTING)  # type: ignore[no-untyped-call]
    from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

    return SQLiteDialect_pysqlite(dbapi=sqlite3, compiler_linting=_LINTING)


def _json_agg(postgres: bool, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.func.json_agg(column) if postgres else sa.func.json_group_array(column)


def _user_select(postgres: bool) -> sa.Select[Any]:
    """A user's row with its teams and recovery codes (JSON arrays)."""
    members = (
        sa.select(_json_agg(postgres, team_members.c.team))
        .where(team_members.c.username == users.c.username)
        .scalar_subquery()
    )
    pair = (
        sa.func.json_build_array(recovery_codes.c.position, recovery_codes.c.digest)
        if postgres
        else sa.func.json_array(recovery_codes.c.position, recovery_codes.c.digest)
    )
    codes = (
        sa.select(_json_agg(postgres, pair))
        .where(recovery_codes.c.username == users.c.username)
        .scalar_subquery()
    )
    return sa.select(*users.c, members.label("teams"), codes.label("codes"))


class _KeptStatements:
    """The statements of the busiest paths, built once per process for each backend (Core
    statements are immutable: every storage shares them) and found by identity in each
    storage's own cache of compiled forms, without computing their cache key again."""

    def __init__(self, postgres: bool) -> None:
        self.user_by_name = _user_select(postgres).where(users.c.username == sa.bindparam("name"))
        self.login_by_digest = sa.select(*logins.c).where(
            logins.c.token_digest == sa.bindparam("digest")
        )
        self.live_session = sessions.update().where(
            sessions.c.session_id == sa.bindparam("sid"), sessions.c.ended_at.is_(None)
        )
        self.take_code_of_org = (
            join_codes.delete()
            .where(
                join_codes.c.code_digest == sa.bindparam("digest"),
                join_codes.c.org_id == sa.bindparam("org"),
            )
            .returning(join_codes.c.session_id, join_codes.c.expires_at)
        )
        self.put_code = join_codes.insert()
        self.start_session = sessions.insert()
        # The head of the chain: its last record, the organisation ``org``'s last position and
        # the last anchor, in one statement, so from one snapshot (no row while the trail is
        # empty; anchor columns NULL while it has no anchor). Read apart, another server's
        # record could come between the two reads and both give one position.
        last_position: sa.ColumnElement[Any] = (
            sa.select(sa.func.coalesce(sa.func.max(audit.c.org_seq), 0))
            .where(audit.c.org == sa.bindparam("org"))
            .correlate(None)
            .scalar_subquery()
        )
        if postgres:
            # The organisation's last position as the last entry of audit_org_position: with
            # max() PostgreSQL planned, while its statistics said the table was small (a new
            # schema, until the first ANALYZE), an aggregate over every entry of the
            # organisation, a read that grew with the trail (tests/storage/test_audit_plans.py).
            last_position = sa.func.coalesce(
                sa.select(audit.c.org_seq)
                .where(audit.c.org == sa.bindparam("org"))
                .order_by(audit.c.org_seq.desc())
                .limit(1)
                .correlate(None)
                .scalar_subquery(),
                0,
            )
            last_record = (
                sa.select(audit.c.seq, audit.c.hash)
                .order_by(audit.c.seq.desc())
                .limit(1)
                .subquery()
            )
            last_anchor = (
                sa.select(*_ANCHOR_COLUMNS).order_by(audit_anchors.c.seq.desc()).limit(1).subquery()
            )
            self.chain_head = sa.select(
                last_record.c.seq,
                last_record.c.hash,
                last_position.label("org_seq"),
                *(c.label(f"a_{c.name}") for c in last_anchor.c),
            ).select_from(last_record.outerjoin(last_anchor, sa.true()))
        else:
            # SQLite: each part by the largest key of an index, with no subquery to run and
            # join (half the time of the form above there; on PostgreSQL, this form took
            # longer to plan than to run, and the append was slower).
            last_seq = sa.select(sa.func.max(audit.c.seq)).correlate(None).scalar_subquery()
            last_anchor_seq = (
                sa.select(sa.func.max(audit_anchors.c.seq)).correlate(None).scalar_subquery()
            )
            self.chain_head = (
                sa.select(
                    audit.c.seq,
                    audit.c.hash,
                    last_position.label("org_seq"),
                    *(c.label(f"a_{c.name}") for c in _ANCHOR_COLUMNS),
                )
                .select_from(audit.outerjoin(audit_anchors, audit_anchors.c.seq == last_anchor_seq))
                .where(audit.c.seq == last_seq)
            )
        self.insert_record = audit.insert()
        self.insert_anchor = audit_anchors.insert()
        self.touch = (
            logins.update()
            .where(logins.c.token_digest == sa.bindparam("digest"))
            .values(last_seen=sa.bindparam("now"))
        )
        self.ids = frozenset(id(statement) for statement in vars(self).values())


@functools.cache
def _kept_statements(postgres: bool) -> _KeptStatements:
    return _KeptStatements(postgres)


BUSY_SECONDS = 10.0
"""How long a statement waits for another connection's write lock (an operator's shell, a
VACUUM) before it fails, unless told otherwise (the ``sqlite_busy_seconds`` setting)."""
DATABASE_TIMEOUT_SECONDS = 30.0
"""PostgreSQL: how long a statement, a new connection or the wait for a pooled one may take
before it fails, unless told otherwise (the ``database_timeout_seconds`` setting)."""
MIGRATION_TIMEOUT_SECONDS = 600.0
"""PostgreSQL: how long bringing the schema up to date may take as a whole, the wait for
another server's migration included, unless told otherwise (the
``database_migration_timeout_seconds`` setting)."""
_VACUUM_NOTE_CHARS = 500
VACUUM_TIMEOUT_SECONDS = 600.0
"""PostgreSQL: how long one ``VACUUM`` of a table :meth:`SQLStorage.vacuum_deleted` runs may
take before it is cancelled and left for the next turn, unless told otherwise (the
``database_vacuum_timeout_seconds`` setting)."""
RETENTION_CLOCK_SKEW_SECONDS: float = next(
    f.default for f in dataclasses.fields(Settings) if f.name == "max_retention_clock_skew_seconds"
)  # type: ignore[assignment]
"""The default of :attr:`SQLStorage.retention_clock_skew` (the setting's): for a storage opened
without settings (tests, ``tandem db`` copies)."""
_LOCKED_BUSY_MS = 250
"""The same while the lock is known to be held (a statement just waited the whole busy
timeout): each statement queued behind fails fast instead of waiting in turn."""


class SQLStorage:
    """:class:`~tandem.storage.base.Storage` on SQLite or PostgreSQL; build it with
    :meth:`open_sqlite` or :meth:`connect` (both bring the schema up to date).

    SQLAlchemy Core is the one description of the schema and of every statement; Alembic
    migrates. Statements are compiled for the database's dialect once per shape and process
    (:data:`_SHAPES`; the busiest ones are also looked up by identity) and run straight on the
    driver: on SQLite a plain ``sqlite3`` connection in one worker thread (each storage call is
    one trip there), on PostgreSQL an asyncpg pool with its prepared-statement cache. The
    SQLAlchemy engine itself serves only migrations, the schema checks and :meth:`copy_to`: it is
    built (and ``sqlalchemy.ext.asyncio``, which imports SQLAlchemy's ORM, imported) only when one
    of those needs it, never by a storage opened on a database already at head.
    """

    def __init__(self, postgres: bool, engine: Callable[[], AsyncEngine]) -> None:
        self._make_engine = engine
        self._built_engine: AsyncEngine | None = None
        self._postgres = postgres
        self.dialect = "postgresql" if postgres else "sqlite"
        """``sqlite`` or ``postgresql``."""
        self._sa_dialect = _engineless_dialect(postgres)
        self._cache: dict[tuple[int, tuple[str, ...] | None], _Statement] = {}
        """The kept statements (:class:`_KeptStatements`) compiled for this storage's dialect."""
        self._pool: Any = None  # PostgreSQL: asyncpg.Pool
        self._timeout = DATABASE_TIMEOUT_SECONDS
        """PostgreSQL: how long a statement, a new connection or the wait for a pooled one may
        take (a database that stopped answering without closing anything fails, not hangs)."""
        self._releasing: set[asyncio.Task[None]] = set()
        """PostgreSQL: connections being handed back to the pool (:meth:`_pooled`)."""
        self._thread: StorageThread | None = None  # SQLite
        self._sqlite: sqlite3.Connection | None = None
        self._sqlite_call: _SQLiteCall | None = None
        """The storage call the worker thread runs (set and read there only)."""
        self._sqlite_locked = False
        """Set (in the worker thread) when a statement waited the whole busy timeout for another
        connection's lock; until a write succeeds, statements wait only :data:`_LOCKED_BUSY_MS`, so
        a request queued behind the background tasks' statements still gets its 503 at once."""
        self._busy_ms = round(BUSY_SECONDS * 1000)
        """SQLite: the busy timeout (ms) statements wait for another connection's lock."""
        self.vacuum_timeout = VACUUM_TIMEOUT_SECONDS
        """PostgreSQL: seconds one ``VACUUM`` of :meth:`vacuum_deleted` may take."""
        self.audit_append_attempts = AUDIT_APPEND_ATTEMPTS
        """Attempts at appending one audit record while other servers take the next numbers
        first (each failed attempt means another server's record went in): the
        ``audit_append_attempts`` setting."""
        self.retention_clock_skew = RETENTION_CLOCK_SKEW_SECONDS
        """How far ahead of the reader's clock the purges' clock is believed
        (:meth:`~tandem.storage.base.Storage.read_recording`; the
        ``max_retention_clock_skew_seconds`` setting)."""
        self._vacuum_due: set[str] = set()
        self._vacuum_seen: set[str] = set()
        self._vacuum_noted = True
        self._vacuum_problem: str | None = None
        """PostgreSQL: :data:`VACUUM_NOTE` may be in the database (an earlier process's, at
        first): the next round that leaves nothing removes it."""
        """PostgreSQL: the tables whose last vacuum left deleted rows an older transaction still
        sees (logged once until a vacuum removes them)."""
        """PostgreSQL: the tables an erasure, a purge or a session's end deleted rows of since
        :meth:`vacuum_deleted` last vacuumed them."""
        kept = _kept_statements(self._postgres)
        self._kept = kept.ids
        self._user_by_name = kept.user_by_name
        self._login_by_digest = kept.login_by_digest
        self._live_session = kept.live_session
        self._take_code_of_org = kept.take_code_of_org
        self._put_code = kept.put_code
        self._start_session = kept.start_session
        self._chain_head = kept.chain_head
        self._insert_record = kept.insert_record
        self._insert_anchor = kept.insert_anchor
        self._touch = kept.touch

    @property
    def _postgres_begin(self) -> str:
        """PostgreSQL: how a transaction begins (one round trip): PostgreSQL ends it, and the
        session, once it has waited for this client twice as long as one statement may take
        (the storage's timeout). Tandem runs a transaction's statements back to back, so a
        transaction idle that long belongs to a server that stopped mid-way (a paused container
        or VM, a stopped process, a network partition PostgreSQL would notice only after TCP
        keep-alive's two hours), which had given it up: it held what it locked (a recording's
        gate and row: every erasure of it failed after its own timeout, and playbacks asked
        meanwhile queued behind) for as long. Twice: a busy event loop late to send the next
        statement is not taken for a stopped server. ``SET LOCAL``, not a connection
        parameter: nothing outlives the transaction, and a pooler passes it on."""
        idle = min(2**31 - 1, max(1, math.ceil(2 * self._timeout * 1000)))
        return f"BEGIN; SET LOCAL idle_in_transaction_session_timeout = {idle}"

    @property
    def _engine(self) -> AsyncEngine:
        """The SQLAlchemy engine (migrations, schema checks, copies), built on first use."""
        if self._built_engine is None:
            self._built_engine = self._make_engine()
        return self._built_engine

    def _compiled(self, statement: sa.Executable, params: Any) -> _Statement:
        first = params[0] if isinstance(params, list) else params
        keys = tuple(sorted(first)) if first else None
        if id(statement) not in self._kept:
            return _compile(self._sa_dialect, statement, keys)
        key = (id(statement), keys)
        compiled = self._cache.get(key)
        if compiled is None:
            compiled = self._cache[key] = _compile(self._sa_dialect, statement, keys)
        return compiled

    # Opening

    @classmethod
    async def open_sqlite(
        cls, path: Path, *, backup: bool = True, busy_seconds: float = BUSY_SECONDS
    ) -> SQLStorage:
        """Open (creating it if needed) the SQLite file at ``path`` and bring its schema up to
        date; with ``backup``, an existing file that needs upgrading is copied first (next to
        it, ``<name>.<time>.bak``). A statement waits up to ``busy_seconds`` for another
        connection's write lock. Raises :class:`ConfigError` if it cannot."""
        try:
            private_directory(path.parent)  # the data directory: 0700
            private_file(path)  # the database: 0600 (and its WAL files, below)
            private_files_beside(path)
            if backup:
                await asyncio.to_thread(_backup_before_upgrade, path)
        except (OSError, sqlite3.Error) as exc:
            why = _read_only(path.parent) or str(exc)
            raise ConfigError(f"cannot open the database at {path}: {why}") from None
        busy_ms = max(1, round(busy_seconds * 1000))

        def engine() -> AsyncEngine:
            # Migrations, schema checks and copies only: a connection each time.
            from sqlalchemy.ext.asyncio import create_async_engine

            made = create_async_engine(f"sqlite+aiosqlite:///{path}", poolclass=sa.NullPool)
            _sqlite_hooks(made, busy_ms)
            return made

        storage = cls(False, engine)
        storage._busy_ms = busy_ms
        try:
            storage._thread = StorageThread("tandem-sqlite")
            loop = asyncio.get_running_loop()
            storage._sqlite = await loop.run_in_executor(
                storage._thread, _sqlite_connect, path, busy_ms
            )
            # At head (every open but the first after an upgrade): asked on the storage's own
            # connection, and no engine is built.
            if not await loop.run_in_executor(storage._thread, _sqlite_at_head, storage._sqlite):
                await storage._migrate()
        except (SQLAlchemyError, sqlite3.Error) as exc:
            await storage.close()
            why = _read_only(path.parent) or _error_text(exc)
            raise ConfigError(f"cannot open the database at {path}: {why}") from None
        except BaseException:
            await storage.close()
            raise
        private_files_beside(path)
        return storage

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        schema: str | None = None,
        max_connections: int = 10,
        timeout: float = DATABASE_TIMEOUT_SECONDS,
        migration_timeout: float = MIGRATION_TIMEOUT_SECONDS,
    ) -> SQLStorage:
        """Connect to PostgreSQL at ``dsn`` (asyncpg's syntax) and bring the schema up to date.

        With ``schema``, Tandem's tables live in that schema (created if missing) instead of the
        first one on the server's search path. Each statement, new connection and wait for a
        pooled connection fails with :class:`StorageError` after ``timeout`` seconds (a database
        that stopped answering without closing its connections); bringing the schema up to date
        may take ``migration_timeout`` seconds as a whole (the wait for another server's
        migration included), then it is abandoned and rolled back. Raises :class:`ConfigError`
        (naming the DSN, never its password, and what to check) when the database cannot be
        reached or set up in time.
        """
        if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
            raise ConfigError(f"not a plain schema name: {schema!r}")
        where = redact_dsn(dsn)
        settings = {"search_path": schema} if schema else None

        import asyncpg

        opened: list[Any] = []  # the engine's connections: terminated if a migration overruns

        async def connection() -> Any:
            made = await asyncpg.connect(
                dsn,
                timeout=min(10.0, timeout),
                command_timeout=max(timeout, migration_timeout),
                server_settings=settings,
            )
            opened.append(made)
            return made

        def engine() -> AsyncEngine:
            # Migrations, schema checks and copies only: a connection each time.
            from sqlalchemy.ext.asyncio import create_async_engine

            return create_async_engine(
                "postgresql+asyncpg://", async_creator=connection, poolclass=sa.NullPool
            )

        storage = cls(True, engine)
        storage._timeout = timeout
        connect_errors = _connect_errors()
        try:
            storage._pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=max_connections,
                timeout=min(10.0, timeout),
                command_timeout=timeout,
                server_settings=settings,
                connection_class=_pooled_connection(),
            )
        except connect_errors as exc:
            await storage.close()
            raise ConfigError(
                f"cannot connect to the database at {where}: "
                f"{_startup_error_text(exc, dsn, min(10.0, timeout))}"
            ) from None
        except BaseException:
            await storage.close()
            raise
        try:
            if not await storage._postgres_at_head():
                await storage._bounded_migrate(schema, migration_timeout, opened)
        except _MigrationOverran:
            await storage.close()
            raise ConfigError(
                f"cannot set up the database at {where}: its schema was not brought up to date "
                f"within {migration_timeout:g} s (database_migration_timeout_seconds), so the "
                "migration was abandoned and rolled back: check that PostgreSQL answers and that "
                "no other Tandem server is stuck migrating it (pg_stat_activity), then start again"
            ) from None
        except connect_errors as exc:
            await storage.close()
            raise ConfigError(
                f"cannot set up the database at {where}: {_startup_error_text(exc, dsn, timeout)}"
            ) from None
        except BaseException:  # ConfigError (a newer schema), cancellation
            await storage.close()
            raise
        return storage

    @contextlib.asynccontextmanager
    async def _pooled(self, pool: Any) -> AsyncIterator[Any]:
        """A connection of ``pool`` (waited for up to the storage's timeout), handed back when
        the block ends, in a task of this storage whose outcome is always read. asyncpg's own
        hand-back runs shielded in a task of its own: a caller cancelled meanwhile (a server
        stopping, a bounded wait) left it running, and after a statement timed out on a
        database that stopped answering it waits for the cancel request, fails, and nothing
        read its error: asyncio reported "Task exception was never retrieved" whenever the
        garbage collector found it, with a traceback formatted inside whatever code ran then
        (on CPython 3.11, inside another ``ast.parse``: a SystemError there)."""
        connection = await pool.acquire(timeout=self._timeout)
        try:
            yield connection
        finally:
            releasing = asyncio.ensure_future(pool.release(connection))
            self._releasing.add(releasing)
            releasing.add_done_callback(self._released)
            await asyncio.shield(releasing)

    def _released(self, releasing: asyncio.Task[None]) -> None:
        self._releasing.discard(releasing)
        if not releasing.cancelled() and releasing.exception() is not None:
            # asyncpg closed the connection instead (a new one is made when needed); the
            # caller, if it was still waiting, was told by the error itself.
            log.debug(
                "a pooled connection was closed, not reused: %s",
                type(releasing.exception()).__name__,
            )

    async def _postgres_at_head(self) -> bool:
        """Whether the schema is already at :data:`migrations.HEAD`, asked on a pool connection
        as :func:`migrations.at_head` asks on the engine's: at every start but the first after an
        upgrade, nothing is migrated and the engine needs no connection (a server process of its
        own on the database's side, and SQLAlchemy's set-up of its dialect) at all."""
        assert self._pool is not None
        async with self._pooled(self._pool) as db:
            found = await db.fetchval(
                "SELECT to_regclass(quote_ident(current_schema()) || '.alembic_version')"
                " IS NOT NULL"
            )
            if not found:  # no schema yet, or no Alembic in it: _migrate decides
                return False
            # The first schema on the search path that exists holds it: this is that table.
            rows = await db.fetch("SELECT version_num FROM alembic_version")
        return [tuple(row) for row in rows] == [(migrations.HEAD,)]

    async def _bounded_migrate(self, schema: str | None, timeout: float, opened: list[Any]) -> None:
        """:meth:`_migrate` within ``timeout`` seconds; past them the engine's connections are
        terminated (no goodbye: a frozen database would not answer a rollback either), which
        fails the migration at once, and :class:`_MigrationOverran` is raised. PostgreSQL rolls
        the migration's transaction back, and releases its advisory lock, when the connection
        ends: the schema stays at the revision it had."""
        task = asyncio.ensure_future(self._migrate(schema))
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
        except BaseException:  # cancelled: the migration with it
            task.cancel()
            for made in opened:
                made.terminate()
            await asyncio.wait({task}, timeout=10.0)
            raise
        if done:
            task.result()
            return
        for made in opened:
            made.terminate()
        await asyncio.wait({task}, timeout=10.0)
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=10.0)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: the overrun is the error
        raise _MigrationOverran

    async def _migrate(self, schema: str | None = None) -> None:
        async with self._engine.begin() as db:
            if schema:
                await db.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            await db.run_sync(migrations.upgrade)

    async def revision(self) -> str | None:
        """The schema's Alembic revision."""
        engine = self._engine
        if not self._postgres:
            engine = engine.execution_options(tandem_plain=True)
        async with engine.connect() as db:
            return await db.run_sync(migrations.current_revision)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout=10.0)
            except TimeoutError:
                pool.terminate()
        if self._thread is not None:
            thread, self._thread = self._thread, None
            connection, self._sqlite = self._sqlite, None
            # The connection's close and the thread's end both handed over before the wait
            # (after the calls handed over before them): a close given up on (a stop past its
            # deadline, behind a call waiting for a locked file) still closes the connection
            # and ends the thread once that call is over.
            closing = thread.submit(connection.close) if connection is not None else None
            thread.shutdown(wait=False)
            if closing is not None:
                await asyncio.shield(asyncio.wrap_future(closing))
        if self._built_engine is not None:
            await self._built_engine.dispose()

    # Running statements

    async def _on_sqlite(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in the SQLite worker thread (one trip for the whole storage call)."""
        thread, connection = self._thread, self._sqlite
        if thread is None or connection is None:
            raise StorageError("the database failed: the storage is closed")
        call = _SQLiteCall()
        try:
            return await thread.run(call, self._in_worker, work, connection, call)
        except asyncio.CancelledError:
            # Not waited for (a stop past its deadline cut the hand-over this wrote, and kept
            # its audit record in the backlog): a transaction still waiting for a locked file
            # must not commit once the lock goes, before the process exits.
            call.abandon()
            raise
        except sqlite3.IntegrityError as exc:
            # The audit tables' no-replace triggers refuse a taken number before the key does.
            taken = str(exc).startswith("UNIQUE constraint failed") or str(exc) in _SQLITE_TAKEN
            raise _Violation(f"the database refused the change: {exc}", key_taken=taken) from None
        except sqlite3.Error as exc:
            raise StorageError(f"the database failed: {exc}") from None

    def _in_worker(
        self,
        work: Callable[[sqlite3.Connection], T],
        connection: sqlite3.Connection,
        call: _SQLiteCall,
    ) -> T:
        """In the SQLite worker thread: ``work``, with the short busy timeout while another
        connection is known to hold the lock (and the long one back once a statement passes).
        Its transaction commits only if ``call`` was not abandoned first."""
        changes = connection.total_changes
        self._sqlite_call = call
        try:
            result = work(connection)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY and not self._sqlite_locked:
                self._sqlite_locked = True
                connection.execute(f"PRAGMA busy_timeout={_LOCKED_BUSY_MS}")
            raise
        finally:
            self._sqlite_call = None
        # Reads pass while another connection holds the write lock (WAL): only a write that
        # changed rows shows the lock is free again.
        if self._sqlite_locked and connection.total_changes != changes:
            self._sqlite_locked = False
            connection.execute(f"PRAGMA busy_timeout={self._busy_ms}")
        return result

    async def _empty_wal(self) -> None:
        """SQLite: after an erasure or a purge, copy the write-ahead log into the database and
        empty it. ``secure_delete`` overwrites an erased row in the database's pages, but the
        pages that held it stay in the ``-wal`` file beside it until the log is written over,
        which may be long after (a customer's id, a recording's frames: in backups of the data
        directory too). Best effort: a reader in another process that holds the log back leaves
        it to the next purge (``purge_interval_seconds``)."""
        if self._postgres:
            return

        def empty(connection: sqlite3.Connection) -> Any:
            # A short wait only: this thread serves every storage call of the server meanwhile.
            connection.execute(f"PRAGMA busy_timeout={_LOCKED_BUSY_MS}")
            try:
                return connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                busy_ms = _LOCKED_BUSY_MS if self._sqlite_locked else self._busy_ms
                connection.execute(f"PRAGMA busy_timeout={busy_ms}")

        try:  # never fails what was erased (committed already, and still to be audited)
            busy = await self._on_sqlite(empty)
        except StorageError as exc:
            log.warning("the write-ahead log was not emptied: %s", exc)
            return
        if busy and busy[0]:
            log.warning("the write-ahead log was not emptied: another connection holds it")

    def _deleted_from(self, *tables: sa.Table) -> None:
        """PostgreSQL: rows of ``tables`` were deleted; :meth:`vacuum_deleted` vacuums them."""
        if self._postgres:
            self._vacuum_due.update(table.name for table in tables)

    def deleted_before(self) -> None:
        """PostgreSQL: every table an erasure, a purge or a session's end deletes rows of is due
        for :meth:`vacuum_deleted`: which were deleted from is known to the process that deleted
        them only, and one stopped or killed before its vacuum ran (a crash, a stop while the
        database refused the vacuum) left the erased rows whole, as dead tuples, until autovacuum.
        The server calls it at start; a vacuum of a table with nothing dead skips the pages the
        visibility map says are clean."""
        self._deleted_from(*_DELETED_FROM)

    @property
    def vacuum_due(self) -> tuple[str, ...]:
        """PostgreSQL: the tables :meth:`vacuum_deleted` will vacuum at its next call."""
        return tuple(sorted(self._vacuum_due))

    async def vacuum_deleted(self) -> tuple[str, ...]:
        """PostgreSQL: ``VACUUM`` each table rows were erased, purged or cleared from since the
        last call (:attr:`vacuum_due`), one at a time, each within :attr:`vacuum_timeout`
        seconds, and return the tables vacuumed. A deleted row's bytes stay in its table's
        pages until a vacuum removes its dead tuple (autovacuum's own time: it may be hours on a
        quiet table); a vacuum compacts each page and gives back empty pages at the table's end,
        which removes them in most cases, but not all (docs/compliance.md). Never on the socket
        path: the server calls it in a supervised task of its own (tandem.hub). A plain VACUUM
        blocks no reader or writer (it takes SHARE UPDATE EXCLUSIVE; giving pages back takes an
        exclusive lock only if it is free at once, and yields it to any waiter). Raises
        :class:`StorageError` if one fails or overruns; it and the tables after it stay due for
        the next call. Nothing to do on SQLite (``secure_delete``, :meth:`_empty_wal`)."""
        if not self._postgres or not self._vacuum_due:
            return ()
        try:
            done = await self._vacuum_round()
        except StorageError as exc:
            await self._note_vacuum(str(exc))
            raise
        if self._vacuum_seen:
            await self._note_vacuum(
                "deleted rows of "
                + ", ".join(sorted(self._vacuum_seen))
                + " are still seen by an older transaction, so no vacuum can remove them"
            )
        elif self._vacuum_noted:
            with contextlib.suppress(StorageError):  # forgotten at the next round
                await self.forget_installation_note(VACUUM_NOTE)
                self._vacuum_noted = False
                self._vacuum_problem = None
        return done

    async def _note_vacuum(self, problem: str) -> None:
        """Leave ``problem`` in the database (:data:`VACUUM_NOTE`) for the compliance check of
        every server on it, in place of an earlier one (written again only when it changes: a
        transaction left open for days is not a write a round), until a round that leaves
        nothing."""
        if problem == self._vacuum_problem:
            return
        self._vacuum_noted = True
        with contextlib.suppress(StorageError):  # the database away: the log says it
            await self.forget_installation_note(VACUUM_NOTE)
            await self.note_installation(VACUUM_NOTE, problem[:_VACUUM_NOTE_CHARS], time.time())
            self._vacuum_problem = problem

    async def _vacuum_round(self) -> tuple[str, ...]:
        done: list[str] = []
        for name in sorted(self._vacuum_due):
            # Taken off first: a deletion while it runs (after its snapshot) makes it due again.
            self._vacuum_due.discard(name)
            try:
                seen = await self._on_postgres(functools.partial(self._vacuum, name=name))
            except BaseException:
                self._vacuum_due.add(name)
                raise
            if seen:
                # Deleted rows a transaction begun before their deletion still sees (a backup
                # under way, a session idle in a transaction): no vacuum removes them until it
                # ends; vacuumed again at the next call, not taken for done. Logged once until
                # a vacuum removes them: a transaction left open for days, not a line a round.
                self._vacuum_due.add(name)
                if name not in self._vacuum_seen:
                    self._vacuum_seen.add(name)
                    log.warning(
                        "VACUUM of %s left %d deleted rows that an older transaction still "
                        "sees: vacuumed again at each round until they are gone",
                        name,
                        seen,
                    )
            elif name in self._vacuum_seen:
                self._vacuum_seen.discard(name)
                log.info("VACUUM of %s removed the deleted rows it had left", name)
            done.append(name)
        return tuple(done)

    async def _vacuum(self, pool: Any, *, name: str) -> int:
        """``VACUUM`` the table ``name``; how many of its deleted rows (and its TOAST table's)
        it could not remove, as another transaction may still see them."""
        warnings: list[str] = []

        def heard(_connection: Any, message: Any) -> None:
            warnings.append(str(getattr(message, "message", message)))

        async with self._pooled(pool) as db:
            # Asked first, not read from the warning alone: a role or database set to report in
            # another language, or with client_min_messages above WARNING, vacuumed nothing
            # and said so in words that were not read (or not sent at all).
            maintain = db.get_server_version().major >= 17
            query = _MAY_VACUUM.format(
                maintain=" OR has_table_privilege(c.oid, 'MAINTAIN')" if maintain else ""
            )
            allowed = await db.fetchval(query, name)
            if not allowed:
                raise StorageError(
                    f"the database failed: VACUUM of {name} was skipped (the role may not "
                    "vacuum it): the role Tandem connects as must own its tables (or be the "
                    "database's owner)"
                )
            # Outside any transaction (VACUUM refuses to run in one); on timeout asyncpg
            # cancels it on the server, which rolls back nothing but the vacuum itself.
            if db.get_server_version().major >= 15:
                # This connection's own deletions not yet in the statistics (a backend adds
                # them at most once a second, or ten seconds later when idle) would be added
                # after the vacuum set its count, as rows it left: added now, before it.
                await db.execute("SELECT pg_stat_force_next_flush()")
            db.add_log_listener(heard)
            try:
                await db.execute(
                    f'VACUUM (VERBOSE, TRUNCATE) "{name}"', timeout=self.vacuum_timeout
                )
            except TimeoutError:
                raise StorageError(
                    f"the database failed: VACUUM of {name} did not finish within "
                    f"{self.vacuum_timeout:g} s (database_vacuum_timeout_seconds)"
                ) from None
            finally:
                db.remove_log_listener(heard)
            # The vacuum sets the table's count of dead rows to those it could not remove (in
            # numbers, whatever the server's language); zero if track_counts is off, when the
            # English report below is all there is.
            counted = await db.fetchval(_DEAD_LEFT, name)
        # A role that does not own the table is only warned, and nothing is vacuumed: the
        # erased rows would stay, silently, until autovacuum.
        skipped = [text for text in warnings if text.startswith("skipping")]
        if skipped:
            raise StorageError(
                f"the database failed: VACUUM of {name} was skipped ({skipped[0]}): the role "
                "Tandem connects as must own its tables (or be the database's owner)"
            )
        # VERBOSE's report, per relation (the table's, its TOAST table's): "tuples: R removed,
        # N remain, K are dead but not yet removable" (PostgreSQL 13 and later, in English).
        # Heard, it is the count: the statistics can be behind it, another connection's
        # deletions, already removed, added to them after the vacuum set them (measured: a
        # vacuum that removed every row, then 3 "dead" in the statistics), which kept a table
        # due and a note saying an older transaction held rows it did not. Not heard (another
        # language, PostgreSQL 12), the statistics, in numbers, are all there is.
        said = [int(found) for text in warnings for found in _NOT_YET_REMOVABLE.findall(text)]
        return sum(said) if said else int(counted or 0)

    async def _on_postgres(self, call: Callable[[Any], Any]) -> Any:
        import asyncpg

        try:
            return await call(self._pool)
        except asyncpg.IntegrityConstraintViolationError as exc:
            taken = isinstance(exc, asyncpg.UniqueViolationError)
            raise _Violation(f"the database refused the change: {exc}", key_taken=taken) from None
        except TimeoutError:  # asyncpg's command_timeout, or no pooled connection in time
            # (before OSError: TimeoutError is one, and its text is empty)
            raise StorageError(
                f"the database failed: no answer within {self._timeout:g} s"
            ) from None
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise StorageError(f"the database failed: {exc}") from None

    async def _execute(self, statement: sa.Executable, params: Any) -> _Result:
        """One statement, outside a transaction (it commits itself)."""
        if not self._postgres:
            return await self._on_sqlite(
                lambda connection: _SQLiteDb(self, connection).execute(statement, params)
            )
        compiled = self._compiled(statement, params)
        args = compiled.args(params)
        returns_rows = compiled.returns_rows

        async def run(pool: Any) -> Any:
            async with self._pooled(pool) as db:
                if returns_rows:
                    return await db.fetch(compiled.sql, *args)
                return await db.execute(compiled.sql, *args)

        if returns_rows:
            rows = await self._on_postgres(run)
            return _Result(rows, len(rows))
        return _Result([], _status_count(await self._on_postgres(run)))

    async def _rows(self, statement: sa.Executable, params: Any = None) -> list[Any]:
        return (await self._execute(statement, params)).rows

    async def _row(self, statement: sa.Executable, params: Any = None) -> Any | None:
        return (await self._execute(statement, params)).first()

    async def _count(self, statement: sa.Executable, params: Any = None) -> int:
        """Rows an INSERT, UPDATE or DELETE touched."""
        return (await self._execute(statement, params)).rowcount

    async def _session(self, work: Callable[[_Db], T]) -> T:
        """Run ``work`` on one connection: one trip to the SQLite thread, or one pooled
        PostgreSQL connection. Its statements commit themselves, except inside ``db.atomic()``."""
        if not self._postgres:
            return await self._on_sqlite(lambda connection: work(_SQLiteDb(self, connection)))

        async def in_pool(pool: Any) -> T:
            async with self._pooled(pool) as connection:
                result: T = await greenlet_spawn(work, _PostgresDb(self, connection))
                return result

        result: T = await self._on_postgres(in_pool)
        return result

    async def _transaction(self, work: Callable[[_Db], T]) -> T:
        """Run ``work`` in one transaction (see :meth:`_Db.atomic`); commit unless it raises."""

        def atomically(db: _Db) -> T:
            with db.atomic():
                return work(db)

        return await self._session(atomically)

    def _bytewise(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """Text ordered byte-wise, as SQLite does, whatever the PostgreSQL locale."""
        return column.collate("C") if self._postgres else column

    def _json_agg(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return _json_agg(self._postgres, column)

    # Users

    def _user_select(self) -> sa.Select[Any]:
        return _user_select(self._postgres)

    async def add_user(self, grant: Grant, user: UserRecord) -> None:
        _owned(grant, user.org_id, f"user {user.username!r}")

        def work(db: _Db) -> None:
            db.execute(
                users.insert().values(**_fields_of(user, users), oidc_subject=user.oidc_identity)
            )
            self._write_codes(db, user.username, user.recovery_codes)

        try:
            await self._transaction(work)
        except _Violation:
            raise UserExistsError(f"a user named {user.username!r} already exists") from None

    @staticmethod
    def _write_codes(db: _Db, username: str, codes: tuple[str, ...]) -> None:
        db.execute(recovery_codes.delete().where(recovery_codes.c.username == username))
        unique = list(dict.fromkeys(codes))
        if unique:
            db.execute(
                recovery_codes.insert(),
                [
                    {"username": username, "digest": digest, "position": position}
                    for position, digest in enumerate(unique)
                ],
            )

    async def get_user(self, username: str) -> UserRecord | None:
        row = await self._row(self._user_by_name, {"name": username})
        return _user(row) if row else None

    async def list_users(self, grant: Grant) -> list[UserRecord]:
        org_id = grant.org_id
        rows = await self._rows(
            self._user_select()
            .where(users.c.org_id == org_id)
            .order_by(self._bytewise(users.c.username))
        )
        return [_user(row) for row in rows]

    async def count_users(self) -> int:
        row = await self._row(sa.select(sa.func.count()).select_from(users))
        return int(row[0]) if row else 0

    async def update_user(
        self, grant: Grant, username: str, *, role: str, display_name: str
    ) -> bool:
        changed = await self._count(
            users.update()
            .where(users.c.username == username, users.c.org_id == grant.org_id)
            .values(role=role, display_name=display_name)
        )
        return changed > 0

    async def set_user_teams(self, grant: Grant, username: str, teams_: tuple[str, ...]) -> None:
        org_id = grant.org_id

        def work(db: _Db) -> None:
            own = sa.select(users.c.username).where(
                users.c.username == username, users.c.org_id == org_id
            )
            if db.execute(own).first() is None:
                raise NotFoundError(f"no user named {username!r}")
            known = set(
                db.execute(sa.select(teams.c.team).where(teams.c.org_id == org_id)).scalars()
            )
            for team in teams_:
                if team not in known:
                    raise NotFoundError(f"no team named {team!r}")
            db.execute(team_members.delete().where(team_members.c.username == username))
            if teams_:
                db.execute(
                    team_members.insert(),
                    [
                        {"org_id": org_id, "team": team, "username": username}
                        for team in sorted(set(teams_))
                    ],
                )

        await self._transaction(work)

    async def delete_user(self, grant: Grant, username: str) -> bool:
        statement = users.delete().where(
            users.c.username == username, users.c.org_id == grant.org_id
        )
        if await self._count(statement) == 0:
            return False
        # An employee's erasure: their name, password hash and second factor went with the row,
        # and their sign-ins, codes and training with it (ON DELETE CASCADE).
        self._deleted_from(users, *_ACCOUNT_ROWS)
        return True

    # Second factors and single sign-on

    def _sealed_columns(self) -> dict[str, tuple[sa.Column[Any], sa.Column[Any]]]:
        """Where each kind of :class:`SealedSecret` is kept: (the row's key, the value)."""
        return {
            "totp_secret": (users.c.username, users.c.totp_secret),
            "pending_totp": (users.c.username, users.c.pending_totp),
            "site_token_key": (sites.c.site_id, sites.c.token_key),
            "org_oidc": (orgs.c.org_id, orgs.c.oidc),
            "oidc_pending": (oidc_pending.c.state_digest, oidc_pending.c.sealed),
        }

    async def sealed_secrets(self) -> list[SealedSecret]:
        found: list[SealedSecret] = []
        for kind, (key, value) in self._sealed_columns().items():
            rows = await self._rows(sa.select(key, value).where(value.is_not(None)))
            found += [SealedSecret(kind, str(row[0]), str(row[1])) for row in rows]
        return found

    async def reseal_secret(self, secret: SealedSecret, resealed: str) -> bool:
        key, value = self._sealed_columns()[secret.kind]
        changed = await self._count(
            key.table.update()
            .where(key == secret.key, value == secret.sealed)
            .values({value.name: resealed})
        )
        return changed > 0

    async def name_recovery_digests(self, key_id: str) -> int:
        digest = recovery_codes.c.digest
        return await self._count(
            recovery_codes.update()
            .where(digest.startswith("k1:", autoescape=True))
            .values(digest=sa.literal(f"k2:{key_id}:") + sa.func.substr(digest, 4))
        )

    async def forget_recovery_codes(self, codes: list[tuple[str, str]]) -> int:
        def work(db: _Db) -> int:
            gone = 0
            for username, digest in codes:
                gone += db.execute(
                    recovery_codes.delete().where(
                        recovery_codes.c.username == username, recovery_codes.c.digest == digest
                    )
                ).rowcount
            return gone

        return await self._transaction(work)

    async def recovery_code_digests(self) -> list[tuple[str, str]]:
        rows = await self._rows(
            sa.select(recovery_codes.c.username, recovery_codes.c.digest).order_by(
                recovery_codes.c.username, recovery_codes.c.position
            )
        )
        return [(str(row[0]), str(row[1])) for row in rows]

    async def use_second_factor(
        self, username: str, step: int | None, recovery_digest: str | tuple[str, ...] | None
    ) -> bool:
        """Accept a TOTP step only if newer than the last one used, else consume a recovery code.
        Each is one conditional statement: of two servers racing with the same code, one wins.
        Several digests (the forms one code may be stored under) are looked for in one
        statement, so the work does not depend on which form, if any, is stored."""
        if step is not None:
            accepted = await self._count(
                users.update()
                .where(users.c.username == username, users.c.totp_last_step < step)
                .values(totp_last_step=step)
            )
            if accepted:
                return True
        if recovery_digest is not None:
            consumed = await self._count(
                recovery_codes.delete().where(
                    recovery_codes.c.username == username,
                    recovery_codes.c.digest.in_(
                        (recovery_digest,) if isinstance(recovery_digest, str) else recovery_digest
                    ),
                )
            )
            return consumed > 0
        return False

    async def renew_recovery_codes(
        self, username: str, totp_secret: str, password_hash: str, recovery_codes_: tuple[str, ...]
    ) -> bool:
        def work(db: _Db) -> bool:
            # A no-op update takes the account's row (its lock on PostgreSQL) as it checks it:
            # a reset of the second factor or the password committing meanwhile waits or wins.
            proved = db.execute(
                users.update()
                .where(
                    users.c.username == username,
                    users.c.totp_secret == totp_secret,
                    users.c.password_hash == password_hash,
                    users.c.disabled == sa.false(),
                )
                .values(totp_secret=totp_secret)
            )
            if proved.rowcount:
                self._write_codes(db, username, recovery_codes_)
            return bool(proved.rowcount)

        return await self._transaction(work)

    async def set_second_factor(
        self,
        grant: Grant,
        username: str,
        totp_secret: str | None,
        recovery_codes_: tuple[str, ...],
    ) -> bool:
        def work(db: _Db) -> bool:
            changed = db.execute(
                users.update()
                .where(users.c.username == username, users.c.org_id == grant.org_id)
                .values(totp_secret=totp_secret, totp_last_step=0, pending_totp=None)
            )
            if changed.rowcount:
                self._write_codes(db, username, recovery_codes_)
            return bool(changed.rowcount)

        return await self._transaction(work)

    async def enable_second_factor(
        self,
        username: str,
        pending: str,
        recovery_codes_: tuple[str, ...],
        step: int,
        login: LoginRecord,
        password_hash: str | None = None,
    ) -> bool:
        same_password = (
            sa.true() if password_hash is None else users.c.password_hash == password_hash
        )

        def work(db: _Db) -> bool:
            changed = db.execute(
                users.update()
                .where(
                    users.c.username == username,
                    users.c.pending_totp == pending,
                    users.c.disabled == sa.false(),
                    same_password,
                )
                .values(totp_secret=pending, totp_last_step=step, pending_totp=None)
            )
            if not changed.rowcount:
                return False
            self._write_codes(db, username, recovery_codes_)
            db.execute(logins.delete().where(logins.c.username == username))
            db.execute(logins.insert().values(**_fields_of(login, logins)))
            return True

        return await self._transaction(work)

    async def set_pending_second_factor(self, username: str, sealed: str | None) -> None:
        await self._count(
            users.update().where(users.c.username == username).values(pending_totp=sealed)
        )

    async def set_oidc_identity(self, grant: Grant, username: str, identity: str | None) -> bool:
        changed = await self._count(
            users.update()
            .where(users.c.username == username, users.c.org_id == grant.org_id)
            .values(oidc_subject=identity)
        )
        return changed > 0

    async def user_for_oidc_identity(self, identity: str) -> UserRecord | None:
        rows = await self._rows(
            self._user_select().where(users.c.oidc_subject == identity).limit(2)
        )
        return _user(rows[0]) if len(rows) == 1 else None

    async def set_user_disabled(self, grant: Grant, username: str, disabled: bool) -> bool:
        changed = await self._count(
            users.update()
            .where(users.c.username == username, users.c.org_id == grant.org_id)
            .values(disabled=disabled)
        )
        return changed > 0

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
        own = sa.and_(users.c.username == username, users.c.org_id == grant.org_id)
        kept = {} if claimed is None else {"claimed_password_hash": claimed}

        def work(db: _Db) -> int:
            still = own if replacing is None else sa.and_(own, users.c.password_hash == replacing)
            changed = db.execute(
                users.update()
                .where(still)
                .values(
                    password_hash=password_hash,
                    password_change_required=change_required,
                    password_set_at=at,
                    password_set_by=chosen_by,
                    **kept,
                )
            )
            if not changed.rowcount:  # raised inside: the transaction ends nothing either
                if (
                    replacing is not None
                    and db.execute(sa.select(users.c.username).where(own)).first()
                ):
                    raise ConflictError("the password was changed meanwhile")
                raise NotFoundError(f"no user named {username!r}")
            return int(db.execute(logins.delete().where(logins.c.username == username)).rowcount)

        return await self._transaction(work)

    async def get_oidc(self, grant: Grant) -> str | None:
        org_id = grant.org_id
        row = await self._row(sa.select(orgs.c.oidc).where(orgs.c.org_id == org_id))
        return str(row[0]) if row and row[0] else None

    async def set_oidc(self, grant: Grant, sealed: str | None) -> None:
        org_id = grant.org_id
        await self._count(orgs.update().where(orgs.c.org_id == org_id).values(oidc=sealed))

    async def put_oidc_pending(
        self, grant: Grant, state_digest: str, sealed: str, expires_at: float
    ) -> None:
        await self._count(
            oidc_pending.insert().values(
                state_digest=state_digest,
                org_id=grant.org_id,
                sealed=sealed,
                expires_at=expires_at,
            )
        )

    async def take_oidc_pending(self, state_digest: str, now: float) -> tuple[str, str] | None:
        row = await self._row(
            oidc_pending.delete()
            .where(oidc_pending.c.state_digest == state_digest)
            .returning(oidc_pending.c.org_id, oidc_pending.c.sealed, oidc_pending.c.expires_at)
        )
        if row is None or row["expires_at"] <= now:
            return None
        return str(row["org_id"]), str(row["sealed"])

    # Sign-ins

    async def add_login(self, login: LoginRecord, proved: UserRecord | None = None) -> bool:
        if proved is None:
            await self._count(logins.insert().values(**_fields_of(login, logins)))
            return True

        def work(db: _Db) -> bool:
            # The account's row is locked until the sign-in is stored (FOR SHARE on PostgreSQL;
            # SQLite's IMMEDIATE transaction holds the write lock): a change of its credentials
            # that committed first is seen here, one that comes after ends this sign-in too.
            row = db.execute(
                sa.select(
                    users.c.password_hash,
                    users.c.totp_secret,
                    users.c.oidc_subject,
                    users.c.disabled,
                )
                .where(users.c.username == login.username)
                .with_for_update(read=True)
            ).first()
            if row is None or (
                row["password_hash"],
                row["totp_secret"],
                row["oidc_subject"],
                bool(row["disabled"]),
            ) != (proved.password_hash, proved.totp_secret, proved.oidc_identity, False):
                return False
            db.execute(logins.insert().values(**_fields_of(login, logins)))
            return True

        return await self._transaction(work)

    async def get_login(self, token_digest: str) -> LoginRecord | None:
        row = await self._row(self._login_by_digest, {"digest": token_digest})
        if row is None:
            return None
        return LoginRecord(
            str(row["token_digest"]),
            str(row["username"]),
            float(row["expires_at"]),
            float(row["last_seen"]),
            str(row["method"]),
        )

    async def touch_login(self, token_digest: str, now: float) -> None:
        await self._count(self._touch, {"digest": token_digest, "now": now})

    async def delete_logins_of(self, grant: Grant, username: str) -> int:
        own = sa.select(users.c.username).where(
            users.c.username == username, users.c.org_id == grant.org_id
        )
        return await self._count(
            logins.delete().where(logins.c.username == username, logins.c.username.in_(own))
        )

    async def delete_logins_by_method(self, grant: Grant, method: str) -> int:
        own = sa.select(users.c.username).where(users.c.org_id == grant.org_id)
        return await self._count(
            logins.delete().where(logins.c.method == method, logins.c.username.in_(own))
        )

    async def delete_login(self, token_digest: str) -> None:
        await self._count(logins.delete().where(logins.c.token_digest == token_digest))

    # Join codes and sessions

    async def put_join_code(
        self, grant: Grant, code_digest: str, session_id: str, expires_at: float
    ) -> None:
        try:
            await self._count(
                self._put_code,
                {
                    "code_digest": code_digest,
                    "session_id": session_id,
                    "expires_at": expires_at,
                    "org_id": grant.org_id,
                },
            )
        except _Violation:
            raise ConflictError("join code collision: a live session holds it") from None

    async def take_join_code(self, grant: Grant, code_digest: str, now: float) -> TakenCode | None:
        # One DELETE ... RETURNING: of concurrent takers (on any server) exactly one gets the row.
        row = await self._row(self._take_code_of_org, {"digest": code_digest, "org": grant.org_id})
        if row is None or row["expires_at"] <= now:
            return None
        self._deleted_from(join_codes)
        return TakenCode(str(row["session_id"]), float(row["expires_at"]))

    async def delete_join_codes(self, session_id: str) -> None:
        if await self._count(join_codes.delete().where(join_codes.c.session_id == session_id)):
            self._deleted_from(join_codes)

    async def record_session_start(
        self,
        grant: Grant,
        session_id: str,
        created_at: float,
        site_id: str = "",
        node: str = "",
    ) -> None:
        await self._count(
            self._start_session,
            {
                "session_id": session_id,
                "created_at": created_at,
                "org_id": grant.org_id,
                "site_id": site_id,
                "node": node,
            },
        )

    async def record_session_end(
        self, session_id: str, ended_at: float, reason: str, agent: str | None
    ) -> None:
        await self._count(
            self._live_session,
            {"sid": session_id, "ended_at": ended_at, "end_reason": reason, "agent": agent},
        )

    async def get_session(self, session_id: str) -> SessionRecord | None:
        row = await self._row(sa.select(*sessions.c).where(sessions.c.session_id == session_id))
        return _session(row) if row else None

    async def sessions_of(self, grant: Grant, session_ids: Sequence[str]) -> list[SessionRecord]:
        if not session_ids:
            return []
        rows = await self._rows(
            sa.select(*sessions.c).where(
                sessions.c.org_id == grant.org_id,
                _one_of(sessions.c.session_id, session_ids, postgres=self._postgres),
            )
        )
        found = {str(row["session_id"]): _session(row) for row in rows}
        return [found[sid] for sid in dict.fromkeys(session_ids) if sid in found]

    async def record_session_state(self, session_id: str, state: str, agent: str | None) -> None:
        await self._count(self._live_session, {"sid": session_id, "state": state, "agent": agent})

    async def live_sessions(self, grant: Grant) -> list[SessionRecord]:
        org_id = grant.org_id
        # A session a stopping server handed over (SIGTERM) is listed as "restarting" until a
        # side resumes it on some process or its window passes (then it is ended).
        handed_over = sessions.c.session_id.in_(sa.select(suspended_sessions.c.session_id))
        state = sa.case((handed_over, sa.literal("restarting")), else_=sessions.c.state)
        rows = await self._rows(
            sa.select(*(c for c in sessions.c if c.name != "state"), state.label("state"))
            .where(
                sessions.c.org_id == org_id,
                sessions.c.ended_at.is_(None),
                # Practice sessions (tandem.training) are not customers' sessions.
                sessions.c.session_id.not_in(sa.select(practice_sessions.c.session_id)),
            )
            .order_by(sessions.c.created_at, self._bytewise(sessions.c.session_id))
        )
        return [_session(row) for row in rows]

    async def waiting_practice(self, grant: Grant, username: str) -> list[SessionRecord]:
        org_id = grant.org_id
        rows = await self._rows(
            sa.select(*sessions.c)
            .where(
                sessions.c.org_id == org_id,
                sessions.c.ended_at.is_(None),
                sessions.c.state.in_(("waiting", "pending_consent")),
                sessions.c.session_id.in_(
                    sa.select(practice_sessions.c.session_id).where(
                        practice_sessions.c.org_id == org_id,
                        practice_sessions.c.username == username,
                    )
                ),
                sessions.c.session_id.not_in(sa.select(suspended_sessions.c.session_id)),
            )
            .order_by(sessions.c.created_at, self._bytewise(sessions.c.session_id))
        )
        return [_session(row) for row in rows]

    # Back-off counts and single-use marks

    async def backoff_state(self, keys: Sequence[str]) -> dict[str, tuple[int, float, float]]:
        if not keys:
            return {}
        rows = await self._rows(
            sa.select(
                backoff.c.key, backoff.c.failures, backoff.c.locked_until, backoff.c.updated_at
            ).where(backoff.c.key.in_(list(keys)))
        )
        return {
            str(r["key"]): (int(r["failures"]), float(r["locked_until"]), float(r["updated_at"]))
            for r in rows
        }

    def _insert(self, table: sa.Table) -> Any:
        """INSERT with ``ON CONFLICT`` (both dialects spell it the same)."""
        if self._postgres:
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    async def backoff_failed(self, key: str, now: float, forget_after: float) -> int:
        insert = self._insert(backoff).values(key=key, failures=1, locked_until=0.0, updated_at=now)
        forgotten = backoff.c.updated_at <= insert.excluded.updated_at - forget_after
        row = await self._row(
            insert.on_conflict_do_update(
                index_elements=[backoff.c.key],
                set_={
                    "failures": sa.case((forgotten, 1), else_=backoff.c.failures + 1),
                    "updated_at": insert.excluded.updated_at,
                },
            ).returning(backoff.c.failures)
        )
        assert row is not None
        return int(row[0])

    async def backoff_lock(self, key: str, locked_until: float) -> None:
        later = sa.case(
            (backoff.c.locked_until < locked_until, locked_until), else_=backoff.c.locked_until
        )
        await self._count(backoff.update().where(backoff.c.key == key).values(locked_until=later))

    async def backoff_clear(self, key: str) -> None:
        await self._count(backoff.delete().where(backoff.c.key == key))

    async def backoff_forgive(self, key: str, free: int) -> None:
        fewer = sa.case((backoff.c.failures > 0, backoff.c.failures - 1), else_=0)
        await self._count(
            backoff.update()
            .where(backoff.c.key == key)
            .values(
                failures=fewer,
                locked_until=sa.case((fewer <= free, 0.0), else_=backoff.c.locked_until),
            )
        )

    async def use_once(self, digest: str, expires_at: float) -> bool:
        row = await self._row(
            self._insert(used_once)
            .values(digest=digest, expires_at=expires_at)
            .on_conflict_do_nothing(index_elements=[used_once.c.digest])
            .returning(used_once.c.digest)
        )
        return row is not None

    async def purge_expired(
        self, now: float, evidence: Evidence[list[tuple[str, str]]] | None = None
    ) -> list[tuple[str, str]]:
        """Delete expired codes, sign-ins, marks and ended sessions past their organisation's
        retention (with their customers' ids and practice evidence). Each DELETE filters on an
        indexed column."""
        shortest_retention = sa.select(sa.func.min(orgs.c.retention_days)).scalar_subquery()
        ended_ = sessions.alias("ended")
        retention = (
            sa.select(orgs.c.retention_days)
            .where(orgs.c.org_id == ended_.c.org_id)
            .scalar_subquery()
        )

        emptied: set[sa.Table] = set()  # what to vacuum (PostgreSQL): tables rows went from
        skipped: list[str] = []  # sessions past retention a reader held (PostgreSQL)

        def work(db: _Db) -> list[tuple[str, str]]:
            emptied.clear()  # a retried transaction counts again
            for table, expired in (
                (join_codes, join_codes.c.expires_at <= now),
                (used_once, used_once.c.expires_at <= now),
                # Counts forgotten a day after the last failure, once no wait is running.
                (backoff, sa.and_(backoff.c.updated_at < now - DAY, backoff.c.locked_until < now)),
                (logins, logins.c.expires_at <= now),
                (oidc_pending, oidc_pending.c.expires_at <= now),
            ):
                if db.execute(table.delete().where(expired)).rowcount:
                    emptied.add(table)
            # Each organisation's retention: ended sessions' records go when it runs out. The
            # shortest retention bounds the index range; the organisation's own decides.
            # PostgreSQL: those a customer's export holds now (its key share locks on what it
            # lists) are skipped, left to the next run. Waiting for them, the DELETE waited
            # behind every export's lock: an admin's exports overlapping at all times kept
            # this purge (every organisation's, sign-ins and join codes with it) waiting until
            # its database timeout failed it, every run. (SQLite: one writer at a time.)
            past = (
                ended_.c.ended_at.isnot(None),
                ended_.c.ended_at < sa.literal(now) - DAY * shortest_retention,
                ended_.c.ended_at < sa.literal(now) - DAY * retention,
                ~_session_held(ended_.c.org_id, ended_.c.session_id, _held_forms(db)),
            )
            free = (
                sa.select(ended_.c.session_id)
                .where(*past)
                .with_for_update(skip_locked=True, of=ended_)
            )
            ended = db.execute(
                sessions.delete()
                .where(sessions.c.session_id.in_(free))
                .returning(sessions.c.session_id, sessions.c.org_id)
            ).rows
            # The customer's id goes with the session's record (storage limitation), and so does
            # a practice session's evidence (its completion keeps the steps it proved).
            if ended:
                emptied.update((sessions, subject_sessions, practice_sessions))
            if ended:
                ids = [row[0] for row in ended]
                for table in (subject_sessions, practice_sessions):
                    db.execute(
                        table.delete().where(
                            _one_of(table.c.session_id, ids, postgres=self._postgres)
                        )
                    )
            # Those skipped, told (a reader that never lets go had them skipped at every run).
            skipped[:] = [
                str(row[0])
                for row in db.execute(sa.select(ended_.c.session_id).where(*past).limit(20)).rows
            ]
            return sorted((str(row[1]), str(row[0])) for row in ended)

        expired = await self._with_evidence(work, evidence)
        if skipped:
            log.warning(
                "sessions past their retention left to the next purge, held by a reader (a "
                "customer's export, or a transaction left open: look for 'idle in "
                "transaction' in pg_stat_activity): %s",
                ", ".join(skipped),
            )
        self._deleted_from(*emptied)
        await self._empty_wal()
        return expired

    # Organisations and teams

    async def add_org(self, org: OrgRecord) -> None:
        try:
            await self._count(orgs.insert().values(**_fields_of(org, orgs)))
        except _Violation:
            raise ConflictError(f"an organisation {org.org_id!r} already exists") from None

    async def get_org(self, grant: Grant) -> OrgRecord | None:
        org_id = grant.org_id
        row = await self._row(
            sa.select(
                orgs.c.org_id,
                orgs.c.name,
                orgs.c.created_at,
                orgs.c.retention_days,
                orgs.c.recording_key,
            ).where(orgs.c.org_id == org_id)
        )
        if row is None:
            return None
        return OrgRecord(str(row[0]), _org_name(row), float(row[2]), int(row[3]), row[4])

    async def only_org(self) -> str | None:
        rows = await self._rows(
            sa.select(orgs.c.org_id).order_by(self._bytewise(orgs.c.org_id)).limit(2)
        )
        return str(rows[0][0]) if len(rows) == 1 else None

    async def all_orgs(self) -> list[OrgRecord]:
        rows = await self._rows(
            sa.select(
                orgs.c.org_id,
                orgs.c.name,
                orgs.c.created_at,
                orgs.c.retention_days,
                orgs.c.recording_key,
            ).order_by(self._bytewise(orgs.c.org_id))
        )
        return [OrgRecord(str(r[0]), _org_name(r), float(r[2]), int(r[3]), r[4]) for r in rows]

    async def update_org(self, grant: Grant, org: OrgRecord) -> None:
        _owned(grant, org.org_id, f"organisation {org.org_id!r}")
        await self._count(
            orgs.update()
            .where(orgs.c.org_id == org.org_id)
            .values(
                name=org.name, retention_days=org.retention_days, recording_key=org.recording_key
            )
        )

    async def add_team(self, grant: Grant, team: str) -> None:
        org_id = grant.org_id
        try:
            await self._count(teams.insert().values(org_id=org_id, team=team))
        except _Violation:
            raise ConflictError(f"a team {team!r} already exists") from None

    async def delete_team(self, grant: Grant, team: str) -> bool:
        org_id = grant.org_id
        deleted = await self._count(
            teams.delete().where(teams.c.org_id == org_id, teams.c.team == team)
        )
        return deleted > 0

    async def list_teams(self, grant: Grant) -> list[str]:
        org_id = grant.org_id
        rows = await self._rows(
            sa.select(teams.c.team)
            .where(teams.c.org_id == org_id)
            .order_by(self._bytewise(teams.c.team))
        )
        return [str(row[0]) for row in rows]

    async def team_policies(self, grant: Grant, teams_: tuple[str, ...]) -> dict[str, str]:
        org_id = grant.org_id
        if not teams_:
            return {}
        rows = await self._rows(
            sa.select(teams.c.team, teams.c.policy).where(
                teams.c.org_id == org_id,
                teams.c.team.in_(list(teams_)),
                teams.c.policy.isnot(None),
            )
        )
        policies = {str(row[0]): str(row[1]) for row in rows}
        return {team: policies[team] for team in teams_ if team in policies}

    async def set_team_policy(self, grant: Grant, team: str, policy: str | None) -> bool:
        org_id = grant.org_id
        changed = await self._count(
            teams.update()
            .where(teams.c.org_id == org_id, teams.c.team == team)
            .values(policy=policy)
        )
        return changed > 0

    # Sites

    def _site_select(self) -> sa.Select[Any]:
        served_by = (
            sa.select(self._json_agg(site_teams.c.team))
            .where(site_teams.c.site_id == sites.c.site_id)
            .scalar_subquery()
        )
        return sa.select(*sites.c, served_by.label("teams"))

    async def _write_site(self, grant: Grant, site: SiteRecord, insert: bool) -> None:
        _owned(grant, site.org_id, f"site {site.site_id!r}")
        values = {
            "org_id": site.org_id,
            "origin": site.origin,
            "name": site.name,
            "policy": site.policy,
            "token_key": site.token_key,
            "require_token": site.require_token,
            "verified": site.verified,
        }

        def work(db: _Db) -> None:
            known = set(
                db.execute(sa.select(teams.c.team).where(teams.c.org_id == site.org_id)).scalars()
            )
            for team in site.teams:
                if team not in known:
                    raise NotFoundError(f"no team named {team!r}")
            if insert:
                db.execute(sites.insert().values(site_id=site.site_id, **values))
            else:
                result = db.execute(
                    sites.update()
                    .where(sites.c.site_id == site.site_id, sites.c.org_id == grant.org_id)
                    .values(**values)
                )
                if not result.rowcount:
                    raise NotFoundError(f"no site {site.site_id!r}")
            db.execute(site_teams.delete().where(site_teams.c.site_id == site.site_id))
            if site.teams:
                db.execute(
                    site_teams.insert(),
                    [
                        {"site_id": site.site_id, "org_id": site.org_id, "team": team}
                        for team in sorted(set(site.teams))
                    ],
                )

        try:
            await self._transaction(work)
        except _Violation:
            raise ConflictError(
                f"a site {site.site_id!r} or one for {site.origin} already exists"
            ) from None

    async def add_site(self, grant: Grant, site: SiteRecord) -> None:
        await self._write_site(grant, site, insert=True)

    async def update_site(self, grant: Grant, site: SiteRecord) -> None:
        """Raises NotFoundError if the grant's organisation has no such site (or team),
        ConflictError if the origin is another site's."""
        await self._write_site(grant, site, insert=False)

    async def mark_site_verified(self, grant: Grant, site_id: str, origin: str) -> SiteRecord:
        statement = (
            sites.update()
            .where(
                sites.c.site_id == site_id,
                sites.c.org_id == grant.org_id,
                sites.c.origin == origin,
            )
            .values(verified=True)
        )
        try:
            changed = await self._count(statement)
        except _Violation:
            raise ConflictError(f"a verified site for {origin} already exists") from None
        site = await self.get_site(site_id)
        if not changed or site is None or site.org_id != grant.org_id:
            raise NotFoundError(f"no site {site_id!r}")
        return site

    async def get_site(self, site_id: str) -> SiteRecord | None:
        row = await self._row(self._site_select().where(sites.c.site_id == site_id))
        return _site(row) if row else None

    async def site_for_origin(self, origin: str) -> SiteRecord | None:
        statement = self._site_select().where(sites.c.origin == origin, SITE_VERIFIED)
        row = await self._row(statement)
        return _site(row) if row else None

    async def org_site_for_origin(self, grant: Grant, origin: str) -> SiteRecord | None:
        statement = self._site_select().where(
            sites.c.org_id == grant.org_id, sites.c.origin == origin
        )
        row = await self._row(statement)
        return _site(row) if row else None

    async def list_sites(self, grant: Grant) -> list[SiteRecord]:
        org_id = grant.org_id
        statement = self._site_select().order_by(self._bytewise(sites.c.site_id))
        statement = statement.where(sites.c.org_id == org_id)
        return [_site(row) for row in await self._rows(statement)]

    async def all_sites(self) -> list[SiteRecord]:
        statement = self._site_select().order_by(self._bytewise(sites.c.site_id))
        return [_site(row) for row in await self._rows(statement)]

    async def delete_site(self, grant: Grant, site_id: str) -> bool:
        statement = sites.delete().where(sites.c.site_id == site_id, sites.c.org_id == grant.org_id)
        return await self._count(statement) > 0

    # Recordings (ciphertext only; frames go with their recording by ON DELETE CASCADE)

    async def add_recording(self, grant: Grant, recording: RecordingRecord) -> None:
        _owned(grant, recording.org_id, f"recording {recording.recording_id!r}")

        def work(db: _Db) -> None:
            org = db.execute(
                sa.select(orgs.c.org_id).where(orgs.c.org_id == recording.org_id)
            ).first()
            if org is None:
                raise NotFoundError(f"no organisation {recording.org_id!r}")
            db.execute(recordings.insert().values(**_fields_of(recording, recordings)))

        try:
            await self._transaction(work)
        except _Violation:
            raise ConflictError(f"a recording {recording.recording_id!r} already exists") from None

    async def append_recording_frames(
        self, recording_id: str, first_seq: int, frames: Sequence[bytes]
    ) -> None:
        def work(db: _Db) -> None:
            # The UPDATE locks the recording's row: appends to it (from any server) and its
            # erasure wait for this transaction. Only to a running recording: a frame late for
            # one that ended (closed by another server as its process's lost) is not kept.
            result = db.execute(
                recordings.update()
                .where(recordings.c.recording_id == recording_id, recordings.c.ended_at.is_(None))
                .values(
                    frames=recordings.c.frames + len(frames),
                    size=recordings.c.size + sum(len(frame) for frame in frames),
                )
            )
            if not result.rowcount:
                raise NotFoundError(f"no running recording {recording_id!r}")
            if frames:
                db.execute(
                    recording_frames.insert(),
                    [
                        {"recording_id": recording_id, "seq": first_seq + i, "data": bytes(f)}
                        for i, f in enumerate(frames)
                    ],
                )

        try:
            await self._transaction(work)
        except _Violation:
            raise ConflictError(
                f"recording {recording_id!r} already has a frame numbered"
                f" {first_seq}..{first_seq + len(frames) - 1}"
            ) from None

    async def end_recording(
        self,
        recording_id: str,
        ended_at: float,
        reason: str,
        evidence: Evidence[bool] | None = None,
    ) -> bool:
        def work(db: _Db) -> bool:
            ended = db.execute(
                recordings.update()
                .where(recordings.c.recording_id == recording_id, recordings.c.ended_at.is_(None))
                .values(ended_at=ended_at, end_reason=reason)
            ).rowcount
            return bool(ended)

        return await self._with_evidence(work, evidence)

    async def get_recording(
        self, recording_id: str, now: float | None = None
    ) -> RecordingRecord | None:
        wanted = recordings.c.recording_id == recording_id
        if now is None:
            row = await self._row(sa.select(*_RECORDING_COLUMNS).where(wanted))
            return _recording(row) if row else None

        def work(db: _Db) -> Any:  # the holds and the purges' clock read with it
            return db.execute(
                sa.select(*_RECORDING_COLUMNS).where(wanted, ~self._expired_at(db, now))
            ).first()

        row = await self._transaction(work)
        return _recording(row) if row else None

    async def list_recordings(
        self, grant: Grant, limit: int, now: float | None = None
    ) -> list[RecordingRecord]:
        query = (
            sa.select(*_RECORDING_COLUMNS)
            .where(recordings.c.org_id == grant.org_id)
            .order_by(
                recordings.c.started_at.desc(), self._bytewise(recordings.c.recording_id).desc()
            )
            .limit(limit)
        )
        if now is None:
            return [_recording(row) for row in await self._rows(query)]

        def work(db: _Db) -> list[Any]:  # the holds and the purges' clock read with them
            return db.execute(query.where(~self._expired_at(db, now))).rows

        return [_recording(row) for row in await self._transaction(work)]

    def _recording_gate(self, db: _Db, recording_ids: Sequence[str], *, exclusive: bool) -> None:
        """PostgreSQL: take the recordings' gates (transaction-level advisory locks, in one
        order), shared by a reader (a playback, an export), exclusive by an erasure, before
        the rows. A reader's key share lock on a row let every later reader's in ahead of an
        erasure's DELETE waiting for it (row locks keep no queue), so back-to-back playbacks
        held the erasure until its database timeout; the gates are queued in turn: an erasure
        waits for the reads under way when it asked, and a read asked after it waits for it,
        then finds the recording erased. (SQLite: one writer at a time, in turn already.)

        A transaction takes at most :data:`GATE_BUDGET` gates and two more locks (every
        advisory lock is an entry of PostgreSQL's shared lock table, whose room is shared by the
        whole cluster): one that names more recordings' gates stands for them all with one of
        the two wide locks (:data:`EVERY_RECORDING`, :data:`MANY_READ`). Every transaction takes
        its locks in one order (:data:`EVERY_RECORDING`, :data:`MANY_READ`, the gates by key):

        - a reader of few: ``EVERY_RECORDING`` shared, its gates shared;
        - a reader of many: ``EVERY_RECORDING`` shared, ``MANY_READ`` shared;
        - an erasure of few: ``EVERY_RECORDING`` shared, ``MANY_READ`` exclusive, its gates
          exclusive;
        - an erasure of many: ``EVERY_RECORDING`` exclusive.

        So an erasure waits for every reader of what it erases, and each reader asked after it
        for it, as with a gate each; what they cost is waiting where they share nothing: an
        erasure of many holds every playback up while it deletes, a reader of many every
        erasure, and erasures of few wait for each other (each brief)."""
        if not self._postgres:
            return
        keys = sorted({_gate_key(recording_id) for recording_id in recording_ids})
        many = len(keys) > GATE_BUDGET
        shared, alone = sa.func.pg_advisory_xact_lock_shared, sa.func.pg_advisory_xact_lock
        taken: list[tuple[Any, int]] = [(alone if exclusive and many else shared, EVERY_RECORDING)]
        if exclusive and not many:
            taken += [(alone, MANY_READ), *((alone, key) for key in keys)]
        elif not exclusive:
            taken += [(shared, MANY_READ)] if many else [(shared, key) for key in keys]
        for lock, key in taken:
            db.execute(sa.select(lock(sa.literal(RECORDING_GATE_CLASS), sa.literal(key))))

    def _expired_at(self, db: _Db, now: float) -> sa.ColumnElement[bool]:
        """The recordings past their retention (and under no legal hold) for a reader whose
        clock says ``now`` (by the purges' clock when that is ahead: :func:`_retention_clock`):
        given out, listed and looked up no more, as if erased."""
        judged = _retention_clock(db, now, self.retention_clock_skew)
        return _expired(recordings, judged, _held_forms(db))

    async def recording_frames(self, recording_id: str) -> list[bytes]:
        rows = await self._rows(
            sa.select(recording_frames.c.data)
            .where(recording_frames.c.recording_id == recording_id)
            .order_by(recording_frames.c.seq)
        )
        return [bytes(row[0]) for row in rows]

    async def read_recording(
        self,
        recording_id: str,
        evidence: Evidence[RecordingRecord | None] | None = None,
        now: float | None = None,
    ) -> tuple[RecordingRecord, list[bytes]] | None:
        read: list[tuple[RecordingRecord, list[bytes]]] = []

        def work(db: _Db) -> RecordingRecord | None:
            read.clear()  # run again when another writer took the audit trail's next number
            # Its row held against an erasure (or a purge) until the record is committed:
            # PostgreSQL's key share lock, which only a DELETE waits for (a share lock held a
            # running recording's frames and its end, an UPDATE of the row, until the playback
            # was read: back-to-back playbacks kept them waiting until storage gave up on them);
            # SQLite's transaction holds the write lock already.
            self._recording_gate(db, [recording_id], exclusive=False)
            wanted = recordings.c.recording_id == recording_id
            if now is not None:
                # Past its retention (and not held) it is as gone: never given out, and never
                # locked, so the purge that takes it waits for no playback begun after its
                # retention ended (back-to-back playbacks kept their key share locks on it
                # while the purge's DELETE waited, until the purge's own database timeout).
                # By the cluster's purges' clock too, when it is ahead of this server's: one
                # behind played (and held from the next purge) what a purge found expired.
                judged = _retention_clock(db, now, self.retention_clock_skew)
                expired = _expired(recordings, judged, _held_forms(db))
                wanted = sa.and_(wanted, ~expired)
            row = db.execute(
                sa.select(*_RECORDING_COLUMNS)
                .where(wanted)
                .with_for_update(read=True, key_share=True)
            ).first()
            if row is None:
                return None
            frames = db.execute(
                sa.select(recording_frames.c.data)
                .where(recording_frames.c.recording_id == recording_id)
                .order_by(recording_frames.c.seq)
            ).rows
            recording = _recording(row)
            read.append((recording, [bytes(frame[0]) for frame in frames]))
            return recording

        if evidence is None:
            await self._transaction(work)
        else:
            await self._with_evidence(work, evidence)
        return read[0] if read else None

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
        def held(db: _Db, column: sa.Column[Any], wanted: Sequence[str]) -> bool:
            """Whether every row whose ``column`` is one of ``wanted`` is still there, each
            held against a DELETE until the export's record is committed."""
            ids = sorted(set(wanted))
            if not ids:
                return True
            found = db.execute(
                sa.select(column)
                .where(_one_of(column, ids, postgres=self._postgres))
                .with_for_update(read=True, key_share=True)
            ).rows
            return len(found) == len(ids)

        def work(db: _Db) -> ExportRead | None:
            # (Run again whole when another writer took the audit trail's next number.)
            # Held against an erasure until the export's record is committed (PostgreSQL's key
            # share locks, which only a DELETE waits for; SQLite's transaction holds the write
            # lock already), or found gone. In the order an erasure deletes them (recordings,
            # sessions, then the customer's links): taken the other way round, an export
            # holding a session while the erasure held its recording waited for each other
            # until PostgreSQL broke the deadlock by failing one of them.
            self._recording_gate(db, [*recording_ids, *listed_ids], exclusive=False)
            if not (
                held(db, recordings.c.recording_id, [*recording_ids, *listed_ids])
                and held(db, sessions.c.session_id, session_ids)
                and held(db, subject_sessions.c.session_id, linked_ids)
            ):
                return None
            trail = seen_again(db, view) if view is not None else ()
            # In one statement: one per recording took minutes for a customer with tens of
            # thousands of them.
            read: dict[str, list[bytes]] = {recording_id: [] for recording_id in recording_ids}
            counted = view.frame_counts() if view is not None else {}
            rows = (
                db.execute(
                    sa.select(
                        recording_frames.c.recording_id,
                        recording_frames.c.seq,
                        recording_frames.c.data,
                    )
                    .where(_one_of(recording_frames.c.recording_id, read, postgres=self._postgres))
                    .order_by(recording_frames.c.recording_id, recording_frames.c.seq)
                ).rows
                if read
                else []
            )
            for recording_id, seq, data in rows:
                limit = counted.get(str(recording_id))
                if limit is None or seq < limit:  # a running recording's, as its header counts
                    read[str(recording_id)].append(bytes(data))
            return ExportRead([read[recording_id] for recording_id in recording_ids], trail)

        def seen_again(db: _Db, view: ExportView) -> tuple[AuditRecord, ...]:
            """The customer's trail, read now; then their links, sessions and recordings,
            which must be what ``view`` found (else ViewChanged). What was found is held
            against a DELETE, so only a new row or an end changes them, and neither undoes
            another: the same when the look-up read them (before this) and now (after this
            read of the trail), they were so at this read of the trail too, and the trail is
            theirs at that moment. (SQLite: no writer at all meanwhile.)"""
            subjects, actors = view.audit_subjects, view.audit_actors
            trail = (
                db.execute(
                    _audit_about(view.org_id, subjects, actors, postgres=self._postgres)
                ).rows
                if subjects or actors
                else []
            )
            links = [
                (str(row[0]), str(row[1]))
                for form in view.forms
                for row in db.execute(_links_of(view.org_id, form)).rows
            ]
            stored = (
                db.execute(
                    sa.select(*sessions.c).where(
                        _one_of(sessions.c.session_id, view.session_ids, postgres=self._postgres)
                    )
                ).rows
                if view.session_ids
                else []
            )
            found = (
                db.execute(
                    _recordings_of(
                        view.org_id,
                        view.session_ids,
                        view.now,
                        db,
                        skew=self.retention_clock_skew,
                        postgres=self._postgres,
                    )
                ).rows
                if view.session_ids
                else []
            )
            if not view.same(
                links, [_session(row) for row in stored], [_recording(row) for row in found]
            ):
                raise ViewChanged(
                    "what concerns the customer changed while it was exported (a session or "
                    "recording begun or ended meanwhile): nothing was exported; ask again"
                )
            return tuple(_audit_record(row) for row in trail)

        if evidence is None:
            return await self._transaction(work)
        return await self._with_evidence(work, evidence)

    async def delete_recording(
        self, recording_id: str, evidence: Evidence[bool] | None = None
    ) -> bool:
        def work(db: _Db) -> bool:
            self._recording_gate(db, [recording_id], exclusive=True)
            # Checked again here, in the erasure's transaction, as erase_subject does: a hold
            # placed after the caller checked (another admin, another server) was erased over.
            held = db.execute(
                sa.select(recordings.c.recording_id).where(
                    recordings.c.recording_id == recording_id,
                    sa.or_(
                        _recording_held(recordings.c.org_id, recordings.c.recording_id),
                        _customer_held(
                            recordings.c.org_id, recordings.c.session_id, _held_forms(db)
                        ),
                    ),
                )
            ).first()
            if held is not None:
                raise ConflictError(
                    f"recording {recording_id} is under legal hold (placed meanwhile): "
                    "nothing erased"
                )
            deleted = db.execute(
                recordings.delete().where(recordings.c.recording_id == recording_id)
            ).rowcount
            return bool(deleted)

        deleted = await self._with_evidence(work, evidence)
        if deleted:
            self._deleted_from(recordings, recording_frames)
            await self._empty_wal()
        return deleted > 0

    async def purge_recordings(
        self, now: float, evidence: Evidence[list[RecordingRecord]] | None = None
    ) -> list[RecordingRecord]:
        expired = recordings.alias("expired")

        def work(db: _Db) -> list[RecordingRecord]:
            # PostgreSQL: those a playback, an export or an erasure holds now are skipped, left
            # to the next purge (no playback starts on a recording past its retention, so the
            # next finds it free). Waiting for them, the DELETE waited behind every playback's
            # key share lock: back-to-back playbacks (an auditor's console replaying, anyone
            # with playback rights) kept taking the row ahead of it until the purge's database
            # timeout failed it, every minute. (SQLite: one writer at a time; nothing to skip.)
            free = (
                sa.select(expired.c.recording_id)
                .where(_expired(expired, now, _held_forms(db)))
                .with_for_update(skip_locked=True, of=expired)
            )
            rows = db.execute(
                recordings.delete()
                .where(recordings.c.recording_id.in_(free))
                .returning(*_RECORDING_COLUMNS)
            ).rows
            # The purges' clock, for every reader (_retention_clock): the latest ``now`` a
            # purge ran with, kept (never moved back by a server whose clock is behind).
            noted = installation_notes.c.noted_at
            db.execute(
                self._insert(installation_notes)
                .values(name=PURGED_AT_NOTE, value="recordings' retention purge", noted_at=now)
                .on_conflict_do_update(
                    index_elements=[installation_notes.c.name],
                    set_={"noted_at": sa.case((noted < now, sa.literal(now)), else_=noted)},
                )
            )
            return sorted(map(_recording, rows), key=lambda r: (r.started_at, r.recording_id))

        purged = await self._with_evidence(work, evidence)
        if purged:
            self._deleted_from(recordings, recording_frames)
            await self._empty_wal()
        return purged

    async def overdue_recordings(self, now: float) -> list[RecordingRecord]:
        def work(db: _Db) -> list[Any]:
            return db.execute(
                sa.select(*_RECORDING_COLUMNS)
                .where(_expired(recordings, now, _held_forms(db)))
                .order_by(recordings.c.ended_at, recordings.c.recording_id)
            ).rows

        return [_recording(row) for row in await self._transaction(work)]

    # Audit trail

    async def append_audit(
        self,
        grant: Grant,
        at: float,
        action: str,
        actor: str,
        subject: str,
        details: dict[str, object],
        anchor: AnchorRule | None = None,
        seal: RecordSeal | None = None,
        backlog_line: tuple[str, int] | None = None,
    ) -> AuditRecord:
        """Extend the chain by one record, with the MAC ``seal`` makes for it (if any), and the
        anchor ``anchor`` seals for it (if any). ``backlog_line`` (file id, line number): the
        record comes from that line of an audit backlog file, noted in the same transaction;
        :class:`BacklogLineWritten` (nothing written) if it was noted already.

        No lock: every server reads the head of the chain and writes the next record under the
        next number; the number is the primary key, so of two servers writing the same one, the
        second is refused (its record would not follow the head it read) and reads the new head
        and tries again (and MACs it again: the MAC covers the number and the previous hash).
        The MAC is a column of the record's row, written by the same INSERT; a record and its
        anchor are written in one transaction."""
        org = grant.org_id

        def work(db: _Db) -> AuditRecord:
            if backlog_line is None:
                return self._append_in(
                    db, org, at, action, actor, subject, details, anchor, seal, alone=True
                )
            file_id, line = backlog_line
            with db.atomic():
                noted = db.execute(
                    sa.select(audit_backlog_lines.c.seq).where(
                        audit_backlog_lines.c.file_id == file_id,
                        audit_backlog_lines.c.line == line,
                    )
                ).first()
                if noted is not None:
                    raise BacklogLineWritten(
                        f"line {line} of the audit backlog {file_id} is on the trail already"
                        f" (record {noted[0]})"
                    )
                record = self._append_in(
                    db, org, at, action, actor, subject, details, anchor, seal, alone=False
                )
                db.execute(
                    audit_backlog_lines.insert().values(file_id=file_id, line=line, seq=record.seq)
                )
            return record

        for _ in range(self.audit_append_attempts):
            try:
                return await self._session(work)
            except _Violation as exc:
                if not exc.key_taken:
                    raise
        raise StorageError(
            f"the audit trail kept moving on: {self.audit_append_attempts} attempts to append"
        )

    @functools.cached_property
    def _append_statements(
        self,
    ) -> tuple[_Statement, _Statement, Callable[[tuple[Any, ...]], tuple[Any, ...]]]:
        """The chain head's statement and the record's INSERT, compiled once for this storage,
        and how a record's row (the columns in :data:`_RECORD_KEYS`' order) is put in the
        INSERT's parameter order: the append runs them on the driver without looking either up
        again (every request that is audited appends)."""
        head = self._compiled(self._chain_head, {"org": ""})
        insert = self._compiled(self._insert_record, dict.fromkeys(_RECORD_KEYS))
        assert sorted(insert.names) == sorted(_RECORD_KEYS)
        order = operator.itemgetter(*(_RECORD_KEYS.index(name) for name in insert.names))
        return head, insert, order

    def _append_in(
        self,
        db: _Db,
        org: str,
        at: float,
        action: str,
        actor: str,
        subject: str,
        details: dict[str, object],
        anchor: AnchorRule | None,
        seal: RecordSeal | None,
        *,
        alone: bool,
    ) -> AuditRecord:
        """Append one record (and its anchor) on ``db``: in a transaction of its own if
        ``alone``, else in the caller's (:meth:`_with_evidence`)."""
        if alone and not self._postgres:
            # SQLite: always in a transaction (taking the write lock before the head is read),
            # even with no anchor due. A lone INSERT committed itself once a locked file let it
            # through, after its caller had given up on it and kept the record in the audit
            # backlog (the hub's record_done): written twice. atomic() asks _SQLiteCall first.
            with db.atomic():
                return self._append_in(
                    db, org, at, action, actor, subject, details, anchor, seal, alone=False
                )
        head_statement, insert_statement, insert_order = self._append_statements
        encoded = json.dumps(details, sort_keys=True)
        head = db.run(head_statement, head_statement.args({"org": org})).first()
        seq, prev = (int(head[0]) + 1, str(head[1])) if head else (1, GENESIS)
        position = int(head[2]) + 1 if head else 1
        latest = _anchor(head[3:]) if head and head[3] is not None else None
        digest = record_hash(seq, at, action, actor, org, subject, details, prev)
        record = AuditRecord(
            seq, at, action, actor, org, subject, details, prev, digest, org_seq=position
        )
        mac = None
        if seal is not None:
            mac = seal(record)
            record = AuditRecord(
                seq, at, action, actor, org, subject, details, prev, digest, mac, position
            )
        row = (seq, at, action, actor, org, subject, encoded, prev, digest, mac, position)
        args = insert_order(row)
        sealed = anchor(record, latest) if anchor is not None else None
        if sealed is None:
            db.run(insert_statement, args)
            return record
        with db.atomic() if alone else contextlib.nullcontext():
            db.run(insert_statement, args)
            db.execute(
                self._insert_anchor,
                {
                    "seq": sealed.seq,
                    "hash": sealed.hash,
                    "mac": sealed.mac,
                    "version": sealed.version,
                    "every": sealed.every,
                    "prev_seq": sealed.prev_seq,
                    "prev_mac": sealed.prev_mac,
                    "macs_from": sealed.macs_from,
                },
            )
        return record

    async def _with_evidence(self, work: Callable[[_Db], T], evidence: Evidence[T] | None) -> T:
        """Run the deletion ``work`` in one transaction with the audit records ``evidence``
        makes of its result, appended last (the next numbers of the chain are taken for as short
        a time as can be): both commit or neither does. No lock, as :meth:`append_audit`: when
        another writer took the number first, the whole transaction is rolled back and run
        again (what it deletes read again)."""
        if evidence is None:
            return await self._transaction(work)

        def both(db: _Db) -> tuple[T, list[AuditRecord]]:
            with db.atomic():
                result = work(db)
                written = [
                    self._append_in(
                        db,
                        entry.org,
                        evidence.at,
                        entry.action,
                        entry.actor,
                        entry.subject,
                        entry.details,
                        evidence.anchor,
                        evidence.seal,
                        alone=False,
                    )
                    for entry in evidence.entries(result)
                ]
            return result, written

        for _ in range(self.audit_append_attempts):
            try:
                result, written = await self._session(both)
            except _Violation as exc:
                if not exc.key_taken:
                    raise
                continue
            evidence.written(written)
            return result
        raise StorageError(
            f"the audit trail kept moving on: {self.audit_append_attempts} attempts to append"
        )

    async def inventory(self) -> Inventory:
        def work(db: _Db) -> Inventory:
            head = db.execute(sa.select(sa.func.max(audit.c.seq))).first()
            stored_sessions = db.execute(sa.select(sessions.c.org_id, sessions.c.session_id)).rows
            stored_recordings = db.execute(
                sa.select(recordings.c.org_id, recordings.c.recording_id)
            ).rows
            return Inventory(
                int(head[0] or 0) if head else 0,
                frozenset((str(r[0]), str(r[1])) for r in stored_sessions),
                frozenset((str(r[0]), str(r[1])) for r in stored_recordings),
            )

        return await self._session(work)

    async def has_audit_trail(self) -> bool:
        """Whether any audit record was written (the audit key must then already exist)."""
        return bool(await self._rows(sa.select(audit.c.seq).limit(1)))

    async def audit_records(self, since: float = 0.0, after: int = 0) -> list[AuditRecord]:
        query = sa.select(*_AUDIT_COLUMNS).where(audit.c.at >= since)
        if after:
            query = query.where(audit.c.seq > after)
        rows = await self._rows(query.order_by(audit.c.seq))
        return [_audit_record(row) for row in rows]

    async def audit_page(self, grant: Grant, after_seq: int, limit: int) -> list[AuditRecord]:
        org = grant.org_id
        rows = await self._rows(
            sa.select(*_AUDIT_COLUMNS)
            .where(audit.c.org == org, audit.c.org_seq > after_seq)
            .order_by(audit.c.org_seq)
            .limit(limit)
        )
        return [_audit_record(row) for row in rows]

    async def audit_search(
        self, grant: Grant, before_seq: int, limit: int, text: str = ""
    ) -> list[AuditRecord]:
        org = grant.org_id
        query = sa.select(*_AUDIT_COLUMNS).where(audit.c.org == org, audit.c.org_seq < before_seq)
        if text:
            needle = text.lower()
            query = query.where(
                sa.or_(
                    *(
                        sa.func.lower(column).contains(needle, autoescape=True)
                        for column in (audit.c.action, audit.c.actor, audit.c.subject)
                    )
                )
            )
        rows = await self._rows(query.order_by(audit.c.org_seq.desc()).limit(limit))
        return [_audit_record(row) for row in rows]

    async def add_audit_counts(self, counts: Sequence[AuditCount]) -> None:
        if not counts:
            return
        insert = self._insert(audit_counts)
        statement = insert.on_conflict_do_update(
            index_elements=[
                audit_counts.c.bucket,
                audit_counts.c.action,
                audit_counts.c.org,
                audit_counts.c.node,
            ],
            set_={
                "count": audit_counts.c.count + insert.excluded.count,
                "detail": insert.excluded.detail,
            },
        )
        rows = [dataclasses.asdict(count) for count in counts]

        def work(db: _Db) -> None:
            with db.atomic():
                for row in rows:
                    db.execute(statement.values(**row))

        await self._session(work)

    async def audit_counts(
        self, since: float = 0.0, grant: Grant | None = None, limit: int = 1000
    ) -> list[AuditCount]:
        query = sa.select(
            audit_counts.c.bucket,
            audit_counts.c.action,
            audit_counts.c.org,
            audit_counts.c.node,
            audit_counts.c.count,
            audit_counts.c.detail,
        ).where(audit_counts.c.bucket >= since)
        if grant is not None:
            query = query.where(audit_counts.c.org == grant.org_id)
        # Whole intervals only: the reader pages by `since` alone, so a page ending inside an
        # interval left the rest of it where no `since` reaches. The page ends with the
        # interval of its `limit`-th row, all of it (a few rows more at most: one per kind and
        # server, and organisation for the operator's view).
        last = query.with_only_columns(audit_counts.c.bucket).order_by(audit_counts.c.bucket)
        last = last.offset(max(0, limit - 1)).limit(1)
        query = query.where(
            sa.or_(
                audit_counts.c.bucket <= last.scalar_subquery(),
                ~sa.exists(last.subquery().select()),
            )
        )
        rows = await self._rows(
            query.order_by(
                audit_counts.c.bucket,
                audit_counts.c.action,
                audit_counts.c.org,
                audit_counts.c.node,
            )
        )
        return [
            AuditCount(float(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]), str(r[5]))
            for r in rows
        ]

    async def purge_audit_counts(self, before: float) -> int:
        return await self._count(audit_counts.delete().where(audit_counts.c.bucket < before))

    async def organisation_count(self) -> int:
        row = await self._row(sa.select(sa.func.count()).select_from(orgs))
        return int(row[0]) if row is not None else 0

    async def anchors(self) -> list[Anchor]:
        rows = await self._rows(sa.select(*_ANCHOR_COLUMNS).order_by(audit_anchors.c.seq))
        return [_anchor(row) for row in rows]

    # Moving an installation

    async def copy_to(self, target: SQLStorage, batch: int = 500) -> dict[str, int]:
        """Copy every row to ``target`` (a freshly migrated, otherwise empty database), table by
        table in one transaction on each side, and return the rows copied per table. The audit
        trail and its anchors are copied as stored, so they verify with the same key. Raises
        :class:`ConfigError` if the target holds data already."""
        seeded = {orgs.name, teams.name, sites.name, site_teams.name}
        copied: dict[str, int] = {}
        async with self._engine.begin() as source, target._engine.begin() as dest:
            for table in metadata.sorted_tables:
                count = (
                    await dest.execute(sa.select(sa.func.count()).select_from(table))
                ).scalar_one()
                if count and (table.name not in seeded or count > 1):
                    raise ConfigError(f"the target database is not empty ({table.name})")
            for table in reversed(metadata.sorted_tables):  # the default org, team and site
                if table.name in seeded:
                    await dest.execute(table.delete())
            for table in metadata.sorted_tables:
                flags = [c.name for c in table.c if c.type._type_affinity is sa.Boolean]
                keys = list(table.primary_key.columns)
                result = await source.stream(sa.select(*table.c).order_by(*keys))
                copied[table.name] = 0
                async for rows in result.partitions(batch):
                    values = [dict(row._mapping) for row in rows]
                    for value in values:
                        for flag in flags:
                            value[flag] = bool(value[flag])
                    await dest.execute(table.insert(), values)
                    copied[table.name] += len(values)
        return copied

    # Data subject requests and legal holds (issue 16)

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
        org_id = grant.org_id
        spellings = list(dict.fromkeys([subject, *forms]))

        def work(db: _Db) -> str:
            known = db.execute(
                sa.select(subject_sessions.c.subject, subject_sessions.c.pseudonym)
                .where(
                    subject_sessions.c.org_id == org_id,
                    # any_form: also any other canonically equivalent form an older version
                    # stored (partly composed), found by the key every spelling has.
                    sa.or_(subject_sessions.c.subject.in_(spellings), _keyed(subject_key(subject)))
                    if any_form
                    else subject_sessions.c.subject.in_(spellings),
                )
                .distinct()
            ).rows
            key = subject_key(subject)
            known = [row for row in known if row[0] in spellings or subject_key(str(row[0])) == key]
            # The subject as given first, then the other forms in their order, then the rest.
            found = sorted(
                ((str(row[0]), str(row[1])) for row in known),
                key=lambda row: (
                    spellings.index(row[0]) if row[0] in spellings else len(spellings),
                    row,
                ),
            )
            stored, chosen = found[0] if found else (subject, pseudonym)
            db.execute(
                subject_sessions.insert().values(
                    session_id=session_id,
                    org_id=org_id,
                    subject=stored,
                    pseudonym=chosen,
                    subject_key=subject_key(stored),
                )
            )
            return chosen

        return await self._transaction(work)

    async def subject_sessions(self, grant: Grant, subject: str) -> list[tuple[str, str]]:
        rows = await self._rows(_links_of(grant.org_id, subject))
        return [(str(row[0]), str(row[1])) for row in rows]

    async def stored_forms(self, grant: Grant, subject: str) -> tuple[str, ...]:
        key = subject_key(subject)
        rows = await self._rows(
            sa.select(subject_sessions.c.subject)
            .where(subject_sessions.c.org_id == grant.org_id, _keyed(key))
            .distinct()
        )
        held = await self._rows(
            sa.select(legal_holds.c.target).where(
                legal_holds.c.org_id == grant.org_id, legal_holds.c.kind == "subject"
            )
        )
        found = {str(row[0]) for row in rows if subject_key(str(row[0])) == key}
        found.update(str(row[0]) for row in held if subject_key(str(row[0])) == key)
        return tuple(sorted(found))

    async def subject_of_session(self, session_id: str) -> tuple[str, str, str] | None:
        row = await self._row(
            sa.select(
                subject_sessions.c.org_id, subject_sessions.c.subject, subject_sessions.c.pseudonym
            ).where(subject_sessions.c.session_id == session_id)
        )
        return None if row is None else (str(row[0]), str(row[1]), str(row[2]))

    async def recordings_of_sessions(
        self, grant: Grant, session_ids: Sequence[str], now: float | None = None
    ) -> list[RecordingRecord]:
        if not session_ids:
            return []
        org_id = grant.org_id
        if now is None:
            rows = await self._rows(
                _recordings_of(
                    org_id, session_ids, skew=self.retention_clock_skew, postgres=self._postgres
                )
            )
            return [_recording(row) for row in rows]

        def work(db: _Db) -> list[Any]:  # the holds and the purges' clock read with them
            return db.execute(
                _recordings_of(
                    org_id,
                    session_ids,
                    now,
                    db,
                    skew=self.retention_clock_skew,
                    postgres=self._postgres,
                )
            ).rows

        return [_recording(row) for row in await self._transaction(work)]

    async def account_activity(
        self,
        grant: Grant,
        username: str,
        since: float,
        limit: int,
        own: Sequence[str],
        changes: Sequence[str],
    ) -> list[AuditRecord]:
        # Each half through its own index (audit_org_actor, audit_org_subject): a sign-in reads
        # the account's records, never the organisation's whole trail of the window. Each action
        # has its own limit: a flood of one (the one who took the account over signing in again
        # and again, or changing its role back and forth) cannot push another (its own
        # authenticator enrolled, the reset that let it in) out of the list. The claim of a
        # temporary password (a ``password_changed`` naming whose it replaced) is counted apart
        # from the account's other password changes: whoever claimed it, its chooser before
        # the owner, changing the password again and again in the owner's name pushed the claim
        # out of the owner's sight.
        claim = sa.case(
            (audit.c.details.contains(f'"{CLAIM_DETAIL}"', autoescape=True), 1), else_=0
        )
        found: list[AuditRecord] = []
        for column, actions in ((audit.c.actor, own), (audit.c.subject, changes)):
            if not actions:
                continue
            rank = sa.func.row_number().over(
                partition_by=(audit.c.action, claim), order_by=audit.c.org_seq.desc()
            )
            # The subject half names audit_org_subject's condition (the index is partial):
            # a username is never empty, so nothing it would find is left out.
            named = (AUDIT_SUBJECT_NAMED,) if column is audit.c.subject else ()
            ranked = (
                sa.select(*_AUDIT_COLUMNS, rank.label("rank"))
                .where(
                    audit.c.org == grant.org_id,
                    column == username,
                    *named,
                    audit.c.at >= since,
                    audit.c.action.in_(list(actions)),
                )
                .subquery()
            )
            rows = await self._rows(
                sa.select(*(ranked.c[each.name] for each in _AUDIT_COLUMNS)).where(
                    ranked.c.rank <= limit
                )
            )
            found += (_audit_record(row) for row in rows)
        return sorted(found, key=lambda record: record.org_seq, reverse=True)

    async def audit_concerning(
        self, grant: Grant, subjects: Sequence[str], actors: Sequence[str]
    ) -> list[AuditRecord]:
        if not subjects and not actors:
            return []
        rows = await self._rows(
            _audit_about(grant.org_id, subjects, actors, postgres=self._postgres)
        )
        return [_audit_record(row) for row in rows]

    async def erase_subject(
        self,
        grant: Grant,
        subject: str,
        session_ids: Sequence[str],
        evidence: Evidence[SubjectErasure] | None = None,
        forms: Sequence[str] = (),
    ) -> SubjectErasure:
        org_id = grant.org_id
        ids = list(session_ids)
        spellings = list(dict.fromkeys([subject, *forms]))
        postgres = self._postgres

        def of_these(column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
            return _one_of(column, ids, postgres=postgres)  # any number of sessions

        def work(db: _Db) -> SubjectErasure:
            # (The sessions are ended: the caller refuses a live one, so no recording of
            # theirs starts meanwhile.)
            gated = db.execute(
                sa.select(recordings.c.recording_id).where(
                    recordings.c.org_id == org_id, of_these(recordings.c.session_id)
                )
            ).rows
            self._recording_gate(db, [str(row[0]) for row in gated], exclusive=True)
            # Checked again here, in the erasure's transaction: a hold placed after the caller
            # checked (another admin, another server) was erased over.
            held = db.execute(
                sa.select(legal_holds.c.kind, legal_holds.c.target)
                .where(
                    legal_holds.c.org_id == org_id,
                    sa.or_(
                        sa.and_(
                            legal_holds.c.kind == "subject",
                            sa.or_(
                                legal_holds.c.target.in_(spellings),
                                of_these(legal_holds.c.target),
                            ),
                        ),
                        sa.and_(
                            legal_holds.c.kind == "recording",
                            legal_holds.c.target.in_(
                                sa.select(recordings.c.recording_id).where(
                                    recordings.c.org_id == org_id,
                                    of_these(recordings.c.session_id),
                                )
                            ),
                        ),
                    ),
                )
                .limit(1)
            ).first()
            if held is not None:
                raise ConflictError(
                    f"under legal hold (a {held[0]} hold was placed meanwhile): nothing erased"
                )
            erased = db.execute(
                recordings.delete()
                .where(recordings.c.org_id == org_id, of_these(recordings.c.session_id))
                .returning(recordings.c.recording_id)
            ).rows
            ended = db.execute(
                sessions.delete()
                .where(sessions.c.org_id == org_id, of_these(sessions.c.session_id))
                .returning(sessions.c.session_id)
            ).rows
            db.execute(
                join_codes.delete().where(
                    join_codes.c.org_id == org_id, of_these(join_codes.c.session_id)
                )
            )
            # The links of these sessions only: one a new session of the customer made since the
            # caller looked stays, and leads to that session (erased by the next request).
            links = db.execute(
                subject_sessions.delete().where(
                    subject_sessions.c.org_id == org_id,
                    subject_sessions.c.subject.in_(spellings),
                    of_these(subject_sessions.c.session_id),
                )
            ).rowcount
            return SubjectErasure(
                sessions=tuple(sorted(str(r[0]) for r in ended)),
                recordings=tuple(sorted(str(r[0]) for r in erased)),
                links=int(links or 0),
            )

        erased = await self._with_evidence(work, evidence)
        self._deleted_from(recordings, recording_frames, sessions, join_codes, subject_sessions)
        await self._empty_wal()
        return erased

    async def put_hold(self, grant: Grant, hold: HoldRecord) -> bool:
        if hold.org_id != grant.org_id:
            raise NotFoundError("not found")
        try:
            await self._count(legal_holds.insert().values(**dataclasses.asdict(hold)))
        except _Violation:
            return False
        return True

    async def delete_hold(self, grant: Grant, kind: str, target: str) -> HoldRecord | None:
        org_id = grant.org_id
        rows = await self._rows(
            legal_holds.delete()
            .where(
                legal_holds.c.org_id == org_id,
                legal_holds.c.kind == kind,
                legal_holds.c.target == target,
            )
            .returning(*legal_holds.c)
        )
        if not rows:
            return None
        self._deleted_from(legal_holds)  # a subject hold's target is the customer's sub
        return _record(HoldRecord, rows[0])

    async def list_holds(self, grant: Grant) -> list[HoldRecord]:
        org_id = grant.org_id
        rows = await self._rows(
            sa.select(*legal_holds.c)
            .where(legal_holds.c.org_id == org_id)
            .order_by(legal_holds.c.placed_at, legal_holds.c.kind, legal_holds.c.target)
        )
        return [_record(HoldRecord, row) for row in rows]

    # Training before live sessions (tandem.training)

    async def latest_policy(self, grant: Grant) -> PolicyRecord | None:
        row = await self._row(
            sa.select(*training_policies.c)
            .where(training_policies.c.org_id == grant.org_id)
            .order_by(training_policies.c.version.desc())
            .limit(1)
        )
        return None if row is None else _record(PolicyRecord, row)

    async def add_policy(
        self, grant: Grant, text: str, created_by: str, created_at: float, first_version: int
    ) -> PolicyRecord:
        org_id = grant.org_id

        def work(db: _Db) -> PolicyRecord:
            newest = db.execute(
                sa.select(sa.func.max(training_policies.c.version)).where(
                    training_policies.c.org_id == org_id
                )
            ).first()
            last = newest[0] if newest is not None else None
            version = max(first_version, int(last) + 1 if last is not None else first_version)
            record = PolicyRecord(org_id, version, text, created_at, created_by)
            db.execute(training_policies.insert().values(**dataclasses.asdict(record)))
            return record

        try:
            return await self._transaction(work)
        except _Violation as exc:
            if not exc.key_taken:
                raise
            # Another admin's version took the number between this one's read and its write
            # (PostgreSQL, two requests at one instant): its words, not the database's.
            raise ConflictError(
                "another admin published a new version of the policy at the same moment: "
                "reload the policy, and publish yours again if it should replace that one"
            ) from None

    async def acknowledge_policy(
        self, grant: Grant, username: str, version: int, at: float
    ) -> None:
        org_id = grant.org_id

        def work(db: _Db) -> None:
            db.execute(
                policy_acknowledgements.delete().where(
                    policy_acknowledgements.c.username == username
                )
            )
            db.execute(
                policy_acknowledgements.insert().values(
                    username=username, org_id=org_id, version=version, acknowledged_at=at
                )
            )

        await self._transaction(work)

    async def acknowledgements(self, grant: Grant) -> dict[str, int]:
        rows = await self._rows(
            sa.select(policy_acknowledgements.c.username, policy_acknowledgements.c.version).where(
                policy_acknowledgements.c.org_id == grant.org_id
            )
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def training_interval(self, grant: Grant) -> int | None:
        row = await self._row(
            sa.select(training_settings.c.interval_days).where(
                training_settings.c.org_id == grant.org_id
            )
        )
        return None if row is None else int(row[0])

    async def set_training_interval(self, grant: Grant, days: int | None) -> None:
        org_id = grant.org_id

        def work(db: _Db) -> None:
            db.execute(training_settings.delete().where(training_settings.c.org_id == org_id))
            if days is not None:
                db.execute(training_settings.insert().values(org_id=org_id, interval_days=days))

        await self._transaction(work)

    async def add_training(self, grant: Grant, training: TrainingRecord) -> None:
        if training.org_id != grant.org_id:
            raise NotFoundError("not found")
        await self._count(training_completions.insert().values(**dataclasses.asdict(training)))

    async def latest_trainings(
        self, grant: Grant, username: str | None = None
    ) -> dict[str, TrainingRecord]:
        statement = (
            sa.select(*training_completions.c)
            .where(training_completions.c.org_id == grant.org_id)
            .order_by(training_completions.c.completed_at)
        )
        if username is not None:
            statement = statement.where(training_completions.c.username == username)
        latest: dict[str, TrainingRecord] = {}
        for row in await self._rows(statement):
            record = _record(TrainingRecord, row)
            latest[record.username] = record  # ordered oldest first: the newest stays
        return latest

    async def start_practice(self, grant: Grant, practice: PracticeRecord) -> None:
        if practice.org_id != grant.org_id:
            raise NotFoundError("not found")
        await self._count(
            practice_sessions.insert().values(
                _fields_of(practice, practice_sessions) | {"steps": ",".join(practice.steps)}
            )
        )

    async def end_practice(self, session_id: str, steps: Sequence[str], ended_at: float) -> None:
        await self._count(
            practice_sessions.update()
            .where(practice_sessions.c.session_id == session_id)
            .values(steps=",".join(steps), ended_at=ended_at)
        )

    async def get_practice(self, session_id: str) -> PracticeRecord | None:
        row = await self._row(
            sa.select(*practice_sessions.c).where(practice_sessions.c.session_id == session_id)
        )
        return None if row is None else _practice(row)

    async def latest_practice(self, grant: Grant, username: str) -> PracticeRecord | None:
        row = await self._row(
            sa.select(*practice_sessions.c)
            .where(
                practice_sessions.c.org_id == grant.org_id,
                practice_sessions.c.username == username,
                practice_sessions.c.ended_at.is_not(None),
            )
            .order_by(practice_sessions.c.started_at.desc())
            .limit(1)
        )
        return None if row is None else _practice(row)

    async def use_practice(self, session_id: str) -> bool:
        return (
            await self._count(
                practice_sessions.update()
                .where(
                    practice_sessions.c.session_id == session_id,
                    practice_sessions.c.used == sa.false(),
                )
                .values(used=True)
            )
            > 0
        )

    # Operations: readiness and crash recovery (tandem.server.readiness, tandem.processes)

    async def ping(self) -> None:
        await self._row(sa.select(sa.literal(1)))

    async def register_process(self, node: str, identity: str, now: float) -> None:
        await self._count(
            processes.insert(),
            {"node": node, "identity": identity, "started_at": now, "heartbeat_at": now},
        )

    async def heartbeat(self, node: str, now: float) -> bool:
        return (
            await self._count(
                processes.update().where(processes.c.node == node).values(heartbeat_at=now)
            )
            > 0
        )

    async def unregister_process(self, node: str) -> None:
        await self._count(processes.delete().where(processes.c.node == node))

    async def note_installation(self, name: str, value: str, at: float) -> None:
        await self._count(
            self._insert(installation_notes)
            .values(name=name, value=value, noted_at=at)
            .on_conflict_do_nothing(index_elements=[installation_notes.c.name])
        )

    async def installation_note(self, name: str) -> str | None:
        row = await self._row(
            sa.select(installation_notes.c.value).where(installation_notes.c.name == name)
        )
        return None if row is None else str(row[0])

    async def forget_installation_note(self, name: str) -> bool:
        return (
            await self._count(installation_notes.delete().where(installation_notes.c.name == name))
            > 0
        )

    async def close_lost_processes(
        self,
        node: str,
        identity: str,
        lost_before: float,
        now: float,
        evidence: Evidence[tuple[list[SessionRecord], list[RecordingRecord]]] | None = None,
    ) -> tuple[list[SessionRecord], list[RecordingRecord]]:
        def work(db: _Db) -> tuple[list[SessionRecord], list[RecordingRecord]]:
            db.execute(
                processes.delete().where(
                    processes.c.node != node,
                    sa.or_(
                        processes.c.heartbeat_at < lost_before, processes.c.identity == identity
                    ),
                )
            )
            alive = sa.select(processes.c.node)
            # Handed over by a stopping server: the next process may resume them until their
            # window passes; then they end like any session nobody holds, for another reason.
            expired = db.execute(
                suspended_sessions.delete()
                .where(suspended_sessions.c.expires_at <= now)
                .returning(suspended_sessions.c.session_id)
            ).rows
            not_resumed = {str(row["session_id"]) for row in expired}
            if expired:
                self._deleted_from(suspended_sessions)
            orphans = (
                sessions.c.ended_at.is_(None)
                & sessions.c.node.not_in(alive)
                & sessions.c.session_id.not_in(sa.select(suspended_sessions.c.session_id))
            )
            lost = []
            for row in db.execute(sa.select(*sessions.c).where(orphans)).rows:
                record = _session(row)
                reason = "server_shutdown" if record.session_id in not_resumed else "server_lost"
                lost.append(dataclasses.replace(record, end_reason=reason))
            for reason in ("server_lost", "server_shutdown"):
                ids = [record.session_id for record in lost if record.end_reason == reason]
                if ids:
                    db.execute(
                        sessions.update()
                        .where(
                            _one_of(sessions.c.session_id, ids, postgres=self._postgres),
                            sessions.c.ended_at.is_(None),
                        )
                        .values(ended_at=now, end_reason=reason)
                    )
                    db.execute(
                        join_codes.delete().where(
                            _one_of(join_codes.c.session_id, ids, postgres=self._postgres)
                        )
                    )
                    self._deleted_from(join_codes)
            still_live = sa.select(sessions.c.session_id).where(sessions.c.ended_at.is_(None))
            running = recordings.c.ended_at.is_(None) & recordings.c.session_id.not_in(still_live)
            found = db.execute(sa.select(*recordings.c).where(running))
            stopped = [_recording(row) for row in found.rows]
            if stopped:
                db.execute(
                    recordings.update()
                    .where(
                        _one_of(
                            recordings.c.recording_id,
                            [r.recording_id for r in stopped],
                            postgres=self._postgres,
                        ),
                        recordings.c.ended_at.is_(None),
                    )
                    .values(ended_at=now, end_reason="interrupted")
                )
            return lost, stopped

        return await self._with_evidence(work, evidence)

    async def suspend_session(self, suspended: SuspendedSession) -> None:
        def work(db: _Db) -> None:
            db.execute(suspended_sessions.insert(), dataclasses.asdict(suspended))
            db.execute(
                sessions.update()
                .where(sessions.c.session_id == suspended.session_id)
                .values(node="", state=suspended.state)
            )

        await self._transaction(work)

    async def withdraw_hand_over(
        self, session_id: str, now: float, evidence: Evidence[bool] | None = None
    ) -> bool:
        def work(db: _Db) -> bool:
            taken = db.execute(
                suspended_sessions.delete().where(suspended_sessions.c.session_id == session_id)
            ).rowcount
            if not taken:
                return False
            self._deleted_from(suspended_sessions)
            db.execute(
                sessions.update()
                .where(sessions.c.session_id == session_id, sessions.c.ended_at.is_(None))
                .values(ended_at=now, end_reason="server_shutdown")
            )
            db.execute(join_codes.delete().where(join_codes.c.session_id == session_id))
            self._deleted_from(join_codes)
            return True

        return await self._with_evidence(work, evidence)

    async def get_suspended(self, session_id: str) -> SuspendedSession | None:
        row = await self._row(
            sa.select(*suspended_sessions.c).where(suspended_sessions.c.session_id == session_id)
        )
        return _suspended(row) if row else None

    async def take_suspended(
        self, session_id: str, node: str, now: float
    ) -> SuspendedSession | None:
        def work(db: _Db) -> SuspendedSession | None:
            taken = db.execute(
                suspended_sessions.delete()
                .where(
                    suspended_sessions.c.session_id == session_id,
                    suspended_sessions.c.expires_at > now,
                )
                .returning(*suspended_sessions.c)
            ).first()
            if taken is None:
                return None
            self._deleted_from(suspended_sessions)
            db.execute(
                sessions.update()
                .where(sessions.c.session_id == session_id, sessions.c.ended_at.is_(None))
                .values(node=node)
            )
            return _suspended(taken)

        return await self._transaction(work)


def _practice(row: Any) -> PracticeRecord:
    return _record(
        PracticeRecord, row, steps=tuple(step for step in str(row["steps"]).split(",") if step)
    )


def _one_of(
    column: sa.ColumnElement[Any], values: Iterable[str], *, postgres: bool
) -> sa.ColumnElement[bool]:
    """``column`` is one of ``values``, however many: all bound as one parameter (PostgreSQL: a
    text array, ``= ANY``; SQLite: a JSON array, ``IN (SELECT value FROM json_each(?))``). An
    ``IN`` list binds one parameter per value, and past 32 767 asyncpg refuses the statement
    (SQLite past ``SQLITE_MAX_VARIABLE_NUMBER``, 32 766 by default): the export of a customer
    with that many recordings, and the erasure of one with that many sessions, failed at every
    try. For lists of stored ids, which grow with the data; the same SQL whatever their number,
    so its compiled shape is shared too.

    An id matches only itself, as in an ``IN`` list: SQLite's ``json_each`` ends a string at an
    escaped NUL (``"s-1\\u0000x"`` matched ``s-1``) and joins a surrogate pair spelled as two
    characters into the character it encodes, so a value with a NUL is compared in an ``IN``
    list of its own (PostgreSQL: none, its text holds no NUL), and one with a surrogate matches
    nothing (neither driver stores one)."""
    listed = [value for value in values if not _SURROGATE.search(value)]
    odd = [value for value in listed if "\x00" in value]
    if odd:
        listed = [value for value in listed if "\x00" not in value]
    if postgres:
        return column == sa.any_(sa.bindparam(None, listed, type_=ARRAY(sa.Text())))
    each = sa.func.json_each(sa.bindparam(None, json.dumps(listed))).table_valued("value")
    matched = column.in_(sa.select(each.c.value))
    return sa.or_(matched, column.in_(odd)) if odd else matched


_SURROGATE = re.compile("[\ud800-\udfff]")


def _links_of(org_id: str, subject: str) -> sa.Select[Any]:
    """(session id, pseudonym) of the customer ``subject``'s links, oldest session first."""
    return (
        sa.select(subject_sessions.c.session_id, subject_sessions.c.pseudonym)
        .select_from(
            subject_sessions.outerjoin(
                sessions, sessions.c.session_id == subject_sessions.c.session_id
            )
        )
        .where(subject_sessions.c.org_id == org_id, subject_sessions.c.subject == subject)
        .order_by(sessions.c.created_at, subject_sessions.c.session_id)
    )


def _recordings_of(
    org_id: str,
    session_ids: Sequence[str],
    now: float | None = None,
    db: _Db | None = None,
    *,
    skew: float,
    postgres: bool,
) -> sa.Select[Any]:
    """The organisation's recordings of the sessions, oldest first; given ``now`` (and ``db``,
    to read the holds and the purges' clock, believed up to ``skew`` seconds ahead), without
    those past their retention then (:func:`_expired`)."""
    wanted = sa.and_(
        recordings.c.org_id == org_id,
        _one_of(recordings.c.session_id, session_ids, postgres=postgres),
    )
    if now is not None and db is not None:
        judged = _retention_clock(db, now, skew)
        wanted = sa.and_(wanted, ~_expired(recordings, judged, _held_forms(db)))
    return (
        sa.select(*_RECORDING_COLUMNS)
        .where(wanted)
        .order_by(recordings.c.started_at, recordings.c.recording_id)
    )


def _audit_about(
    org_id: str, subjects: Sequence[str], actors: Sequence[str], *, postgres: bool
) -> sa.Select[Any]:
    """The organisation's records concerning ``subjects`` or by ``actors``, in its order: the
    union of a scan of ``audit_org_subject`` (its condition named: the index is partial, and an
    empty subject concerns no one; the subjects asked for are session and recording ids) and
    one of ``audit_org_actor``. Read as one ``OR``, SQLite walked the organisation's every
    record in ``audit_org_position`` instead, for its order (tests/storage/test_audit_plans.py).
    ``UNION`` drops a record both scans find (its whole row, ``seq`` included, is the same)."""
    by_subject = sa.select(*_AUDIT_COLUMNS).where(
        audit.c.org == org_id,
        AUDIT_SUBJECT_NAMED,
        _one_of(audit.c.subject, [s for s in subjects if s], postgres=postgres),
    )
    by_actor = sa.select(*_AUDIT_COLUMNS).where(
        audit.c.org == org_id, _one_of(audit.c.actor, actors, postgres=postgres)
    )
    either = sa.union(by_subject, by_actor).subquery()
    return sa.select(*either.c).order_by(either.c.org_seq)


def _recording_held(
    org_id: sa.ColumnElement[Any], recording_id: sa.ColumnElement[Any]
) -> sa.ColumnElement[bool]:
    """A hold on this recording itself."""
    return sa.exists().where(
        legal_holds.c.org_id == org_id,
        legal_holds.c.kind == "recording",
        legal_holds.c.target == recording_id,
    )


PURGED_AT_NOTE = "recordings_purged_at"
"""The installation note (its ``noted_at``) of the latest ``now`` a recordings' purge ran with
(:func:`_retention_clock`)."""


RECORDING_GATE_CLASS = 0x7464_7263
"""PostgreSQL: the first key of the recordings' gates (:meth:`SQLStorage._recording_gate`),
advisory locks of the two-key form, which share no keys with the one-key form."""


RECORDING_GATES = 1024
"""PostgreSQL: how many gates the recordings share (:func:`_gate_key`). With a gate per
recording, a customer's recordings could not be counted on to fit the gates' keys in one
transaction's locks; recordings that share a gate only wait for each other's erasure (a
read for an erasure under way of another recording of its gate). Not a setting: every server
of a cluster must name a recording's gate alike, or their readers and erasures would not queue
together."""

GATE_BUDGET = 32
"""PostgreSQL: the most gates one transaction takes (:meth:`SQLStorage._recording_gate`); one
that names more takes a wide lock instead. Each advisory lock is an entry of the shared lock
table, ``max_locks_per_transaction`` (64 by default) times the connections for the whole
cluster: with a gate each, the erasure or the export of a customer recorded more often than
that failed at every try (*out of shared memory*), and while it tried so could any other
transaction needing a lock; with the 1 024 gates shared, a few large customers' erasures or
exports at once could still fill it. Half the default, for the table locks a transaction takes
beside. Servers of a cluster may differ in it (each transaction's locks cover what it reads or
erases whichever form it takes), but it is no operator's choice either."""

EVERY_RECORDING = RECORDING_GATES
"""PostgreSQL: the wide lock every gated transaction takes first: shared, and exclusive by an
erasure of more than :data:`GATE_BUDGET` gates' recordings (it waits for every reader and
erasure, and they for it)."""

MANY_READ = RECORDING_GATES + 1
"""PostgreSQL: the wide lock of a reader of more than :data:`GATE_BUDGET` gates' recordings
(shared), which every erasure of fewer takes exclusive."""


def _gate_key(recording_id: str) -> int:
    """The second key of a recording's gate: its id's hash, one of :data:`RECORDING_GATES`."""
    digest = hashlib.sha256(recording_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") % RECORDING_GATES


def _retention_clock(db: _Db, now: float, skew: float) -> float:
    """The moment a recording's retention is judged at by a server whose clock says ``now``:
    the latest purge's clock when that is ahead, up to ``skew`` seconds
    (``max_retention_clock_skew_seconds``: :attr:`SQLStorage.retention_clock_skew`). A
    recording a purge found expired but left (held by a reader, or by a legal hold lifted
    since) was played on by a server whose clock is behind, and held from the next purge by
    its back-to-back playbacks, for as long as its clock was behind."""
    row = db.execute(
        sa.select(installation_notes.c.noted_at).where(installation_notes.c.name == PURGED_AT_NOTE)
    ).first()
    if row is None:
        return now
    return max(now, min(float(row[0]), now + skew))


def _expired(
    table: sa.FromClause, now: float, forms: Sequence[tuple[str, str]]
) -> sa.ColumnElement[bool]:
    """The recordings of ``table`` (``recordings`` or an alias of it) past their organisation's
    retention at ``now`` and under no legal hold (``forms``: :func:`_held_forms`): what the
    retention purge erases, and what is given out no more meanwhile."""
    retention = (
        sa.select(orgs.c.retention_days).where(orgs.c.org_id == table.c.org_id).scalar_subquery()
    )
    return sa.and_(
        table.c.ended_at.isnot(None),
        table.c.ended_at < sa.literal(now) - DAY * retention,
        ~_recording_held(table.c.org_id, table.c.recording_id),
        ~_customer_held(table.c.org_id, table.c.session_id, forms),
    )


def _keyed(key: str) -> sa.ColumnElement[bool]:
    """The links whose NFC key is ``key``, and those written with no key (a server of a version
    before revision 0015 still running while another upgraded the database, a rolling upgrade):
    the caller keeps those of them whose ``subject`` has that key."""
    return sa.or_(subject_sessions.c.subject_key == key, subject_sessions.c.subject_key.is_(None))


def _held_forms(db: _Db) -> list[tuple[str, str]]:
    """(organisation, spelling) of each subject hold's target in the other Unicode forms of
    the same text (:func:`canonical_forms`): a hold an older version stored as typed, in
    another form than the one its customer's sessions are stored under, compared as stored,
    held nothing from retention's purge or a recording's erasure. Holds are few."""
    rows = db.execute(
        sa.select(legal_holds.c.org_id, legal_holds.c.target).where(legal_holds.c.kind == "subject")
    ).rows
    forms = {
        (str(org), form)
        for org, target in rows
        for form in canonical_forms(str(target))
        if form != target
    }
    # A customer an older version stored in a form that is neither NFC nor NFD (partly
    # composed): found by the key every spelling of it has.
    keys = list({(str(org), subject_key(str(target))) for org, target in rows})
    if keys:  # links written with no key (below)
        unkeyed = db.execute(
            sa.select(subject_sessions.c.org_id, subject_sessions.c.subject)
            .where(subject_sessions.c.subject_key.is_(None))
            .distinct()
        ).rows
        wanted = set(keys)
        forms.update(
            (str(org), str(subject))
            for org, subject in unkeyed
            if (str(org), subject_key(str(subject))) in wanted
        )
    for start in range(0, len(keys), 500):
        stored = db.execute(
            sa.select(subject_sessions.c.org_id, subject_sessions.c.subject)
            .where(
                sa.tuple_(subject_sessions.c.org_id, subject_sessions.c.subject_key).in_(
                    keys[start : start + 500]
                )
            )
            .distinct()
        ).rows
        forms.update((str(org), str(subject)) for org, subject in stored)
    targets = {(str(org), str(target)) for org, target in rows}
    return sorted(forms - targets)


def _customer_held(
    org_id: sa.ColumnElement[Any],
    session_id: sa.ColumnElement[Any],
    forms: Sequence[tuple[str, str]] = (),
) -> sa.ColumnElement[bool]:
    """A hold on the customer the session served (``forms``: :func:`_held_forms`). A session
    started without a customer token has no ``sub``: its customer is named by the session's id
    (tandem.subjects), so a subject hold of its organisation on that id holds it too
    (tandem.subjects.recording_hold)."""
    on_its_id = sa.exists().where(
        legal_holds.c.org_id == org_id,
        legal_holds.c.kind == "subject",
        legal_holds.c.target == session_id,
    )
    on_subject = sa.exists().where(
        subject_sessions.c.session_id == session_id,
        legal_holds.c.org_id == subject_sessions.c.org_id,
        legal_holds.c.kind == "subject",
        legal_holds.c.target == subject_sessions.c.subject,
    )
    if not forms:
        return sa.or_(on_its_id, on_subject)
    in_another_form = sa.exists().where(
        subject_sessions.c.session_id == session_id,
        sa.tuple_(subject_sessions.c.org_id, subject_sessions.c.subject).in_(list(forms)),
    )
    return sa.or_(on_its_id, on_subject, in_another_form)


def _session_held(
    org_id: sa.ColumnElement[Any],
    session_id: sa.ColumnElement[Any],
    forms: Sequence[tuple[str, str]] = (),
) -> sa.ColumnElement[bool]:
    """A hold on the customer the session served (:func:`_customer_held`), or on one of its
    recordings."""
    on_recording = sa.exists().where(
        recordings.c.session_id == session_id,
        legal_holds.c.org_id == recordings.c.org_id,
        legal_holds.c.kind == "recording",
        legal_holds.c.target == recordings.c.recording_id,
    )
    return sa.or_(_customer_held(org_id, session_id, forms), on_recording)


_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    # Erased rows (ended sessions, codes, recordings) are overwritten, not left in free pages.
    "PRAGMA secure_delete=ON",
)


def _sqlite_pragmas(busy_ms: int) -> tuple[str, ...]:
    return (*_SQLITE_PRAGMAS, f"PRAGMA busy_timeout={busy_ms}")


class StorageThread(concurrent.futures.Executor):
    """The SQLite connection's one thread: the calls given to it run there, in order.

    A daemon thread, unlike a ThreadPoolExecutor's, whose threads the interpreter joins at its
    exit: with the database file locked by another program, a statement waits there up to
    ``sqlite_busy_seconds`` (and each queued behind it its turn), and the process outlived its
    stop's ``--shutdown-timeout`` by that long after everything else had ended. What such a
    statement would have written is not written (SQLite rolls back what it never committed)."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[_Call | _Hop | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._calls.put(_Call(future, functools.partial(fn, *args, **kwargs)))
        return future

    def run(self, call: _SQLiteCall, fn: Callable[..., T], /, *args: Any) -> asyncio.Future[T]:
        """``fn(*args)`` in the thread, its result (or error) in the future answered (on the
        calling event loop). Without :meth:`submit`'s two futures, chained across threads
        through callbacks and a condition each: this is the hop every storage call makes. Not
        run at all if ``call`` was abandoned before its turn came."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()
        self._calls.put(_Hop(loop, answer, call, functools.partial(fn, *args)))
        return answer

    def _run(self) -> None:
        while (call := self._calls.get()) is not None:
            if isinstance(call, _Hop):
                call.run()
                del call
                continue
            if not call.future.set_running_or_notify_cancel():
                continue
            try:
                result = call.work()
            except BaseException as exc:  # the caller's, as ThreadPoolExecutor hands it over
                call.future.set_exception(exc)
            else:
                call.future.set_result(result)
            del call

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._calls.put(None)
        if wait:
            self._thread.join()


class _SQLiteCall:
    """One storage call's transaction, between its caller (on the event loop) and the worker
    thread: the caller may give it up (:meth:`abandon`, its await cancelled) until the thread
    begins its COMMIT (:meth:`commit`), never after. The thread is a daemon and goes on with a
    statement waiting for a locked file after its caller stopped waiting; without this, what it
    wrote landed once the lock went, though the caller had been told it failed (a stop's
    hand-over cut and audited ``session_not_handed_over``, yet stored; ``server_stopped``
    written and kept in the backlog too). A COMMIT already under way (milliseconds: the write
    lock is held) still lands."""

    __slots__ = ("_abandoned", "_committing", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._abandoned = False
        self._committing = False

    def abandon(self) -> None:
        with self._lock:
            if not self._committing:
                self._abandoned = True

    @property
    def abandoned(self) -> bool:
        with self._lock:
            return self._abandoned

    def commit(self) -> bool:
        """Whether the transaction may commit (then it can no longer be abandoned)."""
        with self._lock:
            if self._abandoned:
                return False
            self._committing = True
            return True


@dataclasses.dataclass(slots=True)
class _Call:
    future: concurrent.futures.Future[Any]
    work: Callable[[], Any]


class _Hop:
    """A storage call handed to the worker thread by :meth:`StorageThread.run`."""

    __slots__ = ("answer", "call", "loop", "work")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        answer: asyncio.Future[Any],
        call: _SQLiteCall,
        work: Callable[[], Any],
    ) -> None:
        self.loop = loop
        self.answer = answer
        self.call = call
        self.work = work

    def run(self) -> None:
        if self.call.abandoned:  # its caller stopped waiting before its turn: not run
            return
        try:
            result = self.work()
        except BaseException as exc:  # the caller's, as ThreadPoolExecutor hands it over
            self._answer(_fail, exc)
        else:
            self._answer(_succeed, result)

    def _answer(self, settle: Callable[[asyncio.Future[Any], Any], None], value: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            self.loop.call_soon_threadsafe(settle, self.answer, value)


def _succeed(answer: asyncio.Future[Any], result: Any) -> None:
    if not answer.done():  # not cancelled meanwhile
        answer.set_result(result)


def _fail(answer: asyncio.Future[Any], exc: BaseException) -> None:
    if answer.done():
        return
    if isinstance(exc, StopIteration):
        # asyncio refuses it into a future (TypeError, in this callback): the answer was
        # never set, and its caller waited forever.
        wrapped = RuntimeError(f"a storage call raised {type(exc).__name__}")
        wrapped.__cause__ = exc
        exc = wrapped
    answer.set_exception(exc)


def _sqlite_connect(path: Path, busy_ms: int) -> sqlite3.Connection:
    """The storage's own connection (opened in, and only used by, its worker thread)."""
    # isolation_level=None: the driver begins no transaction of its own; they begin as
    # SQLStorage._transaction says.
    connection = sqlite3.connect(path, isolation_level=None)
    connection.row_factory = sqlite3.Row
    for pragma in _sqlite_pragmas(busy_ms):
        connection.execute(pragma)
    try:
        _sqlite_has_json(connection)
    except BaseException:
        connection.close()
        raise
    return connection


def _sqlite_has_json(connection: sqlite3.Connection) -> None:
    """Refuse (ConfigError) a SQLite built without its JSON functions: a customer's export and
    erasure bind their id lists as a JSON array read with ``json_each`` (:func:`_one_of`), and
    without it every one failed when asked, long after the start."""
    try:
        connection.execute("SELECT count(*) FROM json_each('[]')").fetchone()
    except sqlite3.Error as exc:
        raise ConfigError(
            f"this SQLite ({sqlite3.sqlite_version}) has no JSON functions (json_each: {exc}), "
            "which a customer's export and erasure need: use a Python whose sqlite3 module is "
            "built on SQLite 3.38 or later without SQLITE_OMIT_JSON (or with JSON1), or "
            "PostgreSQL (--database-url)"
        ) from None


def _sqlite_at_head(connection: sqlite3.Connection) -> bool:
    """Whether the database is at :data:`migrations.HEAD`, as :func:`migrations.at_head` asks on
    the engine's connection (no Alembic version table, or another revision: not at head)."""
    found = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
    ).fetchone()
    if found is None:
        return False
    rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    return [tuple(row) for row in rows] == [(migrations.HEAD,)]


def _sqlite_hooks(engine: AsyncEngine, busy_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own transaction handling off: transactions begin as below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in _sqlite_pragmas(busy_ms):
            cursor.execute(pragma)
        cursor.close()

    # Statements outside a transaction commit themselves: skip the driver's COMMIT or ROLLBACK
    # there, each a trip to aiosqlite's thread that would do nothing.
    dialect = engine.dialect

    def do_rollback(dbapi_connection: Any) -> None:
        if dbapi_connection.driver_connection.in_transaction:
            dbapi_connection.rollback()

    def do_commit(dbapi_connection: Any) -> None:
        if dbapi_connection.driver_connection.in_transaction:
            dbapi_connection.commit()

    dialect.do_rollback = do_rollback  # type: ignore[method-assign]
    dialect.do_commit = do_commit  # type: ignore[method-assign]

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: sa.Connection) -> None:
        if not connection.get_execution_options().get("tandem_plain"):
            # The write lock first: another process cannot interleave a read and a write.
            connection.exec_driver_sql("BEGIN IMMEDIATE")


_UPGRADE_STAMP = "%Y%m%dT%H%M%SZ"


def expire_upgrade_copies(path: Path, before: float) -> list[Path]:
    """Delete the copies :func:`_backup_before_upgrade` made of the SQLite file ``path``
    (``<name>.<time>.bak`` beside it, and nothing else) made before ``before`` (epoch seconds,
    read from the time in each name); return them. A copy holds every customer's data as it
    was at the upgrade, so what is erased or purged since stays in it until it goes. Never
    raises: a copy that cannot be removed (or a name that is no time) is logged and the others
    still go (the hub's purge tick calls this before the recordings' purge)."""
    pattern = re.compile(re.escape(path.name) + r"\.(\d{8}T\d{6}Z)\.bak")
    expired = []
    try:
        beside = list(path.parent.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.error("cannot look for expired copies of the database beside %s: %s", path, exc)
        return []
    for candidate in beside:
        named = pattern.fullmatch(candidate.name)
        if named is None:
            continue
        try:
            made = calendar.timegm(time.strptime(named[1], _UPGRADE_STAMP))
        except ValueError:  # digits that are no time: not a copy this server made
            continue
        if made < before:
            try:
                candidate.unlink(missing_ok=True)
            except OSError as exc:
                log.error("cannot delete the expired copy of the database %s: %s", candidate, exc)
                continue
            expired.append(candidate)
    for copy in expired:
        log.warning("database upgrade: the copy of the old database at %s expired", copy)
    return expired


PARTIAL_COPY = ".partial"
"""The suffix of an upgrade copy being written (:func:`_backup_before_upgrade`): renamed to its
``.bak`` name once whole, so that a start stopped (SIGTERM, Ctrl-C: ended at once, tandem.cli)
or killed mid-copy never leaves a truncated file named as a copy to restore from. The next open
deletes such a leftover (it holds customers' data, and nothing would expire it)."""


def _backup_before_upgrade(path: Path) -> Path | None:
    """Copy an existing SQLite file that an upgrade would change; return the copy's path."""
    for leftover in path.parent.glob(f"{glob.escape(path.name)}.*.bak{PARTIAL_COPY}"):
        leftover.unlink(missing_ok=True)  # an earlier copy cut short
        log.warning("database upgrade: removed %s, a copy cut short", leftover)
    if not path.exists() or path.stat().st_size == 0:
        return None
    db = sqlite3.connect(path)
    try:
        tables = {
            name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if not tables:
            return None
        if "alembic_version" in tables:
            row = db.execute("SELECT version_num FROM alembic_version").fetchone()
            if row and row[0] == migrations.HEAD:
                return None
            if row and row[0] not in migrations.known_revisions():
                # Refused before any copy: a server restarted in a loop on a newer database
                # wrote one copy of it per start.
                raise ConfigError("the database was written by a newer Tandem; upgrade first")
        stamp = time.strftime(_UPGRADE_STAMP, time.gmtime())
        target = path.with_name(f"{path.name}.{stamp}.bak")
        if target.exists():
            raise FileExistsError(f"{target} exists")
        partial = target.with_name(target.name + PARTIAL_COPY)
        partial.touch(mode=0o600, exist_ok=False)  # it holds what the database holds
        copy = sqlite3.connect(partial)
        try:
            db.backup(copy)
        finally:
            copy.close()
        os.replace(partial, target)  # whole, under its name
    finally:
        db.close()
    log.warning("database upgrade: a copy of the old database is at %s", target)
    return target
