"""The hub's event entry points, without sockets: the event tables, the action each agent message
needs (refused and audited without it), and audit records made from the state machine's effects
landing in the session's organisation."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, get_args

import pytest

from tandem import auth, crypto
from tandem.access import ACTIONS, Principal, allowed
from tandem.audit import AuditLog, load_or_create_key
from tandem.config import Settings
from tandem.directory import Directory, operator
from tandem.exceptions import ForbiddenError, ProtocolError, StorageError
from tandem.fanout.base import Subscription
from tandem.fanout.memory import MemoryFanout, MemorySubscription
from tandem.hub import (
    AGENT_EVENTS,
    CUSTOMER_EVENTS,
    WATCHER_EVENTS,
    CustomerSeat,
    Joined,
    Refused,
    SessionHub,
    Watching,
    agents_topic,
)
from tandem.lockout import SharedBackoff
from tandem.protocol.codec import CLOSE_FORBIDDEN, CLOSE_NOT_FOUND
from tandem.protocol.messages import (
    AgentMessage,
    Consent,
    Create,
    CustomerMessage,
    Handshake,
    Join,
    Record,
    Rejoin,
    Resume,
    Watch,
    WatchConsent,
)
from tandem.refusals import RefusalBudget
from tandem.storage.base import AuditRecord, LoginRecord, OrgRecord, SiteRecord, UserRecord
from tandem.storage.sql import SQLStorage
from tests.conftest import mark_trained, migrated_sqlite
from tests.grants import of_org, owned

ORG = "acme"


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[SessionHub]:
    settings = Settings.load(environ={}, data_dir=tmp_path)
    storage = await SQLStorage.open_sqlite(migrated_sqlite(tmp_path / "db.sqlite3"))
    box = crypto.SecretBox(settings.secrets_key_path)
    hub = SessionHub(
        settings=settings,
        storage=storage,
        fanout=MemoryFanout(),
        audit=AuditLog(storage, load_or_create_key(settings.audit_key_path)),
        box=box,
        join_backoff=SharedBackoff(
            storage,
            settings.join_free_failures,
            settings.throttle_backoff_seconds,
            settings.throttle_backoff_max_seconds,
            settings.backoff_forget_seconds,
        ),
        join_org_backoff=SharedBackoff(
            storage,
            settings.join_org_free_failures,
            settings.throttle_backoff_seconds,
            settings.throttle_backoff_max_seconds,
            settings.backoff_forget_seconds,
        ),
        clock=lambda: 1000.0,
        entropy=crypto.system_entropy,
    )
    directory = Directory(storage, hub.record, hub.clock, box)
    await directory.add_org(ORG, "Acme")
    await directory.add_team(operator(ORG), "support")
    await directory.add_site(operator(ORG), "shop", "https://shop.example", "Shop", ("support",))
    try:
        yield hub
    finally:
        await storage.close()


def principal(role: str, *, username: str = "ann") -> Principal:
    return Principal(username, username.title(), role, ORG, frozenset({"support"}))  # type: ignore[arg-type]


async def signed_in(hub: SessionHub, who: Principal) -> str:
    """Store ``who`` as an account with a sign-in (the hub re-checks both); its token digest."""
    await hub.storage.add_user(
        *owned(
            UserRecord(
                who.username, who.display_name, who.role, "", 0.0, org_id=ORG, mfa_exempt=True
            )
        )
    )
    await hub.storage.set_user_teams(of_org(ORG), who.username, tuple(who.teams))
    await mark_trained(hub.storage, who.username, ORG)
    digest = auth.login_digest(who.username)
    await hub.storage.add_login(LoginRecord(digest, who.username, 1e9, 1000.0))
    return digest


async def audit_of(hub: SessionHub, action: str) -> list[AuditRecord]:
    return [r for r in await hub.storage.audit_page(of_org(ORG), 0, 1000) if r.action == action]


async def open_session(hub: SessionHub) -> tuple[CustomerSeat, str]:
    """A customer's page on the shop starts a session: its seat and the code it shows."""
    site = await hub.storage.get_site("shop")
    assert site is not None
    seat = await hub.open_customer(site, Create(v=1))
    assert isinstance(seat, CustomerSeat) and seat.subscription is not None
    created = json.loads((await seat.subscription.get()).data)
    assert created["type"] == "created"
    return seat, created["code"]


