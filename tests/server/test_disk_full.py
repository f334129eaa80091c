"""The disk under SQLite filling up ("database or disk is full": the data directory on a small
tmpfs, filled by another file) while a recording is written and people sign in: the recording
ends ``unavailable`` with both sides told and sharing goes on, a sign-in answers 503, and once
space is freed everything works again without a restart (the failed recording's end and its
audit record are written, new sign-ins, sessions and recordings work)."""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import AGENT_PASSWORD, ServerFactory
from tests.server.helpers import closed_with, recv_json, send
from tests.server.test_admin_api import audit_actions
from tests.server.test_recordings import recording, with_recording_key
from tests.server.test_storage_faults import stored, wait_for

DISK = "12m"
"""The tmpfs under the server's data directory: its database and keys, and little else."""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path / "data0"`` (the first server's data directory) on a tmpfs of :data:`DISK`."""
    where = tmp_path / "data0"
    where.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={DISK},mode=0700", "tmpfs", str(where)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"these tests need to mount a tmpfs (run as root): {exc}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@contextlib.contextmanager
def disk_full(directory: Path) -> Iterator[None]:
    """Fill the file system of ``directory`` with another file, until no byte is left."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as out:
        while True:
            try:
                out.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    try:
        yield
    finally:
        filler.unlink()


async def test_a_full_disk_ends_the_recording_sharing_goes_on_and_all_recovers_once_freed(
    server_factory: ServerFactory, small_disk: Path
) -> None:
    server = server_factory(seed=with_recording_key, recording_flush_bytes=1024)
    assert server.settings.data_dir == small_disk
    customer, alice, created = await recording(server)
    credentials = {"username": "alice", "password": AGENT_PASSWORD}
    with disk_full(small_disk):
        # Bigger than anything the write-ahead log can still hold: the flush needs new pages.
        big = b"\x01" + b"x" * 512 * 1024
        unavailable = {"v": 1, "type": "recording", "on": False, "reason": "unavailable"}
        told: list[object] = []
        for _ in range(8):
            await customer.send(big)
            assert await alice.recv() == big  # relayed before it is kept
            with contextlib.suppress(TimeoutError):
                told.append(await recv_json(alice, timeout=2))
                break
        assert told == [unavailable]
        assert await recv_json(customer, timeout=5) == unavailable
        await customer.send(b"\x01still-sharing")
        assert await alice.recv() == b"\x01still-sharing"
        # A sign-in's few pages may still fit in the write-ahead log's space the failed flush
        # grew it by (SQLite writes over what was rolled back): such a sign-in is written, and
        # rightly answers 200. The log cannot grow, so the sign-ins that follow reach its end.
        for _ in range(500):
            refused = httpx.post(f"{server.base}/api/login", json=credentials, timeout=30)
            assert refused.status_code in (200, 503), refused.text  # never a server error
            if refused.status_code == 503:
                break
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    # Space again: the recording's end and its audit record are written, and all works.
    await wait_for(
        lambda: (
            stored(
                server,
                "SELECT count(*) FROM recordings WHERE end_reason = 'unavailable'",
            )
            == [(1,)]
        ),
        timeout=30,
    )
    await wait_for(lambda: "recording_failed" in audit_actions(server), timeout=30)
    assert httpx.post(f"{server.base}/api/login", json=credentials).status_code == 200
    await send(customer, type="stop")
    await closed_with(customer)
    await wait_for(
        lambda: (
            stored(
                server,
                "SELECT end_reason FROM sessions WHERE session_id = ?",
                created["session_id"],
            )
            != [(None,)]
        ),
        timeout=30,
    )
    customer, alice, _ = await recording(server)  # a new session records again
    await customer.send(b"\x01" + b"y" * 4096)
    await alice.recv()
    server.stop()  # before its disk goes
