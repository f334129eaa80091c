"""What a record's identity costs its append (tandem.audit.WRITE_ID): the records the hub may keep
and write again (``SessionHub.record_done``'s, a session's ``session_ended``) are appended with
their identity noted in the same transaction (a look-up and an insert into
``audit_backlog_lines``); every other record as before. Both kinds of append, interleaved op by op
on one storage of each backend (sealed with a record MAC, no anchor due, as
``bench/storage_ops.py``'s "audit append"); the figure is the median over rounds of the
per-round ratio identified/plain.

    PYTHONPATH=$PWD/src .venv/bin/python bench/audit_write_id.py [--n 100] [--rounds 21]

PostgreSQL is TANDEM_TEST_DATABASE_URL (default: the test server on 127.0.0.1:5432), a fresh
schema, dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg

from tandem.access import Grant
from tandem.audit import AuditRecord, record_mac, record_mac_key, write_note
from tandem.storage.sql import SQLStorage

PG_DSN = os.environ.get("TANDEM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
GRANT = Grant.server("default", "benchmark")
RECORD_KEY = record_mac_key(bytes(32))


def seal(record: AuditRecord) -> str:
    return record_mac(RECORD_KEY, record.seq, record.prev_hash, record.hash)


async def append(store: SQLStorage, i: int, identified: bool) -> None:
    note = write_note(secrets.token_urlsafe(16)) if identified else None
    await store.append_audit(
        GRANT, 1000.0 + i, "socket_closed", "server", "ann", {"code": 4403}, seal=seal,
        backlog_line=note,
    )  # fmt: skip


async def measure(store: SQLStorage, n: int) -> tuple[float, float]:
    """Mean microseconds per append, plain and identified, the two interleaved."""
    spent = {False: 0.0, True: 0.0}
    for i in range(n):
        for identified in (False, True) if i % 2 == 0 else (True, False):
            start = time.perf_counter()
            await append(store, i, identified)
            spent[identified] += time.perf_counter() - start
    return spent[False] / n * 1e6, spent[True] / n * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    load_at_start = os.getloadavg()
    results: dict[str, list[tuple[float, float]]] = {"sqlite": [], "postgresql": []}
    with tempfile.TemporaryDirectory() as tmp:
        admin = await asyncpg.connect(PG_DSN)
        schema = f"bench_{secrets.token_hex(4)}"
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            stores = {
                "sqlite": await SQLStorage.open_sqlite(Path(tmp) / "bench.sqlite3"),
                "postgresql": await SQLStorage.connect(PG_DSN, schema=schema),
            }
            for _ in range(args.rounds):
                for backend, store in stores.items():
                    results[backend].append(await measure(store, args.n))
            for store in stores.values():
                await store.close()
        finally:
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await admin.close()
    print(f"n={args.n} per round, {args.rounds} rounds; µs/append: median of round means")
    print("| backend | plain | identified | identified/plain | quartiles |")
    print("| --- | ---: | ---: | ---: | --- |")
    for backend, rounds in results.items():
        ratios = [identified / plain for plain, identified in rounds]
        q1, _, q3 = statistics.quantiles(ratios, n=4)
        print(
            f"| {backend} | {statistics.median(p for p, _ in rounds):.0f}"
            f" | {statistics.median(i for _, i in rounds):.0f}"
            f" | {statistics.median(ratios):.2f} | {q1:.2f}-{q3:.2f} |"
        )
    end = os.getloadavg()
    print(
        f"load average (1 min): {load_at_start[0]:.1f} at start, {end[0]:.1f} at end",
    )


if __name__ == "__main__":
    asyncio.run(main())
