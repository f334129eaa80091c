"""Recordings: what the server keeps of a session the customer allowed to be recorded.

The server stores the customer's frames exactly as it relays them: ciphertext. While recording,
the customer's browser also wraps each page's content key for the organisation's *recording
key* (X25519; frame kind 0x05, docs/recordings.md), whose private half lives only in a key file
the auditors hold. So the server, its database and its backups cannot read a recording; an
auditor's console can, in the auditor's browser.

Who may do what is :mod:`tandem.access` (auditors list, play and export; admins list and erase);
every play, export and erasure is an audit record. Recordings belong to one organisation and go
when its retention runs out.

A recording travels as one binary *container*::

    b"TNDMREC1" | u32 header length | header (JSON) | (u32 frame length | frame)*

The header names the recording, its session (the frames' additional data binds the session id),
its organisation, site and key id. It is the server's word only: playback checks it against the
``recording_start`` payload the customer's browser encrypted into the recording's first frame.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import struct
import zlib
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from tandem import crypto
from tandem.access import Principal, Resource, authorize
from tandem.audit import Entry, Witness, deleted_with_evidence
from tandem.exceptions import BusyError, ConflictError, NotFoundError, RecordingError
from tandem.protocol import content
from tandem.storage.base import RecordingRecord, Storage

log = logging.getLogger(__name__)

CONTAINER_MAGIC = b"TNDMREC1"
MAX_PAYLOAD_BYTES = 512 * 1024 + 1024
"""Largest payload a frame inflates to (as the SDK's unpack allows)."""
MAX_LIST = 500
"""Default of the ``max_recording_list`` setting: the most recordings :meth:`Recordings.list`
gives at once."""
NOT_FOUND = "recording not found"
"""The answer for a recording erased, expired, never made or of another organisation: the
same, so that nobody learns which (tests/server/test_recording_attacks.py)."""
Recorded = Callable[..., Awaitable[None]]


def recording_json(recording: RecordingRecord) -> dict[str, object]:
    return {
        "recording_id": recording.recording_id,
        "session_id": recording.session_id,
        "site_id": recording.site_id,
        "agent": recording.agent,
        "key_id": recording.key_id,
        "started_at": recording.started_at,
        "ended_at": recording.ended_at,
        "end_reason": recording.end_reason,
        "frames": recording.frames,
        "size": recording.size,
    }


def container(recording: RecordingRecord, frames: list[bytes]) -> bytes:
    """The recording as one file: header, then every frame, length-prefixed."""
    header = json.dumps(
        {"format": 1, "org_id": recording.org_id, **recording_json(recording)},
        separators=(",", ":"),
    ).encode()
    parts = [CONTAINER_MAGIC, struct.pack(">I", len(header)), header]
    for frame in frames:
        parts += (struct.pack(">I", len(frame)), frame)
    return b"".join(parts)


def read_container(data: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """Header and frames of a container (for tests and tools). Raises ValueError if malformed."""
    if not data.startswith(CONTAINER_MAGIC) or len(data) < len(CONTAINER_MAGIC) + 4:
        raise ValueError("not a Tandem recording")
    offset = len(CONTAINER_MAGIC)
    frames: list[bytes] = []
    header: dict[str, Any] | None = None
    while offset < len(data):
        if offset + 4 > len(data):
            raise ValueError("truncated recording")
        (length,) = struct.unpack_from(">I", data, offset)
        offset += 4
        if offset + length > len(data):
            raise ValueError("truncated recording")
        chunk = data[offset : offset + length]
        offset += length
        if header is None:
            try:
                header = json.loads(chunk)
            except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
                raise ValueError("the recording's header is not JSON") from None
            if not isinstance(header, dict):
                raise ValueError("the recording's header is not an object")
        else:
            frames.append(chunk)
    if header is None:
        raise ValueError("truncated recording")
    return header, frames


BOUND_FIELDS = (
    ("recording_id", "recording_id"),
    ("session_id", "session_id"),
    ("agent", "agent"),
    ("site_id", "site"),
)
"""Header fields a server could relabel, and the field of the customer's ``recording_start``
payload that binds each."""


class _Payloads:
    """Packed payloads back into payloads, parts joined. The flag byte says how the JSON was
    packed (tandem.protocol.content): 0 as is, 1 deflated on its own (a complete stream: a large
    frame, between the frames of its epoch's stream, which it leaves as it was), 2 in its
    epoch's deflate stream, sync-flushed after each frame, 3 as 2 with the preset dictionary
    (one stream per epoch, started by its first streamed frame)."""

    def __init__(self) -> None:
        self.parts: dict[int, str] = {}
        self.epoch = -1
        self.flag = -1  # the current epoch's stream: 2 or 3, as its first frame said
        self.stream: Any = None  # zlib.Decompress of the current epoch's stream

    def push(self, packed: bytes, epoch: int) -> Any:
        try:
            flag, body = packed[0], packed[1:]
            if flag == content.DEFLATED:  # bounded as in the browsers: a deflate bomb is refused
                alone = zlib.decompressobj(-15)
                body = _inflate(alone, body)
                if not alone.eof or alone.unused_data:  # cut short, or more after its end
                    raise ValueError("a frame deflated on its own is not one whole stream")
            elif flag in (content.STREAMED, content.STREAMED_WITH_DICTIONARY):
                if epoch != self.epoch or self.stream is None:
                    primed = flag == content.STREAMED_WITH_DICTIONARY
                    zdict = {"zdict": content.CONTENT_DICTIONARY} if primed else {}
                    self.epoch, self.flag = epoch, flag
                    self.stream = zlib.decompressobj(-15, **zdict)
                if flag != self.flag:
                    raise ValueError("a frame of another stream in this epoch")
                body = _inflate(self.stream, body)
            elif flag != content.RAW:
                raise ValueError("unknown payload encoding")
            payload = json.loads(body)
            if isinstance(payload, dict) and payload.get("k") == "part":
                self.parts[int(payload["i"])] = str(payload["d"])
                if len(self.parts) < int(payload["n"]):
                    return None
                payload = json.loads("".join(self.parts[i] for i in sorted(self.parts)))
                self.parts = {}
        except (zlib.error, ValueError, KeyError, TypeError, RecursionError, IndexError):
            raise RecordingError(crypto.Broken.UNDECODABLE) from None
        return payload


def _inflate(inflater: Any, body: bytes) -> bytes:
    """``body`` inflated, refused beyond MAX_PAYLOAD_BYTES (a bomb)."""
    out: bytes = inflater.decompress(body, MAX_PAYLOAD_BYTES)
    if inflater.unconsumed_tail:
        raise ValueError("payload inflates beyond the limit")
    return out


def _kind(payload: Any) -> object:
    return payload.get("k") if isinstance(payload, dict) else None


def shown_on_terminal(value: object, limit: int = 64) -> str:
    """A value of a recording's header (the server's word, unchecked) as one line an auditor's
    terminal shows as written: printable ASCII only, anything else ``?``, at most ``limit``
    characters. An escape sequence in it would drive the terminal (set its title, write the
    clipboard, hide what follows), a newline would print a line of the server's own."""
    text = str(value)
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text[:limit])


def recording_events(
    data: bytes, key_file: str, passphrase: str, *, partial: bool = False
) -> tuple[dict[str, Any], list[Any]]:
    """Open an exported recording offline with the organisation's key file: its header and its
    rrweb events, in order. The whole recording is checked first, as the console's player does
    (docs/recordings.md): every frame authentic and in order, one chain from the customer's
    ``recording_start`` to its ``recording_end``, the header as the customer's browser bound
    it. The header returned carries ``bound``: the start and end payloads (customer's clock),
    and ``complete``: whether the customer's end marker is there.

    With ``partial``, a recording cut short (a crash: ``interrupted``; storage failing:
    ``unavailable``; or truncated by the server, which looks the same) opens up to its last
    authentic frame, ``complete`` false and ``bound.end`` None: the caller must say it is
    incomplete. Nothing else is relaxed (a missing start or middle, a forged or relabelled
    part still refuses it).

    Raises :class:`~tandem.exceptions.RecordingError` saying what is wrong."""
    try:
        header, frames = read_container(data)
    except ValueError as exc:
        raise RecordingError(f"not a Tandem recording: {exc}") from None
    key_id, private = crypto.open_recording_key(key_file, passphrase)
    if header.get("key_id") != key_id:
        raise RecordingError(
            f"this recording was made with another key ({shown_on_terminal(header.get('key_id'))})"
        )
    opener = crypto.RecordingOpener(str(header.get("session_id")), private)
    payloads = _Payloads()
    events: list[Any] = []
    start: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    for frame in frames:
        packed = opener.open(frame)
        if packed is None:
            continue
        payload = payloads.push(packed, int.from_bytes(frame[1:9], "big"))
        if start is None:
            if _kind(payload) != "recording_start":
                raise RecordingError(crypto.Broken.FIRST_MISSING)
            opener.chain(payload.get("chain"))  # first: a made-up start cannot lead to real links
            for field, bound in BOUND_FIELDS:
                value = payload.get(bound)
                if header.get(field) != value or not isinstance(value, str):
                    raise RecordingError(
                        crypto.Broken.relabelled(field, header.get(field), str(value))
                    )
            start = payload
        elif _kind(payload) == "recording_start":
            raise RecordingError(crypto.Broken.SECOND_START)
        elif _kind(payload) == "recording_end":
            if payload.get("recording_id") != start["recording_id"]:
                raise RecordingError(
                    crypto.Broken.relabelled(
                        "end's recording_id", payload.get("recording_id"), start["recording_id"]
                    )
                )
            end = payload
            opener.end()
        elif _kind(payload) == "events":
            events.extend(payload.get("events") or [])
    opener.finish(partial)
    return {**header, "bound": {"start": start, "end": end}, "complete": end is not None}, events


@dataclasses.dataclass(slots=True)
class RecordingBacklog:
    """What every recording of a process holds in memory, not yet taken by a write (bytes):
    bounded by ``recording_backlog_total_bytes`` (each recording's own bound alone allowed
    ``recording_backlog_bytes`` times the sessions while the database was frozen)."""

    held: int = 0


@dataclasses.dataclass(slots=True)
class Recorder:
    """The frames of one running recording, buffered between writes to storage."""

    recording: RecordingRecord
    limit: int
    next_seq: int = 0
    size: int = 0
    buffer: list[bytes] = dataclasses.field(default_factory=list)
    buffered: int = 0
    writing: asyncio.Task[None] | None = None
    """The task writing the buffer to storage (SessionHub._write_recording), while one runs."""
    lost: str | None = None
    """Why the recording stopped keeping frames (storage failed, or did not take them in time);
    ended ``unavailable`` once its last write is over."""
    backlog: RecordingBacklog | None = None
    """The process's total this recorder's buffer counts in (SessionHub)."""
    closing: asyncio.Task[None] | None = None
    """The task ending it in storage once it stopped (SessionHub._close_recording)."""

    def add(self, frame: bytes) -> bool:
        """Keep a frame; False (and nothing kept) when it would pass the size limit."""
        if self.size + len(frame) > self.limit:
            return False
        self.buffer.append(frame)
        self.size += len(frame)
        self.buffered += len(frame)
        if self.backlog is not None:
            self.backlog.held += len(frame)
        return True

    def take(self) -> tuple[int, list[bytes]]:
        """The buffered frames and the number of the first; the buffer empties."""
        first, frames = self.next_seq, self.buffer
        self.next_seq += len(frames)
        self.drop()
        return first, frames

    def drop(self) -> None:
        """Forget the buffered frames (taken, or never to be written): the total counts them
        no more."""
        if self.backlog is not None:
            self.backlog.held -= self.buffered
        self.buffer, self.buffered = [], 0


class Downloads:
    """Recordings' files (played, exported, or in a subject's export) being built and sent at
    once in this process: at most ``most``; beyond, :class:`BusyError`. Each holds up to
    ``max_recording_bytes`` twice in memory (its frames, then the file) until it is sent: an
    auditor asking for one large recording many times at once ran the server out of memory."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.held = 0

    def begin(self) -> Callable[[], None]:
        """Take a place (BusyError if there is none); call what this returns once it is sent,
        or failed (calling it again does nothing)."""
        if self.held >= self.most:
            raise BusyError(
                "Too many recordings are being downloaded at once: try again in a moment.", 5.0
            )
        self.held += 1
        done = False

        def release() -> None:
            nonlocal done
            if not done:
                done = True
                self.held -= 1

        return release


class Recordings:
    """Listing, playing, exporting and erasing recordings, each authorised and audited."""

    def __init__(
        self,
        storage: Storage,
        record: Recorded,
        max_downloads: int = 2,
        witness: Witness | None = None,
        clock: Callable[[], float] | None = None,
        max_list: int = MAX_LIST,
    ) -> None:
        self.storage = storage
        self.record = record
        self.downloads = Downloads(max_downloads)
        self.max_list = max_list
        """The most recordings :meth:`list` gives at once (``max_recording_list``)."""
        self.witness = witness
        """Makes the records of an erasure or a purge, written in its transaction: the
        recording goes with its record or not at all (SessionHub.witness). Without one (unit
        tests), they are appended with ``record`` after it."""
        self.clock = clock
        """The server's clock, as its purge reads it: a recording past its organisation's
        retention is played and exported no more, whether or not a purge has erased it yet.
        Without one (unit tests), retention is the purge's alone."""

    async def _get(self, actor: Principal, recording_id: str, action: Any) -> RecordingRecord:
        authorize(actor, action)
        recording = await self.storage.get_recording(recording_id)
        if recording is None:
            raise NotFoundError(NOT_FOUND)
        try:
            authorize(actor, action, Resource(recording.org_id))
        except NotFoundError:  # another organisation's: in the same words as one never made
            raise NotFoundError(NOT_FOUND) from None
        return recording

    async def list(self, actor: Principal, limit: int = 100) -> list[RecordingRecord]:
        """The organisation's recordings, newest first, ``limit`` of them at most and never more
        than :attr:`max_list`; those past its retention (under no
        legal hold) left out from the moment it ends, as their content is refused, whether or
        not the purge has erased them yet: who recorded whom, when and where is not shown
        for longer than the recording is kept (docs/recordings.md)."""
        grant = authorize(actor, "recording.list", Resource(actor.org))
        now = self.clock() if self.clock is not None else None
        return await self.storage.list_recordings(grant, max(1, min(limit, self.max_list)), now)

    async def get(self, actor: Principal, recording_id: str) -> RecordingRecord:
        """One recording's details; NotFoundError (as for one never made) when it is past its
        organisation's retention, as :meth:`list` leaves it out."""
        recording = await self._get(actor, recording_id, "recording.list")
        now = self.clock() if self.clock is not None else None
        if now is not None and await self.storage.get_recording(recording_id, now) is None:
            raise NotFoundError(NOT_FOUND)  # past its retention, or erased meanwhile
        return recording

    async def content(
        self, actor: Principal, recording_id: str, purpose: Literal["play", "export"]
    ) -> tuple[RecordingRecord, bytes]:
        """The container of a recording, for the console's player or as a download. Audited
        before anything is returned. NotFoundError (as for one never made) when it is past its
        organisation's retention, even before the purge has erased it (under a legal hold, it
        is kept, and given out)."""
        action = "recording.play" if purpose == "play" else "recording.export"
        await self._get(actor, recording_id, action)  # authorised, and recorded if refused

        def entries(read: RecordingRecord | None) -> list[Entry]:
            if read is None:  # erased meanwhile: nothing given out, nothing recorded
                return []
            return [
                Entry(
                    "recording_played" if purpose == "play" else "recording_exported",
                    read.org_id,
                    actor.username,
                    recording_id,
                    {"session": read.session_id},
                )
            ]

        # Read and recorded in one transaction: an erasure committed between the read and its
        # record gave out the erased recording's header and recorded its playback after the
        # erasure, naming the erased customer's session in the trail again.
        now = self.clock() if self.clock is not None else None
        if self.witness is not None:
            found = await self.storage.read_recording(recording_id, self.witness(entries), now)
        else:
            found = await self.storage.read_recording(recording_id, now=now)
            for entry in entries(found[0] if found else None):
                await self.record(
                    entry.action,
                    actor=entry.actor,
                    org=entry.org,
                    subject=entry.subject,
                    **entry.details,
                )
        if found is None:
            raise NotFoundError(NOT_FOUND)
        recording, frames = found
        # Joined in a worker thread: up to max_recording_bytes, copied.
        return recording, await asyncio.to_thread(container, recording, frames)

    async def erase(self, actor: Principal, recording_id: str) -> None:
        """Erase a recording (GDPR); a running one must be stopped first."""
        recording = await self._get(actor, recording_id, "recording.erase")
        if recording.ended_at is None:
            raise ConflictError("the recording is still running: stop it or end the session")
        from tandem.subjects import held_message, recording_hold  # (it imports this module)

        grant = authorize(actor, "recording.erase", Resource(recording.org_id))
        hold = await recording_hold(self.storage, grant, recording)
        if hold is not None:
            raise ConflictError(f"recording {recording_id} is {held_message(hold)}")

        def entries(deleted: bool) -> list[Entry]:
            if not deleted:  # erased meanwhile (by another request, with its own record)
                return []
            return [
                Entry(
                    "recording_erased",
                    recording.org_id,
                    actor.username,
                    recording_id,
                    {"session": recording.session_id},
                )
            ]

        await deleted_with_evidence(
            lambda evidence: self.storage.delete_recording(recording_id, evidence),
            entries,
            self.witness,
            self.record,
        )

    async def purge(self, now: float) -> int:
        """Erase recordings past their organisation's retention, each with its record (in the
        purge's transaction)."""

        def entries(purged: list[RecordingRecord]) -> list[Entry]:
            return [
                Entry(
                    "recording_expired",
                    recording.org_id,
                    "server",
                    recording.recording_id,
                    {"session": recording.session_id},
                )
                for recording in purged
            ]

        purged = await deleted_with_evidence(
            lambda evidence: self.storage.purge_recordings(now, evidence),
            entries,
            self.witness,
            self.record,
        )
        # Those a reader held were skipped (PostgreSQL's SKIP LOCKED), left to the next run: a
        # reader that never lets go (a transaction left open) had one skipped at every run,
        # kept past its retention, and nothing said so. Said at every run it is left; the
        # compliance check's retention item fails while one is overdue (tandem.compliance).
        left = await self.storage.overdue_recordings(now)
        if left:
            log.warning(
                "recordings past their retention left to the next purge, held by a reader "
                "(a playback, an export, an erasure, or a transaction left open: look for "
                "'idle in transaction' in pg_stat_activity): %s",
                ", ".join(f"{r.recording_id} ({r.org_id})" for r in left[:20])
                + (f" and {len(left) - 20} more" if len(left) > 20 else ""),
            )
        return len(purged)


def new_recording(
    recording_id: str,
    now: float,
    *,
    org_id: str,
    session_id: str,
    site_id: str,
    agent: str,
    key_id: str,
) -> RecordingRecord:
    return RecordingRecord(
        recording_id=recording_id,
        org_id=org_id,
        session_id=session_id,
        site_id=site_id,
        agent=agent,
        key_id=key_id,
        started_at=now,
    )
