"""Rotating the secrets key (``tandem secrets ...``; docs/operations.md, "Rotating the secrets
key").

``secrets.key`` is a key ring (:class:`tandem.crypto.SecretBox`). A rotation goes:

1. *stage* (several servers only): a new key is added as the ring's ``next`` key, which opens
   and checks but makes nothing. Copied to every server and taken up by a restart, every server
   can read what any of them will seal with it.
2. *rotate*: the staged key (or, with none, a new one) becomes current; the key it replaces is
   kept as a previous key. Every value the database keeps sealed (:data:`SEALED_KINDS`) is
   sealed again with the new key, one row at a time, each only if it did not change
   meanwhile. The ring file is replaced (whole, flushed) *before* any value is resealed, so a
   crash at any point leaves every value readable by the ring on disk; running ``tandem
   secrets reseal`` (or ``rotate``'s reseal again) finishes the job.
3. *retire*: the previous keys are dropped, once nothing needs them: every sealed value opens
   with the current key, and no account's recovery codes are keyed with a previous key.
   Recovery codes cannot be keyed again (only their digests are stored): they keep working
   under a previous key until used, renewed by their owner (``POST /api/me/recovery-codes``)
   or replaced by a new second factor; ``retire --force`` drops the key anyway and names the
   accounts whose codes it leaves unusable.

Join codes, resume tokens and practice tickets are short-lived: they are checked under every
key of the ring, and a session begun before the retirement may not resume after it.

Each step is on the audit trail of no organisation (``(none)``, the operator's).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from tandem import crypto
from tandem.exceptions import ConfigError, ConflictError
from tandem.storage.base import NO_ORG, SealedSecret, Storage

Record = Callable[..., Awaitable[None]]


@dataclasses.dataclass(frozen=True, slots=True)
class Census:
    """What needs which key of the ring."""

    current: str
    """The current key's id."""
    previous: tuple[str, ...]
    staged: str | None
    sealed: int
    """Values the database keeps sealed."""
    sealed_with_previous: tuple[SealedSecret, ...]
    """Sealed values that open only with a previous (or the staged) key: to reseal."""
    unreadable: tuple[SealedSecret, ...]
    """Sealed values no key of the ring opens (sealed under a key lost or replaced)."""
    codes_with_previous: dict[str, int]
    """Accounts whose unused recovery codes are keyed with a previous key: how many each."""
    codes_lost: dict[str, int]
    """Accounts whose recovery codes are keyed with a key the ring does not hold (unusable)."""
    codes_unkeyed: dict[str, int]
    """Accounts with recovery codes an older version stored unkeyed (need no key)."""


@contextlib.contextmanager
def exclusive(key_file: Path) -> Iterator[None]:
    """Held by each ``tandem secrets`` command that changes the key file or what is sealed:
    two at once each read the ring, each wrote its own new key over the other's (and removed
    the other's file being written), and what one sealed with a key the other's file left out
    opened with no key. A lock file beside the key (``secrets.key.lock``); raises
    ConflictError at once while another command holds it, ConfigError if it cannot be made."""
    target = Path(os.path.realpath(key_file))
    lock = target.with_name(target.name + ".lock")
    try:
        descriptor = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        # A killed command leaves the file but not the lock (the lock is the process's): a
        # file that cannot be opened was made otherwise (a link, another user's).
        raise ConfigError(
            f"cannot lock the secrets key {key_file}: {lock}: {exc.strerror} (not a file this "
            "user can open: remove it if no `tandem secrets` command is running)"
        ) from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConflictError(
                f"another `tandem secrets` command is running on {key_file}: let it finish, "
                "then run this one again"
            ) from None
        yield
    finally:
        os.close(descriptor)


def load(key_file: Path) -> crypto.KeyRing:
    """The ring in ``key_file``; ConfigError (one line) if it is missing or not a ring."""
    if not key_file.is_file():
        raise ConfigError(f"there is no secrets key at {key_file}")
    return crypto.SecretBox(key_file).ring


def _write(key_file: Path, ring: crypto.KeyRing) -> None:
    try:
        crypto.write_key_ring(key_file, ring)
    except OSError as exc:
        raise ConfigError(f"cannot write the secrets key {key_file}: {exc.strerror}") from None


def _key_of(digest: str) -> str | None:
    """The key id a recovery code's digest names (``k2:<id>:``), ``""`` for a keyed digest of
    an earlier version (``k1:``), None for an unkeyed one."""
    if digest.startswith("k2:"):
        return digest.split(":", 2)[1]
    return "" if digest.startswith("k1:") else None


