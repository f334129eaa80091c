"""A bare relay on the `websockets` library and uvloop, without ASGI: a second anchor for
bench/relay.py. Same rooms and routing as bare_starlette.py.

    python bench/relays/bare_websockets.py PORT
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field

import uvloop
from websockets.asyncio.server import ServerConnection, serve


@dataclass
class Room:
    customer: ServerConnection | None = None
    agents: list[ServerConnection] = field(default_factory=list)


ROOMS: dict[str, Room] = {}


async def relay(websocket: ServerConnection) -> None:
    _, _, role, name = websocket.request.path.split("/", 3)  # type: ignore[union-attr]
    room = ROOMS.setdefault(name, Room())
    if role == "customer":
        room.customer = websocket
    else:
        room.agents.append(websocket)
    try:
        async for message in websocket:
            if isinstance(message, str):
                continue
            if role == "customer":
                for agent in room.agents:
                    await agent.send(message)
            elif room.customer is not None:
                await room.customer.send(message)
    finally:
        if role == "customer":
            room.customer = None
        else:
            room.agents.remove(websocket)
        if room.customer is None and not room.agents:
            ROOMS.pop(name, None)


async def main(port: int) -> None:
    async with serve(relay, "127.0.0.1", port, compression=None, max_size=2 * 1024 * 1024):
        await asyncio.Future()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
