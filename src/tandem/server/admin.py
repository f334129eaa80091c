"""The signed-in HTTP API: administration, supervision, the audit trail, two-step sign-in set-up.

Every route is one :class:`~tandem.server.operations.Operation` in :data:`OPERATIONS`: its method,
path, the action it needs (:mod:`tandem.access`), its body type and handler. One wrapper
(:func:`tandem.server.operations.endpoint`) signs the caller in, authorises the action *before*
reading the body, decodes and validates the body, and turns errors into problem JSON. The app
joins this table with compliance_api.py's (:data:`tandem.server.app.OPERATIONS`); the OpenAPI
description and the authorisation-matrix tests are generated from the joined table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
import segno
from starlette.responses import JSONResponse, Response

from tandem import audit, auth, crypto, revocation
from tandem.config import RECORDING_LIST_MOST
from tandem.directory import site_json, user_json
from tandem.exceptions import (
    AuthenticationError,
    BusyError,
    ConfigError,
    ForbiddenError,
    NotFoundError,
    SecondFactorError,
    TemporaryPasswordError,
)
from tandem.hub import address_group
from tandem.policy import MaskingPolicy, handed_out_problem
from tandem.recordings import recording_json
from tandem.server.http import (
    AgentInfo,
    agent_json,
    busy,
    download,
    set_sign_in_cookie,
    sign_in_token,
    too_many_attempts,
)
from tandem.server.operations import Call, Operation, download_guard
from tandem.storage.base import CLAIM_DETAIL, SET_ASIDE_BY_BINDING, UserRecord

if TYPE_CHECKING:
    pass

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Teams = Annotated[list[Name], msgspec.Meta(max_length=100)]


class NewUser(msgspec.Struct, forbid_unknown_fields=True):
    username: Name
    password: Annotated[str, msgspec.Meta(max_length=auth.MAX_PASSWORD_LENGTH)]
    """A temporary password, told to the account's owner out of band: its first sign-in may
    only choose its own (not this one)."""
    role: Name
    display_name: Label | None = None
    teams: Teams | None = None


class UserChange(msgspec.Struct, forbid_unknown_fields=True):
    role: Name | None = None
    display_name: Label | None = None
    teams: Teams | None = None


class NewTeam(msgspec.Struct, forbid_unknown_fields=True):
    team: Name


def _handed_out(policy: MaskingPolicy | None) -> None:
    """A policy customers' browsers take: none of its selectors tests the page's state, and its
    page patterns are well formed."""
    problem = handed_out_problem(policy) if policy is not None else None
    if problem:
        raise ValueError(problem.replace("$.", "$.policy.", 1))


class TeamChange(msgspec.Struct, forbid_unknown_fields=True):
    policy: MaskingPolicy | None
    """The team's policy (docs/privacy.md), or null to remove it."""

    def __post_init__(self) -> None:
        _handed_out(self.policy)


class NewSite(msgspec.Struct, forbid_unknown_fields=True):
    site_id: Name
    origin: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    teams: Teams
    name: Label | None = None
    policy: MaskingPolicy | None = None

    def __post_init__(self) -> None:
        _handed_out(self.policy)


class SiteChange(msgspec.Struct, forbid_unknown_fields=True):
    name: Label | None = None
    teams: Teams | None = None
    policy: MaskingPolicy | None = None
    clear_policy: bool = False
    require_token: bool | None = None

    def __post_init__(self) -> None:
        _handed_out(self.policy)


class OrgChange(msgspec.Struct, forbid_unknown_fields=True):
    name: Label | None = None
    retention_days: int | None = None


class RecordingKey(msgspec.Struct, forbid_unknown_fields=True):
    public_key: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    """X25519 public key, 32 bytes in base64url without padding (the console makes the pair)."""


AssuranceValue = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[!-~]+$")]
"""An ``acr`` or ``amr`` value (tandem.directory.MAX_ASSURANCE_VALUE)."""


class SsoSettings(msgspec.Struct, forbid_unknown_fields=True):
    issuer: Annotated[str, msgspec.Meta(min_length=8, max_length=300)]
    client_id: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    client_secret: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    mfa_acr: Annotated[list[AssuranceValue], msgspec.Meta(max_length=20)] | None = None
    """``acr`` values showing the provider's second factor; one must be asserted (or an
    ``amr`` of ``mfa_amr``). Omitted: kept as set."""
    mfa_amr: Annotated[list[AssuranceValue], msgspec.Meta(max_length=20)] | None = None
    """``amr`` values (RFC 8176, e.g. ``mfa``, ``hwk``) of which the ID token must assert one
    (or an ``acr`` of ``mfa_acr``). Omitted: kept as set."""


Password = Annotated[str, msgspec.Meta(min_length=1, max_length=auth.MAX_PASSWORD_LENGTH)]


class PasswordChange(msgspec.Struct, forbid_unknown_fields=True):
    current_password: Password
    new_password: Password


class PasswordReset(msgspec.Struct, forbid_unknown_fields=True):
    password: Password
    """A temporary password, told to the user out of band; it must be changed at sign-in."""


