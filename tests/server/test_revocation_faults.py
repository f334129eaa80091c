"""The re-checks of open agent and supervisor sockets (tandem.revocation, ``hub.recheck``) under
storage faults: a re-check that fails because the database is away is tried again as soon as it
answers, so a socket whose teams stopped serving its session's site is closed then, not only at
its next periodic check (``agent_reauth_seconds``: an hour or five minutes here).

Server b reaches PostgreSQL through a proxy the test stops (tests/server/db_proxy.py); server a,
beside it on the same database and Redis, makes the change and announces it."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tandem.directory import offline, operator
from tandem.revocation import SIGNED_OUT
from tandem.storage import open_storage
from tests.conftest import AGENT_PASSWORD, RunningServer, ServerFactory
from tests.grants import owned
from tests.private_redis import PrivateRedis, running_private_redis
from tests.server.db_proxy import StoppableProxy, proxied_url
from tests.server.helpers import closed_with, recv_json, sharing_session, start_session
from tests.server.test_cluster_faults import Cluster as FaultCluster
from tests.server.test_organisations import api
from tests.server.test_revocation import HOURLY, TEAMS_CHANGED, relays
from tests.server.test_scale_out import Cluster, run_in_thread, start_cluster
from tests.server.test_storage_faults import (
    BUSY,
    LOCK_WAIT,
    failures_of,
    runs_of,
    stored,
    wait_for,
    write_lock,
)
from tests.storage.conftest import PG_DSN


@pytest.fixture
def cluster(
    requires_redis: None, server_factory: ServerFactory, tmp_path: Path
) -> Iterator[Cluster]:
    """Servers sharing PostgreSQL and Redis (tests/server/test_scale_out.py)."""
    with start_cluster(server_factory, tmp_path) as start:
        yield start


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A Redis of the test's own, to stop and start (tests/private_redis.py)."""
    yield from running_private_redis()


def schema_of(server: RunningServer) -> str:
    url = server.settings.database_url
    assert url
    return parse_qs(urlsplit(url).query)["search_path"][0]


def give_the_site_to_billing_behind_the_servers_back(server: RunningServer) -> None:
    """Another tool moves the site to another team in the database (no announcement)."""
    direct = dataclasses.replace(
        server.settings, database_url=f"{PG_DSN}?search_path={schema_of(server)}"
    )

    async def move() -> None:
        storage = await open_storage(direct)
        try:
            site = await storage.get_site("demo")
            assert site is not None
            await storage.update_site(*owned(dataclasses.replace(site, teams=("billing",))))
        finally:
            await storage.close()

    run_in_thread(move)


def add_billing_and_an_admin(server: RunningServer) -> None:
    async def add() -> None:
        async with offline(server.settings) as directory:
            default = operator("default")
            await directory.add_team(default, "billing")
            await directory.add_user(
                default,
                "ada",
                AGENT_PASSWORD,
                "admin",
                None,
                (),
                mfa_exempt=True,
                change_required=False,
            )

    run_in_thread(add)


async def test_a_site_change_announced_while_a_servers_database_is_away_closes_its_agent_once_back(
    cluster: Cluster, pg_proxy: StoppableProxy
) -> None:
    """Server b reaches the database through a proxy the test stops. The site's teams change on
    server a meanwhile: b hears the announcement, and its re-check fails. Once b's database
    answers again, the re-check is tried again and the agent is closed."""
    a = cluster(**HOURLY)
    b = cluster(database_url=proxied_url(pg_proxy, schema_of(a)), **HOURLY)
    add_billing_and_an_admin(a)
    customer, agent, _ = await sharing_session(b)
    assert await relays(customer, agent, b"\x01before")
    pg_proxy.down()
    failed_before = failures_of(b, "revocations")
    with api(a, "ada") as ada:
        assert ada.patch("/api/sites/demo", json={"teams": ["billing"]}).status_code == 200
    await wait_for(lambda: failures_of(b, "revocations") > failed_before)
    pg_proxy.up()
    assert await closed_with(agent, timeout=30) == TEAMS_CHANGED
    assert await recv_json(customer, timeout=30) == {
        "v": 1,
        "type": "ended",
        "reason": "agent_lost",
    }
    b.stop()  # before its schema goes


