"""Floods of sign-ins from the network. A password check (argon2id) costs a tenth of a second of
CPU and 64 MiB: run on the event loop, every wrong sign-in, from anyone, stalled every live
session of the process for that long. Checks run in worker threads, a bounded number at once,
with bounded room to wait, per client address and in all (``password_hash_*`` settings)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import httpx
import pytest

from tandem import crypto
from tandem.config import Settings
from tandem.exceptions import ConfigError
from tandem.storage.sql import SQLStorage
from tests.conftest import AGENT_PASSWORD, RunningServer, ServerFactory, two_organisations
from tests.server.helpers import sharing_session
from tests.server.test_customer_quotas import chained_actions, counts, eventually
from tests.test_mfa import enrol

FLOOD = 40


def from_address(server: RunningServer, address: str) -> httpx.AsyncClient:
    """A client whose connections come from ``address`` (a loopback address it binds)."""
    return httpx.AsyncClient(
        base_url=server.base,
        transport=httpx.AsyncHTTPTransport(local_address=address),
        timeout=120,
    )


async def operators_actions(server: RunningServer) -> list[str]:
    """The actions of the whole chain, as the operator reads the database."""
    storage = await SQLStorage.open_sqlite(server.settings.data_dir / "tandem.sqlite3")
    try:
        return [record.action for record in await storage.audit_records()]
    finally:
        await storage.close()


async def wrong_sign_in(http: httpx.AsyncClient) -> httpx.Response:
    """A sign-in of a name nobody has (so no back-off of its own holds it up)."""
    name = f"nobody-{uuid.uuid4().hex[:12]}"
    return await http.post("/api/login", json={"username": name, "password": "x" * 12})


async def test_a_flood_of_wrong_sign_ins_does_not_stall_a_live_session(
    server_factory: ServerFactory,
    production_password_hashing: None,
    close_client_connections: None,
) -> None:
    # Room for every check of the flood: each one is really made (none refused as busy).
    server = server_factory(password_hash_per_client=FLOOD, password_hash_waiting=FLOOD)
    one_check = time.monotonic()
    crypto.verify_password(None, "x" * 12)  # what a check costs on this machine now
    one_check = time.monotonic() - one_check
    customer, agent, _ = await sharing_session(server)
    async with from_address(server, "127.0.0.1") as http:
        flood = [asyncio.create_task(wrong_sign_in(http)) for _ in range(FLOOD)]
        slowest = 0.0
        relayed = 0
        while not all(task.done() for task in flood):
            sent = time.monotonic()
            await customer.send(b"\x01still live?")
            assert await asyncio.wait_for(agent.recv(), 60) == b"\x01still live?"
            slowest = max(slowest, time.monotonic() - sent)
            relayed += 1
        answers = await asyncio.gather(*flood)
    assert {a.status_code for a in answers} == {401}, [a.text for a in answers]
    # On the event loop, the checks queued behind each other held a frame for all FLOOD of
    # them in a row (5.4 s for 40 here); off it, a frame waits for none of them. Half the
    # flood's checks is a bound a busy machine's scheduling never comes near.
    assert slowest < FLOOD / 2 * one_check, (slowest, one_check, relayed)


async def test_one_address_cannot_keep_everyone_elses_sign_ins_waiting(
    server_factory: ServerFactory, production_password_hashing: None
) -> None:
    server = server_factory(password_hash_per_client=2)
    async with (
        from_address(server, "127.0.0.2") as flooder,
        from_address(server, "127.0.0.3") as colleague,
    ):
        flood = [asyncio.create_task(wrong_sign_in(flooder)) for _ in range(FLOOD)]
        honest = await colleague.post(
            "/api/login", json={"username": "alice", "password": AGENT_PASSWORD}
        )
        answers = await asyncio.gather(*flood)
    assert honest.status_code == 200, honest.text
    busy = [a for a in answers if a.status_code == 503]
    assert busy, "every check of one address's flood was made"
    assert {a.status_code for a in answers} <= {401, 503}
    for answer in busy:
        assert answer.headers["content-type"] == "application/problem+json"
        assert int(answer.headers["retry-after"]) >= 1
        assert "from your address" in answer.json()["detail"]


INTERVAL = 300.0  # counting interval: ample for the floods below under load
KNOCKS = 60


async def test_throttled_sign_ins_and_sso_starts_are_counted_not_chained(
    server_factory: ServerFactory,
) -> None:
    """Refused before anything is checked, a throttled sign-in or SSO start costs its client
    nothing: a record each in the append-only chain let one client grow it as fast as it could
    send. They are counted per interval, as refused customer sockets are."""
    server = server_factory(
        seed=two_organisations,
        anonymous_audit_interval_seconds=INTERVAL,
        # Waits that outlast the floods however slowly a busy machine sends them: the clock
        # runs with real time, and a first wait of 1 s (2 s for SSO starts) ran out under load.
        login_backoff_seconds=INTERVAL,
        throttle_backoff_seconds=INTERVAL,
    )
    server.clock.advance(INTERVAL - server.clock() % INTERVAL)  # the floods fit in one interval
    before = chained_actions(server)
    with httpx.Client(base_url=server.base) as client:
        for _ in range(4):  # the free wrong passwords, and one that starts the wait
            wrong = client.post("/api/login", json={"username": "bob", "password": "guess" * 3})
            assert wrong.status_code == 401
        for _ in range(KNOCKS):
            knock = client.post("/api/login", json={"username": "bob", "password": "guess" * 3})
            assert knock.status_code == 429
        free = server.settings.sso_free_starts
        starts = [client.get("/api/sso/start", params={"org": "default"}) for _ in range(free + 1)]
        assert all(s.headers["location"] != "/console/?sso=busy" for s in starts)
        for _ in range(KNOCKS):
            knock = client.get("/api/sso/start", params={"org": "default"})
            assert knock.headers["location"] == "/console/?sso=busy"
    added = chained_actions(server)[len(before) :]
    added.remove("sign_in")  # the auditor's, who reads them
    assert added == ["sign_in_failed"] * 4, added  # the checked ones only
    server.clock.advance(INTERVAL)  # the interval ends: its counts are written

    async def written() -> bool:
        found = {row["action"]: row["count"] for row in counts(server)}
        return found == {"sign_in_throttled": KNOCKS, "sso_throttled": KNOCKS}

    await eventually(written)


async def test_a_spray_of_new_names_from_a_waiting_address_is_counted_not_chained(
    server_factory: ServerFactory,
) -> None:
    """A waiting address still gets one try per name it has not tried (a colleague behind it
    signs in), so a spray of new names was a chained record each: one client grew the
    append-only trail by a record a try, for as long as it liked. Once its address waits, its
    failures are counted; another address's are still records."""
    server = server_factory(
        seed=two_organisations,
        anonymous_audit_interval_seconds=INTERVAL,
        login_backoff_seconds=INTERVAL,  # the address waits throughout (the clock runs)
    )
    server.clock.advance(INTERVAL - server.clock() % INTERVAL)
    before = await operators_actions(server)
    free = server.settings.login_free_failures
    async with (
        from_address(server, "127.0.0.4") as sprayer,
        from_address(server, "127.0.0.5") as other,
    ):
        for _ in range(free + 1):  # its free failures, and the one that makes the address wait
            assert (await wrong_sign_in(sprayer)).status_code == 401
        for _ in range(KNOCKS):  # new names, each tried once: every one is checked
            assert (await wrong_sign_in(sprayer)).status_code == 401
        assert (await wrong_sign_in(other)).status_code == 401
    # Names no account has: no organisation's, the operator's to read (docs/audit.md).
    added = (await operators_actions(server))[len(before) :]
    assert added == ["sign_in_failed"] * (free + 2), added  # the sprayer's first, the other's
    server.clock.advance(INTERVAL)

    async def written() -> bool:
        storage = await SQLStorage.open_sqlite(server.settings.data_dir / "tandem.sqlite3")
        try:
            rows = await storage.audit_counts()
        finally:
            await storage.close()
        return {(row.action, row.org): row.count for row in rows} == {
            ("sign_in_sprayed", ""): KNOCKS
        }

    await eventually(written)


