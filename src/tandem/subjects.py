"""Data subject requests (GDPR Art. 15 and 17) and legal holds.

A *subject* is one customer of an organisation, named by the ``sub`` of the site's customer token
(:meth:`tandem.hub.SessionHub.customer_for`) or by the id of one of their sessions. The server
links each session started with a token to its ``sub`` (table ``subject_sessions``); the audit
trail names the customer only by a random *pseudonym*, one per subject and organisation. So:

- :meth:`Subjects.find` gathers every session, recording, audit record and customer report
  (control and pause decisions, stored as audit records) concerning the subject (for an
  admin's request, :meth:`Subjects.look_up`: audited);
- :meth:`Subjects.export` writes them as a zip archive with a manifest. Recordings stay the
  customer's ciphertext, wrapped for the organisation's recording key: the archive's README says
  how to open them with the key file (``tandem recording open``); the server cannot;
- :meth:`Subjects.erase` deletes the sessions, recordings and the link from ``sub`` to the
  pseudonym. The audit trail is append-only and chained, so its records stay (Art. 17(3)(b) and
  (e)); with the link gone they no longer lead to the person. An audit record says what was erased
  (counts and ids), never the ``sub`` itself;
- a *legal hold* on a recording or a subject makes purge (retention) and erasure leave it alone
  until it is lifted; placing and lifting one needs a reason, and both are audited. A subject
  hold is stored under the customer's ``sub``; a session started without a token has none, so
  its customer is the session itself and the hold is stored under the session's id. A target
  that names nothing stored is kept as a hold for a ``sub`` whose sessions are still to come
  (:meth:`Subjects.held_now` says what a hold keeps today).

Everything here acts for an organisation's admin (action ``org.manage``) and is audited.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import re
import zipfile
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from tandem import crypto
from tandem.access import Grant, Principal, Resource, authorize
from tandem.audit import AuditRecord, Entry, Witness, deleted_with_evidence
from tandem.config import Settings
from tandem.exceptions import ConfigError, ConflictError, NotFoundError
from tandem.recordings import container, recording_json
from tandem.storage.base import (
    ExportRead,
    ExportView,
    HoldRecord,
    RecordingRecord,
    SessionRecord,
    Storage,
    SubjectErasure,
    ViewChanged,
    canonical_forms,
    subject_key,
)

Recorded = Callable[..., Awaitable[None]]

REPORT_ACTIONS = frozenset(
    {
        "control_granted",
        "control_revoked",
        "control_refused",
        "page_paused",
        "page_resumed",
        "controls_hidden",
        "controls_shown",
    }
)
"""Audit actions that are the customer's own browser reporting its decisions."""
WITHHELD_ACTIONS = frozenset({"legal_hold_placed", "legal_hold_lifted"})
"""Audit actions never handed to the customer in an export (GDPR Art. 23(1)(d), (j)): a legal
hold, and its reason, is evidence kept for a case, which the person it concerns may be the
subject of. The admin's look-up shows them (docs/compliance.md, "What an export withholds")."""
WITHHELD_NOTE = (
    "Records of legal holds (evidence kept for legal claims or an investigation) are never "
    "included in an export, whether or not there are any (GDPR Art. 23(1)(d), (j))."
)
"""Said in every export's manifest alike, so that saying it tells nothing."""
HOLD_KINDS = ("recording", "subject")
HoldKind = Literal["recording", "subject"]
NamedBy = Literal["sub", "session"]
"""What an identifier is taken for when it could be either (:meth:`Subjects.find`)."""
PSEUDONYM_SHAPE = re.compile(r"p-[A-Za-z0-9_-]{16}")
"""What :func:`new_pseudonym` makes (12 random bytes, URL-safe base64), and has since pseudonyms
were introduced: an identifier of this shape never matches legacy ``customer:<sub>`` records."""
MAX_SUBJECT_LENGTH = 256
MAX_REASON_LENGTH = 500
MAX_EXPORT_BYTES: int = next(
    f.default for f in dataclasses.fields(Settings) if f.name == "max_subject_export_bytes"
)  # type: ignore[assignment]
EXPORT_ATTEMPTS: int = next(
    f.default for f in dataclasses.fields(Settings) if f.name == "subject_export_attempts"
)  # type: ignore[assignment]
"""The default of ``Subjects.export_attempts`` (Settings.subject_export_attempts)."""

