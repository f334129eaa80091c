"""A recording's playback and its end racing its erasure, on a real server and PostgreSQL
(frozen behind tests.server.db_proxy at the chosen statement, the erasure from the `tandem`
command or another server, on connections of their own).

The content route read the recording's row, then its frames, then wrote ``recording_played``,
each on its own: an erasure of the customer (``tandem subject erase``) committed between them
gave the auditor the erased recording's header (its session, agent, site) with no frames, and
wrote a ``recording_played`` record naming the erased recording and session after the
``subject_erased`` one, linking the erased customer in the trail again. A recording's end was
committed alone too, its record after it: erased in between, the record named it after its
erasure."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tandem.recordings import read_container
from tests.conftest import AGENT_PASSWORD, RunningServer, ServerFactory, mark_trained
from tests.conftest import tandem_in_process as run
from tests.server.db_proxy import StoppableProxy, proxied_url
from tests.server.helpers import login_cookie, recv_json, send
from tests.server.test_frozen_database import recording_server
from tests.server.test_organisations import api
from tests.server.test_recording_races import SETTLED, TOLD, cli_environ, erase_command
from tests.server.test_recordings import recording
from tests.server.test_scale_out import run_in_thread
from tests.storage.conftest import PG_DSN, fresh_schema, pg_connect


def add_account(seed_dir: Path, url: str, username: str, role: str) -> None:
    from tandem.config import Settings
    from tandem.directory import offline, operator

    async def add() -> None:
        settings = Settings.load(environ={}, data_dir=seed_dir, database_url=url)
        async with offline(settings) as directory:
            await directory.add_user(
                operator("default"),
                username,
                AGENT_PASSWORD,
                role,
                None,
                (),
                mfa_exempt=True,
                change_required=False,
            )
            await mark_trained(directory.storage, username)

    run_in_thread(add)


def add_auditor(seed_dir: Path, url: str) -> None:
    add_account(seed_dir, url, "aud", "auditor")


def add_admin(seed_dir: Path, url: str) -> None:
    add_account(seed_dir, url, "ada", "admin")


async def until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + SETTLED
    while not await condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def session_ended(db: Any, session_id: str) -> None:
    """Wait until the session is ended in storage."""

    async def ended() -> bool:
        query = "SELECT ended_at FROM sessions WHERE session_id = $1"
        return await db.fetchval(query, session_id) is not None

    await until(ended, "the session was never ended in storage")


async def ended_recording(
    server: RunningServer, db: Any, label: bytes = b"locked"
) -> tuple[str, str, list[bytes]]:
    """A recording of three frames (named ``label``) whose session has ended in storage:
    (session, recording, frames)."""
    customer, alice, created = await recording(server)
    frames = [b"\x01" + label + b"-%03d" % i for i in range(3)]
    for frame in frames:
        await customer.send(frame)
        assert await asyncio.wait_for(alice.recv(), TOLD) == frame
    await send(alice, type="leave")  # the customer's browser ends the recording
    assert (await recv_json(customer))["reason"] == "session_ending"
    await send(customer, type="record_stop")
    session_id = created["session_id"]
    await session_ended(db, session_id)
    return session_id, await db.fetchval("SELECT recording_id FROM recordings"), frames


def client_of(server: RunningServer, username: str) -> httpx.AsyncClient:
    """``username``'s browser on ``server`` (signed in), waiting up to SETTLED for answers."""
    return httpx.AsyncClient(
        base_url=server.base,
        cookies={"tandem_agent": login_cookie(server, username)},
        headers={"origin": server.origin},
        timeout=SETTLED,
    )


def cluster_peer(
    server_factory: ServerFactory, tmp_path: Path, schema: str, **settings: Any
) -> RunningServer:
    """Another server of the cluster: the schema's database straight (not behind the proxy),
    the seed's audit key; ``settings`` added."""
    return server_factory(
        database_url=f"{PG_DSN}?search_path={schema}",
        audit_key_file=tmp_path / "seed" / "audit.key",
        **settings,
    )


@dataclasses.dataclass
class Cluster:
    """A server on a fresh schema behind the proxy (``server``), that schema's database straight
    (``db``), and the cluster's other servers (:meth:`peer`)."""

    server_factory: ServerFactory
    tmp_path: Path
    schema: str
    server: RunningServer
    db: Any
    peers: list[RunningServer] = dataclasses.field(default_factory=list)

    def peer(self, **settings: Any) -> RunningServer:
        other = cluster_peer(self.server_factory, self.tmp_path, self.schema, **settings)
        self.peers.append(other)
        return other


@contextlib.asynccontextmanager
async def proxied(
    server_factory: ServerFactory,
    pg_proxy: StoppableProxy,
    tmp_path: Path,
    make: Callable[[ServerFactory, Path, str], RunningServer] = recording_server,
    *,
    accounts: tuple[str, ...] = (),
) -> AsyncIterator[Cluster]:
    """A server ``make`` makes on a fresh schema behind ``pg_proxy``, with ``accounts`` of the
    seed (``aud`` an auditor, ``ada`` an admin); its servers stopped before the schema goes."""
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        server = make(server_factory, tmp_path, url)
        if "aud" in accounts:
            add_auditor(tmp_path / "seed", url)
        if "ada" in accounts:
            add_admin(tmp_path / "seed", url)
        cluster = Cluster(server_factory, tmp_path, schema, server, await pg_connect(schema))
        try:
            yield cluster
        finally:
            await cluster.db.close()
            for other in cluster.peers:
                other.stop()
            server.stop()  # before its schema goes


