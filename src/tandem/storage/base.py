"""What the server stores, and the Protocol every storage backend implements.

Secrets are never stored in the clear: join codes and sign-in tokens appear only as digests
(:func:`tandem.crypto.secret_digest`), passwords only as argon2id hashes.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from tandem.audit import AuditStore


@dataclasses.dataclass(frozen=True, slots=True)
class UserRecord:
    username: str
    display_name: str
    role: str
    password_hash: str
    created_at: float
    totp_secret: str | None = None
    """Encrypted (tandem.crypto.SecretBox); None when the account has no second factor."""
    totp_last_step: int = 0
    recovery_codes: tuple[str, ...] = ()
    """SHA-256 digests of unused recovery codes."""


@dataclasses.dataclass(frozen=True, slots=True)
class LoginRecord:
    token_digest: str
    username: str
    expires_at: float
    last_seen: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class SessionRecord:
    session_id: str
    created_at: float
    ended_at: float | None
    end_reason: str | None
    agent: str | None


class Storage(AuditStore, Protocol):
    """Async storage. Implementations must make :meth:`take_join_code` atomic (single use) and
    :meth:`append_audit` atomic (sequence and chain)."""

    async def add_user(self, user: UserRecord) -> None:
        """Raises :class:`~tandem.exceptions.UserExistsError` if the name is taken."""
        ...

    async def get_user(self, username: str) -> UserRecord | None: ...

    async def use_second_factor(
        self, username: str, step: int | None, recovery_digest: str | None
    ) -> bool:
        """Accept a TOTP step newer than the last used, or consume a recovery code; atomic."""
        ...

    async def count_users(self) -> int: ...

    async def add_login(self, login: LoginRecord) -> None: ...

    async def get_login(self, token_digest: str) -> LoginRecord | None: ...

    async def delete_login(self, token_digest: str) -> None: ...

    async def touch_login(self, token_digest: str, now: float) -> None:
        """Record activity on a sign-in (for idle expiry)."""
        ...

    async def delete_logins_of(self, username: str) -> int:
        """Sign a user out everywhere; returns how many sign-ins ended."""
        ...

    async def put_join_code(self, code_digest: str, session_id: str, expires_at: float) -> None:
        """Raises :class:`~tandem.exceptions.TandemError` if the digest is already live."""
        ...

    async def take_join_code(self, code_digest: str, now: float) -> str | None:
        """Return the session id for a live code and delete the code, atomically; else None."""
        ...

    async def delete_join_codes(self, session_id: str) -> None: ...

    async def record_session_start(self, session_id: str, created_at: float) -> None: ...

    async def record_session_end(
        self, session_id: str, ended_at: float, reason: str, agent: str | None
    ) -> None: ...

    async def get_session(self, session_id: str) -> SessionRecord | None: ...

    async def purge_expired(self, now: float) -> None:
        """Delete expired codes and sign-ins."""
        ...

    async def close(self) -> None: ...
