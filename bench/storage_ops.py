"""Storage operations, old implementation vs new, on SQLite and PostgreSQL, in one run.

The old implementations (hand-written sqlite3 and asyncpg backends) are loaded from git at
``--old-rev`` into a temporary module; the new one is the working tree's SQLStorage. Each round
runs every operation ``--n`` times on each implementation, interleaved (old, new, new, old, ...:
each pair runs within milliseconds, under the same load), and takes the ratio of their mean
times; the figure that counts is the median of those per-round ratios, which a busy machine
disturbs far less than the times themselves. The operations:

- sign-in lookup: ``get_login`` + ``get_user`` (what every console request does)
- session: start -> join code put and taken (join) -> state (consent) -> end
- audit append: one record, with its record MAC on the new one (as every writer does), no anchor
- sign-in stored (``--against-plain-begin`` only): a password sign-in's write, ``add_login``
  over the account it proved, in one transaction (the operations above are single statements,
  which begin no transaction of their own)

    .venv/bin/python bench/storage_ops.py [--n 100] [--rounds 31] [--old-rev 2a7364f] \
        [--op "audit append"] [--per-round]

With ``--per-round`` each round's ratio is printed too (a median hides whether the rounds over
1.10 came together, a burst of load, or throughout), with the load average at start and end.

With ``--against-sql REV`` the "old" side is instead the SQLStorage of another revision
(``src/tandem/storage/sql.py`` at REV, loaded from git beside this tree's: the schema, its
migrations and everything else it imports are this tree's, so REV must have the same schema):
an A/B of a change to the storage layer alone, interleaved op by op as above.

With ``--against-plain-begin`` the "old" side is instead this tree's SQLStorage with every
PostgreSQL transaction beginning with a bare ``BEGIN`` and no idle-in-transaction timeout at all
(how SQLStorage was before 3adcb5c4, e.g. at 062b34af): what bounding a stopped server's open
transaction costs, alone. On SQLite both sides are then the same code (a measure of the noise).

PostgreSQL is TANDEM_TEST_DATABASE_URL (default: the test server on 127.0.0.1:5432), a fresh
schema per implementation, dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg

from tandem.access import Grant
from tandem.audit import AuditRecord, record_mac, record_mac_key
from tandem.storage.base import LoginRecord, UserRecord
from tandem.storage.sql import SQLStorage

PG_DSN = os.environ.get("TANDEM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parent.parent


def old_module(rev: str, path: str, name: str, into: Path) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    file = into / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class PlainBegin(SQLStorage):
    """SQLStorage whose PostgreSQL transactions begin as before 3adcb5c4: a bare BEGIN, no
    idle-in-transaction timeout."""

    @property
    def _postgres_begin(self) -> str:
        return "BEGIN"


Op = Callable[[Any, int], Awaitable[None]]

LAYERS: tuple[type, ...] = (SQLStorage,)
"""The SQLStorage classes of this run (this tree's, and another revision's with --against-sql):
those take a grant where the old layer took an organisation id."""


def is_new(store: Any) -> bool:
    return isinstance(store, LAYERS)


async def sign_in_lookup(store: Any, i: int) -> None:
    login = await store.get_login(f"token{i % 50}")
    assert login is not None
    assert await store.get_user(login.username) is not None


# The new layer takes a grant where the old took an organisation id (issue 12).
GRANT = Grant.server("default", "benchmark")


async def session_flow(store: Any, i: int) -> None:
    session = f"s{secrets.token_hex(8)}"
    if is_new(store):
        await store.record_session_start(GRANT, session, 1000.0 + i, "demo")
        await store.put_join_code(GRANT, f"code-{session}", session, 10.0**10)
        taken = await store.take_join_code(GRANT, f"code-{session}", 2000.0)
        assert taken is not None and taken.session_id == session
    else:
        await store.record_session_start(session, 1000.0 + i, "default", "demo")
        await store.put_join_code(f"code-{session}", session, 10.0**10, "default")
        assert await store.take_join_code(f"code-{session}", 2000.0) == session
    await store.record_session_state(session, "sharing", "Agent")
    await store.record_session_end(session, 3000.0 + i, "stopped", "Agent")


RECORD_KEY = record_mac_key(bytes(32))


def seal(record: AuditRecord) -> str:
    return record_mac(RECORD_KEY, record.seq, record.prev_hash, record.hash)


async def audit_append(store: Any, i: int) -> None:
    if is_new(store):
        await store.append_audit(
            GRANT, 1000.0 + i, "sign_in", "agent", "", {"ip": "::1"}, seal=seal
        )
    else:
        await store.append_audit(1000.0 + i, "sign_in", "agent", "default", "", {"ip": "::1"})


async def sign_in_stored(store: Any, i: int) -> None:
    """A password sign-in's write (``add_login`` over the account it proved): the one of these
    operations that runs an explicit transaction (the others are single statements)."""
    user = await store.get_user(f"agent{i % 10}")
    stored = await store.add_login(
        LoginRecord(f"t{secrets.token_hex(8)}", user.username, 10.0**10), proved=user
    )
    assert stored


# Only with --against-plain-begin (the old layer had no proved sign-in write).
TRANSACTION_OPS: dict[str, Op] = {"sign-in stored (one transaction)": sign_in_stored}

OPS: dict[str, Op] = {
    "sign-in lookup": sign_in_lookup,
    "session start-join-consent-end": session_flow,
    "audit append": audit_append,
}


async def prepare(store: Any) -> None:
    for u in range(10):
        user = UserRecord(
            f"agent{u}",
            "Agent",
            "agent",
            "h",
            0.0,
            "seed",
            0,
            ("r1", "r2", "r3"),
            org_id="default",
        )
        if is_new(store):
            await store.add_user(GRANT, user)
            await store.set_user_teams(GRANT, f"agent{u}", ("support",))
        else:
            await store.add_user(user)
            await store.set_user_teams(f"agent{u}", "default", ("support",))
    for t in range(50):
        await store.add_login(LoginRecord(f"token{t}", f"agent{t % 10}", 10.0**10))


async def measure(old: Any, new: Any, op: Op, n: int) -> tuple[float, float]:
    """Mean microseconds per operation of each, the two interleaved."""
    spent = {id(old): 0.0, id(new): 0.0}
    for i in range(n):
        for store in (old, new) if i % 2 == 0 else (new, old):
            start = time.perf_counter()
            await op(store, i)
            spent[id(store)] += time.perf_counter() - start
    return spent[id(old)] / n * 1e6, spent[id(new)] / n * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--old-rev", default="2a7364f")
    parser.add_argument(
        "--against-sql",
        metavar="REV",
        help="old side: the SQLStorage of src/tandem/storage/sql.py at REV (same schema)",
    )
    parser.add_argument(
        "--against-plain-begin",
        action="store_true",
        help="old side: this SQLStorage without the idle-in-transaction timeout",
    )
    parser.add_argument(
        "--per-round",
        action="store_true",
        help="also print each round's new/old ratio (and the load average at start and end)",
    )
    parser.add_argument(
        "--op",
        action="append",
        choices=sorted({**OPS, **TRANSACTION_OPS}),
        help="only this operation (repeatable)",
    )
    args = parser.parse_args()
    known = {**OPS, **TRANSACTION_OPS} if args.against_plain_begin else OPS
    ops = {name: op for name, op in known.items() if not args.op or name in args.op}

    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        old_sqlite = old_module(args.old_rev, "src/tandem/storage/sqlite.py", "old_sqlite", tmp)
        old_pg = old_module(args.old_rev, "src/tandem/storage/postgres.py", "old_postgres", tmp)
        admin = await asyncpg.connect(PG_DSN)
        schemas = [f"bench_{secrets.token_hex(4)}" for _ in range(2)]
        for schema in schemas:
            await admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            stores: dict[tuple[str, str], Any] = {}
            global LAYERS
            if args.against_sql:
                other = old_module(args.against_sql, "src/tandem/storage/sql.py", "other_sql", tmp)
                LAYERS = (SQLStorage, other.SQLStorage)
                stores["sqlite", "old"] = await other.SQLStorage.open_sqlite(tmp / "old.sqlite3")
            elif args.against_plain_begin:
                stores["sqlite", "old"] = await PlainBegin.open_sqlite(tmp / "old.sqlite3")
            else:
                stores["sqlite", "old"] = old_sqlite.SQLiteStorage(tmp / "old.sqlite3")
            stores["sqlite", "new"] = await SQLStorage.open_sqlite(tmp / "new.sqlite3")
            if args.against_sql:
                stores["postgresql", "old"] = await other.SQLStorage.connect(
                    PG_DSN, schema=schemas[0]
                )
            elif args.against_plain_begin:
                stores["postgresql", "old"] = await PlainBegin.connect(PG_DSN, schema=schemas[0])
            else:
                stores["postgresql", "old"] = await old_pg.PostgresStorage.connect(
                    PG_DSN, schema=schemas[0]
                )
            stores["postgresql", "new"] = await SQLStorage.connect(PG_DSN, schema=schemas[1])
            for store in stores.values():
                await prepare(store)
            results: dict[tuple[str, str, str], list[float]] = {}
            for _ in range(args.rounds):
                for backend in ("sqlite", "postgresql"):
                    for name, op in ops.items():
                        old, new = await measure(
                            stores[backend, "old"], stores[backend, "new"], op, args.n
                        )
                        results.setdefault((backend, name, "old"), []).append(old)
                        results.setdefault((backend, name, "new"), []).append(new)
            for store in stores.values():
                await store.close()
        finally:
            for schema in schemas:
                await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await admin.close()

    print(
        f"n={args.n} per round, {args.rounds} rounds; times: median of round means (µs/op);"
        " ratio: median (and quartiles) of per-round new/old"
    )
    old_name = (
        f"SQLStorage at {args.against_sql}"
        if args.against_sql
        else "plain BEGIN"
        if args.against_plain_begin
        else args.old_rev
    )
    print(
        f"| backend | operation | old ({old_name}) | new (SQLStorage) | new/old"
        " | quartiles | rounds over 1.10 |"
    )
    print("| --- | --- | ---: | ---: | ---: | --- | ---: |")
    for backend in ("sqlite", "postgresql"):
        for name in ops:
            olds = results[backend, name, "old"]
            news = results[backend, name, "new"]
            ratios = [new / old for old, new in zip(olds, news, strict=True)]
            q1, _, q3 = statistics.quantiles(ratios, n=4)
            over = sum(ratio > 1.10 for ratio in ratios)
            print(
                f"| {backend} | {name} | {statistics.median(olds):.0f}"
                f" | {statistics.median(news):.0f} | {statistics.median(ratios):.2f}"
                f" | {q1:.2f}-{q3:.2f} | {over}/{len(ratios)} |"
            )
    if args.per_round:
        columns = [(backend, name) for backend in ("sqlite", "postgresql") for name in ops]
        print()
        print("per-round new/old: | round | " + " | ".join(f"{b} {n}" for b, n in columns) + " |")
        print("| ---: | " + " | ".join("---:" for _ in columns) + " |")
        for index in range(args.rounds):
            cells = [results[b, n, "new"][index] / results[b, n, "old"][index] for b, n in columns]
            print(f"| {index + 1} | " + " | ".join(f"{cell:.2f}" for cell in cells) + " |")
        end = os.getloadavg()
        print(
            "load average (1, 5, 15 min): at start "
            + ", ".join(f"{x:.1f}" for x in load_at_start)
            + "; at end "
            + ", ".join(f"{x:.1f}" for x in end)
        )


if __name__ == "__main__":
    asyncio.run(main())
