"""Several server processes on one PostgreSQL and one Redis: a session's sockets may reach any of
them. The customer's socket on server A, the agent's on server B (and after a navigation the
customer's on B too): the session works as on one server, because B tunnels its sockets to A,
which holds the session (tandem.tunnel). Real PostgreSQL and Redis; skipped only without them
(failed instead under TANDEM_REQUIRE_SERVICES=1)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from tandem.access import Grant
from tandem.audit import verify
from tandem.config import Settings
from tandem.directory import Directory, offline, operator
from tandem.exceptions import ConfigError
from tandem.storage.sql import SQLStorage
from tests.conftest import (
    AGENT_PASSWORD,
    RunningServer,
    ServerFactory,
    mark_trained,
    track_connection,
)
from tests.server.helpers import (
    closed_with,
    login_cookie,
    open_agent,
    open_customer,
    recv_json,
    resume_on,
    send,
    sharing_with_tokens,
    start_session,
)
from tests.server.test_session_clearing import wait_until
from tests.server.test_training import acknowledge, practise, reported
from tests.storage.conftest import PG_DSN, create_migrated_schema, pg_connect

REDIS_URL = "redis://127.0.0.1:6379/0"


pytestmark = pytest.mark.usefixtures("requires_redis")


def run_in_thread(work: Callable[[], Awaitable[None]]) -> None:
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(work())  # type: ignore[arg-type]
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=target)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]


Cluster = Callable[..., RunningServer]


@pytest.fixture
def cluster(server_factory: ServerFactory, tmp_path: Path) -> Iterator[Cluster]:
    with start_cluster(server_factory, tmp_path) as start:
        yield start


@contextlib.contextmanager
def start_cluster(
    server_factory: ServerFactory,
    tmp_path: Path,
    seed_also: Callable[[Directory], Awaitable[None]] | None = None,
) -> Iterator[Cluster]:
    """Start servers that share a fresh PostgreSQL schema (already migrated), a Redis prefix
    and their keys. Synchronous (its set-up runs in a thread), so browser tests can use it too.
    ``seed_also`` adds to the database before any server runs (a server's sweeps would take a
    running recording no live process owns, for one)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        db = await pg_connect()
        try:
            await create_migrated_schema(db, schema)
        finally:
            await db.close()

    async def drop() -> None:
        db = await pg_connect()
        try:
            await db.execute(f'DROP SCHEMA "{schema}" CASCADE')
        finally:
            await db.close()

    run_in_thread(create)
    shared = {
        "database_url": f"{PG_DSN}?search_path={schema}",
        "redis_url": REDIS_URL,
        "redis_prefix": f"tandem-test-{uuid.uuid4().hex}:",
        "audit_key_file": tmp_path / "keys" / "audit.key",
    }
    (tmp_path / "keys").mkdir()

    async def seed() -> None:
        settings = Settings.load(environ={}, data_dir=tmp_path / "seed", **shared)
        async with offline(settings) as directory:
            await add_people(directory)
            if seed_also is not None:
                await seed_also(directory)

    started: list[RunningServer] = []

    def start(**overrides: Any) -> RunningServer:
        started.append(server_factory(**{**shared, **overrides}))  # overrides win
        return started[-1]

    try:
        run_in_thread(seed)
        yield start
    finally:
        for running in started:  # before their schema goes
            running.stop()
        run_in_thread(drop)


async def add_people(directory: Directory) -> None:
    default = operator("default")
    for username, role in (("alice", "agent"), ("sam", "supervisor")):
        await directory.add_user(
            default,
            username,
            AGENT_PASSWORD,
            role,
            username.title(),
            ("support",),
            mfa_exempt=True,
            change_required=False,
        )
        await mark_trained(directory.storage, username)
    for username, role in (("newbie", "agent"), ("newsup", "supervisor")):  # never trained
        await directory.add_user(
            default,
            username,
            AGENT_PASSWORD,
            role,
            None,
            ("support",),
            mfa_exempt=True,
            change_required=False,
        )


async def sharing_on(server: RunningServer) -> tuple[Any, Any, dict[str, Any]]:
    """Customer and agent both on ``server``, consent given."""
    customer, created = await start_session(server)
    agent = await join_on(server, created["code"])
    await recv_json(agent)
    await recv_json(customer)
    await send(customer, type="consent", granted=True)
    await recv_json(agent)
    return customer, agent, created


async def join_on(server: RunningServer, code: str) -> Any:
    agent = await open_agent(server, login_cookie(server, "alice"))
    await send(agent, type="join", code=code)
    return agent


