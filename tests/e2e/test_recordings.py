"""Recordings end to end, in three browsers: the admin creates the organisation's recording key
in the console (the private half goes into a passphrase-protected file), the agent asks to
record, the customer allows it and later stops it, and the auditor plays it back in the console
with the key file. The server only ever holds ciphertext: the test opens what it stored offline
with the key file (`tandem recording open`, Python, independent of the SDK), and finds the page's
text in it (and not the card number, nor anything typed after "Stop recording").

The server is not trusted (docs/recordings.md): a relay that swaps the recording key or makes up
a request to record gets no recording, and a recording the server cut or relabelled is refused
by the console's player and by `tandem recording open`, each saying what is wrong (one only cut
short at its end, as a crash leaves it, plays in the console labelled incomplete)."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from playwright.sync_api import Page, expect

from tandem import crypto
from tandem.crypto import Broken
from tandem.recordings import recording_events
from tests.conftest import RunningServer, ServerFactory, add_user, tandem_in_process
from tests.e2e.clearing import TRACK_BLOBS, Traces, nothing_left
from tests.e2e.conftest import OtherOrigin, Party, audit_actions, get_help, share
from tests.e2e.test_mfa_setup import console_sign_in
from tests.malicious import MaliciousRelay
from tests.server.test_organisations import api
from tests.test_recordings import key_file

PASSPHRASE = "a long passphrase for auditors"
CARD = "4111 1111 1111 1111"


def create_key(admin: Party, live: RunningServer, tmp_path: Path) -> Path:
    add_user(live.settings.data_dir, "ada", role="admin", display_name="Ada")
    console_sign_in(live, admin, "ada")
    page = admin.page
    page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Recordings"
    ).click()
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
    # The id the site's own pages must pin, ready to copy.
    key_id = json.loads(path.read_text())["key_id"]
    expect(page.get_by_label("Key id to pin on your site")).to_have_value(key_id)
    expect(page.get_by_role("button", name="Copy key id")).to_be_visible()
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.get_by_label("Username")).to_be_visible()  # signed out: its cookie is cleared
    return path


def open_offline(
    recording: Path, key_file: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    """`tandem recording open` on an exported recording with the key file (Python, offline), in
    this process (:func:`tests.conftest.tandem_in_process`: no interpreter start-up per call)."""
    command = ["recording", "open", str(recording), "--key", str(key_file), *options]
    return tandem_in_process(*command, stdin=PASSPHRASE + "\n")


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
    expect(dialog).to_contain_text("Recording key verified by 127.0.0.1")  # the demo page pins it
    dialog.get_by_role("button", name="Allow recording").click()
    expect(agent.page.get_by_role("status")).to_contain_text(  # said by the customer's browser
        f"Recording, with the customer's consent (key {key['key_id']})"
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
    page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Recordings"
    ).click()
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
    # Pause (on a busy machine playback may already have reached its end, which shows Play too),
    # go back to the start: the first page (the shop, before the checkout), and stay there.
    toggle = page.get_by_role("button", name=re.compile(r"^(Pause|Play)$"))
    if toggle.inner_text() == "Pause":
        toggle.click()
    expect(page.get_by_role("button", name="Play", exact=True)).to_be_visible()
    page.get_by_label("Position in the recording (seconds)").fill("0.1")  # after its snapshot
    expect(player.locator("input[type=search]")).to_be_attached()
    expect(player.locator("#notes")).to_have_count(0)
    # Play from there: it runs on to the checkout again.
    page.get_by_role("button", name="Play", exact=True).click()
    expect(page.get_by_role("button", name=re.compile(r"^(Pause|Play)$"))).to_be_visible()
    expect(player.locator("#notes")).to_have_value("ring twice", timeout=30_000)

    # What the server stored, read with the auditor's API rights: ciphertext, which the key file
    # opens here without the SDK.
    with api(live, "aud") as client:
        [listed] = client.get("/api/recordings").json()
        stored = client.get(f"/api/recordings/{listed['recording_id']}/export").content
    for visible in (b"ring twice", b"lamp", b"checkout"):
        assert visible not in stored
    exported = tmp_path / "exported.tandemrec"
    exported.write_bytes(stored)
    opened = open_offline(exported, key_file)
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
    expect(page.get_by_label("Username")).to_be_visible()  # signed out: its cookie is cleared
    console_sign_in(live, office, "ada")
    page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Recordings"
    ).click()
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
    # The banner (the screen-reader status may say the same words for a moment: not that one).
    expect(customer.page.get_by_role("region", name="Sharing this page with Alice")).to_be_visible()
    expect(customer.page.get_by_text("● Recording")).to_have_count(0)
    add_user(live.settings.data_dir, "aud", role="auditor")
    with api(live, "aud") as client:
        assert client.get("/api/recordings").json() == []


# The server is not trusted.


def key_pair() -> tuple[X25519PrivateKey, str, str]:
    """A recording key pair made here: the private key, the public key (base64url), its id."""
    private = X25519PrivateKey.generate()
    public = base64.urlsafe_b64encode(private.public_key().public_bytes_raw()).rstrip(b"=")
    return private, public.decode(), crypto.recording_key_id(public.decode())


def use_recording_key(server: RunningServer, public: str) -> None:
    add_user(server.settings.data_dir, "ada", role="admin")
    with api(server, "ada") as ada:
        assert ada.put("/api/org/recording-key", json={"public_key": public}).status_code == 200


def malicious_server(
    server_factory: ServerFactory, other_origin: OtherOrigin
) -> tuple[RunningServer, MaliciousRelay]:
    relays: list[MaliciousRelay] = []

    def wrap(app: Any) -> MaliciousRelay:
        relays.append(MaliciousRelay(app))
        return relays[-1]

    server = server_factory(wrap=wrap, allow_origins=(other_origin.origin,))
    return server, relays[0]


def keyed_relay(
    server_factory: ServerFactory, other_origin: OtherOrigin
) -> tuple[RunningServer, MaliciousRelay, str, str]:
    """A server behind a malicious relay whose organisation records to a key made here: the
    server, the relay, the public key and its id."""
    server, relay = malicious_server(server_factory, other_origin)
    _, public, key_id = key_pair()
    use_recording_key(server, public)
    return server, relay, public, key_id


def share_pinned(
    customer: Party, agent: Party, server: RunningServer, other_origin: OtherOrigin, key_id: str
) -> Any:
    """The site (another origin than the relay) pins its recording key in its own page."""
    body = "<h1>Your statement</h1><input aria-label=Note data-tandem-unmask>"
    url = other_origin.page("statement.html", body, server)
    customer.page.goto(url)
    code = customer.page.evaluate(
        "(keys) => window.Tandem.start({ recordingKeys: keys })", [key_id]
    )
    return share(customer, agent, server, code)


def recording_frames_sent(customer: Party) -> list[bytes]:
    """Key frames the customer's page wrapped for any recording key (0x05 old, 0x06 now)."""
    return [f for f in customer.frames.sent if f[:1] in (b"\x05", b"\x06")]


