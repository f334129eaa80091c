"""What a playback's or an export's transaction holds, and for how long, against an erasure, a
retention purge and a running recording's writes, on a real server and PostgreSQL (the
reader's transaction held open behind tests.server.db_proxy at the chosen statement: its
statement taken by the database, its answer held; the others on connections of their own).

The playback and the export lock what they read against a DELETE until their record is
committed (docs/recordings.md). Found by review:

- the export locked the customer's sessions, then their recordings; an erasure deletes the
  recordings, then the sessions: at once, each waited for the other until PostgreSQL broke
  the deadlock by failing one of them (the export answered 503, or the erasure failed);
- the export held nothing of the customer when an erasure fell inside its look-up (between
  its read of the customer's links and its read of their sessions): it went out, and was
  recorded after ``subject_erased``, with the pseudonym the erasure had unlinked from the
  customer and the trail's records of them;
- a playback's share lock held a running recording's frames and its end (UPDATEs of its row)
  until the playback was read: back-to-back playbacks kept them waiting until storage gave up.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import httpx
import pytest

from tandem.recordings import read_container
from tests.conftest import RunningServer, ServerFactory
from tests.conftest import tandem_in_process as run
from tests.server.db_proxy import StoppableProxy
from tests.server.helpers import recv_json, send
from tests.server.test_customer_tokens import create, issue_key, sign
from tests.server.test_frozen_database import recording_seed
from tests.server.test_organisations import api
from tests.server.test_recording_playback_races import (
    client_of,
    ended_recording,
    proxied,
    session_ended,
    until,
)
from tests.server.test_recording_races import SETTLED, TOLD, cli_environ, erase_command
from tests.server.test_recordings import recording

GET_SESSION = b"sessions.state \nFROM sessions \nWHERE sessions.org_id = $1::VARCHAR AND " + (
    b"sessions.session_id = ANY"
)
"""The text of storage's sessions_of statement (what the look-up reads after the links)."""
READ_FRAMES = b"SELECT recording_frames.data"
"""A reader's read of a recording's frames (never the recorder's writes)."""

READER = (
    "{0}.wait_event_type = 'Client' AND {0}.backend_xid IS NOT NULL AND"
    " {0}.datname = current_database() AND"
    " ({0}.query LIKE '%recording_frames.data%' OR {0}.query LIKE '%SHARE%')"
)
"""The held reader's backend: in its transaction (its row locks taken), waiting for the
client to go on after its last statement (a lock, or its read of the frames), whose answer the
proxy holds."""
IN_TRANSACTION = f"SELECT count(*) FROM pg_stat_activity reader WHERE {READER.format('reader')}"
WAITING_ON_A_LOCK = (
    "SELECT count(*) FROM pg_stat_activity waiting, pg_stat_activity reader WHERE"
    f" {READER.format('reader')} AND reader.pid = ANY(pg_blocking_pids(waiting.pid))"
)
"""Backends waiting for a lock the held reader holds (not the server's own brief waits for
each other: a recording's end for its last frames)."""


def recording_server(server_factory: ServerFactory, tmp_path: Path, url: str) -> RunningServer:
    """As tests.server.test_frozen_database.recording_server, its storage waits bounded by
    SETTLED: the reader's answer is held while another process starts and reaches its wait
    (a loaded machine took longer than FROZEN_TIMEOUT), and must not time out meanwhile."""
    return server_factory(
        database_url=url,
        audit_key_file=recording_seed(tmp_path, url),
        database_timeout_seconds=SETTLED,
        recording_flush_bytes=1024,
        purge_interval_seconds=86400.0,
    )


async def nothing_after(db: Any, action: str, *needles: str) -> None:
    """No audit record after the first ``action`` one names any of ``needles``."""
    after = await db.fetchval("SELECT min(seq) FROM audit WHERE action = $1", action)
    assert after is not None, f"no {action} record"
    rows = await db.fetch("SELECT action, subject, details FROM audit WHERE seq > $1", after)
    later = [
        row["action"]
        for row in rows
        if any(n in row["subject"] or n in row["details"] for n in needles)
    ]
    assert later == [], later


