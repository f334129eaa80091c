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
it (``audit-backlog.written``), so a process killed while writing them takes up only the lines
after it (the database refuses the others: below); the files go once the backlog is empty.

Each file starts with a line naming it by a random id (:data:`HEADER`), and each line after it
carries a MAC made with a subkey of the audit key (:func:`tandem.audit.backlog_mac_key`) over that
id, its number and its record: the next start seals what it loads into the trail as genuine, so a
line written or altered by someone without the key (any actor, time or organisation), or moved to
another place in the file or into another file, is refused, logged, counted in an
``audit_backlog_refused`` record, and kept as it was in ``audit-backlog.refused`` for the
operator. The database notes each line (file id, number) in the transaction that writes its
record (``audit_backlog_lines``), so a line whose record is on the trail already (a whole earlier
file put back, one copied from another server's data directory, which shares the audit key, or a
line a killed server wrote but did not count) is refused by the database, never written twice,
and reported in an ``audit_backlog_replayed`` record. A record the hub kept carries its own
identity (:data:`tandem.audit.WRITE_ID`, made before its first try, under its line's MAC), which
the database notes instead of the line: a try whose COMMIT landed while its caller was told it
failed (cancelled, or the answer lost) is then on the trail, and the record kept is refused as
written, whether from the file or from memory only. A process that takes up a file and appends
to it begins its own lines with a header line of their own (a new random id, the lines after it
bound to it): lines appended under the id of the file taken up were refused as written when that
file was an earlier one's first lines put back (its later lines noted already under those
numbers), and genuine records were lost. The count beside the file
(``audit-backlog.written``) only spares the next start those refusals: it is replaced, not
flushed, and one lost to a power cut costs an ``audit_backlog_replayed`` record, never a record
written twice. A file left by a Tandem before file ids (no header) is taken up as then, its lines
bound to their number only. One process keeps the file at a time
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
import re
import secrets
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
HEADER = b"tandem-audit-backlog/2 "
"""How a file's first line starts: then its id (32 hex digits), under every line's MAC."""
_HEADER_LINE = re.compile(rb"tandem-audit-backlog/2 ([0-9a-f]{32})")
"""Where the lines :meth:`AuditBacklog.load` refused are kept, as they were, for the operator:
evidence of tampering, or genuine records made with an audit key since replaced."""

Held = tuple[float, str, dict[str, Any]]
"""A record held: when it was done, its action, its fields (as ``AuditLog.record`` takes them)."""


@dataclasses.dataclass(slots=True)
class _Entry:
    held: Held
    line: int | None = None
    """Its line of the file, counted from 1 (None: not yet, or not if the disk refused it)."""
    file: str = ""
    """The id of the file its line is in."""
    done: bool = False
    """Written to the database (or refused for good): dropped from the backlog."""
    settled: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    """Set once its line is on the disk, or known never to be (the database may note it)."""


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


def line_mac(key: bytes, file_id: str, number: int, record: bytes) -> str:
    """The MAC of ``record`` (its JSON) as line ``number`` of the file ``file_id``, with ``key``
    (:func:`tandem.audit.backlog_mac_key`)."""
    message = b"tandem-audit-backlog/2|%s|%d|" % (file_id.encode(), number) + record
    return hmac.new(key, message, sha256).hexdigest()


def legacy_line_mac(key: bytes, number: int, record: bytes) -> str:
    """The MAC of line ``number`` of a file written before file ids (still taken up)."""
    return hmac.new(key, b"tandem-audit-backlog|%d|" % number + record, sha256).hexdigest()


