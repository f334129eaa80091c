"""A hand-over whose COMMIT reaches PostgreSQL while the stop gives up on it (the answer lost in
a partition that heals, or just late): the stop told both sides the session ended and kept
``session_not_handed_over``, yet the database took the hand-over, leaving the session
resumable. The next start reconciles: it withdraws such a hand-over (the session ends
``server_shutdown``, as its sides were told) and says so in the trail
(``session_hand_over_withdrawn``), before anyone can resume it. Real ``tandem serve``, SIGTERM,
PostgreSQL behind tests.server.db_proxy holding the COMMIT's answer."""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import free_port
from tests.server.db_proxy import StoppableProxy, proxied_url
from tests.server.helpers import (
    closed_with,
    login_cookie,
    open_agent,
    resume_on,
    send,
    sharing_session,
)
from tests.server.test_crash_recovery import ServeProcess
from tests.server.test_frozen_database import seed_people
from tests.server.test_frozen_stop import (
    ENDED,
    RECONNECT,
    audit_reaches,
    kept_records_written,
    opened,
    serving,
    stopped,
    trail_verifies,
)
from tests.server.test_stop_cut_writes import CUT
from tests.storage.conftest import fresh_schema, pg_connect


@pytest.mark.parametrize("then_frozen", [False, True], ids=["answering", "frozen"])
async def test_a_hand_over_committed_after_the_stop_gave_up_is_withdrawn(
    pg_proxy: StoppableProxy, tmp_path: Path, then_frozen: bool
) -> None:
    """``answering``: the database answers the stop's other connections, and the stopping
    process withdraws the hand-over itself; ``frozen``: nothing after the COMMIT is answered,
    and the next start withdraws it, before it serves."""
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        seed_people(tmp_path / "seed", url)
        serve = functools.partial(serving, tmp_path, url, free_port())

        server = serve()
        customer, agent, created = await opened(server, sharing_session)
        # The hand-over's transaction reaches the database whole; its COMMIT's answer does not.
        pg_proxy.hold_replies_after(
            b"INSERT INTO suspended_sessions", b"COMMIT", freeze=then_frozen
        )
        try:
            stop = await stopped(server, [customer, agent])
        finally:
            pg_proxy.thaw()
        assert stop.closed == [ENDED, ENDED], stop.closed
        assert stop.log.count(CUT) == 1, stop.log
        db = await pg_connect(schema)
        try:
            # The database took the hand-over: it was resumable, though both sides had been told
            # the session ended (the stopping process withdraws it itself if the database
            # answers it in time; else the next start does, before it serves).
            if then_frozen:
                assert await db.fetchval("SELECT count(*) FROM suspended_sessions") == 1
            again = serve()
            try:
                await kept_records_written(db, 1)
                assert await db.fetchval("SELECT count(*) FROM suspended_sessions") == 0
                ended = await db.fetchrow(
                    "SELECT end_reason FROM sessions WHERE session_id = $1", created["session_id"]
                )
                assert ended is not None and ended["end_reason"] == "server_shutdown"
                rows = await db.fetch(
                    "SELECT action, details FROM audit WHERE subject = $1 AND action IN "
                    "('session_not_handed_over', 'session_hand_over_withdrawn', "
                    "'session_suspended', 'session_restored') ORDER BY seq",
                    created["session_id"],
                )
                # The withdrawal, in its own transaction, then the record the stop kept.
                assert [row["action"] for row in rows] == [
                    "session_hand_over_withdrawn",
                    "session_not_handed_over",
                ], rows
                assert json.loads(rows[0]["details"])["ended"] == "server_shutdown"
                # The page that kept its resume token is refused, as for any cut session.
                with pytest.raises(ConnectionClosed) as refused:
                    await resume_on(again, created)
                assert refused.value.rcvd is not None
                assert refused.value.rcvd.code == 4404
            finally:
                again.stop()
        finally:
            await db.close()