async def test_an_agent_on_another_server_joins_and_the_session_works(cluster: Cluster) -> None:
    a, b = cluster(), cluster()
    customer, created = await start_session(a)
    agent = await join_on(b, created["code"])  # B holds no session: it tunnels to A
    joined = await recv_json(agent)
    assert (joined["type"], joined["session_id"], joined["resumed"]) == (
        "joined",
        created["session_id"],
        False,
    )
    assert await recv_json(customer) == {"v": 1, "type": "agent_joined", "agent": "Alice"}
    await send(customer, type="handshake", data="AAAA")
    assert await recv_json(agent) == {"v": 1, "type": "handshake", "data": "AAAA"}
    await send(agent, type="handshake", data="BBBB")
    assert await recv_json(customer) == {"v": 1, "type": "handshake", "data": "BBBB"}
    await send(customer, type="consent", granted=True)
    assert await recv_json(agent) == {"v": 1, "type": "consent", "granted": True}
    for payload in (b"\x01page", bytes(range(256)) * 100):
        await customer.send(payload)
        assert await agent.recv() == payload
    await agent.send(b"\x03command")
    assert await customer.recv() == b"\x03command"
    await send(agent, type="leave")
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "agent_left"}
    assert (await closed_with(agent))[0] == 1000


async def test_an_agent_lost_on_another_server_ends_the_session(cluster: Cluster) -> None:
    a, b = cluster(), cluster()
    customer, created = await start_session(a)
    agent = await join_on(b, created["code"])
    await recv_json(agent)
    await recv_json(customer)
    await agent.close()  # the agent's browser goes away: B tells A
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "agent_lost"}


async def test_a_customer_resumes_on_another_server_after_a_navigation(cluster: Cluster) -> None:
    a, b = cluster(), cluster()
    customer, agent, created = await sharing_on(a)
    await customer.close()  # the next page's socket reaches B
    assert await recv_json(agent) == {"v": 1, "type": "peer", "connected": False}
    customer, resumed = await resume_on(b, created)
    assert (resumed["type"], resumed["state"], resumed["agent"]) == ("resumed", "sharing", "Alice")
    assert await recv_json(agent) == {"v": 1, "type": "peer", "connected": True}
    await customer.send(b"\x01next-page")
    assert await agent.recv() == b"\x01next-page"
    await send(customer, type="stop")
    assert await recv_json(agent) == {"v": 1, "type": "ended", "reason": "stopped"}


async def test_tunnelled_sockets_are_checked_at_the_owner(cluster: Cluster) -> None:
    """A wrong resume token through B is refused by A like a local one; a wrong join code on B
    stays a wrong code; the session survives both."""
    a, b = cluster(), cluster()
    customer, created = await start_session(a)
    intruder = await open_customer(b)
    await send(intruder, type="resume", session_id=created["session_id"], resume_token="x" * 43)
    assert (await closed_with(intruder))[0] == 4404
    agent = await join_on(b, "00000")
    assert (await recv_json(agent))["code"] == "invalid_code"
    await send(agent, type="join", code=created["code"])  # the right one still works
    assert (await recv_json(agent))["type"] == "joined"
    assert (await recv_json(customer))["type"] == "agent_joined"


async def test_a_supervisor_on_another_server_watches(cluster: Cluster) -> None:
    a, b = cluster(), cluster()
    customer, _, created = await sharing_on(a)
    cookie = login_cookie(b, "sam")
    expected = [(created["session_id"], "sharing", "Alice")]
    # b lists what the database holds; seen once at load ~5: still "pending_consent" just after
    # both sides had heard of the consent on a. The listing must catch up.
    deadline = time.monotonic() + 15
    while True:
        listed = httpx.get(f"{b.base}/api/sessions", cookies={"tandem_agent": cookie}).json()
        rows = [(s["session_id"], s["state"], s["agent"]) for s in listed]
        if rows == expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert rows == expected
    sam = await open_agent(b, cookie)
    await send(sam, type="watch", session_id=created["session_id"])
    assert await recv_json(sam) == {"v": 1, "type": "watching", "session_id": created["session_id"]}
    assert await recv_json(customer) == {"v": 1, "type": "watch_request", "watcher": "Sam"}


