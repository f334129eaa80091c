"""Every error Tandem raises on purpose derives from :class:`TandemError`.

Hierarchy::

    TandemError
    ├── ConfigError          settings that cannot work (bad port, unreadable data dir, bad origin)
    ├── WeakPasswordError    a password that fails the strength rules; message says why
    ├── AuthenticationError  wrong username or password (one message for both)
    │   ├── SecondFactorError  the password was right, the second factor not (the same message)
    │   └── TemporaryPasswordError  the right temporary password, expired or claimed from its
    │                                chooser's own signed-in browser
    ├── ForbiddenError       signed in, but the role or team does not allow it
    ├── NotFoundError        no such thing in the caller's organisation (other orgs look the same)
    ├── ConflictError        the change contradicts what is stored (name taken, last admin)
    │   ├── UserExistsError  a user name that is taken
    │   └── BacklogLineWritten  an audit backlog line whose record the trail holds already
    ├── ProtocolError        a peer broke the wire protocol; carries the WebSocket close code
    ├── BusyError            too much of one costly kind of work at once (password hashes)
    ├── AuditTrailDamaged    the audit tables are gone or hold what no server writes
    ├── RecordingError       a recording or key file that does not open (wrong key, edited)
    └── StorageError         the database failed a statement (unreachable, locked, damaged)

Messages are written for the person who will read them and never contain secrets.
"""

from __future__ import annotations


class TandemError(Exception):
    """Root of every error Tandem raises deliberately."""


class ConfigError(TandemError):
    """A setting is invalid; the message names it."""


class WeakPasswordError(TandemError):
    """A password does not meet the strength rules."""


class AuthenticationError(TandemError):
    """Sign-in failed. The message never says whether the user exists."""

    def __init__(self, message: str = "Wrong username, password or authentication code.") -> None:
        super().__init__(message)


class SecondFactorError(AuthenticationError):
    """The password was right and the second factor was not (missing, wrong or used). Its
    message is the same as any failed sign-in's; the server records it apart: whoever tried
    has the account's password. ``unreadable``: no code could be right, as the account's
    second factor is sealed under another secrets key than the server's (replaced or lost)."""

    def __init__(self, *, unreadable: bool = False) -> None:
        super().__init__()
        self.unreadable = unreadable


class TemporaryPasswordError(AuthenticationError):
    """The right temporary password (one an admin or the operator chose: a new account's, a
    reset's) that may not sign in: ``reason`` ``expired`` (older than the server's
    ``temporary_password_seconds``; the message says to ask an admin for a new one) or
    ``chooser_signed_in`` (the browser carries a sign-in of ``chosen_by``, who chose it: the
    owner claims it, not its chooser). Told only to whoever typed the right password."""

    def __init__(self, message: str, *, reason: str, chosen_by: str | None) -> None:
        super().__init__(message)
        self.reason = reason
        self.chosen_by = chosen_by


class ForbiddenError(TandemError):
    """The caller is known but may not do this; the message says what would allow it."""


class NotFoundError(TandemError):
    """Nothing by that name exists for the caller. Things of other organisations raise this too,
    so their existence never leaks."""


class ConflictError(TandemError):
    """The request contradicts stored state (a name already taken, removing the last admin)."""


class ProtocolError(TandemError):
    """A peer sent something the protocol does not allow.

    ``close_code`` is the WebSocket close code the server answers with; ``str(error)`` is the
    close reason (short: WebSocket reasons are limited to 123 bytes).
    """

    def __init__(self, close_code: int, reason: str) -> None:
        super().__init__(reason[:120])
        self.close_code = close_code


class UserExistsError(ConflictError):
    """A user with that name already exists."""


class BacklogLineWritten(ConflictError):
    """A line of an audit backlog file (tandem.audit_backlog) whose record the trail holds
    already: its file was put back, or copied from another server's data directory, or the
    server that wrote it was killed before it could count it. It is not written again."""


class BusyError(TandemError):
    """The server is already doing as much of one costly kind of work (password hashing,
    recordings' downloads) as it may, for this client or for everyone; the message says which.
    Try again in ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuditTrailDamaged(TandemError):
    """The audit trail's tables are missing or hold what no server writes (tampering)."""


class RecordingError(TandemError):
    """A recording or recording key file that does not open: wrong passphrase, another key, or
    frames altered, dropped, reordered or replayed."""


class StorageError(TandemError):
    """The database failed a statement for a reason of its own (connection lost, locked too
    long, a table damaged); the message is the driver's, never the statement's values."""
