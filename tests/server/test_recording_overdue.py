"""The compliance check's overdue recordings, end to end: real servers of a cluster on
PostgreSQL, a recording past its retention that the purge cannot take (a transaction left open
holds its row, as a stuck reader's would), the servers' clocks moved on (no waiting for time).

The retention item fails once a recording is still stored ``max_recording_overdue_seconds``
past its retention (each server by its own setting), naming it, while the list of recordings
shows it no more; once the reader lets go, the next purge erases it and the item passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tandem.config import Settings
from tests.conftest import RunningServer, ServerFactory
from tests.server.test_frozen_database import recording_server
from tests.server.test_organisations import api
from tests.server.test_recording_playback_races import (
    add_admin,
    cluster_peer,
    ended_recording,
    until,
)
from tests.storage.conftest import PG_DSN, fresh_schema, pg_connect

DAY = 86400.0


def retention_item(server: RunningServer) -> dict[str, str]:
    """The GDPR report's retention item, as ``server``'s admin API gives it now."""
    with api(server, "ada") as ada:
        [report] = ada.get("/api/compliance", params={"profile": "gdpr"}).json()
    found: dict[str, str] = next(r for r in report["results"] if r["requirement"] == "retention")
    return found


def listed(server: RunningServer) -> list[str]:
    with api(server, "ada") as ada:
        answer = ada.get("/api/recordings")
    assert answer.status_code == 200, answer.text
    return [r["recording_id"] for r in answer.json()]


async def purged_at_least(db: Any, moment: float) -> None:
    """Wait until a recordings' purge has run with a clock at ``moment`` or later."""

    async def ran() -> bool:
        noted = await db.fetchval(
            "SELECT noted_at FROM installation_notes WHERE name = 'recordings_purged_at'"
        )
        return noted is not None and noted >= moment

    await until(ran, "no recordings' purge ran with the clock moved on")


async def test_a_recording_a_reader_holds_past_its_retention_fails_the_compliance_check(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A one-day retention; a recording ended, its row held by a transaction left open. Five
    minutes past its retention the purge has run and skipped it: the report of a server with
    the default ``max_recording_overdue_seconds`` (10 minutes) passes, that of a server of the
    cluster set to 2 minutes fails, naming the recording; past 10 minutes both fail. Neither
    lists the recording meanwhile. The reader ends its transaction: the next purge erases it
    (recorded) and the item passes again."""
    async with fresh_schema() as schema:
        url = f"{PG_DSN}?search_path={schema}"
        server = recording_server(server_factory, tmp_path, url)
        add_admin(tmp_path / "seed", url)
        with api(server, "ada") as ada:
            assert ada.patch("/api/org", json={"retention_days": 1}).status_code == 200
        db = await pg_connect(schema)
        reader = await pg_connect(schema)
        try:
            _, recording_id, _ = await ended_recording(server, db, b"held")
            ended_at = await db.fetchval(
                "SELECT ended_at FROM recordings WHERE recording_id = $1", recording_id
            )
            strict = cluster_peer(
                server_factory, tmp_path, schema, max_recording_overdue_seconds=120.0
            )
            assert retention_item(server)["status"] == "pass"
            # A reader that never lets go: a transaction left open holding the row.
            left_open = reader.transaction()
            await left_open.start()
            await reader.execute(
                "SELECT 1 FROM recordings WHERE recording_id = $1 FOR KEY SHARE", recording_id
            )
            expiry = ended_at + DAY
            for each in (server, strict):
                each.clock.advance(expiry + 300 - each.clock())
            await purged_at_least(db, expiry + 300)
            assert await db.fetchval(
                "SELECT count(*) FROM recordings WHERE recording_id = $1", recording_id
            ), "the purge took a recording a reader holds"
            lenient = retention_item(server)
            assert lenient["status"] == "pass", lenient
            failing = retention_item(strict)
            assert failing["status"] == "fail", failing
            assert recording_id in failing["detail"] and "2 minutes" in failing["detail"]
            assert "idle in transaction" in failing["fix"]
            assert recording_id not in listed(server) and recording_id not in listed(strict)
            # Past the default's 10 minutes: every server's check fails, naming it.
            server.clock.advance(600)
            await purged_at_least(db, expiry + 900)
            overdue = retention_item(server)
            assert overdue["status"] == "fail" and recording_id in overdue["detail"], overdue
            assert "10 minutes" in overdue["detail"]
            # The reader lets go: the next purge erases it, and the item passes.
            await left_open.rollback()
            server.clock.advance(Settings().recording_purge_seconds)

            async def erased() -> bool:
                return not await db.fetchval(
                    "SELECT count(*) FROM recordings WHERE recording_id = $1", recording_id
                )

            await until(erased, "the purge never erased the recording once free")
            assert await db.fetchval(
                "SELECT count(*) FROM audit WHERE action = 'recording_expired' AND subject = $1",
                recording_id,
            )
            assert retention_item(server)["status"] == "pass"
        finally:
            await reader.close()
            await db.close()
