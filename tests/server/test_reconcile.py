"""Rows deleted outside Tandem (tandem.reconcile), on a real server and both databases: an
attacker with the database deletes a recording's row and a session's row and leaves the audit
trail alone; `tandem audit verify` names each, per organisation, and fails. Deleting the trail's
records of them too breaks the chain, which the same command reports: one of the two checks
always catches it. Tandem's own erasures and retention purges leave nothing to report."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tandem.audit import AuditRecord, record_hash
from tandem.storage.sql import SQLStorage
from tests.conftest import RunningServer, ServerFactory
from tests.server.helpers import send
from tests.server.test_audit_after_faults import seed
from tests.server.test_compliance_api import audit_trail_check
from tests.server.test_data_rights import BACKENDS, audit_verifies
from tests.server.test_organisations import api
from tests.server.test_recordings import recording, recordings_of, with_recording_key
from tests.server.test_session_clearing import server_on, stored_end, wait_until
from tests.storage.conftest import PG_DSN

AUDIT_TRIGGERS = ("audit_no_delete", "audit_no_update", "audit_no_replace")


@contextlib.asynccontextmanager
async def recording_server(
    server_factory: ServerFactory, tmp_path: Path, backend: str
) -> AsyncIterator[RunningServer]:
    """A server on ``backend`` whose default organisation records (and Alice to record)."""
    # The SQLite template has Alice already.
    people = seed if backend == "postgresql" else with_recording_key
    async with server_on(server_factory, tmp_path, backend, people) as server:
        yield server


async def a_recorded_session(server: RunningServer) -> tuple[str, str]:
    """A customer's session, recorded, ended by the customer: its id and its recording's."""
    customer, alice, created = await recording(server)
    await customer.send(b"\x01frame")
    await alice.recv()
    session_id = str(created["session_id"])
    await send(customer, type="stop")

    async def ended() -> bool:
        stored = await stored_end(server, session_id)
        listed = recordings_of(server)
        return stored is not None and stored[0] is not None and listed[-1]["ended_at"] is not None

    await wait_until(ended)
    [recording_id] = [
        r["recording_id"] for r in recordings_of(server) if r["session_id"] == session_id
    ]
    return session_id, str(recording_id)


async def run_sql(server: RunningServer, *statements: str) -> None:
    """What an attacker with the database does (the audit table's guards off, as its owner or a
    superuser can)."""
    if server.settings.database_url:
        schema = server.settings.database_url.split("search_path=")[1]
        db = await asyncpg.connect(PG_DSN, server_settings={"search_path": schema})
        try:
            await db.execute("SET session_replication_role = replica")
            for statement in statements:
                await db.execute(statement)
        finally:
            await db.close()
    else:
        with sqlite3.connect(server.settings.database_path) as db:
            for trigger in AUDIT_TRIGGERS:
                db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
            for statement in statements:
                db.execute(statement)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_recording_and_a_session_deleted_in_the_database_are_named_by_verify(
    server_factory: ServerFactory, tmp_path: Path, backend: str
) -> None:
    async with recording_server(server_factory, tmp_path, backend) as server:
        first_session, first_recording = await a_recorded_session(server)
        second_session, second_recording = await a_recorded_session(server)
        code, said = audit_verifies(server)
        assert code == 0 and "stored rows agree" in said, said
        await run_sql(
            server,
            f"DELETE FROM recordings WHERE recording_id = '{first_recording}'",
            f"DELETE FROM recordings WHERE recording_id = '{second_recording}'",
            f"DELETE FROM sessions WHERE session_id = '{second_session}'",
        )
        code, said = audit_verifies(server)
        assert code == 1, said
        missing = [line for line in said.splitlines() if line.startswith("row MISSING")]
        assert len(missing) == 3, said
        for kind, deleted in (
            ("recording", first_recording),
            ("recording", second_recording),
            ("session", second_session),
        ):
            assert any(f"organisation 'default': {kind} {deleted} " in line for line in missing), (
                said
            )
        assert first_session not in "\n".join(missing)  # its row is still there
        assert "DISAGREE with the audit trail: 3 deleted outside Tandem" in said


@pytest.mark.parametrize("backend", BACKENDS)
async def test_deleting_the_records_of_the_deleted_rows_too_breaks_the_chain(
    server_factory: ServerFactory, tmp_path: Path, backend: str
) -> None:
    """The attacker covers the deletion: every record naming the session or its recording goes
    too (so reconciliation has nothing to expect). The chain has a hole: verify fails there."""
    async with recording_server(server_factory, tmp_path, backend) as server:
        session_id, recording_id = await a_recorded_session(server)
        await a_recorded_session(server)  # records after them
        await run_sql(
            server,
            f"DELETE FROM recordings WHERE recording_id = '{recording_id}'",
            f"DELETE FROM sessions WHERE session_id = '{session_id}'",
        )
        code, said = audit_verifies(server)
        assert code == 1 and said.count("row MISSING") == 2, said
        await run_sql(
            server,
            f"DELETE FROM audit WHERE subject IN ('{session_id}', '{recording_id}')"
            f" OR details LIKE '%{session_id}%'",
        )
        code, said = audit_verifies(server)
        assert code == 1 and "audit trail BROKEN" in said, said


@pytest.mark.parametrize("backend", BACKENDS)
async def test_erasures_and_retention_purges_leave_nothing_to_report(
    server_factory: ServerFactory, tmp_path: Path, backend: str
) -> None:
    async with recording_server(server_factory, tmp_path, backend) as server:
        _, erased_recording = await a_recorded_session(server)
        erased_session, _ = await a_recorded_session(server)
        with api(server, "ada") as ada:
            erased = ada.delete(f"/api/recordings/{erased_recording}")
            assert erased.status_code == 204, erased.text
            subject = ada.post("/api/subjects/erase", json={"subject": erased_session})
            assert subject.status_code == 200, subject.text
        code, said = audit_verifies(server)
        assert code == 0 and "stored rows agree" in said, said
        purged_session, _ = await a_recorded_session(server)
        with api(server, "ada") as ada:
            assert ada.patch("/api/org", json={"retention_days": 1}).status_code == 200
        server.clock.advance(2 * 86400 + server.settings.purge_interval_seconds)

        async def purged() -> bool:
            return await stored_end(server, purged_session) is None and not recordings_of(server)

        await wait_until(purged)
        code, said = audit_verifies(server)
        assert code == 0, said
        assert "stored rows agree: the 0 sessions and 0 recordings" in said, said


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_compliance_report_fails_the_audit_trail_without_naming_the_rows(
    server_factory: ServerFactory, tmp_path: Path, backend: str
) -> None:
    """The self-check an organisation's admin reads: it fails, and says neither which rows nor
    whose (the check is the whole installation's; the operator's `audit verify` names them)."""
    async with recording_server(server_factory, tmp_path, backend) as server:
        session_id, recording_id = await a_recorded_session(server)
        assert audit_trail_check(server, "max")["status"] == "pass"
        await run_sql(server, f"DELETE FROM recordings WHERE recording_id = '{recording_id}'")
        server.clock.advance(server.settings.compliance_audit_check_seconds)
        for admin in ("max", "ada"):  # Acme's admin, the default organisation's
            check = audit_trail_check(server, admin)
            assert check["status"] == "fail" and "deleted outside Tandem" in check["detail"]
            assert recording_id not in str(check) and session_id not in str(check)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_forged_record_of_the_erasure_is_caught_by_its_missing_mac(
    server_factory: ServerFactory, tmp_path: Path, backend: str
) -> None:
    """The attacker deletes the recording and appends the record an erasure would have written,
    its chain hash right (no key is needed for that), but no valid MAC: verify fails there."""
    async with recording_server(server_factory, tmp_path, backend) as server:
        _, recording_id = await a_recorded_session(server)
        records = await stored_trail(server)
        head = records[-1]
        seq, at, details = head.seq + 1, head.at + 1, {"session": "s"}
        digest = record_hash(
            seq, at, "recording_erased", "ada", "default", recording_id, details, head.hash
        )
        await run_sql(server, f"DELETE FROM recordings WHERE recording_id = '{recording_id}'")
        code, said = audit_verifies(server)
        assert code == 1 and f"recording {recording_id} " in said, said
        await run_sql(
            server,
            "INSERT INTO audit (seq, at, action, actor, org, subject, details, prev_hash, hash,"
            f" mac) VALUES ({seq}, {at!r}, 'recording_erased', 'ada', 'default', '{recording_id}',"
            f" '{json.dumps(details, sort_keys=True)}', '{head.hash}', '{digest}', '{'0' * 64}')",
        )
        code, said = audit_verifies(server)
        assert code == 1 and f"BROKEN at record {seq}" in said and "no valid MAC" in said, said


async def stored_trail(server: RunningServer) -> list[AuditRecord]:
    storage = (
        await SQLStorage.connect(PG_DSN, schema=server.settings.database_url.split("=")[-1])
        if server.settings.database_url
        else await SQLStorage.open_sqlite(server.settings.database_path)
    )
    try:
        return await storage.audit_records()
    finally:
        await storage.close()
