"""A PostgreSQL that stops answering without closing anything (a network partition, a stalled
database host: the proxy of tests.server.db_proxy holds every byte) must not hang the server:
every statement and every wait for a connection is bounded by ``database_timeout_seconds``, so
sign-in answers 503, a new customer's socket is closed 1013, the background tasks fail and try
again, and all of it works again once the database answers, without a restart."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import AGENT_PASSWORD, RunningServer, ServerFactory
from tests.server.db_proxy import StoppableProxy, proxied_url
from tests.server.helpers import closed_with, open_customer, recv_json, send, start_session
from tests.storage.conftest import fresh_schema, pg_connect

TIMEOUT = 1.0
"""The servers' database_timeout_seconds here."""
BOUND = 8 * TIMEOUT + 5
"""How long an answer may take while the database is frozen: a statement, the cancel request
it sends, a fresh connection and a first statement on it, with room for a slow machine (far
below the test's own limits: without the bound, the answers never come)."""


ANSWERED = 10.0
"""How long a request that needs no database may take while it is frozen below: far under the
servers' database_timeout_seconds there (60 s)."""


async def wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def seed_people(data_dir: Path, url: str) -> None:
    """The accounts of the scale-out tests, made by the `tandem` commands on ``url`` (the audit
    key in ``data_dir``)."""
    from tandem.config import Settings
    from tandem.directory import offline
    from tests.server.test_scale_out import add_people, run_in_thread

    async def seed() -> None:
        settings = Settings.load(environ={}, data_dir=data_dir, database_url=url)
        async with offline(settings) as directory:
            await add_people(directory)

    run_in_thread(seed)


def recording_seed(tmp_path: Path, url: str) -> Path:
    """The accounts on ``url`` and the default organisation's recording key; the audit key's
    file."""
    from tandem.config import Settings
    from tandem.directory import offline, operator
    from tests.server.test_recordings import KEY
    from tests.server.test_scale_out import run_in_thread

    seed_people(tmp_path / "seed", url)

    async def with_key() -> None:
        loaded = Settings.load(environ={}, data_dir=tmp_path / "seed", database_url=url)
        async with offline(loaded) as directory:
            await directory.set_recording_key(operator("default"), KEY)

    run_in_thread(with_key)
    return tmp_path / "seed" / "audit.key"


def recording_server(
    server_factory: ServerFactory, tmp_path: Path, url: str, **settings: Any
) -> RunningServer:
    """A server on the proxied database ``url`` whose organisation has the recording key: the
    accounts seeded, recordings flushed every KiB, storage waits bounded by FROZEN_TIMEOUT, no
    purge; ``settings`` add to these."""
    return server_factory(
        database_url=url,
        audit_key_file=recording_seed(tmp_path, url),
        database_timeout_seconds=FROZEN_TIMEOUT,
        recording_flush_bytes=1024,
        purge_interval_seconds=86400.0,
        **settings,
    )


def seeded_server(
    server_factory: ServerFactory, url: str, tmp_path: Path, **settings: Any
) -> RunningServer:
    """A server on ``url`` with the accounts :func:`seed_people` makes (the audit key in
    ``tmp_path / "seed"``), and ``settings``."""
    seed_people(tmp_path / "seed", url)
    return server_factory(
        database_url=url, audit_key_file=tmp_path / "seed" / "audit.key", **settings
    )


async def test_a_frozen_postgresql_gets_clear_refusals_in_bounded_time_then_recovers(
    server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)

        server = seeded_server(
            server_factory,
            url,
            tmp_path,
            database_timeout_seconds=TIMEOUT,
            heartbeat_seconds=0.5,
        )
        credentials = {"username": "alice", "password": AGENT_PASSWORD}
        assert httpx.post(f"{server.base}/api/login", json=credentials).status_code == 200
        with pg_proxy.frozen():
            started = time.monotonic()
            refused = httpx.post(f"{server.base}/api/login", json=credentials, timeout=120)
            assert time.monotonic() - started < BOUND
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert "retry-after" in refused.headers and "Traceback" not in refused.text
            started = time.monotonic()
            customer = await open_customer(server)  # its site is looked up first
            assert await closed_with(customer, timeout=120) == (
                1013,
                "database not answering: try again soon",
            )
            assert time.monotonic() - started < BOUND
            # The heartbeat met the frozen database too: it failed, and runs again.
            await wait_for(lambda: "heartbeat" in server.server.config.app.state.background.failing)
        await wait_for(lambda: httpx.get(f"{server.base}/readyz").status_code == 200)
        await wait_for(lambda: not server.server.config.app.state.background.failing)
        assert httpx.post(f"{server.base}/api/login", json=credentials).status_code == 200
        await start_session(server)
        server.stop()  # before its schema goes