async def test_untrained_accounts_are_refused_at_the_owner_through_a_tunnel(
    cluster: Cluster,
) -> None:
    """The join and the watch of accounts that never acknowledged the policy nor practised reach
    the session's process through a tunnel, and are refused there: the code stays valid."""
    a, b = cluster(), cluster()
    customer, created = await start_session(a)
    newbie = await open_agent(b, login_cookie(b, "newbie"))
    await send(newbie, type="join", code=created["code"])  # B tunnels it to A
    refused = await recv_json(newbie)
    assert refused["code"] == "training_required", refused
    alice = await join_on(b, created["code"])  # the code is still the customer's
    assert (await recv_json(alice))["type"] == "joined"
    assert (await recv_json(customer))["type"] == "agent_joined"
    await send(customer, type="consent", granted=True)
    assert (await recv_json(alice))["type"] == "consent"
    newsup = await open_agent(b, login_cookie(b, "newsup"))
    await send(newsup, type="watch", session_id=created["session_id"])
    refused = await recv_json(newsup)
    assert refused["code"] == "training_required", refused
    await customer.send(b"\x01page")  # the customer was never asked: the session goes on
    assert await alice.recv() == b"\x01page"


async def test_a_session_whose_server_is_gone_is_not_found(cluster: Cluster) -> None:
    # The wait for an owner that never answers, shortened from 5 s (tests/test_tunnel.py too).
    a, b = cluster(), cluster(tunnel_accept_seconds=1.0)
    _, created = await start_session(a)
    # As after a crash: the database says a process that no longer runs holds the session.
    db = await pg_connect(a.settings.database_url.split("search_path=")[1])  # type: ignore[union-attr]
    try:
        await db.execute(
            "UPDATE sessions SET node = 'gone' WHERE session_id = $1", created["session_id"]
        )
    finally:
        await db.close()
    customer = await open_customer(b)
    await send(customer, type="resume", **{k: created[k] for k in ("session_id", "resume_token")})
    code, _ = await closed_with(customer, timeout=15)  # after tunnel_accept_seconds
    assert code == 4404


def test_redis_needs_postgres_and_a_redis_url() -> None:
    with pytest.raises(ConfigError, match="database-url"):
        Settings.load(environ={"TANDEM_REDIS_URL": REDIS_URL})
    with pytest.raises(ConfigError, match="redis://"):
        Settings.load(environ={}, redis_url="http://x", database_url="postgresql://h/d")
    settings = Settings.load(
        environ={"TANDEM_REDIS_URL": REDIS_URL, "TANDEM_DATABASE_URL": "postgresql://h/d"}
    )
    assert settings.redis_url == REDIS_URL
    assert REDIS_URL not in repr(settings)


def test_wrong_passwords_spread_over_two_servers_add_up(cluster: Cluster) -> None:
    """The back-off counts live in the shared database: an attacker cannot multiply its quota
    by spreading guesses over the servers."""
    a, b = cluster(login_backoff_seconds=60.0), cluster(login_backoff_seconds=60.0)
    free = a.settings.login_free_failures
    for attempt in range(free + 1):
        server = (a, b)[attempt % 2]
        wrong = {"username": "alice", "password": "not-alices-password"}
        assert httpx.post(f"{server.base}/api/login", json=wrong).status_code == 401
    for server in (a, b):
        right = {"username": "alice", "password": AGENT_PASSWORD}
        response = httpx.post(f"{server.base}/api/login", json=right)
        assert response.status_code == 429, server.base
        assert int(response.headers["retry-after"]) > 1


