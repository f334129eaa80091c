"""A session's steps whose audit record or storage write PostgreSQL refuses (a trigger on the
audit table raising ``disk_full``, exactly at that record) leave nothing half-done: a
customer's yes is not taken without its record, a recording does not start without the record
of the customer's yes, and a session whose creation failed part of the way does not stay live
in storage.

The first test: the ``consent_given`` record is refused. The customer's socket is closed 1013
and the session stays waiting for consent; the agent sees nothing shared. Before, the session
had moved to sharing all the same: the customer's page resumed into it and shared, with no
record of the consent, and the agent's console was never told of it. Once the database
answers, the resumed page is asked again, and its yes is recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.conftest import ServerFactory
from tests.server.helpers import (
    closed_with,
    login_cookie,
    open_agent,
    open_customer,
    pending_session,
    recv_json,
    resume_on,
    send,
    sharing_session,
    start_session,
)
from tests.server.test_agent_rejoin import rejoin, shared
from tests.server.test_audit_after_faults import audit_refuses, audited, pg_server
from tests.server.test_recordings import recording
from tests.storage.conftest import pg_connect


async def test_consent_whose_record_is_refused_is_not_taken_and_is_asked_again(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    async with pg_server(server_factory, tmp_path) as (server, schema):
        customer, agent, created = await pending_session(server)
        async with audit_refuses(schema, "consent_given"):
            await send(customer, type="consent", granted=True)
            assert await closed_with(customer, timeout=30) == (
                1013,
                "database not answering: try again soon",
            )
            # The agent hears the customer went, and nothing of a consent.
            assert await recv_json(agent) == {"v": 1, "type": "peer", "connected": False}
            again, resumed = await resume_on(server, created)
            assert resumed["type"] == "resumed"
            assert resumed["state"] == "pending_consent"
            assert await audited(schema, "consent_given") == []
        assert await recv_json(agent) == {"v": 1, "type": "peer", "connected": True}
        await send(again, type="consent", granted=True)
        assert await recv_json(agent) == {"v": 1, "type": "consent", "granted": True}
        [(_, subject)] = await audited(schema, "consent_given")
        assert subject == created["session_id"]
        await again.send(b"\x01shared")
        assert await asyncio.wait_for(agent.recv(), 5) == b"\x01shared"


async def test_a_recording_whose_start_cannot_be_recorded_does_not_start_and_sharing_goes_on(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """The customer allows a recording, and PostgreSQL refuses its ``recording_started`` record
    (the customer's yes): the recording does not start, both sides are told it is unavailable,
    sharing goes on, and no frame is kept. Before, the customer's socket was closed and the
    session recorded on once it resumed, with no record of the customer's yes. Once the database
    answers, the recording is stored as ended ``unavailable`` (and recorded so), and the next
    request records."""
    async with pg_server(server_factory, tmp_path) as (server, schema):
        customer, alice, _ = await sharing_session(server)
        await send(alice, type="record")
        request = await recv_json(customer)
        assert request["type"] == "record_request"
        unavailable = {"v": 1, "type": "recording", "on": False, "reason": "unavailable"}
        async with audit_refuses(schema, "recording_started"):
            await send(customer, type="record_consent", granted=True)
            assert await recv_json(alice, timeout=30) == unavailable
            assert await recv_json(customer) == unavailable
            await customer.send(b"\x01not-recorded")
            assert await asyncio.wait_for(alice.recv(), 5) == b"\x01not-recorded"
        failed = "SELECT end_reason, frames FROM recordings WHERE recording_id = $1"
        db = await pg_connect(schema)
        try:
            deadline = asyncio.get_running_loop().time() + 30
            while (
                await db.fetchrow(failed, request["recording_id"]) is None
                or (await db.fetchval(failed, request["recording_id"])) != "unavailable"
            ):
                assert asyncio.get_running_loop().time() < deadline, "never ended unavailable"
                await asyncio.sleep(0.1)
            assert (await db.fetchrow(failed, request["recording_id"]))["frames"] == 0
        finally:
            await db.close()
        # Kept while the database refused it, written by the next tick that finds it answering
        # (which may come after the recording's row is ended).
        await eventually_audited(schema, "recording_failed")
        assert [subject for _, subject in await audited(schema, "recording_failed")] == [
            request["recording_id"]
        ]
        await send(alice, type="record")
        assert (await recv_json(customer))["type"] == "record_request"
        await send(customer, type="record_consent", granted=True)
        on = {"v": 1, "type": "recording", "on": True, "reason": None}
        assert await recv_json(alice) == on
        assert await recv_json(customer) == on


async def test_a_session_whose_creation_failed_half_way_does_not_stay_live_in_storage(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """PostgreSQL refuses the ``session_created`` record, after the join code and the session's
    row were written: the customer's socket is closed 1013, and the row, live-looking, belonged
    to nobody for as long as the process ran (other processes counted it against their limits
    and listed it to supervisors; a customer's erasure was refused as "still live"). It is
    ended ``not_started`` and its join code deleted once the database answers."""
    async with pg_server(server_factory, tmp_path) as (server, schema):
        async with audit_refuses(schema, "session_created"):
            customer = await open_customer(server)
            await send(customer, type="create")
            assert await closed_with(customer, timeout=30) == (
                1013,
                "database not answering: try again soon",
            )
        db = await pg_connect(schema)
        try:
            deadline = asyncio.get_running_loop().time() + 30
            live = "SELECT count(*) FROM sessions WHERE ended_at IS NULL"
            while await db.fetchval(live):
                assert asyncio.get_running_loop().time() < deadline, "a session stayed live"
                await asyncio.sleep(0.1)
            assert [tuple(r) for r in await db.fetch("SELECT end_reason FROM sessions")] == [
                ("not_started",)
            ]
            assert await db.fetchval("SELECT count(*) FROM join_codes") == 0
        finally:
            await db.close()
        customer, created = await start_session(server)  # and new sessions start
        assert created["type"] == "created"


async def test_a_watch_whose_request_cannot_be_recorded_leaves_the_session_free_to_watch(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """PostgreSQL refuses the ``watch_requested`` record (which comes before the customer is
    asked): the supervisor's socket is closed 1013 and nobody is asked. Before, the session kept
    that supervisor as its watcher, watching nothing: every later request, by anyone, was
    refused as "someone already watches this session". Now the next request is asked."""
    async with pg_server(server_factory, tmp_path) as (server, schema):
        customer, _, created = await sharing_session(server)
        session_id = created["session_id"]
        async with audit_refuses(schema, "watch_requested"):
            sam = await open_agent(server, login_cookie(server, "sam"))
            await send(sam, type="watch", session_id=session_id)
            assert await closed_with(sam, timeout=30) == (
                1013,
                "database not answering: try again soon",
            )
        sam = await open_agent(server, login_cookie(server, "sam"))
        await send(sam, type="watch", session_id=session_id)
        assert await recv_json(sam) == {"v": 1, "type": "watching", "session_id": session_id}
        assert await recv_json(customer) == {"v": 1, "type": "watch_request", "watcher": "Sam"}
        assert len(await audited(schema, "watch_requested")) == 1


async def test_a_session_ends_though_the_database_failed_on_the_way_to_its_end(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """The customer stops a session that records, and PostgreSQL refuses the
    ``recording_stopped`` record (the recording's end was stored). The session's ending was cut
    there: it stayed live for good, in memory (counted against every limit; an agent asking
    to watch or join got nowhere) and in storage (its row never ended, no ``session_ended``).
    Now the rest of its ending is carried out all the same, and the recording's end is
    recorded once the database answers."""
    async with pg_server(server_factory, tmp_path) as (server, schema):
        customer, alice, created = await recording(server)
        await customer.send(b"\x01recorded")
        assert await alice.recv() == b"\x01recorded"
        session_id = created["session_id"]
        async with audit_refuses(schema, "recording_stopped"):
            await send(customer, type="stop")
            assert await recv_json(alice, timeout=30) == {
                "v": 1,
                "type": "ended",
                "reason": "stopped",
            }
            code, _ = await closed_with(alice, timeout=30)
            assert code == 1000
        db = await pg_connect(schema)
        try:
            ended = "SELECT end_reason FROM sessions WHERE session_id = $1"
            deadline = asyncio.get_running_loop().time() + 30
            while await db.fetchval(ended, session_id) is None:
                assert asyncio.get_running_loop().time() < deadline, "the session stayed live"
                await asyncio.sleep(0.1)
            assert await db.fetchval(ended, session_id) == "stopped"
        finally:
            await db.close()
        await eventually_audited(schema, "session_ended")
        # The recording's end goes with its record in one transaction: refused, it is ended
        # ``unavailable`` (``recording_failed``) once the database answers; ended after the
        # refusals stopped (a loaded machine closes the recording later), ``recording_stopped``.
        deadline = asyncio.get_running_loop().time() + 30
        while not [
            a for a in ("recording_stopped", "recording_failed") if await audited(schema, a)
        ]:
            assert asyncio.get_running_loop().time() < deadline, (
                "the recording's end never recorded"
            )
            await asyncio.sleep(0.1)


async def eventually_audited(schema: str, action: str) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while not await audited(schema, action):
        assert asyncio.get_running_loop().time() < deadline, f"{action} never recorded"
        await asyncio.sleep(0.1)


async def test_an_agents_message_the_database_fails_under_leaves_the_session_for_its_rejoin(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """PostgreSQL refuses the record of the agent's request to record (``recording_requested``):
    the server closes the agent's socket 1013 (try again later), which the console retries.
    Before, that ended the customer's session at once (``agent_lost``), as if the agent had
    left: one storage fault under one message. Now the session waits for the agent's rejoin,
    as after a lost network, and goes on."""
    async with pg_server(server_factory, tmp_path) as (server, schema):
        cookie = login_cookie(server)
        customer, agent, joined = await shared(server, cookie)
        async with audit_refuses(schema, "recording_requested"):
            await send(agent, type="record")
            assert await closed_with(agent, timeout=30) == (
                1013,
                "database not answering: try again soon",
            )
            assert await recv_json(customer) == {"v": 1, "type": "peer", "connected": False}
        again = await rejoin(server, cookie, joined)
        answer = await recv_json(again)
        assert (answer["type"], answer["session_id"], answer["resumed"]) == (
            "joined",
            joined["session_id"],
            True,
        )
        assert await recv_json(customer) == {"v": 1, "type": "peer", "connected": True}
        await customer.send(b"\x01still shared")
        assert await asyncio.wait_for(again.recv(), 5) == b"\x01still shared"
        assert await audited(schema, "session_ended") == []
