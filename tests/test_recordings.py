"""The recording container (tandem.recordings): what the server hands out, read back exactly, and
anything else refused with ValueError."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import os
import struct
import zlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from hypothesis import given
from hypothesis import strategies as st

from tandem import crypto
from tandem.exceptions import RecordingError
from tandem.protocol import content
from tandem.recordings import Recorder, _Payloads, container, read_container, recording_events
from tandem.storage.base import RecordingRecord
from tests.conftest import tandem_in_process

RECORDING = RecordingRecord("r1", "default", "s1", "demo", "alice", "k1", 1.0, 2.0, "stopped", 2, 5)


@given(st.lists(st.binary(max_size=300), max_size=20))
def test_a_container_gives_back_its_frames_and_header(frames: list[bytes]) -> None:
    header, read = read_container(container(RECORDING, frames))
    assert read == frames
    assert (header["recording_id"], header["session_id"], header["org_id"]) == (
        "r1",
        "s1",
        "default",
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"TNDMREC2" + struct.pack(">I", 2) + b"{}",
        b"TNDMREC1",
        b"TNDMREC1" + struct.pack(">I", 10) + b"{}",
        b"TNDMREC1" + struct.pack(">I", 2) + b"[]",
        b"TNDMREC1" + struct.pack(">I", 5000) + b"[" * 5000,
        b"TNDMREC1" + struct.pack(">I", 2) + b"{}" + b"\x00\x00",
    ],
)
def test_anything_else_is_refused_with_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        read_container(data)


def test_a_recorder_refuses_what_would_pass_its_limit_and_hands_frames_over_once() -> None:
    recorder = Recorder(RECORDING, limit=10)
    assert recorder.add(b"12345") and recorder.add(b"678")
    assert not recorder.add(b"abc")  # 11 bytes: refused, nothing kept
    assert recorder.take() == (0, [b"12345", b"678"])
    assert recorder.take() == (2, [])
    assert recorder.add(b"90") and recorder.size == 10
    assert recorder.take() == (2, [b"90"])


# A recording built here with `cryptography`, as the customer's SDK builds one (docs/recordings.md),
# then opened by tandem.recordings as `tandem recording open` does.

PASSPHRASE = "a long passphrase for auditors"


def _b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def key_file(private: X25519PrivateKey, passphrase: str = PASSPHRASE) -> str:
    public = _b64u(private.public_key().public_bytes_raw())
    key_id = crypto.recording_key_id(public)
    salt, nonce = os.urandom(16), os.urandom(12)
    wrap = PBKDF2HMAC(hashes.SHA256(), 32, salt, 100_000).derive(passphrase.encode())
    sealed = AESGCM(wrap).encrypt(
        nonce, private.private_bytes_raw(), f"tandem/v1/recording-key|{key_id}".encode()
    )
    return json.dumps(
        {
            "tandem_recording_key": 1,
            "org": "default",
            "key_id": key_id,
            "public_key": public,
            "kdf": {"name": "PBKDF2-SHA256", "iterations": 100_000, "salt": _b64u(salt)},
            "nonce": _b64u(nonce),
            "sealed": _b64u(sealed),
        }
    )


def aad(kind: int, *numbers: int, version: int = 1) -> bytes:
    numbers_bytes = struct.pack(f">{len(numbers)}Q", *numbers)
    return f"tandem/v{version}|s1|".encode() + bytes([kind]) + numbers_bytes


def flat(epochs: list[list[bytes]]) -> list[bytes]:
    return [frame for epoch in epochs for frame in epoch]


def seal(key: bytes, epoch: int, counter: int, payload: dict[str, object]) -> bytes:
    body = json.dumps(payload).encode()
    packed = b"\x01" + zlib.compress(body)[2:-4] if counter % 2 else b"\x00" + body
    sealed = AESGCM(key).encrypt(
        bytes(4) + struct.pack(">Q", counter), packed, aad(1, epoch, counter)
    )
    return b"\x01" + struct.pack(">QQ", epoch, counter) + sealed


CHAIN = os.urandom(32)


def link(
    private: X25519PrivateKey,
    content_key: bytes,
    epoch: int,
    previous: int,
    count: int,
    chain: bytes = CHAIN,
) -> bytes:
    """A recorded epoch's key frame (0x06): the content key and its link tag (HMAC under the
    recording's chain key) wrapped for the recording key, naming the previous recorded epoch and
    its frame count in its additional data."""
    public = private.public_key().public_bytes_raw()
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(public))
    wrap = HKDF(hashes.SHA256(), 32, ephemeral_public + public, b"tandem/v2/recording").derive(
        shared
    )
    nonce = os.urandom(12)
    numbers = struct.pack(">QQQ", epoch, previous, count)
    tag_input = b"tandem/v2/link|s1|" + numbers + hashlib.sha256(content_key).digest()
    tag = hmac.new(chain, tag_input, hashlib.sha256).digest()
    sealed = AESGCM(wrap).encrypt(
        nonce, content_key + tag, aad(6, epoch, previous, count, version=2)
    )
    return b"\x06" + numbers + ephemeral_public + nonce + sealed


START = {
    "k": "recording_start",
    "recording_id": "r1",
    "session_id": "s1",
    "agent": "alice",
    "site": "demo",
    "origin": "https://shop.example",
    "at": 1_700_000_000_000,
    "chain": _b64u(CHAIN),
}
END = {"k": "recording_end", "recording_id": "r1", "reason": "stopped", "at": 1_700_000_060_000}


def events(name: str) -> dict[str, object]:
    return {"k": "events", "events": [{"type": 3, "name": name}]}


PAGES = [[START, events("shop")], [events("cart")], [events("checkout"), END]]


def recorded(
    private: X25519PrivateKey,
    pages: list[list[dict[str, object]]] = PAGES,
    chain: bytes = CHAIN,
    numbers: tuple[int, ...] = (2, 3, 5, 6, 7),
    previous: int = 0,
    count: int = 0,
) -> list[list[bytes]]:
    """The frames of each epoch: epoch 1 before consent (not recorded), then recorded epochs
    2, 3, 5… (epoch numbers need not be consecutive), chained, as the SDK sends them."""
    unrecorded = os.urandom(32)
    epochs = [[seal(unrecorded, 1, 0, events("before consent"))]]
    for epoch, payloads in zip(numbers, pages, strict=False):
        content_key = os.urandom(32)
        frames = [link(private, content_key, epoch, previous, count, chain)]
        frames += [seal(content_key, epoch, i, p) for i, p in enumerate(payloads)]
        epochs.append(frames)
        previous, count = epoch, len(payloads)
    return epochs


def made_for(private: X25519PrivateKey, **fields: object) -> RecordingRecord:
    public = _b64u(private.public_key().public_bytes_raw())
    return dataclasses.replace(RECORDING, key_id=crypto.recording_key_id(public), **fields)  # type: ignore[arg-type]


def refusal(private: X25519PrivateKey, frames: list[bytes], **header: object) -> str:
    with pytest.raises(RecordingError) as refused:
        recording_events(
            container(made_for(private, **header), frames), key_file(private), PASSPHRASE
        )
    return str(refused.value)


def test_a_recording_opens_offline_with_its_key_file() -> None:
    private = X25519PrivateKey.generate()
    data = container(made_for(private), flat(recorded(private)))
    header, opened = recording_events(data, key_file(private), PASSPHRASE)
    assert header["recording_id"] == "r1"
    assert header["bound"] == {"start": START, "end": END}
    assert [e["name"] for e in opened] == ["shop", "cart", "checkout"]


def test_a_wrong_passphrase_another_key_or_an_edited_epoch_is_refused() -> None:
    private = X25519PrivateKey.generate()
    epochs = recorded(private, [[START, events("a"), events("b"), END]])
    data = container(made_for(private), flat(epochs))
    with pytest.raises(RecordingError, match="wrong passphrase"):
        recording_events(data, key_file(private), "not the passphrase")
    with pytest.raises(RecordingError, match="another key"):
        recording_events(data, key_file(X25519PrivateKey.generate()), PASSPHRASE)
    before, (key, start, a, b, end) = epochs
    altered = bytearray(b)
    altered[-1] ^= 1
    for edited, why in (
        ([key, start, b, end], "missing, reordered or replayed"),  # a frame dropped
        ([key, start, b, a, end], "missing, reordered or replayed"),  # reordered
        ([key, start, a, a, b, end], "missing, reordered or replayed"),  # replayed
        ([key, start, a, bytes(altered), end], "altered"),
    ):
        assert why in refusal(private, before + edited)
    with pytest.raises(RecordingError):
        recording_events(b"not a recording", key_file(private), PASSPHRASE)
    with pytest.raises(RecordingError, match="not a Tandem recording key"):
        recording_events(data, "{}", PASSPHRASE)


def test_a_recording_without_its_first_epoch_is_refused() -> None:
    private = X25519PrivateKey.generate()
    before, _first, *rest = recorded(private)
    assert refusal(private, before + flat(rest)) == crypto.Broken.FIRST_MISSING
    assert refusal(private, before) == crypto.Broken.FIRST_MISSING  # nothing recorded at all


def test_a_recording_without_a_middle_epoch_is_refused() -> None:
    private = X25519PrivateKey.generate()
    before, first, _middle, last = recorded(private)
    assert refusal(private, before + first + last) == crypto.Broken.middle_missing(2, 5)


def test_a_recording_with_frames_cut_from_the_end_of_a_middle_epoch_is_refused() -> None:
    private = X25519PrivateKey.generate()
    pages = [[START, events("a"), events("b"), events("c")], [events("d"), END]]
    before, first, last = recorded(private, pages)
    assert refusal(private, before + first[:-2] + last) == crypto.Broken.tail_frames(2, 2, 4)


def test_a_truncated_recording_is_refused() -> None:
    private = X25519PrivateKey.generate()
    epochs = recorded(private)
    assert refusal(private, flat(epochs[:-1])) == crypto.Broken.TRUNCATED
    assert refusal(private, flat(epochs)[:-1]) == crypto.Broken.TRUNCATED  # the end marker


def test_a_recording_cut_short_opens_partially_up_to_where_it_stopped() -> None:
    """A crash or a storage failure leaves no end marker: asked for it, what was saved opens,
    said to be incomplete; what is not a tail cut short is still refused."""
    private = X25519PrivateKey.generate()
    before, first, middle, last = recorded(private)
    interrupted = made_for(private, end_reason="interrupted")
    for frames, names in (
        (before + first + middle + last[:-1], ["shop", "cart", "checkout"]),  # no end marker
        (before + first + middle[:1], ["shop"]),  # the second page's key, no content
        (before + first[:2], []),  # only the start
    ):
        data = container(interrupted, frames)
        header, opened = recording_events(data, key_file(private), PASSPHRASE, partial=True)
        assert (header["complete"], header["bound"]["end"]) == (False, None)
        assert [e["name"] for e in opened] == names
    whole = container(interrupted, flat([before, first, middle, last]))
    assert recording_events(whole, key_file(private), PASSPHRASE, partial=True)[0]["complete"]
    for frames, why in (
        (before + flat([middle, last]), crypto.Broken.FIRST_MISSING),
        (before + first + last[:-1], crypto.Broken.middle_missing(2, 5)),
    ):
        with pytest.raises(RecordingError) as refused:
            recording_events(
                container(interrupted, frames), key_file(private), PASSPHRASE, partial=True
            )
        assert str(refused.value) == why


@pytest.mark.parametrize(
    ("field", "value", "bound"),
    [("recording_id", "r2", "r1"), ("agent", "mallory", "alice"), ("site_id", "shop2", "demo")],
)
def test_a_relabelled_header_is_refused(field: str, value: str, bound: str) -> None:
    private = X25519PrivateKey.generate()
    frames = flat(recorded(private))
    assert refusal(private, frames, **{field: value}) == crypto.Broken.relabelled(
        field, value, bound
    )


def test_a_header_naming_another_session_is_refused() -> None:
    private = X25519PrivateKey.generate()
    frames = flat(recorded(private))
    assert refusal(private, frames, session_id="s9") == crypto.Broken.first_key("s9")


def test_nothing_recorded_may_follow_the_end_nor_a_second_start() -> None:
    private = X25519PrivateKey.generate()
    after = recorded(private, [[START, events("a")], [END], [events("after the end")]])
    assert refusal(private, flat(after)) == crypto.Broken.AFTER_END
    twice = recorded(private, [[START, events("a")], [START, END]])
    assert refusal(private, flat(twice)) == crypto.Broken.SECOND_START


def test_a_recording_made_by_an_older_version_is_refused_as_such() -> None:
    private = X25519PrivateKey.generate()
    legacy = b"\x05" + struct.pack(">Q", 2) + os.urandom(92)
    frames = flat(recorded(private))
    assert refusal(private, [legacy, *frames]) == crypto.Broken.LEGACY


def test_a_payload_that_inflates_beyond_the_limit_is_refused() -> None:
    private = X25519PrivateKey.generate()
    bomb = {"k": "events", "events": ["A" * (2 * 1024 * 1024)]}
    epochs = recorded(private, [[START, bomb, END]])  # the bomb is frame 1: deflated
    assert refusal(private, flat(epochs)) == crypto.Broken.UNDECODABLE


def test_an_epoch_the_server_made_up_in_place_of_one_it_cut_is_refused() -> None:
    private = X25519PrivateKey.generate()
    before, first, middle, last = recorded(private)
    fake = recorded(private, [[events("made up")]], os.urandom(32), (3,), 2, 2)[1]
    assert refusal(private, before + first + fake + last) == crypto.Broken.forged(3)
    tail = recorded(private, [[END]], os.urandom(32), (4,), 3, 1)[1]  # an end of its own
    assert refusal(private, before + first + middle + tail) == crypto.Broken.forged(4)


def test_a_recording_made_up_whole_under_the_public_key_still_opens() -> None:
    """The limit (docs/recordings.md): playback proves a recording whole, not who made it."""
    private = X25519PrivateKey.generate()
    other = os.urandom(32)
    pages = [[{**START, "chain": _b64u(other)}, events("made up")], [END]]
    data = container(made_for(private), flat(recorded(private, pages, other)))
    assert recording_events(data, key_file(private), PASSPHRASE)[1] == events("made up")["events"]


def streamed(
    private: X25519PrivateKey,
    pages: list[list[dict[str, object]]],
    flags: tuple[int, ...] = (content.STREAMED_WITH_DICTIONARY,),
) -> list[bytes]:
    """Recorded epochs 2, 3, … whose payloads are packed as the SDK packs them (issue 17):
    each epoch one raw deflate stream, sync-flushed after every payload: flag 3 (primed with
    the preset dictionary) as now, flag 2 (without) as before. Frame i of an epoch carries
    ``flags[i % len(flags)]`` (the stream is primed as its first frame says); a frame flagged
    1 is deflated on its own, a whole stream, outside the epoch's (as the SDK packs large
    frames)."""
    frames: list[bytes] = []
    previous = count = 0
    for epoch, payloads in enumerate(pages, start=2):
        content_key = os.urandom(32)
        frames.append(link(private, content_key, epoch, previous, count))
        primed = flags[0] == content.STREAMED_WITH_DICTIONARY
        zdict = {"zdict": content.CONTENT_DICTIONARY} if primed else {}
        stream = zlib.compressobj(6, zlib.DEFLATED, -15, **zdict)  # type: ignore[arg-type]
        for counter, payload in enumerate(payloads):
            body = json.dumps(payload).encode()
            flag = bytes([flags[counter % len(flags)]])
            if flag[0] == content.DEFLATED:
                alone = zlib.compressobj(6, zlib.DEFLATED, -15)
                packed = flag + alone.compress(body) + alone.flush()
            else:
                packed = flag + stream.compress(body) + stream.flush(zlib.Z_SYNC_FLUSH)
            sealed = AESGCM(content_key).encrypt(
                bytes(4) + struct.pack(">Q", counter), packed, aad(1, epoch, counter)
            )
            frames.append(b"\x01" + struct.pack(">QQ", epoch, counter) + sealed)
        previous, count = epoch, len(payloads)
    return frames


@pytest.mark.parametrize("flag", [content.STREAMED_WITH_DICTIONARY, content.STREAMED])
def test_a_recording_of_compression_streams_opens_epoch_by_epoch(flag: int) -> None:
    private = X25519PrivateKey.generate()
    pages = [[START, events("shop"), events("shop")], [events("cart"), events("cart"), END]]
    header, opened = recording_events(
        container(made_for(private), streamed(private, pages, (flag,))),
        key_file(private),
        PASSPHRASE,
    )
    assert [e["name"] for e in opened] == ["shop", "shop", "cart", "cart"]
    assert header["bound"] == {"start": START, "end": END}


def test_frames_of_two_kinds_of_stream_in_one_epoch_are_refused() -> None:
    private = X25519PrivateKey.generate()
    flags = (content.STREAMED_WITH_DICTIONARY, content.STREAMED)
    frames = streamed(private, [[START, events("shop"), END]], flags)
    assert refusal(private, frames) == crypto.Broken.UNDECODABLE


def snapshot(name: str, rows: int) -> dict[str, object]:
    """A full snapshot's worth of events: large enough for the SDK to deflate it on its own."""
    nodes = [{"type": 2, "tagName": "article", "id": i, "text": f"{name} {i}"} for i in range(rows)]
    return {"k": "events", "events": [{"type": 2, "name": name, "data": {"node": nodes}}]}