@pytest.mark.parametrize("reader", ["playback", "subject_export"])
async def test_a_playback_racing_the_customers_erasure_never_names_them_after_it(
    reader: str, server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """An auditor's playback (or an admin's export of the customer, ``POST
    /api/subjects/export``) stalls as it reads the frames, and ``tandem subject erase`` erases
    the customer meanwhile: the read is either whole and recorded before the erasure, or
    nothing goes out and nothing is recorded; never a record after ``subject_erased``."""
    async with proxied(server_factory, pg_proxy, tmp_path, accounts=("aud", "ada")) as cluster:
        server, db, schema = cluster.server, cluster.db, cluster.schema
        session_id, recording_id, frames = await ended_recording(server, db, b"played")
        async with client_of(server, "aud" if reader == "playback" else "ada") as client:
            # The read stalls at the frames (the database answers no more).
            pg_proxy.freeze_on(b"recording_frames")
            try:
                if reader == "playback":
                    asked = client.get(f"/api/recordings/{recording_id}/content")
                else:
                    body = {"subject": session_id, "by": "session"}
                    asked = client.post("/api/subjects/export", json=body)
                playing = asyncio.create_task(asked)

                async def stalled() -> bool:
                    assert not playing.done(), playing.result().text
                    return pg_proxy.held > 0

                await until(stalled, "the playback never read the frames")
                environ = cli_environ(schema)
                erase = erase_command(tmp_path, session_id, "session")
                erasing = asyncio.create_task(asyncio.to_thread(run, *erase, env=environ))

                async def erased_or_waiting() -> bool:
                    # Erased, or waiting for the playback (a lock it holds): either way
                    # the erasure has gone as far as it can while the playback stalls.
                    waiting = await db.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                        "'Lock' AND datname = current_database()"
                    )
                    return erasing.done() or waiting > 0

                await until(erased_or_waiting, "the erasure neither ran nor waited")
            finally:
                pg_proxy.thaw()
            played = await playing
            erased = await erasing
        assert erased.returncode == 0, erased.stdout + erased.stderr
        assert "Erased 1 session(s) and 1 recording(s)" in erased.stdout
        erasure = await db.fetchval("SELECT seq FROM audit WHERE action = 'subject_erased'")
        later = await db.fetch(
            "SELECT action FROM audit WHERE seq > $1 AND (subject = $2 OR details LIKE $3"
            " OR details LIKE $4)",
            erasure,
            recording_id,
            f"%{recording_id}%",
            f"%{session_id}%",
        )
        assert [row["action"] for row in later] == []
        action = "recording_played" if reader == "playback" else "subject_exported"
        if played.status_code == 200:  # read whole before the erasure, and recorded so
            if reader == "playback":
                header, got = read_container(played.content)
                assert header["recording_id"] == recording_id
                assert got[: len(frames)] == frames
            before = await db.fetchval(
                "SELECT count(*) FROM audit WHERE seq < $1 AND action = $2"
                " AND (subject = $3 OR details LIKE $4)",
                erasure,
                action,
                recording_id,
                f"%{recording_id}%",
            )
            assert before == 1
        else:  # erased first: as what is not there (a recording), or asked again
            # (an export whose view changed looks the customer up again: erased by then,
            # nothing is stored of them, 404)
            expected = (404,) if reader == "playback" else (404, 409)
            assert played.status_code in expected, played.text


async def test_a_recordings_end_and_its_record_are_stored_together_never_after_its_erasure(
    server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """The customer stops a recording; the database takes its end, then stalls as the server
    writes its ``recording_stopped`` record. The end was committed alone, so the recording
    showed ended and an admin (on another server of the cluster) erased it; the record landed
    once the database answered, after ``recording_erased``, naming the erased recording and its
    session. A recording's end and its record are now one transaction: while the record waits,
    the recording is still running (its erasure refused); once both are stored it is erased,
    and nothing names it after its erasure."""
    async with proxied(server_factory, pg_proxy, tmp_path, accounts=("ada",)) as cluster:
        server, db = cluster.server, cluster.db
        other = cluster.peer()
        customer, alice, _ = await recording(server)
        recording_id = await db.fetchval("SELECT recording_id FROM recordings")
        await customer.send(b"\x01the-only-frame")
        assert await asyncio.wait_for(alice.recv(), TOLD) == b"\x01the-only-frame"

        async def erase() -> int:
            with api(other, "ada") as ada:
                answer = await asyncio.to_thread(ada.delete, f"/api/recordings/{recording_id}")
                assert answer.status_code in (204, 409), answer.text
                return answer.status_code

        with pg_proxy.frozen(on=b"recording_stopped"):
            await send(customer, type="record_stop")
            assert (await recv_json(alice))["on"] is False

            async def stalled() -> bool:
                return pg_proxy.held > 0

            await until(stalled, "the record of the recording's end was never written")
            erased = await erase() == 204
        query = "SELECT count(*) FROM audit WHERE action = 'recording_stopped'"

        async def recorded() -> bool:
            return bool(await db.fetchval(query))

        await until(recorded, "the recording's end was never recorded")
        if not erased:  # running until its end and record were stored: erasable now
            assert await erase() == 204
        erasure = await db.fetchval(
            "SELECT seq FROM audit WHERE action = 'recording_erased' AND subject = $1",
            recording_id,
        )
        later = await db.fetch(
            "SELECT action FROM audit WHERE seq > $1 AND (subject = $2 OR details LIKE $3)",
            erasure,
            recording_id,
            f"%{recording_id}%",
        )
        assert [row["action"] for row in later] == []