async def test_two_servers_mac_every_record_of_the_trail_they_share(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Each server (and the CLI that seeded the accounts) writes a MAC on every record; a record
    an attacker with database access adds between theirs is named once they stopped."""
    a, b = cluster(), cluster()
    right = {"username": "alice", "password": AGENT_PASSWORD}

    async def sign_ins(count: int) -> None:
        async with httpx.AsyncClient() as client:
            answers = await asyncio.gather(
                *(client.post(f"{s.base}/api/login", json=right) for s in (a, b) * count)
            )
        assert [r.status_code for r in answers] == [200] * 2 * count

    await sign_ins(4)
    schema = a.settings.database_url.split("search_path=")[1]  # type: ignore[union-attr]
    storage = await SQLStorage.connect(PG_DSN, schema=schema)
    try:
        key = bytes.fromhex((tmp_path / "keys" / "audit.key").read_text())
        records, anchors = await storage.audit_records(), await storage.anchors()
        assert [r.action for r in records].count("server_started") == 2
        assert [r.action for r in records].count("sign_in") == 8
        assert all(r.mac is not None for r in records)
        verdict = verify(records, anchors, key)
        assert (verdict.ok, verdict.macs_from) == (True, 1), verdict.problem
        forged = await storage.append_audit(
            Grant.server("default", "attacker"), time.time(), "sign_in", "mallory", "", {}
        )
        await sign_ins(2)
        for server in (a, b):
            server.stop()
            assert not server.thread.is_alive()
        records, anchors = await storage.audit_records(), await storage.anchors()
    finally:
        await storage.close()
    assert [r.action for r in records].count("server_stopped") == 2
    assert records[-1].seq > forged.seq and records[-1].seq in {a.seq for a in anchors}
    verdict = verify(records, anchors, key)
    assert (verdict.first_bad_seq, verdict.problem) == (
        forged.seq,
        f"record {forged.seq} has no valid MAC: it was not written by a holder of the audit key",
    )


def add_to_cluster(
    server: RunningServer, tmp_path: Path, username: str, role: str, trained: bool
) -> None:
    """A default organisation's account on the database ``server`` shares with its cluster,
    made as the CLI does."""

    async def run() -> None:
        shared = {
            "database_url": server.settings.database_url,
            "audit_key_file": server.settings.audit_key_file,
        }
        settings = Settings.load(environ={}, data_dir=tmp_path / "cli", **shared)
        async with offline(settings) as directory:
            await directory.add_user(
                operator("default"),
                username,
                AGENT_PASSWORD,
                role,
                None,
                (),
                mfa_exempt=True,
                change_required=False,
            )
            if trained:
                await mark_trained(directory.storage, username)

    run_in_thread(run)


async def test_one_accounts_waiting_practice_sessions_are_capped_across_the_cluster(
    cluster: Cluster,
) -> None:
    """Attack: the agent who keeps practice sessions waiting (each holds the shared practice
    site's waiting places and its organisation's quota) starts them on each server of the
    cluster in turn. ``max_waiting_practice_per_account`` was counted per process, so two
    servers let it hold twice as many; now each server adds what storage says waits
    elsewhere, as for the per-site limit."""
    a, b = cluster(max_waiting_practice_per_account=2), cluster(max_waiting_practice_per_account=2)
    acknowledge(a, "newbie")

    async def start(customer_on: RunningServer) -> Any:
        with httpx.Client(
            base_url=a.base,
            cookies={"tandem_agent": login_cookie(a, "newbie")},
            headers={"origin": a.origin},
        ) as me:
            ticket = me.post("/api/training/practice").json()["ticket"]
        customer = await open_customer(customer_on)
        await send(customer, type="create", practice=ticket)
        return customer

    assert (await recv_json(await start(a)))["type"] == "created"
    assert (await recv_json(await start(b)))["type"] == "created"
    for server in (a, b):
        refused = await closed_with(await start(server))
        assert refused[0] == 4429 and "practice sessions" in refused[1]


async def test_training_holds_across_two_servers(cluster: Cluster, tmp_path: Path) -> None:
    """Attack across a cluster: the acknowledgement made on one server counts on the other; a
    practice ticket is used once whichever server sees it; the practice customer on B and the
    agent on A (tunnelled) make one practice; its completion, asked of both servers at once,
    is recorded once; then the agent takes a real customer on either server."""
    a, b = cluster(), cluster()
    add_to_cluster(a, tmp_path, "aud", "auditor", trained=True)
    acknowledge(a, "newbie")
    with httpx.Client(base_url=b.base, cookies={"tandem_agent": login_cookie(b, "newbie")}) as on_b:
        standing = on_b.get("/api/training").json()["standing"]
    assert standing["acknowledged_version"] == 1 and standing["needs_practice"]
    with httpx.Client(
        base_url=a.base,
        cookies={"tandem_agent": login_cookie(a, "newbie")},
        headers={"origin": a.origin},
    ) as on_a:
        ticket = on_a.post("/api/training/practice").json()["ticket"]
    first = await open_customer(b)
    await send(first, type="create", practice=ticket)
    assert (await recv_json(first))["type"] == "created"
    replay = await open_customer(a)  # the same ticket on the other server
    await send(replay, type="create", practice=ticket)
    assert (await closed_with(replay))[0] == 4401
    practice_id = await practise(a, "newbie", customer_on=b, agent_on=a)
    await reported(a, "session_ended", practice_id, "aud")

    async def complete(server: RunningServer) -> int:
        async with httpx.AsyncClient(
            base_url=server.base,
            cookies={"tandem_agent": login_cookie(server, "newbie")},
            headers={"origin": server.origin},
        ) as me:
            answer = await me.post("/api/training/complete", json={"steps": ["masked", "refused"]})
        return answer.status_code

    assert sorted(await asyncio.gather(complete(a), complete(b))) == [200, 409]
    customer, created = await start_session(b)
    newbie = await open_agent(a, login_cookie(a, "newbie"))
    await send(newbie, type="join", code=created["code"])  # A tunnels it to B
    assert (await recv_json(newbie))["type"] == "joined"
    assert (await recv_json(customer))["type"] == "agent_joined"


async def test_a_tunnelled_session_leaves_no_channel_or_key_in_redis_once_ended(
    cluster: Cluster,
) -> None:
    """Promise 8 across processes: the agent's socket is on B, tunnelled to the owner A through
    Redis pub/sub (a channel per tunnelled socket). Once the session ended, no channel of it is
    left subscribed and no key under the cluster's prefix names it or outlives its window:
    pub/sub keeps nothing, and the only keys Tandem writes (refusal counters) expire."""
    a, b = cluster(), cluster()
    prefix = a.settings.redis_prefix
    shared = aioredis.Redis.from_url(REDIS_URL)
    try:
        before = set(await shared.pubsub_channels(f"{prefix}conn:*"))
        customer, agent, created, _ = await sharing_with_tokens(a, login_cookie(b, "alice"), b)
        session_id = created["session_id"].encode()
        tunnels = set(await shared.pubsub_channels(f"{prefix}conn:*")) - before
        assert tunnels  # (the test sees the tunnel's channels while the session lives)
        await send(customer, type="stop")
        assert (await recv_json(agent))["type"] == "ended"

        async def tunnels_gone() -> bool:
            return not tunnels & set(await shared.pubsub_channels(f"{prefix}*"))

        await wait_until(tunnels_gone)
        async for key in shared.scan_iter(match=f"{prefix}*"):
            assert session_id not in key, key
            assert await shared.pttl(key) > 0, f"{key!r} never expires"
    finally:
        await shared.aclose()


async def test_an_agent_tunnelled_to_another_server_is_told_of_a_new_policy(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The admin publishes a policy on one server; the agent's socket is on the other, its
    session on the first (tunnelled): every server re-checks the organisation's sockets, and the
    agent is told once that the new version waits for its acknowledgement; the session goes on
    (docs/training.md)."""
    a, b = cluster(), cluster()
    add_to_cluster(a, tmp_path, "ada", "admin", trained=True)
    customer, created = await start_session(b)
    alice = await open_agent(a, login_cookie(a))
    await send(alice, type="join", code=created["code"])  # A tunnels it to B
    assert (await recv_json(alice))["type"] == "joined"
    assert (await recv_json(customer))["type"] == "agent_joined"
    with httpx.Client(
        base_url=b.base,
        cookies={"tandem_agent": login_cookie(b, "ada")},
        headers={"origin": b.origin},
    ) as ada:
        assert ada.put("/api/training/policy", json={"text": "New rules."}).status_code == 200
    told = await recv_json(alice)
    assert (told["type"], told["code"]) == ("error", "policy_changed")
    await send(customer, type="consent", granted=True)
    assert (await recv_json(alice))["type"] == "consent"  # the session goes on


async def test_a_sign_in_bound_to_its_network_joins_through_a_tunnel(cluster: Cluster) -> None:
    """``login_bind_client``: the owner of the session checks the tunnelled socket's binding
    against the client address the edge passed on, so the honest agent (here on 127.0.1.0/24,
    not the servers' own network) joins through another server; its cookie from another
    network opens nothing there."""
    a, b = cluster(login_bind_client="network"), cluster(login_bind_client="network")
    customer, created = await start_session(a)
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.1.1")) as http:
        answer = http.post(
            f"{b.base}/api/login", json={"username": "alice", "password": AGENT_PASSWORD}
        )
    assert answer.status_code == 200, answer.text
    cookie = answer.cookies["tandem_agent"]

    async def agent_socket(address: str) -> Any:
        socket = await connect(
            f"{b.ws_base}/ws/agent",
            origin=b.origin,  # type: ignore[arg-type]
            additional_headers={"cookie": f"tandem_agent={cookie}"},
            compression=None,
            local_addr=(address, 0),
        )
        track_connection(socket)
        return socket

    agent = await agent_socket("127.0.1.7")
    await send(agent, type="join", code=created["code"])  # B holds no session: tunnelled to A
    joined = await recv_json(agent)
    assert (joined["type"], joined["session_id"]) == ("joined", created["session_id"])
    assert await recv_json(customer) == {"v": 1, "type": "agent_joined", "agent": "Alice"}
    await send(agent, type="leave")
    await closed_with(agent)
    assert (await closed_with(await agent_socket("127.0.0.1")))[0] == 4401
