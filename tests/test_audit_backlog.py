"""The audit records kept on the disk while the database refuses them (tandem.audit_backlog)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tandem import metrics
from tandem.audit_backlog import BACKLOG_FILE, WRITTEN_FILE, AuditBacklog


async def test_records_held_are_taken_up_by_the_next_process_in_order(tmp_path: Path) -> None:
    held = AuditBacklog(tmp_path)
    await held.hold(1.0, "user_disabled", {"actor": "ada", "org": "default", "subject": "bob"})
    await held.hold(2.0, "site_deleted", {"actor": "ada", "org": "default", "subject": "demo"})
    assert stat.S_IMODE((tmp_path / BACKLOG_FILE).stat().st_mode) == 0o600
    # The process dies; the next one loads both, oldest first.
    after = AuditBacklog(tmp_path)
    assert after.load() == 2
    assert after.first() == (
        1.0,
        "user_disabled",
        {"actor": "ada", "org": "default", "subject": "bob"},
    )


async def test_a_record_written_before_the_process_died_is_not_taken_up_again(
    tmp_path: Path,
) -> None:
    held = AuditBacklog(tmp_path)
    await held.hold(1.0, "user_disabled", {"org": "default"})
    await held.hold(2.0, "user_enabled", {"org": "default"})
    held.written()  # the first went to the database, then the process died
    after = AuditBacklog(tmp_path)
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
    held = AuditBacklog(tmp_path)
    await held.hold(1.0, "user_disabled", {"org": "default"})
    with (tmp_path / BACKLOG_FILE).open("ab") as file:
        file.write(b'[2.0,"site_del')  # a power cut mid-line
    (tmp_path / WRITTEN_FILE).write_text("not a number")
    after = AuditBacklog(tmp_path)
    assert after.load() == 1
    assert "line 2 skipped" in caplog.text