def _file_of(data: bytes) -> tuple[str, bytes, bool]:
    """A file's id, its lines after the header, and whether it was written before file ids
    (then its id is made from its first line, so that it is the same at every start)."""
    end = data.find(b"\n")
    first = data if end < 0 else data[:end]
    named = _HEADER_LINE.fullmatch(first)
    if named is not None:
        return named.group(1).decode(), data[len(first) + 1 :], False
    return "v1-" + sha256(first).hexdigest()[:32], data, True


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
        self._keeping: set[asyncio.Task[None]] = set()
        """Lines on their way to the disk (:meth:`hold`)."""
        self._directory = directory
        self._path = directory / BACKLOG_FILE if directory is not None else None
        self._written_path = directory / WRITTEN_FILE if directory is not None else None
        self._key = key
        self._max_bytes = max_bytes
        self._lock: int | None = None
        """The descriptor of the locked ``audit-backlog.lock`` while this process keeps the file."""
        self._file = ""
        """The file's id (:data:`HEADER`); "" until it has one."""
        self._legacy = False
        """Whether the file was written before file ids (its lines MACed by number only)."""
        self._taken_up = False
        """Whether the file was taken up from an earlier process (:meth:`load`): the lines this
        one appends begin with a header of their own, never under an id the database may have
        noted lines of already (an earlier file's first lines put back)."""
        self._lines = 0
        """Lines of the file after its header (the last may be cut short, and is then ended
        before the next)."""
        self._size = 0
        self._written = 0
        """Lines of the file written to the database (or skipped): the file's first lines."""
        self.refused: list[int] = []
        """Lines of the file :meth:`load` refused (the first ``REFUSED_NAMED``): cut short,
        altered or not written by a holder of the audit key."""
        self.refused_count = 0
        """How many lines :meth:`load` refused in all."""
        self.refused_kept = True
        """Whether the lines :meth:`load` refused are kept in ``audit-backlog.refused`` (False:
        the disk refused that too, and they are lost with the backlog once it is written)."""
        self._replayed: list[int] = []
        self._replayed_count = 0
        self._replayed_file = ""

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
        self._file, body, self._legacy = _file_of(data)
        count = body.count(b"\n") + (0 if body.endswith(b"\n") or not body else 1)
        self._lines = count
        self._size = len(data)
        self._written = max(0, min(written, count))
        loaded = 0
        refused = bytearray()
        # The lines after a header line in the file are bound to its id (lines a process that
        # took the file up appended); the first lines to the file's own.
        file_id, legacy = self._file, self._legacy
        for number, line in _lines_of(body, 0):
            named = _HEADER_LINE.fullmatch(line)
            if named is not None:
                file_id, legacy = named.group(1).decode(), False
                continue
            if number <= self._written:
                continue
            mac, _, record = line.partition(b" ")
            try:
                if not self._genuine(mac, file_id, legacy, number, record):
                    raise ValueError("wrong MAC")
                held = _record(record)
            except (ValueError, TypeError) as exc:
                self.refused_count += 1
                if len(self.refused) < REFUSED_NAMED:  # a file of empty lines: one log line
                    self.refused.append(number)
                    log.error("the audit backlog %s: line %d refused (%s)", self._path, number, exc)
                refused += line + b"\n"
                continue
            entry = _Entry(held, line=number, file=file_id)
            entry.settled.set()
            self._held.append(entry)
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
                self.refused_kept = False
                log.error("the refused lines of the audit backlog cannot be kept: %s", exc)
        if loaded:
            log.warning("audit records held by an earlier process, to be written: %d", loaded)
            self._taken_up = True
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

    def _genuine(self, mac: bytes, file_id: str, legacy: bool, number: int, record: bytes) -> bool:
        """Whether ``mac`` is line ``number``'s MAC of ``record`` under the id ``file_id``
        (``legacy``: the lines of a file written before file ids, MACed by number only)."""
        if hmac.compare_digest(mac, line_mac(self._key, file_id, number, record).encode()):
            return True
        # A file of a Tandem before file ids: its own lines, and those this one appended.
        old = legacy_line_mac(self._key, number, record).encode()
        return legacy and hmac.compare_digest(mac, old)

    async def hold(self, at: float, action: str, fields: dict[str, Any]) -> None:
        """Keep a record the database refused (or that waits behind one): in memory at once,
        and on the disk (flushed, off the event loop) before this returns; logged if the disk
        refuses it too, or if the file would grow past ``max_bytes`` (then in memory only)."""
        entry = _Entry((at, action, fields))
        self._held.append(entry)
        metrics.AUDIT_RECORDS_HELD.set(len(self._held))
        # Its own task: a caller cancelled meanwhile (a socket's close) does not stop the line
        # on its way to the disk, which the next start takes up, from being known and counted.
        keeping = asyncio.create_task(self._keep(entry))
        self._keeping.add(keeping)
        keeping.add_done_callback(self._keeping.discard)
        await asyncio.shield(keeping)

    async def _keep(self, entry: _Entry) -> None:
        try:
            await self._append_line(entry)
        finally:
            entry.settled.set()

    async def _append_line(self, entry: _Entry) -> None:
        """Append ``entry``'s line to the file (a new file begins with its header)."""
        if self._path is None or not self._claim():
            return
        at, action, fields = entry.held
        record = json.dumps([at, action, fields], default=str, separators=(",", ":")).encode()
        async with self._writing:
            path = self._path
            if path is None:
                return
            # A new file begins with its header; lines appended to a file taken up begin with a
            # header line of their own, which takes a number.
            named = not self._size or self._taken_up
            file_id = secrets.token_hex(16) if named else self._file
            header = HEADER + file_id.encode() + b"\n" if named else b""
            number = self._lines + (2 if self._size and named else 1)
            mac = line_mac(self._key, file_id, number, record).encode()
            line = header + mac + b" " + record + b"\n"
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
            self._file, self._taken_up = file_id, False
            self._lines = number
            self._size += len(line)
        entry.line, entry.file = number, file_id
        if entry.done:  # written to the database while its line was on its way to the disk
            self._settle(entry)

    def first(self) -> Held:
        """The oldest record held (IndexError if none)."""
        return self._held[0].held

    async def first_line(self) -> tuple[str, int] | None:
        """The file id and line number of the oldest record held, once its line is on the disk
        (None: in memory only), for the database to note with its record."""
        entry = self._held[0]
        await entry.settled.wait()
        return (entry.file, entry.line) if entry.line is not None else None

    def written_already(self) -> None:
        """The oldest record's line is on the trail already (the database noted it: its file
        put back or copied): drop it, and report it (:meth:`take_replayed`)."""
        entry = self._held[0]
        if entry.line is not None:
            self._replayed_count += 1
            self._replayed_file = self._replayed_file or entry.file
            if len(self._replayed) < REFUSED_NAMED:
                self._replayed.append(entry.line)
                log.error(
                    "the audit backlog %s: line %d is on the audit trail already (the file was "
                    "put back or copied, a server killed while writing it, or a write given up "
                    "on reached the database all the same): not written again",
                    entry.file,
                    entry.line,
                )
        else:
            log.warning(
                "an audit record held in memory (%s) is on the audit trail already (a write "
                "given up on reached the database all the same): not written again",
                entry.held[1],
            )
        self.written()

    def take_replayed(self) -> tuple[str, list[int], int] | None:
        """The lines :meth:`written_already` dropped since the last call (the first file's id,
        the first ``REFUSED_NAMED`` lines, how many in all), or None."""
        if not self._replayed_count:
            return None
        taken = (self._replayed_file, self._replayed, self._replayed_count)
        self._replayed, self._replayed_count, self._replayed_file = [], 0, ""
        return taken

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
        self._file, self._legacy, self._taken_up = "", False, False
        for path in (self._path, self._written_path):
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
