"""The audit trail: an append-only, hash-chained log of security-relevant events.

Each record carries the SHA-256 hash of the one before it, so editing, deleting or reordering a
record breaks the chain from that point. Every ``anchor_every`` records, and on demand, the
latest hash is *anchored*: an HMAC-SHA256 over (sequence number, hash) with a key kept outside the
database (``--audit-key``), so even an attacker who rewrites the whole chain consistently cannot
forge the anchors. ``tandem audit verify`` checks both and names the first broken record.

The log never holds page content or secrets: actions, actors, subjects (session ids, usernames)
and small details (reasons, counts) only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import secrets
from pathlib import Path
from typing import Protocol

from tandem.exceptions import ConfigError

GENESIS = "0" * 64


@dataclasses.dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    at: float
    action: str
    actor: str
    org: str
    subject: str
    details: dict[str, object]
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class Anchor:
    seq: int
    hash: str
    mac: str


def record_hash(
    seq: int,
    at: float,
    action: str,
    actor: str,
    org: str,
    subject: str,
    details: dict[str, object],
    prev_hash: str,
) -> str:
    """SHA-256 over a canonical JSON encoding of every field but the hash itself."""
    canonical = json.dumps(
        [seq, repr(at), action, actor, org, subject, details, prev_hash],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def anchor_mac(key: bytes, seq: int, digest: str) -> str:
    return hmac.new(key, f"tandem-audit-anchor|{seq}|{digest}".encode(), hashlib.sha256).hexdigest()


def load_or_create_key(path: Path) -> bytes:
    """The anchoring key (32 random bytes, hex), created with mode 0600 on first use."""
    try:
        if path.exists():
            key = bytes.fromhex(path.read_text().strip())
            if len(key) < 32:
                raise ConfigError(f"the audit key {path} is too short")
            return key
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        path.touch(mode=0o600)
        path.write_text(key.hex())
        return key
    except ValueError:
        raise ConfigError(f"the audit key {path} is not hex") from None
    except OSError as exc:
        raise ConfigError(f"cannot use the audit key {path}: {exc.strerror}") from None


class AuditStore(Protocol):
    async def append_audit(
        self,
        at: float,
        action: str,
        actor: str,
        org: str,
        subject: str,
        details: dict[str, object],
    ) -> AuditRecord:
        """Append one record (sequence and hashes assigned atomically)."""
        ...

    async def audit_records(self, since: float = 0.0) -> list[AuditRecord]: ...

    async def add_anchor(self, anchor: Anchor) -> None: ...

    async def anchors(self) -> list[Anchor]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    records: int
    anchors: int
    problem: str | None = None
    first_bad_seq: int | None = None


def verify(records: list[AuditRecord], anchors: list[Anchor], key: bytes) -> Verdict:
    """Check the chain and the anchors. Returns the first problem found, by sequence number."""
    by_seq: dict[int, str] = {}
    prev = GENESIS
    expected_seq = 1
    for record in records:
        if record.seq != expected_seq:
            return Verdict(
                False,
                len(records),
                len(anchors),
                f"record {expected_seq} is missing or out of order",
                expected_seq,
            )
        if record.prev_hash != prev:
            return Verdict(
                False,
                len(records),
                len(anchors),
                f"record {record.seq} does not follow record {record.seq - 1}",
                record.seq,
            )
        computed = record_hash(
            record.seq,
            record.at,
            record.action,
            record.actor,
            record.org,
            record.subject,
            record.details,
            record.prev_hash,
        )
        if not hmac.compare_digest(computed, record.hash):
            return Verdict(
                False, len(records), len(anchors), f"record {record.seq} was altered", record.seq
            )
        by_seq[record.seq] = record.hash
        prev = record.hash
        expected_seq += 1
    for anchor in anchors:
        if not hmac.compare_digest(anchor_mac(key, anchor.seq, anchor.hash), anchor.mac):
            return Verdict(
                False,
                len(records),
                len(anchors),
                f"the anchor at record {anchor.seq} is forged",
                anchor.seq,
            )
        if by_seq.get(anchor.seq) != anchor.hash:
            return Verdict(
                False,
                len(records),
                len(anchors),
                f"records up to {anchor.seq} were rewritten or removed",
                anchor.seq,
            )
    return Verdict(True, len(records), len(anchors))


class AuditLog:
    """Appends events and anchors the chain every ``anchor_every`` records."""

    def __init__(self, store: AuditStore, key: bytes, anchor_every: int = 100) -> None:
        self.store = store
        self.key = key
        self.anchor_every = anchor_every

    async def record(
        self,
        at: float,
        action: str,
        *,
        actor: str = "",
        org: str = "default",
        subject: str = "",
        **details: object,
    ) -> AuditRecord:
        entry = await self.store.append_audit(at, action, actor, org, subject, dict(details))
        if entry.seq % self.anchor_every == 0:
            await self.anchor(entry)
        return entry

    async def anchor(self, entry: AuditRecord | None = None) -> Anchor | None:
        if entry is None:
            records = await self.store.audit_records()
            if not records:
                return None
            entry = records[-1]
        anchor = Anchor(entry.seq, entry.hash, anchor_mac(self.key, entry.seq, entry.hash))
        await self.store.add_anchor(anchor)
        return anchor