async def census(storage: Storage, box: crypto.SecretBox) -> Census:
    """What needs which key (reads every sealed value and recovery-code digest once)."""
    ring = box.ring
    previous_ids = tuple(crypto.key_id(key) for key in ring.previous)
    staged_id = crypto.key_id(ring.staged) if ring.staged else None
    sealed = await storage.sealed_secrets()
    with_previous: list[SealedSecret] = []
    unreadable: list[SealedSecret] = []
    for secret in sealed:
        if box.sealed_with_current(secret.sealed):
            continue
        try:
            box.open(secret.sealed)
        except ConfigError:
            unreadable.append(secret)
        else:
            with_previous.append(secret)
    codes_with_previous: dict[str, int] = {}
    codes_lost: dict[str, int] = {}
    codes_unkeyed: dict[str, int] = {}
    for username, digest in await storage.recovery_code_digests():
        key = _key_of(digest)
        if key is None:
            bucket = codes_unkeyed
        elif key in ("", ring.current_id):  # unnamed: the key current before ids (named at
            continue  # every rotation, so an unnamed one is the current key's)
        elif key in previous_ids or key == staged_id:
            bucket = codes_with_previous
        else:
            bucket = codes_lost
        bucket[username] = bucket.get(username, 0) + 1
    return Census(
        ring.current_id,
        previous_ids,
        staged_id,
        len(sealed),
        tuple(with_previous),
        tuple(unreadable),
        codes_with_previous,
        codes_lost,
        codes_unkeyed,
    )


async def stage(key_file: Path, record: Record) -> crypto.KeyRing:
    """Add a staged key to the ring in ``key_file`` (ConfigError if one is staged already),
    recorded first: a trail that cannot be written leaves the file as it was."""
    ring = load(key_file)
    try:
        staged = ring.with_staged()
    except ValueError as exc:
        raise ConfigError(f"{exc}: run `tandem secrets rotate` to make it current") from None
    assert staged.staged is not None
    subject = crypto.key_id(staged.staged)
    await record("secrets_key_staged", actor="cli", org=NO_ORG, subject=subject)
    _write(key_file, staged)
    return staged


async def reseal(storage: Storage, box: crypto.SecretBox) -> tuple[int, int]:
    """Seal again with the current key every value a previous (or the staged) key sealed.
    Returns (resealed, changed meanwhile: left as the change made them). A value no key opens
    is left as it is (:attr:`Census.unreadable`). Raises StorageError when the database
    fails: what was resealed stays so, the rest opens with a previous key still."""
    resealed = changed = 0
    for secret in (await census(storage, box)).sealed_with_previous:
        if await storage.reseal_secret(secret, box.reseal(secret.sealed)):
            resealed += 1
        else:
            changed += 1
    return resealed, changed


async def rotate(
    storage: Storage, key_file: Path, record: Record
) -> tuple[crypto.SecretBox, int, int]:
    """Make the staged key (or a new one) current, then reseal everything (:func:`reseal`).
    The recovery codes keyed before key ids are named with the key current until now, so that
    the census can tell them from the new key's. Returns the new box, the values resealed and
    those changed meanwhile."""
    before = crypto.SecretBox(key_file).ring  # as read now: the box follows the file
    await storage.name_recovery_digests(before.current_id)
    rotated = before.rotated()
    # Recorded first (as a retirement is): a trail that cannot be written leaves the file as
    # it was, never a new current key the trail does not name.
    await record(
        "secrets_key_rotated",
        actor="cli",
        org=NO_ORG,
        subject=rotated.current_id,
        replaced=before.current_id,
    )
    _write(key_file, rotated)  # before anything is sealed with it
    box = crypto.SecretBox(key_file)
    resealed, changed = await reseal(storage, box)
    return box, resealed, changed


async def retire(
    storage: Storage, key_file: Path, record: Record, *, force: bool = False
) -> tuple[crypto.SecretBox, Census]:
    """Reseal what a previous key still seals, then drop the previous keys. Raises
    ConflictError, dropping nothing, while a sealed value needs one (a server still sealing
    with it) or, without ``force``, while recovery codes are keyed with one (the census says
    whose). Returns the box of the new ring and the census the decision was made on."""
    box = crypto.SecretBox(key_file)
    if not box.ring.previous:
        raise ConflictError("the secrets key has no previous key to retire")
    await reseal(storage, box)
    found = await census(storage, box)
    if found.sealed_with_previous:
        raise ConflictError(
            f"{len(found.sealed_with_previous)} stored secrets are still sealed with a previous "
            "key (a server still running with the old key ring sealed them): restart every "
            "server with the new secrets.key, then retire again"
        )
    if found.codes_with_previous and not force:
        names = ", ".join(sorted(found.codes_with_previous))
        raise ConflictError(
            f"the recovery codes of {len(found.codes_with_previous)} accounts are keyed with a "
            f"previous key ({names}): have them renew their codes, or retire with --force to "
            "leave those codes unusable"
        )
    ring = box.ring
    retired = ring.retired()
    details: dict[str, Any] = {"retired": [crypto.key_id(k) for k in ring.previous]}
    if found.codes_with_previous:
        details["recovery_codes_unusable"] = sorted(found.codes_with_previous)
    await record(
        "secrets_key_retired", actor="cli", org=NO_ORG, subject=retired.current_id, **details
    )
    # Codes keyed with a key being retired will match nothing: gone, so that the codes an
    # account is told it has left (a sign-in's record) are those that work. Deleted before the
    # file is written: a database failing here leaves the key, and `retire` can run again
    # (after, the key was gone and the dead codes stayed, with no previous key to retire).
    dropped = {crypto.key_id(key) for key in ring.previous}
    dead = [(u, d) for u, d in await storage.recovery_code_digests() if _key_of(d) in dropped]
    await storage.forget_recovery_codes(dead)
    _write(key_file, retired)
    return crypto.SecretBox(key_file), found