async def test_a_periodic_recheck_that_failed_is_tried_again_once_the_database_answers(
    cluster: Cluster, pg_proxy: StoppableProxy
) -> None:
    """The timer's re-check of a socket fails while the database is away: it is tried again at
    the next tick once it answers, not a whole interval later (the clock stands still here)."""
    a = cluster(**HOURLY)
    b = cluster(
        database_url=proxied_url(pg_proxy, schema_of(a)),
        agent_reauth_seconds=300.0,
        purge_interval_seconds=86400.0,
    )
    add_billing_and_an_admin(a)
    customer, agent, _ = await sharing_session(b)
    assert await relays(customer, agent, b"\x01before")  # the consent's storage write is done
    pg_proxy.down()
    give_the_site_to_billing_behind_the_servers_back(b)
    failed_before = failures_of(b, "rechecks"), failures_of(b, "upkeep")
    # The socket's re-check is due, and so is the purge of recordings (every minute): each
    # fails in its own task (``rechecks``, ``upkeep``).
    b.clock.advance(301)
    await wait_for(lambda: failures_of(b, "rechecks") > failed_before[0])
    await wait_for(lambda: failures_of(b, "upkeep") > failed_before[1])
    pg_proxy.up()
    assert await closed_with(agent, timeout=30) == TEAMS_CHANGED
    assert await recv_json(customer, timeout=30) == {
        "v": 1,
        "type": "ended",
        "reason": "agent_lost",
    }
    b.stop()  # before its schema goes


async def test_a_socket_found_revoked_while_its_audit_record_cannot_be_written_is_closed_at_once(
    server_factory: ServerFactory,
) -> None:
    """The timer's re-check finds alice's sign-in gone (another tool signed her out in the
    database: no announcement) while the database answers reads but takes no write (another
    connection holds SQLite's write lock; a full disk or a PostgreSQL lost between the read and
    the write do the same). Her socket is closed then, though the audit record of the close
    could not be written (a socket being revoked is not checked again: left open there, it
    stayed open for good); the record is written once writes pass, with the time of the close."""
    server = server_factory(agent_reauth_seconds=300.0, purge_interval_seconds=86400.0, **BUSY)
    customer, agent, _ = await sharing_session(server)
    assert await relays(customer, agent, b"\x01before")  # the consent's storage write is done
    await wait_for(lambda: runs_of(server, "upkeep") >= 1)  # the first purges are done
    stored(server, "DELETE FROM logins")
    with write_lock(server):
        server.clock.advance(301)
        assert await closed_with(agent, timeout=LOCK_WAIT) == (4401, SIGNED_OUT)
        closed_by = server.clock()
        closes = "SELECT at FROM audit WHERE action = 'socket_closed'"
        assert stored(server, closes) == []
    await wait_for(lambda: len(stored(server, closes)) == 1, LOCK_WAIT)
    [(at,)] = stored(server, closes)
    assert at <= closed_by  # when it was closed, not when the record could be written


async def test_a_write_that_keeps_failing_does_not_hold_up_the_rechecks_of_open_sockets(
    server_factory: ServerFactory,
) -> None:
    """While no write passes (another connection holds SQLite's write lock; a full disk does the
    same), a waiting session's code expires: its end cannot be stored, and every tick tries it
    again first. The re-checks of open sockets are reads, and still run: alice, signed out
    behind the server's back meanwhile, is closed at her re-check, not once writes pass."""
    server = server_factory(
        agent_reauth_seconds=300.0, purge_interval_seconds=86400.0, code_ttl_seconds=200.0, **BUSY
    )
    customer, agent, _ = await sharing_session(server)
    assert await relays(customer, agent, b"\x01before")  # the consent's storage write is done
    waiting, _ = await start_session(server)
    await wait_for(lambda: runs_of(server, "upkeep") >= 1)  # the first purges are done
    stored(server, "DELETE FROM logins")
    with write_lock(server):
        server.clock.advance(301)
        assert await recv_json(waiting, timeout=LOCK_WAIT) == {
            "v": 1,
            "type": "ended",
            "reason": "code_expired",
        }
        assert await closed_with(agent, timeout=LOCK_WAIT) == (4401, SIGNED_OUT)
        # The end's write failed in a task of the timer's: its next run says so.
        await wait_for(lambda: failures_of(server, "deadlines") >= 1)


async def test_every_agent_an_announcement_names_is_rechecked_though_the_first_recheck_failed(
    cluster: Cluster, pg_proxy: StoppableProxy
) -> None:
    """Two agents of one site on server b; the announcement's re-check of the first fails (b's
    database away) before the second is looked at. Both are closed once the database answers."""
    a = cluster(**HOURLY)
    b = cluster(database_url=proxied_url(pg_proxy, schema_of(a)), **HOURLY)
    add_billing_and_an_admin(a)
    sessions = [await sharing_session(b) for _ in range(2)]
    for customer, agent, _ in sessions:  # the consents' storage writes are done
        assert await relays(customer, agent, b"\x01before")
    pg_proxy.down()
    failed_before = failures_of(b, "revocations")
    with api(a, "ada") as ada:
        assert ada.patch("/api/sites/demo", json={"teams": ["billing"]}).status_code == 200
    await wait_for(lambda: failures_of(b, "revocations") > failed_before)
    pg_proxy.up()
    for customer, agent, _ in sessions:
        assert await closed_with(agent, timeout=30) == TEAMS_CHANGED
        assert (await recv_json(customer, timeout=30))["reason"] == "agent_lost"
    b.stop()  # before its schema goes


