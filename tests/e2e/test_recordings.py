"""Recordings end to end, in three browsers: the admin creates the organisation's recording key
in the console (the private half goes into a passphrase-protected file), the agent asks to
record, the customer allows it and later stops it, and the auditor plays it back in the console
with the key file. The server only ever holds ciphertext: the test opens what it stored with the
key file here, in Python, independently of the SDK, and finds the page's text in it (and not the
card number, nor anything typed after "Stop recording")."""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from playwright.sync_api import expect

from tandem.recordings import read_container
from tests.conftest import RunningServer, add_user
from tests.e2e.conftest import Party, audit_actions, get_help, share
from tests.e2e.test_mfa_setup import console_sign_in
from tests.server.test_organisations import api

PASSPHRASE = "a long passphrase for auditors"
CARD = "4111 1111 1111 1111"


def b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def open_key_file(path: Path, passphrase: str) -> X25519PrivateKey:
    """The key file's private key, opened as docs/recordings.md describes (not with the SDK)."""
    file = json.loads(path.read_text())
    kdf = PBKDF2HMAC(hashes.SHA256(), 32, b64(file["kdf"]["salt"]), file["kdf"]["iterations"])
    key = kdf.derive(passphrase.encode())
    aad = f"tandem/v1/recording-key|{file['key_id']}".encode()
    raw = AESGCM(key).decrypt(b64(file["nonce"]), b64(file["sealed"]), aad)
    return X25519PrivateKey.from_private_bytes(raw)


def aad(session_id: str, kind: int, *numbers: int) -> bytes:
    return (
        f"tandem/v1|{session_id}|".encode()
        + bytes([kind])
        + b"".join(struct.pack(">Q", n) for n in numbers)
    )


def open_recording(container: bytes, private: X25519PrivateKey) -> str:
    """Every payload of a recording, decrypted and inflated, as text."""
    header, frames = read_container(container)
    session_id = header["session_id"]
    public = private.public_key().public_bytes_raw()
    keys: dict[int, bytes] = {}
    texts = []
    for frame in frames:
        kind, epoch = frame[0], struct.unpack(">Q", frame[1:9])[0]
        if kind == 0x05:
            ephemeral = frame[9:41]
            shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral))
            wrap = HKDF(hashes.SHA256(), 32, ephemeral + public, b"tandem/v1/recording").derive(
                shared
            )
            keys[epoch] = AESGCM(wrap).decrypt(frame[41:53], frame[53:], aad(session_id, 5, epoch))
        elif kind == 0x01 and epoch in keys:
            counter = struct.unpack(">Q", frame[9:17])[0]
            nonce = bytes(4) + struct.pack(">Q", counter)
            packed = AESGCM(keys[epoch]).decrypt(
                nonce, frame[17:], aad(session_id, 1, epoch, counter)
            )
            body = zlib.decompressobj(-15).decompress(packed[1:]) if packed[0] else packed[1:]
            texts.append(body.decode())
    assert keys, "no content key was wrapped for the recording key"
    return "\n".join(texts)


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
    text = open_recording(stored, open_key_file(key_file, PASSPHRASE))
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
