"""Supervised background work (issue 13, fault 1): a periodic task that raises is logged, counted
and run again after a doubling back-off; it recovers when its work does; only cancellation stops
it. The pauses are injected, so the back-off is checked exactly, without waiting for it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tandem import metrics
from tandem.supervise import Supervisor


class Pauses:
    """An injected sleep that records each pause and returns at once (yielding to the loop)."""

    def __init__(self) -> None:
        self.taken: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.taken.append(seconds)
        await asyncio.sleep(0)


async def wait_until(condition: object, rounds: int = 10_000) -> None:
    for _ in range(rounds):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not met")


async def test_a_task_may_have_a_shorter_longest_back_off_of_its_own() -> None:
    """The heartbeat's: retried each interval while the database is away, so that every
    process beats again within an interval of its return (tandem.processes)."""
    pauses = Pauses()
    runs: list[int] = []

    async def beat() -> None:
        runs.append(len(runs))
        if len(runs) <= 4:
            raise OSError("database unreachable")

    async with Supervisor(backoff_first=1.0, backoff_max=30.0, sleep=pauses) as supervisor:
        supervisor.every("beat", 0.5, beat, backoff_max=0.5)
        await wait_until(lambda: len(runs) >= 5)
    assert pauses.taken[:8] == [0.5] * 8


async def test_a_failing_task_is_retried_with_doubling_back_off_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pauses = Pauses()
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) <= 5:  # the database is away for the first five runs
            raise OSError("database unreachable")

    before = metrics.BACKGROUND_FAILURES.labels(task="flaky")._value.get()
    with caplog.at_level(logging.INFO, logger="tandem.supervise"):
        async with Supervisor(backoff_first=1.0, backoff_max=4.0, sleep=pauses) as supervisor:
            supervisor.every("flaky", 0.5, flaky)
            await wait_until(lambda: len(runs) >= 8)
            health = supervisor.health["flaky"]
            assert health.failures == 5 and health.failing_since_runs == 0
            assert health.runs >= 3 and health.last_error == "OSError"
            assert supervisor.failing == []
    # period, back-off (1, 2, 4, 4, 4: doubling up to the maximum), period, ...
    assert pauses.taken[:11] == [0.5, 1.0, 0.5, 2.0, 0.5, 4.0, 0.5, 4.0, 0.5, 4.0, 0.5]
    assert metrics.BACKGROUND_FAILURES.labels(task="flaky")._value.get() == before + 5
    assert metrics.BACKGROUND_FAILING.labels(task="flaky")._value.get() == 0
    messages = [record.getMessage() for record in caplog.records]
    # said at the 1st, 2nd and 4th failure in a row (and when the error changes)
    assert sum("background_task_failed" in m for m in messages) == 3
    assert any("background_task_recovered" in m for m in messages)
    assert not any("database unreachable" in m for m in messages)  # type and place only


async def test_a_task_failing_on_every_tick_through_an_outage_logs_a_few_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The deadlines run on every tick, outage or not: each failure was a log line, one a
    second while the database was away. A streak is said at its 1st, 2nd, 4th, 8th... failure
    and whenever the error changes; the metrics count every one."""
    errors: list[type[Exception]] = [OSError] * 600 + [TimeoutError] * 400
    runs: list[int] = []

    async def deadlines() -> None:
        runs.append(len(runs))
        if len(runs) <= len(errors):
            raise errors[len(runs) - 1]("database away")

    before = metrics.BACKGROUND_FAILURES.labels(task="deadlines")._value.get()
    with caplog.at_level(logging.INFO, logger="tandem.supervise"):
        async with Supervisor(backoff_first=0.0, backoff_max=0.0, sleep=Pauses()) as supervisor:
            supervisor.every("deadlines", 0.0, deadlines, backoff_max=0.0)
            await wait_until(lambda: len(runs) > len(errors))
    said = [r for r in caplog.records if "background_task_failed" in r.getMessage()]
    # the 1st, 2nd, 4th ... 512th OSError in a row (10 lines), then the first TimeoutError (the
    # 601st failure in a row; the streak ends at its 1000th, before the 1024th)
    assert len(said) == 11, [r.getMessage() for r in said]
    assert metrics.BACKGROUND_FAILURES.labels(task="deadlines")._value.get() == before + 1000


async def test_a_failing_task_is_visible_while_it_fails() -> None:
    async def broken() -> None:
        raise RuntimeError("still broken")

    async with Supervisor(backoff_first=0.01, sleep=Pauses()) as supervisor:
        supervisor.every("broken", 0.01, broken)
        await wait_until(lambda: supervisor.health["broken"].failures >= 3)
        assert supervisor.failing == ["broken"]
        assert metrics.BACKGROUND_FAILING.labels(task="broken")._value.get() == 1


async def test_a_long_running_task_is_restarted_when_it_raises_and_cancelled_on_exit() -> None:
    started: list[int] = []
    cancelled = asyncio.Event()

    async def listener() -> None:
        started.append(1)
        if len(started) < 3:
            raise ConnectionError("lost the subscription")
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    async with Supervisor(backoff_first=0.01, sleep=Pauses()) as supervisor:
        supervisor.keep_running("listener", listener)
        await wait_until(lambda: len(started) == 3)
    assert cancelled.is_set()


async def test_closing_ends_a_task_whose_clean_up_swallows_the_cancellation() -> None:
    """A task whose `finally` raises turns its cancellation into one more failure, and the loop
    goes on: closing asks again until it has ended, rather than waiting for ever."""
    started = asyncio.Event()

    async def clean_up_raises() -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        finally:
            raise RuntimeError("raised while cleaning up")

    supervisor = Supervisor(backoff_first=0.01, backoff_max=0.01)
    supervisor.keep_running("swallows", clean_up_raises)
    await started.wait()
    await asyncio.wait_for(supervisor.close(), 10)  # ended, not hung
    assert supervisor.health["swallows"].failures == 0  # a stop, not a failure
