"""Data rights on a real server, on both databases: after a customer's erasure nothing the
server keeps names them (tables, the data directory's files, its log, its metrics) and the
audit trail still verifies, yet an attacker with the database cannot pass a deletion of the
trail off as that erasure; the copy of the database the server made before an upgrade expires
(docs/compliance.md, "Data subject requests")."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import secrets
import sqlite3
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import prometheus_client
import pytest

from tests.conftest import RunningServer, ServerFactory, tandem_in_process, two_organisations
from tests.server.helpers import recv_json, send
from tests.server.test_customer_tokens import create, issue_key, sign
from tests.server.test_organisations import api
from tests.server.test_session_clearing import (
    _pg,
    server_on,
    stored_end,
    stored_rows_naming,
    wait_until,
)
from tests.storage.conftest import PG_DSN

BACKENDS = ("sqlite", "postgresql")


@contextlib.asynccontextmanager
async def data_rights_server(
    server_factory: ServerFactory, tmp_path: Path, backend: str, **overrides: object
) -> AsyncIterator[RunningServer]:
    """A two-organisation server (tests.conftest.two_organisations) on ``backend``."""
    async with server_on(
        server_factory, tmp_path, backend, two_organisations, **overrides
    ) as server:
        yield server


async def tables_naming(server: RunningServer, needle: str) -> dict[str, int]:
    """How many rows of each table hold ``needle`` in any column (as text, or bytes)."""
    found = await stored_rows_naming(server, [needle.encode()])
    return {table: len(rows) for table, rows in found.items()}


def files_naming(directory: Path, needle: str) -> list[str]:
    return sorted(
        str(path)
        for path in directory.rglob("*")
        if path.is_file() and needle.encode() in path.read_bytes()
    )


def audit_verifies(server: RunningServer) -> tuple[int, str]:
    env = {"TANDEM_AUDIT_KEY": str(server.settings.audit_key_path)}
    if server.settings.database_url:
        env["TANDEM_DATABASE_URL"] = server.settings.database_url
    ran = tandem_in_process("audit", "verify", "--data-dir", str(server.settings.data_dir), env=env)
    return ran.returncode, ran.stdout + ran.stderr


async def ended_customer(server: RunningServer, key: str, sub: str) -> str:
    """A session started with a token naming ``sub``, ended by the customer; its id."""
    now = int(server.clock())
    customer, created = await create(server, sign(key, sub=sub, aud="demo", iat=now, exp=now + 300))
    assert created is not None and created["type"] == "created", created
    await send(customer, type="stop")
    assert (await recv_json(customer))["type"] == "ended"
    return str(created["session_id"])


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_erased_customer_is_named_nowhere_the_server_keeps_data(
    server_factory: ServerFactory,
    tmp_path: Path,
    backend: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sub = f"erase-me-{secrets.token_hex(6)}@shop.example"
    other = f"keep-me-{secrets.token_hex(6)}@shop.example"
    async with data_rights_server(server_factory, tmp_path, backend, log_level="debug") as server:
        key = issue_key(server)
        session_id = await ended_customer(server, key, sub)
        kept = await ended_customer(server, key, other)
        assert await tables_naming(server, sub) == {"subject_sessions": 1}  # written: the link
        with api(server, "ada") as ada:
            exported = ada.post("/api/subjects/export", json={"subject": sub})
            assert exported.status_code == 200, exported.text
            erased = ada.post("/api/subjects/erase", json={"subject": sub})
            assert erased.status_code == 200, erased.text
            assert erased.json()["sessions"] == 1 and erased.json()["links"] == 1
            found = ada.post("/api/subjects/find", json={"subject": other}).json()
            assert found["sessions"] == [kept]  # the other customer is untouched
        assert "subject_erased" in caplog.text  # the log was captured
        # Nowhere: no table (the session's row went too), no file of the data directory (the
        # SQLite database and its write-ahead log; no export or temporary file left behind),
        # no log line, no metric.
        assert await tables_naming(server, sub) == {}
        assert "sessions" not in await tables_naming(server, session_id)
        assert files_naming(server.settings.data_dir, sub) == []
        assert sub not in caplog.text
        assert sub not in prometheus_client.generate_latest().decode()
        # The trail still verifies, with the erasure's record in it.
        code, said = audit_verifies(server)
        assert code == 0, said


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_token_sub_in_nfd_is_erased_by_its_nfc_form(
    server_factory: ServerFactory, tmp_path: Path, backend: str
) -> None:
    """The site's token writes the customer's name decomposed (NFD); the admin types the
    erasure request as their keyboard composes it (NFC). Stored as the token wrote it, the
    request erased nothing ("nothing stored concerns ...") while the customer stayed."""
    composed = f"caf\u00e9-{secrets.token_hex(4)}@shop.example"
    decomposed = unicodedata.normalize("NFD", composed)
    async with data_rights_server(server_factory, tmp_path, backend) as server:
        session_id = await ended_customer(server, issue_key(server), decomposed)
        assert await stored_subjects(server) == [composed]  # one form: NFC
        with api(server, "ada") as ada:
            for asked in (composed, decomposed):
                found = ada.post("/api/subjects/find", json={"subject": asked})
                assert found.json()["sessions"] == [session_id], found.text
            erased = ada.post("/api/subjects/erase", json={"subject": composed})
            assert erased.status_code == 200, erased.text
            assert erased.json()["links"] == 1
        assert await stored_subjects(server) == []


async def test_the_server_vacuums_what_an_erasure_deleted_on_postgresql(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """PostgreSQL keeps a deleted row whole, as a dead tuple its own tools read back, until a
    vacuum removes it; the server left that to autovacuum (hours on a quiet table). Now its
    ``vacuum`` task vacuums, by itself, the tables the erasure deleted rows of (what that
    removes from the pages: tests/storage/test_postgres_residue.py)."""
    sub = f"erase-me-{secrets.token_hex(6)}@shop.example"
    async with data_rights_server(
        server_factory, tmp_path, "postgresql", database_vacuum_interval_seconds=0.1
    ) as server:
        await ended_customer(server, issue_key(server), sub)
        await wait_until(lambda: first_round_over(server))  # its start's round: every table
        before = await vacuumed(server)  # a schema reused from an earlier test has its times
        with api(server, "ada") as ada:
            assert ada.post("/api/subjects/erase", json={"subject": sub}).status_code == 200
        erased = ("subject_sessions", "sessions", "recordings", "recording_frames")
        await wait_until(lambda: vacuumed_since(server, before, erased))


async def vacuumed(server: RunningServer) -> dict[str, datetime.datetime]:
    """When each of the server's tables was last vacuumed by hand (not by autovacuum)."""
    db = await _pg(server)
    try:
        rows = await db.fetch(
            "SELECT relname, last_vacuum FROM pg_stat_user_tables"
            " WHERE schemaname = current_schema() AND last_vacuum IS NOT NULL"
        )
        return {str(row[0]): row[1] for row in rows}
    finally:
        await db.close()


