"""Audit records of what was done already that the database refused when they were appended
(an administrator's change, a socket closed on a re-check, a download cut), kept until it
answers (docs/audit.md).

They were kept in memory only: a process killed (SIGKILL, an out-of-memory kill, a power cut)
before the database answered lost them for good, and the change they record stayed in storage
with no record of it. Each is now also appended to a file of the data directory
(``audit-backlog.jsonl``, 0600), flushed to the disk (in a worker thread: an fsync on the event
loop would hold every session's frames) before the caller hears that the record was refused;
the next process on that data directory loads what is left and appends it, with the time of
the change, before its own ``server_started``. How many of its lines were written is kept beside
it (``audit-backlog.written``), so a process killed while writing them writes each again at most
once; the files go once the backlog is empty.

Each line carries a MAC made with a subkey of the audit key (:func:`tandem.audit.backlog_mac_key`)
over its number and its record: the next start seals what it loads into the trail as genuine, so a
line written or altered by someone without the key (any actor, time or organisation), or moved to
another place in the file, is refused, logged, counted in an ``audit_backlog_refused`` record, and
kept as it was in ``audit-backlog.refused`` for the operator. One process keeps the file at a time
(``audit-backlog.lock``, locked while it runs): several servers on PostgreSQL may share a data
directory, and each took up, and removed, what the others held. A file larger than
``audit_backlog_max_bytes`` is never written (a record past it is held in memory only, logged) and
is refused at start (ConfigError), as is a file that cannot be read: started anyway, the server
would append to it and remove it once its own records were written, and what it held would be lost
unread.

A file that cannot be written (the disk full as well) leaves the record in memory, as before,
logged; a line that cannot be read back (cut short by a power cut) is skipped and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import fcntl
import hmac
import json
import logging
import math
import os
import stat
from collections import deque
from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path
from typing import Any

from tandem import metrics
from tandem.exceptions import ConfigError
from tandem.files import read_file
from tandem.private_files import FILE_MODE, private_directory

log = logging.getLogger("tandem.audit")

BACKLOG_FILE = "audit-backlog.jsonl"
WRITTEN_FILE = "audit-backlog.written"
LOCK_FILE = "audit-backlog.lock"
REFUSED_FILE = "audit-backlog.refused"
"""Where the lines :meth:`AuditBacklog.load` refused are kept, as they were, for the operator:
evidence of tampering, or genuine records made with an audit key since replaced."""

Held = tuple[float, str, dict[str, Any]]
"""A record held: when it was done, its action, its fields (as ``AuditLog.record`` takes them)."""


@dataclasses.dataclass(slots=True)
class _Entry:
    held: Held
    line: int | None = None
    """Its line of the file, counted from 1 (None: not yet, or not if the disk refused it)."""
    done: bool = False
    """Written to the database (or refused for good): dropped from the backlog."""


_OWN_FILE = os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
"""How this module opens its files: never through a symbolic link someone who can write the data
directory put there (the server appended to, chmod-ed or truncated whatever file it named), and
never waiting on a FIFO put there."""


def _open_own(path: Path, flags: int) -> int:
    """A descriptor of the regular file ``path`` (created 0600, tightened to it); OSError for
    a symbolic link, a hard link to another name, or anything but a regular file."""
    if not path.parent.exists():
        private_directory(path.parent)
    descriptor = os.open(path, flags | _OWN_FILE, FILE_MODE)
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode) or status.st_nlink != 1:
            raise OSError(errno.EINVAL, "not a regular file of its own", str(path))
        os.fchmod(descriptor, FILE_MODE)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _append(path: Path, line: bytes) -> None:
    """Append ``line`` to ``path`` and flush it to the disk; OSError if the disk refuses it,
    and then the file is cut back to what it was: a line part written (a full disk), or whole
    but unflushed (an fsync's ENOSPC or EIO), took the number the next line is written with,
    and that line and every one after it were refused at the next start as moved."""
    descriptor = _open_own(path, os.O_WRONLY | os.O_APPEND)
    try:
        before = os.fstat(descriptor).st_size
        try:
            view = memoryview(line)
            while view:
                wrote = os.write(descriptor, view)
                if not wrote:  # never loop on a file system that takes nothing
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
                view = view[wrote:]
            os.fsync(descriptor)
        except OSError:
            with contextlib.suppress(OSError):  # a disk refusing this too: the lines after it are
                # refused at the next start, as before
                os.ftruncate(descriptor, before)
                os.fsync(descriptor)
            raise
    finally:
        os.close(descriptor)


def line_mac(key: bytes, number: int, record: bytes) -> str:
    """The MAC of ``record`` (its JSON) as line ``number`` of the file, with ``key``
    (:func:`tandem.audit.backlog_mac_key`)."""
    return hmac.new(key, b"tandem-audit-backlog|%d|" % number + record, sha256).hexdigest()


REFUSED_NAMED = 100
"""Refused lines named one by one (logged, and in the ``audit_backlog_refused`` record)."""


def _lines_of(data: bytes, skip: int) -> Iterator[tuple[int, bytes]]:
    """The lines of ``data`` after the first ``skip``, with their numbers (from 1), one at a
    time: split at once, a file of empty lines made millions of objects."""
    start, number = 0, 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        number += 1
        if number > skip:
            yield number, data[start:end]
        start = end + 1


def _record(line: bytes) -> Held:
    """A line's record (ValueError or TypeError if it is not one)."""
    at, action, fields = json.loads(line)
    if not (isinstance(action, str) and isinstance(fields, dict) and math.isfinite(float(at))):
        raise ValueError("not a record")
    return float(at), action, fields


def _read(path: Path, max_bytes: int) -> bytes | None:
    """The file at ``path`` (None if there is none); ConfigError if it cannot be taken up."""
    try:
        return read_file(path, max_bytes)
    except FileNotFoundError:
        return None
    except OSError as exc:
        why = (
            f"it is larger than audit_backlog_max_bytes ({max_bytes}); a server never writes "
            "one that large"
            if exc.errno == errno.EFBIG
            else exc.strerror
        )
        raise ConfigError(
            f"the audit backlog {path} cannot be taken up: {why}. Its records are not on the "
            "audit trail: move it away (and keep it for your auditors) to start"
        ) from None


def check(directory: Path, max_bytes: int) -> None:
    """ConfigError if the backlog left in ``directory`` cannot be taken up at start (before the
    server serves: its own start would stop on it with a traceback)."""
    _read(directory / BACKLOG_FILE, max_bytes)


class AuditBacklog:
    """Records held until the database takes them, oldest first; kept in ``directory`` too
    (None: in memory only, for a caller without a data directory), each line with a MAC made
    with ``key``; the file is at most ``max_bytes``."""

    def __init__(self, directory: Path | None, key: bytes, max_bytes: int) -> None:
        self._held: deque[_Entry] = deque()
        self._writing = asyncio.Lock()
        """One write to the file at a time, in the order the records were held."""
        self._directory = directory
        self._path = directory / BACKLOG_FILE if directory is not None else None
        self._written_path = directory / WRITTEN_FILE if directory is not None else None
        self._key = key
        self._max_bytes = max_bytes
        self._lock: int | None = None
        """The descriptor of the locked ``audit-backlog.lock`` while this process keeps the file."""
        self._lines = 0
        """Lines of the file (the last may be cut short, and is then ended before the next)."""
        self._size = 0
        self._written = 0
        """Lines of the file written to the database (or skipped): the file's first lines."""
        self.refused: list[int] = []
        """Lines of the file :meth:`load` refused (the first ``REFUSED_NAMED``): cut short,
        altered or not written by a holder of the audit key."""
        self.refused_count = 0
        """How many lines :meth:`load` refused in all."""

    def __bool__(self) -> bool:
        return bool(self._held)

    def __len__(self) -> int:
        return len(self._held)

    def _claim(self) -> bool:
        """Lock the file for this process; False (logged, then in memory only) if another
        process on this data directory keeps it."""
        if self._lock is not None:
            return True
        if self._directory is None:
            return False
        path = self._directory / LOCK_FILE
        try:
            descriptor = _open_own(path, os.O_RDWR)
        except OSError as exc:
            log.error("the audit backlog's lock %s cannot be made: %s", path, exc.strerror)
            self._path = self._written_path = None
            return False
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(descriptor)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                log.error("the audit backlog's lock %s cannot be taken: %s", path, exc.strerror)
            else:
                log.warning(
                    "another server keeps its audit backlog in %s: this one holds the audit "
                    "records the database refuses in memory only (give each server a data "
                    "directory of its own)",
                    self._directory,
                )
            self._path = self._written_path = None
            return False
        self._lock = descriptor
        return True

    def close(self) -> None:
        """Let another process keep the file (this one stops, or died)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def load(self) -> int:
        """Take up what a process before this one left (killed before the database answered);
        the number of records loaded. A line that is cut short or whose MAC is wrong is skipped
        and logged (its number in :attr:`refused`). ConfigError for a file that cannot be read
        or is larger than ``max_bytes``."""
        if not self._claim() or self._path is None or self._written_path is None:
            return 0
        data = _read(self._path, self._max_bytes)
        if data is None:
            return 0
        written = 0
        with contextlib.suppress(FileNotFoundError, ValueError, OSError):
            written = int(read_file(self._written_path, 64).decode().strip() or 0)
        count = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
        self._lines = count
        self._size = len(data)
        self._written = max(0, min(written, count))
        loaded = 0
        refused = bytearray()
        for number, line in _lines_of(data, self._written):
            mac, _, record = line.partition(b" ")
            try:
                if not hmac.compare_digest(mac, line_mac(self._key, number, record).encode()):
                    raise ValueError("wrong MAC")
                held = _record(record)
            except (ValueError, TypeError) as exc:
                self.refused_count += 1
                if len(self.refused) < REFUSED_NAMED:  # a file of empty lines: one log line
                    self.refused.append(number)
                    log.error("the audit backlog %s: line %d refused (%s)", self._path, number, exc)
                refused += line + b"\n"
                continue
            self._held.append(_Entry(held, line=number))
            loaded += 1
        if self.refused_count > len(self.refused):
            log.error(
                "the audit backlog %s: %d lines refused in all",
                self._path,
                self.refused_count,
            )
        metrics.AUDIT_RECORDS_HELD.set(len(self._held))
        if refused:  # kept before the backlog goes (written, or nothing left to write)
            try:
                _append(self._path.with_name(REFUSED_FILE), bytes(refused))
            except OSError as exc:
                log.error("the refused lines of the audit backlog cannot be kept: %s", exc)
        if loaded:
            log.warning("audit records held by an earlier process, to be written: %d", loaded)
            if not data.endswith(b"\n"):  # cut short: the next line starts on a line of its own
                try:
                    _append(self._path, b"\n")
                    self._size += 1
                except OSError as exc:
                    log.error("the audit backlog %s cannot be written: %s", self._path, exc)
                    self._path = self._written_path = None
        elif data:
            self._remove_files()
        return loaded

    async def hold(self, at: float, action: str, fields: dict[str, Any]) -> None:
        """Keep a record the database refused (or that waits behind one): in memory at once,
        and on the disk (flushed, off the event loop) before this returns; logged if the disk
        refuses it too, or if the file would grow past ``max_bytes`` (then in memory only)."""
        entry = _Entry((at, action, fields))
        self._held.append(entry)
        metrics.AUDIT_RECORDS_HELD.set(len(self._held))
        if self._path is None or not self._claim():
            return
        record = json.dumps([at, action, fields], default=str, separators=(",", ":")).encode()
        async with self._writing:
            path = self._path
            if path is None:
                return
            number = self._lines + 1
            line = line_mac(self._key, number, record).encode() + b" " + record + b"\n"
            if self._size + len(line) > self._max_bytes:
                log.error(
                    "the audit backlog %s would grow past audit_backlog_max_bytes (%d): an audit "
                    "record the database refused is held in memory only, lost if this process "
                    "dies before the database answers",
                    path,
                    self._max_bytes,
                )
                return
            try:
                await asyncio.to_thread(_append, path, line)
            except OSError as exc:
                log.error(
                    "an audit record the database refused cannot be kept on disk either (%s): "
                    "held in memory only, lost if this process dies before the database answers",
                    exc.strerror,
                )
                return
            self._lines = number
            self._size += len(line)
        entry.line = number
        if entry.done:  # written to the database while its line was on its way to the disk
            self._settle(entry)

    def first(self) -> Held:
        """The oldest record held (IndexError if none)."""
        return self._held[0].held

    def written(self) -> None:
        """The oldest record was written to the database (or refused for good): drop it."""
        entry = self._held.popleft()
        entry.done = True
        metrics.AUDIT_RECORDS_HELD.set(len(self._held))
        self._settle(entry)

    def _settle(self, entry: _Entry) -> None:
        """Count ``entry``, written, as written in the file (or remove the files once none is
        held): when it is dropped, or once its line is on the disk if it was dropped before."""
        if self._path is None or self._written_path is None:
            return
        if not self._held and not self._writing.locked():
            self._remove_files()
            return
        # A record whose line is not on the disk (yet) is not counted: at worst, a process
        # killed later writes it once more, never skips another. Counted by line, not record:
        # a line refused at load is skipped with those before it, never written again.
        if entry.line is None or entry.line <= self._written:
            return
        self._written = entry.line
        try:
            scratch = self._written_path.with_suffix(".tmp")
            with contextlib.suppress(FileNotFoundError):
                scratch.unlink()  # whatever is there (a link to another file): never truncated
            fd = _open_own(scratch, os.O_WRONLY | os.O_EXCL)
            with os.fdopen(fd, "w") as file:
                file.write(str(self._written))
            os.replace(scratch, self._written_path)
        except OSError as exc:  # at worst, written once more by the next process
            log.error("the audit backlog's count cannot be kept: %s", exc.strerror)

    def _remove_files(self) -> None:
        self._written = self._lines = self._size = 0
        for path in (self._path, self._written_path):
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
