"""Every error Tandem raises on purpose derives from :class:`TandemError`.

Hierarchy::

    TandemError
    ├── ConfigError          settings that cannot work (bad port, unreadable data dir, bad origin)
    ├── WeakPasswordError    a password that fails the strength rules; message says why
    ├── UserExistsError      `tandem user add` for a name that is taken
    ├── AuthenticationError  wrong username or password (one message for both)
    └── ProtocolError        a peer broke the wire protocol; carries the WebSocket close code

Messages are written for the person who will read them and never contain secrets.
"""

from __future__ import annotations


class TandemError(Exception):
    """Root of every error Tandem raises deliberately."""


class ConfigError(TandemError):
    """A setting is invalid; the message names it."""


class WeakPasswordError(TandemError):
    """A password does not meet the strength rules."""


class UserExistsError(TandemError):
    """A user with that name already exists."""


class AuthenticationError(TandemError):
    """Sign-in failed. The message never says whether the user exists."""

    def __init__(self) -> None:
        super().__init__("Wrong username, password or authentication code.")


class ProtocolError(TandemError):
    """A peer sent something the protocol does not allow.

    ``close_code`` is the WebSocket close code the server answers with; ``str(error)`` is the
    close reason (short: WebSocket reasons are limited to 123 bytes).
    """

    def __init__(self, close_code: int, reason: str) -> None:
        super().__init__(reason[:120])
        self.close_code = close_code
