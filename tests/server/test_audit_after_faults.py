"""What was done is never left unrecorded. The database refuses an audit record (PostgreSQL
itself, by a trigger on the audit table raising ``disk_full``, exactly at that record). A
deletion (a recording erased or purged past retention, a subject erased) writes its record in
its own transaction: refused, nothing is deleted (503; a purge's run fails and is retried), and
trying again once the database takes records deletes and records together. An administrator's
change (here: an account disabled) passed before its record: the answer is 503 and the record
is kept and written, with the time of the change, once the database takes it again. Both were
lost before: a retry found nothing left to erase (404), or the account disabled already (200,
and no record at all)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from tandem.directory import Directory, offline, operator
from tests.conftest import (
    AGENT_PASSWORD,
    RunningServer,
    ServerFactory,
    mark_trained,
    two_organisations,
)
from tests.server.helpers import recv_json, send
from tests.server.test_organisations import api
from tests.server.test_recordings import KEY, recording, recordings_of
from tests.storage.conftest import PG_DSN, fresh_schema, pg_connect


async def seed(directory: Directory) -> None:
    default = operator("default")
    await directory.add_user(
        default,
        "alice",
        AGENT_PASSWORD,
        "agent",
        "Alice",
        ("support",),
        mfa_exempt=True,
        change_required=False,
    )
    await mark_trained(directory.storage, "alice")
    await two_organisations(directory)
    await directory.set_recording_key(default, KEY)


@contextlib.asynccontextmanager
async def pg_server(
    server_factory: ServerFactory, tmp_path: Path
) -> AsyncIterator[tuple[RunningServer, str]]:
    """A server on a fresh PostgreSQL schema (people of tests/conftest.py's two organisations,
    alice, and a recording key); its schema's name."""
    from tandem.config import Settings

    async with fresh_schema() as schema:
        url = f"{PG_DSN}?search_path={schema}"
        settings = Settings.load(environ={}, data_dir=tmp_path / "seed", database_url=url)
        async with offline(settings) as directory:
            await seed(directory)
        server = server_factory(database_url=url, audit_key_file=tmp_path / "seed" / "audit.key")
        try:
            yield server, schema
        finally:
            server.stop()  # before its schema goes


@contextlib.asynccontextmanager
async def audit_refuses(
    schema: str, action: str, errcode: str = "disk_full"
) -> AsyncIterator[None]:
    """PostgreSQL refuses every audit record of ``action`` as a full disk would (the records
    before and after it, and every other statement, pass)."""
    db = await pg_connect(schema)
    try:
        await db.execute(
            "CREATE FUNCTION test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'could not extend file: No space left on device' "
            f"USING ERRCODE = '{errcode}'; END $$"
        )
        await db.execute(
            "CREATE TRIGGER test_disk_full BEFORE INSERT ON audit FOR EACH ROW "
            f"WHEN (NEW.action = '{action}') EXECUTE FUNCTION test_disk_full()"
        )
        yield
    finally:
        await db.execute("DROP TRIGGER IF EXISTS test_disk_full ON audit")
        await db.execute("DROP FUNCTION IF EXISTS test_disk_full()")
        await db.close()


async def audited(schema: str, action: str) -> list[tuple[float, str]]:
    db = await pg_connect(schema)
    try:
        rows = await db.fetch("SELECT at, subject FROM audit WHERE action = $1", action)
    finally:
        await db.close()
    return [(float(r["at"]), str(r["subject"])) for r in rows]


async def stored_recordings(schema: str) -> list[str]:
    """The recordings the database still holds (the list leaves out those past retention)."""
    db = await pg_connect(schema)
    try:
        rows = await db.fetch("SELECT recording_id FROM recordings ORDER BY recording_id")
    finally:
        await db.close()
    return [str(r["recording_id"]) for r in rows]