async def playback_held(db: Any, client: httpx.AsyncClient, recording_id: str) -> Any:
    """``client``'s playback of the recording, under way: its transaction in, its read of the
    frames taken by the database and the answer held (the proxy holding replies after
    READ_FRAMES); the task of its answer."""
    playing = asyncio.create_task(client.get(f"/api/recordings/{recording_id}/content"))

    async def reading() -> bool:
        assert not playing.done(), playing.result().text
        return bool(await db.fetchval(IN_TRANSACTION))

    await until(reading, "the playback never read the frames")
    return playing


async def test_an_export_and_the_customers_erasure_at_once_never_deadlock(
    server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """An admin exports a customer (their session and its recording) while ``tandem subject
    erase`` erases them: the export's transaction has taken its first lock and waits (its
    answer held) as the erasure starts. Both end cleanly, one after the other: the export whole
    and recorded before the erasure (or refused, 409, if it came second), the erasure done;
    neither failed by PostgreSQL breaking a deadlock."""
    async with proxied(
        server_factory, pg_proxy, tmp_path, recording_server, accounts=("ada",)
    ) as cluster:
        server, db, schema = cluster.server, cluster.db, cluster.schema
        session_id, recording_id, _ = await ended_recording(server, db)
        async with client_of(server, "ada") as client:
            # Its first lock taken, it waits as it prepares its second (asyncpg prepares a
            # statement in a round trip of its own, then runs it: the text is sent then).
            pg_proxy.hold_replies_after(b" SHARE", b" SHARE")
            try:
                body = {"subject": session_id, "by": "session"}
                exporting = asyncio.create_task(client.post("/api/subjects/export", json=body))

                async def locked() -> bool:
                    assert not exporting.done(), exporting.result().text
                    return not pg_proxy.hold_after  # (emptied once it holds the answer)

                await until(locked, "the export never took its first lock")
                erase = erase_command(tmp_path, session_id, "session")
                erasing = asyncio.create_task(
                    asyncio.to_thread(run, *erase, env=cli_environ(schema))
                )

                async def erased_or_waiting() -> bool:
                    return erasing.done() or bool(await db.fetchval(WAITING_ON_A_LOCK))

                await until(erased_or_waiting, "the erasure neither ran nor waited")
            finally:
                pg_proxy.thaw()
            exported = await exporting
            erased = await erasing
        assert erased.returncode == 0, erased.stdout + erased.stderr
        assert "Erased 1 session(s) and 1 recording(s)" in erased.stdout
        # It held the recording first, so the erasure waited for it: whole, and recorded
        # before the erasure.
        assert exported.status_code == 200, exported.text
        await nothing_after(db, "subject_erased", session_id, recording_id)
        exports = await db.fetchval(
            "SELECT count(*) FROM audit WHERE action = 'subject_exported' AND seq <"
            " (SELECT seq FROM audit WHERE action = 'subject_erased')"
        )
        assert exports == 1


async def test_an_erasure_inside_an_exports_look_up_leaves_the_export_nothing_to_give(
    server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """An admin exports a customer (by their ``sub``); the database stalls once the look-up
    has read the customer's links, before it reads their session, and ``tandem subject erase``
    erases the customer meanwhile. The export then found no session and no recording to hold,
    and went out with the pseudonym the erasure had just unlinked from the customer, recorded
    after ``subject_erased``. Now the links are held too: the export finds them gone (409) and
    nothing names the customer after the erasure."""
    async with proxied(
        server_factory, pg_proxy, tmp_path, recording_server, accounts=("ada",)
    ) as cluster:
        server, db, schema = cluster.server, cluster.db, cluster.schema
        key = issue_key(server, require=False)
        now = int(server.clock())
        sub = "c-erased-while-exported"
        customer, created = await create(
            server, sign(key, sub=sub, aud="demo", iat=now, exp=now + 300)
        )
        assert created is not None and created["type"] == "created", created
        session_id = created["session_id"]
        await send(customer, type="stop")
        assert (await recv_json(customer))["type"] == "ended"
        await session_ended(db, session_id)
        pseudonym = await db.fetchval("SELECT pseudonym FROM subject_sessions")
        assert pseudonym
        async with client_of(server, "ada") as client:
            pg_proxy.freeze_on(GET_SESSION)
            try:
                body = {"subject": sub, "by": "sub"}
                exporting = asyncio.create_task(client.post("/api/subjects/export", json=body))

                async def stalled() -> bool:
                    assert not exporting.done(), exporting.result().text
                    return pg_proxy.held > 0

                await until(stalled, "the export never read the customer's session")
                erase = erase_command(tmp_path, sub, "sub")
                erased = await asyncio.to_thread(run, *erase, env=cli_environ(schema))
                assert erased.returncode == 0, erased.stdout + erased.stderr
                assert "Erased 1 session(s)" in erased.stdout
            finally:
                pg_proxy.thaw()
            exported = await exporting
        assert exported.status_code == 409, exported.text
        assert pseudonym.encode() not in exported.content
        await nothing_after(db, "subject_erased", session_id, pseudonym)
        exports = await db.fetchval("SELECT count(*) FROM audit WHERE action = 'subject_exported'")
        assert exports == 0


async def test_a_playback_under_way_never_holds_a_running_recordings_frames_or_its_end(
    server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """An auditor plays a recording still running; the playback's transaction waits (its read
    of the frames taken by the database, the answer held) while the customer's page goes on
    and the customer stops the recording. Its frames and its end are stored meanwhile: the
    playback's lock keeps a DELETE out only (a share lock held them until the playback was read,
    and back-to-back playbacks until storage gave up on the recording)."""
    async with proxied(
        server_factory, pg_proxy, tmp_path, recording_server, accounts=("aud",)
    ) as cluster:
        server, db = cluster.server, cluster.db
        customer, alice, _ = await recording(server)
        recording_id = await db.fetchval("SELECT recording_id FROM recordings")
        first = b"\x01before-" + b"a" * 1100  # past recording_flush_bytes: written now

        async def frames_stored(count: int) -> bool:
            query = "SELECT count(*) FROM recording_frames WHERE recording_id = $1"
            return bool(await db.fetchval(query, recording_id) >= count)

        await customer.send(first)
        assert await asyncio.wait_for(alice.recv(), TOLD) == first

        async def first_stored() -> bool:
            return await frames_stored(1)

        await until(first_stored, "the first frame was never stored")
        async with client_of(server, "aud") as client:
            pg_proxy.hold_replies_after(READ_FRAMES)
            try:
                playing = await playback_held(db, client, recording_id)
                second = b"\x01during-" + b"b" * 1100
                await customer.send(second)
                assert await asyncio.wait_for(alice.recv(), TOLD) == second
                await send(customer, type="record_stop")
                assert (await recv_json(alice))["on"] is False

                async def ended_or_waiting() -> bool:
                    assert not playing.done(), playing.result().text
                    ended = await db.fetchval(
                        "SELECT ended_at FROM recordings WHERE recording_id = $1",
                        recording_id,
                    )
                    return ended is not None or bool(await db.fetchval(WAITING_ON_A_LOCK))

                await until(ended_or_waiting, "the recording neither ended nor waited")
                assert not await db.fetchval(WAITING_ON_A_LOCK), "held by the playback"
                assert await frames_stored(2)
            finally:
                pg_proxy.thaw()
            played = await playing
        assert played.status_code == 200, played.text
        header, got = read_container(played.content)
        assert header["recording_id"] == recording_id and got[0] == first


async def test_two_playbacks_and_an_erasure_at_once_all_end_in_turn(
    server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """Two auditors play one recording at once, on two servers of the cluster (one playback's
    transaction waits, its read of the frames taken and the answer held; the other runs
    through), and an admin erases the recording meanwhile. The playbacks never wait for each
    other, the erasure waits for the one under way, and nothing names the recording after its
    erasure: no deadlock, no playback recorded after it."""
    async with proxied(
        server_factory, pg_proxy, tmp_path, recording_server, accounts=("aud", "ada")
    ) as cluster:
        server, db = cluster.server, cluster.db
        _, recording_id, frames = await ended_recording(server, db)
        other = cluster.peer()
        content = f"/api/recordings/{recording_id}/content"
        async with client_of(server, "aud") as first, client_of(other, "aud") as second:
            pg_proxy.hold_replies_after(READ_FRAMES)
            try:
                playing = asyncio.create_task(first.get(content))

                async def reading() -> bool:
                    assert not playing.done(), playing.result().text
                    return not pg_proxy.hold_after  # (emptied once it holds the answer)

                await until(reading, "the first playback never read the frames")
                alongside = await second.get(content)  # not held by the first
                assert alongside.status_code == 200, alongside.text
                with api(other, "ada") as ada:
                    erasing = asyncio.create_task(
                        asyncio.to_thread(ada.delete, f"/api/recordings/{recording_id}")
                    )

                    async def erased_or_waiting() -> bool:
                        assert not playing.done(), playing.result().text
                        return erasing.done() or bool(await db.fetchval(WAITING_ON_A_LOCK))

                    await until(erased_or_waiting, "the erasure neither ran nor waited")
                    assert not erasing.done(), erasing.result().text  # it waits
                    pg_proxy.thaw()
                    played = await playing
                    erased = await erasing
            finally:
                pg_proxy.thaw()
        assert erased.status_code == 204, erased.text
        for answer in (played, alongside):
            assert answer.status_code == 200, answer.text
            header, got = read_container(answer.content)
            assert header["recording_id"] == recording_id and got == frames
        await nothing_after(db, "recording_erased", recording_id)
        plays = await db.fetchval(
            "SELECT count(*) FROM audit WHERE action = 'recording_played' AND seq <"
            " (SELECT seq FROM audit WHERE action = 'recording_erased')"
        )
        assert plays == 2


@pytest.mark.parametrize("erasure", ["recording", "subject"])
async def test_a_playback_begun_while_an_erasure_waits_never_goes_ahead_of_it(
    erasure: str, server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """An auditor's playback is under way (its transaction held, the frames read); an admin
    erases the recording (or its customer) on another server of the cluster and waits for that
    playback; meanwhile another auditor starts a playback there. PostgreSQL let the new
    playback's key share lock in ahead of the erasure's waiting DELETE: it was served and
    recorded while the erasure waited, so back-to-back playbacks could hold an erasure until
    its database timeout (503). Now the erasure waits only for the reads under way when it
    began: a playback begun after it queues behind it, and finds the recording erased (404,
    not recorded); the one under way is served whole, recorded before the erasure."""
    async with proxied(
        server_factory, pg_proxy, tmp_path, recording_server, accounts=("aud", "ada")
    ) as cluster:
        server, db = cluster.server, cluster.db
        session_id, recording_id, frames = await ended_recording(server, db)
        other = cluster.peer()
        content = f"/api/recordings/{recording_id}/content"
        async with client_of(server, "aud") as first, client_of(other, "aud") as second:
            pg_proxy.hold_replies_after(READ_FRAMES)
            try:
                playing = await playback_held(db, first, recording_id)
                with api(other, "ada") as ada:
                    if erasure == "recording":
                        erase: Any = functools.partial(
                            ada.delete, f"/api/recordings/{recording_id}"
                        )
                    else:
                        body = {"subject": session_id, "by": "session"}
                        erase = functools.partial(ada.post, "/api/subjects/erase", json=body)
                    erasing = asyncio.create_task(asyncio.to_thread(erase))

                    async def waiting() -> bool:
                        assert not erasing.done(), erasing.result().text
                        return bool(await db.fetchval(WAITING_ON_A_LOCK))

                    await until(waiting, "the erasure never waited for the playback")
                    late = asyncio.create_task(second.get(content))

                    async def queued_or_served() -> bool:
                        # Served (ahead of the erasure), or waiting behind it.
                        behind = await db.fetchval(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                            " current_database() AND wait_event_type = 'Lock'"
                        )
                        return late.done() or behind >= 2

                    await until(queued_or_served, "the late playback neither ran nor waited")
                    assert not late.done(), "played ahead of the waiting erasure"
                    pg_proxy.thaw()
                    played = await playing
                    erased = await erasing
                    after = await late
            finally:
                pg_proxy.thaw()
        assert erased.status_code in (200, 204), erased.text
        assert played.status_code == 200, played.text
        header, got = read_container(played.content)
        assert header["recording_id"] == recording_id and got == frames
        assert after.status_code == 404, after.text
        action = "recording_erased" if erasure == "recording" else "subject_erased"
        erased_at = await db.fetchval("SELECT seq FROM audit WHERE action = $1", action)
        later = await db.fetch(
            "SELECT action FROM audit WHERE seq > $1 AND (subject = $2 OR details LIKE $3)",
            erased_at,
            recording_id,
            f"%{recording_id}%",
        )
        # The late attempt is on record as refused (as for any erased recording), never
        # as played.
        assert [row["action"] for row in later] == ["recording_refused"]
        plays = await db.fetchval("SELECT count(*) FROM audit WHERE action = 'recording_played'")
        assert plays == 1