async def test_the_compliance_notes_do_not_hold_requests_while_the_database_is_frozen(
    server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """The first request a reverse proxy forwards (a proxy's header), and the first over plain
    HTTP, are noted in the database for the compliance check. The note was written on the
    request's way in: with the database frozen, that request waited ``database_timeout_seconds``
    (and the next one again, the note refused), though it needed no database (a probe, the SDK's
    script). The note is now written beside the request, which is answered at once; it is
    written once the database answers."""
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        server = server_factory(
            database_url=url,
            audit_key_file=tmp_path / "keys" / "audit.key",
            database_timeout_seconds=60.0,
            transport_note_recheck_seconds=0.5,
        )
        forwarded = {"x-forwarded-for": "203.0.113.7"}
        with pg_proxy.frozen():
            for path in ("/healthz", "/sdk/tandem.js", "/healthz"):
                answer = httpx.get(f"{server.base}{path}", headers=forwarded, timeout=ANSWERED)
                assert answer.status_code == 200, (path, answer.text)

        async def noted() -> list[str]:
            db = await pg_connect(schema)
            try:
                rows = await db.fetch("SELECT name FROM installation_notes ORDER BY name")
            finally:
                await db.close()
            return [row["name"] for row in rows]

        deadline = time.monotonic() + 90  # the frozen writes fail (60 s), the next requests note
        # (Other notes may come meanwhile: the retention purge's clock, recordings_purged_at.)
        while not {"plain_http_seen", "proxy_headers_seen"} <= set(await noted()):
            assert time.monotonic() < deadline, await noted()
            httpx.get(f"{server.base}/healthz", headers=forwarded, timeout=ANSWERED)
            await asyncio.sleep(0.2)
        server.stop()  # before its schema goes


SESSIONS = 4
"""Waiting sessions whose codes expire together while the database is frozen below."""
FROZEN_TIMEOUT = 10.0
"""The server's database_timeout_seconds below: a frozen statement fails after this long."""


async def test_sessions_ending_together_are_each_told_at_once_while_the_database_is_frozen(
    server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """Several sessions' codes expire at one tick while the database is frozen. Each customer
    is told ``ended`` first, then its end is stored; the timer went through the sessions one
    after another, so each waited for the storage writes of those before it (each up to
    ``database_timeout_seconds``, here 10 s): the last customer of N was told after N-1 of
    them. Each is now told within half of one, and every end is stored once it answers."""
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)

        server = seeded_server(
            server_factory,
            url,
            tmp_path,
            database_timeout_seconds=FROZEN_TIMEOUT,
            code_ttl_seconds=60.0,
            purge_interval_seconds=86400.0,
        )
        customers = [(await start_session(server))[0] for _ in range(SESSIONS)]
        with pg_proxy.frozen():
            server.clock.advance(61)
            told = await asyncio.gather(
                *(recv_json(customer, timeout=FROZEN_TIMEOUT / 2) for customer in customers)
            )
        assert told == [{"v": 1, "type": "ended", "reason": "code_expired"}] * SESSIONS
        db = await pg_connect(schema)
        try:
            query = "SELECT count(*) FROM sessions WHERE end_reason = 'code_expired'"
            deadline = time.monotonic() + 120
            while await db.fetchval(query) < SESSIONS:
                assert time.monotonic() < deadline, "the ends were never stored"
                await asyncio.sleep(0.2)
        finally:
            await db.close()
        server.stop()  # before its schema goes


async def test_a_deadline_is_met_while_an_earlier_ones_storage_writes_wait_for_the_database(
    server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """One waiting session's code expires while the database is frozen: its customer is told,
    then its end waits to be stored (up to ``database_timeout_seconds``, 10 s here). Another's
    code expires a tick later. The timer waited for the first session's writes before it met
    any later deadline (a code, an idle or maximum-length session), so the second customer was
    told only once the first's writes gave up. Now it is told at once."""
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        server = seeded_server(
            server_factory,
            url,
            tmp_path,
            database_timeout_seconds=FROZEN_TIMEOUT,
            code_ttl_seconds=60.0,
            purge_interval_seconds=86400.0,
        )
        first, _ = await start_session(server)
        server.clock.advance(30)
        second, _ = await start_session(server)
        ended = {"v": 1, "type": "ended", "reason": "code_expired"}
        with pg_proxy.frozen():
            server.clock.advance(31)  # the first code expires; its end waits for the database
            assert await recv_json(first, timeout=FROZEN_TIMEOUT / 2) == ended
            await wait_for(lambda: pg_proxy.held >= 1)
            server.clock.advance(30)  # the second's
            assert await recv_json(second, timeout=FROZEN_TIMEOUT / 2) == ended
        server.stop()  # before its schema goes


async def test_deadlines_are_met_each_tick_while_the_database_is_away(
    server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """A session's end cannot be stored (the database away), so the deadline timer fails; the
    supervisor waited ``background_backoff_seconds`` (doubling up to 30 s) before the next run,
    and every deadline (a code, an idle or maximum-length session) waited as long. The timer
    runs every tick now, failing or not: another code expiring meanwhile is told at once."""
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        server = seeded_server(
            server_factory,
            url,
            tmp_path,
            code_ttl_seconds=60.0,
            purge_interval_seconds=86400.0,
            background_backoff_seconds=60.0,
            background_backoff_max_seconds=60.0,
        )
        first, _ = await start_session(server)
        server.clock.advance(30)
        second, _ = await start_session(server)
        ended = {"v": 1, "type": "ended", "reason": "code_expired"}
        background = server.server.config.app.state.background
        pg_proxy.down()
        try:
            server.clock.advance(31)  # the first code expires; its end cannot be stored
            assert await recv_json(first, timeout=30) == ended
            await wait_for(lambda: "deadlines" in background.failing)
            server.clock.advance(30)  # the second's
            assert await recv_json(second, timeout=30) == ended
        finally:
            pg_proxy.up()
        server.stop()  # before its schema goes


async def test_deadlines_are_met_while_the_timers_own_storage_work_waits_for_a_frozen_database(
    server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """The database freezes while an agent's socket is due for its periodic re-check (a read
    that now waits ``database_timeout_seconds``, 10 s here). A waiting customer's code expires
    meanwhile: it is told at once. The re-check, the purges and the counts ran in the timer
    that meets deadlines, so every deadline waited for the frozen statement, at every tick
    while the re-check stayed due."""
    from tests.server.helpers import sharing_session

    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)

        server = seeded_server(
            server_factory,
            url,
            tmp_path,
            database_timeout_seconds=FROZEN_TIMEOUT,
            agent_reauth_seconds=300.0,
            code_ttl_seconds=400.0,
            purge_interval_seconds=86400.0,
        )
        await sharing_session(server)  # its agent's socket: re-checked every 300 s
        waiting, _ = await start_session(server)
        hub = server.server.config.app.state.services.hub
        with pg_proxy.frozen():
            server.clock.advance(301)
            # The re-check has begun (its next time set first), and waits for the database.
            await wait_for(
                lambda: all(s.reauth_due > server.clock() + 200 for s in hub.signed_in_seats())
            )
            server.clock.advance(100)  # the waiting code expires
            assert await recv_json(waiting, timeout=FROZEN_TIMEOUT / 2) == {
                "v": 1,
                "type": "ended",
                "reason": "code_expired",
            }
        server.stop()  # before its schema goes


async def test_a_vacuum_frozen_with_the_database_does_not_hold_up_the_stop(
    server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """The database freezes while the vacuum after a session's end runs (its statement waits up
    to ``database_vacuum_timeout_seconds``, 600 s): the server still stops in bounded time."""
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        server = seeded_server(
            server_factory,
            url,
            tmp_path,
            database_timeout_seconds=TIMEOUT,
            database_vacuum_interval_seconds=0.1,
        )
        health = server.server.config.app.state.services.hub.background.health
        await wait_for(lambda: health["vacuum"].runs > 0)  # its start's round is over
        with pg_proxy.frozen(on=b"VACUUM"):
            await start_session(server)
            server.clock.advance(3600)  # its code expires: the join code deleted, then vacuumed
            assert pg_proxy.flowing is not None
            await wait_for(lambda: not pg_proxy.flowing.is_set())
            started = time.monotonic()
            server.stop()
            stopped = time.monotonic() - started
            assert not server.thread.is_alive()
            assert stopped < BOUND, stopped


async def test_a_recorded_sessions_frames_keep_flowing_while_the_database_is_frozen(
    server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """The database freezes while a session is recorded. The recording's write waits for it
    (up to ``database_timeout_seconds``, 10 s here); the customer's frames went on only once
    it failed, so both sides froze with the database. Now every frame reaches the agent, in
    order, while the database is still frozen; the recording stops ``unavailable`` (both sides
    told) once its backlog is full, and once the database answers it is ended ``unavailable``
    with exactly the frames stored before (and a prefix of those after), and a new recording
    works without a restart."""
    from tests.server.test_recordings import recording

    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        server = recording_server(
            server_factory,
            tmp_path,
            url,
            recording_backlog_bytes=16 * 1024,
        )
        customer, alice, _ = await recording(server)
        db = await pg_connect(schema)
        try:
            [recording_id] = await db.fetchval("SELECT array_agg(recording_id) FROM recordings")

            async def stored() -> list[bytes]:
                rows = await db.fetch(
                    "SELECT seq, data FROM recording_frames WHERE recording_id = $1 ORDER BY seq",
                    recording_id,
                )
                assert [row["seq"] for row in rows] == list(range(len(rows)))
                return [bytes(row["data"]) for row in rows]

            sent = [b"\x01before-%03d" % i + b"." * 500 for i in range(6)]
            for frame in sent:
                await customer.send(frame)
                assert await asyncio.wait_for(alice.recv(), FROZEN_TIMEOUT / 2) == frame
            deadline = time.monotonic() + 30
            while await stored() != sent:  # each written, by size or by the timer
                assert time.monotonic() < deadline, "the frames before the freeze were not stored"
                await asyncio.sleep(0.1)
            during = [b"\x01during-%03d" % i + b"." * 500 for i in range(60)]
            off = {"v": 1, "type": "recording", "on": False, "reason": "unavailable"}
            with pg_proxy.frozen():
                told: list[Any] = []
                relayed: list[bytes] = []
                for frame in during:
                    await customer.send(frame)
                    while True:  # the frame, and perhaps the notice before it
                        got = await asyncio.wait_for(alice.recv(), FROZEN_TIMEOUT / 2)
                        if isinstance(got, bytes):
                            relayed.append(got)
                            break
                        told.append(json.loads(got))
                assert relayed == during  # all of them, in order, while it is frozen
                assert told == [off]  # its backlog (16 KiB) was full before the 60th frame
                assert await recv_json(customer, timeout=FROZEN_TIMEOUT / 2) == off
            deadline = time.monotonic() + 60
            query = "SELECT end_reason FROM recordings WHERE recording_id = $1"
            while await db.fetchval(query, recording_id) != "unavailable":
                assert time.monotonic() < deadline, "the recording was never ended"
                await asyncio.sleep(0.1)
            kept = await stored()
            assert kept[: len(sent)] == sent and kept == (sent + during)[: len(kept)]
            # The database answers again: a new recording of the same session keeps its frames.
            await send(alice, type="record")
            await recv_json(customer, timeout=30)  # the request
            await send(customer, type="record_consent", granted=True)
            on = {"v": 1, "type": "recording", "on": True, "reason": None}
            assert await recv_json(alice, timeout=30) == on
            after = b"\x01after" + b"." * 2000
            await customer.send(after)
            assert await asyncio.wait_for(alice.recv(), 30) == after
            query = "SELECT count(*) FROM recording_frames WHERE data = $1"
            deadline = time.monotonic() + 30
            while await db.fetchval(query, after) != 1:
                assert time.monotonic() < deadline, "the new recording's frame was not stored"
                await asyncio.sleep(0.1)
        finally:
            await db.close()
        server.stop()  # before its schema goes


async def test_many_recordings_backlogs_are_bounded_together_while_the_database_is_frozen(
    server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """Each recording's backlog was bounded alone (``recording_backlog_bytes``, 32 MiB), so
    ``max_sessions`` recordings held that much each while the database was frozen. Two sessions
    record here, each far under its own bound (1 MiB); together they pass the process's
    ``recording_backlog_total_bytes`` (16 KiB): a recording stops ``unavailable``, both sides
    told, and every frame still reaches its agent."""
    from tests.server.test_recordings import recording

    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        server = recording_server(
            server_factory,
            tmp_path,
            url,
            recording_backlog_bytes=1024 * 1024,
            recording_backlog_total_bytes=16 * 1024,
        )
        first = await recording(server)
        second = await recording(server)
        off = {"v": 1, "type": "recording", "on": False, "reason": "unavailable"}
        told: list[Any] = []
        with pg_proxy.frozen():
            for i in range(30):  # 2 x 30 x 500 bytes: 30 KiB, each 15 KiB, both under 1 MiB
                for customer, agent, _ in (first, second):
                    frame = b"\x01during-%03d" % i + b"." * 500
                    await customer.send(frame)
                    while True:  # the frame, and perhaps the notice before it
                        got = await asyncio.wait_for(agent.recv(), FROZEN_TIMEOUT / 2)
                        if isinstance(got, bytes):
                            assert got == frame
                            break
                        told.append(json.loads(got))
            assert off in told  # the total (16 KiB) was passed: a recording stopped
        # Once the database answers, what was held is written (or was let go): none is left
        # counted against the total.
        hub = server.server.config.app.state.services.hub
        await wait_for(lambda: hub._recording_backlog.held == 0)
        server.stop()  # before its schema goes


async def test_a_customers_stop_behind_frames_queued_for_a_frozen_database_keeps_them_all(
    server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """Frames wait in the recording's writer for a frozen database when the customer stops
    the recording (after its end marker). Once the database answers, every frame sent before
    the stop is stored, in order, before the recording is ended ``stopped_by_customer``: none
    after the end, none dropped."""
    from tests.server.test_recordings import recording

    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        server = recording_server(server_factory, tmp_path, url)
        customer, alice, _ = await recording(server)
        db = await pg_connect(schema)
        try:
            [recording_id] = await db.fetchval("SELECT array_agg(recording_id) FROM recordings")
            sent = [b"\x01queued-%03d" % i + b"." * 500 for i in range(20)]
            sent.append(b"\x01end-marker")
            with pg_proxy.frozen():
                for frame in sent:
                    await customer.send(frame)
                    assert await asyncio.wait_for(alice.recv(), FROZEN_TIMEOUT / 2) == frame
                await send(customer, type="record_stop")
            query = "SELECT end_reason FROM recordings WHERE recording_id = $1"
            deadline = time.monotonic() + 60
            while await db.fetchval(query, recording_id) is None:
                assert time.monotonic() < deadline, "the recording was never ended"
                await asyncio.sleep(0.1)
            assert await db.fetchval(query, recording_id) == "stopped_by_customer"
            rows = await db.fetch(
                "SELECT seq, data FROM recording_frames WHERE recording_id = $1 ORDER BY seq",
                recording_id,
            )
            assert [row["seq"] for row in rows] == list(range(len(sent)))
            assert [bytes(row["data"]) for row in rows] == sent
        finally:
            await db.close()
        server.stop()  # before its schema goes


async def test_a_frame_reaching_the_size_limit_and_a_full_backlog_at_once_is_applied_whole(
    server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """One frame brings a recording to its size limit while its backlog is full (the database
    frozen): the stop for the backlog was made, and dropped unawaited (a coroutine never
    awaited: its effects never applied). Both are applied now; every frame still reaches the
    agent and the recording is ended ``unavailable`` once the database answers."""
    import gc
    import warnings

    from tests.server.test_recordings import recording

    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        # The deadline timer also starts the writer, with whatever is buffered (every 50 ms
        # here): 35 frames of 512 bytes made the backlog full one frame early whenever it took
        # the first alone (a busy machine), and the limit's frame then stopped nothing. The
        # second frame here is past the backlog alone, the first within it: the second is the
        # limit and a full backlog at once, whatever the writer took and whenever.
        first = b"\x01first" + b"." * 1018  # 1 KiB: starts the writer (recording_flush_bytes)
        second = b"\x01second" + b"." * 4089  # 4 KiB
        server = recording_server(
            server_factory,
            tmp_path,
            url,
            recording_backlog_bytes=2 * 1024,
            max_recording_bytes=len(first) + len(second),
        )
        customer, alice, _ = await recording(server)
        db = await pg_connect(schema)
        try:
            [recording_id] = await db.fetchval("SELECT array_agg(recording_id) FROM recordings")
            told: list[Any] = []
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with pg_proxy.frozen():
                    for frame in (first, second):
                        await customer.send(frame)
                        while True:  # the frame, and perhaps a notice before it
                            got = await asyncio.wait_for(alice.recv(), FROZEN_TIMEOUT / 2)
                            if isinstance(got, bytes):
                                assert got == frame
                                break
                            told.append(json.loads(got))
                    got = await asyncio.wait_for(alice.recv(), FROZEN_TIMEOUT / 2)
                    told.append(json.loads(got))
                    gc.collect()
            never_awaited = [w for w in caught if "never awaited" in str(w.message)]
            assert never_awaited == []
            assert told == [{"v": 1, "type": "recording", "on": False, "reason": "size_limit"}]
            query = "SELECT end_reason FROM recordings WHERE recording_id = $1"
            deadline = time.monotonic() + 60
            while await db.fetchval(query, recording_id) is None:
                assert time.monotonic() < deadline, "the recording was never ended"
                await asyncio.sleep(0.1)
            assert await db.fetchval(query, recording_id) == "unavailable"
        finally:
            await db.close()
        server.stop()  # before its schema goes


async def test_a_session_ending_behind_frames_queued_for_a_frozen_database_keeps_them_all(
    server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """The agent leaves while a recording's frames wait in its writer for a frozen database;
    the customer's end marker and stop follow. Once the database answers, the session ends
    for the customer and every frame, the end marker last, is stored in order before the
    recording is ended ``session_ended``."""
    from tests.server.test_recordings import recording

    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        server = recording_server(server_factory, tmp_path, url)
        customer, alice, _ = await recording(server)
        db = await pg_connect(schema)
        try:
            [recording_id] = await db.fetchval("SELECT array_agg(recording_id) FROM recordings")
            sent = [b"\x01queued-%03d" % i + b"." * 500 for i in range(20)]
            with pg_proxy.frozen():
                for frame in sent:
                    await customer.send(frame)
                    assert await asyncio.wait_for(alice.recv(), FROZEN_TIMEOUT / 2) == frame
                await send(alice, type="leave")
                ending = {"v": 1, "type": "recording", "on": False, "reason": "session_ending"}
                assert await recv_json(customer, timeout=FROZEN_TIMEOUT / 2) == ending
                sent.append(b"\x01end-marker")
                await customer.send(sent[-1])
                await send(customer, type="record_stop")
            ended = {"v": 1, "type": "ended", "reason": "agent_left"}
            assert await recv_json(customer, timeout=30) == ended
            query = "SELECT end_reason FROM recordings WHERE recording_id = $1"
            deadline = time.monotonic() + 60
            while await db.fetchval(query, recording_id) is None:
                assert time.monotonic() < deadline, "the recording was never ended"
                await asyncio.sleep(0.1)
            assert await db.fetchval(query, recording_id) == "session_ended"
            rows = await db.fetch(
                "SELECT seq, data FROM recording_frames WHERE recording_id = $1 ORDER BY seq",
                recording_id,
            )
            assert [row["seq"] for row in rows] == list(range(len(sent)))
            assert [bytes(row["data"]) for row in rows] == sent
        finally:
            await db.close()
        server.stop()  # before its schema goes


SOCKETS = 6
"""An account's open sockets, all revoked at once below."""


async def test_revoked_sockets_are_re_checked_side_by_side_while_the_database_is_slow(
    server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """An account's sign-in is ended by a change that announced nothing (a CLI change: the
    periodic re-check finds it), and the database stalls while its sockets are re-checked. They
    were re-checked one after another, each waiting for the database: with N sockets, the last
    was closed N reads late. Now all N wait for the database at once (``recheck_concurrency``),
    and every one is closed once it answers."""
    from tests.server.helpers import login_cookie, open_agent

    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        server = seeded_server(
            server_factory,
            url,
            tmp_path,
            database_timeout_seconds=60.0,  # the stalled reads wait, rather than fail
            agent_reauth_seconds=300.0,
            first_message_timeout_seconds=400.0,  # the sockets stay open, silent, past 300 s
            purge_interval_seconds=86400.0,
        )
        cookie = login_cookie(server)
        agents = [await open_agent(server, cookie) for _ in range(SOCKETS)]
        hub = server.server.config.app.state.services.hub
        await wait_for(lambda: len(hub.signed_in_seats()) == SOCKETS)
        db = await pg_connect(schema)
        try:
            await db.execute("DELETE FROM logins")  # ended, and nobody told
        finally:
            await db.close()
        with pg_proxy.frozen():
            server.clock.advance(301)  # every socket is due
            await wait_for(lambda: pg_proxy.held >= SOCKETS)  # all their reads wait at once
        closes = await asyncio.gather(*(closed_with(agent, timeout=60) for agent in agents))
        assert closes == [(4401, "signed out: sign in again")] * SOCKETS
        server.stop()  # before its schema goes
