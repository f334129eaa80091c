"""The audit records kept on the disk while the database refuses them (tandem.audit_backlog)."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import stat
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import pytest

from tandem import audit_backlog, metrics
from tandem.audit_backlog import (
    BACKLOG_FILE,
    HEADER,
    REFUSED_FILE,
    WRITTEN_FILE,
    AuditBacklog,
    legacy_line_mac,
    line_mac,
)
from tandem.exceptions import ConfigError

KEY = b"k" * 32
LIMIT = 1 << 20


def backlog(directory: Path, key: bytes = KEY, max_bytes: int = LIMIT) -> AuditBacklog:
    return AuditBacklog(directory, key, max_bytes)


def header(directory: Path) -> bytes:
    """The file's first line (its id), ended."""
    return (directory / BACKLOG_FILE).read_bytes().splitlines(keepends=True)[0]


def file_id(directory: Path) -> str:
    return header(directory).removeprefix(HEADER).strip().decode()


def lines(directory: Path) -> list[bytes]:
    """The file's lines after its header."""
    return (directory / BACKLOG_FILE).read_bytes().splitlines()[1:]


def append(directory: Path, line: bytes) -> None:
    with (directory / BACKLOG_FILE).open("ab") as file:
        file.write(line)


async def test_records_held_are_taken_up_by_the_next_process_in_order(tmp_path: Path) -> None:
    held = backlog(tmp_path)
    await held.hold(1.0, "user_disabled", {"actor": "ada", "org": "default", "subject": "bob"})
    await held.hold(2.0, "site_deleted", {"actor": "ada", "org": "default", "subject": "demo"})
    assert stat.S_IMODE((tmp_path / BACKLOG_FILE).stat().st_mode) == 0o600
    held.close()  # the process dies; the next one loads both, oldest first
    after = backlog(tmp_path)
    assert after.load() == 2
    assert after.first() == (
        1.0,
        "user_disabled",
        {"actor": "ada", "org": "default", "subject": "bob"},
    )


async def test_a_record_written_before_the_process_died_is_not_taken_up_again(
    tmp_path: Path,
) -> None:
    held = backlog(tmp_path)
    await held.hold(1.0, "user_disabled", {"org": "default"})
    await held.hold(2.0, "user_enabled", {"org": "default"})
    held.written()  # the first went to the database, then the process died
    held.close()
    after = backlog(tmp_path)
    assert after.load() == 1
    assert after.first()[1] == "user_enabled"
    assert metrics.AUDIT_RECORDS_HELD._value.get() == 1  # operators see what waits
    after.written()
    assert not after
    assert metrics.AUDIT_RECORDS_HELD._value.get() == 0
    assert not (tmp_path / BACKLOG_FILE).exists() and not (tmp_path / WRITTEN_FILE).exists()


async def test_a_line_cut_short_is_skipped_and_the_rest_taken_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    held = backlog(tmp_path)
    await held.hold(1.0, "user_disabled", {"org": "default"})
    held.close()
    append(tmp_path, lines(tmp_path)[0][:40])  # a power cut mid-line
    (tmp_path / WRITTEN_FILE).write_text("not a number")
    after = backlog(tmp_path)
    assert after.load() == 1
    assert "line 2 refused" in caplog.text
    assert after.refused == [2]


async def test_a_record_held_after_a_line_cut_short_is_taken_up_by_the_next_process(
    tmp_path: Path,
) -> None:
    """The line cut short had no end: the next record was appended to it, and both were lost."""
    held = backlog(tmp_path)
    await held.hold(1.0, "user_disabled", {"org": "default"})
    held.close()
    append(tmp_path, lines(tmp_path)[0][:40])
    after = backlog(tmp_path)
    assert after.load() == 1
    await after.hold(2.0, "user_enabled", {"org": "default"})
    after.close()
    third = backlog(tmp_path)
    assert third.load() == 2
    third.written()
    assert third.first()[1] == "user_enabled"