@contextlib.asynccontextmanager
async def console_away(
    hub: SessionHub,
) -> AsyncIterator[tuple[CustomerSeat, Principal, str, dict[str, Any]]]:
    """A customer sharing with ann's console, which then reloaded: the session waits for it.
    The customer's seat, ann, her sign-in and the console's ``joined`` (its resume token)."""
    customer, code = await open_session(hub)
    ann = principal("agent")
    login = await signed_in(hub, ann)
    async with customer:
        async with hub.agent_seat(ann, "192.0.2.1", login) as first:
            assert isinstance(await first.text(Join(v=1, code=code)), Joined)
            answer = json.loads((await first.subscription.get()).data)  # type: ignore[union-attr]
            assert answer["type"] == "joined" and answer["resume_token"]
            await customer.text(Consent(v=1, granted=True))
            first.peer_close_code = 1001  # the console reloads: the session waits for it
        yield customer, ann, login, answer


async def next_type(subscription: Subscription | None) -> str:
    assert subscription is not None
    frame = await subscription.get()
    return str(json.loads(frame.data)["type"])


def test_every_message_has_exactly_one_row() -> None:
    assert set(AGENT_EVENTS) == set(get_args(AgentMessage))
    assert set(CUSTOMER_EVENTS) == set(get_args(CustomerMessage))
    assert set(WATCHER_EVENTS) <= set(get_args(AgentMessage))
    assert {action for action, _ in AGENT_EVENTS.values()} <= set(ACTIONS)


async def test_a_role_without_the_socket_action_gets_no_seat(hub: SessionHub) -> None:
    with pytest.raises(ForbiddenError, match="auditor"):
        hub.agent_seat(principal("auditor"), "192.0.2.1", "")


async def test_a_message_needing_an_action_the_role_lacks_is_refused_and_audited(
    hub: SessionHub,
) -> None:
    agent = principal("agent")
    assert not allowed("agent", AGENT_EVENTS[Watch][0])
    async with hub.agent_seat(agent, "192.0.2.1", await signed_in(hub, agent)) as seat:
        with pytest.raises(ProtocolError) as refused:
            await seat.text(Watch(v=1, session_id="anything"))
    assert refused.value.close_code == CLOSE_FORBIDDEN and "agent" in str(refused.value)
    [record] = await audit_of(hub, "message_refused")
    assert record.actor == "ann"
    assert record.details == {
        "message": "watch",
        "needs": "session.watch",
        "reason": "the agent role does not allow session.watch",
    }


async def test_a_second_factor_still_missing_refuses_every_message(hub: SessionHub) -> None:
    supervisor = Principal("sue", "Sue", "supervisor", ORG, frozenset({"support"}), True)
    with pytest.raises(ForbiddenError, match="two-step"):
        hub.agent_seat(supervisor, "192.0.2.1", "")


async def test_a_message_the_role_allows_goes_through_the_table(hub: SessionHub) -> None:
    sue = principal("supervisor", username="sue")
    async with hub.agent_seat(sue, "192.0.2.1", await signed_in(hub, sue)) as seat:
        with pytest.raises(ProtocolError) as missing:  # allowed: only the session is not there
            await seat.text(Watch(v=1, session_id="nobody"))
    assert missing.value.close_code == CLOSE_NOT_FOUND
    # Asking for a session that is not there is on record (another organisation's reads the
    # same: tests/server/test_org_isolation.py), but not as the role's refusal.
    [record] = await audit_of(hub, "message_refused")
    assert record.details == {
        "message": "watch",
        "needs": "session.watch",
        "reason": "session not found",
    }


async def move_shop_to_sales(hub: SessionHub) -> None:
    """The shop is now served by team sales only, changed in storage (no announcement)."""
    site = await hub.storage.get_site("shop")
    assert site is not None
    await hub.storage.add_team(of_org(ORG), "sales")
    await hub.storage.update_site(*owned(dataclasses.replace(site, teams=("sales",))))