def test_a_recording_of_large_frames_deflated_on_their_own_between_stream_frames_opens() -> None:
    private = X25519PrivateKey.generate()
    big = snapshot("shop", 4000)
    assert len(json.dumps(big)) >= 128 * 1024  # as large as the SDK's ALONE_FROM_BYTES
    flags = (content.STREAMED_WITH_DICTIONARY, content.DEFLATED)  # stream, alone, stream, alone…
    pages = [[START, big, events("shop"), snapshot("cart", 10), events("cart"), END]]
    header, opened = recording_events(
        container(made_for(private), streamed(private, pages, flags)), key_file(private), PASSPHRASE
    )
    assert [e["name"] for e in opened] == ["shop", "shop", "cart", "cart"]
    assert opened[0] == big["events"][0]  # type: ignore[index]
    assert header["bound"] == {"start": START, "end": END}


def test_a_frame_deflated_on_its_own_must_be_one_whole_stream() -> None:
    body = json.dumps(events("shop")).encode()
    whole = zlib.compressobj(6, zlib.DEFLATED, -15)
    packed = whole.compress(body) + whole.flush()
    assert _Payloads().push(b"\x01" + packed, 2) == events("shop")
    flushed = zlib.compressobj(6, zlib.DEFLATED, -15)
    unfinished = flushed.compress(body) + flushed.flush(zlib.Z_SYNC_FLUSH)
    for broken in (packed[:-3], unfinished, packed + b"\x00", packed + packed):
        with pytest.raises(RecordingError):
            _Payloads().push(b"\x01" + broken, 2)