async def test_a_line_written_without_the_audit_key_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever the next start takes up it seals into the trail as genuine: a line someone who
    can write the data directory (but has not the audit key) adds, with any actor, time or
    organisation, is refused, never appended."""
    held = backlog(tmp_path)
    await held.hold(1.0, "user_disabled", {"actor": "ada", "org": "default", "subject": "bob"})
    held.close()
    forged = b'[0.5,"user_enabled",{"actor":"ada","org":"acme","subject":"mallory"}]'
    mac = line_mac(b"x" * 32, file_id(tmp_path), 2, forged)
    append(tmp_path, mac.encode() + b" " + forged + b"\n")
    append(tmp_path, forged + b"\n")  # and one without a MAC at all
    after = backlog(tmp_path)
    assert after.load() == 1
    assert after.refused == [2, 3]
    assert after.first()[2]["subject"] == "bob"
    after.written()
    assert not after
    assert not (tmp_path / BACKLOG_FILE).exists()
    # Kept as they were, for the operator (tampering, or genuine lines of a replaced audit key).
    kept = (tmp_path / REFUSED_FILE).read_bytes().splitlines()
    assert len(kept) == 2 and kept[1] == forged


async def test_a_line_altered_or_moved_is_refused(tmp_path: Path) -> None:
    held = backlog(tmp_path)
    await held.hold(1.0, "user_disabled", {"actor": "ada", "org": "default", "subject": "bob"})
    await held.hold(2.0, "user_enabled", {"actor": "ada", "org": "default", "subject": "bob"})
    held.close()
    first, second = lines(tmp_path)
    altered = first.replace(b'"actor":"ada"', b'"actor":"eve"')
    # The first altered, the second moved up (its MAC names line 2), the first again (replayed).
    (tmp_path / BACKLOG_FILE).write_bytes(
        header(tmp_path) + altered + b"\n" + second + b"\n" + first + b"\n"
    )
    after = backlog(tmp_path)
    assert after.load() == 1
    assert after.refused == [1, 3]
    assert after.first()[1] == "user_enabled"


async def test_a_refused_line_does_not_make_a_written_record_be_taken_up_again(
    tmp_path: Path,
) -> None:
    """The count kept beside the file counts lines: counting records, a refused first line made
    the next start take up a record written already (twice on the trail)."""
    held = backlog(tmp_path)
    await held.hold(1.0, "user_disabled", {"org": "default"})
    await held.hold(2.0, "user_enabled", {"org": "default"})
    await held.hold(3.0, "site_deleted", {"org": "default"})
    held.close()
    _, second, third = lines(tmp_path)
    (tmp_path / BACKLOG_FILE).write_bytes(
        header(tmp_path) + b"garbage\n" + second + b"\n" + third + b"\n"
    )
    after = backlog(tmp_path)
    assert after.load() == 2
    after.written()  # user_enabled went to the database, then the process died
    after.close()
    last = backlog(tmp_path)
    assert last.load() == 1
    assert last.first()[1] == "site_deleted"


def test_a_backlog_larger_than_its_limit_is_refused_at_start_unread(tmp_path: Path) -> None:
    (tmp_path / BACKLOG_FILE).write_bytes(b"x" * 2048)
    with pytest.raises(ConfigError, match="audit_backlog_max_bytes"):
        backlog(tmp_path, max_bytes=1024).load()
    assert (tmp_path / BACKLOG_FILE).exists()  # left for the operator, never removed


def test_a_backlog_that_cannot_be_read_is_refused_at_start(tmp_path: Path) -> None:
    """Started anyway, the server appended to it and removed it once its own records were
    written: what it held was lost unread."""
    (tmp_path / BACKLOG_FILE).mkdir()
    with pytest.raises(ConfigError, match="cannot be taken up"):
        backlog(tmp_path).load()


async def test_the_backlog_stops_growing_at_its_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    held = backlog(tmp_path, max_bytes=200)
    await held.hold(1.0, "user_disabled", {"org": "default"})
    await held.hold(2.0, "user_enabled", {"org": "default", "why": "x" * 200})
    assert len(held) == 2  # both in memory
    assert len(lines(tmp_path)) == 1
    assert "audit_backlog_max_bytes" in caplog.text


@pytest.mark.parametrize("fault", ["fsync", "write"])
async def test_records_held_after_the_disk_refused_one_are_taken_up_by_the_next_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    held = backlog(tmp_path)
    await held.hold(1.0, "user_disabled", {"org": "default"})
    real_write, real_fsync = os.write, os.fsync

    def half_written(descriptor: int, data: memoryview | bytes) -> int:
        real_write(descriptor, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    def unflushed(descriptor: int) -> None:  # the line is in the file; the disk says ENOSPC
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as faults:
        if fault == "write":
            faults.setattr(audit_backlog.os, "write", half_written)
        else:
            faults.setattr(audit_backlog.os, "fsync", unflushed)
        await held.hold(2.0, "user_enabled", {"org": "default"})
    assert os.write is real_write and os.fsync is real_fsync
    assert "cannot be kept on disk either" in caplog.text  # in memory only, said so
    await held.hold(3.0, "site_deleted", {"org": "default"})  # space again
    await held.hold(4.0, "site_created", {"org": "default"})
    held.close()  # the process dies before the database answers
    after = backlog(tmp_path)
    # Each line the disk took is taken up: the one it refused left nothing in the file that
    # moved the next (they were refused as moved, every one after the fault).
    assert after.load() == 3
    assert after.refused_count == 0
    actions = []
    while after:
        actions.append(after.first()[1])
        after.written()
    assert actions == ["user_disabled", "site_deleted", "site_created"]


async def test_a_second_server_on_the_data_directory_leaves_the_first_ones_backlog_alone(
    tmp_path: Path,
) -> None:
    """Several servers on PostgreSQL may share a data directory: each took up what the others
    held (twice on the trail) and removed their file once its own records were written."""
    first = backlog(tmp_path)
    assert first.load() == 0
    await first.hold(1.0, "user_disabled", {"org": "default"})
    second = backlog(tmp_path)
    assert second.load() == 0
    await second.hold(2.0, "user_enabled", {"org": "default"})
    second.written()
    assert len(lines(tmp_path)) == 1  # the first's record is still kept
    first.close()
    third = backlog(tmp_path)
    assert third.load() == 1
    assert third.first()[1] == "user_disabled"


async def test_a_file_system_that_takes_nothing_is_a_refusing_disk_not_a_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    def takes_nothing(descriptor: int, data: memoryview | bytes) -> int:
        nonlocal calls
        calls += 1
        if calls > 100:
            raise AssertionError("write called again and again on a file that takes nothing")
        return 0

    held = backlog(tmp_path)
    monkeypatch.setattr(audit_backlog.os, "write", takes_nothing)
    await held.hold(1.0, "user_disabled", {"org": "default"})
    assert calls == 1 and len(held) == 1  # in memory, said so
    assert "cannot be kept on disk either" in caplog.text


HOLDER = """
import asyncio, sys
from pathlib import Path
from tandem.audit_backlog import AuditBacklog

