"""Back-off: the rules, counted in storage, then the attacks against a real server."""

from __future__ import annotations

from typing import Any

import httpx

from tandem.lockout import SharedBackoff
from tests.conftest import AGENT_PASSWORD, RunningServer, ServerFactory, two_organisations

HOUR = 3600.0


async def test_free_failures_then_doubling_waits_up_to_a_cap(storage: Any) -> None:
    backoff = SharedBackoff(storage, free=3, base=1.0, cap=8.0, forget_after=HOUR)
    waits = []
    for _ in range(8):
        await backoff.failed(100.0, "user:a")
        waits.append(await backoff.retry_after(100.0, "user:a"))
    assert waits == [0, 0, 0, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert await backoff.retry_after(108.0, "user:a") == 0


async def test_counts_decay_after_a_quiet_period_instead_of_being_cleared(storage: Any) -> None:
    backoff = SharedBackoff(storage, free=2, base=10.0, cap=900.0, forget_after=HOUR)
    for _ in range(3):
        await backoff.failed(0.0, "user:a")
    await backoff.failed(20.0, "user:a")  # still counting: the 4th failure waits 20 s
    assert await backoff.retry_after(20.0, "user:a") == 20.0
    await backoff.failed(20.0 + HOUR, "user:a")  # an hour of quiet: counted from one again
    assert await backoff.retry_after(20.0 + HOUR, "user:a") == 0


async def test_a_waiting_address_refuses_only_accounts_that_failed_themselves(
    storage: Any,
) -> None:
    backoff = SharedBackoff(storage, free=0, base=10.0, cap=900.0, forget_after=HOUR)
    await backoff.failed(0.0, "user:a", "ip:1")
    assert await backoff.wait(1.0, "user:a", "ip:1") == 9.0
    assert await backoff.wait(1.0, "user:b", "ip:1") == 0  # a colleague behind the address
    await backoff.failed(1.0, "user:b", "ip:1")  # ... until it fails too
    assert await backoff.wait(2.0, "user:b", "ip:1") > 0


async def test_counts_are_forgotten_so_storage_stays_bounded(storage: Any) -> None:
    backoff = SharedBackoff(storage, free=0, base=1.0, cap=1.0, forget_after=HOUR)
    for i in range(10):
        await backoff.failed(0.0, f"ip:{i}")
    await storage.purge_expired(100_000.0)  # a day after the last failure, no wait running
    assert await storage.backoff_state([f"ip:{i}" for i in range(10)]) == {}


def login(server: RunningServer, username: str, password: str) -> httpx.Response:
    return httpx.post(f"{server.base}/api/login", json={"username": username, "password": password})


FIRST_WAIT = 60
"""The servers' login_backoff_seconds where a test signs in during the first wait: the test
clock runs with real time, and at the default (1 s) a busy machine's next request came after
the wait was over (200 where 429 was expected)."""


def test_guessing_an_account_is_slowed_and_locked_even_for_the_right_password(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(login_backoff_seconds=FIRST_WAIT)
    for _ in range(3):
        assert login(server, "alice", "guess-guess-1").status_code == 401
    assert login(server, "alice", "guess-guess-2").status_code == 401  # the 4th starts a wait
    locked = login(server, "alice", AGENT_PASSWORD)
    assert locked.status_code == 429 and locked.headers["retry-after"] == str(FIRST_WAIT)
    assert locked.json()["detail"] == f"Too many failed sign-ins. Try again in {FIRST_WAIT} s."
    server.clock.advance(FIRST_WAIT + 1)
    assert login(server, "alice", AGENT_PASSWORD).status_code == 200


def test_guessing_the_current_password_of_a_password_change_is_slowed_the_same_way(
    server: RunningServer,
) -> None:
    """A stolen sign-in cookie does not buy unlimited guesses at the password it would change."""
    cookie = login(server, "alice", AGENT_PASSWORD).cookies["tandem_agent"]
    with httpx.Client(
        base_url=server.base, cookies={"tandem_agent": cookie}, headers={"origin": server.origin}
    ) as alice:

        def change(current: str) -> httpx.Response:
            body = {"current_password": current, "new_password": "green-lantern-tide-77"}
            return alice.post("/api/me/password", json=body)

        for guess in range(4):  # the 4th starts a wait
            assert change(f"guess-guess-{guess}").status_code == 400
        locked = change(AGENT_PASSWORD)
        assert locked.status_code == 429 and locked.headers["retry-after"] == "1"
        assert locked.json()["detail"] == "Too many wrong passwords. Try again in 1 s."
        server.clock.advance(2)
        assert change(AGENT_PASSWORD).status_code == 200


def test_a_right_password_does_not_wipe_the_count_of_earlier_guesses(
    server_factory: ServerFactory,
) -> None:
    """Guesses from rotating addresses, a sign-in with the right password in between (the
    holder, or a guesser who found it elsewhere): the count of the guesses carries on."""
    server = server_factory(trusted_proxies=("127.0.0.1",))

    def login_from(address: str, password: str) -> int:
        return httpx.post(
            f"{server.base}/api/login",
            json={"username": "alice", "password": password},
            headers={"x-forwarded-for": address},
        ).status_code

    for i in range(3):
        assert login_from(f"198.51.100.{i}", "guess-guess-1") == 401
    assert login_from("198.51.100.10", AGENT_PASSWORD) == 200
    assert login_from("198.51.100.11", "guess-guess-2") == 401  # the 4th: a wait starts
    assert login_from("198.51.100.12", "guess-guess-3") == 429


def test_spraying_many_accounts_from_one_address_gets_one_guess_each(
    server: RunningServer,
) -> None:
    for name in ("bob", "carol", "dave", "erin"):
        assert login(server, name, "spray-password-1").status_code == 401
    assert login(server, "frank", "spray-password-1").status_code == 401  # its first
    refused = login(server, "frank", "spray-password-2")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1


def test_a_colleague_behind_a_guessing_address_still_signs_in(
    server_factory: ServerFactory,
) -> None:
    """One office address: alice's guesses lock alice and the address, not sam's right password."""
    orgs_server = server_factory(seed=two_organisations, login_backoff_seconds=FIRST_WAIT)
    for _ in range(5):
        login(orgs_server, "alice", "guess-guess-1")
    assert login(orgs_server, "alice", AGENT_PASSWORD).status_code == 429
    assert login(orgs_server, "sam", AGENT_PASSWORD).status_code == 200


async def test_shared_back_off_follows_the_same_rules_across_processes(storage: Any) -> None:
    """Two SharedBackoffs on one storage (two processes): failures add up as one would count."""
    one = SharedBackoff(storage, free=3, base=1.0, cap=8.0, forget_after=HOUR)
    two = SharedBackoff(storage, free=3, base=1.0, cap=8.0, forget_after=HOUR)
    waits = []
    for i in range(8):
        await (one if i % 2 else two).failed(100.0, "user:a", "ip:1")
        waits.append(await one.retry_after(100.0, "user:a"))
    assert waits == [0, 0, 0, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert await two.wait(101.0, "user:a", "ip:1") == 7.0


def test_spraying_from_the_addresses_of_one_ipv6_64_gets_one_guess_each(
    server_factory: ServerFactory,
) -> None:
    """An IPv6 client holds a whole /64: a new address for each guess must not be a new
    client, or the address's count never starts and each account gets every free guess."""
    # A first wait that outlasts a busy machine's requests (the clock runs with real time).
    server = server_factory(trusted_proxies=("127.0.0.1",), login_backoff_seconds=60)
    addresses = (f"2001:db8:7:42::{n:x}" for n in range(1, 100))

    def login_from(username: str, password: str) -> httpx.Response:
        return httpx.post(
            f"{server.base}/api/login",
            json={"username": username, "password": password},
            headers={"x-forwarded-for": next(addresses)},
        )

    for name in ("bob", "carol", "dave", "erin"):
        assert login_from(name, "spray-password-1").status_code == 401
    assert login_from("frank", "spray-password-1").status_code == 401  # its first
    refused = login_from("frank", "spray-password-2")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    # Another subscriber (another /64) is another client: its account's first guess is made.
    other = httpx.post(
        f"{server.base}/api/login",
        json={"username": "grace", "password": "spray-password-1"},
        headers={"x-forwarded-for": "2001:db8:7:43::1"},
    )
    assert other.status_code == 401