async def vacuumed_since(
    server: RunningServer, before: dict[str, datetime.datetime], tables: tuple[str, ...]
) -> bool:
    now = await vacuumed(server)
    return all(table in now and now[table] != before.get(table) for table in tables)


async def stored_subjects(server: RunningServer) -> list[str]:
    """Every ``sub`` the server's database links a session to, as stored (the text helpers
    above search bytes as Latin-1, which an accented ``sub`` is not)."""
    if not server.settings.database_url:
        with contextlib.closing(sqlite3.connect(server.settings.database_path)) as db:
            return [str(row[0]) for row in db.execute("SELECT subject FROM subject_sessions")]
    db = await _pg(server)
    try:
        return [str(row[0]) for row in await db.fetch("SELECT subject FROM subject_sessions")]
    finally:
        await db.close()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_deletion_from_the_trail_is_not_passed_off_as_an_erasure(
    server_factory: ServerFactory, tmp_path: Path, backend: str
) -> None:
    """The attacker has the database: after a customer's genuine erasure, they delete the
    trail's records of that customer's session (as if erasure had taken them) and the record
    of the erasure: `tandem audit verify` fails, naming where."""
    sub = f"c-{secrets.token_hex(4)}"
    async with data_rights_server(server_factory, tmp_path, backend) as server:
        key = issue_key(server)
        session_id = await ended_customer(server, key, sub)
        await ended_customer(server, key, "someone-else")  # records after it
        with api(server, "ada") as ada:
            assert ada.post("/api/subjects/erase", json={"subject": sub}).status_code == 200
        assert audit_verifies(server)[0] == 0
        deleting = f"DELETE FROM audit WHERE subject = '{session_id}' OR action = 'subject_erased'"
        if server.settings.database_url:
            schema = server.settings.database_url.split("search_path=")[1]
            db = await asyncpg.connect(PG_DSN, server_settings={"search_path": schema})
            try:  # the append-only triggers off, as a superuser can
                await db.execute(f"SET session_replication_role = replica; {deleting}")
            finally:
                await db.close()
        else:
            with sqlite3.connect(server.settings.database_path) as db:
                for trigger in ("audit_no_delete", "audit_no_update", "audit_no_replace"):
                    db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
                assert db.execute(deleting).rowcount >= 3
        code, said = audit_verifies(server)
        assert code == 1 and "BROKEN" in said, said


