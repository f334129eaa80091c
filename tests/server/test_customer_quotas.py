"""Issue 14 (2): one anonymous client cannot deny service to every organisation.

Customer sockets need only a registered Origin, which any client sets. These tests flood a real
server over real sockets: waiting sessions are limited per address (the peer, or a trusted
proxy's X-Forwarded-For) and per site, live sessions per organisation, and the refusals are
counted per interval (``audit_counts``) instead of one audit record each, then purged."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tandem.storage.sql import SQLStorage
from tests.conftest import (
    ACME_ORIGIN,
    RunningServer,
    ServerFactory,
    tandem_in_process,
    two_organisations,
)
from tests.server.helpers import _tracked, closed_with, recv_json, send
from tests.server.test_customer_tokens import issue_key, sign
from tests.server.test_organisations import api

FLOOD = 30


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    # Generous: the server thread writes while other tests load both cores (10 s ran out).
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.05)


async def customer(
    server: RunningServer,
    origin: str | None = None,
    source: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
    token: str | None = None,
) -> tuple[ClientConnection, dict[str, Any] | tuple[int, str]]:
    """A customer's socket from ``source`` (a loopback address this client binds) that asks for
    a session: the socket and ``created``, or the close (code, reason) if refused."""
    ws = await _tracked(
        f"{server.ws_base}/ws/customer",
        origin=origin or server.origin,
        additional_headers=headers or {},
        local_addr=(source, 0),
        compression=None,
    )
    try:
        await send(ws, type="create", **({"token": token} if token else {}))
        return ws, await recv_json(ws)
    except ConnectionClosed:
        return ws, await closed_with(ws)


def refused(answers: list[dict[str, Any] | tuple[int, str]]) -> list[tuple[int, str]]:
    return [a for a in answers if isinstance(a, tuple)]


def created(answers: list[dict[str, Any] | tuple[int, str]]) -> list[dict[str, Any]]:
    return [a for a in answers if isinstance(a, dict) and a.get("type") == "created"]


async def flood(server: RunningServer, n: int, **options: Any) -> list[Any]:
    answers = []
    for _ in range(n):  # one after another: the limit holds whatever the order
        _ws, answer = await customer(server, **options)
        answers.append(answer)
    return answers


async def test_one_address_is_refused_beyond_its_waiting_limit_another_address_is_served(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(max_waiting_per_address=3)
    answers = await flood(server, FLOOD, source="127.0.0.1")
    assert len(created(answers)) == 3
    assert set(refused(answers)) == {
        (4429, "too many help requests from this address: try again in a few minutes")
    }
    _ws, other = await customer(server, source="127.0.0.2")
    assert isinstance(other, dict) and other["type"] == "created"


async def test_sockets_opened_all_at_once_from_one_address_get_no_more_than_the_limit(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(seed=two_organisations, max_waiting_per_address=3, max_sessions=8)
    answers = [a for _, a in await asyncio.gather(*(customer(server) for _ in range(FLOOD)))]
    assert len(created(answers)) == 3
    assert {code for code, _ in refused(answers)} == {4429}


async def test_an_organisations_quota_holds_against_sockets_opened_all_at_once(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(seed=two_organisations, max_sessions=4, max_waiting_per_address=100)
    answers = [a for _, a in await asyncio.gather(*(customer(server) for _ in range(FLOOD)))]
    assert len(created(answers)) == 2
    _ws, acme = await customer(server, origin=ACME_ORIGIN)
    assert isinstance(acme, dict) and acme["type"] == "created"


async def test_a_forged_forwarded_for_does_not_escape_the_address_limit(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(max_waiting_per_address=2)  # no trusted proxy: the peer counts
    answers = [
        (await customer(server, headers={"x-forwarded-for": f"198.51.100.{n}"}))[1]
        for n in range(10)
    ]
    assert len(created(answers)) == 2
    assert {code for code, _ in refused(answers)} == {4429}


async def test_behind_a_trusted_proxy_the_forwarded_address_is_limited(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(max_waiting_per_address=2, trusted_proxies=("127.0.0.1",))
    flooding = {"x-forwarded-for": "203.0.113.7"}
    answers = await flood(server, 6, headers=flooding)
    assert len(created(answers)) == 2
    assert {code for code, _ in refused(answers)} == {4429}
    _ws, other = await customer(server, headers={"x-forwarded-for": "203.0.113.8"})
    assert isinstance(other, dict) and other["type"] == "created"  # another customer, same proxy


async def silent(server: RunningServer, source: str) -> ClientConnection:
    """A customer's socket from ``source`` that says nothing (yet)."""
    return await _tracked(
        f"{server.ws_base}/ws/customer",
        origin=server.origin,
        local_addr=(source, 0),
        compression=None,
    )


