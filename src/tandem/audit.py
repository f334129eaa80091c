"""The audit trail: an append-only, hash-chained log of security-relevant events.

Each record carries the SHA-256 hash of the one before it, so editing, deleting or reordering a
record breaks the chain from that point. A hash needs no key, though: someone who can write the
database can delete a record and re-hash everything after it. So records are also *anchored*: an
HMAC-SHA256, with a key kept outside the database (``--audit-key``), over the record's sequence
number and hash, the anchoring interval, and the previous anchor's sequence number and MAC. The
anchors form a chain of their own that cannot be forged, reordered or thinned out without the key.

Anchors are written in the same transaction as their record (so several writers keep them in
order) and are *required*, so that removing them shows:

- at the first record written with chained anchors (record 1 of a new trail);
- at every multiple of the interval: after an anchor written with interval N, the next one comes
  no later than the next multiple of N. N is inside the anchor's MAC, so the operator may change
  ``audit_anchor_every`` at any time; the anchor written before the change still says when the
  next one was due, and writers honour that too;
- at every ``server_stopped`` record (the graceful end of a run).

Anchors written before they were chained (format :data:`LEGACY`, MAC over sequence and hash
only) are accepted before the first chained one; there, one is required at every multiple of the
interval the verifier is given. A *checkpoint* (:func:`make_checkpoint`) is a signed head of the
trail to keep outside the database; :func:`verify` given checkpoints proves the trail still holds
each of them, which covers the tail after the last required anchor too. ``tandem audit verify``
runs :func:`verify` and names the first broken record; docs/audit.md lists what stays
undetectable.

The log never holds page content or secrets: actions, actors, subjects (session ids, usernames)
and small details (reasons, counts) only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from tandem.access import Grant
from tandem.exceptions import ConfigError
from tandem.private_files import private_file

GENESIS = "0" * 64

LEGACY = 0
"""Anchor format written before anchors were chained: a MAC over (sequence, hash) only."""
CHAINED = 1
"""Anchor format whose MAC also covers the interval and the previous anchor."""

ANCHORED_ACTIONS = frozenset({"server_stopped"})
"""Actions whose record is always anchored: the graceful end of a server's run."""


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
    """The record ``seq`` with hash ``hash``, vouched for by ``mac`` (made with the audit key)."""

    seq: int
    hash: str
    mac: str
    version: int = LEGACY
    """:data:`LEGACY` or :data:`CHAINED`; the fields below are zero or empty for LEGACY."""
    every: int = 0
    """The writer's anchoring interval: the next anchor is due by the next multiple of it."""
    prev_seq: int = 0
    """The previous anchor's record (0: none)."""
    prev_mac: str = ""
    """The previous anchor's MAC ("": none)."""

    @property
    def next_due(self) -> int:
        """The record by which the next anchor is due (a CHAINED anchor with ``every >= 1``)."""
        return (self.seq // self.every + 1) * self.every


AnchorRule = Callable[[AuditRecord, Anchor | None], Anchor | None]
"""Given a record being appended and the latest anchor stored, the anchor to store with it."""


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


def _mac(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def legacy_anchor_mac(key: bytes, seq: int, digest: str) -> str:
    """The MAC of a :data:`LEGACY` anchor (still checked, never written)."""
    return _mac(key, f"tandem-audit-anchor|{seq}|{digest}")


def chained_anchor_mac(
    key: bytes, seq: int, digest: str, every: int, prev_seq: int, prev_mac: str
) -> str:
    """The MAC of a :data:`CHAINED` anchor."""
    return _mac(key, f"tandem-audit-anchor/chained|{seq}|{digest}|{every}|{prev_seq}|{prev_mac}")


def seal_anchor(key: bytes, record: AuditRecord, every: int, previous: Anchor | None) -> Anchor:
    """A CHAINED anchor at ``record``, following ``previous`` (the latest anchor stored)."""
    prev_seq, prev_mac = (previous.seq, previous.mac) if previous else (0, "")
    mac = chained_anchor_mac(key, record.seq, record.hash, every, prev_seq, prev_mac)
    return Anchor(record.seq, record.hash, mac, CHAINED, every, prev_seq, prev_mac)


def anchor_due(record: AuditRecord, previous: Anchor | None, every: int) -> bool:
    """Whether ``record`` must be anchored, ``previous`` being the latest anchor stored."""
    if previous is None or previous.version != CHAINED or previous.every < 1:
        return True  # start the chain of anchors (a new trail, or the first write after upgrade)
    return (
        record.action in ANCHORED_ACTIONS
        or record.seq % every == 0
        # The interval may have changed since (or another writer uses another): keep the promise.
        or record.seq >= previous.next_due
    )


def load_or_create_key(path: Path) -> bytes:
    """The anchoring key (32 random bytes, hex), created with mode 0600 on first use."""
    try:
        if path.exists():
            private_file(path)  # tightened if an older version left it looser
            key = bytes.fromhex(path.read_text().strip())
            if len(key) < 32:
                raise ConfigError(f"the audit key {path} is too short")
            return key
        key = secrets.token_bytes(32)
        private_file(path)
        path.write_text(key.hex())
        return key
    except ValueError:
        raise ConfigError(f"the audit key {path} is not hex") from None
    except OSError as exc:
        raise ConfigError(f"cannot use the audit key {path}: {exc.strerror}") from None


class AuditStore(Protocol):
    async def append_audit(
        self,
        grant: Grant,
        at: float,
        action: str,
        actor: str,
        subject: str,
        details: dict[str, object],
        anchor: AnchorRule | None = None,
    ) -> AuditRecord:
        """Append one record filed under the grant's organisation (sequence and hashes assigned
        atomically). In the same transaction,
        ``anchor`` is called with the new record and the latest anchor stored, and the anchor it
        returns (if any) is stored: anchors follow the order of records whoever writes them."""
        ...

    async def audit_records(self, since: float = 0.0) -> list[AuditRecord]: ...

    async def anchors(self) -> list[Anchor]:
        """Every anchor, by record sequence number."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed head of the trail, to keep outside the database (an external log, a witness).

    It says that record ``seq`` had hash ``hash`` (so the trail up to it) and that the latest
    anchor was the one at ``anchor_seq`` with MAC ``anchor_mac``, at ``time`` (ISO 8601, UTC).
    ``seq`` is 0 for an empty trail, ``anchor_seq`` 0 when nothing was anchored yet.
    """

    seq: int
    hash: str
    anchor_seq: int
    anchor_mac: str
    time: str
    mac: str

    def authentic(self, key: bytes) -> bool:
        return hmac.compare_digest(_checkpoint_mac(key, self), self.mac)

    def to_line(self) -> str:
        """One line of JSON."""
        fields = {"tandem_audit_checkpoint": 1, **dataclasses.asdict(self)}
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_line(cls, line: str) -> Checkpoint:
        """Parse :meth:`to_line`'s output; raises :class:`ConfigError` for anything else. (The
        MAC is not checked here: :func:`verify` does.)"""
        try:
            fields = json.loads(line)
            if not isinstance(fields, dict) or fields.pop("tandem_audit_checkpoint", None) != 1:
                raise ValueError
            checkpoint = cls(**fields)
        except (ValueError, TypeError):
            raise ConfigError("not a Tandem audit checkpoint") from None
        numbers = (checkpoint.seq, checkpoint.anchor_seq)
        texts = (checkpoint.hash, checkpoint.anchor_mac, checkpoint.time, checkpoint.mac)
        if not all(type(n) is int and n >= 0 for n in numbers) or not all(
            type(t) is str for t in texts
        ):
            raise ConfigError("not a Tandem audit checkpoint")
        return checkpoint


def _checkpoint_mac(key: bytes, c: Checkpoint) -> str:
    return _mac(
        key,
        f"tandem-audit-checkpoint|{c.seq}|{c.hash}|{c.anchor_seq}|{c.anchor_mac}|{c.time}",
    )


def make_checkpoint(
    records: Sequence[AuditRecord], anchors: Sequence[Anchor], key: bytes, at: float
) -> Checkpoint:
    """The checkpoint of the trail's head (last record, last anchor) at time ``at`` (epoch
    seconds). Check the trail with :func:`verify` first: a checkpoint vouches for what it sees."""
    seq, digest = (records[-1].seq, records[-1].hash) if records else (0, GENESIS)
    anchor_seq, anchor_mac = (anchors[-1].seq, anchors[-1].mac) if anchors else (0, "")
    when = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    unsigned = Checkpoint(seq, digest, anchor_seq, anchor_mac, when, "")
    return dataclasses.replace(unsigned, mac=_checkpoint_mac(key, unsigned))


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    records: int
    anchors: int
    checkpoints: int = 0
    problem: str | None = None
    first_bad_seq: int | None = None
    """The record the problem is at; None when a checkpoint itself is rejected."""


def _removed(seq: int) -> tuple[int, str]:
    return seq, f"no anchor at record {seq}: anchors were removed"


def _chain_problem(records: Sequence[AuditRecord]) -> tuple[int, str] | None:
    prev = GENESIS
    for expected_seq, record in enumerate(records, start=1):
        if record.seq != expected_seq:
            return expected_seq, f"record {expected_seq} is missing or out of order"
        if record.prev_hash != prev:
            return record.seq, f"record {record.seq} does not follow record {record.seq - 1}"
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
            return record.seq, f"record {record.seq} was altered"
        prev = record.hash
    return None


def _genuine(anchor: Anchor, key: bytes) -> bool:
    try:
        if anchor.version == LEGACY:
            expected = legacy_anchor_mac(key, anchor.seq, anchor.hash)
        elif anchor.version == CHAINED and type(anchor.every) is int and anchor.every >= 1:
            expected = chained_anchor_mac(
                key, anchor.seq, anchor.hash, anchor.every, anchor.prev_seq, anchor.prev_mac
            )
        else:
            return False
        return hmac.compare_digest(expected, anchor.mac)
    except TypeError:  # not even text where the MAC goes: written by hand (SQLite allows it)
        return False


def _anchor_problems(
    anchors: Sequence[Anchor], key: bytes, hashes: dict[int, str]
) -> tuple[list[tuple[int, str]], list[Anchor]]:
    """Problems with the anchors themselves, and the genuine CHAINED ones in order."""
    problems: list[tuple[int, str]] = []
    chained: list[Anchor] = []
    present = {anchor.seq for anchor in anchors}
    previous: Anchor | None = None
    for anchor in anchors:
        seq = anchor.seq
        genuine = _genuine(anchor, key)
        if genuine and anchor.version == LEGACY and chained:
            message = f"the anchor at record {seq} has the old format, after chained ones"
            problems.append((seq, message))
        if not genuine:
            problems.append((seq, f"the anchor at record {seq} is forged"))
        elif hashes.get(seq) != anchor.hash:
            problems.append((seq, f"records up to {seq} were rewritten or removed"))
        if genuine and anchor.version == CHAINED:
            chained.append(anchor)
            follows = (previous.seq, previous.mac) if previous else (0, "")
            if (anchor.prev_seq, anchor.prev_mac) != follows:
                if anchor.prev_seq and anchor.prev_seq not in present:
                    problems.append(_removed(anchor.prev_seq))
                else:
                    problems.append((seq, f"the anchors before record {seq} were reordered"))
        previous = anchor
    return problems, chained


def _required_anchor_problems(
    records: Sequence[AuditRecord],
    anchors: Sequence[Anchor],
    chained: Sequence[Anchor],
    legacy_every: int,
) -> list[tuple[int, str]]:
    """Anchors that should be there and are not."""
    if not records:
        return []
    last = records[-1].seq
    present = {anchor.seq for anchor in anchors}
    if not anchors:
        return [_removed(1)]
    problems: list[tuple[int, str]] = []
    # Before chained anchors (a trail begun by an older Tandem): one at every multiple.
    legacy_end = chained[0].seq if chained else last
    for seq in range(legacy_every, min(legacy_end, last) + 1, legacy_every):
        if seq not in present:
            problems.append(_removed(seq))
            break
    for index, anchor in enumerate(chained):
        due = anchor.next_due
        following = chained[index + 1].seq if index + 1 < len(chained) else None
        if due <= last and (following is None or following > due):
            problems.append(_removed(due))
    if chained:
        for record in records:
            if (
                record.action in ANCHORED_ACTIONS
                and record.seq >= chained[0].seq
                and record.seq not in present
            ):
                problems.append(_removed(record.seq))
    return problems


def verify(
    records: Sequence[AuditRecord],
    anchors: Sequence[Anchor],
    key: bytes,
    *,
    legacy_every: int = 100,
    checkpoints: Sequence[Checkpoint] = (),
) -> Verdict:
    """Check the chain, the anchors (genuine, chained, none missing) and the checkpoints.

    ``anchors`` are in order of sequence number; ``legacy_every`` is the interval at which
    anchors written before they were chained are required (the ``audit_anchor_every`` of the
    Tandem that wrote them). A checkpoint whose MAC is wrong rejects the whole verdict
    (``first_bad_seq`` None); otherwise the problem with the lowest record number is returned.
    """
    if legacy_every < 1:
        raise ConfigError("audit_anchor_every must be at least 1")
    counts = (len(records), len(anchors), len(checkpoints))
    for checkpoint in checkpoints:
        if not checkpoint.authentic(key):
            return Verdict(
                False,
                *counts,
                f"the checkpoint at record {checkpoint.seq} ({checkpoint.time}) has a wrong"
                " MAC: it was forged, altered or made with another key",
            )
    hashes = {record.seq: record.hash for record in records}
    problems: list[tuple[int, str]] = []
    chain = _chain_problem(records)
    if chain is not None:
        problems.append(chain)
    anchor_problems, chained = _anchor_problems(anchors, key, hashes)
    problems += anchor_problems
    problems += _required_anchor_problems(records, anchors, chained, legacy_every)
    macs = {anchor.seq: anchor.mac for anchor in anchors}
    for checkpoint in checkpoints:
        if checkpoint.seq and hashes.get(checkpoint.seq) != checkpoint.hash:
            problems.append(
                (
                    checkpoint.seq,
                    f"the trail was cut or rewritten before checkpoint at record {checkpoint.seq}",
                )
            )
        elif checkpoint.anchor_seq and macs.get(checkpoint.anchor_seq) != checkpoint.anchor_mac:
            seq, problem = _removed(checkpoint.anchor_seq)
            problems.append((seq, f"{problem} (checkpoint at record {checkpoint.seq} saw it)"))
    if not problems:
        return Verdict(True, *counts)
    seq, problem = min(problems, key=lambda found: found[0])  # min keeps the first of equals
    return Verdict(False, *counts, problem, seq)


class AuditLog:
    """Appends events; anchors them as :func:`anchor_due` says (every ``anchor_every`` records,
    at ``server_stopped``), in the same transaction."""

    def __init__(self, store: AuditStore, key: bytes, anchor_every: int = 100) -> None:
        if anchor_every < 1:
            raise ConfigError("audit_anchor_every must be at least 1")
        self.store = store
        self.key = key
        self.anchor_every = anchor_every

    async def record(
        self,
        at: float,
        action: str,
        *,
        actor: str = "",
        org: str,
        subject: str = "",
        **details: object,
    ) -> AuditRecord:
        """Append ``action`` filed under organisation ``org``: there is no default, so an
        installation-wide event (start, stop, sign-in attempts) names the default organisation
        explicitly. The trail is the server's own record of what happened (whoever ``actor``
        was), so it is written under a server grant for ``org``."""
        return await self.store.append_audit(
            Grant.server(org, "audit trail"),
            at,
            action,
            actor,
            subject,
            dict(details),
            anchor=self._anchor,
        )

    def _anchor(self, record: AuditRecord, previous: Anchor | None) -> Anchor | None:
        if not anchor_due(record, previous, self.anchor_every):
            return None
        return seal_anchor(self.key, record, self.anchor_every, previous)
