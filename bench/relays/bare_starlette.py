"""A bare relay on Starlette and uvicorn (uvloop, httptools, the same WebSocket implementation
as Tandem, permessage-deflate off): the anchor bench/relay.py measures Tandem's relay against.

A customer and its agents meet by a session name in the path (`/ws/customer/<name>`,
`/ws/agent/<name>`); every binary frame from the customer goes to each agent of its session and
every agent frame to the customer. Nothing else: no sign-in, no protocol, no limits, no queues.

    python bench/relays/bare_starlette.py PORT
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket


@dataclass
class Room:
    customer: WebSocket | None = None
    agents: list[WebSocket] = field(default_factory=list)


ROOMS: dict[str, Room] = {}


async def relay(websocket: WebSocket) -> None:
    await websocket.accept()
    name, role = websocket.path_params["name"], websocket.path_params["role"]
    room = ROOMS.setdefault(name, Room())
    if role == "customer":
        room.customer = websocket
    else:
        room.agents.append(websocket)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                continue
            if role == "customer":
                for agent in room.agents:
                    await agent.send_bytes(data)
            elif room.customer is not None:
                await room.customer.send_bytes(data)
    finally:
        if role == "customer":
            room.customer = None
        else:
            room.agents.remove(websocket)
        if room.customer is None and not room.agents:
            ROOMS.pop(name, None)


app = Starlette(routes=[WebSocketRoute("/ws/{role}/{name}", relay)])

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        ws_max_size=2 * 1024 * 1024,
        log_level="warning",
        access_log=False,
    )
