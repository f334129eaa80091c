"""Admin routes for compliance (issue 16): the compliance check, security status and the SBOM,
data subject requests and legal holds. Each is an :class:`~tandem.server.operations.Operation`
of the organisation's admin (``org.manage``), in :data:`OPERATIONS`, which the app joins with
admin.py's (:data:`tandem.server.app.OPERATIONS`).

A customer's identifier travels in request bodies, never in URLs (which end up in logs).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import msgspec

from tandem import compliance, sbom
from tandem.server.http import download
from tandem.server.operations import Call, Operation, download_guard
from tandem.subjects import MAX_REASON_LENGTH, MAX_SUBJECT_LENGTH, Subjects, hold_json

Subject = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SUBJECT_LENGTH)]


class SubjectRequest(msgspec.Struct, forbid_unknown_fields=True):
    subject: Subject
    """The sub of the site's customer token, or a session id."""
    by: Literal["sub", "session"] | None = None
    """Which ``subject`` is, when it is both a session's id and another customer's sub
    (refused as ambiguous without it)."""


class HoldRequest(msgspec.Struct, forbid_unknown_fields=True):
    kind: Annotated[str, msgspec.Meta(min_length=1, max_length=16)]
    """``recording`` or ``subject``."""
    target: Subject
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_REASON_LENGTH)]


class ComplianceResult(msgspec.Struct, forbid_unknown_fields=True):
    requirement: str
    title: str
    reference: str
    status: str
    detail: str
    fix: str


class ComplianceReport(msgspec.Struct, forbid_unknown_fields=True):
    profile: str
    org_id: str
    checked_at: str
    passed: bool
    results: list[ComplianceResult]


class Affected(msgspec.Struct, forbid_unknown_fields=True):
    advisory: str
    summary: str
    ecosystem: str
    package: str
    version: str
    fixed: list[str]


class SecurityStatus(msgspec.Struct, forbid_unknown_fields=True):
    version: str
    components: int
    advisory_file: str | None
    advisory_age_days: float | None
    stale: bool
    affected: list[Affected]
    problem: str | None
    banner: str | None
    """What the console shows admins, if anything needs their attention."""


class SubjectFindings(msgspec.Struct, forbid_unknown_fields=True):
    org_id: str
    identifier: str
    pseudonym: str | None
    sessions: list[str]
    recordings: list[str]
    audit_records: int
    reports: int


class SubjectErased(msgspec.Struct, forbid_unknown_fields=True):
    sessions: int
    session_records: int
    recordings: list[str]
    links: int
    audit_records_kept: int


class Hold(msgspec.Struct, forbid_unknown_fields=True):
    kind: str
    target: str
    reason: str
    placed_by: str
    placed_at: float


class PlacedHold(Hold, forbid_unknown_fields=True):
    sessions: list[str]
    """The sessions the hold keeps from purge and erasure now."""
    recordings: list[str]
    """The recordings it keeps now. Both empty: it holds nothing stored yet (a customer's
    ``sub`` whose sessions are still to come, or an id that names nothing)."""


class Holds(msgspec.Struct, forbid_unknown_fields=True):
    holds: list[Hold]


def _subjects(call: Call) -> Subjects:
    services = call.services
    return Subjects(
        services.storage,
        services.hub.record,
        services.clock,
        services.hub.witness,
        services.settings.max_subject_export_bytes,
        services.settings.subject_export_attempts,
    )


async def _compliance(call: Call) -> object:
    """Every profile's report, or the one named by ``profile``."""
    wanted = call.query.get("profile")
    profiles = [compliance.check_profile(wanted)] if wanted else list(compliance.PROFILES)
    services = call.services
    now = services.clock()
    audit = await services.audit_checks.state(services.settings, services.directory, now)
    installation = await compliance.gather(
        services.settings,
        services.directory,
        call.principal,
        now,
        audit=audit,
        operator_view=False,
        # What the server hands out, read at its start: the file edited since passed as if it
        # ran (and an edit that broke it made this report fail).
        server_policy=services.hub.server_policy,
    )
    return [compliance.evaluate(p, installation, now).to_json() for p in profiles]