async def test_one_address_cannot_hold_sockets_that_never_speak_without_end(
    server_factory: ServerFactory,
) -> None:
    """The waiting limits count sessions; a socket is a session only once it asks for one, and
    until then it may stay silent for first_message_timeout_seconds: one address opened them by
    the thousand, each holding a connection and a task, refused by nothing."""
    server = server_factory(max_unheard_sockets_per_address=3)
    quiet = [await silent(server, "127.0.0.1") for _ in range(3)]
    one_more = await silent(server, "127.0.0.1")
    assert await closed_with(one_more) == (
        4429,
        "too many help requests from this address: try again in a few minutes",
    )
    _ws, other = await customer(server, source="127.0.0.2")  # another address is served
    assert isinstance(other, dict) and other["type"] == "created"
    await send(quiet[0], type="create")  # one speaks: it no longer counts as silent
    assert (await recv_json(quiet[0]))["type"] == "created"
    await quiet[1].close()  # one goes: nor does it

    async def served_again() -> bool:
        _ws, answer = await customer(server, source="127.0.0.1")
        return isinstance(answer, dict) and answer["type"] == "created"

    await eventually(served_again)
    later = await silent(server, "127.0.0.1")  # with quiet[2], the limit again
    await send(later, type="create")
    assert (await recv_json(later))["type"] == "created"


