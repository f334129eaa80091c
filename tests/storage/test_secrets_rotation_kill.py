"""``tandem secrets rotate`` killed (SIGKILL) half-way through sealing again a database of many
secrets, on both backends: every secret still opens with the ring on disk, and a second
``rotate`` finishes the job (docs/operations.md, "Rotating the secrets key")."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tandem import crypto
from tandem.config import Settings
from tandem.storage.sql import SQLStorage
from tests.conftest import PROCESS_SECONDS
from tests.grants import of_org
from tests.storage.conftest import PG_DSN, fresh_schema, pg_connect

PENDING = 1500
"""Sealed values (single sign-on starts under way): enough that sealing them all again takes
the command long enough to be caught half-way."""

ATTEMPTS = 5
"""Rotations started until one is caught half-way (a look at the database on a loaded machine
can outlast a whole rotation)."""


@pytest.fixture(params=["sqlite", "postgres"])
async def database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[SQLStorage, dict[str, str]]]:
    """A storage of each backend and the environment a ``tandem`` process needs to use it."""
    env = {**os.environ, "TANDEM_DATA_DIR": str(tmp_path / "data")}
    env.pop("TANDEM_DATABASE_URL", None)
    if request.param == "sqlite":
        settings = Settings.load(data_dir=tmp_path / "data")
        settings.data_dir.mkdir()
        store = await SQLStorage.open_sqlite(settings.database_path)
        try:
            yield store, env
        finally:
            await store.close()
        return
    async with fresh_schema(migrated=True) as schema:
        env["TANDEM_DATABASE_URL"] = f"{PG_DSN}?search_path={schema}"
        (tmp_path / "data").mkdir()
        store = await SQLStorage.connect(PG_DSN, schema=schema)
        try:
            yield store, env
        finally:
            await store.close()


async def sealed_values(storage: SQLStorage) -> dict[str, str]:
    return {s.key: s.sealed for s in await storage.sealed_secrets() if s.kind == "oidc_pending"}


async def test_a_rotation_killed_half_way_loses_nothing_and_a_second_one_finishes(
    database: tuple[SQLStorage, dict[str, str]], tmp_path: Path
) -> None:
    storage, env = database
    key_file = tmp_path / "data" / "secrets.key"
    old = crypto.SecretBox(key_file)
    old_id = old.ring.current_id
    grant = of_org("default")
    for n in range(PENDING):
        await storage.put_oidc_pending(grant, f"state-{n}", old.seal(f"start {n}"), 4e9)
    for _attempt in range(ATTEMPTS):
        before = await sealed_values(storage)
        process = subprocess.Popen(
            [sys.executable, "-m", "tandem", "secrets", "rotate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            # Waits on the database itself: killed as soon as some values are sealed again.
            changed = 0
            while changed == 0 and process.poll() is None:
                changed = sum(v != before[k] for k, v in (await sealed_values(storage)).items())
            process.send_signal(signal.SIGKILL)
        finally:
            _, err = process.communicate(timeout=PROCESS_SECONDS)
        if process.returncode == -signal.SIGKILL:
            break
        # On a busy machine the test's look can take longer than the whole rotation: that
        # rotation finished (it must have, whole), and the next one is caught instead.
        assert process.returncode == 0, err.decode(errors="replace")
    assert process.returncode == -signal.SIGKILL, (
        f"every one of {ATTEMPTS} rotations finished before it was killed"
    )
    after = await sealed_values(storage)
    resealed = sum(v != before[k] for k, v in after.items())
    assert 0 < resealed < PENDING, resealed
    on_disk = crypto.SecretBox(key_file)  # what every server takes up after the crash
    assert on_disk.ring.current_id != old_id
    assert {k: on_disk.open(v) for k, v in after.items()} == {
        f"state-{n}": f"start {n}" for n in range(PENDING)
    }
    again = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tandem", "secrets", "rotate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=PROCESS_SECONDS,
    )
    assert again.returncode == 0, again.stderr
    assert "0 still sealed with a previous or the staged key" in again.stdout
    box = crypto.SecretBox(key_file)
    final = await sealed_values(storage)
    assert all(box.sealed_with_current(v) for v in final.values())
    assert {k: box.open(v) for k, v in final.items()} == {
        f"state-{n}": f"start {n}" for n in range(PENDING)
    }
    retired = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tandem", "secrets", "retire"],
        env=env,
        capture_output=True,
        text=True,
        timeout=PROCESS_SECONDS,
    )
    assert retired.returncode == 0, retired.stderr
    assert len(crypto.SecretBox(key_file).ring.keys) == 1


async def test_two_rotations_started_at_once_lose_no_secret(
    migrated_schema: str, tmp_path: Path
) -> None:
    """Two ``tandem secrets rotate`` at once on one key file (an operator's and a script's):
    each read the ring, then each wrote its own new one, the last write wins, and what the
    other sealed with its key, gone from the file, opened with no key. Both are held at their
    first statement (a lock on the recovery codes' table) until both have read the ring."""
    env = {**os.environ, "TANDEM_DATA_DIR": str(tmp_path / "data")}
    env["TANDEM_DATABASE_URL"] = f"{PG_DSN}?search_path={migrated_schema}"
    (tmp_path / "data").mkdir()
    key_file = tmp_path / "data" / "secrets.key"
    storage = await SQLStorage.connect(PG_DSN, schema=migrated_schema)
    try:
        old = crypto.SecretBox(key_file)
        for n in range(PENDING // 3):
            await storage.put_oidc_pending(
                of_org("default"), f"state-{n}", old.seal(f"start {n}"), 4e9
            )
        holder = await pg_connect(migrated_schema)
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE recovery_codes IN ACCESS EXCLUSIVE MODE")
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "tandem", "secrets", "rotate"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            # Until each is waiting on the lock, or has finished (refused).
            while True:
                waiting = await holder.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = "
                    "'recovery_codes'::regclass"
                )
                if waiting + sum(p.poll() is not None for p in processes) >= 2:
                    break
        finally:
            await transaction.rollback()
            await holder.close()
        outcomes = [
            await asyncio.to_thread(p.communicate, timeout=PROCESS_SECONDS) for p in processes
        ]
        codes = [p.returncode for p in processes]
        assert 0 in codes, outcomes
        for code, (_, err) in zip(codes, outcomes, strict=True):
            assert code == 0 or "another `tandem secrets` command" in err, err
        box = crypto.SecretBox(key_file)
        opened = {k: box.open(v) for k, v in (await sealed_values(storage)).items()}
        assert opened == {f"state-{n}": f"start {n}" for n in range(PENDING // 3)}
    finally:
        await storage.close()
