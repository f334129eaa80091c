"""A pooled PostgreSQL connection is handed back to the pool in a task of its own (asyncpg shields
it from the caller's cancellation). When the database stops answering, a timed-out statement's
cancel request goes unanswered too and that hand-back fails; if its caller was cancelled
meanwhile (a server stopping, a bounded wait) nothing read the error, and asyncio reported "Task
exception was never retrieved" from whatever code the garbage collector interrupted: inside
pytest's own ``ast.parse`` (CPython 3.11), a SystemError that hid the run's real outcome."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

from tandem.storage.sql import SQLStorage
from tests.server.db_proxy import proxied_url, proxy_to_postgres
from tests.storage.conftest import fresh_schema

TIMEOUT = 1.0
"""The storage's database_timeout_seconds here: how long the statement, and then the hand-back's
wait for its cancel request, take to fail while the database is frozen."""
BOUND = 8 * TIMEOUT + 30
"""How long a condition may take to hold: the statement's and the hand-back's timeouts, with room
for a busy machine."""


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


def handing_back() -> list[asyncio.Task[Any]]:
    """The tasks handing pooled connections back now (asyncpg's, and the storage's own)."""
    return [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "").endswith(".release")
    ]


async def test_a_hand_back_failing_after_its_caller_was_cancelled_leaves_no_error_unread() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        with proxy_to_postgres() as proxy:
            async with fresh_schema(migrated=True) as schema:
                storage = await SQLStorage.connect(
                    proxied_url(proxy, schema), schema=schema, timeout=TIMEOUT
                )
                try:
                    with proxy.frozen():
                        caller = asyncio.create_task(storage.get_recording("r-1"))
                        await wait_for(lambda: proxy.held >= 1, "the statement never reached it")
                        caller.cancel()  # the statement is cancelled: a cancel request is sent
                        await wait_for(lambda: proxy.held >= 2, "no cancel request was sent")
                        # The caller now waits for its connection to be handed back (which
                        # waits for that request's answer): cancelled there too.
                        assert not caller.done()
                        caller.cancel()
                        await asyncio.gather(caller, return_exceptions=True)
                        assert caller.cancelled()
                        await wait_for(lambda: not handing_back(), "the hand-back never ended")
                        gc.collect()
                    assert await storage.get_recording("r-1") is None  # works again
                finally:
                    await storage.close()
        gc.collect()
    finally:
        loop.set_exception_handler(previous)
    assert [context["message"] for context in reported] == []