held = AuditBacklog(Path(sys.argv[1]), b"k" * 32, 1 << 20)
held.load()
asyncio.run(held.hold(1.0, "user_disabled", {"org": "default"}))
print("held", flush=True)
sys.stdin.read()  # until killed
"""


async def test_the_lock_of_a_server_killed_is_taken_over_by_the_next_start(tmp_path: Path) -> None:
    """``audit-backlog.lock`` stays in the data directory after a SIGKILL; its lock does not
    (flock goes with the process), so the next server keeps the file, and takes up what the
    killed one held, rather than every later one keeping its records in memory only."""
    source = str(Path(audit_backlog.__file__).parents[1])
    environment = {**os.environ, "PYTHONPATH": source}
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=environment,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"held\n"
        alive = backlog(tmp_path)
        assert alive.load() == 0  # the holder keeps it while it runs
        alive.close()
    finally:
        process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
    assert process.returncode == -signal.SIGKILL
    assert (tmp_path / audit_backlog.LOCK_FILE).exists()
    after = backlog(tmp_path)
    assert after.load() == 1
    assert after.first()[1] == "user_disabled"
    await after.hold(2.0, "user_enabled", {"org": "default"})
    # kept on the disk, not in memory only (under a header of its own: the file was taken up)
    assert len([line for line in lines(tmp_path) if not line.startswith(HEADER)]) == 2


async def test_links_in_the_data_directory_never_make_the_backlog_write_another_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Someone who can write the data directory links the backlog's names to a file the server
    may write elsewhere: it appended records to it (and made it 0600), and truncated it for the
    count kept beside the backlog."""
    data = tmp_path / "data"
    data.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    (data / BACKLOG_FILE).symlink_to(victim)
    held = backlog(data)
    await held.hold(1.0, "user_disabled", {"org": "default"})
    assert len(held) == 1  # in memory, logged
    assert "cannot be kept on disk either" in caplog.text
    (data / BACKLOG_FILE).unlink()
    await held.hold(2.0, "user_enabled", {"org": "default"})
    await held.hold(3.0, "site_deleted", {"org": "default"})
    (data / "audit-backlog.tmp").symlink_to(victim)
    held.written()  # the first, in memory only: nothing to count
    held.written()  # the file's first line: counted beside it, through its scratch file
    assert (data / WRITTEN_FILE).read_text() == "1"
    os.link(data / BACKLOG_FILE, tmp_path / "other-name")
    await held.hold(4.0, "site_added", {"org": "default"})
    assert len(lines(data)) == 2  # a file with another name is not appended to either
    assert victim.read_text() == "precious\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644


