"""Review of the recordings' closing tasks (docs/security.md, "Review of the recordings'
closing tasks"): a recording's stop detaches it at once and a task of its own writes what it
kept and ends it in storage. Here those tasks are attacked with faults, with a start-and-stop
loop, and with a second server (PostgreSQL and Redis), on a real server.

A process whose database is away for it alone, longer than ``process_lost_seconds``, is taken
for dead by another: its sessions are ended there (``server_lost``), their recordings
``interrupted``, and once ended the customer can be erased (``tandem subject erase``: the audit
trail no longer links anything to them). The process taken for dead writes nothing again about
those sessions (:meth:`tandem.hub.SessionHub.taken_for_dead`): but a recording whose closing task
waited for storage was ended there later all the same, with a ``recording_failed`` record naming
it, after the erasure; and a session whose row the erasure had removed was taken for one begun
since, so its customer and agent went on sharing there.

Frames a writer had taken for its write (a stopped recording's closing task's too) were no
longer counted against ``recording_backlog_total_bytes`` while the write waited for storage."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tandem.directory import Directory, operator
from tests.conftest import RunningServer, ServerFactory
from tests.conftest import tandem_in_process as run
from tests.server.db_proxy import StoppableProxy, proxied_url
from tests.server.helpers import recv_json, send
from tests.server.test_recording_races import BACKENDS, TOLD, recording_backend, status
from tests.server.test_recordings import KEY, recording
from tests.server.test_revocation_faults import schema_of
from tests.server.test_scale_out import Cluster, start_cluster
from tests.server.test_storage_faults import runs_of
from tests.storage.conftest import PG_DSN, pg_connect

LOST = 3.0
"""The servers' process_lost_seconds: the outage of one lasts longer."""
FAST = {"heartbeat_seconds": 0.5, "process_lost_seconds": LOST}
SETTLED = 60.0
"""How long a server may take to catch up once storage answers again (a busy machine)."""


async def recording_key(directory: Directory) -> None:
    await directory.set_recording_key(operator("default"), KEY)


@pytest.fixture
def cluster(
    requires_redis: None, server_factory: ServerFactory, tmp_path: Path
) -> Iterator[Cluster]:
    with start_cluster(server_factory, tmp_path, seed_also=recording_key) as start:
        yield start


def hub_of(server: RunningServer) -> object:
    return server.server.config.app.state.services.hub