async def test_a_record_on_a_site_the_agents_teams_no_longer_serve_closes_the_socket(
    hub: SessionHub,
) -> None:
    customer, code = await open_session(hub)
    ann = principal("agent")
    async with customer, hub.agent_seat(ann, "192.0.2.1", await signed_in(hub, ann)) as seat:
        joined = await seat.text(Join(v=1, code=code))
        assert isinstance(joined, Joined)
        assert await next_type(seat.subscription) == "joined"
        await move_shop_to_sales(hub)
        await customer.text(Consent(v=1, granted=True))
        assert await next_type(seat.subscription) == "consent"
        # The record's re-check finds the site served by another team: the socket closes (its
        # agent must no longer see the page), as the periodic re-check would close it.
        with pytest.raises(ProtocolError) as refused:
            await seat.text(Record(v=1))
        assert refused.value.close_code == CLOSE_FORBIDDEN
        assert str(refused.value) == "your teams no longer serve this site"
    [record] = await audit_of(hub, "socket_closed")
    assert record.details == {
        "session": customer.live.machine.session_id,
        "code": CLOSE_FORBIDDEN,
        "reason": "your teams no longer serve this site",
    }
    [ended] = await audit_of(hub, "session_ended")
    assert ended.details == {"reason": "agent_lost"}


async def test_a_watchers_key_exchange_on_a_site_its_teams_no_longer_serve_is_refused(
    hub: SessionHub,
) -> None:
    """No announcement and no re-check yet: the supervisor's handshake, which would let page
    content reach it, is checked against the site as it is now."""
    customer, code = await open_session(hub)
    ann, sue = principal("agent"), principal("supervisor", username="sue")
    async with (
        customer,
        hub.agent_seat(ann, "192.0.2.1", await signed_in(hub, ann)) as agent,
        hub.agent_seat(sue, "192.0.2.2", await signed_in(hub, sue)) as supervisor,
    ):
        assert isinstance(await agent.text(Join(v=1, code=code)), Joined)
        await customer.text(Consent(v=1, granted=True))
        watching = await supervisor.text(Watch(v=1, session_id=customer.live.machine.session_id))
        assert isinstance(watching, Watching)
        async with watching.seat as watch:
            await customer.text(WatchConsent(v=1, granted=True))
            await move_shop_to_sales(hub)
            with pytest.raises(ProtocolError) as refused:
                await watch.text(Handshake(v=1, data="BBBB"))
            assert refused.value.close_code == CLOSE_FORBIDDEN
            assert customer.live.machine.watch_handshakes_from_watcher == 0
    [record] = await audit_of(hub, "message_refused")
    assert (record.actor, record.details["needs"]) == ("sue", "session.watch")
    assert record.details["reason"] == "this site is served by another team"


async def test_a_join_through_the_hub_audits_in_the_sessions_organisation(
    hub: SessionHub,
) -> None:
    customer, code = await open_session(hub)
    ann = principal("agent")
    async with customer, hub.agent_seat(ann, "192.0.2.1", await signed_in(hub, ann)) as seat:
        wrong = await seat.text(Join(v=1, code="000-00"))
        assert isinstance(wrong, Refused) and wrong.notice.code == "invalid_code"
        joined = await seat.text(Join(v=1, code=code))
        assert isinstance(joined, Joined) and seat.live is customer.live
        assert await next_type(customer.subscription) == "agent_joined"
        await customer.text(Consent(v=1, granted=True))
        assert await next_type(seat.subscription) == "joined"
        assert await next_type(seat.subscription) == "consent"
    # The state machine's audit effects, named and filed under the session's organisation.
    session = customer.live.machine.session_id
    [joined_record] = await audit_of(hub, "agent_joined")
    assert (joined_record.actor, joined_record.subject) == ("ann", session)
    [consent] = await audit_of(hub, "consent_given")
    assert (consent.actor, consent.subject) == ("customer", session)
    [rejected] = await audit_of(hub, "join_code_rejected")
    assert rejected.details == {"attempts": 1, "reason": "invalid_code"}
    # The agent's socket went without leaving: the session ended as lost, audited once.
    [ended] = await audit_of(hub, "session_ended")
    assert ended.details == {"reason": "agent_lost"} and ended.actor == "ann"
    assert hub.get(session) is None
    assert hub.fanout.subscriber_count(agents_topic(session)) == 0  # type: ignore[attr-defined]


