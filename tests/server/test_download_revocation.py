"""A download under way (a recording's file, a subject's export) stops when its sign-in no longer
allows it: the account disabled, its sign-ins ended, its role changed, on this server, on
another one of the cluster, or with the CLI (which announces nothing). Before each chunk the
server asks storage (Hub.download_guard); refused, the connection is reset short of the
``Content-Length`` it announced (never a shorter file that looks whole), and the cut is
audited (``download_cut``).

The client here reads nothing while the account is revoked (its receive buffer a few KiB), so
most of the file is still to be sent then: the kernel's and the transport's buffers hold a few
MB, the file 16."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tandem import crypto, revocation
from tandem.config import Settings
from tandem.directory import Directory, offline, operator
from tandem.storage.base import Grant, RecordingRecord
from tests.conftest import AGENT_PASSWORD, RunningServer, ServerFactory, mark_trained
from tests.server.faults import FailingCall
from tests.server.helpers import closed_with, login_cookie, open_agent
from tests.server.test_recordings import KEY
from tests.server.test_scale_out import run_in_thread, start_cluster

REC = "Dl7mV2xq9TzA0bLc"
SESSION = "sess-download-cut"
FRAMES = 16
"""Frames of a million random bytes: far more than the buffers between server and client."""
PEOPLE = (("aud", "auditor"), ("aud2", "auditor"), ("ada", "admin"), ("ada2", "admin"))


async def seed(directory: Directory) -> None:
    """Two auditors and two admins of the default organisation, and one large recording."""
    default = operator("default")
    for username, role in PEOPLE:
        await directory.add_user(
            default,
            username,
            AGENT_PASSWORD,
            role,
            None,
            (),
            mfa_exempt=True,
            change_required=False,
        )
        await mark_trained(directory.storage, username)
    await directory.set_recording_key(default, KEY)
    storage, now = directory.storage, time.time()
    await storage.record_session_start(Grant.server("default", "test"), SESSION, now - 60, "demo")
    await storage.record_session_end(SESSION, now - 10, "agent_left", "alice")
    key_id = crypto.recording_key_id(KEY)
    record = RecordingRecord(REC, "default", SESSION, "demo", "alice", key_id, now - 50)
    await storage.add_recording(Grant.server("default", "test"), record)
    frames = [b"\x01" + os.urandom(999_999) for _ in range(FRAMES)]
    await storage.append_recording_frames(REC, 0, frames)
    await storage.end_recording(REC, now - 20, "stopped_by_customer")


def cli_settings(server: RunningServer, tmp_path: Path) -> Settings:
    """The CLI's settings for ``server``'s database (its data directory's, or the cluster's)."""
    shared = server.settings
    if not shared.database_url:
        return Settings.load(environ={}, data_dir=shared.data_dir)
    return Settings.load(
        environ={},
        data_dir=tmp_path / "cli",
        database_url=shared.database_url,
        audit_key_file=shared.audit_key_file,
    )


def with_cli(settings: Settings, work: Callable[[Directory], Awaitable[Any]]) -> None:
    async def run() -> None:
        async with offline(settings) as directory:
            await work(directory)

    run_in_thread(run)


@pytest.fixture(params=["sqlite", "postgresql"])
def servers(
    request: pytest.FixtureRequest, server_factory: ServerFactory, tmp_path: Path
) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Where the revocation is made and where the download runs: one SQLite server twice, or
    two servers of a cluster on PostgreSQL and Redis."""
    if request.param == "sqlite":
        server = server_factory(seed=seed)
        yield server, server
        return
    request.getfixturevalue("requires_redis")
    # Seeded before the servers start: their sweep ends a running recording no live process owns,
    # and the seed's recording runs until its frames are in (it failed so under load).
    with start_cluster(server_factory, tmp_path, seed_also=seed) as start:
        yield start(), start()


OPEN: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_downloads() -> Iterator[None]:
    """A test that fails half-way leaves no download's socket open."""
    yield
    while OPEN:
        OPEN.pop().close()


