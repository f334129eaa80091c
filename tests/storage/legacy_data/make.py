"""Make the data directories of earlier Tandem versions that tests/storage/test_legacy_upgrade.py
upgrades. Not run by the tests: run it again only to add a version.

Each version's own source (``git archive``) runs its own CLI (users with a second factor and
recovery codes, organisations, teams, sites: each also an audit record) and its own storage
class (sign-ins, sessions, join codes, recordings, where it has them), so the files are what
that version wrote. PostgreSQL installations are dumped (``pg_dump --inserts``, gzipped) with the
schema renamed ``legacy_schema``; the test restores them into a fresh schema.

    .venv/bin/python tests/storage/legacy_data/make.py
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
PG_DSN = os.environ.get("TANDEM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
PASSWORD = "correct horse battery staple 42!"
# Versions whose schemas differ (SQLite user_version 1..10; PostgreSQL counter 1..4).
SQLITE_REVS = ("b137937", "17f7c54", "a851e22", "5cb77de", "dd83e85", "2a7364f")
POSTGRES_REVS = ("7125fee", "2a7364f")

# Run inside the old version: whatever of its storage API it has, through its own classes.
EXTRA = r"""
import asyncio, dataclasses, inspect, os, sys
from pathlib import Path

async def call(store, name, *args, **kwargs):
    method = getattr(store, name, None)
    if method is None:
        return None
    accepted = inspect.signature(method).parameters
    return await method(*args, **{k: v for k, v in kwargs.items() if k in accepted})

def record(cls, **values):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})

async def main():
    from tandem.storage import base
    if os.environ.get("TANDEM_DATABASE_URL"):
        from tandem.storage.postgres import PostgresStorage
        store = await PostgresStorage.connect(os.environ["TANDEM_DATABASE_URL"])
    else:
        from tandem.storage.sqlite import SQLiteStorage
        store = SQLiteStorage(Path(sys.argv[1]) / "tandem.sqlite3")
    login = record(base.LoginRecord, token_digest="token-1", username="alice",
                   expires_at=4.0e9, last_seen=1.0e9, method="password")
    await call(store, "add_login", login)
    await call(store, "record_session_start", "session-ended", 1.0e9, org_id="default")
    await call(store, "record_session_end", "session-ended", 1.0e9 + 60, "stopped", "alice")
    await call(store, "record_session_start", "session-live", 4.0e9, org_id="default")
    await call(store, "put_join_code", "code-1", "session-live", 4.0e9 + 600)
    if hasattr(base, "RecordingRecord"):
        await call(store, "add_recording", record(
            base.RecordingRecord, recording_id="rec-1", org_id="default",
            session_id="session-ended", site_id="", agent="alice", key_id="k1",
            started_at=1.0e9, ended_at=None, end_reason=None, frames=0, size=0))
        await call(store, "append_recording_frames", "rec-1", 0, [b"\x00frame", b"\xff" * 64])
        await call(store, "end_recording", "rec-1", 1.0e9 + 60, "stopped")
    try:
        from tandem import audit
    except ImportError:
        pass
    else:  # the version's own chain and anchors (anchored every 2 records), with its key
        key = audit.load_or_create_key(Path(sys.argv[1]) / "audit.key")
        log = audit.AuditLog(store, key, anchor_every=2)
        for i in range(5):
            await log.record(1.0e9 + i, "sign_in", actor="alice", org="default", n=i)
    await store.close()

asyncio.run(main())
"""


def cli(source: Path, *args: str, env: dict[str, str], stdin: str | None = None) -> bool:
    """Run the old version's ``tandem``; False if it has no such command or option."""
    done = subprocess.run(
        [sys.executable, "-m", "tandem", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(source / "src"), **env},
        timeout=300,
    )
    if done.returncode != 0:
        if "No such command" in done.stderr or "No such option" in done.stderr:
            return False
        raise SystemExit(f"{args}: {done.stderr}")
    return True


def populate(source: Path, data_dir: Path, env: dict[str, str]) -> None:
    def run(command: str, stdin: str | None = None) -> bool:
        return cli(source, *command.split(), "--data-dir", str(data_dir), env=env, stdin=stdin)

    run("user add alice --role admin --password-stdin", PASSWORD)
    if run("org add acme --name Acme --team claims"):
        run("org add-team acme billing")
        run("site add shop --origin https://shop.example --org acme --team claims")
        run("user add bob --org acme --team claims --password-stdin", PASSWORD)
    run("user add carol --role auditor --password-stdin", PASSWORD)
    subprocess.run(
        [sys.executable, "-c", EXTRA, str(data_dir)],
        check=True,
        env={**os.environ, "PYTHONPATH": str(source / "src"), **env},
        timeout=300,
    )


def extract(rev: str, into: Path) -> Path:
    source = into / f"src-{rev}"
    source.mkdir()
    archive = subprocess.run(
        ["git", "archive", rev, "src"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    return source


async def make_postgres(rev: str, source: Path, tmp: Path) -> None:
    schema = f"legacy_{rev}"
    admin = await asyncpg.connect(PG_DSN)
    try:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        data_dir = HERE / f"postgres-{rev}"
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir()
        populate(source, data_dir, {"TANDEM_DATABASE_URL": f"{PG_DSN}?search_path={schema}"})
        host = PG_DSN.partition("@")[2].partition("/")[0].partition(":")
        dump = subprocess.run(
            [
                "pg_dump",
                "--inserts",
                "--no-owner",
                "--no-privileges",
                "-n",
                schema,
                "-h",
                host[0],
                "-p",
                host[2] or "5432",
                "-U",
                "postgres",
                "test",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        lines = [
            line
            for line in dump.splitlines()
            if not line.startswith(("SET transaction_timeout", "\\restrict", "\\unrestrict"))
        ]
        text = "\n".join(lines).replace(schema, "legacy_schema")
        # Compressed: a generated fixture, not code anyone edits.
        (data_dir / "dump.sql.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


def main() -> None:
    import asyncio

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for rev in sorted(set(SQLITE_REVS) | set(POSTGRES_REVS)):
            source = extract(rev, tmp)
            if rev in SQLITE_REVS:
                data_dir = HERE / f"sqlite-{rev}"
                shutil.rmtree(data_dir, ignore_errors=True)
                populate(source, data_dir, {})
            if rev in POSTGRES_REVS:
                asyncio.run(make_postgres(rev, source, tmp))
            print("made", rev)


if __name__ == "__main__":
    main()
