"""Audit records of what was done already that the database refused when they were appended
(an administrator's change, a socket closed on a re-check, a download cut), kept until it
answers (docs/audit.md).

They were kept in memory only: a process killed (SIGKILL, an out-of-memory kill, a power cut)
before the database answered lost them for good, and the change they record stayed in storage
with no record of it. Each is now also appended to a file of the data directory
(``audit-backlog.jsonl``, 0600), flushed to the disk (in a worker thread: an fsync on the event
loop would hold every session's frames) before the caller hears that the record was refused;
the next process on that data directory loads what is left and appends it, with the time of
the change, before its own ``server_started``. How many were written is kept beside it
(``audit-backlog.written``), so a process killed while writing them writes each again at most
once; the files go once the backlog is empty.

A file that cannot be written (the disk full as well) leaves the record in memory, as before,
logged; a line that cannot be read back (cut short by a power cut) is skipped and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
from collections import deque
from pathlib import Path
from typing import Any

from tandem import metrics
from tandem.private_files import FILE_MODE, private_file

log = logging.getLogger("tandem.audit")

BACKLOG_FILE = "audit-backlog.jsonl"
WRITTEN_FILE = "audit-backlog.written"

Held = tuple[float, str, dict[str, Any]]
"""A record held: when it was done, its action, its fields (as ``AuditLog.record`` takes them)."""


@dataclasses.dataclass(slots=True)
class _Entry:
    held: Held
    on_disk: bool = False
    """Whether it is a line of the file (not yet, or not if the disk refused it)."""


def _append(path: Path, line: bytes) -> None:
    private_file(path)
    with path.open("ab") as file:
        file.write(line)
        file.flush()
        os.fsync(file.fileno())


class AuditBacklog:
    """Records held until the database takes them, oldest first; kept in ``directory`` too
    (None: in memory only, for a caller without a data directory)."""

    def __init__(self, directory: Path | None) -> None:
        self._held: deque[_Entry] = deque()
        self._writing = asyncio.Lock()
        """One write to the file at a time, in the order the records were held."""
        self._path = directory / BACKLOG_FILE if directory is not None else None
        self._written_path = directory / WRITTEN_FILE if directory is not None else None
        self._written = 0
        """Records of the file written to the database (the file's first lines)."""

    def __bool__(self) -> bool:
        return bool(self._held)

    def __len__(self) -> int:
        return len(self._held)

    def load(self) -> int:
        """Take up what a process before this one left (killed before the database answered);
        the number of records loaded. Never raises: an unreadable file or line is logged."""
        if self._path is None or self._written_path is None or not self._path.exists():
            return 0
        try:
            lines = self._path.read_bytes().splitlines()
            written = 0
            with contextlib.suppress(FileNotFoundError, ValueError):
                written = int(self._written_path.read_text().strip() or 0)
        except OSError as exc:
            log.error("the audit backlog %s cannot be read: %s", self._path, exc.strerror)
            return 0
        self._written = max(0, min(written, len(lines)))
        loaded = 0
        for number, line in enumerate(lines[self._written :], start=self._written + 1):
            try:
                at, action, fields = json.loads(line)
                held: Held = (float(at), str(action), dict(fields))
            except (ValueError, TypeError) as exc:
                log.error(
                    "the audit backlog %s: line %d skipped (%s)",
                    self._path,
                    number,
                    type(exc).__name__,
                )
                continue
            self._held.append(_Entry(held, on_disk=True))
            loaded += 1
        metrics.AUDIT_RECORDS_HELD.set(len(self._held))
        if loaded:
            log.warning("audit records held by an earlier process, to be written: %d", loaded)
        elif lines:
            self._remove_files()
        return loaded

    async def hold(self, at: float, action: str, fields: dict[str, Any]) -> None:
        """Keep a record the database refused (or that waits behind one): in memory at once,
        and on the disk (flushed, off the event loop) before this returns; logged if the disk
        refuses it too (then in memory only)."""
        entry = _Entry((at, action, fields))
        self._held.append(entry)
        metrics.AUDIT_RECORDS_HELD.set(len(self._held))
        if self._path is None:
            return
        line = json.dumps([at, action, fields], default=str, separators=(",", ":")) + "\n"
        async with self._writing:
            try:
                await asyncio.to_thread(_append, self._path, line.encode())
            except OSError as exc:
                log.error(
                    "an audit record the database refused cannot be kept on disk either (%s): "
                    "held in memory only, lost if this process dies before the database answers",
                    exc.strerror,
                )
                return
        entry.on_disk = True

    def first(self) -> Held:
        """The oldest record held (IndexError if none)."""
        return self._held[0].held

    def written(self) -> None:
        """The oldest record was written to the database (or refused for good): drop it."""
        entry = self._held.popleft()
        metrics.AUDIT_RECORDS_HELD.set(len(self._held))
        # A record whose line is not on the disk (yet) is not counted: at worst, a process
        # killed later writes it once more, never skips another.
        if not entry.on_disk or self._path is None or self._written_path is None:
            if not self._held:
                self._remove_files()
            return
        self._written += 1
        if not self._held:
            self._remove_files()
            return
        try:
            fd = os.open(
                self._written_path.with_suffix(".tmp"),
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                FILE_MODE,
            )
            with os.fdopen(fd, "w") as file:
                file.write(str(self._written))
            os.replace(self._written_path.with_suffix(".tmp"), self._written_path)
        except OSError as exc:  # at worst, written once more by the next process
            log.error("the audit backlog's count cannot be kept: %s", exc.strerror)

    def _remove_files(self) -> None:
        self._written = 0
        for path in (self._path, self._written_path):
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