async def test_concurrent_checks_of_a_revoked_sign_in_close_and_audit_once(
    hub: SessionHub,
) -> None:
    """The timer, an announcement and a message may check one socket at the same moment."""
    ann = principal("agent")
    async with hub.agent_seat(ann, "192.0.2.1", await signed_in(hub, ann)) as seat:
        await hub.storage.delete_logins_of(of_org(ORG), "ann")
        await asyncio.gather(hub.recheck(seat), hub.recheck(seat), hub.recheck(seat))
        assert seat.kicked.is_set() and seat.kick_reason == (4401, "signed out: sign in again")
        with pytest.raises(ProtocolError) as refused:
            await seat.text(Join(v=1, code="12345"))
        assert refused.value.close_code == 4401
    [record] = await audit_of(hub, "socket_closed")
    assert (record.actor, record.subject) == ("server", "ann")


async def test_a_join_code_that_collides_with_a_live_one_is_drawn_again(hub: SessionHub) -> None:
    """Two live sessions drawing the same code (1 in 100,000 per pair with 5 digits: thousands
    of live sessions meet it, as `make bench` did): the second draws again, its customer never
    sees an error."""
    bound = 10**hub.settings.code_digits
    code_bytes = (bound.bit_length() + 7) // 8 + 1  # what crypto.new_join_code draws
    same = [b"\x00" * (code_bytes - 1) + b"\x07"] * 2  # the first draw of each of two sessions

    def scripted(n: int) -> bytes:
        return same.pop() if n == code_bytes and same else secrets.token_bytes(n)

    hub.entropy = scripted
    _, first = await open_session(hub)
    _, second = await open_session(hub)
    assert first == f"{7 % bound:0{hub.settings.code_digits}d}" and not same
    assert second != first


