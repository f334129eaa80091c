"""Write-ahead-log frames each SQLite operation of bench/storage_ops.py writes, old layer against
this tree's SQLStorage, counted exactly (no clock: unaffected by the machine's load).

Each store's own connection runs with ``wal_autocheckpoint`` off; before a batch of ``--n``
operations the log is emptied (``wal_checkpoint(TRUNCATE)``) and after it its frames are read
(``wal_checkpoint(PASSIVE)``). A frame is a page changed by a commit (4 KiB and a header), written
at the commit; once 1,000 are in the log, the commit that crosses the mark also runs the
checkpoint (with the default ``wal_autocheckpoint``): so an operation's frames are also its share of
the checkpoints.

    .venv/bin/python bench/storage_wal_frames.py [--n 100] [--rounds 3] [--old-rev 2a7364f]
        [--with-index "CREATE INDEX audit_at ON audit(at)"]

``--with-index`` runs a third store: this tree's, with that statement run on its file first (an
index a revision dropped, put back).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import storage_ops
from tandem.storage.sql import SQLStorage

_connect = sqlite3.connect


def _no_autocheckpoint(*args: Any, **kwargs: Any) -> sqlite3.Connection:
    connection = _connect(*args, **kwargs)
    connection.execute("PRAGMA wal_autocheckpoint=0")
    return connection


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--old-rev", default="2a7364f")
    parser.add_argument("--with-index", metavar="SQL")
    args = parser.parse_args()
    sqlite3.connect = _no_autocheckpoint  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        old_sqlite = storage_ops.old_module(
            args.old_rev, "src/tandem/storage/sqlite.py", "old_sqlite", tmp
        )
        stores: dict[str, tuple[Any, Path]] = {
            "old": (old_sqlite.SQLiteStorage(tmp / "old.sqlite3"), tmp / "old.sqlite3")
        }
        if args.with_index:
            path = tmp / "with.sqlite3"
            await (await SQLStorage.open_sqlite(path)).close()
            with _connect(path) as db:
                db.execute(args.with_index)
            stores["with index"] = (await SQLStorage.open_sqlite(path), path)
        stores["new"] = (await SQLStorage.open_sqlite(tmp / "new.sqlite3"), tmp / "new.sqlite3")
        for store, _ in stores.values():
            await storage_ops.prepare(store)
        print(f"WAL frames per operation ({args.n} a batch): " + " | ".join(stores))
        for index in range(args.rounds):
            for name, op in storage_ops.OPS.items():
                counts = []
                for store, path in stores.values():
                    spy = _connect(path, isolation_level=None)
                    spy.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    for i in range(args.n):
                        await op(store, index * args.n + i)
                    frames = spy.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
                    spy.close()
                    counts.append(f"{frames / args.n:.2f}")
                print(f"round {index + 1}, {name}: " + " | ".join(counts))
        for store, _ in stores.values():
            if isinstance(store, SQLStorage):
                await store.close()


if __name__ == "__main__":
    asyncio.run(main())
