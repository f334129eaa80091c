"""What scale-out costs a keystroke: real `tandem serve` processes, real Chromium.

Three ways to run the same session, alternated within one run:

* ``single``: one server on SQLite, no Redis (the default deployment);
* ``cluster``: two servers on one PostgreSQL and one Redis, customer and agent both on server A
  (frames go through Redis even so);
* ``tunnelled``: the same two servers, customer on A and the agent's console on B, so every
  frame to the agent crosses the tunnel (A -> Redis -> B).

Prints the keystroke-to-agent-view latency of each and the paired ratios against ``single``.
Needs PostgreSQL (TANDEM_BENCH_DATABASE_URL, default the test database on 127.0.0.1) and Redis
(TANDEM_BENCH_REDIS_URL, default redis://127.0.0.1:6379/0).

    .venv/bin/python bench/scale_out_latency.py [--keys 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import add_alice, launch, median_ratio, serve, tandem_server
from keystroke_latency import measure, summary

DSN = os.environ.get("TANDEM_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("TANDEM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


async def _sql(statement: str) -> None:
    db = await asyncpg.connect(DSN)
    try:
        await db.execute(statement)
    finally:
        await db.close()


@contextlib.contextmanager
def cluster() -> Iterator[tuple[str, str]]:
    """Two `tandem serve` processes on a fresh PostgreSQL schema and one Redis prefix."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_sql(f'CREATE SCHEMA "{schema}"'))
    try:
        with (
            tempfile.TemporaryDirectory() as keys,
            tempfile.TemporaryDirectory() as one,
            tempfile.TemporaryDirectory() as two,
        ):
            env = {
                **os.environ,
                "TANDEM_DATABASE_URL": f"{DSN}?search_path={schema}",
                "TANDEM_REDIS_URL": REDIS,
                "TANDEM_REDIS_PREFIX": f"bench-{schema}:",
                "TANDEM_AUDIT_KEY": str(Path(keys) / "audit.key"),
            }
            add_alice(one, env)
            with serve(one, env) as a, serve(two, env) as b:
                yield a, b
    finally:
        asyncio.run(_sql(f'DROP SCHEMA "{schema}" CASCADE'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delay-ms", type=int, default=80)
    args = parser.parse_args()
    runs: dict[str, list[list[float]]] = {"single": [], "cluster": [], "tunnelled": []}
    with tandem_server() as single, cluster() as (a, b), sync_playwright() as pw:
        browser = launch(pw)
        for _ in range(args.rounds):
            runs["single"].append(measure(browser, single, None, args.keys, args.delay_ms))
            runs["cluster"].append(measure(browser, a, None, args.keys, args.delay_ms))
            runs["tunnelled"].append(
                measure(browser, a, None, args.keys, args.delay_ms, agent_base=b)
            )
        browser.close()
    medians = {name: [statistics.median(r) for r in rounds] for name, rounds in runs.items()}
    for name, rounds in runs.items():
        print(f"keystroke -> agent view, {name}: {summary([x for r in rounds for x in r])}")
    for name in ("cluster", "tunnelled"):
        ratio = median_ratio(medians[name], medians["single"])
        print(f"ratio {name}/single (median of {args.rounds} paired rounds): {ratio:.3f}")


if __name__ == "__main__":
    main()
