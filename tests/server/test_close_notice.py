"""A socket the server closes after a last notice (a kick: sign-in revoked, the server stopping)
waits for a peer that does not read at most ``close_notice_seconds``, then closes all the same."""

from __future__ import annotations

import asyncio

from starlette.websockets import WebSocketState

from tandem.config import Settings
from tandem.server import ws as ws_module


class StalledPeer:
    """A socket whose peer stopped reading: a text sent never completes."""

    application_state = WebSocketState.CONNECTED

    def __init__(self) -> None:
        self.closed: tuple[int, str] | None = None
        self.sending = asyncio.Event()

    async def send_text(self, text: str) -> None:
        self.sending.set()
        await asyncio.Event().wait()  # never taken

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


async def test_a_notice_the_peer_does_not_take_gives_way_to_the_close() -> None:
    peer = StalledPeer()
    closing = asyncio.ensure_future(
        ws_module._close(peer, 4401, "signed out", notice='{"k":"x"}', notice_seconds=0.01)  # type: ignore[arg-type]
    )
    await asyncio.wait_for(closing, 30)  # a bound on the test, far above the notice's wait
    assert peer.sending.is_set() and peer.closed == (4401, "signed out")


def test_the_sockets_notice_wait_is_the_setting() -> None:
    settings = Settings(close_notice_seconds=7.5)
    assert ws_module._pacing(settings)[2] == 7.5