async def test_a_record_written_while_its_line_was_on_its_way_is_not_taken_up_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database answered (the timer wrote the record) while the record's line was still on
    its way to the disk: the line stayed in the file, counted as written by nobody, and every
    later start (a clean stop too) wrote the record again."""
    on_its_way, arrive = threading.Event(), threading.Event()
    append = audit_backlog._append

    def slow_append(path: Path, line: bytes) -> None:
        on_its_way.set()
        arrive.wait()
        append(path, line)

    monkeypatch.setattr(audit_backlog, "_append", slow_append)
    held = backlog(tmp_path)
    holding = asyncio.create_task(held.hold(1.0, "user_disabled", {"org": "default"}))
    await asyncio.to_thread(on_its_way.wait)
    held.written()  # the timer wrote it meanwhile
    arrive.set()
    await holding
    assert not held
    held.close()  # the process stops
    assert backlog(tmp_path).load() == 0


EMPTY_LINES = 50_000


def test_a_backlog_of_empty_lines_is_refused_in_bounded_memory_and_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file of 50 000 empty lines (within the limit): split at once it made as many objects,
    and each line refused was a log line of its own (319 MB for 200 000 lines; 50 000 are
    enough to show it against the bound below, at a quarter of the CPU under tracemalloc)."""
    (tmp_path / BACKLOG_FILE).write_bytes(b"\n" * EMPTY_LINES)
    after = backlog(tmp_path)
    tracemalloc.start()
    try:
        assert after.load() == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # the file and the lines kept aside (0.05 MB each), no more
    assert len(caplog.records) <= 101
    assert after.refused_count == EMPTY_LINES
    assert after.refused == list(range(1, 101))


async def test_a_line_of_another_backlog_file_is_refused(tmp_path: Path) -> None:
    """A line's MAC bound it to its number only: a genuine line of one file (another server's,
    or an earlier one) put at its number in another passed as that file's own."""
    one, other = tmp_path / "one", tmp_path / "other"
    first = backlog(one)
    await first.hold(1.0, "user_disabled", {"org": "default", "subject": "bob"})
    first.close()
    second = backlog(other)
    await second.hold(2.0, "user_enabled", {"org": "default", "subject": "bob"})
    second.close()
    assert file_id(one) != file_id(other)
    (other / BACKLOG_FILE).write_bytes(header(other) + lines(one)[0] + b"\n")
    after = backlog(other)
    assert after.load() == 0
    assert after.refused == [1]


async def test_a_backlog_left_by_a_tandem_before_file_ids_is_taken_up(tmp_path: Path) -> None:
    """A file an older Tandem left (no header, lines MACed by number) is taken up after the
    upgrade, with the records this one holds after it (under an id of their own), under the
    same ids at every start."""
    record = b'[1.0,"user_disabled",{"org":"default"}]'
    mac = legacy_line_mac(KEY, 1, record).encode()
    (tmp_path / BACKLOG_FILE).write_bytes(mac + b" " + record + b"\n")
    before = backlog(tmp_path)
    assert before.load() == 1
    await before.hold(2.0, "user_enabled", {"org": "default"})
    name, number = await before.first_line() or ("", 0)
    assert name.startswith("v1-") and number == 1
    before.close()
    after = backlog(tmp_path)
    assert after.load() == 2
    assert await after.first_line() == (name, 1)
    after.written()
    appended, number = await after.first_line() or ("", 0)
    assert number == 3 and len(appended) == 32 and appended != name  # line 2: its header