async def test_one_site_is_refused_beyond_its_waiting_limit(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(max_waiting_per_address=100, max_waiting_per_site=4)
    answers = [
        (await customer(server, source=f"127.0.0.{n}"))[1] for n in range(2, 12)
    ]  # ten addresses, one site
    assert len(created(answers)) == 4
    assert set(refused(answers)) == {
        (4429, "too many help requests on this site: try again in a few minutes")
    }


async def test_an_organisation_filling_its_fair_share_does_not_refuse_another_organisation(
    server_factory: ServerFactory,
) -> None:
    # Two organisations share four sessions: a fair share is two each.
    server = server_factory(seed=two_organisations, max_sessions=4, max_waiting_per_address=100)
    answers = await flood(server, 4)  # the default organisation's demo site
    assert len(created(answers)) == 2
    assert set(refused(answers)) == {
        (4503, "all of this organisation's sessions are in use: try again in a minute")
    }
    _ws, acme = await customer(server, origin=ACME_ORIGIN)
    assert isinstance(acme, dict) and acme["type"] == "created"


async def test_a_set_organisation_quota_holds_below_the_fair_share(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        seed=two_organisations, max_sessions_per_org=1, max_waiting_per_address=100
    )
    answers = await flood(server, 3)
    assert len(created(answers)) == 1
    assert {code for code, _ in refused(answers)} == {4503}
    _ws, acme = await customer(server, origin=ACME_ORIGIN)
    assert isinstance(acme, dict) and acme["type"] == "created"


def chained_actions(server: RunningServer) -> list[str]:
    with api(server, "aud") as aud:
        return [r["action"] for r in aud.get("/api/audit").json() if r["action"] != "audit_read"]


def counts(server: RunningServer) -> list[dict[str, Any]]:
    with api(server, "aud") as aud:
        response = aud.get("/api/audit/counts")
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()
        return rows


INTERVAL = 300.0  # counting interval of the flood test: ample for its 90 sockets under load


async def test_a_flood_of_refused_anonymous_sockets_is_counted_not_chained(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        seed=two_organisations,
        max_waiting_per_address=2,
        anonymous_audit_interval_seconds=INTERVAL,
    )
    # The floods start with an interval, which they must not outlast: counted across two
    # intervals, a kind has two rows (27 and 3, when a minute of the wall clock ended mid-flood).
    server.clock.advance(INTERVAL - server.clock() % INTERVAL)
    before = chained_actions(server)
    # Forged customer tokens on a site that requires them, then sessions beyond the limit,
    # then an origin no organisation registered.
    key = issue_key(server)
    forged = sign("x" * 43, sub="c", aud="demo", iat=int(server.clock()), exp=0)
    tokens = await flood(server, FLOOD, token=forged)
    assert {code for code, _ in refused(tokens)} == {4401}
    with api(server, "ada") as ada:
        assert ada.patch("/api/sites/demo", json={"require_token": False}).status_code == 200
    sessions = await flood(server, FLOOD)
    assert len(created(sessions)) == 2
    origins = await flood(server, FLOOD, origin="https://evil.example")
    assert set(refused(origins)) == {(4403, "origin not allowed")}

    added = chained_actions(server)[len(before) :]
    assert "customer_token_rejected" not in added
    assert added.count("session_created") == 2
    assert len(added) < 10, added  # the site's changes and two sessions, never one per socket

    server.clock.advance(INTERVAL)  # the interval ends: its counts are written, one row per kind
    expected = {"customer_token_rejected": FLOOD, "customer_refused": FLOOD - 2}

    async def written() -> bool:
        return {row["action"]: row["count"] for row in counts(server)} == expected

    await eventually(written)
    assert len(counts(server)) == 2  # one row per kind and interval, whatever the flood
    assert key  # the site had a key: the tokens were checked, not missing

    server.stop()
    storage = await SQLStorage.open_sqlite(server.settings.database_path)
    try:
        stored = await storage.audit_counts()
    finally:
        await storage.close()
    unknown = [row for row in stored if row.org == ""]
    assert [(row.action, row.count) for row in unknown] == [("customer_origin_refused", FLOOD)]
    verdict = tandem_in_process("audit", "verify", "--data-dir", str(server.settings.data_dir))
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr


async def test_counts_are_purged_past_their_retention_and_the_chain_still_verifies(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        seed=two_organisations,
        max_waiting_per_address=1,
        anonymous_audit_interval_seconds=60.0,
        anonymous_audit_retention_days=1.0,
        purge_interval_seconds=1.0,
    )
    server.clock.advance(60 - server.clock() % 60)  # a minute starts: the flood is counted in it
    await flood(server, 5)
    server.clock.advance(60)

    async def written() -> bool:
        return [row["count"] for row in counts(server)] == [4]

    await eventually(written)
    server.clock.advance(86400)

    async def purged() -> bool:
        return counts(server) == []

    await eventually(purged)
    server.stop()
    verdict = tandem_in_process("audit", "verify", "--data-dir", str(server.settings.data_dir))
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr


async def test_counts_need_the_audit_role_and_range_checked_since(
    shared_orgs_server: RunningServer,
) -> None:
    with api(shared_orgs_server, "aud") as aud:
        assert aud.get("/api/audit/counts?since=1e21").status_code == 400
        assert aud.get("/api/audit/counts?since=x").status_code == 400
    with api(shared_orgs_server, "mallory") as mallory:
        assert mallory.get("/api/audit/counts").status_code == 403
    assert httpx.get(f"{shared_orgs_server.base}/api/audit/counts").status_code == 401