async def test_a_server_stopped_committed_after_the_stop_gave_up_is_not_written_twice(
    pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """The stop's ``server_stopped`` reaches PostgreSQL, its answer does not (the database
    freezes just after): kept in the backlog, it was written a second time by the next start.
    Its line is noted with it, so the database refuses it then: on the trail once, and the
    chain verifies."""
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        seed_people(tmp_path / "seed", url)
        serve = functools.partial(serving, tmp_path, url, free_port())

        server = serve()
        pg_proxy.hold_replies_after(b"server_stopped", b"COMMIT", freeze=True)
        try:
            stop = await stopped(server, [])
        finally:
            pg_proxy.thaw()
        assert "server_stopped not written" in stop.log, stop.log
        db = await pg_connect(schema)
        query = "SELECT count(*) FROM audit WHERE action = 'server_stopped'"
        try:
            assert await db.fetchval(query) == 1  # it landed
            again = serve()
            try:
                await written_from_the_backlog(db)
                assert await db.fetchval(query) == 1
            finally:
                again.stop()
        finally:
            await db.close()
        trail_verifies(tmp_path / "data", url)


async def written_from_the_backlog(db: Any) -> None:
    """Wait until the next start took up the backlog (its ``server_started`` is written after
    what was kept)."""
    await audit_reaches(db, "server_started", 2, "the next start wrote no server_started")


async def test_a_hand_over_stored_whose_record_is_late_is_not_cut(
    pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """The hand-over is stored and both sides told to reconnect; then the database freezes
    while its ``session_suspended`` is written, past the stop's share. The session was handed
    over: it is not reported cut (no ``session_not_handed_over``, which would claim what did
    not happen and have the next start withdraw a hand-over both sides were told to resume),
    its record is kept for the next start, and it is taken up there."""
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        seed_people(tmp_path / "seed", url)
        serve = functools.partial(serving, tmp_path, url, free_port())

        server = serve()
        customer, agent, created = await opened(server, sharing_session)
        pg_proxy.freeze_on(b"session_suspended")
        try:
            stop = await stopped(server, [customer, agent])
        finally:
            # The frozen connections drop before the database sees what they held (thawed,
            # the record's write would land after all: refused when written again from the
            # backlog, test_a_record_done_committed_after_the_stop_gave_up_is_not_written_twice).
            pg_proxy.down()
            pg_proxy.thaw()
            pg_proxy.up()
        assert stop.closed == [RECONNECT, RECONNECT], stop.closed
        assert CUT not in stop.log, stop.log
        db = await pg_connect(schema)
        try:
            again = serve()
            try:
                await written_from_the_backlog(db)
                _page, answer = await resume_on(again, created)
                assert answer["type"] == "resumed", answer
                rows = await db.fetch(
                    "SELECT action FROM audit WHERE subject = $1 AND action IN "
                    "('session_not_handed_over', 'session_hand_over_withdrawn', "
                    "'session_suspended') ORDER BY seq",
                    created["session_id"],
                )
                assert [row["action"] for row in rows] == ["session_suspended"], rows
            finally:
                again.stop()
        finally:
            await db.close()


@pytest.mark.parametrize(
    "held_after",
    [(b"session_suspended",), (b"session_suspended", b"COMMIT")],
    ids=["statement", "commit"],
)
async def test_a_record_done_committed_after_the_stop_gave_up_is_not_written_twice(
    pg_proxy: StoppableProxy, tmp_path: Path, held_after: tuple[bytes, ...]
) -> None:
    """A hand-over stored, both sides told to reconnect; its ``session_suspended`` (written with
    record_done) reaches PostgreSQL, its answer does not (frozen until the next start). Kept in
    the backlog, it was written a second time by the next start (two hand-overs counted for
    one). A stop's record_done is kept first and written with its backlog line noted: the
    database refuses the second write, the trail holds it once and verifies. ``statement``: the
    answer held once the record's statement has gone (before, alone, it committed itself);
    ``commit``: once its transaction's COMMIT has gone (it is noted with its line now)."""
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        seed_people(tmp_path / "seed", url)
        serve = functools.partial(serving, tmp_path, url, free_port())

        server = serve()
        customer, agent, created = await opened(server, sharing_session)
        pg_proxy.hold_replies_after(*held_after, freeze=True)
        try:
            stop = await stopped(server, [customer, agent])
        finally:
            pg_proxy.thaw()
        assert stop.closed == [RECONNECT, RECONNECT], stop.closed
        db = await pg_connect(schema)
        query = "SELECT count(*) FROM audit WHERE action = 'session_suspended' AND subject = $1"
        try:
            landed = await db.fetchval(query, created["session_id"])
            assert landed == (1 if held_after[-1] == b"COMMIT" else landed), landed
            again = serve()
            try:
                await written_from_the_backlog(db)
                assert await db.fetchval(query, created["session_id"]) == 1
                _page, answer = await resume_on(again, created)
                assert answer["type"] == "resumed", answer
            finally:
                again.stop()
        finally:
            await db.close()
        trail_verifies(tmp_path / "data", url)


async def test_a_late_hand_over_taken_up_elsewhere_first_is_left_there_and_said(
    pg_proxy: StoppableProxy, tmp_path: Path
) -> None:
    """A cluster: the hand-over's COMMIT lands after the stop gave up on it (both sides told
    the session ended), and before the stopped process starts again a page that missed its
    ``ended`` resumes on another process (B, same database and keys). The stopped process's
    next start does not withdraw it from under B (the stored row is gone: exactly one of the
    take and the withdrawal wins), and its ``session_not_handed_over`` no longer claims alone
    what did not happen: it names the process that took the session up."""
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        seed_people(tmp_path / "seed", url)

        def serve(data: str) -> ServeProcess:
            return serving(tmp_path, url, free_port(), data=data)

        server = serve("data")
        customer, agent, created = await opened(server, sharing_session)
        pg_proxy.hold_replies_after(b"INSERT INTO suspended_sessions", b"COMMIT", freeze=True)
        try:
            stop = await stopped(server, [customer, agent])
        finally:
            pg_proxy.thaw()
        assert stop.closed == [ENDED, ENDED], stop.closed
        # Process B: the same keys, its own data directory (not the stopped one's backlog).
        shutil.copytree(
            tmp_path / "data", tmp_path / "other", ignore=shutil.ignore_patterns("audit-backlog*")
        )
        db = await pg_connect(schema)
        try:
            assert await db.fetchval("SELECT count(*) FROM suspended_sessions") == 1
            other = serve("other")
            try:
                page, answer = await resume_on(other, created)
                assert answer["type"] == "resumed", answer
                again = serve("data")
                try:
                    await kept_records_written(db, 1)
                    ended = await db.fetchrow(
                        "SELECT ended_at, node FROM sessions WHERE session_id = $1",
                        created["session_id"],
                    )
                    assert ended is not None and ended["ended_at"] is None, ended  # left to B
                    rows = await db.fetch(
                        "SELECT action, details FROM audit WHERE subject = $1 AND action IN "
                        "('session_not_handed_over', 'session_hand_over_withdrawn', "
                        "'session_restored') ORDER BY seq",
                        created["session_id"],
                    )
                    actions = [row["action"] for row in rows]
                    assert actions == ["session_restored", "session_not_handed_over"], rows
                    details = json.loads(rows[1]["details"])
                    assert details.get("taken_up_by") == ended["node"], details
                finally:
                    again.stop()
                await page.close()
            finally:
                other.stop()
        finally:
            await db.close()


@pytest.mark.parametrize(
    "held_after",
    [(b"message_refused",), (b"message_refused", b"COMMIT")],
    ids=["statement", "commit"],
)
async def test_a_record_done_whose_answer_came_too_late_is_written_once(
    pg_proxy: StoppableProxy, tmp_path: Path, held_after: tuple[bytes, ...]
) -> None:
    """No stop: an agent's message refused (``message_refused``, written by record_done), the
    database's answer held past ``database_timeout_seconds``. Told the write failed, the server
    keeps the record and its timer writes it once the database answers; the record had landed
    (before, a lone INSERT committed itself, its answer held: ``statement``; now its COMMIT's:
    ``commit``), and was on the trail twice. The identity the record was given before its first
    try, noted with it, makes that second write a refusal (said in ``audit_backlog_replayed``)."""
    async with fresh_schema() as schema:
        url = proxied_url(pg_proxy, schema)
        seed_people(tmp_path / "seed", url)
        env = {"TANDEM_DATABASE_TIMEOUT_SECONDS": "2"}
        server = serving(tmp_path, url, free_port(), env=env)
        db = await pg_connect(schema)
        refused = "SELECT count(*) FROM audit WHERE action = 'message_refused'"
        replayed = "SELECT count(*) FROM audit WHERE action = 'audit_backlog_replayed'"
        try:
            agent = await opened(server, lambda s: open_agent(s, login_cookie(s)))
            pg_proxy.hold_replies_after(*held_after)
            try:
                await send(agent, type="watch", session_id="nobody")
                # The socket closes once the record's write gave up (and kept it).
                code, _reason = await closed_with(agent, timeout=30)
                assert code == 4403, code
            finally:
                pg_proxy.thaw()
            landed = await db.fetchval(refused)
            assert landed == (1 if held_after[-1] == b"COMMIT" else landed), landed
            deadline = time.monotonic() + 60
            # Written from the backlog: refused as on the trail (said), or once if it had not
            # landed; or, as before, a second time.
            while not (
                await db.fetchval(replayed)
                or await db.fetchval(refused) > 1
                or (not landed and await db.fetchval(refused))
            ):
                assert time.monotonic() < deadline, "the kept record was never written"
                await asyncio.sleep(0.1)
            assert await db.fetchval(refused) == 1
        finally:
            server.stop()
            await db.close()
        trail_verifies(tmp_path / "data", url)
