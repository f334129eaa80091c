"""A TCP proxy in front of the test PostgreSQL that a test can stop: the database becomes
unreachable for the server under test (connections cut, new ones refused), and comes back; or
freeze: connections stay open but nothing crosses (a network partition, a stalled database
host), until it thaws."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

from tests.conftest import free_port
from tests.storage.conftest import PG_DSN


class StoppableProxy:
    """A TCP proxy to PostgreSQL in its own thread; ``down()`` closes the listener and every
    connection (the database is unreachable), ``up()`` listens again on the same port;
    ``freeze()`` holds every byte, both ways, on open and new connections alike (nothing is
    refused or closed: the database just stops answering), ``thaw()`` lets them flow again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.listening: socket.socket | None = None
        self.acceptor: asyncio.Task[None] | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.clients: set[asyncio.Future[None]] = set()
        self.generation = 0
        """Counts :meth:`down` calls: a connection accepted before one is cut by it, even when
        it was still reaching the database then."""
        self.flowing: asyncio.Event | None = None
        self.held = 0
        """Connections whose client's bytes are held on their way to the database now (frozen):
        how many statements wait for it at once."""
        self.freeze_at: bytes | None = None
        """Set by :meth:`freeze_on`: bytes a client sends that freeze the proxy (held, with
        them) the moment they pass: a database that stalls at a chosen point of a conversation."""
        self.hold_after: list[bytes] = []
        """Set by :meth:`hold_replies_after`: what a client sends, in turn, on one connection,
        after which the database's answers to it are held (its last statement reaches the
        database, which takes it; the answer never comes back) until :meth:`thaw`."""
        self.freeze_after_hold = False
        """Whether :attr:`hold_after` freezes the proxy too when it holds a connection's answers."""
        self.replies: set[asyncio.Event] = set()
        """Each connection's answers flowing (set) or held: cleared by :attr:`hold_after`."""
        self._run(self._make_flowing())
        self.up()

    async def _make_flowing(self) -> None:
        self.flowing = asyncio.Event()
        self.flowing.set()

    def _run(self, work: object) -> None:
        asyncio.run_coroutine_threadsafe(work, self.loop).result(10)  # type: ignore[arg-type]

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        replies: asyncio.Event,
        upstream: bool = False,
    ) -> None:
        seen = 0  # of hold_after, on this connection
        with contextlib.suppress(OSError, ConnectionError):
            while data := await reader.read(65536):
                assert self.flowing is not None
                # Several in one read, in turn (a statement and its COMMIT sent together).
                found, at = False, 0
                while upstream and seen < len(self.hold_after):
                    at = data.find(self.hold_after[seen], at)
                    if at < 0:
                        break
                    seen, found, at = seen + 1, True, at + len(self.hold_after[seen])
                if found and seen == len(self.hold_after):  # forwarded; its answer held
                    self.hold_after = []
                    replies.clear()
                    if self.freeze_after_hold:
                        self.freeze_after_hold = False
                        self.flowing.clear()  # every other byte held from now on
                        writer.write(data)  # but these reach the database
                        await writer.drain()
                        continue
                if not upstream:
                    await replies.wait()
                if upstream and self.freeze_at is not None and self.freeze_at in data:
                    self.freeze_at = None
                    self.flowing.clear()  # frozen before these bytes reach the database
                if upstream and not self.flowing.is_set():
                    self.held += 1  # a statement (or a connection's start) waiting
                    try:
                        await self.flowing.wait()  # frozen: held here, the connection left open
                    finally:
                        self.held -= 1
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _accept(self, listening: socket.socket) -> None:
        """Accept connections on ``listening`` until :meth:`down` cancels this. Not an
        ``asyncio.Server``: on CPython 3.11 one closed while a connection it had just accepted
        was still being set up fails that set-up (``Server._attach`` asserts it is open),
        silently outside debug mode, and leaves the accepted socket to the garbage collector,
        which reports it, unclosed, as a ResourceWarning in whatever test runs then. Here each
        accepted socket is owned by this task from the moment it exists: closed if cancelled
        before its streams are made, tracked in :attr:`writers` (so cut by :meth:`down`) from
        the moment they are."""
        loop = asyncio.get_running_loop()
        while True:
            accepted, _ = await loop.sock_accept(listening)
            try:
                reader, writer = await asyncio.open_connection(sock=accepted)
            except BaseException:
                accepted.close()
                raise
            self.writers.add(writer)
            self.clients.add(asyncio.ensure_future(self._client(reader, writer, self.generation)))
            for done in [client for client in self.clients if client.done()]:
                self.clients.discard(done)

    async def _client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, generation: int
    ) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        if generation != self.generation:  # the proxy went down meanwhile (and cut ``writer``)
            up_writer.transport.abort()
            return
        self.writers.add(up_writer)
        replies = asyncio.Event()
        replies.set()
        self.replies.add(replies)
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, replies, upstream=True),
                self._pipe(up_reader, writer, replies),
            )
        finally:
            self.replies.discard(replies)

    def up(self) -> None:
        async def listen() -> None:
            listening = socket.create_server(("127.0.0.1", self.port))
            listening.setblocking(False)
            self.listening = listening
            self.acceptor = asyncio.ensure_future(self._accept(listening))

        self._run(listen())

    def freeze(self) -> None:
        async def hold() -> None:
            assert self.flowing is not None
            self.flowing.clear()

        self._run(hold())

    def freeze_on(self, marker: bytes) -> None:
        """Freeze (as :meth:`freeze`) once a client sends ``marker``, before it is forwarded."""

        async def arm() -> None:
            self.freeze_at = marker

        self._run(arm())

    def hold_replies_after(self, *sent: bytes, freeze: bool = False) -> None:
        """Once a connection's client has sent each of ``sent`` in turn (the last one forwarded
        to the database), hold every answer on that connection until :meth:`thaw`: a statement
        the database took whose answer is lost in a partition (a COMMIT that lands while its
        sender gives up). Other connections flow, unless ``freeze``: then the proxy freezes
        (as :meth:`freeze`) the moment those last bytes have passed."""

        async def arm() -> None:
            self.hold_after = list(sent)
            self.freeze_after_hold = freeze

        self._run(arm())

    def thaw(self) -> None:
        """Let bytes flow again, and disarm a :meth:`freeze_on` that never fired: armed, it
        froze the next connection's conversation instead (the run meant to work once the
        database answers), and nothing would thaw it."""

        async def release() -> None:
            assert self.flowing is not None
            self.freeze_at = None
            self.hold_after = []
            self.freeze_after_hold = False
            self.flowing.set()
            for replies in self.replies:
                replies.set()

        self._run(release())

    @contextlib.contextmanager
    def frozen(self, on: bytes | None = None) -> Iterator[None]:
        """Frozen (from now, or :meth:`freeze_on` ``on``) while the block runs, thawed after it
        however it ends."""
        if on is None:
            self.freeze()
        else:
            self.freeze_on(on)
        try:
            yield
        finally:
            self.thaw()

    def down(self) -> None:
        async def stop() -> None:
            assert self.listening is not None and self.acceptor is not None
            self.acceptor.cancel()
            await asyncio.gather(self.acceptor, return_exceptions=True)
            self.listening.close()  # new connections are refused from here
            self.generation += 1
            for writer in self.writers:
                writer.transport.abort()
            self.writers.clear()

        self._run(stop())

    def close(self) -> None:
        self.down()

        async def settle() -> None:  # every connection's task ends before the loop does
            tasks = asyncio.all_tasks() - {asyncio.current_task()}
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._run(settle())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def proxied_url(proxy: StoppableProxy, schema: str) -> str:
    """The test database's URL through ``proxy``, with tables in ``schema``."""
    parts = urlsplit(PG_DSN)
    return f"postgresql://{parts.username}@127.0.0.1:{proxy.port}{parts.path}?search_path={schema}"


@contextlib.contextmanager
def proxy_to_postgres() -> Iterator[StoppableProxy]:
    parts = urlsplit(PG_DSN)
    proxy = StoppableProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    try:
        yield proxy
    finally:
        proxy.close()
