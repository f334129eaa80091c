"""A running server's storage failing inside one route handler: the tool of the fault tests
(tests/server/test_enrolment_faults.py, test_hold_faults.py)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tandem.exceptions import StorageError


class FailingCall:
    """Wraps every public coroutine method of a running server's storage: while the route
    handler ``route`` runs (found on the stack: other tasks' calls pass), its ``fail_at``-th
    storage call (counted from 1) raises StorageError, as a database that stopped answering
    there would; ``calls`` names those it made."""

    def __init__(self, storage: Any, monkeypatch: pytest.MonkeyPatch, route: str) -> None:
        self.route = route
        self.fail_at = 0
        self.calls: list[str] = []
        for name, method in inspect.getmembers(storage, inspect.iscoroutinefunction):
            if not name.startswith("_"):
                monkeypatch.setattr(storage, name, self._wrap(name, method))

    def _wrap(
        self, name: str, method: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            if any(frame.function == self.route for frame in inspect.stack(0)):
                self.calls.append(name)
                if len(self.calls) == self.fail_at:
                    raise StorageError("the database failed: connection lost")
            return await method(*args, **kwargs)

        return call

    def arm(self, fail_at: int) -> None:
        self.fail_at = fail_at
        self.calls = []