async def test_a_site_change_announced_while_redis_is_away_closes_the_other_servers_agent_once_back(
    server_factory: ServerFactory, tmp_path: Path, private_redis: PrivateRedis
) -> None:
    """Redis stops; server a changes the site's teams and announces it, which server b cannot
    hear. Once Redis is back, b re-checks every open socket (it may have missed announcements),
    and closes its agent: not only at the next periodic check, an hour later here."""
    cluster = FaultCluster(server_factory, tmp_path, private_redis.url)
    cluster.setup()
    try:
        a, b = cluster.start(**HOURLY), cluster.start(**HOURLY)
        add_billing_and_an_admin(a)
        customer, agent, _ = await sharing_session(b)
        assert await relays(customer, agent, b"\x01before")
        outages = b.server.config.app.state.services.fanout.outages
        private_redis.stop()
        await wait_for(lambda: b.server.config.app.state.services.fanout.outages > outages)
        with api(a, "ada") as ada:
            assert ada.patch("/api/sites/demo", json={"teams": ["billing"]}).status_code == 200
        private_redis.start()
        assert await closed_with(agent, timeout=30) == TEAMS_CHANGED
        assert (await recv_json(customer, timeout=30))["reason"] == "agent_lost"
    finally:
        cluster.teardown()


async def test_a_site_change_announced_while_the_announcing_server_lost_redis_reaches_the_others(
    cluster: Cluster,
) -> None:
    """Server a loses Redis (its link only: server b's stays up, so b sees no outage); a's admin
    changes the site's teams meanwhile, and a's announcement cannot be sent (dropped). Once a is
    back, b must re-check its sockets: it heard nothing, and its agent stayed until the periodic
    check (an hour here)."""
    redis_link = StoppableProxy(("127.0.0.1", 6379))
    try:
        a = cluster(redis_url=f"redis://127.0.0.1:{redis_link.port}/0", **HOURLY)
        b = cluster(**HOURLY)
        add_billing_and_an_admin(a)
        customer, agent, _ = await sharing_session(b)
        assert await relays(customer, agent, b"\x01before")
        fanout = a.server.config.app.state.services.fanout
        outages = fanout.outages
        redis_link.down()
        await wait_for(lambda: fanout.outages > outages)
        redis = fanout
        while not hasattr(redis, "dropped"):  # the Redis fan-out inside the wrappers
            redis = redis.inner
        dropped = redis.dropped
        with api(a, "ada") as ada:
            assert ada.patch("/api/sites/demo", json={"teams": ["billing"]}).status_code == 200
        await wait_for(lambda: redis.dropped > dropped)  # the announcement was lost
        redis_link.up()
        assert await closed_with(agent, timeout=30) == TEAMS_CHANGED
        assert (await recv_json(customer, timeout=30))["reason"] == "agent_lost"
        a.stop()  # before its link to Redis goes
    finally:
        redis_link.close()


async def test_a_revoked_socket_is_closed_before_its_audit_record_waits_for_the_database(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """The timer's re-check finds alice signed out (behind the server's back) while PostgreSQL
    answers reads but holds writes to the audit trail (another connection locks it: a long
    migration, a stuck transaction). The close came only once the record of it had waited
    (up to ``database_timeout_seconds``, 30 s), and every revocation the listener heard after
    it waited too. The socket is closed first; the record, with the time of the close, is
    written once the lock goes."""
    from tandem.config import Settings
    from tests.server.test_audit_after_faults import seed
    from tests.storage.conftest import fresh_schema, pg_connect

    async with fresh_schema() as schema:
        url = f"{PG_DSN}?search_path={schema}"
        settings = Settings.load(environ={}, data_dir=tmp_path / "seed", database_url=url)
        async with offline(settings) as directory:
            await seed(directory)
        server = server_factory(
            database_url=url,
            audit_key_file=tmp_path / "seed" / "audit.key",
            agent_reauth_seconds=300.0,
            purge_interval_seconds=86400.0,
        )
        customer, agent, _ = await sharing_session(server)
        assert await relays(customer, agent, b"\x01before")  # the consent's record is written
        await wait_for(lambda: runs_of(server, "upkeep") >= 1)  # the first purges are done
        db = await pg_connect(schema)
        try:
            await db.execute("DELETE FROM logins")
            locked = db.transaction()
            await locked.start()
            await db.execute("LOCK TABLE audit IN EXCLUSIVE MODE")  # reads pass, writes wait
            try:
                server.clock.advance(301)
                assert await closed_with(agent, timeout=10) == (4401, SIGNED_OUT)
                closed_by = server.clock()
            finally:
                await locked.rollback()
            query = "SELECT at FROM audit WHERE action = 'socket_closed'"
            deadline = time.monotonic() + 60
            while not await db.fetch(query):
                assert time.monotonic() < deadline, "the close was never recorded"
                await asyncio.sleep(0.1)
            [row] = await db.fetch(query)
            assert row["at"] <= closed_by
        finally:
            await db.close()
        server.stop()  # before its schema goes