async def test_a_hand_over_the_storage_refuses_ends_the_session_and_tells_the_customer(
    hub: SessionHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM with the database failing as the session is stored for the next process: nobody
    is left reconnecting to a session no process can take up. It ends ``server_shutdown``
    (audited, the customer told ``ended``), and no ``session_suspended`` is claimed."""
    seat, _ = await open_session(hub)

    async def refused(*_: object) -> None:
        raise StorageError("database is locked")

    monkeypatch.setattr(hub.storage, "suspend_session", refused)
    hub.settings = dataclasses.replace(hub.settings, close_timeout_seconds=0.1)
    await hub.shutdown()
    assert seat.subscription is not None
    frames = await asyncio.wait_for(seat.subscription.take(), 5)
    told = [json.loads(frame.data) for frame in frames if frame.data]
    assert [m["type"] for m in told][-2:] == ["restarting", "ended"]
    assert told[-1]["reason"] == "server_shutdown"
    assert not hub._live
    ended = await audit_of(hub, "session_ended")
    assert [r.details.get("reason") for r in ended] == ["server_shutdown"]
    assert await audit_of(hub, "session_suspended") == []
    assert await hub.storage.get_suspended(seat.live.machine.session_id) is None


async def test_the_periodic_recheck_spreads_sockets_opened_in_a_burst_over_its_interval(
    hub: SessionHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thousands of agents' sockets opened at once (a restart's hand-over, a shift starting)
    must not be re-checked against storage in one burst every ``agent_reauth_seconds``: at
    3,000 sessions that burst held frames up for 100-250 ms. Each socket is first re-checked
    within the interval, at points spread evenly over it, then once per interval."""
    interval = hub.settings.agent_reauth_seconds
    seats = [  # many agents, each with its socket (one account may hold max_agent_sockets)
        hub.agent_seat(principal("agent", username=f"agent-{n}"), "192.0.2.1", "")
        for n in range(300)
    ]
    dues = [seat.reauth_due for seat in seats]
    assert all(1000.0 <= due < 1000.0 + interval for due in dues)
    tenths = [sum(1 for d in dues if k <= (d - 1000.0) / interval * 10 < k + 1) for k in range(10)]
    assert all(25 <= n <= 35 for n in tenths), tenths  # 30 each if perfectly even

    checked: list[object] = []

    async def recheck(seat: object) -> None:
        checked.append(seat)

    monkeypatch.setattr(hub, "recheck", recheck)
    monkeypatch.setattr(hub, "signed_in_seats", lambda: seats)
    now = [1000.0]
    monkeypatch.setattr(hub, "clock", lambda: now[0])
    per_tick = []
    for _ in range(int(2 * interval)):  # two intervals of one-second ticks
        now[0] += 1.0
        before = len(checked)
        await hub.tick()
        per_tick.append(len(checked) - before)
    assert max(per_tick) <= 2 * 300 / interval, per_tick  # no burst: about 300/interval a tick
    assert all(checked.count(seat) == 2 for seat in seats)  # every socket, once an interval


async def test_a_rejoining_console_hears_joined_before_any_content_relayed_meanwhile(
    hub: SessionHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the rejoin's audit record is being written (a slow database), the customer's page
    goes on sharing its epoch: none of that may reach the console ahead of its `joined`, which
    tells it to drop that epoch's content (it lost some of it while away: read first, the gap
    looks like tampering and the console ends the session)."""
    async with console_away(hub) as (customer, ann, login, answer):
        session = customer.live.machine.session_id
        assert hub.get(session) is customer.live and customer.live.machine.state == "sharing"

        writing, written = asyncio.Event(), asyncio.Event()
        record = hub.record

        async def slow_record(action: str, **fields: object) -> None:
            if action == "agent_rejoined":
                writing.set()
                await written.wait()
            await record(action, **fields)

        monkeypatch.setattr(hub, "record", slow_record)
        async with hub.agent_seat(ann, "192.0.2.1", login) as second:
            rejoin = Rejoin(v=1, session_id=session, resume_token=answer["resume_token"])
            rejoining = asyncio.ensure_future(second.text(rejoin))
            await asyncio.wait_for(writing.wait(), 10)
            relayed = customer.payload(b"\x03" + bytes(40))  # content of the epoch it had
            assert relayed is None  # nothing records
            written.set()
            assert isinstance(await asyncio.wait_for(rejoining, 10), Joined)
            customer.payload(b"\x03" + bytes(41))
            frames = [await second.subscription.get() for _ in range(2)]  # type: ignore[union-attr]
            ahead = b"\x03" + bytes(40)
            assert frames[0].data != ahead, "content reached the console ahead of its joined"
            assert json.loads(frames[0].data)["type"] == "joined"
            assert frames[1].data == b"\x03" + bytes(41)  # content sent after the answer follows it
        [rejoined] = await audit_of(hub, "agent_rejoined")
        assert rejoined.subject == session


async def test_a_rejoin_whose_audit_record_cannot_be_written_leaves_the_session_waiting(
    hub: SessionHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database fails while the rejoin's audit record is written: the console is refused
    with the storage error and hears nothing of the session, the customer is told nothing, and
    the session still waits for the same console, which takes it up once the database is back
    (one audit record, for the rejoin that happened)."""
    async with console_away(hub) as (customer, ann, login, answer):
        live = customer.live
        session = live.machine.session_id
        assert live.machine.agent_away_since is not None
        told = customer.subscription
        assert isinstance(told, MemorySubscription)
        if told.queued_bytes:  # what the customer heard up to now
            await told.take()

        record = hub.record

        async def failing_record(action: str, **fields: object) -> None:
            if action == "agent_rejoined":
                raise StorageError("the database is not available")
            await record(action, **fields)

        monkeypatch.setattr(hub, "record", failing_record)
        rejoin = Rejoin(v=1, session_id=session, resume_token=answer["resume_token"])
        async with hub.agent_seat(ann, "192.0.2.1", login) as second:
            with pytest.raises(StorageError):
                await second.text(rejoin)
            assert second.subscription is None  # it hears nothing of the session
            # the socket layer closes it (no close code of the console's)
        assert not live.machine.ended, "a failed audit write ended the customer's session"
        assert live.agent_seat is None and live.machine.agent_away_since is not None
        assert told.queued_bytes == 0, "the customer was told of a rejoin that did not happen"
        assert await audit_of(hub, "agent_rejoined") == []

        monkeypatch.setattr(hub, "record", record)  # the database is back
        async with hub.agent_seat(ann, "192.0.2.1", login) as third:
            assert isinstance(await third.text(rejoin), Joined)
            answer = json.loads((await third.subscription.get()).data)  # type: ignore[union-attr]
            assert answer["type"] == "joined" and answer["resumed"]
            assert live.agent_seat is third and live.machine.agent_away_since is None
            third.peer_close_code = 1001
        [rejoined] = await audit_of(hub, "agent_rejoined")
        assert rejoined.subject == session


def failing_on(hub: SessionHub, failing_action: str) -> Any:
    """``hub.record`` as it is while the database refuses ``failing_action``'s record."""
    record = hub.record

    async def failing_record(action: str, **fields: object) -> None:
        if action == failing_action:
            raise StorageError("the database is not available")
        await record(action, **fields)

    return failing_record


async def test_a_join_whose_audit_record_cannot_be_written_leaves_the_session_waiting(
    hub: SessionHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database fails while the first join's audit record is written: the console is
    refused with the storage error and hears nothing of the session, the customer is told
    nothing, and the session still waits with the same code, which the agent enters again once
    the database is back (one audit record, for the join that happened)."""
    customer, code = await open_session(hub)
    live = customer.live
    ann = principal("agent")
    login = await signed_in(hub, ann)
    told = customer.subscription
    assert isinstance(told, MemorySubscription) and told.queued_bytes == 0
    record = hub.record
    async with customer:
        monkeypatch.setattr(hub, "record", failing_on(hub, "agent_joined"))
        async with hub.agent_seat(ann, "192.0.2.1", login) as first:
            with pytest.raises(StorageError):
                await first.text(Join(v=1, code=code))
            assert first.subscription is None and first.live is None  # it heard nothing
        assert not live.machine.ended, "a failed audit write ended the customer's session"
        assert live.machine.state == "waiting" and live.agent_seat is None
        assert live.machine.agent is None and not live.agent_resume_digest
        assert told.queued_bytes == 0, "the customer was told of a join that did not happen"
        assert await audit_of(hub, "agent_joined") == []

        monkeypatch.setattr(hub, "record", record)  # the database is back: the same code works
        async with hub.agent_seat(ann, "192.0.2.1", login) as second:
            assert isinstance(await second.text(Join(v=1, code=code)), Joined)
            assert await next_type(second.subscription) == "joined"
            assert await next_type(told) == "agent_joined"
            assert live.agent_seat is second and live.machine.state == "pending_consent"
            second.peer_close_code = 1001
    [joined] = await audit_of(hub, "agent_joined")
    assert joined.subject == live.machine.session_id and joined.actor == "ann"


async def test_a_join_that_fails_with_its_code_not_put_back_ends_the_session_for_the_customer(
    hub: SessionHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refuses both the join's audit record and putting the code back: rather than
    wait for a code that no longer works, the session ends as lost and the customer is told;
    the code opens nothing afterwards."""
    customer, code = await open_session(hub)
    live = customer.live
    ann = principal("agent")
    login = await signed_in(hub, ann)
    told = customer.subscription
    assert told is not None
    record, put_join_code = hub.record, hub.storage.put_join_code

    async def refused(*args: object, **kwargs: object) -> None:
        raise StorageError("the database is not available")

    async with customer:
        monkeypatch.setattr(hub, "record", failing_on(hub, "agent_joined"))
        monkeypatch.setattr(hub.storage, "put_join_code", refused)
        async with hub.agent_seat(ann, "192.0.2.1", login) as first:
            with pytest.raises(StorageError):
                await first.text(Join(v=1, code=code))
            assert first.subscription is None
        assert live.machine.ended and live.machine.end_reason == "agent_lost"
        ended = json.loads((await told.get()).data)
        assert (ended["type"], ended["reason"]) == ("ended", "agent_lost")
    monkeypatch.setattr(hub, "record", record)
    monkeypatch.setattr(hub.storage, "put_join_code", put_join_code)
    async with hub.agent_seat(ann, "192.0.2.1", login) as again:
        assert isinstance(await again.text(Join(v=1, code=code)), Refused)
    assert await audit_of(hub, "agent_joined") == []


async def test_both_sides_coming_back_together_after_a_restart_are_both_taken_back(
    hub: SessionHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a hand-over, the customer's page and the console reconnect to the next process at
    the same moment. The console's rejoin asks for the stored session just after the customer's
    resume took it up (seen in CI under load: the stored row was gone and the session not yet
    live, so the console was told 4404 and the session later ended ``agent_lost``). Both are
    taken back into the one session."""
    site = await hub.storage.get_site("shop")
    assert site is not None
    customer = await hub.open_customer(site, Create(v=1))
    assert isinstance(customer, CustomerSeat) and customer.subscription is not None
    created = json.loads((await customer.subscription.get()).data)
    code, session_id = created["code"], created["session_id"]
    ann = principal("agent")
    login = await signed_in(hub, ann)
    hub.settings = dataclasses.replace(hub.settings, close_timeout_seconds=0.1)
    async with customer, hub.agent_seat(ann, "192.0.2.1", login) as first:
        assert isinstance(await first.text(Join(v=1, code=code)), Joined)
        joined = json.loads((await first.subscription.get()).data)  # type: ignore[union-attr]
        await customer.text(Consent(v=1, granted=True))
        await hub.shutdown()  # a restart: the session is handed over
        first.peer_close_code = 1012
    assert session_id not in hub._live
    assert await hub.storage.get_suspended(session_id) is not None

    console = hub.agent_seat(ann, "192.0.2.1", login)
    rejoin = Rejoin(v=1, session_id=session_id, resume_token=joined["resume_token"])
    rejoining: list[asyncio.Task[Any]] = []
    take = hub.storage.take_suspended

    async def taken_as_the_console_asks(*args: Any, **kwargs: Any) -> Any:
        row = await take(*args, **kwargs)
        if not rejoining:
            # The customer's resume has taken the stored row, and has not yet made the session
            # live, when the console's rejoin arrives: the rejoin may finish now (it did, with
            # 4404, before the fix) or wait for the resume; it is given a second to show which.
            rejoining.append(asyncio.ensure_future(console.text(rejoin)))
            await asyncio.wait(rejoining, timeout=1.0)
        return row

    monkeypatch.setattr(hub.storage, "take_suspended", taken_as_the_console_asks)
    async with console:
        resume = Resume(v=1, session_id=session_id, resume_token=created["resume_token"])
        page = await hub.open_customer(site, resume)
        assert isinstance(page, CustomerSeat) and page.live.machine.session_id == session_id
        async with page:
            [rejoined] = rejoining
            assert isinstance(await rejoined, Joined), "the console was turned away"
            assert hub._live[session_id].agent_seat is console
            answer = json.loads((await console.subscription.get()).data)  # type: ignore[union-attr]
            assert answer["type"] == "joined" and answer["resumed"]
            console.peer_close_code = page.peer_close_code = 1001
    assert [r.subject for r in await audit_of(hub, "session_restored")] == [session_id]


async def test_another_organisations_site_under_a_deleted_sites_id_serves_none_of_its_sessions(
    hub: SessionHub,
) -> None:
    """Acme deletes its site while a session of it waits; Globex's admin registers a site under
    the freed id (ids are unique server-wide, so it may; unproved is enough), served by a team
    it names like Acme's. Acme's session must not take Globex's site for its own: its agents'
    teams were checked against Globex's site (Acme's agent joined a session of a site Acme no
    longer serves), and the customer's page would get Globex's masking policy on resuming."""
    customer, code = await open_session(hub)
    async with customer:
        assert await hub.storage.delete_site(of_org(ORG), "shop")
        await hub.storage.add_org(OrgRecord("globex", "Globex", 0.0))
        await hub.storage.add_team(of_org("globex"), "support")
        squat = SiteRecord(
            "shop",
            "globex",
            "https://globex.example",
            "Globex",
            ("support",),
            policy=json.dumps({"mask": [".chosen-by-globex"]}),
            verified=False,
        )
        await hub.storage.add_site(*owned(squat))
        ann = principal("agent")
        async with hub.agent_seat(ann, "192.0.2.1", await signed_in(hub, ann)) as seat:
            try:
                joined = await seat.text(Join(v=1, code=code))
            except (ForbiddenError, ProtocolError):
                joined = None
            assert not isinstance(joined, Joined)
        [live] = hub._live.values()
        site, resource = await hub._site_of(live)
        assert site is None and not resource.teams


async def test_refused_messages_share_the_accounts_budget_and_the_rest_are_counted(
    hub: SessionHub,
) -> None:
    hub.refusals = RefusalBudget(burst=2, window=60.0)
    agent = principal("agent")
    for _ in range(5):  # an agent asking to watch, again and again
        async with hub.agent_seat(agent, "192.0.2.1", await signed_in_once(hub, agent)) as seat:
            with pytest.raises(ProtocolError):
                await seat.text(Watch(v=1, session_id="anything"))
    assert len(await audit_of(hub, "message_refused")) == 2
    assert await audit_of(hub, "access_refused_summary") == []
    await hub._summarise_refusals(hub.clock() + 60)
    [summary] = await audit_of(hub, "access_refused_summary")
    assert summary.actor == "ann" and summary.details["refused"] == 3


async def signed_in_once(hub: SessionHub, who: Principal) -> str:
    if await hub.storage.get_user(who.username) is None:
        return await signed_in(hub, who)
    return auth.login_digest(who.username)


@pytest.mark.parametrize("role", ["agent", "supervisor"])
async def test_a_rejoin_of_a_session_that_is_gone_is_audited_within_the_accounts_budget(
    hub: SessionHub, role: str
) -> None:
    """A console's ``rejoin`` of a session that is over, never was, or is not its own (another
    account, another sign-in, a wrong resume token) was answered 4404 and recorded nowhere, so a
    stolen resume token tried again and again, or a supervisor probing session ids, left no
    evidence; each is a ``message_refused`` now, within the account's refusal budget."""
    hub.refusals = RefusalBudget(burst=2, window=60.0)
    asker = principal(role)
    for attempt in range(5):
        async with hub.agent_seat(asker, "192.0.2.1", await signed_in_once(hub, asker)) as seat:
            rejoin = Rejoin(v=1, session_id=f"gone{attempt}", resume_token="A" * 43)
            with pytest.raises(ProtocolError) as refused:
                await seat.text(rejoin)
            assert (refused.value.close_code, str(refused.value)) == (
                CLOSE_NOT_FOUND,
                "session not found",
            )
    records = await audit_of(hub, "message_refused")
    assert [(r.actor, r.details["message"], r.details["reason"]) for r in records] == [
        ("ann", "rejoin", "session not found")
    ] * 2
    await hub._summarise_refusals(hub.clock() + 60)
    [summary] = await audit_of(hub, "access_refused_summary")
    assert summary.details["refused"] == 3


@pytest.mark.parametrize("action", ["server_stopped", "socket_closed"])
async def test_a_record_of_what_was_done_cancelled_mid_write_is_kept_and_written_once(
    hub: SessionHub, tmp_path: Path, action: str
) -> None:
    """Its caller cancelled while the SQLite file was locked (a socket's close, a stop past its
    deadline): the write given up is rolled back, never committed once the lock goes, so the
    record is kept in the backlog and written from it, once (neither lost nor doubled). Both
    an anchored record and one with no anchor due (whose lone INSERT once committed itself
    when the lock went: written twice)."""
    import sqlite3

    storage = hub.storage
    assert isinstance(storage, SQLStorage)
    shell = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    try:
        shell.execute("BEGIN EXCLUSIVE")
        recording = asyncio.create_task(hub.record_done(action, actor="server", org=ORG))
        while storage._sqlite_call is None:  # in the storage thread, waiting for the lock
            await asyncio.sleep(0.01)
        recording.cancel()
        with pytest.raises(asyncio.CancelledError):
            await recording
    finally:
        shell.close()
    assert await hub._write_unrecorded() is None
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        written = db.execute("SELECT count(*) FROM audit WHERE action = ?", (action,))
        assert written.fetchone() == (1,)