OPENING_NOTE = """\
This archive holds what Tandem stores about one customer of {org} ({subject_label}).

manifest.json   what is here, with counts and the time of the export
sessions.json   the sessions that served this customer (times, site, agent, how they ended)
audit.jsonl     the audit records concerning them (one JSON object per line)
reports.jsonl   the customer's own browser's reports (control and pause decisions)
recordings/     recordings of those sessions, still encrypted{left_out}

The recordings are end-to-end encrypted: their content keys are wrapped for the organisation's
recording key, whose private half is in a key file the organisation's auditors hold (never on
the server). To read one, with that key file and its passphrase:

    tandem recording open recordings/<recording id>.tandemrec --key <recording key file> \\
        --out <recording id>.json

It writes the rrweb events, which any rrweb player replays (docs/recordings.md).
"""


@dataclasses.dataclass(frozen=True, slots=True)
class HoldPlaced:
    """A hold just placed, and the ids of the sessions and recordings it keeps now."""

    hold: HoldRecord
    sessions: tuple[str, ...]
    recordings: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Findings:
    """Everything stored about one subject in one organisation."""

    org_id: str
    identifier: str
    subject: str | None
    """The customer's ``sub`` when known (None: a session started without a token), as stored."""
    forms: tuple[str, ...]
    """Every spelling of ``subject`` looked for (:func:`canonical_forms`): what erasure unlinks
    and what a hold on the customer may be stored under."""
    pseudonym: str | None
    sessions: tuple[SessionRecord, ...]
    session_ids: tuple[str, ...]
    """Every session linked to the subject, also those whose record retention already removed."""
    recordings: tuple[RecordingRecord, ...]
    audit: tuple[AuditRecord, ...]
    reports: tuple[AuditRecord, ...]
    looked_up: tuple[str, ...] = ()
    """The spellings whose links were read (:attr:`links`)."""
    links: tuple[tuple[str, str], ...] = ()
    """(session id, pseudonym) of each link found."""
    actors: tuple[str, ...] = ()
    """Whose records (besides those concerning the sessions and recordings) were read: the
    customer's pseudonyms, as the trail names them."""

    @property
    def empty(self) -> bool:
        return not (self.session_ids or self.recordings or self.audit or self.reports)

    @property
    def label(self) -> str:
        """How the audit trail names this subject: its pseudonym, never the ``sub``."""
        if self.pseudonym:
            return f"customer:{self.pseudonym}"
        return f"session:{self.session_ids[0]}" if self.session_ids else "unknown"

    def summary(self) -> dict[str, object]:
        return {
            "org_id": self.org_id,
            "identifier": self.identifier,
            "pseudonym": self.pseudonym,
            "sessions": list(self.session_ids),
            "recordings": [r.recording_id for r in self.recordings],
            "audit_records": len(self.audit),
            "reports": len(self.reports),
        }


def session_json(session: SessionRecord) -> dict[str, object]:
    return {
        "session_id": session.session_id,
        "site_id": session.site_id,
        "created_at": session.created_at,
        "ended_at": session.ended_at,
        "end_reason": session.end_reason,
        "agent": session.agent,
    }


def hold_json(hold: HoldRecord) -> dict[str, object]:
    return {
        "kind": hold.kind,
        "target": hold.target,
        "reason": hold.reason,
        "placed_by": hold.placed_by,
        "placed_at": hold.placed_at,
    }


