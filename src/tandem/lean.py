"""Small asyncio primitives that cost next to nothing while nobody waits (issue 17).

An idle live session holds a few of these per socket. ``asyncio.Event`` and ``asyncio.Queue``
each allocate their deques up front (about 760 bytes apiece; a queue has four: its items, its
getters, its putters and an ``Event``), so at thousands of sockets they were a sixth of the
memory per idle connection. These keep a waiter future, or a deque of items, only while there is
one.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Generic, TypeVar

T = TypeVar("T")


class Flag:
    """What the relay uses of ``asyncio.Event`` (``is_set``, ``set``, ``clear``, ``wait``), with
    the waiters' list made only when a task waits on a flag that is not set."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            if self._waiters is not None and waiter in self._waiters:  # cancelled
                self._waiters.remove(waiter)


class SingleReaderQueue(Generic[T]):
    """An unbounded FIFO for one reading task (uvicorn's per-socket receive queue is read only by
    the application's ``receive``): ``put_nowait``, ``get``, ``get_nowait``, ``empty``, ``qsize``.
    Its deque exists only while items wait, and there is at most one waiter."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: collections.deque[T] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: T) -> None:
        if self._items is None:
            self._items = collections.deque()
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> T:
        items = self._items
        if not items:
            raise asyncio.QueueEmpty
        item = items.popleft()
        if not items:
            self._items = None
        return item

    async def get(self) -> T:
        while not self._items:
            if self._waiter is not None and not self._waiter.done():
                raise RuntimeError("SingleReaderQueue.get: another task is already waiting")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.get_nowait()

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items) if self._items else 0