async def test_a_line_whose_holder_was_cancelled_is_still_known_once_on_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller holding a record (a socket's close) is cancelled while its line is on its way
    to the disk: the worker thread wrote it all the same, but nobody knew its number, so the
    database could not note it with its record, nor the count count it: the next start wrote it
    again."""
    on_its_way, arrive = threading.Event(), threading.Event()
    append = audit_backlog._append

    def slow_append(path: Path, line: bytes) -> None:
        on_its_way.set()
        arrive.wait()
        append(path, line)

    monkeypatch.setattr(audit_backlog, "_append", slow_append)
    held = backlog(tmp_path)
    holding = asyncio.create_task(held.hold(1.0, "user_disabled", {"org": "default"}))
    await asyncio.to_thread(on_its_way.wait)
    holding.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holding
    arrive.set()
    line = await held.first_line()
    assert line is not None, "its line is on the disk, its number unknown"
    assert line == (file_id(tmp_path), 1)
    held.written()
    held.close()
    assert backlog(tmp_path).load() == 0


@pytest.mark.parametrize("header_change", ["another id", "no header"])
async def test_a_file_given_another_id_or_none_is_refused(
    tmp_path: Path, header_change: str
) -> None:
    """Held: the file's id is under every line's MAC, so giving a taken-up file a new id (for
    the database's notes not to match) or stripping it (to pass as a file of an older Tandem)
    leaves no line that passes."""
    held = backlog(tmp_path)
    await held.hold(1.0, "user_disabled", {"org": "default"})
    await held.hold(2.0, "user_enabled", {"org": "default"})
    held.close()
    body = b"".join(line + b"\n" for line in lines(tmp_path))
    renamed = HEADER + b"0" * 32 + b"\n" if header_change == "another id" else b""
    (tmp_path / BACKLOG_FILE).write_bytes(renamed + body)
    after = backlog(tmp_path)
    assert after.load() == 0
    assert after.refused == [1, 2]


async def test_lines_appended_to_a_file_taken_up_are_bound_to_a_header_of_their_own(
    tmp_path: Path,
) -> None:
    """Each process that takes the file up appends its lines under a header of its own (a new
    id): the next start takes every line up under the id it was written with; a header line
    given another id (the file's first, another process's) or removed leaves the lines it
    named refused, never taken up under another id."""
    for at in range(1, 4):
        held = backlog(tmp_path)
        assert held.load() == at - 1
        await held.hold(float(at), "user_disabled", {"org": "default"})
        held.close()
    data = (tmp_path / BACKLOG_FILE).read_bytes()
    first, second, third = (line for line in data.splitlines() if line.startswith(HEADER))
    after = backlog(tmp_path)
    assert after.load() == 3
    taken = []
    while after:
        taken.append(await after.first_line())
        after.written()
    after.close()
    ids = [line.removeprefix(HEADER).decode() for line in (first, second, third)]
    assert taken == [(ids[0], 1), (ids[1], 3), (ids[2], 5)]
    for tampered, refused in (
        (data.replace(second, first), [3]),
        (data.replace(second, third), [3]),
        (data.replace(second + b"\n", b""), [2, 4]),
    ):
        (tmp_path / BACKLOG_FILE).write_bytes(tampered)
        (tmp_path / WRITTEN_FILE).unlink(missing_ok=True)
        again = backlog(tmp_path)
        again.load()
        assert again.refused == refused
        kept = []
        while again:
            kept.append(again.first()[0])
            again.written()
        again.close()
        assert 2.0 not in kept


@pytest.mark.parametrize("cut", ["after_the_header", "in_the_first_line"])
async def test_a_process_killed_between_its_header_and_its_first_line_loses_no_record(
    tmp_path: Path, cut: str
) -> None:
    """A process that took the file up is killed as it appends its header and first line (one
    write, cut short by the kill or a power cut): the header alone, or with part of its line.
    The next start takes the earlier lines up, refuses the cut line only, and its own record
    and every one before are taken up at the start after (held)."""
    first = backlog(tmp_path)
    assert first.load() == 0
    await first.hold(1.0, "user_disabled", {"org": "default"})
    first.close()
    taker = backlog(tmp_path)
    assert taker.load() == 1
    await taker.hold(2.0, "user_enabled", {"org": "default"})
    taker.close()
    data = (tmp_path / BACKLOG_FILE).read_bytes()
    last_header = data.rindex(HEADER)
    header_end = data.index(b"\n", last_header) + 1
    # the write cut short: after the header's newline, or half-way through its line
    cut_at = header_end if cut == "after_the_header" else (header_end + len(data)) // 2
    (tmp_path / BACKLOG_FILE).write_bytes(data[:cut_at])
    again = backlog(tmp_path)
    assert again.load() == 1
    assert again.refused == ([] if cut == "after_the_header" else [3])
    await again.hold(3.0, "user_deleted", {"org": "default"})
    again.close()
    last = backlog(tmp_path)
    assert last.load() == 2
    kept = []
    while last:
        kept.append(last.first()[:2])
        last.written()
    last.close()
    assert kept == [(1.0, "user_disabled"), (3.0, "user_deleted")]
