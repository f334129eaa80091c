"""The codec: every input either decodes to a valid message or raises ProtocolError."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tandem.exceptions import ProtocolError
from tandem.protocol import codec
from tandem.protocol.messages import Consent, Create, Ended, Join, Resume

LIMIT = 4096


def test_valid_customer_messages_decode() -> None:
    assert codec.decode_customer('{"v":1,"type":"create"}', LIMIT) == Create(v=1)
    assert codec.decode_customer('{"v":1,"type":"consent","granted":false}', LIMIT) == Consent(
        v=1, granted=False
    )
    message = codec.decode_customer(
        '{"v":1,"type":"resume","session_id":"abc","resume_token":"t_-1"}', LIMIT
    )
    assert message == Resume(v=1, session_id="abc", resume_token="t_-1")


def test_agent_messages_are_not_customer_messages() -> None:
    with pytest.raises(ProtocolError) as info:
        codec.decode_customer('{"v":1,"type":"join","code":"1"}', LIMIT)
    assert info.value.close_code == codec.CLOSE_MALFORMED


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"create"}',
        '{"v":2,"type":"create"}',
        '{"v":"1","type":"create"}',
        '{"v":1,"type":"create","extra":1}',
        '{"v":1,"type":"consent","granted":"yes"}',
        '{"v":1,"type":"resume","session_id":"../../etc","resume_token":"x"}',
        "[]",
        "null",
        "",
    ],
)
def test_invalid_frames_close_4400(frame: str) -> None:
    with pytest.raises(ProtocolError) as info:
        codec.decode_customer(frame, LIMIT)
    assert info.value.close_code == codec.CLOSE_MALFORMED
    assert str(info.value).startswith("malformed message")


def test_text_with_nul_closes_4400() -> None:
    """SQLite would store it and PostgreSQL refuses it as a database failure: refused first
    (most fields have patterns that refuse it anyway; a join code's secret part does not)."""
    with pytest.raises(ProtocolError) as info:
        codec.decode_agent('{"v":1,"type":"join","code":"12345 \\u0000"}', LIMIT)
    assert info.value.close_code == codec.CLOSE_MALFORMED
    assert "NUL" in str(info.value)


def test_only_a_real_nul_is_refused() -> None:
    """An escaped backslash followed by "u0000" is text, not NUL."""
    assert codec.decode_agent('{"v":1,"type":"join","code":"12345 \\\\u0000"}', LIMIT)
    assert codec.json_carries_nul('["a", {"b": ["\\u0000"]}]')
    assert codec.json_carries_nul(b'{"\\u0000": 1}')
    assert not codec.json_carries_nul('{"a": "\\\\u0000"}')


def test_size_is_checked_before_parsing() -> None:
    frame = json.dumps({"v": 1, "type": "join", "code": "1" * 10})
    with pytest.raises(ProtocolError) as info:
        codec.decode_agent(frame, limit=10)
    assert info.value.close_code == codec.CLOSE_TOO_BIG


def test_size_counts_utf8_bytes_not_characters() -> None:
    with pytest.raises(ProtocolError):
        codec.check_size("é" * 6, limit=10)
    codec.check_size("é" * 5, limit=10)


@given(st.text(max_size=300))
def test_arbitrary_text_never_crashes_the_customer_decoder(frame: str) -> None:
    try:
        codec.decode_customer(frame, LIMIT)
    except ProtocolError as exc:
        assert exc.close_code in (codec.CLOSE_MALFORMED, codec.CLOSE_TOO_BIG)
        assert len(str(exc).encode()) <= 123 * 2  # stays short enough for a close reason


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(["v", "type", "code", "granted", "x"]), children, max_size=5
            )
        ),
        max_leaves=12,
    )
)
def test_arbitrary_json_never_crashes_the_agent_decoder(value: object) -> None:
    try:
        message = codec.decode_agent(json.dumps(value), LIMIT)
    except ProtocolError:
        return
    assert isinstance(message, Join) or message.__class__.__name__ == "Leave"


def test_reason_is_short_enough_for_a_websocket_close_frame() -> None:
    error = ProtocolError(4400, "x" * 500)
    assert len(str(error)) <= 123


def test_encode_writes_version_and_type() -> None:
    assert json.loads(codec.encode(Ended(reason="stopped"))) == {
        "v": 1,
        "type": "ended",
        "reason": "stopped",
    }
