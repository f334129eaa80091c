"""Reading a signed-in request's JSON body (tandem.server.http.json_body), old vs new, in one run.

The old reader gathered the body with ``bytes += chunk``, copying all read so far at each chunk:
a body near a large ``max_request_body_bytes`` (up to 64 MiB allowed) sent in small segments cost
its square in copying, on the event loop. The new one grows one buffer. Each round reads the
same body, in ``--chunk``-byte pieces, with each reader in turn (old, new, new, old, ...) and
takes the ratio of their times; the figure that counts is the median of the per-round ratios.

    PYTHONPATH=src .venv/bin/python bench/request_body.py [--mib 4] [--chunk 1400] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

from tandem.server.http import json_body


class _Request:
    """What json_body reads of a Starlette request: its content type and body stream."""

    def __init__(self, body: bytes, chunk: int) -> None:
        self.headers = {"content-type": "application/json"}
        self._body, self._chunk = body, chunk

    async def stream(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self._body), self._chunk):
            yield self._body[i : i + self._chunk]


async def _old_json_body(request: _Request, most: int) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > most:
            raise ValueError("too large")
    return body


async def _timed(read: Any, body: bytes, chunk: int) -> float:
    start = time.perf_counter()
    got = await read(_Request(body, chunk), len(body))
    elapsed = time.perf_counter() - start
    assert got == body
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=float, default=4.0)
    parser.add_argument("--chunk", type=int, default=1400)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    body = b"[" + b" " * (int(args.mib * 1024 * 1024) - 2) + b"]"
    ratios, olds, news = [], [], []
    for n in range(args.rounds):
        order = [_old_json_body, json_body] if n % 2 == 0 else [json_body, _old_json_body]
        times = {read: await _timed(read, body, args.chunk) for read in order}
        olds.append(times[_old_json_body])
        news.append(times[json_body])
        ratios.append(times[_old_json_body] / times[json_body])
    print(
        f"{args.mib} MiB in {args.chunk}-byte chunks: old median {statistics.median(olds):.3f} s, "
        f"new median {statistics.median(news):.4f} s, "
        f"old/new median {statistics.median(ratios):.0f}x"
    )


if __name__ == "__main__":
    asyncio.run(main())
