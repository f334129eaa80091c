"""All secret handling in one place: join codes, tokens, secret hashing, password hashing,
customer tokens (JWT), recording public keys.

Randomness is injected as an :class:`Entropy` (default: the OS CSPRNG via :mod:`secrets`) so tests
can make it deterministic; nothing else in Tandem calls a random source directly.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import hmac
import json
import logging
import os
import secrets
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import argon2
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from tandem.exceptions import AuthenticationError, BusyError, ConfigError, RecordingError
from tandem.files import KEY_FILE_MAX_BYTES, read_file
from tandem.private_files import private_file

_MAX_PASSWORD_BYTES = 1024

_log = logging.getLogger("tandem.crypto")


class Entropy(Protocol):
    def __call__(self, nbytes: int) -> bytes:
        """Return ``nbytes`` unpredictable bytes."""
        ...


system_entropy: Entropy = secrets.token_bytes


def new_join_code(entropy: Entropy, digits: int) -> str:
    """A uniformly random code of ``digits`` decimal digits (leading zeros kept).

    Uses rejection sampling so every code is equally likely.
    """
    bound = 10**digits
    nbytes = (bound.bit_length() + 7) // 8 + 1
    limit = (256**nbytes // bound) * bound
    while True:
        value = int.from_bytes(entropy(nbytes), "big")
        if value < limit:
            return str(value % bound).zfill(digits)


def normalize_join_code(text: str) -> str:
    """Strip the spaces and dashes people type between digit groups."""
    return "".join(ch for ch in text if ch not in " -\u00a0\t")


def new_token(entropy: Entropy, nbytes: int = 32) -> str:
    """A URL-safe random token (``nbytes`` of entropy) for cookies and resume tokens."""
    return _b64u(entropy(nbytes))


def secret_digest(secret: str, purpose: str) -> str:
    """Digest under which a short-lived secret is stored, so storage never holds it in the clear.

    ``purpose`` separates domains (a code and a cookie never share a digest).
    """
    return hashlib.sha256(f"tandem:{purpose}:{secret}".encode()).hexdigest()


def secrets_equal(a: str, b: str) -> bool:
    """Compare two secrets in constant time."""
    return hmac.compare_digest(a.encode(), b.encode())


class SecretBox:
    """Encrypts small secrets at rest (TOTP seeds, SSO settings, sites' token keys) and keys
    digests of short secrets, with a key ring kept in a file (``secrets.key``), not the database.

    Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`; errors are opaque by design. The file
    holds one key a line: the first is the *current* key (it seals and keys everything new);
    further lines are *previous* keys, kept only to open and check what was made under them
    until ``tandem secrets retire`` drops them; a line ``next <key>`` is a *staged* key, which
    opens and checks but makes nothing until ``tandem secrets rotate`` makes it current (so
    every server of a cluster can read what the first one seals with it: docs/operations.md,
    "Rotating the secrets key"). A file of one key, as every earlier version wrote it, is a ring
    of its current key alone. Lines starting ``#`` are comments.
    """

    def __init__(self, key_file: Path) -> None:
        try:
            if key_file.exists():
                private_file(key_file)  # tightened if an older version left it looser
                stamp = _stamp(key_file)
                ring = KeyRing.parse(read_file(key_file, KEY_FILE_MAX_BYTES))
            else:
                ring = KeyRing((Fernet.generate_key(),))
                private_file(key_file)
                key_file.write_bytes(ring.text())
                stamp = _stamp(key_file)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot use the secrets key {key_file}: {exc}") from None
        self._file = key_file
        self._refused: tuple[int, ...] = ()
        self._take(ring, stamp)

    def _take(self, ring: KeyRing, stamp: tuple[int, ...]) -> None:
        # One assignment: a thread reading meanwhile sees the old ring or the new one whole.
        self._keys = _RingKeys.of(ring, stamp)

    @property
    def ring(self) -> KeyRing:
        """The ring as the key file holds it now (taken up again if replaced)."""
        return self._fresh().ring

    def _fresh(self) -> _RingKeys:
        """Take up the key file again if it was replaced (``tandem secrets``, or a copy from
        the server that rotated): a running server follows a rotation without a restart. A
        file that cannot be read or is no ring now leaves the ring as it was (logged)."""
        try:
            stamp = _stamp(self._file)
        except OSError as exc:  # removed, or its directory unreadable
            return self._keep((-1,), exc)
        if stamp in (self._keys.stamp, self._refused):
            return self._keys
        try:
            ring = KeyRing.parse(read_file(self._file, KEY_FILE_MAX_BYTES))
        except (OSError, ValueError) as exc:
            return self._keep(stamp, exc)
        self._take(ring, stamp)
        _log.warning(
            "took up the secrets key %s again: current key %s", self._file, ring.current_id
        )
        return self._keys

    def _keep(self, stamp: tuple[int, ...], error: Exception) -> _RingKeys:
        """The ring as read, the file as it is now refused: logged once per file, not per use."""
        if stamp != self._refused:
            self._refused = stamp
            _log.error(
                "cannot take up the secrets key %s again (%s): kept as read", self._file, error
            )
        return self._keys

    def seal(self, secret: str) -> str:
        return self._fresh().current.encrypt(secret.encode()).decode()

    def digest(self, secret: str, purpose: str) -> str:
        """Keyed digest (HMAC-SHA256 under a key derived from the current key) under which a
        short secret is stored or kept: without the key file, trying every join code against
        it is no use. ``purpose`` separates domains as in :func:`secret_digest`; the ``k1:``
        prefix tells it from the unkeyed digests of older versions."""
        return "k1:" + _keyed(self._fresh().digest_keys[0], secret, purpose)

    def digests(self, secret: str, purpose: str) -> tuple[str, ...]:
        """:meth:`digest` under every key of the ring (the current key's first): what a
        digest made before a rotation, or by a server that has not taken up the new key yet,
        may be."""
        return tuple("k1:" + _keyed(key, secret, purpose) for key in self._fresh().digest_keys)

    def named_digest(self, secret: str, purpose: str) -> str:
        """:meth:`digest` naming the key it was made with (``k2:<key id>:``), for digests kept
        long (recovery codes): a rotation can tell which still need a previous key."""
        keys = self._fresh()
        return f"k2:{keys.ring.current_id}:" + _keyed(keys.digest_keys[0], secret, purpose)

    def named_digests(self, secret: str, purpose: str) -> tuple[str, ...]:
        """Every form :meth:`named_digest` (or, before key ids, :meth:`digest`) may have
        stored ``secret`` under with a key of the ring."""
        keys = self._fresh()
        found: list[str] = []
        for key_id, key in zip(keys.ring.readable_ids, keys.digest_keys, strict=True):
            mac = _keyed(key, secret, purpose)
            found += [f"k2:{key_id}:{mac}", f"k1:{mac}"]
        return tuple(found)

    def open(self, sealed: str) -> str:
        fernet = self._fresh().fernet
        try:
            return fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ConfigError("a stored secret cannot be decrypted: wrong secrets key?") from None

    def sealed_with_current(self, sealed: str) -> bool:
        """True when ``sealed`` opens with the current key alone (no previous key needed)."""
        current = self._fresh().current
        try:
            current.decrypt(sealed.encode())
        except InvalidToken:
            return False
        return True

    def reseal(self, sealed: str) -> str:
        """``sealed`` sealed again with the current key. Raises ConfigError when no key of the
        ring opens it."""
        fernet = self._fresh().fernet
        try:
            return fernet.rotate(sealed.encode()).decode()
        except InvalidToken:
            raise ConfigError("a stored secret cannot be decrypted: wrong secrets key?") from None


@dataclasses.dataclass(frozen=True, slots=True)
class _RingKeys:
    """A ring read from its file, with its Fernets and digest keys made once."""

    ring: KeyRing
    stamp: tuple[int, ...]
    current: Fernet
    fernet: MultiFernet
    digest_keys: tuple[bytes, ...]
    """Digests of short secrets (join codes: five digits) are keyed, so that storage alone
    does not give the secret back by trying every value."""

    @classmethod
    def of(cls, ring: KeyRing, stamp: tuple[int, ...]) -> _RingKeys:
        fernet = MultiFernet([Fernet(key) for key in ring.readable])
        digest_keys = tuple(_digest_key(key) for key in ring.readable)
        return cls(ring, stamp, Fernet(ring.current), fernet, digest_keys)


def _stamp(path: Path) -> tuple[int, ...]:
    """What tells a replaced key file (a rename gives a new inode; an edit a new time)."""
    found = os.stat(path)
    return (found.st_ino, found.st_mtime_ns, found.st_size)


def _digest_key(key: bytes) -> bytes:
    return hmac.new(key, b"tandem:digest-key", hashlib.sha256).digest()


def _keyed(digest_key: bytes, secret: str, purpose: str) -> str:
    return hmac.new(digest_key, f"tandem:{purpose}:{secret}".encode(), hashlib.sha256).hexdigest()


def key_id(key: bytes) -> str:
    """A short public name of a secrets key (8 hex digits of an HMAC under it): names it in
    digests, records and messages without telling anything of it."""
    return hmac.new(key, b"tandem:key-id", hashlib.sha256).hexdigest()[:8]


@dataclasses.dataclass(frozen=True, slots=True)
class KeyRing:
    """The keys of ``secrets.key`` (:class:`SecretBox`): ``current`` first, then ``previous``;
    ``staged`` is the next one, if any. Raises ValueError for a file that is not one."""

    keys: tuple[bytes, ...]
    staged: bytes | None = None

    @property
    def current(self) -> bytes:
        return self.keys[0]

    @property
    def current_id(self) -> str:
        return key_id(self.keys[0])

    @property
    def previous(self) -> tuple[bytes, ...]:
        return self.keys[1:]

    @property
    def readable(self) -> tuple[bytes, ...]:
        """Every key that opens and checks: current, previous, staged."""
        return self.keys + ((self.staged,) if self.staged else ())

    @property
    def readable_ids(self) -> tuple[str, ...]:
        return tuple(key_id(key) for key in self.readable)

    @classmethod
    def parse(cls, data: bytes) -> KeyRing:
        keys: list[bytes] = []
        staged: bytes | None = None
        for line in data.decode("ascii").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("next "):
                if staged is not None:
                    raise ValueError("more than one staged (next) key")
                staged = line.removeprefix("next ").strip().encode()
                _key_text(staged)  # ValueError if it is none
                continue
            _key_text(line.encode())
            keys.append(line.encode())
        if not keys:
            raise ValueError("no key in the file")
        # A key twice is an edited file: its "previous" key would be its current one, which
        # a retirement drops (and the recovery codes keyed with it).
        every = [*keys, *([staged] if staged else [])]
        material = [base64.urlsafe_b64decode(key) for key in every]
        for key, bits in zip(every, material, strict=True):
            if material.count(bits) > 1:
                raise ValueError(f"key {key_id(key)} is in the file twice")
        return cls(tuple(keys), staged)

    def text(self) -> bytes:
        lines = [key.decode() for key in self.keys]
        if self.staged:
            lines.append("next " + self.staged.decode())
        if len(lines) == 1:
            return self.keys[0]  # as every earlier version wrote it
        header = (
            "# Tandem secrets key ring: the first key is current, the others open what older "
            "keys made;\n# a 'next' key is staged (tandem secrets rotate makes it current). "
            "Back this file up: docs/operations.md\n"
        )
        return (header + "\n".join(lines) + "\n").encode()

    def with_staged(self) -> KeyRing:
        """A new staged key added (ValueError if one is staged already)."""
        if self.staged is not None:
            raise ValueError(f"key {key_id(self.staged)} is staged already")
        return KeyRing(self.keys, Fernet.generate_key())

    def rotated(self) -> KeyRing:
        """The staged key (or, with none, a new one) made current; the current one kept as a
        previous key."""
        return KeyRing(((self.staged or Fernet.generate_key()), *self.keys))

    def retired(self) -> KeyRing:
        """The current key (and a staged one) alone: the previous keys dropped."""
        return KeyRing(self.keys[:1], self.staged)


def _key_text(key: bytes) -> None:
    """Raise ValueError unless ``key`` is a Fernet key as Fernet writes one: its base64 text
    exactly. (Fernet also takes text with characters after the padding, the same key to it
    but another to the digests and ids made from the text: one key that was two.)"""
    Fernet(key)
    # The standard alphabet's + and / are taken as Fernet takes them (a key made by hand).
    if base64.urlsafe_b64encode(base64.urlsafe_b64decode(key)) != key.translate(_URLSAFE):
        raise ValueError("a line is not a key as `tandem secrets` writes one")


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def write_key_ring(key_file: Path, ring: KeyRing) -> None:
    """Replace ``key_file`` with ``ring`` so that a crash at any moment leaves the old file or
    the new one whole, never part of either: written beside it (0600), flushed to the disk,
    renamed over it, the directory flushed. A link is followed: the file it points to is
    replaced (the key kept on another volume stays there, the link stays). Raises OSError."""
    key_file = Path(os.path.realpath(key_file))
    temporary = key_file.with_name(key_file.name + ".new")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()  # a crash's leftover (a link there is removed, never followed)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with contextlib.suppress(FileNotFoundError):
        owner = os.stat(key_file)
        if (owner.st_uid, owner.st_gid) != (os.getuid(), os.getgid()):
            # The operator ran `tandem secrets` as root: the server's account must still read
            # the file it replaces (else the servers keep the old ring; logged).
            with contextlib.suppress(PermissionError):
                os.fchown(descriptor, owner.st_uid, owner.st_gid)
    with os.fdopen(descriptor, "wb") as file:
        file.write(ring.text())
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, key_file)
    directory = os.open(key_file.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def new_recovery_codes(entropy: Entropy, count: int = 10) -> list[str]:
    """Codes like `k7dq-3mzt-x9pa` (60 bits each), shown once; only their digests are stored."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    codes = []
    for _ in range(count):
        raw = "".join(alphabet[b % len(alphabet)] for b in entropy(12))
        codes.append(f"{raw[0:4]}-{raw[4:8]}-{raw[8:12]}")
    return codes


def recovery_digest(code: str, box: SecretBox, username: str) -> str:
    """How a recovery code of ``username`` is stored: keyed with ``box`` (HMAC under the
    secrets key, outside the database) and bound to the account. Unkeyed, as older versions
    stored it (:func:`legacy_recovery_digest`), a copy of the database alone checked guesses
    offline at SHA-256's speed, against every account's codes at once (60 bits each)."""
    return box.named_digest(f"{username}:{_recovery_text(code)}", "recovery")


def recovery_digests(code: str, box: SecretBox, username: str) -> tuple[str, ...]:
    """Every digest ``code`` of ``username`` may be stored under: keyed with any key of the
    ring (named or, as before key ids, not), or unkeyed as the oldest versions stored it
    (:func:`legacy_recovery_digest`). Checked in one statement whatever the ring holds."""
    text = f"{username}:{_recovery_text(code)}"
    return (*box.named_digests(text, "recovery"), legacy_recovery_digest(code))


def legacy_recovery_digest(code: str) -> str:
    """The unkeyed digest older versions stored a recovery code under: still accepted, once,
    for codes issued before (they go when used, or when a new second factor is set up)."""
    return secret_digest(_recovery_text(code), "recovery")


def _recovery_text(code: str) -> str:
    return code.strip().lower().replace(" ", "")


_hasher = argon2.PasswordHasher(type=argon2.Type.ID)


_dummy_hashes: dict[argon2.PasswordHasher, str] = {}


def _dummy_hash() -> str:
    """Verified against when a user does not exist, so both cases cost the same time. Made on
    first use (one per hasher), not at import: every CLI command would pay a full-cost hash."""
    hasher = _hasher
    if hasher not in _dummy_hashes:
        _dummy_hashes[hasher] = hasher.hash("tandem-dummy-password-for-timing")
    return _dummy_hashes[hasher]


def hash_password(password: str) -> str:
    """argon2id hash of ``password`` (the library's RFC 9106 low-memory profile)."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; spends the same time when ``password_hash`` is None."""
    if len(password.encode()) > _MAX_PASSWORD_BYTES:
        return False
    try:
        return (
            _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        )
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


_T = TypeVar("_T")


class PasswordHashing:
    """Password hashing and checking (argon2id: a tenth of a second of CPU and 64 MiB each) off
    the event loop, bounded. Run on the loop, every sign-in stalled every live session of the
    process for that long: a stream of wrong sign-ins, from anyone, froze the relay.

    At most ``parallel`` hashes run at once, each in a worker thread (argon2 releases the GIL);
    others wait, at most ``waiting`` of them, and at most ``per_client`` in progress or waiting
    for one client (its address group: :func:`tandem.hub.address_group`). Beyond either bound
    :class:`BusyError` is raised at once, before any work: a flood costs bounded CPU and memory
    and keeps no one else's sign-in waiting behind more than ``waiting`` others. One client's
    checks run on all workers but one at most (with more than one): the rest of its checks wait
    their turn behind its own, not in the workers' queue, so a single address's flood leaves a
    worker free for everyone else's sign-ins (with the defaults, two workers and four per
    client, it took both, and a colleague waited for its checks). Made inside the server's
    event loop (one per process: :mod:`tandem.server.services`)."""

    def __init__(self, parallel: int, waiting: int, per_client: int) -> None:
        if min(parallel, per_client) < 1 or waiting < 0:
            raise ValueError("password hashing needs a worker and room for one per client")
        self._slots = asyncio.Semaphore(parallel)
        self._capacity = parallel + waiting
        self._per_client = per_client
        self._running_per_client = max(1, parallel - 1)
        self._held = 0
        self._clients: dict[str, int] = {}
        self._client_slots: dict[str, asyncio.Semaphore] = {}

    async def verify(self, client: str, password_hash: str | None, password: str) -> bool:
        """:func:`verify_password` for ``client``, off the loop; BusyError when over a bound."""
        return await self._run(client, verify_password, password_hash, password)

    async def hash(self, client: str, password: str) -> str:
        """:func:`hash_password` for ``client``, off the loop; BusyError when over a bound."""
        return await self._run(client, hash_password, password)

    async def _run(self, client: str, work: Callable[..., _T], *args: Any) -> _T:
        if self._clients.get(client, 0) >= self._per_client:
            raise BusyError(
                "Too many sign-ins at once from your address: wait for the ones under way."
            )
        if self._held >= self._capacity:
            raise BusyError("The server is busy checking other sign-ins: try again shortly.")
        self._held += 1
        self._clients[client] = self._clients.get(client, 0) + 1
        own = self._client_slots.setdefault(client, asyncio.Semaphore(self._running_per_client))
        try:
            async with own, self._slots:
                done = asyncio.ensure_future(asyncio.to_thread(work, *args))
                try:
                    return await asyncio.shield(done)
                finally:
                    if not done.done():  # cancelled: the thread runs on, and keeps its slot
                        await asyncio.wait({done})
        finally:
            self._held -= 1
            left = self._clients[client] - 1
            if left:
                self._clients[client] = left
            else:
                del self._clients[client]
                del self._client_slots[client]


CUSTOMER_SIGNATURE_ALGORITHM = "HS256"


@dataclasses.dataclass(frozen=True, slots=True)
class CustomerClaims:
    """What a verified customer token says."""

    subject: str
    """The customer's id at the site (``sub``)."""
    token_id: str | None
    """``jti``: when present, the token is accepted once."""
    expires_at: float


def verify_customer_token(
    token: str, key: str, audience: str, now: float, max_lifetime: float, leeway: int
) -> CustomerClaims:
    """Check a customer token from a site's backend and return its subject (the customer's id
    at the site). A JWT signed with HS256 by the site's key, with ``aud`` = the site id, ``sub``,
    ``iat`` and ``exp`` at most ``max_lifetime`` after ``iat``, each checked with ``leeway``
    seconds of clock skew (``customer_token_leeway_seconds``). Any other algorithm (``none``
    included) is refused. Raises :class:`~tandem.exceptions.AuthenticationError` saying what
    was wrong, never with the token in it."""
    # joserfc is imported where a token is checked: most starts and commands never check one
    # (a tenth of the start-up's imports).
    from joserfc import jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import OctKey

    try:
        decoded = jwt.decode(token, OctKey.import_key(key.encode()), [CUSTOMER_SIGNATURE_ALGORITHM])
        jwt.JWTClaimsRegistry(
            now=int(now),
            leeway=leeway,
            aud={"essential": True, "value": audience},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
        ).validate(decoded.claims)
    except (JoseError, ValueError) as exc:
        detail = getattr(exc, "description", "") or exc.__class__.__name__
        raise AuthenticationError(f"customer token not accepted: {detail}") from None
    claims = decoded.claims
    lifetime = float(claims["exp"]) - float(claims["iat"])
    if lifetime > max_lifetime:
        raise AuthenticationError(
            f"customer token not accepted: it lives {int(lifetime)} s, at most "
            f"{int(max_lifetime)} s allowed"
        )
    subject = claims["sub"]
    if isinstance(subject, str):
        # One text, one form: a data subject request names the customer by this sub, compared
        # as stored, and "café" composed (NFC) or decomposed (NFD, as macOS writes it) is the
        # same text (tandem.subjects.canonical_forms). Compatibility look-alikes (full-width,
        # ligatures) stay apart: NFKC would make two of a site's customers one.
        subject = unicodedata.normalize("NFC", subject)
    if not isinstance(subject, str) or not 1 <= len(subject) <= 128:
        raise AuthenticationError("customer token not accepted: sub must be a short string")
    if subject != subject.strip() or any(ord(c) < 32 for c in subject):
        # A data subject request names the customer by this sub, trimmed and printable
        # (tandem.subjects): " bob" was stored apart from "bob" and found, exported and erased
        # as "bob"; "bob\t" could not be named at all.
        raise AuthenticationError(
            "customer token not accepted: sub must be printable, without surrounding spaces"
        )
    token_id = claims.get("jti")
    if token_id is not None and (not isinstance(token_id, str) or not 1 <= len(token_id) <= 128):
        raise AuthenticationError("customer token not accepted: jti must be a short string")
    return CustomerClaims(subject, token_id, float(claims["exp"]))


RECORDING_KEY_BYTES = 32


def recording_key_id(public_key: str) -> str:
    """Check an organisation's recording public key (X25519, 32 bytes, base64url without
    padding) and return its id: the first 16 bytes of its SHA-256, base64url. The id names
    the key in recordings and key files. Raises :class:`ConfigError` for anything else."""
    if not isinstance(public_key, str) or len(public_key) != 43:
        raise ConfigError("the recording key must be 32 bytes in base64url (43 characters)")
    try:
        raw = base64.urlsafe_b64decode(public_key + "=")
    except (ValueError, TypeError):
        raise ConfigError("the recording key is not base64url") from None
    if len(raw) != RECORDING_KEY_BYTES or _b64u(raw) != public_key:
        raise ConfigError("the recording key must be 32 bytes in base64url (43 characters)")
    if raw == bytes(RECORDING_KEY_BYTES):
        raise ConfigError("the recording key is all zeros")
    return _b64u(hashlib.sha256(raw).digest()[:16])


def open_recording_key(key_file: str, passphrase: str) -> tuple[str, bytes]:
    """The key id and the X25519 private key of a recording key file (docs/recordings.md),
    opened with its passphrase. Raises :class:`RecordingError`."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    try:
        file = json.loads(key_file)
        kdf = file["kdf"]
        if file["tandem_recording_key"] != 1 or kdf["name"] != "PBKDF2-SHA256":
            raise ValueError
        iterations = int(kdf["iterations"])
        if not 100_000 <= iterations <= 10_000_000:
            raise ValueError
        salt, nonce, sealed = (_b64(kdf["salt"]), _b64(file["nonce"]), _b64(file["sealed"]))
        key_id = str(file["key_id"])
    except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: nested JSON
        raise RecordingError("this is not a Tandem recording key file") from None
    wrap = PBKDF2HMAC(hashes.SHA256(), 32, salt, iterations).derive(passphrase.encode())
    try:
        private = AESGCM(wrap).decrypt(nonce, sealed, f"tandem/v1/recording-key|{key_id}".encode())
    except (InvalidTag, ValueError):
        raise RecordingError("wrong passphrase, or the key file is damaged") from None
    try:
        public = X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()
    except ValueError:  # sealed under the passphrase, but not 32 bytes
        raise RecordingError("the key file is damaged") from None
    if _b64u(public) != file.get("public_key") or recording_key_id(_b64u(public)) != key_id:
        raise RecordingError("the key file is damaged")
    return key_id, private


RECORDING_KEY_V1 = 0x05
"""The unchained recording key frame of Tandem 0.2: recognised only to be refused."""
RECORDING_LINK = 0x06
RECORDING_LINK_BYTES = 1 + 8 + 8 + 8 + 32 + 12 + 32 + 32 + 16


class Broken:
    """What playback says when a recording is not the whole the customer's browser made: the
    same words as the console's player (sdk/src/shared/e2e/recording.ts, ``BROKEN``)."""

    LEGACY = (
        "this recording was made by an older version of Tandem, without integrity of the whole "
        "recording, so it cannot be played"
    )
    FIRST_MISSING = "the start of the recording is missing"
    TRUNCATED = "the end of the recording is missing: it was cut short"
    AFTER_END = "content follows the end of the recording"
    SECOND_START = "the recording starts twice: another recording was spliced in"
    UNDECODABLE = "a payload of the recording does not decode"

    @staticmethod
    def first_key(session_id: str) -> str:
        return (
            f"the recording's first key does not open for session {json.dumps(session_id)}: "
            "its header was changed or the frame altered"
        )

    @staticmethod
    def middle_missing(current: int, epoch: int) -> str:
        return f"a part of the recording is missing between epochs {current} and {epoch}"

    @staticmethod
    def tail_frames(epoch: int, here: int, sent: int) -> str:
        return f"frames are missing at the end of epoch {epoch}: {here} of {sent} are here"

    @staticmethod
    def forged(epoch: int) -> str:
        return f"epoch {epoch} of the recording was not made by the customer's browser"

    @staticmethod
    def relabelled(field: str, header: object, bound: str) -> str:
        return (
            f"the recording's header was changed: its {field} is "
            f"{json.dumps(header, ensure_ascii=False)}, but the recording was made for "
            f"{json.dumps(bound, ensure_ascii=False)}"
        )


class RecordingOpener:
    """Opens a recording's frames in order with the organisation's private recording key
    (docs/recordings.md), like the console's player.

    Content of epochs whose key was not wrapped for recording is skipped. Within a recorded
    epoch counters run 0, 1, 2…; each recorded epoch (kind 0x06) names the previous one and how
    many content frames it had, with a tag under the recording's chain key (given by its start
    payload: :meth:`chain`); after :meth:`end` nothing recorded may follow, and :meth:`finish`
    wants a start and an end. Anything else raises :class:`RecordingError` with
    :class:`Broken`'s words or saying which frame was altered.
    """

    def __init__(self, session_id: str, private_key: bytes) -> None:
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

        self._session_id = session_id
        self._private = X25519PrivateKey.from_private_bytes(private_key)
        self._public = self._private.public_key().public_bytes_raw()
        self._epoch = -1
        self._key: Any = None
        self._expected = 0
        self._started = False
        self._ended = False
        self._chain_key: bytes | None = None
        self._unchecked: list[tuple[int, bytes, bytes]] = []
        self.skipped = 0
        """Content frames of epochs that were not recorded."""

    def _aad(self, kind: int, *numbers: int) -> bytes:
        return (
            f"tandem/v1|{self._session_id}|".encode()
            + bytes([kind])
            + b"".join(n.to_bytes(8, "big") for n in numbers)
        )

    def open(self, frame: bytes) -> bytes | None:
        """The packed payload of a recorded content frame; None for anything else."""
        from cryptography.exceptions import InvalidTag

        if len(frame) < 17:
            raise RecordingError("a frame of the recording is truncated")
        kind, epoch = frame[0], int.from_bytes(frame[1:9], "big")
        if kind == RECORDING_KEY_V1:
            raise RecordingError(Broken.LEGACY)
        if kind == RECORDING_LINK:
            self._link(frame, epoch)
            return None
        if kind != 0x01:
            return None  # keys wrapped for the agent or a supervisor
        if self._key is None or epoch != self._epoch:
            if epoch > self._epoch:
                self.skipped += 1
                return None
            raise RecordingError("content of an earlier part of the recording reappeared")
        if self._ended:
            raise RecordingError(Broken.AFTER_END)
        counter = int.from_bytes(frame[9:17], "big")
        if counter != self._expected:
            raise RecordingError("frames are missing, reordered or replayed")
        nonce = bytes(4) + counter.to_bytes(8, "big")
        try:
            plaintext: bytes = self._key.decrypt(nonce, frame[17:], self._aad(1, epoch, counter))
        except (InvalidTag, ValueError):
            raise RecordingError("a frame of the recording was altered") from None
        self._expected += 1
        return plaintext

    def _link(self, frame: bytes, epoch: int) -> None:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        if len(frame) != RECORDING_LINK_BYTES:
            raise RecordingError("a recording key of the recording is malformed")
        if self._ended:
            raise RecordingError(Broken.AFTER_END)
        if epoch <= self._epoch:
            raise RecordingError("an old key of the recording was replayed")
        previous_epoch = int.from_bytes(frame[9:17], "big")
        previous_count = int.from_bytes(frame[17:25], "big")
        ephemeral = frame[25:57]
        aad = (
            f"tandem/v2|{self._session_id}|".encode()
            + bytes([RECORDING_LINK])
            + b"".join(n.to_bytes(8, "big") for n in (epoch, previous_epoch, previous_count))
        )
        try:
            shared = self._private.exchange(X25519PublicKey.from_public_bytes(ephemeral))
            hkdf = HKDF(hashes.SHA256(), 32, ephemeral + self._public, b"tandem/v2/recording")
            wrapped = AESGCM(hkdf.derive(shared)).decrypt(frame[57:69], frame[69:], aad)
        except (InvalidTag, ValueError):
            if not self._started:
                raise RecordingError(Broken.first_key(self._session_id)) from None
            raise RecordingError("a recording key of the recording was altered") from None
        # The link is authentic now: only the holder of the content key could have made it.
        if not self._started:
            if previous_epoch != 0:
                raise RecordingError(Broken.FIRST_MISSING)
        elif previous_epoch == 0:
            raise RecordingError(Broken.SECOND_START)
        elif previous_epoch != self._epoch:
            raise RecordingError(Broken.middle_missing(self._epoch, epoch))
        elif previous_count != self._expected:
            raise RecordingError(Broken.tail_frames(self._epoch, self._expected, previous_count))
        raw, tag = wrapped[:32], wrapped[32:]
        tag_input = (
            f"tandem/v2/link|{self._session_id}|".encode()
            + b"".join(n.to_bytes(8, "big") for n in (epoch, previous_epoch, previous_count))
            + hashlib.sha256(raw).digest()
        )
        self._check(epoch, tag, tag_input)
        self._key = AESGCM(raw)
        self._epoch, self._expected, self._started = epoch, 0, True

    def _check(self, epoch: int, tag: bytes, tag_input: bytes) -> None:
        if self._chain_key is None:
            self._unchecked.append((epoch, tag, tag_input))
            return
        expected = hmac.new(self._chain_key, tag_input, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, tag):
            raise RecordingError(Broken.forged(epoch))

    def chain(self, chain: object) -> None:
        """The start payload's chain key (base64url): every link so far and from now on must
        carry its tag."""
        if self._chain_key is not None:
            raise RecordingError(Broken.SECOND_START)
        try:
            key = _b64(chain)
        except (ValueError, TypeError):
            raise RecordingError(Broken.UNDECODABLE) from None
        if len(key) != 32:
            raise RecordingError(Broken.UNDECODABLE)
        self._chain_key = key
        unchecked, self._unchecked = self._unchecked, []
        for epoch, tag, tag_input in unchecked:
            self._check(epoch, tag, tag_input)

    def end(self) -> None:
        """The payload just opened was the customer's end marker: nothing recorded may follow."""
        self._ended = True

    def finish(self, partial: bool = False) -> None:
        """After the last frame: raises unless the recording began (with its chain key) and
        ended (or, with ``partial``, at least began: a recording cut short)."""
        if not self._started or self._chain_key is None:
            raise RecordingError(Broken.FIRST_MISSING)
        if not self._ended and not partial:
            raise RecordingError(Broken.TRUNCATED)


def _b64(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not base64url text")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
