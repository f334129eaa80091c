"""Seeking in a recording lands on the page as it was at that moment, with masked fields masked.

The auditor's player (``sdk/src/console/recordings.ts``) moves through a recording with its
position slider: rrweb's replayer rebuilds the page from its snapshot and applies every event up to
that moment at once (forward from where it is, or again from the snapshot when going back). Where
each seek must land is read from the recording itself, opened offline with the key file (Python,
independent of the SDK): the text typed into an unmasked field and the page's heading as they were
at that moment, and the card number never (masked in the customer's browser, before recording).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tandem.recordings import recording_events
from tests.conftest import RunningServer, add_user
from tests.e2e.conftest import OtherOrigin, Party, caught_up
from tests.e2e.recorded import play_recording, recording_key, shared_recording, stop_recording
from tests.e2e.test_recordings import CARD, PASSPHRASE
from tests.server.test_organisations import api

PAGE = (
    '<h1 id="step">Step 1</h1>'
    '<label>Notes <textarea id="notes" data-tandem-unmask></textarea></label>'
    '<label>Card <input id="card" autocomplete="cc-number"></label>'
)
NOTES = "ring twice"
# Between two keystrokes: more than the slider's 0.1 s step, so that some positions fall clearly
# between two of them (the recording says which).
KEY_DELAY_MS = 150
# A position is used only this far from any event that changes what is checked (ms): whether the
# replayer applies an event at exactly its time is not what this test is about.
MARGIN_MS = 25


def nodes(root: dict[str, Any]) -> Iterator[dict[str, Any]]:
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.get("childNodes", []))


def test_seeking_in_a_recording_lands_on_that_moment_and_masked_fields_stay_masked(
    live: RunningServer,
    other_origin: OtherOrigin,
    customer: Party,
    agent: Party,
    supervisor: Party,
    tmp_path: Path,
) -> None:
    office = supervisor  # a third browser: the admin, later the auditor
    key_file, key_id = recording_key(office, live, tmp_path)
    url = other_origin.page("seek.html", PAGE, live, title="Seek")
    view = shared_recording(live, customer, agent, url, key_id, "Step 1")
    caught_up(customer, view)

    customer.page.locator("#notes").press_sequentially(NOTES, delay=KEY_DELAY_MS)
    expect(view.locator("#notes")).to_have_value(NOTES)
    customer.page.evaluate("() => { document.getElementById('step').firstChild.data = 'Step 2'; }")
    expect(view.get_by_role("heading", name="Step 2")).to_be_visible()
    customer.page.locator("#card").press_sequentially(CARD, delay=KEY_DELAY_MS // 3)
    customer.page.evaluate("() => { document.getElementById('step').firstChild.data = 'Step 3'; }")
    expect(view.get_by_role("heading", name="Step 3")).to_be_visible()
    caught_up(customer, view)
    stop_recording(customer)

    # The recording, opened offline: when each change happened (ms from its first event).
    add_user(live.settings.data_dir, "aud", role="auditor", display_name="Aud")
    with api(live, "aud") as client:
        [listed] = client.get("/api/recordings").json()
        stored = client.get(f"/api/recordings/{listed['recording_id']}/export").content
    _header, events = recording_events(stored, key_file.read_text(), PASSPHRASE)
    start = min(event["timestamp"] for event in events)
    [snapshot] = [event for event in events if event["type"] == 2]
    ids = {
        node["attributes"]["id"]: node["id"]
        for node in nodes(snapshot["data"]["node"])
        if isinstance(node.get("attributes"), dict) and "id" in node["attributes"]
    }
    typed: list[tuple[float, str]] = []  # the notes field's value, from each input event's time
    card_values: list[str] = []
    for event in events:
        data = event.get("data", {})
        if event["type"] == 3 and data.get("source") == 5 and data.get("id") == ids["notes"]:
            typed.append((event["timestamp"] - start, data["text"]))
        if event["type"] == 3 and data.get("source") == 5 and data.get("id") == ids["card"]:
            card_values.append(data["text"])
    assert typed and typed[-1][1] == NOTES, typed
    assert card_values and not any(re.search(r"\d", value) for value in card_values), card_values

    def first_with(text: str) -> float:
        later = (e for e in events if e is not snapshot and text in json.dumps(e))
        return min(e["timestamp"] - start for e in later)

    step_at = {"Step 2": first_with("Step 2"), "Step 3": first_with("Step 3")}
    changes = [at for at, _ in typed] + list(step_at.values())

    def expected_at(ms: float) -> tuple[str, str]:
        notes = ([value for at, value in typed if at <= ms] or [""])[-1]
        heading = "Step 1"
        for name, at in step_at.items():
            if at <= ms:
                heading = name
        return heading, notes

    def clear_positions(low: float, high: float) -> list[float]:
        """Slider positions (s) within (low, high) ms, each MARGIN_MS from every change."""
        tenths = range(int(low // 100) + 1, int(high // 100) + 1)
        return [
            t / 10
            for t in tenths
            if low < t * 100 < high and all(abs(t * 100 - at) >= MARGIN_MS for at in changes)
        ]

    # Where to seek: halfway through the notes, between the notes and the card, at the end.
    halfway = typed[len(typed) // 2][0]
    mid_typing = clear_positions(halfway, typed[-1][0])
    before_card = clear_positions(typed[-1][0], step_at["Step 2"]) + clear_positions(
        step_at["Step 2"], step_at["Step 3"]
    )
    end = max(event["timestamp"] for event in events) - start
    at_end = clear_positions(step_at["Step 3"], end)
    assert mid_typing and before_card and at_end, (typed, step_at, end)
    # Forward (fast-forward from the snapshot), forward again, then back (rebuilt from it).
    targets = [mid_typing[0], before_card[-1], at_end[-1], mid_typing[0]]

    page = play_recording(live, office, key_file, key_id)
    expect(page.get_by_text(re.compile(r"Playing \d+ events"))).to_be_visible()
    player = page.frame_locator('iframe[title^="Recording "]')
    expect(player.get_by_role("heading")).to_be_attached(timeout=20_000)
    # Pause (on a busy machine playback may already have reached its end, which shows Play too).
    toggle = page.get_by_role("button", name=re.compile(r"^(Pause|Play)$"))
    if toggle.inner_text() == "Pause":
        toggle.click()
    expect(page.get_by_role("button", name="Play", exact=True)).to_be_visible()
    slider = page.get_by_label("Position in the recording (seconds)")
    card = player.locator("#card")
    for seconds in targets:
        slider.fill(f"{seconds:.1f}")
        assert float(slider.input_value()) == seconds
        heading, notes = expected_at(seconds * 1000)
        expect(player.get_by_role("heading")).to_have_text(heading)
        expect(player.locator("#notes")).to_have_value(notes)
        value = card.input_value()
        assert not re.search(r"\d", value), f"the card shows {value!r} at {seconds} s"
    # Paused, it stays where it was put.
    expect(page.get_by_role("button", name="Play", exact=True)).to_be_visible()
