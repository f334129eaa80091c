#!/usr/bin/env python3
"""Coverage-guided fuzzing (atheris) of everything that parses bytes from the network.

Targets: the customer and agent control-message decoders, the policy file loader's decoder, the
join-code normaliser, the recording container reader, the recording opener (frames chained
between a start and an end, opened with a fixed key) and the scale-out tunnel's envelopes. The
property: any input either decodes or raises the documented error (ProtocolError with a
WebSocket close code; ValueError for containers; RecordingError for recording frames; envelopes
never raise), never anything else.

    .venv/bin/python fuzzing/fuzz_codec.py -runs=20000          # bounded run (make test)
    .venv/bin/python fuzzing/fuzz_codec.py -max_total_time=600  # longer session
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    import msgspec

    from tandem import crypto, tunnel
    from tandem.exceptions import ProtocolError, RecordingError
    from tandem.policy import MaskingPolicy
    from tandem.protocol import codec
    from tandem.recordings import _Payloads, read_container

LIMIT = 4096
CLOSE_CODES = {codec.CLOSE_MALFORMED, codec.CLOSE_TOO_BIG}
RECORDING_KEY = bytes(range(1, 33))
"""A fixed X25519 private key: fuzzed frames are opened as the auditor's tools open them."""


def open_recording(frames: list[bytes]) -> None:
    opener = crypto.RecordingOpener("s1", RECORDING_KEY)
    with contextlib.suppress(RecordingError):
        for frame in frames:
            opener.open(frame)
        opener.finish()


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    choice = fdp.ConsumeIntInRange(0, 6)
    if choice == 4:
        with contextlib.suppress(ValueError):
            header, frames = read_container(b"TNDMREC1" + fdp.ConsumeBytes(fdp.remaining_bytes()))
            assert isinstance(header, dict) and all(isinstance(f, bytes) for f in frames)
        return
    if choice == 6:
        count = fdp.ConsumeIntInRange(0, 8)
        frames = [fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 130)) for _ in range(count)]
        for frame in frames[:2]:  # well-formed kinds and lengths get past the first checks
            if len(frame) > 1:
                frames.append(bytes([frame[0] % 7]) + frame[1:])
        open_recording(frames)
        # What an opened frame decodes into (flags 0-3: JSON, deflate on its own, the epoch's
        # stream with or without the preset dictionary; parts), two epochs' streams in turn, frames
        # deflated on their own among their stream's.
        payloads = _Payloads()
        for i, frame in enumerate(frames):
            with contextlib.suppress(RecordingError):
                payloads.push(bytes([frame[0] % 4]) + frame[1:] if frame else frame, i % 2)
        return
    if choice == 5:
        raw = fdp.ConsumeBytes(fdp.remaining_bytes())
        tunnel.decode_to_owner(raw)  # never raises: a bad envelope is dropped, the host goes on
        tunnel.decode_to_edge(raw)
        return
    text = fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes())
    if choice in (0, 1):
        decode = codec.decode_customer if choice == 0 else codec.decode_agent
        try:
            decode(text, LIMIT)
        except ProtocolError as exc:
            if exc.close_code not in CLOSE_CODES or len(str(exc)) > 123:
                raise
    elif choice == 2:
        with contextlib.suppress(msgspec.ValidationError, msgspec.DecodeError):
            msgspec.json.decode(text.encode(), type=MaskingPolicy)
    else:
        normalized = crypto.normalize_join_code(text)
        assert " " not in normalized and "-" not in normalized


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