class Subjects:
    """Find, export and erase what concerns a subject; place and lift legal holds."""

    def __init__(
        self,
        storage: Storage,
        record: Recorded,
        clock: Callable[[], float],
        witness: Witness | None = None,
        max_export_bytes: int = MAX_EXPORT_BYTES,
        export_attempts: int = EXPORT_ATTEMPTS,
    ) -> None:
        self.storage = storage
        self.record = record
        self.clock = clock
        self.witness = witness
        """Makes the record of an erasure, written in its transaction
        (tandem.recordings.Recordings)."""
        self.max_export_bytes = max_export_bytes
        """Recordings' bytes one export holds at most (Settings.max_subject_export_bytes)."""
        self.export_attempts = export_attempts
        """How many times an export finds the customer again when what concerns them changed
        while it was exported (:class:`~tandem.storage.base.ViewChanged`), before it answers
        409 (Settings.subject_export_attempts)."""

    async def find(
        self,
        actor: Principal,
        identifier: str,
        by: NamedBy | None = None,
        *,
        now: float | None = None,
    ) -> Findings:
        """Everything concerning the customer ``identifier`` (a ``sub`` or a session id; ``by``
        says which, when it could be both). Nothing found is an empty result, not an error.
        Given ``now`` (an export), recordings past their retention then (and under no legal
        hold) are not found: given out nowhere else, they are as erased.
        Raises ConflictError when, without ``by``, ``identifier`` is both a session's id and
        another customer's ``sub``: taken for either, one person's request would answer
        with (or erase) another's data."""
        grant = authorize(actor, "org.manage", Resource(actor.org))
        identifier = _checked_subject(identifier)
        by = _named_by(by)
        org = grant.org_id
        subject: str | None = identifier if by != "session" else None
        linked = await self._session_named(grant, identifier, by)
        if linked is not None and linked[0] == org:
            subject = linked[1]  # a session id leads to its customer
        # The same text in another normalisation form is the same customer: tokens' subs are
        # stored in NFC, an older version stored them as the site wrote them (canonical_forms).
        forms = await self._spellings(grant, subject) if subject else ()
        pairs: list[tuple[str, str]] = []
        stored: list[str] = []
        looked_up = forms
        for form in forms:
            links = await self.storage.subject_sessions(grant, form)
            if links:
                pairs.extend(links)
                stored.append(form)
        session_ids = [sid for sid, _ in pairs]
        pseudonym = pairs[0][1] if pairs else None
        if pairs:
            subject = stored[0]
        else:
            subject = None
            session = await self.storage.get_session(identifier) if by != "sub" else None
            if session is not None and session.org_id == org:
                session_ids = [identifier]  # a session without a customer token
                forms = ()
            elif by != "session":
                subject = identifier  # perhaps only named in old audit records
        sessions = await self.storage.sessions_of(grant, session_ids)
        recordings = await self.storage.recordings_of_sessions(grant, session_ids, now)
        # One pseudonym per subject, but two servers may each have made one for its first
        # sessions at the same moment: look for all of them.
        actors = [f"customer:{p}" for p in dict.fromkeys(p for _, p in pairs)]
        if subject and not PSEUDONYM_SHAPE.fullmatch(subject):
            # Written before pseudonyms (issue 16). Never for an identifier shaped like a
            # pseudonym (an admin pasting one from the trail, a site's sub of that shape):
            # `customer:<it>` is then, or may be, another customer's pseudonymous records.
            actors.extend(f"customer:{form}" for form in forms)
        records = await self.storage.audit_concerning(
            grant, [*session_ids, *(r.recording_id for r in recordings)], actors
        )
        reports = tuple(r for r in records if _is_report(r))
        return Findings(
            org_id=org,
            identifier=identifier,
            subject=subject if (pairs or records) else None,
            forms=tuple(forms) if (pairs or records) else (),
            pseudonym=pseudonym,
            sessions=tuple(sessions),
            session_ids=tuple(session_ids),
            recordings=tuple(recordings),
            audit=tuple(r for r in records if not _is_report(r)),
            reports=reports,
            looked_up=tuple(looked_up),
            links=tuple(pairs),
            actors=tuple(actors),
        )

    async def look_up(
        self, actor: Principal, identifier: str, by: NamedBy | None = None
    ) -> Findings:
        """:meth:`find` for an admin's request (the API, ``tandem subject find``), audited: its
        answer links the customer's ``sub`` to the trail's pseudonym and lists their sessions,
        so who asked about whom is on record, as for an export (never the ``sub`` itself)."""
        findings = await self.find(actor, identifier, by)
        await self.record(
            "subject_looked_up",
            actor=actor.username,
            org=actor.org,
            subject=findings.label,
            sessions=len(findings.session_ids),
            recordings=len(findings.recordings),
        )
        return findings

    async def export(
        self, actor: Principal, identifier: str, by: NamedBy | None = None
    ) -> tuple[Findings, bytes]:
        """A zip archive of everything concerning the subject (Art. 15), audited before it is
        returned: one moment's view (the trail it hands out is every record then concerning
        the sessions and recordings it lists, as they were then). Raises NotFoundError when
        nothing concerns ``identifier``; ConflictError as :meth:`find` does, or when what
        concerns the customer was erased meanwhile, or kept changing while it was exported
        (``export_attempts`` times: a live customer's page reporting again and again)."""
        for _ in range(self.export_attempts - 1):
            with contextlib.suppress(ViewChanged):
                return await self._export(actor, identifier, by)
        return await self._export(actor, identifier, by)

    async def _export(
        self, actor: Principal, identifier: str, by: NamedBy | None
    ) -> tuple[Findings, bytes]:
        # A recording past its retention (no legal hold) goes out in no export, as it is
        # played and downloaded no more (tandem.recordings): the export read it whole into the
        # archive, holding it against the purge meanwhile, until the purge erased it.
        now = self.clock()
        findings = await self.find(actor, identifier, by, now=now)
        if findings.empty:
            raise NotFoundError(f"nothing stored concerns {identifier!r} in {actor.org!r}")
        # The trail is read in the export's transaction, what was found read again after it
        # and the same, or nothing goes: read apart, outside any transaction, after the
        # sessions and recordings, a recording ended, erased or started, or a session of the
        # customer begun, between the reads went out listed one way and told the other way in
        # the trail.
        view = ExportView(
            org_id=findings.org_id,
            forms=findings.looked_up,
            links=findings.links,
            session_ids=findings.session_ids,
            sessions=findings.sessions,
            recordings=findings.recordings,
            audit_subjects=(*findings.session_ids, *(r.recording_id for r in findings.recordings)),
            audit_actors=findings.actors,
            now=now,
        )
        # Every recording was read into memory, then copied into the archive: a customer with
        # many long recordings took the process's memory (max_recording_bytes each).
        budget = self.max_export_bytes
        included, left_out = [], []
        for recording in findings.recordings:
            if recording.size <= budget:
                budget -= recording.size
                included.append(recording)
            else:
                left_out.append(recording)

        def handed_out(read: ExportRead) -> tuple[Findings, int]:
            """The findings with the trail the transaction read, as the archive gives it; and
            how many records it withholds. A hold on the customer's recording named the
            recording, so its records (reason and all) went to the customer, who may be the
            one under investigation; holds on the customer or a tokenless session did not.
            None goes now, whatever it is placed on."""
            kept = [r for r in read.audit if r.action not in WITHHELD_ACTIONS]
            return dataclasses.replace(
                findings,
                audit=tuple(r for r in kept if not _is_report(r)),
                reports=tuple(r for r in kept if _is_report(r)),
            ), len(read.audit) - len(kept)

        def entries(read: ExportRead | None) -> list[Entry]:
            if read is None:  # erased meanwhile: nothing goes out, nothing is recorded
                return []
            out, withheld = handed_out(read)
            details: dict[str, object] = {
                "sessions": len(out.session_ids),
                "recordings": len(out.recordings),
                # Named, as a playback or an export names its recording: the trail says which
                # recordings went out in it, not only how many.
                "recording_ids": [r.recording_id for r in included],
                **({"recordings_left_out": [r.recording_id for r in left_out]} if left_out else {}),
                "audit_records": len(out.audit) + len(out.reports),
                **({"audit_records_withheld": withheld} if withheld else {}),
            }
            return [Entry("subject_exported", actor.org, actor.username, out.label, details)]

        # Read and recorded in one transaction, what it names held against an erasure: read,
        # then recorded apart, an erasure of the customer between the two was followed by the
        # record of an export of what it had erased.
        # The customer's links are held too: an erasure between find's read of them and its
        # read of the sessions left no session, recording or link to hold, and the export went
        # out (and was recorded) after the erasure with the pseudonym it had unlinked from the
        # customer and the trail's records of them.
        # The recordings left out are held too: the archive lists them, and its record names
        # them.
        session_ids = [session.session_id for session in findings.sessions]
        recording_ids = [recording.recording_id for recording in included]
        listed = [recording.recording_id for recording in left_out]
        linked = findings.session_ids if findings.pseudonym is not None else ()
        if self.witness is not None:
            read = await self.storage.read_for_export(
                session_ids,
                recording_ids,
                self.witness(entries),
                linked_ids=linked,
                listed_ids=listed,
                view=view,
            )
        else:
            read = await self.storage.read_for_export(
                session_ids, recording_ids, linked_ids=linked, listed_ids=listed, view=view
            )
            for entry in entries(read):
                await self.record(
                    entry.action,
                    actor=entry.actor,
                    org=entry.org,
                    subject=entry.subject,
                    **entry.details,
                )
        if read is None:
            raise ConflictError(
                f"what concerns {identifier!r} changed while it was exported (erased meanwhile?):"
                " nothing was exported; ask again"
            )
        findings = handed_out(read)[0]
        stored = list(zip(included, read.frames, strict=True))
        # Built in a worker thread: deflating recordings (up to max_recording_bytes each) on
        # the event loop held every live session of the process for seconds.
        archive = await asyncio.to_thread(_archive, findings, stored, now, actor.username, left_out)
        return findings, archive

    async def erase(
        self, actor: Principal, identifier: str, by: NamedBy | None = None
    ) -> dict[str, object]:
        """Erase the subject's sessions and recordings and the link from their ``sub`` to the
        audit trail's pseudonym (Art. 17). Refused (ConflictError) while a legal hold covers the
        subject or one of its recordings, or one of its sessions is live, or as :meth:`find`
        refuses; NotFoundError when nothing is stored. Audited with counts and ids, never the
        ``sub``."""
        findings = await self.find(actor, identifier, by)
        grant = authorize(actor, "org.manage", Resource(actor.org))
        stored = findings.session_ids or findings.recordings
        if not stored:
            if findings.audit or findings.reports:
                raise ConflictError(
                    f"only audit records concern {identifier!r}; the audit trail is append-only "
                    "and kept as evidence (docs/compliance.md, 'Erasure')"
                )
            raise NotFoundError(f"nothing stored concerns {identifier!r} in {actor.org!r}")
        await self._refuse_if_held(grant, findings)
        for session in findings.sessions:
            if session.ended_at is None:
                raise ConflictError(_still_live(session.session_id, findings.recordings))
        kept = len(findings.audit) + len(findings.reports)

        def answer(erased: SubjectErasure) -> dict[str, object]:
            return {
                "sessions": len(findings.session_ids),
                "session_records": len(erased.sessions),
                "recordings": list(erased.recordings),
                "links": erased.links,
                "audit_records_kept": kept,
            }

        def entries(erased: SubjectErasure) -> list[Entry]:
            # The sessions named, as sessions_expired names them: `tandem audit verify` compares
            # the rows stored with what the trail says exists (tandem.reconcile).
            details = {**answer(erased), "session_ids": list(erased.sessions)}
            return [Entry("subject_erased", actor.org, actor.username, findings.label, details)]

        erased = await deleted_with_evidence(
            lambda evidence: self.storage.erase_subject(
                grant, findings.subject or "", findings.session_ids, evidence, findings.forms
            ),
            entries,
            self.witness,
            self.record,
        )
        return answer(erased)

    async def _session_named(
        self, grant: Grant, identifier: str, by: NamedBy | None
    ) -> tuple[str, str, str] | None:
        """The customer link of the session ``identifier`` names, if it names one of the
        organisation's sessions and may be taken for a session id. A session id that is also
        the ``sub`` of another customer of the organisation is ambiguous: refused without
        ``by`` (ConflictError)."""
        if by == "sub":
            return None
        linked = await self.storage.subject_of_session(identifier)
        if by == "session":
            return linked
        if linked is not None and linked[0] == grant.org_id:
            names_session = linked[1] != identifier  # (a customer whose sub is its session's id)
        else:
            names_session = await self._tokenless_session(grant, identifier)
        if names_session and await self.storage.subject_sessions(grant, identifier):
            raise ConflictError(
                f"{identifier!r} is both the id of a session and the sub of another customer: "
                'say which it is (find, export and erase take "by": "sub" or "session"; '
                "`tandem subject ... --by`); hold a customer by the id of one of their sessions"
            )
        return linked

    async def _refuse_if_held(self, grant: Grant, findings: Findings) -> None:
        holds = await self.storage.list_holds(grant)
        # A session without a customer token is held under its own id (as in storage's purge).
        customers = {findings.subject, *findings.forms, *findings.session_ids} - {None}
        recording_ids = {r.recording_id for r in findings.recordings}
        for hold in holds:
            if (hold.kind == "subject" and hold.target in customers) or (
                hold.kind == "recording" and hold.target in recording_ids
            ):
                raise ConflictError(held_message(hold))

    # Legal holds

    async def list_holds(self, actor: Principal) -> list[HoldRecord]:
        grant = authorize(actor, "org.manage", Resource(actor.org))
        return await self.storage.list_holds(grant)

    async def place_hold(self, actor: Principal, kind: str, target: str, reason: str) -> HoldPlaced:
        """Hold a recording (by id) or a subject (by ``sub`` or session id): purge and erasure
        leave it alone until it is lifted. A session id leads to its customer's ``sub``, or, for
        a session started without a token, stays the session's id. A subject target that names
        nothing stored is held for the sessions a token with that ``sub`` starts later. Returns
        the hold with what it keeps now (:meth:`held_now`). Raises ConfigError without a reason,
        NotFoundError for an unknown recording, ConflictError if it is held already.

        Audited before it is placed: a database that fails on the way leaves either nothing
        or the record of a hold asked for, never a hold the trail does not show (a retry then
        places it, and is recorded again)."""
        grant = authorize(actor, "org.manage", Resource(actor.org))
        checked = _hold_kind(kind)
        reason = _reason(reason)
        label = await self._hold_target(grant, checked, target)
        if await self._hold_on(grant, checked, label[0]) is not None:
            raise ConflictError(f"that {checked} is under legal hold already")
        hold = HoldRecord(grant.org_id, checked, label[0], reason, actor.username, self.clock())
        sessions, recordings = await self.held_now(actor, hold)
        await self.record(
            "legal_hold_placed",
            actor=actor.username,
            org=actor.org,
            subject=label[1],
            kind=checked,
            reason=reason,
        )
        if not await self.storage.put_hold(grant, hold):  # placed meanwhile by someone else
            raise ConflictError(f"that {checked} is under legal hold already")
        return HoldPlaced(hold, sessions, recordings)

    async def lift_hold(self, actor: Principal, kind: str, target: str, reason: str) -> HoldRecord:
        """Lift a hold; needs a reason too. NotFoundError if there is none. Audited before it is
        lifted, as a hold is placed: never a hold gone without a record of it."""
        grant = authorize(actor, "org.manage", Resource(actor.org))
        checked = _hold_kind(kind)
        reason = _reason(reason)
        label = await self._hold_target(grant, checked, target, must_exist=False)
        hold = await self._hold_on(grant, checked, label[0])
        if hold is None:
            raise NotFoundError(f"no legal hold on that {checked}")
        await self.record(
            "legal_hold_lifted",
            actor=actor.username,
            org=actor.org,
            subject=label[1],
            kind=checked,
            reason=reason,
        )
        await self.storage.delete_hold(grant, checked, hold.target)  # None: lifted meanwhile
        return hold

    async def _hold_on(self, grant: Grant, kind: str, target: str) -> HoldRecord | None:
        """The hold of ``kind`` on ``target``; for a subject, on any spelling of it
        (:func:`canonical_forms`), ``target`` itself first: an older version stored a hold as
        typed, and erasure now honours it under any spelling, so it must be found to lift."""
        spellings = (target, *canonical_forms(target)) if kind == "subject" else (target,)
        holds = [h for h in await self.storage.list_holds(grant) if h.kind == kind]
        for spelling in spellings:
            for hold in holds:
                if hold.target == spelling:
                    return hold
        if kind == "subject":  # stored partly composed (neither NFC nor NFD) by an older version
            for hold in holds:
                if subject_key(hold.target) == subject_key(target):
                    return hold
        return None

    async def _spellings(self, grant: Grant, subject: str) -> tuple[str, ...]:
        """Every spelling of ``subject`` to look for: :func:`canonical_forms`, then any other
        canonically equivalent form an older version stored a link or a hold under (partly
        composed: a precomposed letter beside a combining mark), which they missed."""
        forms = canonical_forms(subject)
        stored = await self.storage.stored_forms(grant, subject)
        return (*forms, *(form for form in stored if form not in forms))

    async def held_now(
        self, actor: Principal, hold: HoldRecord
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The ids of the sessions and of the recordings ``hold`` keeps from purge and erasure
        today: both empty for a hold placed ahead of a customer's first session (or on an id
        that names nothing stored)."""
        grant = authorize(actor, "org.manage", Resource(actor.org))
        if hold.kind == "recording":
            recording = await self.storage.get_recording(hold.target)
            if recording is None or recording.org_id != grant.org_id:
                return (), ()
            return (), (recording.recording_id,)
        session_ids = [sid for sid, _ in await self.storage.subject_sessions(grant, hold.target)]
        if not session_ids and await self._tokenless_session(grant, hold.target):
            session_ids = [hold.target]
        stored = [
            session.session_id for session in await self.storage.sessions_of(grant, session_ids)
        ]
        recordings = await self.storage.recordings_of_sessions(grant, session_ids)
        return tuple(stored), tuple(r.recording_id for r in recordings)

    async def _tokenless_session(self, grant: Grant, session_id: str) -> bool:
        """Whether ``session_id`` is a stored session of the organisation that was started
        without a customer token (so has no ``sub``)."""
        if await self.storage.subject_of_session(session_id) is not None:
            return False
        session = await self.storage.get_session(session_id)
        return session is not None and session.org_id == grant.org_id

    async def _hold_target(
        self, grant: Grant, kind: HoldKind, target: str, must_exist: bool = True
    ) -> tuple[str, str]:
        """What the hold is stored under, and how the audit trail names it."""
        target = _checked_subject(target)
        if kind == "recording":
            recording = await self.storage.get_recording(target)
            if must_exist and (recording is None or recording.org_id != grant.org_id):
                raise NotFoundError("recording not found")
            return target, target
        linked = await self._session_named(grant, target, None)
        subject = linked[1] if linked is not None and linked[0] == grant.org_id else target
        for form in await self._spellings(grant, subject):
            # Held under the form the customer is stored under: purge compares it as stored.
            pairs = await self.storage.subject_sessions(grant, form)
            if pairs:
                return form, f"customer:{pairs[0][1]}"
        if linked is None and await self._tokenless_session(grant, target):
            # No sub to hold: the session is its own customer (as in find), held by its id.
            return target, f"session:{target}"
        # Sessions to come are linked in NFC (tandem.crypto.verify_customer_token).
        return canonical_forms(subject)[0], "customer:(no sessions yet)"


def _archive(
    findings: Findings,
    stored: list[tuple[RecordingRecord, list[bytes]]],
    now: float,
    exported_by: str,
    left_out: Sequence[RecordingRecord] = (),
) -> bytes:
    """The zip archive of a subject export (:meth:`Subjects.export`), with each recording's
    frames given: CPU work, run in a worker thread."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        recordings = []
        for recording, frames in stored:
            name = f"recordings/{recording.recording_id}.tandemrec"
            # Stored, not deflated: ciphertext does not compress, and deflating it cost a
            # customer's export CPU for nothing (seconds per 256 MiB recording, as long again
            # for tens of thousands of small ones).
            archive.writestr(name, container(recording, frames), compress_type=zipfile.ZIP_STORED)
            recordings.append({**recording_json(recording), "file": name})
        manifest = {
            "format": 1,
            "kind": "tandem-subject-export",
            "org_id": findings.org_id,
            "subject": findings.identifier,
            "pseudonym": findings.pseudonym,
            "exported_at": datetime.fromtimestamp(now, UTC).isoformat(),
            "exported_by": exported_by,
            "sessions": len(findings.session_ids),
            "recordings": recordings,
            "recordings_left_out": [
                {
                    **recording_json(r),
                    "export": f"GET /api/recordings/{r.recording_id}/export",
                }
                for r in left_out
            ],
            "audit_records": len(findings.audit),
            "reports": len(findings.reports),
            "files": ["README.txt", "sessions.json", "audit.jsonl", "reports.jsonl"],
            "withheld": WITHHELD_NOTE,
        }
        archive.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
        archive.writestr(
            "README.txt",
            OPENING_NOTE.format(
                org=findings.org_id,
                subject_label=findings.identifier,
                left_out=(
                    f"\n                {len(left_out)} more recording(s) are too large for one "
                    "archive: manifest.json\n                lists them "
                    "(recordings_left_out), each to be exported on its own"
                    if left_out
                    else ""
                ),
            ),
        )
        archive.writestr(
            "sessions.json",
            json.dumps(
                {
                    "linked": list(findings.session_ids),
                    "stored": [session_json(s) for s in findings.sessions],
                },
                indent=2,
            ),
        )
        archive.writestr("audit.jsonl", _lines(findings.audit))
        archive.writestr("reports.jsonl", _lines(findings.reports))
    return buffer.getvalue()