class Download:
    """A download read by hand: its headers first, the rest when the test says."""

    def __init__(self, server: RunningServer, method: str, path: str, cookie: str, body: Any):
        data = json.dumps(body).encode() if body is not None else b""
        self.sock = socket.socket()
        OPEN.append(self.sock)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # takes little unread
        self.sock.connect(("127.0.0.1", server.settings.port))
        self.sock.settimeout(30)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.settings.port}\r\n"
            f"Origin: {server.origin}\r\nCookie: tandem_agent={cookie}\r\n"
        )
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + data)
        received = b""
        while b"\r\n\r\n" not in received:
            more = self.sock.recv(4096)
            assert more, received
            received += more
        head_bytes, self.body_start = received.split(b"\r\n\r\n", 1)
        lines = head_bytes.decode("latin-1").split("\r\n")
        assert lines[0] == "HTTP/1.1 200 OK", lines
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        self.length = int(headers["content-length"])

    def rest(self) -> tuple[int, str]:
        """Read to the end of the body or of the connection: the body's bytes received, and how
        it ended (``whole``, ``eof``, ``reset``)."""
        got = len(self.body_start)
        try:
            while got < self.length:
                more = self.sock.recv(1 << 20)
                if not more:
                    return got, "eof"
                got += len(more)
            return got, "whole"
        except ConnectionResetError:
            return got, "reset"
        finally:
            self.sock.close()


def cuts(server: RunningServer) -> list[dict[str, Any]]:
    """The audited cuts, as the second auditor reads them."""
    with httpx.Client(
        base_url=server.base, cookies={"tandem_agent": login_cookie(server, "aud2")}
    ) as aud2:
        answer = aud2.get("/api/audit", params={"limit": 1000})
        assert answer.status_code == 200, answer.text
        return [r for r in answer.json() if r["action"] == "download_cut"]


