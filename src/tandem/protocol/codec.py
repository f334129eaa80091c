"""Bytes <-> messages: size, JSON shape and version are checked before anything else sees one."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from tandem.exceptions import ProtocolError
from tandem.protocol.messages import AgentMessage, CustomerMessage, ServerMessage

CLOSE_NORMAL = 1000
CLOSE_TOO_BIG = 1009
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_MALFORMED = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_FORBIDDEN = 4403  # the same code: signed in, but the role may not use this socket
CLOSE_NOT_FOUND = 4404
CLOSE_TIMEOUT = 4408
CLOSE_TOO_MANY = 4429
CLOSE_OVERLOADED = 4503

_customer_decoder: msgspec.json.Decoder[CustomerMessage] = msgspec.json.Decoder(CustomerMessage)
_agent_decoder: msgspec.json.Decoder[AgentMessage] = msgspec.json.Decoder(AgentMessage)
_encoder = msgspec.json.Encoder()

M = TypeVar("M")


def check_size(frame: str | bytes, limit: int) -> None:
    """Raise a 1009 :class:`ProtocolError` when ``frame`` is over ``limit`` bytes."""
    size = len(frame.encode()) if isinstance(frame, str) else len(frame)
    if size > limit:
        raise ProtocolError(CLOSE_TOO_BIG, f"message too big: {size} > {limit} bytes")


def carries_nul(value: object) -> bool:
    """Whether decoded JSON holds the NUL character (U+0000) in any string. SQLite would store
    it and PostgreSQL refuses it (as a database failure), so input with it is refused first."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(carries_nul(k) or carries_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(carries_nul(item) for item in value)
    return False


def json_carries_nul(text: str | bytes) -> bool:
    """:func:`carries_nul` of a JSON document already known to be valid (JSON can only write
    NUL as an escape, so most documents are answered without decoding them again)."""
    escape = "\\u0000" if isinstance(text, str) else b"\\u0000"
    return escape in text and carries_nul(msgspec.json.decode(text))  # type: ignore[operator]


def _decode(decoder: msgspec.json.Decoder[M], frame: str, limit: int) -> M:
    check_size(frame, limit)
    try:
        message = decoder.decode(frame)
    except msgspec.ValidationError as exc:
        raise ProtocolError(CLOSE_MALFORMED, f"malformed message: {exc}") from None
    except msgspec.DecodeError:
        raise ProtocolError(CLOSE_MALFORMED, "malformed message: not valid JSON") from None
    if json_carries_nul(frame):
        raise ProtocolError(CLOSE_MALFORMED, "malformed message: text with NUL (U+0000)")
    return message


def decode_customer(frame: str, limit: int) -> CustomerMessage:
    """Parse a customer's control frame; raises :class:`ProtocolError` (1009 or 4400)."""
    return _decode(_customer_decoder, frame, limit)


def decode_agent(frame: str, limit: int) -> AgentMessage:
    """Parse an agent's control frame; raises :class:`ProtocolError` (1009 or 4400)."""
    return _decode(_agent_decoder, frame, limit)


def encode(message: ServerMessage) -> str:
    """Serialise a server message as JSON text."""
    return _encoder.encode(message).decode()
