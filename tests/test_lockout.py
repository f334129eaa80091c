"""Back-off: the rules, counted in storage, then the attack against a real server."""

from __future__ import annotations

from typing import Any

import httpx

from tandem.lockout import SharedBackoff
from tests.conftest import AGENT_PASSWORD, RunningServer


async def test_free_failures_then_doubling_waits_up_to_a_cap(storage: Any) -> None:
    backoff = SharedBackoff(storage, free=3, base=1.0, cap=8.0)
    waits = []
    for _ in range(8):
        await backoff.failed(100.0, "user:a")
        waits.append(await backoff.retry_after(100.0, "user:a"))
    assert waits == [0, 0, 0, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert await backoff.retry_after(108.0, "user:a") == 0


async def test_success_clears_the_account_but_not_the_address(storage: Any) -> None:
    backoff = SharedBackoff(storage, free=0, base=10.0, cap=900.0)
    await backoff.failed(0.0, "user:a", "ip:1")
    await backoff.succeeded("user:a")
    assert await backoff.retry_after(1.0, "user:a") == 0
    assert await backoff.retry_after(1.0, "user:a", "ip:1") == 9.0


async def test_counts_are_forgotten_so_storage_stays_bounded(storage: Any) -> None:
    backoff = SharedBackoff(storage, free=0, base=1.0, cap=1.0)
    for i in range(10):
        await backoff.failed(0.0, f"ip:{i}")
    await storage.purge_expired(100_000.0)  # a day after the last failure, no wait running
    assert await storage.backoff_state([f"ip:{i}" for i in range(10)]) == {}


def login(server: RunningServer, username: str, password: str) -> httpx.Response:
    return httpx.post(f"{server.base}/api/login", json={"username": username, "password": password})


def test_guessing_an_account_is_slowed_and_locked_even_for_the_right_password(
    server: RunningServer,
) -> None:
    for _ in range(3):
        assert login(server, "alice", "guess-guess-1").status_code == 401
    assert login(server, "alice", "guess-guess-2").status_code == 401  # the 4th starts a wait
    locked = login(server, "alice", AGENT_PASSWORD)
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
    assert locked.json()["detail"] == "Too many failed sign-ins. Try again later."
    server.clock.advance(2)
    assert login(server, "alice", AGENT_PASSWORD).status_code == 200


def test_spraying_many_accounts_from_one_address_is_slowed(server: RunningServer) -> None:
    for name in ("bob", "carol", "dave", "erin"):
        assert login(server, name, "spray-password-1").status_code == 401
    assert login(server, "frank", "spray-password-1").status_code == 429


async def test_shared_back_off_follows_the_same_rules_across_processes(storage: Any) -> None:
    """Two SharedBackoffs on one storage (two processes): failures add up as one would count."""
    one = SharedBackoff(storage, free=3, base=1.0, cap=8.0)
    two = SharedBackoff(storage, free=3, base=1.0, cap=8.0)
    waits = []
    for i in range(8):
        await (one if i % 2 else two).failed(100.0, "user:a", "ip:1")
        waits.append(await one.retry_after(100.0, "user:a"))
    assert waits == [0, 0, 0, 1.0, 2.0, 4.0, 8.0, 8.0]
    await two.succeeded("user:a")
    assert await one.retry_after(101.0, "user:a") == 0
    assert await one.retry_after(101.0, "user:a", "ip:1") == 7.0  # the address still waits