def test_a_bomb_in_a_compression_stream_is_refused() -> None:
    private = X25519PrivateKey.generate()
    bomb = {"k": "events", "events": ["A" * (2 * 1024 * 1024)]}
    assert refusal(private, streamed(private, [[START, bomb, END]])) == crypto.Broken.UNDECODABLE


def test_the_cli_prints_the_servers_header_words_without_terminal_controls(tmp_path: Path) -> None:
    """Attack review of the strings shown to auditors: `tandem recording open` printed the
    header's end reason (the server's word, unchecked) to the auditor's terminal as it was, so
    a malicious server's escape sequences drove the terminal (its title, the clipboard through
    OSC 52) and a newline printed a line of the server's own; a key id in a refusal likewise.
    Each is one line of printable ASCII now."""
    private = X25519PrivateKey.generate()
    before, first, middle, _ = recorded(private)
    key = tmp_path / "key.json"
    key.write_text(key_file(private))
    forged = "interrupted\x1b]52;c;cm0gLXJmIH4=\x07\ntandem: recording complete and unedited\u202e"
    cut = tmp_path / "cut.tandemrec"
    cut.write_bytes(container(made_for(private, end_reason=forged), before + first + middle))
    opened = tandem_in_process("recording", "open", str(cut), "--key", str(key), stdin=PASSPHRASE)
    assert opened.returncode == 0, opened.stderr
    assert opened.stderr.count("\n") == 1, opened.stderr
    assert not set(opened.stderr) & {"\x1b", "\x07", "\u202e"}, opened.stderr
    assert "(the server says: interrupted?]52;c;cm0gLXJmIH4=??tandem: recording" in opened.stderr
    other = tmp_path / "other.tandemrec"
    relabelled = dataclasses.replace(made_for(private), key_id="k\x1b[2J\nok")
    other.write_bytes(container(relabelled, flat(recorded(private))))
    refused = tandem_in_process(
        "recording", "open", str(other), "--key", str(key), stdin=PASSPHRASE
    )
    assert refused.returncode == 2
    assert refused.stderr == "tandem: this recording was made with another key (k?[2J?ok)\n"