def recordings_of(server: RunningServer) -> list[dict[str, Any]]:
    add_user(server.settings.data_dir, "aud", role="auditor")
    with api(server, "aud") as aud:
        found: list[dict[str, Any]] = aud.get("/api/recordings").json()
    return found


def test_a_recording_key_swapped_by_the_relay_is_refused_without_asking_the_customer(
    server_factory: ServerFactory, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    server, relay, public, key_id = keyed_relay(server_factory, other_origin)
    _, attacker, attacker_id = key_pair()
    swapped: list[dict[str, Any]] = []

    def to_customer(message: dict[str, Any]) -> list[dict[str, Any]]:
        if message.get("type") == "record_request":
            swapped.append(message)
            return [{**message, "key": attacker}]
        return [message]

    relay.to_customer = to_customer
    share_pinned(customer, agent, server, other_origin, key_id)
    agent.page.get_by_role("button", name="Ask to record").click()
    status = agent.page.get_by_role("status")
    expect(status).to_contain_text("the site has not pinned this recording key")
    expect(status).to_contain_text(attacker_id)  # the key the customer's browser was offered
    assert swapped and swapped[0]["key"] == public
    expect(customer.page.get_by_role("dialog")).to_have_count(0)
    expect(customer.page.get_by_text("● Recording")).to_have_count(0)
    assert recording_frames_sent(customer) == []  # nothing wrapped for any recording key
    assert recordings_of(server) == []


def test_a_record_request_the_agent_never_sent_is_refused_without_asking_the_customer(
    server_factory: ServerFactory, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    server, relay, public, key_id = keyed_relay(server_factory, other_origin)
    answers = relay.kept_from_customer("record_consent")
    view = share_pinned(customer, agent, server, other_origin, key_id)
    made_up = {"agent": "Alice", "key": public, "recording_id": "made-up", "site": "demo"}
    relay.inject_customer({"v": 1, "type": "record_request", **made_up})  # the pinned key, even
    # The customer's browser waits for the agent's own (encrypted) request, then refuses.
    expect(agent.page.get_by_role("status")).to_contain_text(
        "refused a request to record that this console did not send", timeout=30_000
    )
    assert answers == [{"v": 1, "type": "record_consent", "granted": False}]
    expect(customer.page.get_by_role("dialog")).to_have_count(0)
    assert recording_frames_sent(customer) == []
    customer.page.get_by_label("Note").press_sequentially("still shared", delay=20)
    expect(view.locator("input")).to_have_value("still shared")  # the session goes on
    assert recordings_of(server) == []


def wait_until_ended(server: RunningServer) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        [recording] = recordings_of(server)
        if recording["ended_at"] is not None:
            return recording
        assert time.monotonic() < deadline, "the recording did not end"
        time.sleep(0.2)


def unlock_recording_key(page: Page, key_file: Path, key_id: str) -> None:
    """Open the console's Recordings page and unlock the recording key file there."""
    page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Recordings"
    ).click()
    page.get_by_label("Recording key file").set_input_files(key_file)
    page.get_by_label("Key passphrase").fill(PASSPHRASE)
    page.get_by_role("button", name="Unlock key").click()
    expect(page.get_by_text(f"Key {key_id} unlocked")).to_be_visible()


def recording_to_checkout(
    live: RunningServer, customer: Party, agent: Party, tmp_path: Path
) -> tuple[Path, str, Any]:
    """A recording key for the organisation (its file in ``tmp_path``), and a consented
    recording from the shop to the checkout page: the key file, its id and the agent's view."""
    private, public, key_id = key_pair()
    use_recording_key(live, public)
    key_path = tmp_path / "key.json"
    key_path.write_text(key_file(private))
    customer.page.goto(f"{live.base}/demo/")
    share(customer, agent, live, get_help(customer))
    agent.page.get_by_role("button", name="Ask to record").click()
    customer.page.get_by_role("dialog").get_by_role("button", name="Allow recording").click()
    expect(agent.page.get_by_role("status")).to_contain_text("Recording, with the customer's")
    customer.page.goto(f"{live.base}/demo/checkout.html")
    view = agent.page.frame_locator('iframe[title="Customer view"]')
    expect(view.locator("#notes")).to_be_attached()
    return key_path, key_id, view


def test_a_recording_the_server_cut_or_relabelled_is_refused_by_the_player_and_offline(
    live: RunningServer, customer: Party, agent: Party, supervisor: Party, tmp_path: Path
) -> None:
    # An honest recording over three pages: shop, checkout, cart.
    key_path, key_id, view = recording_to_checkout(live, customer, agent, tmp_path)
    customer.page.goto(f"{live.base}/demo/cart.html")
    expect(view.get_by_role("heading", name="Your cart")).to_be_visible()
    customer.page.get_by_role("button", name="Stop recording").click()
    expect(agent.page.get_by_role("status")).to_contain_text("The customer stopped the recording")
    recording = wait_until_ended(live)

    with sqlite3.connect(live.settings.database_path) as db:
        rows = db.execute(
            "SELECT seq, data FROM recording_frames WHERE recording_id = ? ORDER BY seq",
            (recording["recording_id"],),
        ).fetchall()
    links = [(seq, int.from_bytes(data[1:9], "big")) for seq, data in rows if data[:1] == b"\x06"]
    assert len(links) == 3, links  # one recorded epoch per page
    (_, first), (_, middle), (last_seq, last) = links

    def epoch_of(data: bytes) -> int:
        return int.from_bytes(data[1:9], "big") if data[:1] != b"\x03" else -1

    middle_content = [seq for seq, data in rows if data[:1] == b"\x01" and epoch_of(data) == middle]
    edits: dict[str, tuple[str, list[int], str | None]] = {
        "first epoch dropped": (
            Broken.FIRST_MISSING,
            [seq for seq, data in rows if epoch_of(data) == first],
            None,
        ),
        "middle epoch dropped": (
            Broken.middle_missing(first, last),
            [seq for seq, data in rows if epoch_of(data) == middle],
            None,
        ),
        "frames cut from the middle epoch's end": (
            Broken.tail_frames(middle, len(middle_content) - 1, len(middle_content)),
            middle_content[-1:],
            None,
        ),
        "tail truncated": (Broken.TRUNCATED, [seq for seq, _ in rows if seq >= last_seq], None),
        "header relabelled": (Broken.relabelled("agent", "mallory", "alice"), [], "mallory"),
    }

    console_sign_in(live, supervisor, "aud")
    page = supervisor.page
    unlock_recording_key(page, key_path, key_id)
    play = page.get_by_role("button", name=f"Play recording {recording['recording_id']}")
    play.click()  # the honest recording plays
    expect(
        page.get_by_text(re.compile(r"Playing \d+ events, .* complete and unedited"))
    ).to_be_visible()

    for what, (message, dropped, agent_name) in edits.items():
        with sqlite3.connect(live.settings.database_path) as db:  # the server's storage, edited
            db.execute(
                "DELETE FROM recording_frames WHERE recording_id = ?", (recording["recording_id"],)
            )
            db.executemany(
                "INSERT INTO recording_frames (recording_id, seq, data) VALUES (?, ?, ?)",
                [
                    (recording["recording_id"], seq, data)
                    for seq, data in rows
                    if seq not in dropped
                ],
            )
            db.execute(
                "UPDATE recordings SET agent = ? WHERE recording_id = ?",
                (agent_name or "alice", recording["recording_id"]),
            )
        play.click()
        if message == Broken.TRUNCATED:
            # Cut short (as a crash cuts it): the player plays what is there, labelled
            # incomplete, never "complete" (issue 13; tests/e2e/test_interrupted_recording.py).
            expect(page.get_by_text(re.compile("^INCOMPLETE RECORDING")), what).to_be_visible()
            expect(page.get_by_text(re.compile("complete and unedited"))).to_have_count(0)
        else:
            expect(
                page.get_by_text(f"The recording failed its integrity check: {message}."), what
            ).to_be_visible()
            expect(page.locator('iframe[title^="Recording "]')).to_have_count(0)
        with api(live, "aud") as aud:
            exported = tmp_path / "edited.tandemrec"
            exported.write_bytes(
                aud.get(f"/api/recordings/{recording['recording_id']}/export").content
            )
        if message == Broken.TRUNCATED:
            # Offline too: opened up to the cut, labelled incomplete; refused when a whole
            # recording is required.
            opened = open_offline(exported, key_path)
            assert opened.returncode == 0, (what, opened.stderr)
            assert "INCOMPLETE RECORDING" in opened.stderr, (what, opened.stderr)
            assert '"complete": false' in opened.stdout, what
            opened = open_offline(exported, key_path, "--require-complete")
        else:
            opened = open_offline(exported, key_path)
        assert opened.returncode != 0, what
        assert message in opened.stderr, (what, opened.stderr)


@pytest.mark.parametrize(
    "ending", ["agent stops recording", "customer stops sharing", "agent leaves"]
)
def test_every_graceful_end_leaves_a_whole_recording(
    live: RunningServer, customer: Party, agent: Party, ending: str
) -> None:
    private, public, _ = key_pair()
    use_recording_key(live, public)
    for party in (customer, agent):
        party.page.add_init_script(TRACK_BLOBS)
    customer.page.goto(f"{live.base}/demo/")
    code = get_help(customer)
    view = share(customer, agent, live, code)
    traces = Traces.of(customer, agent, view, code)
    agent.page.get_by_role("button", name="Ask to record").click()
    customer.page.get_by_role("dialog").get_by_role("button", name="Allow recording").click()
    expect(agent.page.get_by_role("status")).to_contain_text("Recording, with the customer's")
    customer.page.goto(f"{live.base}/demo/checkout.html")
    customer.page.get_by_label("Delivery instructions").press_sequentially("leave it", delay=20)
    expect(view.locator("#notes")).to_have_value("leave it")
    if ending == "agent stops recording":
        agent.page.get_by_role("button", name="Stop recording").click()
        expect(customer.page.get_by_text("● Recording")).to_have_count(0)
    elif ending == "customer stops sharing":
        customer.page.get_by_role("button", name="Stop sharing").click()
    else:
        agent.page.get_by_role("button", name="Leave").click()
    if ending != "agent stops recording":
        expect(agent.page.get_by_role("status")).to_contain_text("Session ended")
        customer.page.wait_for_function("() => window.Tandem.state === 'ended'")
    recording = wait_until_ended(live)
    with api(live, "aud") as aud:
        data = aud.get(f"/api/recordings/{recording['recording_id']}/export").content
    header, events = recording_events(data, key_file(private), PASSPHRASE)  # whole, or it raises
    assert "leave it" in json.dumps(events)
    assert header["bound"]["start"]["recording_id"] == recording["recording_id"]
    assert (
        header["bound"]["end"]["reason"]
        == {
            "agent stops recording": "stopped_by_agent",
            "customer stops sharing": "stopped",
            "agent leaves": "session_ending",
        }[ending]
    )
    if ending != "agent stops recording":
        # A recorded session leaves nothing behind either (the recording itself is the server's,
        # kept for its retention: docs/recordings.md).
        nothing_left(customer, agent, traces)


def test_the_console_says_when_the_server_claims_a_recording_the_customer_refused(
    server_factory: ServerFactory, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    server, relay, _, key_id = keyed_relay(server_factory, other_origin)

    def to_agent(message: dict[str, Any]) -> list[dict[str, Any]]:
        if message.get("type") == "recording":  # the relay says the customer allowed it
            return [{"v": 1, "type": "recording", "on": True, "reason": None}]
        return [message]

    relay.to_agent = to_agent
    share_pinned(customer, agent, server, other_origin, key_id)
    agent.page.get_by_role("button", name="Ask to record").click()
    customer.page.get_by_role("dialog").get_by_role("button", name="Don't record").click()
    status = agent.page.get_by_role("status")
    expect(status).to_contain_text("The customer did not allow recording")  # the customer's word
    expect(status).to_contain_text(  # after RECORDING_AGREE_MS (5 s) of disagreement
        "The server says recording is on, but the customer's browser has not confirmed it",
        timeout=15_000,
    )


def test_a_question_left_unanswered_is_asked_again_on_the_next_page(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    # The customer navigates with the question open: the server asks again on the next page,
    # which takes up the agent's confirmation from the page before (within the window).
    _, public, _ = key_pair()
    use_recording_key(live, public)
    customer.page.goto(f"{live.base}/demo/")
    share(customer, agent, live, get_help(customer))
    agent.page.get_by_role("button", name="Ask to record").click()
    expect(customer.page.get_by_role("dialog")).to_contain_text("Alice asks to record")
    customer.page.goto(f"{live.base}/demo/checkout.html")
    dialog = customer.page.get_by_role("dialog")
    expect(dialog).to_contain_text("Alice asks to record this session")
    dialog.get_by_role("button", name="Allow recording").click()
    expect(agent.page.get_by_role("status")).to_contain_text("Recording, with the customer's")
    expect(customer.page.get_by_text("● Recording")).to_be_visible()


def test_a_withdrawn_record_request_the_relay_replays_is_refused_without_asking_the_customer(
    server_factory: ServerFactory, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    # The agent asked, and the question was withdrawn before the customer answered. The tab
    # kept the agent's confirmation for the next page; a relay that replays the server's
    # `record_request` later (same recording id) got the dialog, "Alice asks to record", from
    # the old confirmation, without the agent asking again.
    server, relay, _, key_id = keyed_relay(server_factory, other_origin)
    answers = relay.kept_from_customer("record_consent")
    view = share_pinned(customer, agent, server, other_origin, key_id)
    agent.page.get_by_role("button", name="Ask to record").click()
    dialog = customer.page.get_by_role("dialog")
    expect(dialog).to_contain_text("Alice asks to record")
    [asked] = [m for m in relay.sent_to_customer if m.get("type") == "record_request"]
    relay.inject_customer({"v": 1, "type": "recording", "on": False, "reason": "stopped_by_agent"})
    expect(dialog).to_have_count(0)  # withdrawn
    relay.inject_customer(asked)  # replayed: only the server asks now
    expect(agent.page.get_by_role("status")).to_contain_text(
        "refused a request to record that this console did not send", timeout=30_000
    )
    assert answers == [{"v": 1, "type": "record_consent", "granted": False}]
    expect(customer.page.get_by_role("dialog")).to_have_count(0)
    assert recording_frames_sent(customer) == []
    customer.page.get_by_label("Note").press_sequentially("still shared", delay=20)
    expect(view.locator("input")).to_have_value("still shared")
    assert recordings_of(server) == []


def test_a_withdrawn_record_request_is_not_taken_up_on_the_next_page(
    server_factory: ServerFactory, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    # The relay tells the customer's page the question was withdrawn (the dialog closes) but
    # leaves the server asking: on the next page the server asks again at once, and the page
    # took that up with the agent's old confirmation, kept for the next page.
    server, relay, _, key_id = keyed_relay(server_factory, other_origin)
    answers = relay.kept_from_customer("record_consent")
    share_pinned(customer, agent, server, other_origin, key_id)
    agent.page.get_by_role("button", name="Ask to record").click()
    dialog = customer.page.get_by_role("dialog")
    expect(dialog).to_contain_text("Alice asks to record")
    relay.inject_customer({"v": 1, "type": "recording", "on": False, "reason": "stopped_by_agent"})
    expect(dialog).to_have_count(0)
    body = "<h1>Your payments</h1><input aria-label=Note data-tandem-unmask>"
    customer.page.goto(other_origin.page("payments.html", body, server))
    view = agent.page.frame_locator('iframe[title="Customer view"]')
    expect(view.get_by_role("heading", name="Your payments")).to_be_visible()
    expect(agent.page.get_by_role("status")).to_contain_text(
        "refused a request to record that this console did not send", timeout=30_000
    )
    assert [m for m in relay.sent_to_customer if m.get("type") == "record_request"][1:]
    assert answers == [{"v": 1, "type": "record_consent", "granted": False}]
    expect(customer.page.get_by_role("dialog")).to_have_count(0)
    assert recording_frames_sent(customer) == []
    assert recordings_of(server) == []


def test_a_question_the_server_no_longer_asks_after_a_reconnect_is_not_shown_again(
    server_factory: ServerFactory, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    # The customer's socket drops with the question open, and the server that takes the session
    # up does not ask again (as after a restart's handover, which does not keep the question):
    # the page shows its banner, not the old question, whose Allow would answer nobody.
    server, relay, _, key_id = keyed_relay(server_factory, other_origin)
    view = share_pinned(customer, agent, server, other_origin, key_id)
    agent.page.get_by_role("button", name="Ask to record").click()
    expect(customer.page.get_by_role("dialog")).to_contain_text("Alice asks to record")
    resumes = relay.kept_from_customer("resume")

    def to_customer(message: dict[str, Any]) -> list[dict[str, Any]]:
        return [] if message.get("type") == "record_request" else [message]

    relay.to_customer = to_customer
    relay.close_customer_after = lambda m: 1012 if m.get("type") == "cut" else None
    relay.inject_customer({"v": 1, "type": "cut"})  # ignored by the page; then the socket closed
    deadline = time.monotonic() + 10
    while not resumes:  # the page reconnects (its first wait is short)
        assert time.monotonic() < deadline, "the page did not resume"
        customer.page.wait_for_timeout(50)
    expect(customer.page.get_by_role("region", name="Sharing this page with Alice")).to_be_visible()
    customer.page.get_by_label("Note").press_sequentially("after the drop", delay=20)
    expect(view.locator("input")).to_have_value("after the drop")
    expect(customer.page.get_by_role("dialog")).to_have_count(0)
