"""Supervised background work: periodic tasks that survive their own failures.

A periodic task (the deadline timer, purges, recording flushes, heartbeats) or a long-running
listener (the tunnel entrance) that raises is logged, counted (:mod:`tandem.metrics`) and run
again after a back-off that doubles from ``backoff_first`` up to ``backoff_max``; its first
success after failures is logged too. Only cancellation stops a supervised task.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from tandem import logs, metrics

log = logs.get_logger("tandem.supervise")
Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


@dataclasses.dataclass(slots=True)
class TaskHealth:
    """How one supervised task is doing (for /readyz and the tests)."""

    runs: int = 0
    """Runs that finished without an exception."""
    failures: int = 0
    """Runs that raised, in all."""
    failing_since_runs: int = 0
    """Consecutive failed runs up to now (0: the last run worked)."""
    last_error: str = ""
    """The type of the last exception (never its message: it may hold data)."""


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until each has ended, asking again while one goes on: a
    cancellation can be swallowed on its way (an exception raised in a task's own clean-up
    replaces it, and a supervised loop takes that for one more failure; redis-py and
    asyncio.wait_for were seen to under load), and a stop must not wait on it for ever. What a
    task raised other than its cancellation is raised here."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    for task in tasks:
        while not task.done():
            await asyncio.wait({task}, timeout=1.0)
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def cancel_within(
    tasks: Iterable[asyncio.Task[Any]], seconds: float
) -> set[asyncio.Task[Any]]:
    """As :func:`cancel_and_wait`, but waiting ``seconds`` at most (a stop's budget): the tasks
    still running then are returned, left to end on their own (asked once more). Their
    exceptions are not raised: whoever gave up on them has logged what was lost."""
    running = {task for task in tasks if not task.done()}
    deadline = asyncio.get_running_loop().time() + seconds
    while running:
        for task in running:
            task.cancel()
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            break
        _, running = await asyncio.wait(running, timeout=min(left, 0.5))
    for task in running:  # its end, whatever it is, is not reported as never retrieved
        task.add_done_callback(lambda ended: ended.cancelled() or ended.exception())
    return running


async def within_seconds(work: Awaitable[T], seconds: float | None) -> T:
    """``work``, given ``seconds`` at most (TimeoutError past them; None: no bound). Unlike
    asyncio.wait_for, what ``work`` does once cancelled (a clean-up that waits for a frozen
    database) is not waited for past the bound either: its task is asked to stop and left to
    end on its own."""
    if seconds is None:
        return await work
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=max(seconds, 0.0))
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        await cancel_within({task}, 0.0)
        raise TimeoutError
    return task.result()


class Supervisor:
    """Owns this process's background tasks; an async context manager that cancels them all on
    exit."""

    def __init__(
        self,
        *,
        backoff_first: float = 1.0,
        backoff_max: float = 30.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.backoff_first = backoff_first
        self.backoff_max = backoff_max
        self._sleep = sleep
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.health: dict[str, TaskHealth] = {}

    def every(
        self,
        name: str,
        seconds: float,
        work: Callable[[], Awaitable[None]],
        *,
        backoff_max: float | None = None,
    ) -> None:
        """Run ``work`` every ``seconds`` (after a first wait), for ever; after a failure, wait
        at most ``backoff_max`` (default: the supervisor's) before the next run."""

        async def loop() -> None:
            while True:
                await self._sleep(seconds)
                await self._attempt(name, work, backoff_max)

        self._start(name, loop)

    def keep_running(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run ``run`` (a task meant to last) again whenever it raises or returns."""

        async def loop() -> None:
            while True:
                await self._attempt(name, run)

        self._start(name, loop)

    def _start(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        self.health[name] = TaskHealth()
        metrics.BACKGROUND_FAILING.labels(task=name).set(0)
        self._tasks.append(asyncio.create_task(loop(), name=f"tandem:{name}"))  # type: ignore[arg-type]

    async def _attempt(
        self, name: str, work: Callable[[], Awaitable[None]], backoff_max: float | None = None
    ) -> None:
        health = self.health[name]
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the point: nothing stops a supervised task
            if self._closing:  # a clean-up turned the cancellation into this: stop, not again
                raise asyncio.CancelledError from exc
            health.failures += 1
            health.failing_since_runs += 1
            changed = health.last_error != type(exc).__name__
            health.last_error = type(exc).__name__
            metrics.BACKGROUND_FAILURES.labels(task=name).inc()
            metrics.BACKGROUND_FAILING.labels(task=name).set(1)
            longest = self.backoff_max if backoff_max is None else backoff_max
            delay = min(longest, self.backoff_first * 2 ** (health.failing_since_runs - 1))
            # Said at the 1st, 2nd, 4th, 8th... failure in a row, and when the error changes: a
            # task that runs on every tick through an outage (the deadlines) wrote a line a
            # second while the database was away. The metrics count every failure.
            streak = health.failing_since_runs
            if changed or streak & (streak - 1) == 0:
                log.error(
                    "background_task_failed",
                    task=name,
                    error=type(exc).__name__,
                    consecutive=streak,
                    retry_in=delay,
                    where=logs.origin(exc),
                )
            await self._sleep(delay)
            return
        health.runs += 1
        if health.failing_since_runs:
            log.info("background_task_recovered", task=name, after=health.failing_since_runs)
            health.failing_since_runs = 0
            metrics.BACKGROUND_FAILING.labels(task=name).set(0)

    @property
    def failing(self) -> list[str]:
        """Names of the tasks whose last run failed."""
        return [name for name, health in self.health.items() if health.failing_since_runs]

    async def close(self) -> None:
        """Cancel every task and wait for them to end."""
        await cancel_and_wait(self.take_tasks())

    def take_tasks(self) -> list[asyncio.Task[None]]:
        """Close the supervisor, and hand its tasks to the caller (to cancel, within a stop's
        time: :func:`cancel_within`)."""
        self._closing = True
        tasks, self._tasks = self._tasks, []
        return tasks

    async def __aenter__(self) -> Supervisor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()
