"""Sessions a stopping server hands over to the next process (issue 13: a SIGTERM restart):
stored with digests only, taken up by exactly one process within the window, spared by crash
recovery until the window passes and then ended ``server_shutdown``. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from tandem.storage.base import Storage, SuspendedSession
from tests.grants import of_org


def handed_over(
    session_id: str, suspended_at: float = 100.0, window: float = 30.0
) -> SuspendedSession:
    return SuspendedSession(
        session_id=session_id,
        org_id="default",
        site_id="demo",
        state="sharing",
        agent="Alice",
        agent_username="alice",
        agent_login="login-digest",
        resume_digest="customer-digest",
        agent_resume_digest="agent-digest",
        created_at=50.0,
        code_expires_at=350.0,
        last_activity=99.0,
        suspended_at=suspended_at,
        expires_at=suspended_at + window,
        handshakes_from_customer=2,
        handshakes_from_agent=1,
        team_policies="[]",
    )


async def live_session(storage: Storage, session_id: str, node: str) -> None:
    await storage.record_session_start(of_org("default"), session_id, 50.0, "demo", node)


async def test_a_handed_over_session_is_kept_whole_and_held_by_no_process(storage: Storage) -> None:
    await live_session(storage, "s1", "old")
    await storage.suspend_session(handed_over("s1"))
    assert await storage.get_suspended("s1") == handed_over("s1")
    record = await storage.get_session("s1")
    assert record is not None and record.node == "" and record.ended_at is None
    assert record.state == "sharing"
    # A supervisor's list (of every process, from storage) says it is restarting, not live.
    listed = await storage.live_sessions(of_org("default"))
    assert [(r.session_id, r.state) for r in listed] == [("s1", "restarting")]
    taken = await storage.take_suspended("s1", "new", 110.0)
    assert taken is not None
    listed = await storage.live_sessions(of_org("default"))
    assert [(r.session_id, r.state) for r in listed] == [("s1", "sharing")]


async def test_exactly_one_process_takes_a_handed_over_session(storage: Storage) -> None:
    await live_session(storage, "s1", "old")
    await storage.suspend_session(handed_over("s1"))
    taken = await asyncio.gather(
        storage.take_suspended("s1", "a", 110.0), storage.take_suspended("s1", "b", 110.0)
    )
    winners = [row for row in taken if row is not None]
    assert winners == [handed_over("s1")]
    record = await storage.get_session("s1")
    assert record is not None and record.node in ("a", "b")
    assert await storage.get_suspended("s1") is None


async def test_a_handed_over_session_past_its_window_cannot_be_taken(storage: Storage) -> None:
    await live_session(storage, "s1", "old")
    await storage.suspend_session(handed_over("s1", suspended_at=100.0, window=30.0))
    assert await storage.take_suspended("s1", "a", 130.0) is None
    assert await storage.get_suspended("s1") is not None  # crash recovery ends it


async def test_crash_recovery_spares_a_handed_over_session_until_its_window_passes(
    storage: Storage,
) -> None:
    await live_session(storage, "handed", "old")
    await live_session(storage, "crashed", "old")
    await storage.suspend_session(handed_over("handed", suspended_at=100.0, window=30.0))
    await storage.register_process("new", "host:1", 110.0)

    closed, _ = await storage.close_lost_processes("new", "host:1", 80.0, 110.0)
    assert [(s.session_id, s.end_reason) for s in closed] == [("crashed", "server_lost")]
    assert await storage.get_suspended("handed") is not None

    closed, _ = await storage.close_lost_processes("new", "host:1", 100.0, 130.0)
    assert [(s.session_id, s.end_reason) for s in closed] == [("handed", "server_shutdown")]
    record = await storage.get_session("handed")
    assert (
        record is not None and record.end_reason == "server_shutdown" and record.ended_at == 130.0
    )
    assert await storage.get_suspended("handed") is None


async def test_a_hand_over_stored_after_its_stop_gave_up_is_withdrawn_once(
    storage: Storage,
) -> None:
    """:meth:`Storage.withdraw_hand_over`: the stored hand-over goes and the session ends
    ``server_shutdown``; a session with none (its hand-over never stored, or taken up since)
    is left as it is."""
    await live_session(storage, "late", "old")
    await live_session(storage, "never", "old")
    await storage.suspend_session(handed_over("late"))
    assert await storage.withdraw_hand_over("late", 120.0) is True
    assert await storage.get_suspended("late") is None
    record = await storage.get_session("late")
    assert record is not None and (record.ended_at, record.end_reason) == (120.0, "server_shutdown")
    assert await storage.withdraw_hand_over("late", 130.0) is False
    assert await storage.withdraw_hand_over("never", 130.0) is False
    record = await storage.get_session("never")
    assert record is not None and record.ended_at is None


async def test_a_withdrawal_and_another_process_taking_the_hand_over_up_one_wins(
    storage: Storage,
) -> None:
    """A stopped process's withdrawal (its next start) racing another process's take of the
    same late hand-over (a page that missed its ``ended`` resuming there): exactly one wins,
    each time. Taken up, the session is the other process's, live, never ended from under it;
    withdrawn, the take finds nothing (the page is refused)."""
    for n in range(8):
        session_id = f"raced-{n}"
        await live_session(storage, session_id, "old")
        await storage.suspend_session(handed_over(session_id))
        taking = storage.take_suspended(session_id, "other", 110.0)
        withdrawing = storage.withdraw_hand_over(session_id, 110.0)
        if n % 2:  # either one sent first
            withdrawn, taken = await asyncio.gather(withdrawing, taking)
        else:
            taken, withdrawn = await asyncio.gather(taking, withdrawing)
        assert (taken is not None) != withdrawn, (taken, withdrawn)
        record = await storage.get_session(session_id)
        assert record is not None
        if withdrawn:
            assert (record.end_reason, record.node) == ("server_shutdown", ""), record
        else:
            assert (record.ended_at, record.node) == (None, "other"), record
        assert await storage.get_suspended(session_id) is None
