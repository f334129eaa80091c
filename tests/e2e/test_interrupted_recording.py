"""Issue 13: a recording cut short by a crash (ended ``interrupted`` by the lost-process sweep) or
by storage failing (``unavailable``) has no end marker. The auditor's console plays what was
saved, up to where it stopped, clearly labelled incomplete, and the playback is audited as any
other; a recording edited in any other way is still refused."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import Party, audit_actions
from tests.e2e.test_mfa_setup import console_sign_in
from tests.e2e.test_recordings import (
    recording_to_checkout,
    unlock_recording_key,
    wait_until_ended,
)


def test_an_interrupted_recording_plays_up_to_where_it_stopped_labelled_incomplete(
    live: RunningServer, customer: Party, agent: Party, supervisor: Party, tmp_path: Path
) -> None:
    key_path, key_id, _ = recording_to_checkout(live, customer, agent, tmp_path)
    customer.page.get_by_role("button", name="Stop recording").click()
    recording = wait_until_ended(live)
    rid = recording["recording_id"]

    # What a crash during the second page leaves: the frames flushed before it, no end marker,
    # and the sweep's end reason.
    with sqlite3.connect(live.settings.database_path) as db:
        rows = db.execute(
            "SELECT seq, data FROM recording_frames WHERE recording_id = ? ORDER BY seq", (rid,)
        ).fetchall()
        links = [seq for seq, data in rows if data[:1] == b"\x06"]
        assert len(links) == 2, links
        cut_at = links[1] + 3  # a little of the second page survived
        db.execute(
            "DELETE FROM recording_frames WHERE recording_id = ? AND seq >= ?", (rid, cut_at)
        )
        db.execute(
            "UPDATE recordings SET end_reason = 'interrupted' WHERE recording_id = ?", (rid,)
        )

    console_sign_in(live, supervisor, "aud")
    page = supervisor.page
    unlock_recording_key(page, key_path, key_id)
    played_before = audit_actions(live).count("recording_played")
    page.get_by_role("button", name=f"Play recording {rid}").click()
    label = page.get_by_text(
        re.compile(
            r"INCOMPLETE RECORDING: it stops where it was cut short "
            r"\(the server says: interrupted\)"
        )
    )
    expect(label).to_be_visible()
    expect(label).not_to_contain_text("complete and unedited")
    player = page.locator('iframe[title^="Recording "]')
    expect(player).to_have_count(1)
    expect(
        page.get_by_role("region", name="Recording playback (incomplete: cut short)")
    ).to_be_visible()
    # The first page is there, as recorded.
    expect(
        page.frame_locator('iframe[title^="Recording "]').get_by_role("button", name="Get help")
    ).to_be_attached(timeout=10_000)
    assert audit_actions(live).count("recording_played") == played_before + 1
    assert_accessible(page)

    # Partial is no licence to cut the start: without its first page it is refused as before.
    with sqlite3.connect(live.settings.database_path) as db:
        db.execute(
            "DELETE FROM recording_frames WHERE recording_id = ? AND seq < ?", (rid, links[1])
        )
    page.get_by_role("button", name=f"Play recording {rid}").click()
    expect(
        page.get_by_text(
            "The recording failed its integrity check: the start of the recording is missing."
        )
    ).to_be_visible()
    expect(player).to_have_count(0)
