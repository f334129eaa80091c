"""Audit records of what was done already that the database refused when they were appended
(an administrator's change, a socket closed on a re-check, a download cut), kept until it
answers (docs/audit.md).

They were kept in memory only: a process killed (SIGKILL, an out-of-memory kill, a power cut)
before the database answered lost them for good, and the change they record stayed in storage
with no record of it. Each is now also appended to a file of the data directory
(``audit-backlog.jsonl``, 0600), flushed to the disk before the caller hears that the record was
refused; the next process on that data directory loads what is left and appends it, with the
time of the change, before its own ``server_started``. How many were written is kept beside it
(``audit-backlog.written``), so a process killed while writing them writes each again at most
once; the files go once the backlog is empty.

A file that cannot be written (the disk full as well) leaves the record in memory, as before,
logged; a line that cannot be read back (cut short by a power cut) is skipped and logged.
"""

from __future__ import annotations

import contextlib
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


class AuditBacklog:
    """Records held until the database takes them, oldest first; kept in ``directory`` too
    (None: in memory only, for a caller without a data directory)."""

    def __init__(self, directory: Path | None) -> None:
        self._held: deque[Held] = deque()
        self._on_disk: deque[bool] = deque()
        """For each record held: whether it is a line of the file (not if the disk refused it)."""
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
            self._held.append(held)
            self._on_disk.append(True)
            loaded += 1
        metrics.AUDIT_RECORDS_HELD.set(len(self._held))
        if loaded:
            log.warning("audit records held by an earlier process, to be written: %d", loaded)
        elif lines:
            self._remove_files()
        return loaded

    def hold(self, at: float, action: str, fields: dict[str, Any]) -> None:
        """Keep a record the database refused (or that waits behind one): in memory, and on the
        disk before this returns (logged if the disk refuses it too: then in memory only)."""
        self._held.append((at, action, fields))
        self._on_disk.append(False)
        metrics.AUDIT_RECORDS_HELD.set(len(self._held))
        if self._path is None:
            return
        line = json.dumps([at, action, fields], default=str, separators=(",", ":")) + "\n"
        try:
            private_file(self._path)
            with self._path.open("ab") as file:
                file.write(line.encode())
                file.flush()
                os.fsync(file.fileno())
            self._on_disk[-1] = True
        except OSError as exc:
            log.error(
                "an audit record the database refused cannot be kept on disk either (%s): "
                "held in memory only, lost if this process dies before the database answers",
                exc.strerror,
            )

    def first(self) -> Held:
        """The oldest record held (IndexError if none)."""
        return self._held[0]

    def written(self) -> None:
        """The oldest record was written to the database (or refused for good): drop it."""
        self._held.popleft()
        metrics.AUDIT_RECORDS_HELD.set(len(self._held))
        if not self._on_disk.popleft() or self._path is None or self._written_path is None:
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
