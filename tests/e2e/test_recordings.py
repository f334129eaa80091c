"""Recordings end to end, in three browsers: the admin creates the organisation's recording key
in the console (the private half goes into a passphrase-protected file), the agent asks to
record, the customer allows it and later stops it, and the auditor plays it back in the console
with the key file. The server only ever holds ciphertext: the test opens what it stored offline
with the key file (`tandem recording open`, Python, independent of the SDK), and finds the page's
text in it (and not the card number, nor anything typed after "Stop recording")."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import expect

from tests.conftest import RunningServer, add_user
from tests.e2e.conftest import Party, audit_actions, get_help, share
from tests.e2e.test_mfa_setup import console_sign_in
from tests.server.test_organisations import api

PASSPHRASE = "a long passphrase for auditors"
CARD = "4111 1111 1111 1111"


def create_key(admin: Party, live: RunningServer, tmp_path: Path) -> Path:
    add_user(live.settings.data_dir, "ada", role="admin", display_name="Ada")
    console_sign_in(live, admin, "ada")
    page = admin.page
    expect(page.get_by_role("heading", name="Recording key")).to_be_visible()
    expect(page.get_by_text("No recording key")).to_be_visible()
    page.get_by_label("New key passphrase").fill(PASSPHRASE)
    page.get_by_label("Passphrase again").fill(PASSPHRASE)
    with page.expect_download() as download:
        page.get_by_role("button", name="Create recording key").click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    expect(page.get_by_text(re.compile(r"Key \S+ is in use"))).to_be_visible()
    expect(page.get_by_text("Sessions can be recorded")).to_be_visible()
    page.get_by_role("button", name="Sign out", exact=True).click()
    return path


def test_a_consented_recording_is_played_back_by_an_auditor_and_unreadable_to_the_server(
    live: RunningServer, customer: Party, agent: Party, supervisor: Party, tmp_path: Path
) -> None:
    office = supervisor  # a third browser: the admin, later the auditor
    key_file = create_key(office, live, tmp_path)
    key = json.loads(key_file.read_text())
    assert PASSPHRASE not in key_file.read_text()
    add_user(live.settings.data_dir, "ada2", role="admin")
    with api(live, "ada2") as client:  # the server has the public half only
        org = client.get("/api/org").json()
    assert org["recording_key"] == {"public_key": key["public_key"], "key_id": key["key_id"]}

    customer.page.goto(f"{live.base}/demo/")
    view = share(customer, agent, live, get_help(customer))
    customer.page.get_by_label("Search products").press_sequentially("tent", delay=20)
    expect(view.locator("input[type=search]")).to_have_value("tent")

    agent.page.get_by_role("button", name="Ask to record").click()
    dialog = customer.page.get_by_role("dialog")
    expect(dialog).to_contain_text("Alice asks to record this session")
    dialog.get_by_role("button", name="Allow recording").click()
    expect(agent.page.get_by_role("status")).to_contain_text(
        "Recording, with the customer's consent"
    )
    expect(customer.page.get_by_text("● Recording")).to_be_visible()

    customer.page.get_by_label("Search products").fill("")
    customer.page.get_by_label("Search products").press_sequentially("lamp", delay=20)
    expect(view.locator("input[type=search]")).to_have_value("lamp")
    customer.page.goto(f"{live.base}/demo/checkout.html")  # the recording follows the customer
    view = agent.page.frame_locator('iframe[title="Customer view"]')
    customer.page.get_by_label("Delivery instructions").press_sequentially("ring twice", delay=20)
    customer.page.get_by_label("Card number").press_sequentially(CARD, delay=10)
    expect(view.locator("#notes")).to_have_value("ring twice")

    customer.page.get_by_role("button", name="Stop recording").click()
    expect(agent.page.get_by_role("status")).to_contain_text("The customer stopped the recording")
    expect(customer.page.get_by_role("button", name="Stop recording")).to_have_count(0)
    customer.page.get_by_label("Delivery instructions").press_sequentially(" postscript", delay=20)
    expect(view.locator("#notes")).to_have_value("ring twice postscript")  # sharing goes on

    # The auditor plays it back in the console with the key file.
    add_user(live.settings.data_dir, "aud", role="auditor", display_name="Aud")
    console_sign_in(live, office, "aud")
    page = office.page
    expect(page.get_by_role("heading", name="Recordings")).to_be_visible()
    play = page.get_by_role("button", name=re.compile(r"^Play recording "))
    expect(play).to_have_count(1)
    play.click()
    expect(page.get_by_text("Unlock the recording key first")).to_be_visible()
    page.get_by_label("Recording key file").set_input_files(key_file)
    page.get_by_label("Key passphrase").fill("not the passphrase")
    page.get_by_role("button", name="Unlock key").click()
    expect(page.get_by_text("wrong passphrase")).to_be_visible()
    page.get_by_label("Key passphrase").fill(PASSPHRASE)
    page.get_by_role("button", name="Unlock key").click()
    expect(page.get_by_text(f"Key {key['key_id']} unlocked")).to_be_visible()
    play.click()
    expect(page.get_by_text(re.compile(r"Playing \d+ events"))).to_be_visible()
    player = page.frame_locator('iframe[title^="Recording "]')
    expect(player.locator("#notes")).to_have_value("ring twice", timeout=20_000)
    card = player.locator("#card")
    expect(card).not_to_have_value(CARD)
    assert "4111" not in (card.input_value() or "")
    # Pause, and go back to the start: the first page (the shop, before the checkout).
    page.get_by_role("button", name="Pause", exact=True).click()
    expect(page.get_by_role("button", name="Play", exact=True)).to_be_visible()
    page.get_by_label("Position in the recording (seconds)").fill("0.1")  # after its snapshot
    expect(player.locator("input[type=search]")).to_be_attached()
    expect(player.locator("#notes")).to_have_count(0)

    # What the server stored, read with the auditor's API rights: ciphertext, which the key file
    # opens here without the SDK.
    with api(live, "aud") as client:
        [listed] = client.get("/api/recordings").json()
        stored = client.get(f"/api/recordings/{listed['recording_id']}/export").content
    for visible in (b"ring twice", b"lamp", b"checkout"):
        assert visible not in stored
    exported = tmp_path / "exported.tandemrec"
    exported.write_bytes(stored)
    opened = subprocess.run(  # offline, with the key file: `tandem recording open`
        [
            sys.executable,
            "-m",
            "tandem",
            "recording",
            "open",
            str(exported),
            "--key",
            str(key_file),
        ],
        input=PASSPHRASE + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert opened.returncode == 0, opened.stderr
    text = opened.stdout
    assert json.loads(text)["recording"]["recording_id"] == listed["recording_id"]
    assert "ring twice" in text and "lamp" in text
    assert "postscript" not in text  # typed after "Stop recording"
    assert not re.search(r"4111\D?1111", text)
    audit = audit_actions(live)
    assert audit.count("recording_played") == 1 and "recording_exported" in audit
    assert {"recording_requested", "recording_started", "recording_stopped"} <= set(audit)

    # The admin erases it (GDPR): gone for everyone, and the erasure is audited.
    page.get_by_role("button", name="Sign out", exact=True).click()
    console_sign_in(live, office, "ada")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Erase recording {listed['recording_id']}").click()
    expect(page.get_by_text(f"Recording {listed['recording_id']} erased.")).to_be_visible()
    with api(live, "aud") as client:
        assert client.get("/api/recordings").json() == []
    assert "recording_erased" in audit_actions(live)


def test_a_customer_who_does_not_allow_recording_is_not_recorded(
    live: RunningServer, customer: Party, agent: Party, supervisor: Party, tmp_path: Path
) -> None:
    create_key(supervisor, live, tmp_path)
    customer.page.goto(f"{live.base}/demo/")
    share(customer, agent, live, get_help(customer))
    agent.page.get_by_role("button", name="Ask to record").click()
    dialog = customer.page.get_by_role("dialog")
    dialog.get_by_role("button", name="Don't record").click()
    expect(agent.page.get_by_role("status")).to_contain_text("did not allow recording")
    expect(customer.page.get_by_text("Sharing this page with Alice")).to_be_visible()
    expect(customer.page.get_by_text("● Recording")).to_have_count(0)
    add_user(live.settings.data_dir, "aud", role="auditor")
    with api(live, "aud") as client:
        assert client.get("/api/recordings").json() == []
