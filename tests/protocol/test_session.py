"""The session state machine, pure: transitions, deadlines, and invariants under random events."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tandem.exceptions import ProtocolError
from tandem.protocol.messages import (
    AgentJoined,
    ConsentNotice,
    Ended,
    Joined,
    PeerStatus,
    RecordingStatus,
    RecordRequest,
    WatcherLeft,
)
from tandem.protocol.session import (
    MAX_REPORTS,
    Audit,
    Effect,
    EndSession,
    EndWatch,
    Session,
    StartRecording,
    StopRecording,
    SuspendSession,
    ToAgents,
    ToCustomer,
    ToWatcher,
)


def new_session(recording_end_seconds: float = 0.0) -> Session:
    return Session(
        session_id="s1",
        code="123456789",
        code_expires_at=600.0,
        resume_grace_seconds=30.0,
        recording_end_seconds=recording_end_seconds,
    )


ASK = RecordRequest(agent="Alice", key="KEY", recording_id="r1", site="demo")


def test_join_notifies_both_sides() -> None:
    session = new_session()
    effects = session.agent_joins("Alice", now=1.0)
    assert effects == [
        Audit("agent_joined", "agent", (("team_policies", 0),)),
        ToAgents(Joined(session_id="s1")),
        ToCustomer(AgentJoined(agent="Alice")),
    ]
    assert session.state == "pending_consent"


def test_no_page_content_before_consent() -> None:
    session = new_session()
    with pytest.raises(ProtocolError):
        session.check_customer_payload()
    session.agent_joins("Alice", now=1.0)
    with pytest.raises(ProtocolError):
        session.check_customer_payload()
    session.consent(True)
    session.check_customer_payload()


def test_an_event_undone_is_taken_back_but_not_what_happened_since() -> None:
    """The hub undoes an answer whose audit record (which comes first) could not be written;
    what other events did while it waited for the database stays."""
    session = new_session()
    session.agent_joins("Alice", now=1.0)
    before = session.snapshot()
    session.consent(True)
    after = session.snapshot()
    session.undo(before, after)
    assert session.state == "pending_consent"
    with pytest.raises(ProtocolError):
        session.check_customer_payload()
    assert session.consent(True)[0] == Audit("consent_given", "customer")  # asked again
    # The session ended while the record was being written: undoing does not bring it back.
    session = new_session()
    session.agent_joins("Alice", now=1.0)
    before = session.snapshot()
    session.consent(True)
    after = session.snapshot()
    session.customer_stops()
    session.undo(before, after)
    assert session.ended


def test_consent_tells_the_agent() -> None:
    session = new_session()
    session.agent_joins("Alice", now=1.0)
    assert session.consent(True) == [
        Audit("consent_given", "customer"),
        ToAgents(ConsentNotice(granted=True)),
    ]
    assert session.state == "sharing"


def test_decline_ends_the_session() -> None:
    session = new_session()
    session.agent_joins("Alice", now=1.0)
    effects = session.consent(False)
    assert effects == [
        Audit("consent_declined", "customer"),
        ToCustomer(Ended(reason="declined")),
        ToAgents(Ended(reason="declined")),
        EndSession("declined"),
    ]
    assert session.ended and session.end_reason == "declined"


def test_consent_without_an_agent_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="consent is not allowed while waiting"):
        new_session().consent(True)


def test_join_after_code_expiry_ends_the_session() -> None:
    session = new_session()
    assert session.agent_joins("Alice", now=600.0)[-1] == EndSession("code_expired")


def test_unused_code_expires_on_tick() -> None:
    session = new_session()
    assert session.tick(599.0) == []
    assert session.tick(600.0)[-1] == EndSession("code_expired")


def test_code_does_not_expire_once_an_agent_joined() -> None:
    session = new_session()
    session.agent_joins("Alice", now=1.0)
    assert session.tick(10_000.0) == []


def test_customer_away_past_grace_is_lost_and_a_resume_in_time_is_not() -> None:
    session = new_session()
    session.agent_joins("Alice", now=1.0)
    session.consent(True)
    assert session.customer_left(now=100.0) == [ToAgents(PeerStatus(connected=False))]
    assert session.tick(129.0) == []
    resumed, effects = session.customer_resumes()
    assert resumed.state == "sharing" and resumed.code is None
    assert ToAgents(PeerStatus(connected=True)) in effects
    assert session.tick(1000.0) == []
    session.customer_left(now=2000.0)
    assert session.tick(2030.0)[-1] == EndSession("customer_lost")


def test_resume_while_pending_consent_asks_again() -> None:
    session = new_session()
    session.agent_joins("Alice", now=1.0)
    session.customer_left(now=2.0)
    _, effects = session.customer_resumes()
    assert ToCustomer(AgentJoined(agent="Alice")) in effects


def test_resume_of_an_ended_session_is_refused() -> None:
    session = new_session()
    session.customer_stops()
    with pytest.raises(ProtocolError):
        session.customer_resumes()


def timed_session() -> Session:
    return Session(
        session_id="s1",
        code="12345",
        code_expires_at=600.0,
        resume_grace_seconds=30.0,
        created_at=0.0,
        idle_timeout_seconds=100.0,
        max_duration_seconds=1000.0,
    )


def test_a_joined_session_without_traffic_ends_idle() -> None:
    session = timed_session()
    session.agent_joins("Alice", now=1.0)
    session.consent(True)
    session.touch(50.0)
    assert session.tick(149.0) == []
    assert session.tick(150.0)[-1] == EndSession("idle_timeout")


def test_traffic_keeps_a_session_alive_until_its_maximum() -> None:
    session = timed_session()
    session.agent_joins("Alice", now=1.0)
    session.consent(True)
    for now in range(10, 1000, 50):
        session.touch(float(now))
        assert session.tick(float(now)) == []
    assert session.tick(1000.0)[-1] == EndSession("max_duration")


def test_a_waiting_session_is_governed_by_its_code_not_idleness() -> None:
    session = timed_session()
    assert session.tick(500.0) == []
    assert session.tick(600.0)[-1] == EndSession("code_expired")


EVENTS = st.lists(
    st.sampled_from(
        [
            "join",
            "allow",
            "decline",
            "stop",
            "leave",
            "lost",
            "left",
            "resume",
            "tick",
            "watch",
            "watch_allow",
            "watch_refuse",
            "watch_hs_customer",
            "watch_hs_watcher",
            "watch_mismatch",
            "watch_leave",
            "record",
            "record_allow",
            "record_refuse",
            "record_stop_customer",
            "record_stop_agent",
            "record_stop_hard",
            "leave_gracefully",
            "lost_gracefully",
            "suspend",
        ]
    ),
    max_size=30,
)


@given(
    EVENTS,
    st.lists(st.floats(min_value=0, max_value=2000), min_size=20, max_size=20),
    st.sampled_from([0.0, 10.0]),
)
def test_invariants_hold_for_any_event_sequence(
    events: list[str], times: list[float], grace: float
) -> None:
    session = new_session(grace)
    ends = 0
    watch_ends = asks = 0
    starts = stops = 0
    for event, now in zip(events, sorted(times), strict=False):
        was_sharing = session.state == "sharing"
        was_watching = session.watcher_gets_content
        was_recording = session.records_content
        try:
            effects = {
                "join": lambda: session.agent_joins("Alice", now),  # noqa: B023
                "allow": lambda: session.consent(True),
                "decline": lambda: session.consent(False),
                "stop": session.customer_stops,
                "leave": session.agent_leaves,
                "lost": session.agent_lost,
                "left": lambda: session.customer_left(now),  # noqa: B023
                "resume": lambda: session.customer_resumes()[1],
                "tick": lambda: session.tick(now),  # noqa: B023
                "watch": lambda: session.watcher_asks("Sam"),
                "watch_allow": lambda: session.watch_consent(True),
                "watch_refuse": lambda: session.watch_consent(False),
                "watch_hs_customer": lambda: session.watch_handshake_from_customer("AA"),
                "watch_hs_watcher": lambda: session.handshake_from_watcher("BB"),
                "watch_mismatch": session.watch_mismatch,
                "watch_leave": session.watcher_leaves,
                "record": lambda: session.record_requested("KEY", "r1", "demo"),
                "record_allow": lambda: session.record_consent(True),
                "record_refuse": lambda: session.record_consent(False),
                "record_stop_customer": lambda: session.record_stop("stopped_by_customer"),
                "record_stop_agent": lambda: session.record_stop("stopped_by_agent", now),  # noqa: B023
                "record_stop_hard": lambda: session.record_stop("unavailable"),
                "leave_gracefully": lambda: session.agent_leaves(now),  # noqa: B023
                "lost_gracefully": lambda: session.agent_lost(now),  # noqa: B023
                "suspend": session.suspend,
            }[event]()
        except ProtocolError:
            continue
        ends += sum(isinstance(e, EndSession) for e in effects)
        watch_ends += sum(isinstance(e, EndWatch) for e in effects)
        asks += event == "watch"
        starts += sum(isinstance(e, StartRecording) for e in effects)
        stops += sum(isinstance(e, StopRecording) for e in effects)
        # Frames are kept only while sharing, and only from the customer's "allow" on.
        if session.records_content:
            assert session.state == "sharing"
            if not was_recording:
                assert event == "record_allow"
        assert starts - stops == (1 if session.records_content else 0)
        # A supervisor gets content only while sharing, after the customer's second key message.
        if session.watcher_gets_content:
            assert session.state == "sharing"
            if not was_watching:
                assert event == "watch_hs_customer"
        if session.watcher is None:
            assert session.watch_state is None
        # Content may flow only in "sharing", and "sharing" is reached only through consent.
        if session.state == "sharing" and not was_sharing:
            assert event == "allow"
        if session.ended:  # ended here, or handed over to the next process (no end)
            assert (session.end_reason is not None) != session.suspended
        # A graceful end waits only for a running recording's end marker.
        if session.closing is not None:
            assert session.recording == "ending" and not session.ended
    assert ends == (1 if session.ended and not session.suspended else 0)
    # Every recording that started is stopped exactly once, unless it still runs.
    assert stops == starts - (1 if session.records_content else 0)
    # Every watch that began ends exactly once, unless it is still running.
    assert watch_ends == asks - (1 if session.watcher is not None else 0)


def sharing_session() -> Session:
    session = new_session()
    session.agent_joins("Alice", 1.0)
    session.consent(True)
    return session


def test_recording_needs_the_customers_consent_and_either_side_stops_it() -> None:
    session = sharing_session()
    effects = session.record_requested("KEY", "r1", "demo")
    assert effects == [Audit("recording_requested", "agent"), ToCustomer(ASK)]
    assert not session.records_content
    with pytest.raises(ProtocolError):
        session.record_requested("KEY", "r1", "demo")  # asked already
    effects = session.record_consent(True)
    assert StartRecording() in effects and session.records_content
    effects = session.record_stop("stopped_by_agent")
    assert effects[0] == StopRecording("stopped_by_agent")
    status = RecordingStatus(on=False, reason="stopped_by_agent")
    assert ToCustomer(status) in effects and ToAgents(status) in effects
    assert session.record_stop("stopped_by_customer") == []  # a second click does nothing


def test_a_refusal_keeps_nothing_and_ending_the_session_stops_a_recording() -> None:
    session = sharing_session()
    session.record_requested("KEY", "r1", "demo")
    effects = session.record_consent(False)
    assert effects == [
        Audit("recording_declined", "customer"),
        ToAgents(RecordingStatus(on=False, reason="declined")),
    ]
    assert not session.records_content
    with pytest.raises(ProtocolError):
        session.record_consent(True)  # nobody asks now
    # Refusing what nobody asked is harmless (and audited: the customer said no).
    assert session.record_consent(False) == [Audit("recording_declined", "customer")]
    session.record_requested("KEY", "r1", "demo")
    session.record_consent(True)
    effects = session.customer_stops()
    assert StopRecording("session_ended") in effects
    assert effects.index(StopRecording("session_ended")) < effects.index(EndSession("stopped"))
    assert not session.records_content


def test_no_recording_before_sharing_and_a_resume_asks_again() -> None:
    session = new_session()
    with pytest.raises(ProtocolError):
        session.record_requested("KEY", "r1", "demo")
    session = sharing_session()
    session.record_requested("KEY", "r1", "demo")
    session.customer_left(2.0)
    resumed, effects = session.customer_resumes()
    assert resumed.recording is False
    assert ToCustomer(ASK) in effects  # the same question, the same recording id
    session.record_consent(True)
    resumed, _ = session.customer_resumes()
    assert resumed.recording is True


def recording_session(grace: float = 10.0) -> Session:
    session = new_session(grace)
    session.agent_joins("Alice", 1.0)
    session.consent(True)
    session.record_requested("KEY", "r1", "demo")
    session.record_consent(True)
    return session


def test_the_agent_stopping_asks_the_customers_browser_to_end_the_recording_first() -> None:
    session = recording_session()
    effects = session.record_stop("stopped_by_agent", 5.0)
    status = RecordingStatus(on=False, reason="stopped_by_agent")
    assert effects == [ToAgents(status), ToCustomer(status)]
    assert session.records_content  # its end marker is still kept
    assert session.record_stop("stopped_by_agent", 6.0) == []  # asked once
    effects = session.record_stop("stopped_by_customer")  # after the end marker
    assert effects == [StopRecording("stopped_by_agent")] and not session.records_content


def test_an_end_marker_that_does_not_come_in_time_is_not_waited_for() -> None:
    session = recording_session()
    session.record_stop("stopped_by_agent", 5.0)
    assert session.tick(14.9) == []
    assert session.tick(15.0) == [StopRecording("stopped_by_agent")]
    assert not session.records_content


def test_a_resumed_page_is_asked_again_to_end_the_recording() -> None:
    session = recording_session()
    session.record_stop("size_limit", 5.0)
    session.customer_left(6.0)
    resumed, effects = session.customer_resumes()
    assert resumed.recording is True
    assert ToCustomer(RecordingStatus(on=False, reason="size_limit")) in effects


def test_the_agent_leaving_lets_the_recording_end_before_the_session_does() -> None:
    session = recording_session()
    effects = session.agent_leaves(5.0)
    assert effects == [ToCustomer(RecordingStatus(on=False, reason="session_ending"))]
    assert session.state == "sharing" and session.records_content
    assert session.agent_lost(6.0) == []  # its socket closing changes nothing
    effects = session.record_stop("stopped_by_customer")
    assert effects[0] == StopRecording("session_ended")
    assert effects[-1] == EndSession("agent_left") and session.ended


def test_a_graceful_end_is_bounded_in_time_and_by_the_customer_leaving() -> None:
    session = recording_session()
    session.agent_leaves(5.0)
    effects = session.tick(15.0)
    assert StopRecording("session_ended") in effects and EndSession("agent_left") in effects
    session = recording_session()
    session.agent_leaves(5.0)
    effects = session.customer_left(6.0)  # no end marker can come now
    assert StopRecording("session_ended") in effects and EndSession("agent_left") in effects


def test_without_a_recording_or_without_grace_the_agent_leaving_ends_at_once() -> None:
    session = recording_session(grace=0.0)
    assert EndSession("agent_left") in session.agent_leaves(5.0)
    session = new_session(10.0)
    session.agent_joins("Alice", 1.0)
    session.consent(True)
    assert EndSession("agent_left") in session.agent_leaves(5.0)


# Audit records are effects: the machine says what happened and by which party; the hub names
# the party and files it under the session's organisation.


def audits(effects: list[Effect]) -> list[Audit]:
    return [e for e in effects if isinstance(e, Audit)]


def test_a_key_mismatch_is_audited_as_the_side_that_found_it_before_the_end() -> None:
    session = new_session()
    session.agent_joins("Alice", 1.0, username="alice")
    effects = session.key_mismatch("agent")
    assert effects[0] == Audit("key_mismatch", "agent")
    assert effects[-1] == EndSession("key_mismatch")
    assert new_session().key_mismatch()[0] == Audit("key_mismatch", "customer")


def test_the_joined_agents_account_names_it_in_the_audit_trail() -> None:
    session = new_session()
    effects = session.agent_joins("Alice Example", 1.0, username="alice", team_policies=2)
    assert audits(effects) == [Audit("agent_joined", "agent", (("team_policies", 2),))]
    assert session.agent_username == "alice" and session.agent == "Alice Example"


def test_a_watch_is_audited_from_request_to_end_with_the_supervisors_account() -> None:
    session = sharing_session()
    assert audits(session.watcher_asks("Sam", "sam")) == [Audit("watch_requested", "watcher")]
    effects = session.watch_consent(False)
    assert effects[0] == Audit("watch_declined", "customer", (("watcher", "sam"),))
    assert EndWatch("declined", "sam") in effects
    assert session.watcher_username == ""
    session.watcher_asks("Sam", "sam")
    assert session.watch_consent(True)[0] == Audit(
        "watch_allowed", "customer", (("watcher", "sam"),)
    )
    assert EndWatch("agent_left", "sam") in session.agent_leaves()  # the session's end ends it


def test_customer_reports_are_audited_up_to_the_limit_and_then_ignored() -> None:
    session = sharing_session()
    session.agent_username = "alice"
    for _ in range(MAX_REPORTS):
        assert session.customer_reports("control_granted") == [
            Audit("control_granted", "customer", (("agent", "alice"),))
        ]
    assert session.customer_reports("control_granted") == []
    with pytest.raises(ProtocolError):
        new_session().customer_reports("control_granted")  # not before sharing


def test_an_invalid_event_emits_no_audit_record() -> None:
    session = new_session()
    with pytest.raises(ProtocolError):
        session.consent(True)  # nobody joined: refused, and nothing is audited
    with pytest.raises(ProtocolError):
        session.watch_consent(True)
    assert session.state == "waiting"


# Issue 13, fault 6: a lost agent may take its session up again within the window.


def resumable(window: float = 30.0) -> Session:
    session = new_session()
    session.agent_resume_seconds = window
    session.agent_joins("Alice", now=1.0, username="alice", resume_token="tok")
    session.consent(True)
    return session


def test_a_join_carries_the_resume_token_and_window() -> None:
    session = new_session()
    session.agent_resume_seconds = 30.0
    effects = session.agent_joins("Alice", now=1.0, username="alice", resume_token="tok")
    assert ToAgents(Joined(session_id="s1", resume_token="tok", resume_seconds=30)) in effects


def test_a_lost_agent_is_waited_for_and_the_customer_told() -> None:
    session = resumable()
    assert session.agent_away(10.0) == [ToCustomer(PeerStatus(connected=False))]
    assert session.agent_away(11.0) == []  # once
    assert session.tick(39.9) == []
    assert session.state == "sharing"
    effects = session.agent_returns("alice")
    assert effects == [
        Audit("agent_rejoined", "agent"),
        ToAgents(Joined(session_id="s1", resumed=True)),
        ToCustomer(PeerStatus(connected=True)),
    ]
    assert session.tick(1000.0) == []  # no longer away (no idle timeout here)


def test_an_agent_away_past_the_window_ends_the_session_lost() -> None:
    session = resumable()
    session.agent_away(10.0)
    effects = session.tick(40.0)
    assert EndSession("agent_lost") in effects
    with pytest.raises(ProtocolError):
        session.agent_returns("alice")


def test_only_the_joined_agent_returns_and_only_to_a_joined_session() -> None:
    session = resumable()
    session.agent_away(10.0)
    with pytest.raises(ProtocolError):
        session.agent_returns("mallory")
    waiting = new_session()
    with pytest.raises(ProtocolError):
        waiting.agent_returns("")


def test_without_a_window_or_before_a_join_a_lost_agent_ends_the_session() -> None:
    assert EndSession("agent_lost") in resumable(window=0).agent_away(10.0)
    waiting = new_session()
    waiting.agent_resume_seconds = 30.0
    assert EndSession("agent_lost") in waiting.agent_away(10.0)


def test_a_half_open_agent_socket_replaced_by_a_rejoin_tells_the_customer_nothing() -> None:
    session = resumable()
    assert ToCustomer(PeerStatus(connected=True)) not in session.agent_returns("alice")


def test_a_restart_hands_the_session_over_ending_only_the_watch_and_the_recording() -> None:
    """Nothing the customer allowed goes on unseen: the supervisor's watch ends (it asks again
    after the restart), a running recording is closed where it is; the session itself does not
    end (no ``ended`` to either side) and takes nothing more here."""
    session = sharing_session()
    session.record_requested("KEY", "r1", "demo")
    session.record_consent(True)
    session.watcher_asks("Sam", "sam")
    effects = session.suspend()
    assert effects == [
        ToWatcher(Ended(reason="server_shutdown")),
        EndWatch("server_shutdown", "sam"),
        ToCustomer(WatcherLeft()),
        StopRecording("server_restart"),
        SuspendSession(),
    ]
    assert session.ended and session.suspended and session.end_reason is None
    assert session.state == "sharing" and session.recording is None
    assert session.suspend() == [] and session.tick(10_000.0) == []
    with pytest.raises(ProtocolError):
        session.customer_resumes()


def test_a_session_already_ending_gracefully_ends_rather_than_being_handed_over() -> None:
    session = new_session(recording_end_seconds=10.0)
    session.agent_joins("Alice", 1.0)
    session.consent(True)
    session.record_requested("KEY", "r1", "demo")
    session.record_consent(True)
    session.agent_leaves(5.0)  # waits for the recording's end marker
    effects = session.suspend()
    assert EndSession("agent_left") in effects and not session.suspended