def test_the_servers_copy_of_the_database_before_an_upgrade_expires(
    server_factory: ServerFactory,
) -> None:
    """The server copies its SQLite file before an upgrade (``tandem.sqlite3.<time>.bak``):
    that copy held every customer's data as it was, erasures since included, for ever.
    It goes ``upgrade_copy_days`` after it was made; an operator's own files stay."""
    server = server_factory(upgrade_copy_days=7.0)
    database = server.settings.database_path

    def copy(made: float | None) -> Path:
        """The server's copy made at ``made``, or (None) an operator's own copy."""
        stamp = "mine" if made is None else time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(made))
        target = database.with_name(f"{database.name}.{stamp}.bak")
        with sqlite3.connect(database) as source, sqlite3.connect(target) as copied:
            source.backup(copied)
        return target

    now = server.clock()
    # The operator's own first: the server's purge may take an expired copy at any tick.
    mine = copy(None)
    old, recent = copy(now - 8 * 86400), copy(now - 86400)
    server.clock.advance(server.settings.purge_interval_seconds + 1)  # the next purge is due
    wait_for(lambda: not old.exists())
    assert recent.exists() and mine.exists()
    server.clock.advance(6 * 86400 + server.settings.purge_interval_seconds + 1)
    wait_for(lambda: not recent.exists())
    assert mine.exists()


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    """Generous: the purge runs on the server's periodic tick, which a loaded machine delays."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


BAD_REQUESTS = {
    "empty": {"subject": ""},
    "blank": {"subject": "   "},
    "too long": {"subject": "c" * 257},
    "a control character": {"subject": "c\n42"},
    "a NUL": {"subject": "c\u000042"},
    "not a string": {"subject": 42},
    "missing": {},
    "an unknown field": {"subject": "c-42", "email": "c@example.com"},
    "an unknown way to name it": {"subject": "c-42", "by": "email"},
}


@pytest.mark.parametrize("bad", BAD_REQUESTS)
@pytest.mark.parametrize("route", ["find", "export", "erase"])
def test_a_bad_subject_request_gets_a_clear_400(
    shared_orgs_server: RunningServer, route: str, bad: str
) -> None:
    """Shares the server: every request is refused before it reads or changes anything."""
    with api(shared_orgs_server, "ada") as ada:
        answer = ada.post(f"/api/subjects/{route}", json=BAD_REQUESTS[bad])
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["detail"]


async def test_an_ambiguous_subject_is_refused_until_the_request_says_which(
    orgs_server: RunningServer,
) -> None:
    key = issue_key(orgs_server)
    eves = await ended_customer(orgs_server, key, "eve")
    mallorys = await ended_customer(orgs_server, key, eves)  # her sub: Eve's session id
    with api(orgs_server, "ada") as ada:
        for route in ("find", "export", "erase"):
            refused = ada.post(f"/api/subjects/{route}", json={"subject": eves})
            assert refused.status_code == 409 and '"by"' in refused.json()["detail"]
        found = ada.post("/api/subjects/find", json={"subject": eves, "by": "session"})
        assert found.json()["sessions"] == [eves]
        erased = ada.post("/api/subjects/erase", json={"subject": eves, "by": "sub"})
        assert erased.status_code == 200 and erased.json()["sessions"] == 1
        assert ada.post("/api/subjects/find", json={"subject": "eve"}).json()["sessions"] == [eves]
        gone = ada.post("/api/subjects/find", json={"subject": mallorys}).json()
        assert gone["sessions"] == []


async def test_looking_a_customer_up_is_audited_without_their_sub(
    orgs_server: RunningServer,
) -> None:
    """A lookup answers the customer's pseudonym and sessions (it de-pseudonymises their part
    of the trail) and was not on record: an admin could check on anyone unseen."""
    sub = f"c-{secrets.token_hex(4)}"
    await ended_customer(orgs_server, issue_key(orgs_server), sub)
    with api(orgs_server, "ada") as ada:
        found = ada.post("/api/subjects/find", json={"subject": sub}).json()
        assert ada.post("/api/subjects/find", json={"subject": "nobody"}).status_code == 200
    with api(orgs_server, "aud") as aud:
        trail = aud.get("/api/audit").json()
    looked = [r for r in trail if r["action"] == "subject_looked_up"]
    assert [(r["actor"], r["subject"]) for r in looked] == [
        ("ada", f"customer:{found['pseudonym']}"),
        ("ada", "unknown"),
    ]
    assert looked[0]["details"]["sessions"] == 1
    assert sub not in json.dumps(trail)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_retention_purges_on_schedule_what_no_hold_keeps_and_the_trail_verifies(
    server_factory: ServerFactory, tmp_path: Path, backend: str
) -> None:
    async with data_rights_server(server_factory, tmp_path, backend) as server:
        key = issue_key(server)
        held, gone = f"held-{secrets.token_hex(4)}", f"gone-{secrets.token_hex(4)}"
        kept_id = await ended_customer(server, key, held)
        gone_id = await ended_customer(server, key, gone)
        with api(server, "ada") as ada:
            assert ada.patch("/api/org", json={"retention_days": 1}).status_code == 200
            hold = {"kind": "subject", "target": held, "reason": "case 12"}
            assert ada.post("/api/holds", json=hold).status_code == 201
        server.clock.advance(86400 + server.settings.purge_interval_seconds + 1)

        async def purged() -> bool:
            return await stored_end(server, gone_id) is None

        await wait_until(purged)  # by the server's own schedule
        assert await tables_naming(server, gone) == {}  # the customer's id went with it
        assert await stored_end(server, kept_id) is not None  # held
        assert await tables_naming(server, held) == {"subject_sessions": 1, "legal_holds": 1}
        code, said = audit_verifies(server)
        assert code == 0, said


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_sessions_retention_deletes_are_on_the_audit_trail(
    server_factory: ServerFactory, tmp_path: Path, backend: str
) -> None:
    """Recordings past retention were audited one by one; the sessions' records (and the
    customers' links) it deleted were not: no evidence that retention ran, nor of what it
    took."""
    async with data_rights_server(server_factory, tmp_path, backend) as server:
        key = issue_key(server)
        kept_id = await ended_customer(server, key, "held-customer")
        gone_id = await ended_customer(server, key, "gone-customer")
        with api(server, "ada") as ada:
            assert ada.patch("/api/org", json={"retention_days": 1}).status_code == 200
            hold = {"kind": "subject", "target": "held-customer", "reason": "case 13"}
            assert ada.post("/api/holds", json=hold).status_code == 201
        server.clock.advance(86400 + server.settings.purge_interval_seconds + 1)

        def expired() -> list[dict[str, object]]:
            with api(server, "aud") as aud:
                trail = aud.get("/api/audit").json()
            return [r for r in trail if r["action"] == "sessions_expired"]

        await wait_until(lambda: asyncio.to_thread(lambda: bool(expired())))
        [record] = expired()
        assert record["actor"] == "server" and record["details"]["sessions"] == [gone_id]
        assert kept_id not in json.dumps(record)
        assert audit_verifies(server)[0] == 0


async def test_a_vacuum_waiting_on_a_lock_holds_up_neither_requests_nor_the_stop(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """Another session holds a lock the vacuum after an erasure waits for (a schema change, an
    operator's own VACUUM): the vacuum waits, up to ``database_vacuum_timeout_seconds`` (600 s),
    on one pooled connection of its own, while requests are answered beside it; and the server
    stops at once, its vacuum cancelled on the database, not left queued behind the lock."""
    sub = f"erase-me-{secrets.token_hex(6)}@shop.example"
    async with data_rights_server(
        server_factory, tmp_path, "postgresql", database_vacuum_interval_seconds=0.1
    ) as server:
        await ended_customer(server, issue_key(server), sub)
        holder = await _pg(server)
        watcher = await _pg(server)
        try:
            await holder.execute(
                "BEGIN; LOCK TABLE subject_sessions IN SHARE UPDATE EXCLUSIVE MODE"
            )
            with api(server, "ada") as ada:
                assert ada.post("/api/subjects/erase", json={"subject": sub}).status_code == 200

            async def vacuum_waiting() -> bool:
                return bool(
                    await watcher.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND query LIKE 'VACUUM%subject_sessions%'"
                    )
                )

            await wait_until(vacuum_waiting)
            for _ in range(12):  # more than the pool's connections, one after another
                with api(server, "ada") as ada:
                    found = ada.post("/api/subjects/find", json={"subject": sub})
                    assert found.status_code == 200, found.text
            started = time.monotonic()
            server.stop()
            assert not server.thread.is_alive()
            assert time.monotonic() - started < 5
            assert not await vacuum_waiting()
        finally:
            await holder.close()
            await watcher.close()


async def test_what_a_server_stopped_before_its_vacuum_erased_is_vacuumed_by_the_next_start(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """Which tables an erasure deleted rows of is known to the process that erased only: one
    killed (or stopped) before its vacuum ran left the customer's rows whole, as dead tuples,
    until autovacuum, and no later server vacuumed them. Now a server's start makes every
    table deletions touch due, and its first round vacuums them."""
    sub = f"erase-me-{secrets.token_hex(6)}@shop.example"
    async with data_rights_server(
        server_factory, tmp_path, "postgresql", database_vacuum_interval_seconds=3600
    ) as server:
        await ended_customer(server, issue_key(server), sub)
        hub = server.server.config.app.state.services.hub
        await wait_until(lambda: first_round_over(server))
        before = await vacuumed(server)
        with api(server, "ada") as ada:
            assert ada.post("/api/subjects/erase", json={"subject": sub}).status_code == 200
        erased = ("subject_sessions", "sessions", "recordings", "recording_frames")
        assert set(erased) <= set(hub.storage.vacuum_due)  # its next round: in an hour
        server.stop()
        assert not await vacuumed_since(server, before, erased)
        assert server.settings.database_url is not None
        after = server_factory(
            database_url=server.settings.database_url,
            audit_key_file=server.settings.audit_key_path,
        )
        try:
            await wait_until(lambda: vacuumed_since(after, before, erased))
        finally:
            after.stop()


async def first_round_over(server: RunningServer) -> bool:
    """Whether the server's vacuum task ran once (at start it vacuums every table deletions
    touch: a test reading the times of the vacuums after it waits for that round)."""
    hub = server.server.config.app.state.services.hub
    return bool(hub.background.health["vacuum"].runs)
