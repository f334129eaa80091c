"""The recording container (tandem.recordings): what the server hands out, read back exactly, and
anything else refused with ValueError."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tandem.recordings import Recorder, container, read_container
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