async def test_a_recording_closing_on_a_process_taken_for_dead_writes_nothing_after_an_erasure(
    cluster: Cluster, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """b's database goes away just as the customer stops the recording: b tells both sides at
    once and its closing task waits for storage. a takes b for dead: the session ends
    ``server_lost``, the recording ``interrupted``, and the customer is erased. When b reaches
    the database again it ends its people's session (``server_shutdown``: its row gone, it was
    taken for one begun since and went on relaying) and writes nothing:
    no ``recording_failed`` (nor any record) naming the erased recording, no row of it again."""
    a = cluster(**FAST)
    schema = schema_of(a)
    b = cluster(database_url=proxied_url(pg_proxy, schema), **FAST)
    customer, alice, created = await recording(b)
    session_id = created["session_id"]
    db = await pg_connect(schema)
    try:
        recording_id = await db.fetchval("SELECT recording_id FROM recordings")
        pg_proxy.down()
        await send(customer, type="record_stop")
        off = {"v": 1, "type": "recording", "on": False, "reason": "stopped_by_customer"}
        assert await recv_json(alice, timeout=10) == off
        assert await recv_json(customer, timeout=10) == off
        hub = hub_of(b)
        deadline = time.monotonic() + SETTLED
        while recording_id not in hub._failed_recordings:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "the closing task never met storage away"
            await asyncio.sleep(0.05)
        query = "SELECT end_reason FROM sessions WHERE session_id = $1"
        deadline = time.monotonic() + SETTLED
        while await db.fetchval(query, session_id) != "server_lost":  # a's sweep
            assert time.monotonic() < deadline, "a never took b for dead"
            await asyncio.sleep(0.1)
        reason = "SELECT end_reason FROM recordings WHERE recording_id = $1"
        assert await db.fetchval(reason, recording_id) == "interrupted"
        environ = {
            **os.environ,
            "TANDEM_DATABASE_URL": f"{PG_DSN}?search_path={schema}",
            "TANDEM_AUDIT_KEY": str(tmp_path / "keys" / "audit.key"),
        }
        erase = ["subject", "erase", "--by", "session", "--yes"]
        erase += ["--data-dir", str(tmp_path / "erasing"), "--", session_id]  # may begin with -
        erased = await asyncio.to_thread(run, *erase, env=environ)
        assert erased.returncode == 0, erased.stdout + erased.stderr
        assert "Erased 1 session(s) and 1 recording(s)" in erased.stdout
        erasure = await db.fetchval("SELECT seq FROM audit WHERE action = 'subject_erased'")
        pg_proxy.up()
        gone = {"v": 1, "type": "ended", "reason": "server_shutdown"}
        assert await recv_json(customer, timeout=SETTLED) == gone
        deadline = time.monotonic() + SETTLED
        while hub._failed_recordings or hub._recording_writes:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "b still has work for the recording"
            await asyncio.sleep(0.1)
        # b's timer runs again over what it retries (nothing is left for the recording).
        runs = runs_of(b, "deadlines")
        deadline = time.monotonic() + SETTLED
        while runs_of(b, "deadlines") < runs + 3:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        later = await db.fetch(
            "SELECT action FROM audit WHERE seq > $1 AND (subject = $2 OR details LIKE $3)",
            erasure,
            recording_id,
            f"%{recording_id}%",
        )
        assert [row["action"] for row in later] == []
        for table in ("recordings", "recording_frames"):
            count = f"SELECT count(*) FROM {table} WHERE recording_id = $1"
            assert await db.fetchval(count, recording_id) == 0, table
    finally:
        await db.close()


@BACKENDS
async def test_recordings_started_and_stopped_in_a_loop_each_keep_their_own_frames(
    backend: str, server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """The agent asks and the customer allows, then stops, again and again, each stop while
    storage does not answer (its frames and its end left to its closing task), the next start
    once it answers again, while the last one's closing task writes. Each recording keeps
    exactly its own frames, in order (none of the one before, none of the one after), each is
    ended ``stopped_by_customer`` with one ``recording_started`` and one ``recording_stopped``,
    and nothing is left held in memory or running once storage has caught up. A customer alone
    cannot loop: a consent nobody asked for closes its socket
    (``test_recording_messages_out_of_turn_are_refused``)."""
    async with recording_backend(backend, server_factory, pg_proxy, tmp_path) as stored:
        customer, alice, _ = await recording(stored.server)
        hub = hub_of(stored.server)
        on = status(True, None)
        off = status(False, "stopped_by_customer")
        sent: list[list[bytes]] = []
        for round_ in range(4):
            if round_:
                await send(alice, type="record")
                assert (await recv_json(customer, timeout=SETTLED))["type"] == "record_request"
                await send(customer, type="record_consent", granted=True)
                assert await recv_json(alice, timeout=SETTLED) == on
                assert await recv_json(customer, timeout=SETTLED) == on
            frames = [b"\x01r%d-%03d" % (round_, i) + b"." * 400 for i in range(8)]
            sent.append(frames)
            with stored.hold():
                for frame in frames:
                    await customer.send(frame)
                    assert await asyncio.wait_for(alice.recv(), TOLD) == frame
                await send(customer, type="record_stop")
                assert await recv_json(alice, timeout=TOLD) == off
                assert await recv_json(customer, timeout=TOLD) == off
        ids = [
            str(row[0])
            for row in await stored.rows(
                "SELECT recording_id FROM recordings ORDER BY started_at, recording_id"
            )
        ]
        assert len(ids) == len(sent)
        kept = {}
        for recording_id in ids:
            assert await stored.ended(recording_id) == "stopped_by_customer"
            kept[recording_id] = await stored.frames(recording_id)
        assert sorted(kept.values()) == sorted(sent)
        deadline = time.monotonic() + SETTLED
        while hub._recording_writes or hub._failed_recordings:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "closing tasks still running"
            await asyncio.sleep(0.05)
        assert hub._recording_backlog.held == 0  # type: ignore[attr-defined]
        for action in ("recording_started", "recording_stopped"):
            rows = await stored.rows(
                "SELECT subject FROM audit WHERE action = ? ORDER BY seq", action
            )
            assert sorted(str(row[0]) for row in rows) == sorted(ids), action


@BACKENDS
async def test_frames_taken_by_a_write_still_count_against_the_total_until_it_is_over(
    backend: str, server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """A recording's writer takes its frames out of the buffer for a write that storage does
    not answer: they are still in memory, and a stopped recording's closing task holds them so
    too, but they no longer counted against ``recording_backlog_total_bytes``, so every
    recording could hold that much again behind its own write (the total bounded nothing while
    the database was slow). Here one recording's write holds 12 KiB, and another's frames
    pass the process's total (16 KiB) with what it waits for: it stops ``unavailable``, both
    sides told, and every frame still reaches its agent."""
    async with recording_backend(
        backend,
        server_factory,
        pg_proxy,
        tmp_path,
        recording_backlog_bytes=1024 * 1024,
        recording_backlog_total_bytes=16 * 1024,
    ) as stored:
        first = await recording(stored.server)
        second = await recording(stored.server)
        off = status(False, "unavailable")
        told: list[Any] = []
        with stored.hold():
            customer, agent, _ = first
            large = b"\x01large" + b"." * (12 * 1024)
            await customer.send(large)  # past recording_flush_bytes: taken by its write
            assert await asyncio.wait_for(agent.recv(), TOLD) == large
            await send(customer, type="record_stop")  # its closing task holds the write
            stopped = status(False, "stopped_by_customer")
            assert await recv_json(agent, timeout=TOLD) == stopped
            assert await recv_json(customer, timeout=TOLD) == stopped
            customer, agent, _ = second
            for i in range(20):  # 10 KiB: with the 12 KiB written, past the total
                frame = b"\x01during-%03d" % i + b"." * 500
                await customer.send(frame)
                while True:  # the frame, and perhaps the notice before it
                    got = await asyncio.wait_for(agent.recv(), TOLD)
                    if isinstance(got, bytes):
                        assert got == frame
                        break
                    told.append(json.loads(got))
            assert told == [off]
            assert await recv_json(customer, timeout=TOLD) == off
        hub = hub_of(stored.server)
        deadline = time.monotonic() + SETTLED
        while hub._recording_writes or hub._recording_backlog.held:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "what was held was never let go"
            await asyncio.sleep(0.05)
