"""The rows stored against the audit trail: a session or recording the trail says exists (its
creation recorded, no record of its deletion) whose row is gone was deleted outside Tandem.

The trail proves what Tandem did; it cannot by itself show what someone with database access
did to the other tables. Every way Tandem deletes a session's or a recording's row writes the
record of it in the deletion's own transaction (tandem.audit.Evidence): ``recording_erased``,
``recording_expired``, ``sessions_expired`` (their ids) and ``subject_erased`` (the ids of its
sessions and recordings). So a row missing without such a record was removed by hand. Someone
who also removes the records of its creation breaks the chain, which :func:`tandem.audit.verify`
reports: together the two checks leave the deletion nowhere to hide. ``tandem audit verify``
runs both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

from tandem.audit import DELETIONS_RECORDED, AuditRecord
from tandem.storage.base import Inventory

Kind = Literal["session", "recording"]
NEVER = 2**63
"""``sessions_from`` while the latest server to start did not record every deletion."""


@dataclasses.dataclass(frozen=True, slots=True)
class Missing:
    """A row the trail says exists that is not stored: ``created_seq`` is its creation record."""

    org: str
    kind: Kind
    id: str
    created_seq: int

    def line(self) -> str:
        return (
            f"organisation {self.org!r}: {self.kind} {self.id} (created at record"
            f" {self.created_seq}) is not stored, and no audit record says it was erased or"
            " expired: it was deleted outside Tandem"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Reconciliation:
    missing: tuple[Missing, ...]
    sessions: int
    """Sessions the trail says exist that were compared with the rows stored."""
    recordings: int
    unnamed: tuple[tuple[str, int], ...] = ()
    """``(org, seq)`` of ``subject_erased`` records written before they named their sessions:
    the sessions of that organisation created before such a record are not checked."""
    sessions_from: int = 0
    """The record from which sessions are checked (0: all): the first start of a server that
    records every deletion, after the last start of one that did not (which purged sessions'
    records past retention without a record). None started since: no session is checked."""


def _ids(value: object) -> list[str]:
    """The ids a record's detail lists (nothing if it is not a list of text: a record of
    another format)."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str)]


def reconcile(records: Sequence[AuditRecord], stored: Inventory) -> Reconciliation:
    """Compare the rows ``stored`` with what ``records`` (the whole trail, in order, checked by
    :func:`tandem.audit.verify` first) say exists. Creations recorded after ``stored.head_seq``
    are left out (their rows may have been written after the inventory was read); every
    deletion record counts (a row deleted after it was read is only not looked for)."""
    sessions: dict[tuple[str, str], int] = {}
    recordings: dict[tuple[str, str], int] = {}
    unnamed: dict[str, int] = {}
    sessions_from = 0
    for record in records:
        org, details = record.org, record.details
        if record.action == "server_started" and details.get(DELETIONS_RECORDED) is not True:
            sessions_from = NEVER  # until a server that records every deletion starts
        elif record.action == "server_started" and sessions_from == NEVER:
            sessions_from = record.seq
        elif record.action == "session_created" and record.seq <= stored.head_seq:
            sessions[org, record.subject] = record.seq
        elif record.action == "recording_started" and record.seq <= stored.head_seq:
            recordings[org, record.subject] = record.seq
        elif record.action in ("recording_erased", "recording_expired"):
            recordings.pop((org, record.subject), None)
        elif record.action == "sessions_expired":
            for session_id in _ids(details.get("sessions")):
                sessions.pop((org, session_id), None)
        elif record.action == "subject_erased":
            for recording_id in _ids(details.get("recordings")):
                recordings.pop((org, recording_id), None)
            if "session_ids" in details:
                for session_id in _ids(details["session_ids"]):
                    sessions.pop((org, session_id), None)
            else:
                unnamed[org] = record.seq
    compared = {
        key: seq
        for key, seq in sessions.items()
        if seq >= unnamed.get(key[0], 0) and seq >= sessions_from
    }
    missing = [
        Missing(org, "session", session_id, seq)
        for (org, session_id), seq in compared.items()
        if (org, session_id) not in stored.sessions
    ]
    missing += [
        Missing(org, "recording", recording_id, seq)
        for (org, recording_id), seq in recordings.items()
        if (org, recording_id) not in stored.recordings
    ]
    missing.sort(key=lambda m: (m.org, m.created_seq, m.kind, m.id))
    return Reconciliation(
        tuple(missing),
        len(compared),
        len(recordings),
        tuple(sorted(unnamed.items())),
        sessions_from,
    )
