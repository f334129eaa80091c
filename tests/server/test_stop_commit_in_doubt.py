"""A hand-over whose COMMIT reaches PostgreSQL while the stop gives up on it (the answer lost in
a partition that heals, or just late): the stop told both sides the session ended and kept
``session_not_handed_over``, yet the database took the hand-over, leaving the session
resumable. The next start reconciles: it withdraws such a hand-over (the session ends
``server_shutdown``, as its sides were told) and says so in the trail
(``session_hand_over_withdrawn``), before anyone can resume it. Real ``tandem serve``, SIGTERM,
PostgreSQL behind tests.server.db_proxy holding the COMMIT's answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import free_port
from tests.server.db_proxy import StoppableProxy, proxied_url
from tests.server.helpers import resume_on, sharing_session
from tests.server.test_crash_recovery import ServeProcess
from tests.server.test_frozen_database import seed_people
from tests.server.test_frozen_stop import ENDED, STOP_TIMEOUT, kept_records_written, stopped
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
        port = free_port()

        def serve() -> ServeProcess:
            return ServeProcess(
                tmp_path / "data",
                port,
                "--database-url",
                url,
                "--shutdown-timeout",
                str(STOP_TIMEOUT),
                env={"TANDEM_AUDIT_KEY": str(tmp_path / "seed" / "audit.key")},
            )

        server = serve()
        try:
            customer, agent, created = await sharing_session(server)
        except BaseException:
            server.stop()
            raise
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
