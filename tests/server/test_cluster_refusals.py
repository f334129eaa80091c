"""The refusal budget of a cluster (tandem.refusals): per account, the first
``refusal_audit_burst`` refusals of a window are recorded in full whichever server they reach,
not that many per server (an account spreading its refusals over N servers got N budgets). The
count is one Redis counter per account, expiring with its window; while Redis does not answer,
each server weighs refusals against its own budget, says so (log, metric), and every refusal is
still recorded or counted in a summary. Real PostgreSQL and Redis (a private one to stop)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tandem import metrics
from tandem.config import Settings
from tandem.directory import Directory, offline, operator
from tests.conftest import AGENT_PASSWORD, RunningServer, ServerFactory, mark_trained
from tests.private_redis import PrivateRedis, running_private_redis
from tests.server.test_frozen_database import wait_for
from tests.server.test_organisations import api
from tests.server.test_scale_out import Cluster, run_in_thread, start_cluster

BURST = 3
WINDOW = 60.0
BUDGET = {"refusal_audit_burst": BURST, "refusal_audit_window_seconds": WINDOW}


@pytest.fixture
def cluster(
    requires_redis: None, server_factory: ServerFactory, tmp_path: Path
) -> Iterator[Cluster]:
    with start_cluster(server_factory, tmp_path) as start:
        yield start


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    yield from running_private_redis()


def with_auditor(server: RunningServer, tmp_path: Path) -> None:
    """An auditor of the default organisation, to read the trail the cluster shares."""

    async def add(directory: Directory) -> None:
        await directory.add_user(
            operator("default"),
            "aud",
            AGENT_PASSWORD,
            "auditor",
            None,
            (),
            mfa_exempt=True,
            change_required=False,
        )
        await mark_trained(directory.storage, "aud")

    async def run() -> None:
        settings = Settings.load(
            environ={},
            data_dir=tmp_path / "cli",
            database_url=server.settings.database_url,
            audit_key_file=server.settings.audit_key_file,
        )
        async with offline(settings) as directory:
            await add(directory)

    run_in_thread(run)


def trail_of(server: RunningServer, action: str) -> list[dict[str, Any]]:
    with api(server, "aud") as aud:
        answer = aud.get("/api/audit", params={"limit": 1000})
        assert answer.status_code == 200, answer.text
        return [r for r in answer.json() if r["action"] == action and r["actor"] == "alice"]


def refuse(server: RunningServer, client: httpx.Client, times: int) -> None:
    """Alice (an agent) asks for the audit trail ``times`` times: 403 each time."""
    for _ in range(times):
        answer = client.get(f"{server.base}/api/audit")
        assert answer.status_code == 403, answer.text


def summed(server: RunningServer) -> int:
    return sum(r["details"]["refused"] for r in trail_of(server, "access_refused_summary"))


async def test_an_account_gets_one_refusal_budget_across_the_servers(
    cluster: Cluster, tmp_path: Path
) -> None:
    a, b = cluster(**BUDGET), cluster(**BUDGET)
    with_auditor(a, tmp_path)
    with api(a, "alice") as on_a, api(b, "alice") as on_b:
        for _ in range(5):  # spread over both servers, as over a balancer
            refuse(a, on_a, 1)
            refuse(b, on_b, 1)
    assert len(trail_of(a, "access_refused")) == BURST  # not BURST per server
    # One counter for the account, gone with its window (Redis's clock).
    shared = redis.Redis.from_url(str(a.settings.redis_url))
    try:
        [key] = shared.keys(f"{a.settings.redis_prefix}count:*")
        assert shared.get(key) == b"10"
        assert 0 < shared.pttl(key) <= WINDOW * 1000
    finally:
        shared.close()
    # Every refusal is accounted for: each server sums up those it counted, as its window ends.
    for server in (a, b):
        server.clock.advance(WINDOW + 1)
    await wait_for(lambda: summed(a) == 10 - BURST)
    assert len(trail_of(a, "access_refused_summary")) == 2  # one per server that counted some


async def test_with_redis_away_each_server_weighs_refusals_against_its_own_budget_and_says_so(
    cluster: Cluster,
    private_redis: PrivateRedis,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "tandem.hub")
    a = cluster(redis_url=private_redis.url, **BUDGET)
    b = cluster(redis_url=private_redis.url, **BUDGET)
    with_auditor(a, tmp_path)
    local_before = metrics.REFUSALS_BUDGETED_LOCALLY._value.get()
    with api(a, "alice") as on_a, api(b, "alice") as on_b:
        refuse(a, on_a, 2)  # shared: the first two of the account's window
        assert metrics.REFUSALS_BUDGETED_LOCALLY._value.get() == local_before
        private_redis.stop()
        refuse(a, on_a, 3)  # a's own budget: one more in full (it recorded two), two counted
        refuse(b, on_b, 4)  # b's own budget: three in full, one counted
        assert metrics.REFUSALS_BUDGETED_LOCALLY._value.get() == local_before + 7
        warnings = [
            r.getMessage()
            for r in caplog.records
            if "the shared refusal budget (Redis) does not answer" in r.getMessage()
        ]
        assert len(warnings) == 2, warnings  # once per server, not once per refusal
        assert "refusal_audit_burst" in warnings[0]
        assert len(trail_of(a, "access_refused")) == 2 + 1 + 3
        private_redis.start()  # back, empty: the shared count starts again
        made = 2 + 3 + 4

        def shared_again() -> bool:
            nonlocal made
            refuse(a, on_a, 1)  # counted (a's own budget is spent) until Redis answers
            made += 1
            return "the shared refusal budget (Redis) answers again" in caplog.text

        await wait_for(shared_again)
    # The first refusal Redis counted again is the first of a new shared window: in full.
    assert len(trail_of(a, "access_refused")) == 2 + 1 + 3 + 1
    for server in (a, b):
        server.clock.advance(WINDOW + 1)
    # Nothing lost: every refusal is in the trail, in full or in its server's summary.
    await wait_for(lambda: summed(a) == made - 7)


ANSWER_WITHIN = 10.0
"""How long a refusal's 403 may take here: far under the ``redis_timeout_seconds`` (60 s) the
servers below wait for Redis elsewhere, far over their ``refusal_budget_timeout_seconds``."""


async def test_a_frozen_redis_does_not_hold_the_answer_of_a_refusal(
    cluster: Cluster,
    private_redis: PrivateRedis,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis accepts connections but never answers (SIGSTOP: a stalled host, a partition): the
    shared count of a refusal is waited for ``refusal_budget_timeout_seconds``, not the
    ``redis_timeout_seconds`` that held every 403 (and a refused socket) meanwhile; the refusal
    is weighed against the server's own budget and still recorded. Once Redis answers again,
    the shared budget is used again without a restart."""
    caplog.set_level(logging.INFO, "tandem.hub")
    a = cluster(
        redis_url=private_redis.url,
        redis_timeout_seconds=60.0,
        refusal_budget_timeout_seconds=0.25,
        **BUDGET,
    )
    with_auditor(a, tmp_path)
    local_before = metrics.REFUSALS_BUDGETED_LOCALLY._value.get()
    with api(a, "alice") as on_a:
        on_a.timeout = httpx.Timeout(ANSWER_WITHIN)
        refuse(a, on_a, 1)  # shared: the first of the account's window
        private_redis.pause()
        try:
            refuse(a, on_a, 3)  # each answered: a ReadTimeout here is the fault
        finally:
            private_redis.resume()
        assert metrics.REFUSALS_BUDGETED_LOCALLY._value.get() >= local_before + 3
        assert "does not answer (no answer within 0.25 s)" in caplog.text
        # Recorded all the same, against a's own budget: two more in full (it recorded one),
        # the third counted for its summary.
        assert len(trail_of(a, "access_refused")) == BURST

        def shared_again() -> bool:
            refuse(a, on_a, 1)
            return "the shared refusal budget (Redis) answers again" in caplog.text

        await wait_for(shared_again)
