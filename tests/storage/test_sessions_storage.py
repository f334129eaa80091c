"""Session records as several processes share them: which process holds a session, its state
for supervisors' lists, and which sessions are still live (both backends)."""

from __future__ import annotations

from tandem.storage.base import OrgRecord, Storage
from tests.grants import of_org


async def test_a_session_names_its_process_and_its_state_follows(storage: Storage) -> None:
    await storage.record_session_start(of_org("default"), "s1", 1.0, "demo", "node-a")
    record = await storage.get_session("s1")
    assert record is not None
    assert (record.node, record.state, record.agent) == ("node-a", "waiting", None)
    await storage.record_session_state("s1", "sharing", "Alice")
    record = await storage.get_session("s1")
    assert record is not None and (record.state, record.agent) == ("sharing", "Alice")
    await storage.record_session_end("s1", 5.0, "stopped", "alice")
    await storage.record_session_state("s1", "pending_consent", "Mallory")  # too late: ignored
    record = await storage.get_session("s1")
    assert record is not None and (record.state, record.agent) == ("sharing", "alice")


async def test_live_sessions_are_those_of_the_organisation_not_yet_ended(storage: Storage) -> None:
    await storage.add_org(OrgRecord("acme", "Acme", 0.0))
    await storage.record_session_start(of_org("default"), "b", 2.0, "demo", "n1")
    await storage.record_session_start(of_org("default"), "a", 1.0, "demo", "n2")
    await storage.record_session_start(of_org("default"), "gone", 0.5, "demo", "n1")
    await storage.record_session_start(of_org("acme"), "theirs", 1.5, "shop", "n1")
    await storage.record_session_end("gone", 3.0, "stopped", None)
    live = await storage.live_sessions(of_org("default"))
    assert [(r.session_id, r.node) for r in live] == [("a", "n2"), ("b", "n1")]
    assert [r.session_id for r in await storage.live_sessions(of_org("acme"))] == ["theirs"]
    assert await storage.live_sessions(of_org("nobody")) == []


async def test_a_single_use_mark_is_taken_once_until_it_expires(storage: Storage) -> None:
    assert await storage.use_once("d1", 100.0)
    assert not await storage.use_once("d1", 100.0)
    assert await storage.use_once("d2", 100.0)
    await storage.purge_expired(99.0)
    assert not await storage.use_once("d1", 100.0)  # not expired yet
    await storage.purge_expired(100.0)
    assert await storage.use_once("d1", 200.0)  # expired and purged: usable again


async def test_back_off_counts_are_kept_per_key_and_cleared(storage: Storage) -> None:
    assert await storage.backoff_state(["user:a"]) == {}
    assert [await storage.backoff_failed("user:a", 10.0, 60.0) for _ in range(3)] == [1, 2, 3]
    await storage.backoff_failed("ip:1", 10.0, 60.0)
    await storage.backoff_lock("user:a", 50.0)
    await storage.backoff_lock("user:a", 20.0)  # never shortens a longer wait
    assert await storage.backoff_state(["user:a", "ip:1", "user:b"]) == {
        "user:a": (3, 50.0, 10.0),
        "ip:1": (1, 0.0, 10.0),
    }
    # A count whose last failure is forget_after old starts again from one.
    assert await storage.backoff_failed("ip:1", 69.0, 60.0) == 2
    assert await storage.backoff_failed("ip:1", 129.0, 60.0) == 1
    await storage.backoff_clear("user:a")
    assert await storage.backoff_state(["user:a"]) == {}
    await storage.purge_expired(129.0 + 86400.0 + 1)  # a day after its last failure, no wait
    assert await storage.backoff_state(["ip:1"]) == {}


async def test_a_back_off_count_is_forgiven_one_at_a_time(storage: Storage) -> None:
    """An SSO start that finishes takes back its own count, and the wait once within the free
    ones; never below none (tandem.lockout.SharedBackoff.forgive)."""
    for _ in range(4):
        await storage.backoff_failed("sso-ip:1", 10.0, 60.0)
    await storage.backoff_lock("sso-ip:1", 50.0)
    await storage.backoff_forgive("sso-ip:1", 2)
    assert await storage.backoff_state(["sso-ip:1"]) == {"sso-ip:1": (3, 50.0, 10.0)}
    await storage.backoff_forgive("sso-ip:1", 2)  # within the free ones: no wait
    assert await storage.backoff_state(["sso-ip:1"]) == {"sso-ip:1": (2, 0.0, 10.0)}
    for _ in range(3):
        await storage.backoff_forgive("sso-ip:1", 2)
    assert await storage.backoff_state(["sso-ip:1"]) == {"sso-ip:1": (0, 0.0, 10.0)}
    await storage.backoff_forgive("nobody", 2)  # nothing to forgive: nothing made
    assert await storage.backoff_state(["nobody"]) == {}
