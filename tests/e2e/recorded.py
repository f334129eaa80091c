"""What the tests of a recorded session's playback share: a recording key, a page shared with the
customer's consent to record it, and an auditor opening its recording in the console's player."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.conftest import RunningServer
from tests.e2e.conftest import Party, share
from tests.e2e.test_mfa_setup import console_sign_in
from tests.e2e.test_recordings import create_key, unlock_recording_key


def recording_key(admin: Party, live: RunningServer, tmp_path: Path) -> tuple[Path, str]:
    """A recording key created by an admin in the console: its key file and its id."""
    key_file = create_key(admin, live, tmp_path)
    return key_file, json.loads(key_file.read_text())["key_id"]


def shared_recording(
    live: RunningServer, customer: Party, agent: Party, url: str, key_id: str, heading: str
) -> Any:
    """The customer's page at `url` (its SDK pinning the recording key `key_id`) shared with the
    agent, its `heading` shown in the agent's view; the agent asks to record and the customer
    allows it. The agent's view."""
    customer.page.goto(url)
    code = customer.page.evaluate(
        "(keys) => window.Tandem.start({ recordingKeys: keys })", [key_id]
    )
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name=heading)).to_be_visible()
    agent.page.get_by_role("button", name="Ask to record").click()
    customer.page.get_by_role("dialog").get_by_role("button", name="Allow recording").click()
    expect(customer.page.get_by_text("● Recording")).to_be_visible()
    return view


def stop_recording(customer: Party) -> None:
    """The customer stops the recording (sharing goes on)."""
    customer.page.get_by_role("button", name="Stop recording").click()
    expect(customer.page.get_by_role("button", name="Stop recording")).to_have_count(0)


def play_recording(live: RunningServer, auditor: Party, key_file: Path, key_id: str) -> Page:
    """The auditor "aud" (already added) signs in to the console, unlocks the key file and plays
    the recording; the console's page."""
    console_sign_in(live, auditor, "aud")
    page = auditor.page
    unlock_recording_key(page, key_file, key_id)
    page.get_by_role("button", name=re.compile(r"^Play recording ")).click()
    return page