def test_the_cli_opens_an_interrupted_recording_labelled_incomplete(tmp_path: Path) -> None:
    """`tandem recording open` of a recording a crash cut short: the events saved until then,
    the JSON and standard error saying it is incomplete; ``--require-complete`` refuses it; a
    whole recording says nothing of the kind."""
    private = X25519PrivateKey.generate()
    before, first, middle, last = recorded(private)
    key = tmp_path / "key.json"
    key.write_text(key_file(private))
    cut = tmp_path / "cut.tandemrec"
    cut.write_bytes(container(made_for(private, end_reason="interrupted"), before + first + middle))
    opened = tandem_in_process("recording", "open", str(cut), "--key", str(key), stdin=PASSPHRASE)
    assert opened.returncode == 0, opened.stderr
    result = json.loads(opened.stdout)
    assert result["complete"] is False and result["recording"]["complete"] is False
    assert result["incomplete"] == f"{crypto.Broken.TRUNCATED} (the server says: interrupted)"
    assert [e["name"] for e in result["events"]] == ["shop", "cart"]
    assert opened.stderr.startswith(
        "tandem: INCOMPLETE RECORDING: it stops where it was cut short "
        "(the server says: interrupted); 2 events saved until then"
    )
    out = tmp_path / "events.json"
    written = tandem_in_process(
        "recording", "open", str(cut), "--key", str(key), "--out", str(out), stdin=PASSPHRASE
    )
    assert "INCOMPLETE RECORDING" in written.stderr and json.loads(out.read_text())["incomplete"]
    refused = tandem_in_process(
        "recording", "open", str(cut), "--key", str(key), "--require-complete", stdin=PASSPHRASE
    )
    assert refused.returncode == 2
    assert refused.stderr == f"tandem: {crypto.Broken.TRUNCATED}\n" and not refused.stdout
    whole = tmp_path / "whole.tandemrec"
    whole.write_bytes(container(made_for(private), flat([before, first, middle, last])))
    opened = tandem_in_process("recording", "open", str(whole), "--key", str(key), stdin=PASSPHRASE)
    assert opened.returncode == 0 and opened.stderr == ""
    result = json.loads(opened.stdout)
    assert result["complete"] is True and "incomplete" not in result


