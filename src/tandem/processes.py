"""Crash recovery: each server process registers itself in the database with a heartbeat.

A process that stops cleanly removes its row. One that crashes (``kill -9``, power loss) leaves
its sessions "live" and its recordings "running" in storage: the next start on the same host and
port (its *identity*) closes them at once, and any live process closes them once the heartbeat
is older than ``process_lost_seconds``. Sessions end ``server_lost``, recordings ``interrupted``
(their frames up to the last flush stay playable, and they can be erased); both are audited.

Sessions a stopping server handed over (SIGTERM, :meth:`tandem.hub.SessionHub.shutdown`) are
held by no process but are not lost: the sweep leaves them to be resumed until their window
passes, then ends them ``server_shutdown`` (audited the same way).
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Sequence

from tandem import logs, metrics
from tandem.audit import Entry, Witness, deleted_with_evidence
from tandem.config import Settings
from tandem.storage.base import RecordingRecord, SessionRecord, Storage

log = logs.get_logger("tandem.processes")
Record = Callable[..., Awaitable[None]]


def identity_of(settings: Settings) -> str:
    """What stays the same when this server is restarted: its host name and port."""
    return f"{socket.gethostname()}:{settings.port}"


NOBODY_SILENT = float("-inf")
"""``lost_before`` for a sweep that takes no process for dead by its silence."""


def closing_records(closed: tuple[list[SessionRecord], list[RecordingRecord]]) -> Sequence[Entry]:
    """The audit records of what a sweep closed: each session's end, each recording's stop."""
    sessions, recordings = closed
    return [
        *(
            Entry(
                "session_ended",
                session.org_id,
                "server",
                session.session_id,
                {"reason": session.end_reason or "server_lost", "node": session.node},
            )
            for session in sessions
        ),
        *(
            Entry(
                "recording_stopped",
                recording.org_id,
                "server",
                recording.recording_id,
                {
                    "session": recording.session_id,
                    "reason": "interrupted",
                    "frames": recording.frames,
                    "size": recording.size,
                },
            )
            for recording in recordings
        ),
    ]


class ProcessRegistry:
    """This process's row in ``processes`` and the sweep that closes lost processes' work."""

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        clock: Callable[[], float],
        node: str,
        record: Record,
        taken_for_dead: Callable[[], Awaitable[None]] | None = None,
        witness: Witness | None = None,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.clock = clock
        self.node = node
        self.identity = identity_of(settings)
        self.record = record
        self.witness = witness
        """Makes the evidence of a sweep: its records go in its own transaction (without one,
        a unit test's, they are appended with ``record`` after it)."""
        self.taken_for_dead = taken_for_dead
        """Called once this process registered again after another took it for dead (again at
        each beat until it has worked)."""
        self._owes_notice = False
        self._beating_since: float | None = None
        """Since when this process's heartbeats have been written without a failure (None: the
        last one failed). Another process's silence is judged only over a time this one could
        write: after an outage of the database every process's heartbeat is old, and none of
        them is dead."""

    async def start(self) -> None:
        """Register, then close what this server held before a crash (and any lost process's)."""
        now = self.clock()
        await self.storage.register_process(self.node, self.identity, now)
        self._beating_since = now - self.settings.process_lost_seconds  # trusted at once
        await self.sweep()

    async def beat(self) -> None:
        """Mark this process alive; register again if another process took it for dead."""
        now = self.clock()
        try:
            alive = await self.storage.heartbeat(self.node, now)
        except Exception:
            self._beating_since = None
            raise
        if self._beating_since is None:
            self._beating_since = now
        if not alive:
            log.warning("process_taken_for_dead", node=self.node)
            await self.storage.register_process(self.node, self.identity, self.clock())
            self._owes_notice = self.taken_for_dead is not None
        if self._owes_notice and self.taken_for_dead is not None:
            await self.taken_for_dead()
            self._owes_notice = False

    async def sweep(self) -> None:
        """Close the sessions and recordings of processes whose heartbeat stopped: silent for
        ``process_lost_seconds`` while this one's were written (so not until this one has
        written them that long again, after a failure: the database may have been away for
        all), or, at once, a process of this host and port before it (crashed)."""
        now = self.clock()
        lost = self.settings.process_lost_seconds
        judged = self._beating_since is not None and now - self._beating_since >= lost
        # The closing and its records are one transaction: both or neither, whenever the
        # process is killed or the database fails (a failed sweep closes nothing; it runs again).
        sessions, recordings = await deleted_with_evidence(
            lambda evidence: self.storage.close_lost_processes(
                self.node, self.identity, now - lost if judged else NOBODY_SILENT, now, evidence
            ),
            closing_records,
            self.witness,
            self.record,
        )
        for session in sessions:
            if session.end_reason == "server_shutdown":  # handed over, and nobody came back
                metrics.SESSIONS_HANDED_OVER.labels(outcome="expired").inc()
            else:
                metrics.SESSIONS_CLOSED_AFTER_CRASH.labels(kind="session").inc()
        for _ in recordings:
            metrics.SESSIONS_CLOSED_AFTER_CRASH.labels(kind="recording").inc()
        if sessions or recordings:
            log.warning("lost_process_closed", sessions=len(sessions), recordings=len(recordings))

    async def stop(self) -> None:
        await self.storage.unregister_process(self.node)