async def eventually(condition: Callable[[], Any], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def a_stopped_recording(server: RunningServer) -> str:
    customer, alice, _ = await recording(server)
    await customer.send(b"\x01frame")
    await alice.recv()
    await send(customer, type="record_stop")
    await recv_json(alice)
    [listed] = recordings_of(server)
    return str(listed["recording_id"])


async def test_a_recording_whose_erasure_cannot_be_recorded_is_not_erased(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """The record is written in the erasure's transaction: refused, the erasure is rolled back
    (503, the recording still there, to erase again), never done without a record."""
    async with pg_server(server_factory, tmp_path) as (server, schema):
        recording_id = await a_stopped_recording(server)
        with api(server, "ada") as ada:
            async with audit_refuses(schema, "recording_erased"):
                erased = ada.delete(f"/api/recordings/{recording_id}")
                assert erased.status_code == 503, erased.text
                assert "Traceback" not in erased.text
                assert [r["recording_id"] for r in recordings_of(server)] == [recording_id]
                assert await audited(schema, "recording_erased") == []
            assert ada.delete(f"/api/recordings/{recording_id}").status_code == 204
            assert recordings_of(server) == []
            [(_, subject)] = await audited(schema, "recording_erased")
            assert subject == recording_id


async def test_a_recording_past_retention_is_purged_once_its_record_can_be_written(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    async with pg_server(server_factory, tmp_path) as (server, schema):
        with api(server, "ada") as ada:
            assert ada.patch("/api/org", json={"retention_days": 1}).status_code == 200
        recording_id = await a_stopped_recording(server)
        async with audit_refuses(schema, "recording_expired"):
            server.clock.advance(2 * 86400)
            await eventually(lambda: _async(server_failing(server)))
            assert await stored_recordings(schema) == [recording_id]  # not erased unrecorded
            assert recordings_of(server) == []  # past its retention: no longer listed
            assert await audited(schema, "recording_expired") == []
        server.clock.advance(120)  # the next run of the purge
        await eventually(lambda: audited(schema, "recording_expired"))
        assert await stored_recordings(schema) == []
        [(_, subject)] = await audited(schema, "recording_expired")
        assert subject == recording_id


async def test_a_subject_whose_erasure_cannot_be_recorded_is_not_erased(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    async with pg_server(server_factory, tmp_path) as (server, schema):
        customer, _, created = await recording(server)
        await send(customer, type="stop")
        await eventually(lambda: ended(schema, created["session_id"]))
        subject = {"subject": created["session_id"]}
        with api(server, "ada") as ada:
            async with audit_refuses(schema, "subject_erased"):
                erased = ada.post("/api/subjects/erase", json=subject)
                assert erased.status_code == 503, erased.text
                assert await audited(schema, "subject_erased") == []
                assert await ended(schema, created["session_id"])  # still stored
                assert len(recordings_of(server)) == 1
            assert ada.post("/api/subjects/erase", json=subject).status_code == 200
            assert len(await audited(schema, "subject_erased")) == 1
            assert recordings_of(server) == []


async def test_an_account_disabled_is_recorded_though_the_audit_trail_refused_it_at_first(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    async with pg_server(server_factory, tmp_path) as (server, schema):
        with api(server, "ada") as ada:
            async with audit_refuses(schema, "user_disabled"):
                refused = ada.post("/api/users/bob/disable")
                assert refused.status_code == 503, refused.text
                assert await audited(schema, "user_disabled") == []
                # Disabled all the same: trying again changes nothing, and said nothing.
                assert ada.post("/api/users/bob/disable").status_code == 200
            await eventually(lambda: audited(schema, "user_disabled"))
            [(_, subject)] = await audited(schema, "user_disabled")
            assert subject == "bob"


async def test_a_record_the_database_will_never_take_does_not_hold_up_those_after_it(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """The database refuses an account's ``user_disabled`` record as a constraint violation (its
    answer, not an outage): kept, it would be refused at every try, and every record kept after
    it would wait behind it for good. It is dropped (logged), and the next change is recorded."""
    async with pg_server(server_factory, tmp_path) as (server, schema):
        with api(server, "ada") as ada:
            async with audit_refuses(schema, "user_disabled", errcode="check_violation"):
                refused = ada.post("/api/users/bob/disable")
                assert refused.status_code == 409, refused.text
                assert ada.post("/api/users/bob/enable").status_code == 200
                await eventually(lambda: audited(schema, "user_enabled"))
            assert await audited(schema, "user_disabled") == []


async def _async(value: object) -> object:
    return value


def server_failing(server: RunningServer) -> bool:
    """Whether the timer's purges (its ``upkeep``) failed their last run."""
    return "upkeep" in server.server.config.app.state.background.failing


async def ended(schema: str, session_id: str) -> bool:
    db = await pg_connect(schema)
    try:
        at = await db.fetchval("SELECT ended_at FROM sessions WHERE session_id = $1", session_id)
    finally:
        await db.close()
    return at is not None
