"""Playbacks against the retention purge, on real servers of a cluster and PostgreSQL (one
playback's transaction held open behind tests.server.db_proxy, its read of the frames taken by
the database and its answer held; the other servers on connections of their own).

Found by the second recordings review: a playback holds its recording with a key share lock
until its record is committed, and the purge's DELETE waited for it. PostgreSQL lets a new key
share lock in ahead of a DELETE waiting for an old one, so back-to-back playbacks (an auditor's
console replaying, anyone with playback rights) kept the purge waiting until its own database
timeout failed it (503, tried again a minute later, waiting again), every expired recording of
every organisation with it; and meanwhile the recording, past its retention, was played on.

Now a recording past its retention is played no more (as if erased), so no playback takes it
after its retention ended, and the purge skips a recording a playback begun before holds
(``SKIP LOCKED``) and erases it at its next run."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tandem.config import Settings
from tandem.recordings import read_container
from tests.conftest import ServerFactory
from tests.server.db_proxy import StoppableProxy, proxied_url
from tests.server.test_organisations import api
from tests.server.test_recording_lock_races import (
    READ_FRAMES,
    WAITING_ON_A_LOCK,
    playback_held,
    recording_server,
)
from tests.server.test_recording_playback_races import (
    add_admin,
    add_auditor,
    client_of,
    cluster_peer,
    ended_recording,
    until,
)
from tests.storage.conftest import fresh_schema, pg_connect

DAY = 86400.0


async def expired_record(db: Any, recording_id: str) -> bool:
    query = "SELECT count(*) FROM audit WHERE action = 'recording_expired' AND subject = $1"
    return bool(await db.fetchval(query, recording_id))


async def test_back_to_back_playbacks_never_hold_an_expired_recording_from_its_purge(
    server_factory: ServerFactory, pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """Two recordings past their organisation's one-day retention; an auditor's playback of
    the first, begun before its retention ended, holds it (its transaction held open), and
    auditors on another server of the cluster play it back to back, their clock past the
    retention, as that server's purge runs. The purge does not wait for the playback: it
    erases the second recording at once and leaves the first to its next run; every playback
    begun after the retention ended is refused (404, as an erased recording, no record); the
    one under way gets the whole recording, recorded; the next purge erases the first, and
    nothing names it after that."""
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        server = recording_server(server_factory, tmp_path, url)
        add_auditor(tmp_path / "seed", url)
        add_admin(tmp_path / "seed", url)
        with api(server, "ada") as ada:
            assert ada.patch("/api/org", json={"retention_days": 1}).status_code == 200
        db = await pg_connect(schema)
        other = None
        try:
            _, held_id, frames = await ended_recording(server, db, b"held")
            await ended_recording(server, db, b"free")
            free_id = await db.fetchval(
                "SELECT recording_id FROM recordings WHERE recording_id <> $1", held_id
            )
            other = cluster_peer(server_factory, tmp_path, schema)
            content = f"/api/recordings/{held_id}/content"
            stop = asyncio.Event()
            after_expiry: list[int] = []
            expired = False

            async def replaying(client: Any) -> None:
                """Plays the recording again and again, as an auditor's console replaying."""
                async with client:
                    while not stop.is_set():
                        late = expired
                        answer = await client.get(content)
                        assert answer.status_code in (200, 404), answer.text
                        if late:
                            after_expiry.append(answer.status_code)

            async with client_of(server, "aud") as first:
                pg_proxy.hold_replies_after(READ_FRAMES)
                replays: list[asyncio.Task[None]] = []
                try:
                    playing = await playback_held(db, first, held_id)
                    # Past the retention on the other server: its purge runs, and its
                    # playbacks from now on are after the retention ended (by auditors signed
                    # in since: a sign-in of before has expired on that clock).
                    expired = True
                    other.clock.advance(2 * DAY)
                    replays = [
                        asyncio.create_task(replaying(client_of(other, "aud"))) for _ in range(2)
                    ]

                    async def free_purged() -> bool:
                        assert not playing.done(), playing.result().text
                        assert not await db.fetchval(WAITING_ON_A_LOCK), "the purge waits"
                        return await expired_record(db, free_id)

                    await until(free_purged, "the purge never erased the recording held by none")

                    async def replayed_after_expiry() -> bool:
                        return len(after_expiry) >= 4

                    await until(replayed_after_expiry, "no playback after the retention ended")
                    assert await db.fetchval(
                        "SELECT count(*) FROM recordings WHERE recording_id = $1", held_id
                    ), "erased under the playback"
                finally:
                    pg_proxy.thaw()
                    stop.set()
                    await asyncio.gather(*replays)
                played = await playing
            assert played.status_code == 200, played.text
            header, got = read_container(played.content)
            assert header["recording_id"] == held_id and got[: len(frames)] == frames
            assert set(after_expiry) == {404}, after_expiry
            # Its next run erases it: held by none now, and taken by no playback since.
            other.clock.advance(Settings().recording_purge_seconds)

            async def held_purged() -> bool:
                return await expired_record(db, held_id)

            await until(held_purged, "the next purge never erased the recording held before")
            expiry = await db.fetchval(
                "SELECT seq FROM audit WHERE action = 'recording_expired' AND subject = $1",
                held_id,
            )
            named = await db.fetch(
                "SELECT action, seq > $2 AS later FROM audit WHERE action <> 'recording_expired'"
                " AND (subject = $1 OR details LIKE $3)",
                held_id,
                expiry,
                f"%{held_id}%",
            )
            assert [row["action"] for row in named if row["later"]] == []
            # The one under way, recorded; those after the retention ended, refused (404).
            plays = [row["action"] for row in named if row["action"] == "recording_played"]
            assert len(plays) == 1 + after_expiry.count(200)
        finally:
            await db.close()
            if other is not None:
                other.stop()
        server.stop()  # before its schema goes
