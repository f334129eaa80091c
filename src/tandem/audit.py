"""The audit trail: an append-only, hash-chained log of security-relevant events.

Each record carries the SHA-256 hash of the one before it, so editing, deleting or reordering a
record breaks the chain from that point. A hash needs no key, though: someone who can write the
database can delete a record and re-hash everything after it, or add records of their own. So
every record also carries a *record MAC*: an HMAC-SHA256 over its sequence number, the previous
record's hash and its own hash (which covers every field), with a subkey of the audit key, which
is kept outside the database (``--audit-key``; :func:`record_mac_key`). It is written in the same
statement as the record, by whoever writes it. And records are *anchored*: an HMAC-SHA256 with
the audit key over the record's sequence number and hash, the anchoring interval, the previous
anchor's sequence number and MAC, and the record from which every record carries a MAC. The
anchors form a chain of their own that cannot be forged, reordered or thinned out without the key;
they say where record MACs start, so that stripping them does not pass records off as older than
the MACs.

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
interval the verifier is given. Anchors written before records carried MACs (format
:data:`CHAINED`) are accepted before the first of format :data:`RECORD_MACS`, which a writer puts
at the first record it writes: that record is where record MACs start in a trail begun before
them (record 1 in a new one). A *checkpoint* (:func:`make_checkpoint`) is a signed head of the
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
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from tandem.access import Grant
from tandem.exceptions import ConfigError
from tandem.files import KEY_FILE_MAX_BYTES, read_text
from tandem.private_files import private_file

GENESIS = "0" * 64

LEGACY = 0
"""Anchor format written before anchors were chained: a MAC over (sequence, hash) only."""
CHAINED = 1
"""Anchor format whose MAC also covers the interval and the previous anchor."""
RECORD_MACS = 2
"""Anchor format whose MAC also covers the record from which every record carries a MAC (the one
written today)."""

DELETIONS_RECORDED = "deletions_recorded"
"""The detail of a ``server_started`` record saying the server records every deletion of a
session's or recording's rows (tandem.reconcile)."""

BACKLOG_LINE = "backlog_line"
"""The detail of a record written from an audit backlog file (tandem.audit_backlog): the file's
id and the line's number (``<id>:<number>``). Under the hash and the record MAC, so that a line
written twice (the database's note of it removed, then its file put back) fails :func:`verify`."""

WRITE_ID = "write_id"
"""The field of a record the hub may keep and write again (``SessionHub.record_done`` and its
audit backlog, a session's ``session_ended``): a random id made before its first try, kept with
it (in the backlog file's line too, under its MAC). The database notes it in the transaction
that writes the record, as it notes a backlog line (:func:`write_note`): a write whose COMMIT
landed while its caller was told it was cancelled (or lost the answer) is refused when the
record is written again, never on the trail twice. Not a detail of the record: nothing of it is
under the hash, and the trail reads as before."""

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
    mac: str | None = None
    """The record MAC (:func:`record_mac`); None on records written before record MACs."""
    org_seq: int = 0
    """The record's position in its organisation's trail (1, 2, ...: the number of records of
    ``org`` up to this one), assigned with ``seq`` in the appending transaction. It is what the
    organisation's auditors read (``seq``, like ``hash`` and ``prev_hash``, tells every other
    organisation's volume); not under the hash, as the chain determines it: :func:`verify`
    checks every one."""

    def to_json(self) -> dict[str, object]:
        """The record's fields but its MAC (which only a holder of the audit key can check), for
        the operator (``tandem audit export``): the whole chain's numbering and hashes."""
        fields = dataclasses.asdict(self)
        del fields["mac"]
        return fields

    def to_organisation_json(self) -> dict[str, object]:
        """The record as its organisation may read it (the API, a subject's export): its
        position in the organisation's own trail as ``seq``, and nothing of the chain shared with
        the other organisations (its number there, the hashes: from a record's hash and the one
        before it in the same organisation, a search over the numbers finds the global one)."""
        return {
            "seq": self.org_seq,
            "at": self.at,
            "action": self.action,
            "actor": self.actor,
            "org": self.org,
            "subject": self.subject,
            "details": self.details,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Anchor:
    """The record ``seq`` with hash ``hash``, vouched for by ``mac`` (made with the audit key)."""

    seq: int
    hash: str
    mac: str
    version: int = LEGACY
    """:data:`LEGACY`, :data:`CHAINED` or :data:`RECORD_MACS`; the fields below are zero or
    empty for LEGACY, ``macs_from`` also for CHAINED."""
    every: int = 0
    """The writer's anchoring interval: the next anchor is due by the next multiple of it."""
    prev_seq: int = 0
    """The previous anchor's record (0: none)."""
    prev_mac: str = ""
    """The previous anchor's MAC ("": none)."""
    macs_from: int = 0
    """RECORD_MACS: every record from this one on carries a record MAC."""

    @property
    def next_due(self) -> int:
        """The record by which the next anchor is due (a CHAINED anchor with ``every >= 1``)."""
        return (self.seq // self.every + 1) * self.every


AnchorRule = Callable[[AuditRecord, Anchor | None], Anchor | None]
"""Given a record being appended and the latest anchor stored, the anchor to store with it."""
RecordSeal = Callable[[AuditRecord], str]
"""Given a record being appended (``mac`` None), its record MAC."""


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


def record_mac_key(key: bytes) -> bytes:
    """The subkey of the audit key that record MACs are made with (HMAC-SHA256 of the audit key
    as a PRF over a label, as HKDF-Expand does for one block): a record MAC and an anchor or
    checkpoint MAC can never stand for one another, whatever their messages."""
    return hmac.new(key, b"tandem-audit/record-mac-key/v1", hashlib.sha256).digest()


def backlog_mac_key(key: bytes) -> bytes:
    """The subkey of the audit key that the lines of the audit backlog are made with
    (:mod:`tandem.audit_backlog`): what the next start seals into the trail must be what a
    holder of the key wrote there."""
    return hmac.new(key, b"tandem-audit/backlog-mac-key/v1", hashlib.sha256).digest()


def record_mac(record_key: bytes, seq: int, prev_hash: str, digest: str) -> str:
    """The record MAC of record ``seq`` (hash ``digest``, following ``prev_hash``), made with
    :func:`record_mac_key`. The hash covers every field of the record, the number and the
    previous hash its place in the chain, so a MAC fits no other record and no other place."""
    return _mac(record_key, f"tandem-audit-record|{seq}|{prev_hash}|{digest}")


def legacy_anchor_mac(key: bytes, seq: int, digest: str) -> str:
    """The MAC of a :data:`LEGACY` anchor (still checked, never written)."""
    return _mac(key, f"tandem-audit-anchor|{seq}|{digest}")


def chained_anchor_mac(
    key: bytes, seq: int, digest: str, every: int, prev_seq: int, prev_mac: str
) -> str:
    """The MAC of a :data:`CHAINED` anchor."""
    return _mac(key, f"tandem-audit-anchor/chained|{seq}|{digest}|{every}|{prev_seq}|{prev_mac}")


def record_macs_anchor_mac(
    key: bytes, seq: int, digest: str, every: int, prev_seq: int, prev_mac: str, macs_from: int
) -> str:
    """The MAC of a :data:`RECORD_MACS` anchor."""
    return _mac(
        key,
        f"tandem-audit-anchor/record-macs|{seq}|{digest}|{every}|{prev_seq}|{prev_mac}|{macs_from}",
    )


def seal_anchor(key: bytes, record: AuditRecord, every: int, previous: Anchor | None) -> Anchor:
    """A RECORD_MACS anchor at ``record``, following ``previous`` (the latest anchor stored).
    Record MACs start where the previous one says, or at ``record`` if it is the first anchor of
    this format: the first record written since (the writer MACs every record it writes)."""
    prev_seq, prev_mac = (previous.seq, previous.mac) if previous else (0, "")
    macs_from = previous.macs_from if previous and _carries_macs(previous) else record.seq
    mac = record_macs_anchor_mac(key, record.seq, record.hash, every, prev_seq, prev_mac, macs_from)
    return Anchor(record.seq, record.hash, mac, RECORD_MACS, every, prev_seq, prev_mac, macs_from)


def _carries_macs(anchor: Anchor) -> bool:
    """Whether ``anchor`` (its MAC checked or not) says where record MACs start."""
    return anchor.version == RECORD_MACS and type(anchor.macs_from) is int and anchor.macs_from >= 1


def anchor_due(record: AuditRecord, previous: Anchor | None, every: int) -> bool:
    """Whether ``record`` must be anchored, ``previous`` being the latest anchor stored."""
    if previous is None or not _carries_macs(previous) or previous.every < 1:
        # Start the chain of anchors (a new trail), or this format's part of it (the first
        # write after an upgrade): the anchor says record MACs start here.
        return True
    return (
        record.action in ANCHORED_ACTIONS
        or record.seq % every == 0
        # The interval may have changed since (or another writer uses another): keep the promise.
        or record.seq >= previous.next_due
    )


def write_note(write_id: str) -> tuple[str, int]:
    """The note (``audit_backlog_lines``' file id and line) of a record's :data:`WRITE_ID`:
    line 0 of a "file" named by the id, which no backlog file has (their lines count from 1,
    their ids are 32 hex digits or ``v1-`` and 32)."""
    return f"w-{write_id}", 0


class TrailStore(Protocol):
    async def has_audit_trail(self) -> bool: ...


async def check_key_for_trail(storage: TrailStore, path: Path) -> None:
    """ConfigError when no key is at ``path`` but the database already holds an audit trail:
    a mistyped TANDEM_AUDIT_KEY made a new key there, and every record written with it broke
    the trail ("no valid MAC"), as a mistyped data directory would start a new database."""
    if not path.exists() and await storage.has_audit_trail():
        raise ConfigError(
            f"no audit key at {path}, but the database holds an audit trail: check "
            "TANDEM_AUDIT_KEY; a new key would break it"
        )


def load_or_create_key(path: Path) -> bytes:
    """The anchoring key (32 random bytes, hex), created with mode 0600 on first use."""
    try:
        if path.exists():
            private_file(path)  # tightened if an older version left it looser
            key = bytes.fromhex(read_text(path, KEY_FILE_MAX_BYTES).strip())
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


T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """An audit record to append, as :meth:`AuditLog.record` takes it."""

    action: str
    org: str
    actor: str = ""
    subject: str = ""
    details: dict[str, object] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Evidence(Generic[T]):
    """The audit records of a deletion, appended in the deletion's own transaction: the rows go
    and their records are written together, or neither (a process killed between the two left
    rows gone with no record of it). Storage calls ``entries`` with what the deletion removed,
    appends each record (sealed and anchored as :class:`AuditLog` does) before it commits, and
    calls ``written`` with them once committed. Made by :meth:`AuditLog.evidence`."""

    at: float
    entries: Callable[[T], Sequence[Entry]]
    seal: RecordSeal
    anchor: AnchorRule
    written: Callable[[Sequence[AuditRecord]], None] = lambda records: None


class Witness(Protocol):
    """Makes the :class:`Evidence` of a deletion (:meth:`AuditLog.evidence`, at the time now)."""

    def __call__(self, entries: Callable[[T], Sequence[Entry]]) -> Evidence[T]: ...


async def deleted_with_evidence(
    delete: Callable[[Evidence[T] | None], Awaitable[T]],
    entries: Callable[[T], Sequence[Entry]],
    witness: Witness | None,
    record: Callable[..., Awaitable[None]],
) -> T:
    """Run ``delete`` with the evidence ``witness`` makes of ``entries`` (its records in its
    transaction). Without a witness (a caller that has no audit log of its own, such as a unit
    test's), the records are appended with ``record`` after the deletion."""
    if witness is not None:
        return await delete(witness(entries))
    result = await delete(None)
    for entry in entries(result):
        await record(
            entry.action, actor=entry.actor, org=entry.org, subject=entry.subject, **entry.details
        )
    return result


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
        seal: RecordSeal | None = None,
        backlog_line: tuple[str, int] | None = None,
    ) -> AuditRecord:
        """Append one record filed under the grant's organisation (sequence and hashes assigned
        atomically). Once its number and previous hash are known, ``seal`` is called with the
        record and the MAC it returns is stored in the record's row (none without ``seal``). In
        the same transaction,
        ``anchor`` is called with the new record and the latest anchor stored, and the anchor it
        returns (if any) is stored: anchors follow the order of records whoever writes them.
        ``backlog_line`` (file id, line number) is noted in the same transaction too: the line
        of an audit backlog file the record comes from (tandem.audit_backlog), or the note of
        the record's own identity (:func:`write_note`); one noted already raises
        :class:`~tandem.exceptions.BacklogLineWritten`, nothing written."""
        ...

    async def audit_records(self, since: float = 0.0, after: int = 0) -> list[AuditRecord]:
        """Every record at or after time ``since`` and after record ``after`` (its ``seq``),
        by ``seq``."""
        ...

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
    macs_from: int | None = None
    """The record from which every record carries a MAC, as the anchors say (None: no anchor
    says so, a trail written before record MACs)."""


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
        elif type(anchor.every) is not int or anchor.every < 1:
            return False
        elif anchor.version == CHAINED:
            expected = chained_anchor_mac(
                key, anchor.seq, anchor.hash, anchor.every, anchor.prev_seq, anchor.prev_mac
            )
        elif (
            anchor.version == RECORD_MACS
            and type(anchor.macs_from) is int
            and 1 <= anchor.macs_from <= anchor.seq
        ):
            expected = record_macs_anchor_mac(
                key,
                anchor.seq,
                anchor.hash,
                anchor.every,
                anchor.prev_seq,
                anchor.prev_mac,
                anchor.macs_from,
            )
        else:
            return False
        return hmac.compare_digest(expected, anchor.mac)
    except TypeError:  # not even text where the MAC goes: written by hand (SQLite allows it)
        return False


def _anchor_problems(
    anchors: Sequence[Anchor], key: bytes, hashes: dict[int, str]
) -> tuple[list[tuple[int, str]], list[Anchor]]:
    """Problems with the anchors themselves, and the genuine chained ones (CHAINED or
    RECORD_MACS) in order."""
    problems: list[tuple[int, str]] = []
    chained: list[Anchor] = []
    present = {anchor.seq for anchor in anchors}
    previous: Anchor | None = None
    macs_seen = False
    for anchor in anchors:
        seq = anchor.seq
        genuine = _genuine(anchor, key)
        if genuine and anchor.version == LEGACY and chained:
            message = f"the anchor at record {seq} has the old format, after chained ones"
            problems.append((seq, message))
        elif genuine and anchor.version == CHAINED and macs_seen:
            # Written by a server of the version before record MACs, after the upgrade: its
            # records have no MAC either (upgrade every server sharing a database together).
            message = f"the anchor at record {seq} has the format before record MACs"
            problems.append((seq, f"{message}, after anchors of the newer one"))
        if not genuine:
            problems.append((seq, f"the anchor at record {seq} is forged"))
        elif hashes.get(seq) != anchor.hash:
            problems.append((seq, f"records up to {seq} were rewritten or removed"))
        if genuine and anchor.version in (CHAINED, RECORD_MACS):
            chained.append(anchor)
            macs_seen = macs_seen or anchor.version == RECORD_MACS
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


def _macs_from(chained: Sequence[Anchor]) -> tuple[int | None, list[tuple[int, str]]]:
    """Where record MACs start, as the first genuine RECORD_MACS anchor says (None: no such
    anchor), and any later one that says otherwise (only a holder of the key could write it)."""
    macs = [anchor for anchor in chained if _carries_macs(anchor)]
    if not macs:
        return None, []
    start = macs[0].macs_from
    return start, [
        (
            a.seq,
            f"the anchor at record {a.seq} says record MACs start at record {a.macs_from},"
            f" the anchors before it at record {start}",
        )
        for a in macs
        if a.macs_from != start
    ]


def _position_problem(records: Sequence[AuditRecord]) -> tuple[int, str] | None:
    """The first record whose organisation position is not the count of its organisation's
    records up to it (positions are not under the hash: the chain decides them). The message
    names no organisation: an organisation's admin reads it in the compliance report."""
    counts: dict[str, int] = {}
    for record in records:
        expected = counts.get(record.org, 0) + 1
        counts[record.org] = expected
        if record.org_seq != expected:
            return record.seq, (
                f"record {record.seq} says it is number {record.org_seq} of its organisation's,"
                f" the trail before it makes it number {expected}: the positions were altered"
            )
    return None


def _record_genuine(record: AuditRecord, record_key: bytes) -> bool:
    expected = record_mac(record_key, record.seq, record.prev_hash, record.hash)
    try:
        return record.mac is not None and hmac.compare_digest(expected, record.mac)
    except TypeError:  # not text (SQLite takes bytes anywhere): not written by Tandem
        return False


def _record_mac_problem(
    records: Sequence[AuditRecord], key: bytes, macs_from: int | None
) -> tuple[int, str] | None:
    """The first record from ``macs_from`` on without a valid MAC, or before it (or with no
    anchor saying where MACs start) with one: a MAC is only ever written with an anchor of the
    format that says so at or before its record, so that anchor was removed."""
    record_key = record_mac_key(key)
    for record in records:
        genuine = _record_genuine(record, record_key)
        if macs_from is not None and record.seq >= macs_from:
            if not genuine:
                return record.seq, (
                    f"record {record.seq} has no valid MAC: it was not written by a holder of"
                    " the audit key"
                )
        elif genuine:
            return record.seq, (
                f"record {record.seq} carries a MAC but no anchor says record MACs had started:"
                " anchors were removed"
            )
    return None


def _replayed_line_problem(records: Sequence[AuditRecord]) -> tuple[int, str] | None:
    """The first record written from an audit backlog line that an earlier record was written
    from already (:data:`BACKLOG_LINE`): the file put back after the database's note of its
    lines was removed."""
    first: dict[object, int] = {}
    for record in records:
        line = record.details.get(BACKLOG_LINE)
        if not isinstance(line, str):  # none; or forged, which the record MACs report
            continue
        if line in first:
            return record.seq, (
                f"record {record.seq} was written from the same audit backlog line as record"
                f" {first[line]}: a backlog file was put back and written twice"
            )
        first[line] = record.seq
    return None


def verify(
    records: Sequence[AuditRecord],
    anchors: Sequence[Anchor],
    key: bytes,
    *,
    legacy_every: int = 100,
    checkpoints: Sequence[Checkpoint] = (),
) -> Verdict:
    """Check the chain, the record MACs (every record from where the anchors say they start),
    the anchors (genuine, chained, none missing), the checkpoints, each record's position in
    its organisation's trail (``org_seq``), and that no audit backlog line was written twice
    (:data:`BACKLOG_LINE`).

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
    macs_from, disagreements = _macs_from(chained)
    problems += disagreements
    problems += _required_anchor_problems(records, anchors, chained, legacy_every)
    # After the anchors' problems: at the same record, a removed anchor is the clearer report.
    unsealed = _record_mac_problem(records, key, macs_from)
    if unsealed is not None:
        problems.append(unsealed)
    replayed = _replayed_line_problem(records) if chain is None else None
    if replayed is not None:
        problems.append(replayed)
    # Last: a record forged or altered is that first, whatever position it was given.
    misplaced = _position_problem(records) if chain is None else None
    if misplaced is not None:
        problems.append(misplaced)
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
        return Verdict(True, *counts, macs_from=macs_from)
    seq, problem = min(problems, key=lambda found: found[0])  # min keeps the first of equals
    return Verdict(False, *counts, problem, seq, macs_from)


class AuditLog:
    """Appends events, each with its record MAC; anchors them as :func:`anchor_due` says (every
    ``anchor_every`` records, at ``server_stopped``), in the same transaction."""

    def __init__(self, store: AuditStore, key: bytes, anchor_every: int = 100) -> None:
        if anchor_every < 1:
            raise ConfigError("audit_anchor_every must be at least 1")
        self.store = store
        self.key = key
        self.anchor_every = anchor_every
        self._record_key = record_mac_key(key)

    async def record(
        self,
        at: float,
        action: str,
        *,
        actor: str = "",
        org: str,
        subject: str = "",
        backlog_line: tuple[str, int] | None = None,
        write_id: str | None = None,
        **details: object,
    ) -> AuditRecord:
        """Append ``action`` filed under organisation ``org``: there is no default, so an
        installation-wide event (start, stop, sign-in attempts) names the default organisation
        explicitly. The trail is the server's own record of what happened (whoever ``actor``
        was), so it is written under a server grant for ``org``. ``backlog_line``: the line of
        an audit backlog file (file id, number) the record was kept in; raises
        :class:`~tandem.exceptions.BacklogLineWritten` if its record is on the trail already.
        ``write_id`` (:data:`WRITE_ID`): the record's identity, made before its first try; then
        it is noted instead of the line (which the line's MAC binds it to), and
        :class:`~tandem.exceptions.BacklogLineWritten` says an earlier try of it landed."""
        fields = dict(details)
        if backlog_line is not None:
            fields[BACKLOG_LINE] = f"{backlog_line[0]}:{backlog_line[1]}"
        note = write_note(write_id) if write_id is not None else backlog_line
        return await self.store.append_audit(
            Grant.server(org, "audit trail"),
            at,
            action,
            actor,
            subject,
            fields,
            anchor=self._anchor,
            seal=self._seal,
            backlog_line=note,
        )

    def evidence(
        self,
        at: float,
        entries: Callable[[T], Sequence[Entry]],
        written: Callable[[Sequence[AuditRecord]], None] | None = None,
    ) -> Evidence[T]:
        """The records ``entries`` makes of a deletion's result, at time ``at``, to append in
        the deletion's transaction (:class:`Evidence`); ``written`` is called once committed."""
        if written is None:
            return Evidence(at, entries, self._seal, self._anchor)
        return Evidence(at, entries, self._seal, self._anchor, written)

    def _seal(self, record: AuditRecord) -> str:
        return record_mac(self._record_key, record.seq, record.prev_hash, record.hash)

    def _anchor(self, record: AuditRecord, previous: Anchor | None) -> Anchor | None:
        if not anchor_due(record, previous, self.anchor_every):
            return None
        return seal_anchor(self.key, record, self.anchor_every, previous)
