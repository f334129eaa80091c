"""The recording container (tandem.recordings): what the server hands out, read back exactly, and
anything else refused with ValueError."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import struct
import zlib

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
from tandem.recordings import Recorder, container, read_container, recording_events
from tandem.storage.base import RecordingRecord

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


def aad(kind: int, *numbers: int) -> bytes:
    return b"tandem/v1|s1|" + bytes([kind]) + b"".join(struct.pack(">Q", n) for n in numbers)


def recorded(private: X25519PrivateKey, payloads: list[dict[str, object]]) -> list[bytes]:
    """Frames of one epoch: the content key wrapped for the recording key, then the content."""
    public = private.public_key().public_bytes_raw()
    content_key, ephemeral = os.urandom(32), X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(public))
    wrap = HKDF(hashes.SHA256(), 32, ephemeral_public + public, b"tandem/v1/recording").derive(
        shared
    )
    nonce = os.urandom(12)
    frames = [
        b"\x05"
        + struct.pack(">Q", 1)
        + ephemeral_public
        + nonce
        + AESGCM(wrap).encrypt(nonce, content_key, aad(5, 1))
    ]
    for counter, payload in enumerate(payloads):
        body = json.dumps(payload).encode()
        packed = b"\x01" + zlib.compress(body)[2:-4] if counter % 2 else b"\x00" + body
        sealed = AESGCM(content_key).encrypt(
            bytes(4) + struct.pack(">Q", counter), packed, aad(1, 1, counter)
        )
        frames.append(b"\x01" + struct.pack(">QQ", 1, counter) + sealed)
    return frames


EVENTS = [{"k": "events", "events": [{"type": 2, "n": i}]} for i in range(3)]


def made_for(private: X25519PrivateKey) -> RecordingRecord:
    public = _b64u(private.public_key().public_bytes_raw())
    return dataclasses.replace(RECORDING, key_id=crypto.recording_key_id(public))


def test_a_recording_opens_offline_with_its_key_file() -> None:
    private = X25519PrivateKey.generate()
    frames = recorded(private, EVENTS)
    data = container(made_for(private), frames)
    header, events = recording_events(data, key_file(private), PASSPHRASE)
    assert header["recording_id"] == "r1"
    assert events == [{"type": 2, "n": 0}, {"type": 2, "n": 1}, {"type": 2, "n": 2}]


def test_a_wrong_passphrase_another_key_or_an_edited_recording_is_refused() -> None:
    private = X25519PrivateKey.generate()
    frames = recorded(private, EVENTS)
    data = container(made_for(private), frames)
    with pytest.raises(RecordingError, match="wrong passphrase"):
        recording_events(data, key_file(private), "not the passphrase")
    with pytest.raises(RecordingError, match="another key"):
        recording_events(data, key_file(X25519PrivateKey.generate()), PASSPHRASE)
    altered = bytearray(frames[2])
    altered[-1] ^= 1
    for edited in (
        [frames[0], frames[1], frames[3]],  # a frame dropped
        [frames[0], frames[2], frames[1], frames[3]],  # reordered
        [frames[0], frames[1], frames[1]],  # replayed
        [frames[0], frames[1], bytes(altered)],  # altered
    ):
        with pytest.raises(RecordingError):
            recording_events(container(made_for(private), edited), key_file(private), PASSPHRASE)
    with pytest.raises(RecordingError):
        recording_events(b"not a recording", key_file(private), PASSPHRASE)
    with pytest.raises(RecordingError, match="not a Tandem recording key"):
        recording_events(data, "{}", PASSPHRASE)