def test_the_cli_refuses_a_key_file_that_is_not_one_and_an_out_it_cannot_write_clearly(
    tmp_path: Path,
) -> None:
    """Bad input to `tandem recording open` is an error message (exit 2), never a traceback:
    the recording given as its own key file (binary), a key file of absurdly nested JSON, one
    whose sealed key opens but is not an X25519 key, and an ``--out`` that cannot be written."""
    private = X25519PrivateKey.generate()
    whole = tmp_path / "whole.tandemrec"
    whole.write_bytes(container(made_for(private), flat(recorded(private))))
    key = tmp_path / "key.json"
    key.write_text(key_file(private))

    def opened(key_path: Path, *options: str) -> tuple[int, str]:
        done = tandem_in_process(
            "recording", "open", str(whole), "--key", str(key_path), *options, stdin=PASSPHRASE
        )
        return done.returncode, done.stderr

    assert opened(whole) == (2, f"tandem: {whole} is not a Tandem recording key file\n")
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 30_000 + "]" * 30_000)  # under the key files' size bound
    assert opened(nested) == (2, "tandem: this is not a Tandem recording key file\n")
    nested.write_text("[" * 100_000 + "]" * 100_000)  # over it: refused unread
    code, stderr = opened(nested)
    assert code == 2 and stderr == f"tandem: cannot read {nested}: larger than 65536 bytes\n"
    # Sealed under the passphrase as a key file is, but 16 bytes, not an X25519 private key.
    fields = json.loads(key_file(private))
    salt, nonce = os.urandom(16), os.urandom(12)
    wrap = PBKDF2HMAC(hashes.SHA256(), 32, salt, 100_000).derive(PASSPHRASE.encode())
    fields["kdf"]["salt"], fields["nonce"] = _b64u(salt), _b64u(nonce)
    aad_text = f"tandem/v1/recording-key|{fields['key_id']}".encode()
    fields["sealed"] = _b64u(AESGCM(wrap).encrypt(nonce, os.urandom(16), aad_text))
    short = tmp_path / "short.json"
    short.write_text(json.dumps(fields))
    assert opened(short) == (2, "tandem: the key file is damaged\n")
    out = tmp_path / "missing" / "events.json"
    code, stderr = opened(key, "--out", str(out))
    assert code == 2 and stderr.startswith(f"tandem: cannot write {out}: ")
    assert not out.exists()
    assert opened(key, "--out", str(tmp_path / "events.json")) == (
        0,
        f"3 events of recording r1 -> {tmp_path / 'events.json'}\n",
    )
