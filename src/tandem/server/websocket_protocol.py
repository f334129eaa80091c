"""The WebSocket protocol Tandem runs under uvicorn: uvicorn's sans-I/O one, with one repair.

When the server stops, uvicorn closes every socket with 1012. A socket whose peer had already
started the closing handshake is in state CLOSING, and uvicorn 0.54 sends it a second close,
which websockets refuses with ``InvalidState``: a traceback on every stop that happens to meet a
closing socket, and in tests a thread exception. Such a socket only needs its transport closed.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State


class TandemWebSocketProtocol(WebSocketsSansIOProtocol):
    def shutdown(self) -> None:
        if self.handshake_complete and not self.close_sent and self.conn.state is not State.OPEN:
            self.stop_keepalive()
            self.transport.close()
            return
        super().shutdown()