async def recording_hold(
    storage: Storage, grant: Grant, recording: RecordingRecord
) -> HoldRecord | None:
    """The hold that keeps ``recording`` (on itself, or on the customer its session served:
    their ``sub``, or the session's id when it had no customer token), among ``grant``'s
    organisation's holds."""
    linked = await storage.subject_of_session(recording.session_id)
    customers = {recording.session_id} if linked is None else {recording.session_id, linked[1]}
    for hold in await storage.list_holds(grant):
        if hold.kind == "recording" and hold.target == recording.recording_id:
            return hold
        if hold.kind == "subject" and hold.target in customers:
            return hold
    return None


def held_message(hold: HoldRecord) -> str:
    when = datetime.fromtimestamp(hold.placed_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"under legal hold since {when} by {hold.placed_by} ({hold.reason}): nothing of it is "
        f"erased or purged until the hold is lifted (`tandem hold lift {hold.kind} ... "
        "--reason ...`)"
    )


def new_pseudonym(entropy: crypto.Entropy) -> str:
    return "p-" + crypto.new_token(entropy, 12)


def _lines(records: Sequence[AuditRecord]) -> str:
    """The records as the organisation may read them (their positions in its own trail, not
    the chain's numbers and hashes, which tell every other organisation's volume)."""
    out = []
    for record in records:
        line: dict[str, Any] = record.to_organisation_json()
        line["time"] = datetime.fromtimestamp(record.at, UTC).isoformat()
        out.append(json.dumps(line, sort_keys=True))
    return "\n".join(out) + ("\n" if out else "")


