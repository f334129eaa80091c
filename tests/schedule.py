"""The order pytest-xdist hands out the non-browser tests in (`make pytest-fast`, `make check`):
the tests that mostly wait (real ``tandem serve`` processes, timeouts of the product's own,
Redis restarts) first, spread over the workers, so that none of them starts last and holds up
the end of the pass while every other worker is done. ``--slow-first`` turns it on.

Most of the pass is CPU-bound small tests; a few dozen tests take seconds of wall time each and
little CPU. Handed out in collection order, some of those came last and the pass ended with one
worker waiting on a timer and the cores idle. Here at most half the workers (rounded up) hold a
slow test at a time, the longest first, while the others run the rest in collection order (in
chunks, as ``--dist load`` does, so a module's fixtures are still set up once per worker run):
the waits overlap with the CPU-bound tests instead of following them.

The durations below order the slow tests only: a test missing here (new, renamed) runs with the
rest, as before; tests/test_schedule.py checks that every entry still names a test.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import pytest
from xdist.scheduler import LoadScheduling
from xdist.workermanage import WorkerController

SLOW: dict[str, float] = {
    # node id, or a module whose tests share a module-scoped fixture (they go to one worker, in
    # order): seconds of wall time, measured with the pass at load ~7 on 2 cores (2026-11-29);
    # the tests of forked `tandem serve` processes (tests/forkserver.py) at load ~8, except the two
    # killed-process tests, which keep their values: a worker's first forked test also waits for
    # its fork server to start, and these two lead anyway.
    "tests/server/test_cluster_faults.py::test_a_killed_process_is_noticed_on_the_other_side_of_every_tunnel": 13.6,  # noqa: E501
    "tests/test_release.py": 13.3,
    "tests/server/test_tunnelled_rejoin.py::test_a_console_whose_process_was_killed_rejoins_on_the_owner": 11.1,  # noqa: E501
    "tests/server/test_schemathesis.py::test_no_route_answers_a_server_error_or_outside_its_description": 8.7,  # noqa: E501
    "tests/test_runtime_limits.py": 6.6,
    "tests/server/test_crash_recovery.py::test_a_live_process_closes_a_killed_peers_sessions_and_supervisors_stop_seeing_them": 6.2,  # noqa: E501
    "tests/test_cli.py": 5.8,
    "tests/server/test_cluster_faults.py::test_a_session_across_processes_survives_a_frozen_redis": 4.6,  # noqa: E501
    "tests/server/test_cluster_faults.py::test_a_session_across_processes_survives_a_redis_restart_losing_nothing": 4.6,  # noqa: E501
    "tests/server/test_restart_handover.py::test_nobody_back_within_the_window_ends_the_session_audited": 4.5,  # noqa: E501
    "tests/server/test_restart_handover.py::test_a_running_recording_ends_flushed_at_the_restart_and_does_not_go_on": 4.1,  # noqa: E501
    "tests/server/test_storage_faults.py::test_the_deadline_timer_survives_a_locked_database_and_codes_expire_after": 4.0,  # noqa: E501
    "tests/server/test_cluster_faults.py::test_redis_away_past_the_outage_limit_tells_both_sides_the_truth": 3.6,  # noqa: E501
    "tests/server/test_revocation.py::test_a_revocation_on_one_server_closes_a_socket_on_another": 3.1,  # noqa: E501
    "tests/server/test_restart_handover.py::test_the_agent_may_come_back_first_and_a_waiting_session_keeps_its_code": 2.9,  # noqa: E501
    "tests/test_heap.py::test_serve_runs_the_collector_tasks_supervised_and_zero_turns_them_off": 2.7,  # noqa: E501
    "tests/server/test_graceful_stop.py::test_an_agent_that_stopped_reading_does_not_hold_up_the_stop": 2.7,  # noqa: E501
    "tests/server/test_crash_recovery.py::test_a_restart_closes_what_a_killed_server_left_live_and_its_recording_plays_and_erases": 2.7,  # noqa: E501
    "tests/server/test_restart_handover.py::test_both_sides_reconnect_to_the_next_process_and_frames_flow_again": 2.5,  # noqa: E501
    "tests/server/test_restart_handover.py::test_a_wrong_stolen_or_foreign_token_is_refused_after_the_restart": 2.4,  # noqa: E501
    "tests/server/test_graceful_stop.py::test_sigterm_tells_both_sides_to_reconnect_hands_over_and_exits_in_time": 2.1,  # noqa: E501
    "tests/server/test_restart_handover.py::test_a_session_of_a_stopped_cluster_process_resumes_on_another": 2.1,  # noqa: E501
    "tests/server/test_tunnelled_rejoin.py::test_a_console_whose_process_stops_rejoins_on_another": 2.0,  # noqa: E501
    "tests/server/test_scale_out.py::test_a_session_whose_server_is_gone_is_not_found": 2.0,
    "tests/server/test_cluster_faults.py::test_a_stopping_process_tells_the_tunnelled_sockets_restarting": 1.9,  # noqa: E501
    "tests/server/test_tunnelled_rejoin.py::test_a_customer_whose_process_stops_resumes_on_another": 1.8,  # noqa: E501
    "tests/test_serve_failures.py::test_a_tls_certificate_that_does_not_load_is_one_line": 1.5,
    "tests/server/test_observability.py::test_json_logs_tell_the_session_lifecycle_and_security_events_without_secrets": 1.1,  # noqa: E501
}


def slow_units(collection: Sequence[str]) -> list[list[int]]:
    """The indices of ``collection``'s slow tests, in units to hand out whole (a test, or every
    test of a listed module, in collection order), the longest first."""
    units: dict[str, list[int]] = {}
    for index, nodeid in enumerate(collection):
        key = nodeid if nodeid in SLOW else nodeid.split("::", 1)[0]
        if key in SLOW:
            units.setdefault(key, []).append(index)
    return [units[key] for key in sorted(units, key=lambda key: -SLOW[key])]


class SlowFirstScheduling(LoadScheduling):
    """``--dist load``, except that the slow units go out first, one at a time, to at most half
    the workers (rounded up) at once; the other workers start on the rest meanwhile."""

    def __init__(self, config: pytest.Config, log: object = None) -> None:
        super().__init__(config, log)  # type: ignore[arg-type]
        self.slow: deque[list[int]] = deque()
        self.slow_indices: set[int] = set()

    @property
    def tests_finished(self) -> bool:
        return not self.slow and super().tests_finished

    @property
    def has_pending(self) -> bool:
        return bool(self.slow) or super().has_pending

    def schedule(self) -> None:
        assert self.collection_is_completed
        if self.collection is not None:
            for node in self.nodes:
                self.check_schedule(node)
            return
        if not self._check_nodes_have_same_collection():
            self.log("**Different tests collected, aborting run**")
            return
        self.collection = next(iter(self.node2collection.values()))
        if self.maxschedchunk is None:
            self.maxschedchunk = len(self.collection)
        units = slow_units(self.collection)
        self.slow = deque(units)
        self.slow_indices = {index for unit in units for index in unit}
        self.pending[:] = [i for i in range(len(self.collection)) if i not in self.slow_indices]
        for node in self.nodes:
            self.check_schedule(node)

    def check_schedule(self, node: WorkerController, duration: float = 0) -> None:
        if node.shutting_down:
            return
        held = self.node2pending[node]
        # A worker runs a test once it holds the next one too (or is told to stop): it is given
        # a slow unit while it holds fewer than two tests.
        while self.slow and len(held) < 2:
            holding_slow = any(i in self.slow_indices for i in held)
            others = sum(
                1
                for other, pending in self.node2pending.items()
                if other is not node and any(i in self.slow_indices for i in pending)
            )
            if not holding_slow and others >= (len(self.node2pending) + 1) // 2 and self.pending:
                break  # enough workers wait on slow tests: this one runs the rest
            unit = self.slow.popleft()
            held.extend(unit)
            node.send_runtest_some(unit)
        if len(held) >= 2 and any(i in self.slow_indices for i in held):
            return
        if self.pending or not self.slow:
            super().check_schedule(node, duration)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow-first",
        action="store_true",
        help="with -n: hand out the tests that mostly wait first (tests/schedule.py)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> LoadScheduling | None:
    if config.getoption("slow_first"):
        return SlowFirstScheduling(config, log)
    return None