class SsoIdentity(msgspec.Struct, forbid_unknown_fields=True):
    subject: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    """The user's ``sub`` claim at the organisation's identity provider."""


class CodeConfirmation(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class RecoveryCodesRenewal(msgspec.Struct, forbid_unknown_fields=True):
    password: Password
    """The account's password, proved again."""
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    """A code of the account's authenticator (a recovery code is not taken)."""


# What the routes answer. The handlers build plain JSON; these declare its shape for the OpenAPI
# description and the console's generated types (sdk/src/generated/rest.ts), and
# tests/server/test_rest_contracts.py decodes real answers with them, strictly, so they cannot
# drift from what the handlers send.


class Answer(msgspec.Struct, forbid_unknown_fields=True):
    """A JSON answer of the API (every field always present)."""


class OrgRecordingKey(Answer):
    public_key: str
    key_id: str


class Org(Answer):
    org_id: str
    name: str
    retention_days: int
    recording_key: OrgRecordingKey | None


class OrgName(Answer):
    org_id: str
    name: str


class SsoProvider(Answer):
    issuer: str
    client_id: str
    mfa_acr: list[str]
    """An ``acr`` of these, or an ``amr`` of ``mfa_amr``, must show the provider's second
    factor; both empty: none is required (the compliance check's "mfa" item fails)."""
    mfa_amr: list[str]


class SsoAnswer(Answer):
    sso: SsoProvider | None


class User(Answer):
    username: str
    display_name: str
    role: str
    teams: list[str]
    second_factor: bool
    mfa_exempt: bool
    sso_bound: bool
    password_change_required: bool
    temporary_password_expired: bool
    """Its temporary password is older than ``temporary_password_seconds`` and signs in no
    more: give a new one (POST .../reset-password)."""
    disabled: bool
    """No sign-in while disabled (POST .../disable, .../enable)."""


class Team(Answer):
    team: str
    policy: dict[str, Any] | None


class Site(Answer):
    site_id: str
    origin: str
    name: str
    teams: list[str]
    policy: dict[str, Any] | None
    require_token: bool
    has_token_key: bool
    verified: bool
    """False until the origin is proved (POST .../verify) or approved by the operator: until
    then its pages start no sessions."""


class SiteVerification(Answer):
    verified: bool
    url: str
    """Where the site must serve ``token`` (https, unchanged, as the whole body)."""
    token: str
    dns_name: str | None
    """Or: the name whose TXT record holds ``token`` (null for an IP-address origin)."""


class TokenKey(Answer):
    key: str
    algorithm: str
    audience: str


class Recording(Answer):
    recording_id: str
    session_id: str
    site_id: str
    agent: str
    key_id: str
    started_at: float
    ended_at: float | None
    end_reason: str | None
    frames: int
    size: int


class LiveSession(Answer):
    session_id: str
    site_id: str
    site_name: str
    state: str
    agent: str | None
    created_at: float


class AuditRecord(Answer):
    seq: int
    """The record's position in the organisation's own trail (1, 2, ...: a gap is a record of
    the organisation missing), not its number in the server's chain, which every organisation
    shares: that number, and the chain's hashes, would tell the other organisations' volume."""
    at: float
    action: str
    actor: str
    subject: str
    details: dict[str, Any]


class AuditCountRecord(Answer):
    bucket: float
    """The interval's start (epoch seconds)."""
    action: str
    count: int
    detail: str
    """The last reason seen in the interval."""


class SecondFactorSetup(Answer):
    secret: str
    uri: str
    qr_svg: str


class RecoveryCodes(Answer):
    recovery_codes: list[str]


class AccountEvent(Answer):
    """One record of what happened to the signed-in account (tandem.auth.account_activity)."""

    at: float
    action: str
    """One of tandem.auth.ACCOUNT_OWN_ACTIONS (done in the account's name) or ACCOUNT_CHANGES
    (done to it by ``by``)."""
    by: str
    """Who did it: the account itself, an admin's username, or ``cli`` (the operator)."""
    ip: str | None
    """The client address it came from, where the record names one."""
    method: str | None
    """How a sign-in proved itself: ``oidc``, ``authenticator``, ``recovery_code`` or
    ``password``; for a wrong second factor, ``wrong``, ``missing`` or ``unreadable``; for the
    account's creation (``user_created``), the password its creator chose: ``temporary`` (to
    be replaced at the first sign-in) or ``kept_by_creator``."""
    chosen_by: str | None
    """For ``password_changed`` that replaced a temporary password: who chose that password
    (an admin's username, ``cli`` for the operator; ``""`` when no version kept it, one set
    before revision 0019). A change the owner did not make, of a password its chooser claimed
    before the owner could. None for other records."""


# Handlers. Each gets the authorised principal; the directory re-checks each object it touches.


def _user_json(call: Call, user: UserRecord) -> dict[str, object]:
    services = call.services
    return user_json(user, services.clock(), services.settings.temporary_password_seconds)


async def _list_users(call: Call) -> object:
    return [_user_json(call, u) for u in await call.services.directory.list_users(call.principal)]


async def _add_user(call: Call) -> object:
    body: NewUser = call.body
    user, _ = await call.services.directory.add_user(
        call.principal,
        body.username,
        body.password,
        body.role,
        body.display_name,
        tuple(body.teams) if body.teams is not None else None,
    )
    return _user_json(call, user)


async def _change_user(call: Call) -> object:
    body: UserChange = call.body
    user = await call.services.directory.update_user(
        call.principal,
        call.params["username"],
        role=body.role,
        display_name=body.display_name,
        teams=tuple(body.teams) if body.teams is not None else None,
    )
    return _user_json(call, user)


async def _delete_user(call: Call) -> object:
    await call.services.directory.delete_user(call.principal, call.params["username"])
    return None


def _chooser(details: dict[str, object]) -> str | None:
    """A claim's chooser (:class:`AccountEvent`): ``""`` when no version kept it or nobody
    chose it (the owner's own password, set aside by a binding to the identity provider: no
    name to show, as before that was kept), None for another record."""
    if CLAIM_DETAIL not in details:
        return None
    chosen = details[CLAIM_DETAIL]
    return chosen if isinstance(chosen, str) and chosen != SET_ASIDE_BY_BINDING else ""


def _account_event(record: audit.AuditRecord) -> dict[str, object]:
    details = record.details
    ip = details.get("ip")
    method = details.get("method") or details.get("second_factor") or details.get("code")
    if record.action == "user_created":  # its second_factor says what the creator was shown
        method = details.get("password")
    if record.action == "sign_in" and method is None:
        method = auth.PASSWORD_ONLY
    return {
        "at": record.at,
        "action": record.action,
        "by": record.actor,
        "ip": ip if isinstance(ip, str) else None,
        "method": method if isinstance(method, str) else None,
        "chosen_by": _chooser(details),
    }


def _own_password_first(call: Call) -> None:
    """Refuse a sign-in made with a password someone else chose (an admin's new account, or
    its reset) anything of the owner's but choosing its own: it may not set up the account's
    second factor (the owner does, after choosing the password) nor read what happened to
    the account (the owner's sign-ins, from where)."""
    if call.principal.must_change_password:
        raise ForbiddenError("choose a new password first (console: Security)")


async def _my_activity(call: Call) -> object:
    _own_password_first(call)
    services = call.services
    records = await auth.account_activity(
        services.storage,
        call.principal,
        services.clock(),
        services.settings.account_activity_days,
        services.settings.max_account_activity,
    )
    return [_account_event(r) for r in records]


async def _my_org(call: Call) -> object:
    org = await call.services.storage.get_org(call.grant)
    if org is None:
        raise NotFoundError("not found")
    return {"org_id": org.org_id, "name": org.name}


async def _disable_user(call: Call) -> object:
    user = await call.services.directory.set_disabled(
        call.principal, call.params["username"], disabled=True
    )
    return _user_json(call, user)


async def _enable_user(call: Call) -> object:
    user = await call.services.directory.set_disabled(
        call.principal, call.params["username"], disabled=False
    )
    return _user_json(call, user)


SECOND_FACTOR_HEADER = "Tandem-Second-Factor"
"""What a reset left the account with: ``new-at-next-sign-in`` (it sets up a new authenticator),
or ``none`` (created with ``--no-mfa``: it had none and still signs in with its password alone)."""


async def _reset_mfa(call: Call) -> object:
    user = await call.services.directory.reset_second_factor(
        call.principal, call.params["username"]
    )
    left = "none" if user.mfa_exempt else "new-at-next-sign-in"
    return Response(status_code=204, headers={SECOND_FACTOR_HEADER: left})


async def _reset_password(call: Call) -> object:
    body: PasswordReset = call.body
    await call.services.directory.reset_password(
        call.principal, call.params["username"], body.password
    )
    return None


async def _bind_sso(call: Call) -> object:
    body: SsoIdentity = call.body
    user = await call.services.directory.bind_sso_identity(
        call.principal, call.params["username"], body.subject
    )
    return _user_json(call, user)


async def _unbind_sso(call: Call) -> object:
    await call.services.directory.bind_sso_identity(call.principal, call.params["username"], None)
    return None


async def _change_password(call: Call) -> object:
    services = call.services
    body: PasswordChange = call.body
    key = f"user:{call.principal.username}"
    wait = await services.sign_in_backoff.retry_after(services.clock(), key)
    if wait > 0:
        return too_many_attempts(wait, "wrong passwords")
    assert call.request is not None
    address = call.request.client.host if call.request.client else ""
    try:
        token, replaced = await auth.change_password(
            services.storage,
            call.principal.username,
            body.current_password,
            body.new_password,
            services.clock(),
            services.settings.login_ttl_seconds,
            services.entropy,
            hashing=services.hashing,
            client=f"user:{call.principal.username}",
            setup_ttl=services.settings.setup_sign_in_seconds,
            temporary_ttl=services.settings.temporary_password_seconds,
        )
    except BusyError as exc:
        return busy(1.0, str(exc))  # a check takes a tenth of a second
    except TemporaryPasswordError as exc:  # a half sign-in made before it expired
        await services.sign_in_backoff.failed(services.clock(), key)
        await services.hub.record(
            "temporary_password_expired",
            actor=call.principal.username,
            org=call.principal.org,
            ip=address,
            chosen_by=exc.chosen_by,
            during="password_change",
        )
        raise
    except AuthenticationError:
        await services.sign_in_backoff.failed(services.clock(), key)
        raise
    claim: dict[str, object] = {}
    if replaced.password_change_required:
        # A temporary password claimed: whose it was and since when, for the owner (shown at
        # sign-in) and auditors, since its chooser may have claimed it (docs/security.md).
        claim[CLAIM_DETAIL] = replaced.password_set_by
        claim["temporary_chosen_at"] = (
            replaced.password_set_at
            if replaced.password_set_at is not None
            else replaced.created_at
        )
    await services.hub.record(
        "password_changed",
        actor=call.principal.username,
        org=call.principal.org,
        ip=address,
        **claim,
    )
    # Every other sign-in ended: their open sockets close now, in every process.
    revocation.announce(services.fanout, user=call.principal.username)
    user = await services.storage.get_user(call.principal.username)
    if user is None:  # removed meanwhile
        raise NotFoundError("not found")
    response = JSONResponse(agent_json(auth.principal(user, auth.password_method(user))))
    set_sign_in_cookie(response, call.request, token, services.settings.login_ttl_seconds)
    return response


async def _list_teams(call: Call) -> object:
    return await call.services.directory.list_teams(call.principal)


async def _get_team(call: Call) -> object:
    return await call.services.directory.get_team(call.principal, call.params["team"])


async def _add_team(call: Call) -> object:
    await call.services.directory.add_team(call.principal, call.body.team)
    return {"team": call.body.team}


async def _change_team(call: Call) -> object:
    team = call.params["team"]
    policy = await call.services.directory.set_team_policy(call.principal, team, call.body.policy)
    return {"team": team, "policy": policy}


async def _delete_team(call: Call) -> object:
    await call.services.directory.delete_team(call.principal, call.params["team"])
    return None


async def _list_sites(call: Call) -> object:
    return [site_json(s) for s in await call.services.directory.list_sites(call.principal)]


async def _get_site(call: Call) -> object:
    return site_json(await call.services.directory.get_site(call.principal, call.params["site_id"]))


async def _add_site(call: Call) -> object:
    body: NewSite = call.body
    site = await call.services.directory.add_site(
        call.principal, body.site_id, body.origin, body.name, tuple(body.teams), body.policy
    )
    return site_json(site)


async def _change_site(call: Call) -> object:
    body: SiteChange = call.body
    site = await call.services.directory.update_site(
        call.principal,
        call.params["site_id"],
        name=body.name,
        teams=tuple(body.teams) if body.teams is not None else None,
        policy=body.policy,
        clear_policy=body.clear_policy,
        require_token=body.require_token,
    )
    return site_json(site)


async def _delete_site(call: Call) -> object:
    await call.services.directory.delete_site(call.principal, call.params["site_id"])
    return None


async def _issue_token_key(call: Call) -> object:
    key = await call.services.directory.issue_token_key(call.principal, call.params["site_id"])
    return {"key": key, "algorithm": "HS256", "audience": call.params["site_id"]}


async def _site_verification(call: Call) -> object:
    return await call.services.directory.site_verification(call.principal, call.params["site_id"])


async def _verify_site(call: Call) -> object:
    site = await call.services.directory.verify_site(
        call.principal,
        call.params["site_id"],
        call.services.settings.site_verification_timeout_seconds,
    )
    return site_json(site)


async def _verify_site_dns(call: Call) -> object:
    settings = call.services.settings
    site = await call.services.directory.verify_site(
        call.principal,
        call.params["site_id"],
        settings.site_verification_timeout_seconds,
        dns=True,
        nameservers=settings.site_verification_nameservers,
    )
    return site_json(site)


def _org_json(org: Any) -> dict[str, object]:
    key = org.recording_key
    return {
        "org_id": org.org_id,
        "name": org.name,
        "retention_days": org.retention_days,
        "recording_key": {"public_key": key, "key_id": crypto.recording_key_id(key)}
        if key
        else None,
    }


async def _set_recording_key(call: Call) -> object:
    body: RecordingKey = call.body
    org = await call.services.directory.set_recording_key(call.principal, body.public_key)
    return _org_json(org)


async def _clear_recording_key(call: Call) -> object:
    await call.services.directory.set_recording_key(call.principal, None)
    return None


def _limit(call: Call, default: int, most: int) -> int:
    text = call.query.get("limit", str(default))
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses (a 500).
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= most:
        raise ConfigError(f"limit must be a whole number from 1 to {most}")
    return int(text)


async def _list_recordings(call: Call) -> object:
    recordings = call.services.hub.recordings
    # A limit above max_recording_list is cut to it, as the audit trail's pages are.
    found = await recordings.list(call.principal, _limit(call, 100, RECORDING_LIST_MOST))
    return [recording_json(r) for r in found]


async def _get_recording(call: Call) -> object:
    recordings = call.services.hub.recordings
    return recording_json(await recordings.get(call.principal, call.params["recording_id"]))


async def _recording_file(call: Call, purpose: Literal["play", "export"]) -> Response:
    """A recording's file, counted among the downloads under way until it is sent."""
    recordings = call.services.hub.recordings
    sent = recordings.downloads.begin()
    try:
        recording, data = await recordings.content(
            call.principal, call.params["recording_id"], purpose
        )
    except BaseException:
        sent()
        raise
    headers = {"Cache-Control": "no-store"}
    if purpose == "export":
        name = f"tandem-recording-{recording.recording_id}.tandemrec"
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    guard = download_guard(call, f"recording {recording.recording_id}")
    return download(data, "application/octet-stream", headers, sent, guard)


async def _play_recording(call: Call) -> object:
    return await _recording_file(call, "play")


async def _export_recording(call: Call) -> object:
    return await _recording_file(call, "export")


async def _erase_recording(call: Call) -> object:
    await call.services.hub.recordings.erase(call.principal, call.params["recording_id"])
    return None


async def _get_org(call: Call) -> object:
    return _org_json(await call.services.directory.get_org(call.principal))


async def _change_org(call: Call) -> object:
    body: OrgChange = call.body
    org = await call.services.directory.update_org(call.principal, body.name, body.retention_days)
    return _org_json(org)


async def _get_sso(call: Call) -> object:
    return {"sso": await call.services.directory.get_sso(call.principal)}


async def _set_sso(call: Call) -> object:
    body: SsoSettings = call.body
    return {
        "sso": await call.services.directory.set_sso(
            call.principal,
            body.issuer,
            body.client_id,
            body.client_secret,
            body.mfa_acr,
            body.mfa_amr,
        )
    }


async def _clear_sso(call: Call) -> object:
    await call.services.directory.clear_sso(call.principal)
    return None


async def _live_sessions(call: Call) -> object:
    hub = call.services.hub
    return [
        {
            "session_id": live.session_id,
            "site_id": live.site.site_id,
            "site_name": live.site.name,
            "state": live.state,
            "agent": live.agent,
            "created_at": live.created_at,
        }
        for live in await hub.live_sessions_for(call.principal)
    ]


MAX_SEQ = 2**63 - 1


def _audit_entry(record: audit.AuditRecord) -> dict[str, object]:
    """An audit record as the API answers it: the fields :class:`AuditRecord` declares, taken
    from what the organisation may read of it (its position, not the chain's number)."""
    entry = record.to_organisation_json()
    return {name: entry[name] for name in AuditRecord.__struct_fields__}


async def _audit(call: Call) -> object:
    """The organisation's audit records after position ``after`` of its trail (a page at a
    time: ``max_audit_page`` at most)."""
    most = call.services.settings.max_audit_page
    try:
        after = int(call.query.get("after", "0"))
        limit = int(call.query.get("limit", str(most)))
    except ValueError:
        raise ConfigError("after and limit are whole numbers") from None
    # Bounded before they reach the database (a 64-bit integer there; larger failed inside it).
    if not 0 <= after <= MAX_SEQ or not 0 <= limit <= MAX_SEQ:
        raise ConfigError(f"after and limit are whole numbers from 0 to {MAX_SEQ}")
    page = await call.services.storage.audit_page(call.grant, after, min(limit, most))
    await call.services.hub.record(
        "audit_read", actor=call.principal.username, org=call.principal.org, records=len(page)
    )
    return [_audit_entry(r) for r in page]


async def _audit_search(call: Call) -> object:
    """A page of the organisation's audit records, newest first, before position ``before``,
    whose action, actor or subject contains ``q`` (the console's audit trail page;
    ``max_audit_search`` at most)."""
    try:
        before = int(call.query.get("before", str(MAX_SEQ)))
        limit = int(call.query.get("limit", "50"))
    except ValueError:
        raise ConfigError("before and limit are whole numbers") from None
    if not 0 <= before <= MAX_SEQ or not 1 <= limit <= MAX_SEQ:
        raise ConfigError(f"before is a whole number from 0 to {MAX_SEQ}, limit from 1")
    text = call.query.get("q", "").strip()
    if len(text) > 100:
        raise ConfigError("q is at most 100 characters")
    page = await call.services.storage.audit_search(
        call.grant, before, min(limit, call.services.settings.max_audit_search), text
    )
    await call.services.hub.record(
        "audit_read", actor=call.principal.username, org=call.principal.org, records=len(page)
    )
    return [_audit_entry(r) for r in page]


async def _audit_counts(call: Call) -> object:
    """The organisation's counts of events with no signed-in actor after ``since``."""
    try:
        since = float(call.query.get("since", "0"))
    except ValueError:
        raise ConfigError("since is a number of seconds since the epoch") from None
    if not 0 <= since <= 1e12:
        raise ConfigError("since is a number of seconds since the epoch, from 0 to 1e12")
    counts = await call.services.storage.audit_counts(
        since, call.grant, call.services.settings.max_audit_page
    )
    await call.services.hub.record(
        "audit_read", actor=call.principal.username, org=call.principal.org, counts=len(counts)
    )
    return [
        {"bucket": c.bucket, "action": c.action, "count": c.count, "detail": c.detail}
        for c in counts
    ]


async def _begin_mfa(call: Call) -> object:
    _own_password_first(call)
    services = call.services
    user = await services.storage.get_user(call.principal.username)
    if user is None:
        raise NotFoundError("not found")
    enrolment = await auth.begin_second_factor(
        services.storage, user, services.box, services.entropy
    )
    return {
        "secret": enrolment.secret,
        "uri": enrolment.uri,
        "qr_svg": segno.make(enrolment.uri, error="m").svg_data_uri(scale=5, border=2),
    }


async def _confirm_mfa(call: Call) -> object:
    _own_password_first(call)
    services = call.services
    assert call.request is not None
    username = call.principal.username
    cookie = sign_in_token(call.request) or ""
    login = await services.storage.get_login(auth.login_digest(cookie))
    user, step = await auth.check_enrolment_code(
        services.storage, username, call.body.code, services.clock(), services.box
    )
    # Recorded before the change, which is one transaction: a failure of either leaves the
    # account as it was (still signed in, the seed still pending), never a factor turned on
    # whose recovery codes nobody saw, nor sign-ins ended with no new one for this browser.
    address = call.request.client.host if call.request.client else ""
    await services.hub.record("mfa_enrolled", actor=username, org=call.principal.org, ip=address)
    codes, _, token = await auth.confirm_second_factor(
        services.storage,
        user,
        step,
        login.method if login else auth.PASSWORD_ONLY,
        services.clock(),
        services.settings.login_ttl_seconds,
        services.entropy,
        services.box,
        services.settings.setup_sign_in_seconds,
    )
    # Every other sign-in of the account ended (one made elsewhere with the password alone
    # never showed this factor): their sockets close now, in every process; this browser,
    # which showed both, has its new one.
    revocation.announce(services.fanout, user=username)
    response = JSONResponse({"recovery_codes": codes})
    set_sign_in_cookie(response, call.request, token, services.settings.login_ttl_seconds)
    return response


async def _renew_recovery_codes(call: Call) -> object:
    services = call.services
    assert call.request is not None
    body: RecoveryCodesRenewal = call.body
    username = call.principal.username
    address = call.request.client.host if call.request.client else ""
    # The sign-in's own throttle: per account and per address (an IPv6 address with its /64),
    # shared with sign-ins, so a held sign-in guessing here is slowed as one guessing there.
    keys = (f"user:{username.lower()}", f"ip:{address_group(address)}")
    wait = await services.sign_in_backoff.wait(services.clock(), *keys)
    if wait > 0:
        return too_many_attempts(wait, "wrong passwords or codes")

    async def record_renewal() -> None:
        # Before the change, which is one transaction: a record that cannot be written leaves
        # the codes the agent holds working, never new ones it was not shown.
        await services.hub.record(
            "recovery_codes_renewed", actor=username, org=call.principal.org, ip=address
        )

    try:
        codes = await auth.renew_recovery_codes(
            services.storage,
            username,
            body.password,
            body.code,
            services.clock(),
            services.entropy,
            services.box,
            hashing=services.hashing,
            client=address_group(address),
            before_change=record_renewal,
        )
    except BusyError as exc:
        return busy(1.0, str(exc))  # a check takes a tenth of a second
    except SecondFactorError as exc:
        await services.sign_in_backoff.failed(services.clock(), *keys)
        # Whoever holds this sign-in knows the password and not the code: the alert.
        given = "unreadable" if exc.unreadable else "wrong"
        await services.hub.record(
            "second_factor_failed",
            actor=username,
            org=call.principal.org,
            ip=address,
            code=given,
            during="recovery_codes_renewal",
        )
        raise AuthenticationError("That code is not right, or was used already.") from None
    except AuthenticationError:
        await services.sign_in_backoff.failed(services.clock(), *keys)
        raise AuthenticationError("That password is not right.") from None
    return {"recovery_codes": codes}


OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/api/org", "org.manage", "Your organisation.", _get_org, returns=Org),
    Operation(
        "PATCH",
        "/api/org",
        "org.manage",
        "Rename it or change how long ended sessions are kept (retention_days).",
        _change_org,
        OrgChange,
        returns=Org,
    ),
    Operation(
        "GET",
        "/api/org/sso",
        "org.manage",
        "Your organisation's OpenID Connect provider (never its secret), or null.",
        _get_sso,
        returns=SsoAnswer,
    ),
    Operation(
        "PUT",
        "/api/org/sso",
        "org.manage",
        "Sign-in through your OpenID Connect provider: issuer, client id and secret.",
        _set_sso,
        SsoSettings,
        returns=SsoAnswer,
    ),
    Operation(
        "DELETE",
        "/api/org/sso",
        "org.manage",
        "Turn sign-in through the provider off.",
        _clear_sso,
        status=204,
    ),
    Operation(
        "PUT",
        "/api/org/recording-key",
        "org.manage",
        "Set the recording public key (X25519); its private key stays with your auditors.",
        _set_recording_key,
        RecordingKey,
        returns=Org,
    ),
    Operation(
        "DELETE",
        "/api/org/recording-key",
        "org.manage",
        "Remove the recording key: no new recordings can start.",
        _clear_recording_key,
        status=204,
    ),
    Operation(
        "GET",
        "/api/recordings",
        "recording.list",
        "Your organisation's recordings, newest first (`limit`, at most 500).",
        _list_recordings,
        returns=list[Recording],
        query=(("limit", {"type": "integer", "minimum": 1, "maximum": RECORDING_LIST_MOST}),),
    ),
    Operation(
        "GET",
        "/api/recordings/{recording_id}",
        "recording.list",
        "One recording.",
        _get_recording,
        returns=Recording,
    ),
    Operation(
        "GET",
        "/api/recordings/{recording_id}/content",
        "recording.play",
        "The encrypted recording for the console's player (audited as a playback).",
        _play_recording,
        media_type="application/octet-stream",
        busy=True,
    ),
    Operation(
        "GET",
        "/api/recordings/{recording_id}/export",
        "recording.export",
        "The encrypted recording as a file to keep (audited as an export).",
        _export_recording,
        media_type="application/octet-stream",
        busy=True,
    ),
    Operation(
        "DELETE",
        "/api/recordings/{recording_id}",
        "recording.erase",
        "Erase a recording that has ended (audited).",
        _erase_recording,
        status=204,
    ),
    Operation(
        "GET",
        "/api/users",
        "users.manage",
        "Accounts of your organisation.",
        _list_users,
        returns=list[User],
    ),
    Operation(
        "POST",
        "/api/users",
        "users.manage",
        "Create an account with a temporary password (tell it to its owner another way): its "
        "first sign-in may only choose its own password (not the same one), then set up "
        "two-step sign-in; you never see its authenticator's secret nor its recovery codes.",
        _add_user,
        NewUser,
        201,
        returns=User,
        busy=True,
    ),
    Operation(
        "PATCH",
        "/api/users/{username}",
        "users.manage",
        "Change an account's role, display name or teams.",
        _change_user,
        UserChange,
        returns=User,
    ),
    Operation(
        "DELETE",
        "/api/users/{username}",
        "users.manage",
        "Delete an account.",
        _delete_user,
        status=204,
    ),
    Operation(
        "POST",
        "/api/users/{username}/disable",
        "users.manage",
        "Disable an account: its sign-ins and sockets end, and it cannot sign in until enabled "
        "(not your own, not the last admin).",
        _disable_user,
        returns=User,
    ),
    Operation(
        "POST",
        "/api/users/{username}/enable",
        "users.manage",
        "Enable a disabled account again.",
        _enable_user,
        returns=User,
    ),
    Operation(
        "POST",
        "/api/users/{username}/reset-mfa",
        "users.manage",
        "Remove an account's authenticator (lost phone) and end its sign-ins (not your own).",
        _reset_mfa,
        status=204,
        answer_headers=(
            (
                SECOND_FACTOR_HEADER,
                ("new-at-next-sign-in", "none"),
                "new-at-next-sign-in: it sets up a new authenticator at its next sign-in; none: "
                "an account created with --no-mfa, which had none and still signs in with its "
                "password alone",
            ),
        ),
    ),
    Operation(
        "POST",
        "/api/users/{username}/reset-password",
        "users.manage",
        "Give an account a temporary password: its sign-ins end, and it must choose a new "
        "password at its next sign-in.",
        _reset_password,
        PasswordReset,
        status=204,
        busy=True,
    ),
    Operation(
        "PUT",
        "/api/users/{username}/sso",
        "users.manage",
        "Bind an account to its user (subject) at your organisation's identity provider: "
        "provider sign-ins reach only accounts bound so. A first binding makes the account's "
        "password temporary and ends its sign-ins: a bound account signs in through the "
        "provider, not with a temporary password.",
        _bind_sso,
        SsoIdentity,
        returns=User,
    ),
    Operation(
        "DELETE",
        "/api/users/{username}/sso",
        "users.manage",
        "Unbind an account from the identity provider (its sign-ins end).",
        _unbind_sso,
        status=204,
    ),
    Operation(
        "GET",
        "/api/teams",
        "teams.manage",
        "Teams of your organisation.",
        _list_teams,
        returns=list[str],
    ),
    Operation(
        "POST",
        "/api/teams",
        "teams.manage",
        "Create a team.",
        _add_team,
        NewTeam,
        201,
        returns=NewTeam,
    ),
    Operation(
        "GET",
        "/api/teams/{team}",
        "teams.manage",
        "A team and its policy.",
        _get_team,
        returns=Team,
    ),
    Operation(
        "PATCH",
        "/api/teams/{team}",
        "teams.manage",
        "Set or remove the team's own policy: page rules and masks for its agents' sessions.",
        _change_team,
        TeamChange,
        returns=Team,
    ),
    Operation(
        "DELETE", "/api/teams/{team}", "teams.manage", "Delete a team.", _delete_team, status=204
    ),
    Operation(
        "GET",
        "/api/sites",
        "sites.manage",
        "Sites of your organisation.",
        _list_sites,
        returns=list[Site],
    ),
    Operation(
        "POST",
        "/api/sites",
        "sites.manage",
        "Register a site (origin), the teams that serve it and its masking policy.",
        _add_site,
        NewSite,
        201,
        returns=Site,
    ),
    Operation("GET", "/api/sites/{site_id}", "sites.manage", "One site.", _get_site, returns=Site),
    Operation(
        "PATCH",
        "/api/sites/{site_id}",
        "sites.manage",
        "Change a site's name, teams, policy or whether customers need a token.",
        _change_site,
        SiteChange,
        returns=Site,
    ),
    Operation(
        "DELETE",
        "/api/sites/{site_id}",
        "sites.manage",
        "Delete a site.",
        _delete_site,
        status=204,
    ),
    Operation(
        "POST",
        "/api/sites/{site_id}/token-key",
        "sites.manage",
        "Issue a new key for customer tokens (shown once; the old key stops working).",
        _issue_token_key,
        returns=TokenKey,
    ),
    Operation(
        "GET",
        "/api/sites/{site_id}/verification",
        "sites.manage",
        "What the site must serve, and where, to prove its origin is yours.",
        _site_verification,
        returns=SiteVerification,
    ),
    Operation(
        "POST",
        "/api/sites/{site_id}/verify",
        "sites.manage",
        "Fetch the site's verification page now; if it serves the token, the site's pages may "
        "start sessions.",
        _verify_site,
        returns=Site,
    ),
    Operation(
        "POST",
        "/api/sites/{site_id}/verify/dns",
        "sites.manage",
        "Look up the TXT record of _tandem-verification.<host> now; if it holds the token, the "
        "site's pages may start sessions.",
        _verify_site_dns,
        returns=Site,
    ),
    Operation(
        "GET",
        "/api/sessions",
        "session.list",
        "Live sessions of the sites your teams serve (supervisors).",
        _live_sessions,
        returns=list[LiveSession],
    ),
    Operation(
        "GET",
        "/api/audit",
        "audit.read",
        "Your organisation's audit records after position `after` of its own trail (at most "
        "`max_audit_page`, 1000 by default).",
        _audit,
        returns=list[AuditRecord],
        query=(
            ("after", {"type": "integer", "minimum": 0, "maximum": MAX_SEQ}),
            ("limit", {"type": "integer", "minimum": 0, "maximum": MAX_SEQ}),
        ),
    ),
    Operation(
        "GET",
        "/api/audit/search",
        "audit.read",
        "A page of your organisation's audit records, newest first: before position `before`, "
        "at most `limit` (`max_audit_search`, 100 by default), whose event, actor or subject "
        "contains `q`.",
        _audit_search,
        returns=list[AuditRecord],
        query=(
            ("before", {"type": "integer", "minimum": 0, "maximum": MAX_SEQ}),
            ("limit", {"type": "integer", "minimum": 1, "maximum": MAX_SEQ}),
            ("q", {"type": "string", "maxLength": 100}),
        ),
    ),
    Operation(
        "GET",
        "/api/audit/counts",
        "audit.read",
        "Your organisation's counts of events with no signed-in actor (refused customer "
        "sockets, rejected customer tokens) per interval from `since` (epoch seconds; about "
        "`max_audit_page` rows, 1000 by default, the last interval whole: ask the next page "
        "from after it).",
        _audit_counts,
        returns=list[AuditCountRecord],
        query=(("since", {"type": "number", "minimum": 0, "maximum": 1e12}),),
    ),
    Operation(
        "POST",
        "/api/mfa/setup",
        "self",
        "Start setting up an authenticator: a secret, its otpauth link and a QR code (once "
        "the account chose its own password: not with one an admin gave it).",
        _begin_mfa,
        returns=SecondFactorSetup,
    ),
    Operation(
        "POST",
        "/api/mfa/confirm",
        "self",
        "Finish: a code from the authenticator turns it on; returns recovery codes (once). "
        "Every sign-in of the account ends; this browser gets a new one (its cookie).",
        _confirm_mfa,
        CodeConfirmation,
        returns=RecoveryCodes,
    ),
    Operation(
        "POST",
        "/api/me/recovery-codes",
        "self",
        "Renew your recovery codes: your password and a code of your authenticator, proved "
        "again; returns ten new codes (once). Every earlier code stops working.",
        _renew_recovery_codes,
        RecoveryCodesRenewal,
        returns=RecoveryCodes,
        throttled=True,
        busy=True,
    ),
    Operation(
        "GET",
        "/api/me/activity",
        "self",
        "What happened to your account lately (account_activity_days, newest first, at most "
        "50 of each action): its sign-ins, from where and how, and the resets, bindings and other "
        "changes an admin or the operator made to it. The console shows it at sign-in (not to "
        "a sign-in with a password an admin gave: choose your own first).",
        _my_activity,
        returns=list[AccountEvent],
    ),
    Operation(
        "GET",
        "/api/me/org",
        "self",
        "Your organisation's id and name (shown on every page of the console).",
        _my_org,
        returns=OrgName,
    ),
    Operation(
        "POST",
        "/api/me/password",
        "self",
        "Change your own password (the current one is asked for); your other sign-ins end.",
        _change_password,
        PasswordChange,
        returns=AgentInfo,
        throttled=True,
        busy=True,
    ),
)