async def _security(call: Call) -> object:
    settings = call.services.settings
    # Read in a worker thread: the operator's advisory file (OSV JSON, up to
    # max_advisory_file_bytes) was parsed on the event loop at every admin's page, holding every
    # live session meanwhile.
    state = await asyncio.to_thread(
        sbom.status,
        settings.advisory_file,
        settings.advisory_max_age_days,
        call.services.clock(),
        max_bytes=settings.max_advisory_file_bytes,
    )
    return state.to_json()


async def _sbom(call: Call) -> object:
    return await asyncio.to_thread(sbom.load_sbom)


async def _find_subject(call: Call) -> object:
    findings = await _subjects(call).look_up(call.principal, call.body.subject, call.body.by)
    return findings.summary()


async def _export_subject(call: Call) -> object:
    # Its recordings' files count among the recordings' downloads until it is sent.
    sent = call.services.hub.recordings.downloads.begin()
    try:
        _, archive = await _subjects(call).export(call.principal, call.body.subject, call.body.by)
    except BaseException:
        sent()
        raise
    disposition = 'attachment; filename="tandem-subject-export.zip"'
    headers = {"content-disposition": disposition}
    guard = download_guard(call, "subject export")
    return download(archive, "application/zip", headers, sent, guard)


async def _erase_subject(call: Call) -> object:
    return await _subjects(call).erase(call.principal, call.body.subject, call.body.by)


async def _list_holds(call: Call) -> object:
    holds = await _subjects(call).list_holds(call.principal)
    return {"holds": [hold_json(h) for h in holds]}


async def _place_hold(call: Call) -> object:
    body: HoldRequest = call.body
    subjects = _subjects(call)
    placed = await subjects.place_hold(call.principal, body.kind, body.target, body.reason)
    return {
        **hold_json(placed.hold),
        "sessions": list(placed.sessions),
        "recordings": list(placed.recordings),
    }


async def _lift_hold(call: Call) -> object:
    body: HoldRequest = call.body
    hold = await _subjects(call).lift_hold(call.principal, body.kind, body.target, body.reason)
    return hold_json(hold)


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/api/compliance",
        "org.manage",
        "The compliance check of your organisation: every profile, or `profile` (gdpr, "
        "hipaa, pci-dss); each requirement with its status, reference and fix.",
        _compliance,
        returns=list[ComplianceReport],
        query=(("profile", {"type": "string", "enum": sorted(compliance.PROFILES)}),),
    ),
    Operation(
        "GET",
        "/api/security",
        "org.manage",
        "Known vulnerabilities in this version and its SBOM, per the operator's advisory "
        "file, and whether that file is stale (`banner`).",
        _security,
        returns=SecurityStatus,
    ),
    Operation(
        "GET",
        "/api/security/sbom",
        "org.manage",
        "The CycloneDX SBOM this build ships (Python and npm dependencies).",
        _sbom,
        returns=dict[str, Any],
    ),
    Operation(
        "POST",
        "/api/subjects/find",
        "org.manage",
        "What is stored about one customer (token sub or session id).",
        _find_subject,
        SubjectRequest,
        returns=SubjectFindings,
    ),
    Operation(
        "POST",
        "/api/subjects/export",
        "org.manage",
        "Everything about one customer as a zip with a manifest; recordings stay encrypted "
        "(audited).",
        _export_subject,
        SubjectRequest,
        media_type="application/zip",
        finds=True,
        busy=True,
    ),
    Operation(
        "POST",
        "/api/subjects/erase",
        "org.manage",
        "Erase one customer's sessions and recordings and unlink the audit trail from them "
        "(audited; refused under legal hold).",
        _erase_subject,
        SubjectRequest,
        returns=SubjectErased,
        finds=True,
    ),
    Operation(
        "GET",
        "/api/holds",
        "org.manage",
        "Your organisation's legal holds.",
        _list_holds,
        returns=Holds,
    ),
    Operation(
        "POST",
        "/api/holds",
        "org.manage",
        "Place a legal hold on a recording or a customer (token sub or session id): purge and "
        "erasure leave it alone (a reason is required; audited). The answer lists the sessions "
        "and recordings it keeps now: none for a sub whose sessions are still to come.",
        _place_hold,
        HoldRequest,
        201,
        returns=PlacedHold,
        finds=True,
    ),
    Operation(
        "POST",
        "/api/holds/lift",
        "org.manage",
        "Lift a legal hold (a reason is required; audited).",
        _lift_hold,
        HoldRequest,
        returns=Hold,
        finds=True,
    ),
)