@pytest.mark.parametrize(
    "bad",
    [
        {"password_hash_parallel": 0},
        {"password_hash_per_client": 0},
        {"password_hash_waiting": -1},
    ],
)
def test_the_password_check_bounds_are_checked_settings(bad: dict[str, int]) -> None:
    with pytest.raises(ConfigError, match="password_hash"):
        Settings.load(environ={}, **bad)


class StatementsBeforeEachAnswer:
    """Wraps a server's app (``wrap=``): the SQL statements its SQLite connection ran while
    each request was answered, up to the start of its answer (what the answer's time holds)."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.answers: list[list[str]] = []
        self.app: Any = None

    def wrap(self, app: Any) -> Any:
        self.app = app
        return self

    def trace(self) -> None:
        """Start noting statements (the server started: its storage is open)."""
        storage = self.app.state.services.storage
        storage._thread.submit(storage._sqlite.set_trace_callback, self.statements.append).result()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        start = len(self.statements)

        async def noting(message: Any) -> None:
            if message["type"] == "http.response.start" and scope["type"] == "http":
                # Values (names, times) apart: which statements, in which order.
                ran = self.statements[start:]
                self.answers.append([re.sub(r"'[^']*'|\b\d+(\.\d+)?\b", "?", s) for s in ran])
            await send(message)

        await self.app(scope, receive, noting)


async def test_a_right_password_from_a_waiting_address_answers_after_the_same_statements(
    server_factory: ServerFactory,
) -> None:
    """From an address that waits, a wrong password is counted (no statement) and a right
    one with a wrong second factor is a record (an alert): written before the answer, it made
    the right password answer a statement later, so a spray of one password over many
    accounts, one try each, told by the answers' time which account it opened. The record is
    written once the answer has gone now, and is on the trail."""
    spy = StatementsBeforeEachAnswer()
    server = server_factory(wrap=spy.wrap)  # its clock stands still: the address waits
    for name in ("bob", "carol"):
        enrol(server, name)
    spy.trace()
    free = server.settings.login_free_failures
    async with from_address(server, "127.0.0.6") as sprayer:
        for _ in range(free + 1):  # the address waits
            assert (await wrong_sign_in(sprayer)).status_code == 401
        tries = {  # the wrong one first: the right one's record is written after its answer
            "wrong": {"username": "carol", "password": "not-" + AGENT_PASSWORD},
            "right": {"username": "bob", "password": AGENT_PASSWORD},
        }
        seen = {}
        for case, body in tries.items():
            answered = len(spy.answers)
            assert (await sprayer.post("/api/login", json=body)).status_code == 401
            seen[case] = spy.answers[answered]
    assert seen["right"] == seen["wrong"], seen

    async def recorded() -> bool:
        actions = await operators_actions(server)
        return "second_factor_failed" in actions

    await eventually(recorded)