def _is_report(record: AuditRecord) -> bool:
    return record.actor == "customer" and record.action in REPORT_ACTIONS


def _checked_subject(value: str) -> str:
    value = value.strip()
    # A lone surrogate is a byte that was not UTF-8 on the command line: no store takes it.
    if (
        not value
        or len(value) > MAX_SUBJECT_LENGTH
        or any(ord(c) < 32 or "\ud800" <= c <= "\udfff" for c in value)
    ):
        raise ConfigError(
            f"a subject is a customer token's sub or a session id (1 to {MAX_SUBJECT_LENGTH} "
            "printable characters)"
        )
    return value


def _named_by(by: str | None) -> NamedBy | None:
    if by is None:
        return None
    if by == "sub":
        return "sub"
    if by == "session":
        return "session"
    raise ConfigError(f'a subject is named "by" its sub or a session id, not {by!r}')


def _hold_kind(kind: str) -> HoldKind:
    if kind == "recording":
        return "recording"
    if kind == "subject":
        return "subject"
    raise ConfigError(f"a legal hold is on a recording or a subject, not {kind!r}")


def _reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if not reason:
        raise ConfigError("a legal hold needs a reason (e.g. the case or request it serves)")
    if len(reason) > MAX_REASON_LENGTH:
        raise ConfigError(f"the reason is at most {MAX_REASON_LENGTH} characters")
    if any("\ud800" <= c <= "\udfff" for c in reason):  # bytes not UTF-8 on the command line
        raise ConfigError("the reason is not UTF-8 text: type it in UTF-8")
    return reason


def _still_live(session_id: str, recordings: Sequence[RecordingRecord]) -> str:
    """Why an erasure of ``session_id`` is refused: it is live, or (its people gone) its end
    waits for a recording's, stored once the database takes that recording's last writes."""
    running = [
        r.recording_id for r in recordings if r.session_id == session_id and r.ended_at is None
    ]
    if running:
        return (
            f"session {session_id} is still live: its recording {running[0]} is not yet ended "
            "in storage (the server ends it, then the session, once the database takes its "
            "writes); erase it after it has ended"
        )
    return f"session {session_id} is still live: erase it after it has ended"
