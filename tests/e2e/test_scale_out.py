"""Two servers behind one address, in real browsers: the customer's first socket reaches server
A, the agent's server B, and the customer's next page server B again. B carries both to A through
Redis, and the customer and agent see nothing of it. Real PostgreSQL and Redis; skipped only
without Redis (tests/server/test_scale_out.py)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import RunningServer, ServerFactory, free_port
from tests.e2e.conftest import Party, get_help, share
from tests.server.test_scale_out import start_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("requires_redis")]


class Proxy:
    """A TCP proxy that routes each connection by its request line: `/ws/agent` to the agents'
    server, `/ws/customer` to each server in turn, everything else to the first."""

    def __init__(self, first: RunningServer, second: RunningServer) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ports = (first.settings.port, second.settings.port)
        self.customer_turns = itertools.cycle(self.ports)
        self.routed: list[tuple[str, int]] = []
        self.writers: set[asyncio.StreamWriter] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port)
        )
        self.ready.set()
        self.loop.run_forever()
        self.loop.close()

    async def _shutdown(self) -> None:
        """Close everything this proxy opened, so nothing is left to the garbage collector."""
        self.server.close()
        for writer in tuple(self.writers):
            writer.close()
        for task in tuple(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for writer in tuple(self.writers):
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.writers.add(writer)
        try:
            await self._route(reader, writer)
        finally:
            self.tasks.discard(task)

    async def _route(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        path = line.split(b" ")[1].decode() if line.count(b" ") >= 2 else "/"
        if path.startswith("/ws/agent"):
            port = self.ports[1]
        elif path.startswith("/ws/customer"):
            port = next(self.customer_turns)
        else:
            port = self.ports[0]
        self.routed.append((path, port))
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        self.writers.add(up_writer)
        up_writer.write(line)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def two_behind_one(
    server_factory: ServerFactory, tmp_path: Path
) -> Iterator[tuple[Proxy, RunningServer, RunningServer]]:
    with start_cluster(server_factory, tmp_path) as start:
        a, b = start(), start()
        proxy = Proxy(a, b)
        try:
            yield proxy, a, b
        finally:
            proxy.close()


def test_a_session_spread_over_two_servers_works_for_customer_and_agent(
    two_behind_one: tuple[Proxy, RunningServer, RunningServer], customer: Party, agent: Party
) -> None:
    proxy, a, b = two_behind_one
    front: Any = SimpleNamespace(base=proxy.base)  # what the browsers see: one address
    customer.page.goto(f"{proxy.base}/demo/")
    view = share(customer, agent, front, get_help(customer))
    customer.page.get_by_label("Search products").press_sequentially("tent", delay=20)
    expect(view.locator("input[type=search]")).to_have_value("tent")

    customer.page.goto(f"{proxy.base}/demo/checkout.html")  # the next page's socket: server B
    view = agent.page.frame_locator('iframe[title="Customer view"]')
    customer.page.get_by_label("Delivery instructions").press_sequentially("ring twice", delay=20)
    expect(view.locator("#notes")).to_have_value("ring twice")

    customer.page.get_by_role("button", name="Stop sharing").click()
    expect(agent.page.get_by_text("Session ended")).to_be_visible()
    sockets = [(path, port) for path, port in proxy.routed if path.startswith("/ws/")]
    assert ("/ws/customer", a.settings.port) in sockets  # the session began on A
    assert ("/ws/customer", b.settings.port) in sockets  # and the next page reached B
    assert ("/ws/agent", b.settings.port) in sockets  # the agent was on B all along
    assert not customer.console_errors and not agent.console_errors