async def wait_for(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def assert_cut(
    download: Download, server: RunningServer, who: str, what: str, needs: str, reason: str
) -> None:
    got, ended = await asyncio.to_thread(download.rest)
    assert got < download.length, (got, download.length)  # never the whole file
    assert ended == "reset"  # and never an orderly end that a client could take for one
    await wait_for(lambda: len(cuts(server)) == 1)
    [cut] = cuts(server)
    assert (cut["actor"], cut["subject"]) == ("server", who)
    details = cut["details"]
    assert (details["what"], details["needs"], details["reason"]) == (what, needs, reason)
    assert 0 < details["sent"] < details["size"] == download.length


async def test_a_recording_download_stops_when_the_cli_disables_its_account(
    servers: tuple[RunningServer, RunningServer], tmp_path: Path
) -> None:
    """The CLI announces nothing: the download's own check finds the account disabled."""
    other, serving = servers
    download = Download(
        serving, "GET", f"/api/recordings/{REC}/export", login_cookie(serving, "aud"), None
    )

    async def disable(directory: Directory) -> None:
        await directory.set_disabled(operator("default"), "aud", True)

    await asyncio.to_thread(with_cli, cli_settings(other, tmp_path), disable)
    await assert_cut(
        download,
        serving,
        "aud",
        f"recording {REC}",
        "recording.export",
        "signed out: sign in again",
    )


async def test_a_playback_stops_when_its_auditor_signs_out_everywhere_on_another_server(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    other, serving = servers
    cookie = login_cookie(serving, "aud")
    download = Download(serving, "GET", f"/api/recordings/{REC}/content", cookie, None)
    signed_out = httpx.post(
        f"{other.base}/api/logout-everywhere",
        cookies={"tandem_agent": cookie},
        headers={"origin": other.origin},
    )
    assert signed_out.status_code in (200, 204), signed_out.text
    await assert_cut(
        download, serving, "aud", f"recording {REC}", "recording.play", "signed out: sign in again"
    )


def stalled(server: RunningServer) -> bool:
    """Whether a download of ``server`` waits for its client: the kernel's buffers full, the
    transport's past its mark (uvicorn pauses the application's sends until it drains)."""
    hub = server.server.config.app.state.services.hub
    drops = [guard._drop for guard in list(hub._downloads)]
    return any(drop.args[0].flow.write_paused for drop in drops if drop is not None)


async def test_a_download_whose_client_reads_nothing_is_cut_at_the_announcement(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    """The check before each chunk waits for the client to take the last one: an announced
    revocation (here sign-out on another server) cuts the download at once, and what the
    server still held for it is never sent (the connection is reset)."""
    other, serving = servers
    cookie = login_cookie(serving, "aud")
    download = Download(serving, "GET", f"/api/recordings/{REC}/export", cookie, None)
    await wait_for(lambda: stalled(serving))  # nothing more goes until the client reads
    signed_out = httpx.post(
        f"{other.base}/api/logout",
        cookies={"tandem_agent": cookie},
        headers={"origin": other.origin},
    )
    assert signed_out.status_code == 204, signed_out.text
    await wait_for(lambda: len(cuts(serving)) == 1)  # the client has read nothing meanwhile
    [cut] = cuts(serving)
    assert cut["details"]["reason"] == "signed out: sign in again"
    got, ended = await asyncio.to_thread(download.rest)
    assert ended == "reset" and got < download.length


async def test_a_subject_export_stops_when_another_admin_takes_the_role_away(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    other, serving = servers
    download = Download(
        serving, "POST", "/api/subjects/export", login_cookie(serving, "ada"), {"subject": SESSION}
    )
    with httpx.Client(
        base_url=other.base,
        cookies={"tandem_agent": login_cookie(other, "ada2")},
        headers={"origin": other.origin},
    ) as ada2:
        demoted = ada2.patch("/api/users/ada", json={"role": "agent"})
        assert demoted.status_code == 200, demoted.text
    await assert_cut(
        download, serving, "ada", "subject export", "org.manage", "your role no longer allows this"
    )


async def test_a_download_whose_account_keeps_its_rights_is_sent_whole(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    """The checks cut nothing else: another auditor signing out leaves this one's file whole."""
    other, serving = servers
    download = Download(
        serving, "GET", f"/api/recordings/{REC}/export", login_cookie(serving, "aud"), None
    )
    cookie = login_cookie(other, "aud2")
    signed_out = httpx.post(
        f"{other.base}/api/logout-everywhere",
        cookies={"tandem_agent": cookie},
        headers={"origin": other.origin},
    )
    assert signed_out.status_code in (200, 204), signed_out.text
    assert await asyncio.to_thread(download.rest) == (download.length, "whole")
    assert cuts(serving) == []


async def test_a_download_whose_sign_in_cannot_be_checked_stops(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database not answering the check: nobody can tell whether the sign-in still holds,
    so nothing more goes out (the auditor asks again once it answers); the cut is audited."""
    server = server_factory(seed=seed)
    failing = FailingCall(server.server.config.app.state.services.storage, monkeypatch, "may_go_on")
    failing.arm(1)  # the first check's first read fails; the cut's record is written
    cookie = login_cookie(server, "aud")
    download = Download(server, "GET", f"/api/recordings/{REC}/export", cookie, None)
    await assert_cut(
        download, server, "aud", f"recording {REC}", "recording.export", revocation.NOT_CHECKED
    )


async def test_a_download_check_that_waits_for_storage_holds_up_no_other_revocation(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An announcement names a download under way, whose check then waits for storage (a frozen
    or locked database: up to ``database_timeout_seconds``, held here until the test ends). The
    announcements after it are still acted on: alice signing out closes her socket at once. The
    listener awaited each download's check in turn, so every revocation of the process waited
    behind it (and behind each further download an announcement named)."""
    server = server_factory(seed=seed, agent_reauth_seconds=3600.0)
    hub = server.server.config.app.state.services.hub
    aud = login_cookie(server, "aud")
    download = Download(server, "GET", f"/api/recordings/{REC}/export", aud, None)
    await wait_for(lambda: stalled(server))  # its own checks wait for the client meanwhile
    held, waiting = threading.Event(), threading.Event()
    check = hub._download_refusal

    async def held_check(guard: Any) -> str | None:
        waiting.set()
        await asyncio.to_thread(held.wait)
        return await check(guard)

    monkeypatch.setattr(hub, "_download_refusal", held_check)
    alice = login_cookie(server, "alice")
    agent = await open_agent(server, alice)
    try:
        # aud's other sign-in signs out everywhere: the announcement names aud's download.
        everywhere = httpx.post(
            f"{server.base}/api/logout-everywhere",
            cookies={"tandem_agent": login_cookie(server, "aud")},
            headers={"origin": server.origin},
        )
        assert everywhere.status_code in (200, 204), everywhere.text
        await asyncio.to_thread(waiting.wait, 15)
        assert waiting.is_set()  # the download's check waits for storage
        signed_out = httpx.post(
            f"{server.base}/api/logout",
            cookies={"tandem_agent": alice},
            headers={"origin": server.origin},
        )
        assert signed_out.status_code == 204, signed_out.text
        assert await closed_with(agent, timeout=15) == (4401, revocation.SIGNED_OUT)
    finally:
        held.set()
    await assert_cut(
        download, server, "aud", f"recording {REC}", "recording.export", revocation.SIGNED_OUT
    )
