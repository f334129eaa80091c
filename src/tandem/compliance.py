"""Is this installation configured to meet GDPR, HIPAA or PCI DSS? (``tandem compliance check``)

:func:`gather` reads the live configuration and data of one organisation into an
:class:`Installation`; :func:`evaluate` (pure, no I/O) checks it against a profile and returns one
:class:`Result` per requirement: pass, fail or not applicable, the reference in the regulation or
standard, what was found and the exact setting or command that fixes a failure. The CLI and the
admin API print the same report. docs/compliance.md maps each requirement to the feature and the
test that proves it, and says what stays the operator's job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import stat
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

import msgspec

from tandem import auth, sbom
from tandem.access import Principal, Resource, authorize
from tandem.audit import AuditRecord, Checkpoint, load_or_create_key, verify
from tandem.config import FORWARDED_HTTPS_NOTE, PLAIN_HTTP_NOTE, PROXY_NOTE, Settings
from tandem.directory import Directory
from tandem.exceptions import ConfigError
from tandem.policy import MaskingPolicy, handed_out_problem, load_policy
from tandem.reconcile import reconcile
from tandem.storage.base import SELF_ORIGIN, VACUUM_NOTE, OrgRecord, SiteRecord, UserRecord
from tandem.training import Training

Profile = Literal["gdpr", "hipaa", "pci-dss"]
PROFILES: tuple[Profile, ...] = get_args(Profile)
Status = Literal["pass", "fail", "not applicable"]

DAY = 86400.0
GDPR_MAX_RETENTION_DAYS = 90
"""Storage limitation: ended sessions and recordings kept at most this long under the GDPR
profile (shorten it further if your purpose allows; docs/compliance.md)."""
PCI_MAX_RETENTION_DAYS = 365
MAX_PURGE_LAG_SECONDS = DAY
"""Ended sessions past retention are deleted at least this often for the retention item to
pass (``purge_interval_seconds``; by default every minute)."""
MIN_AUDIT_RETENTION_DAYS: dict[str, float] = {"pci-dss": 365, "hipaa": 6 * 365, "gdpr": 0}
"""Audit records kept at least this long: PCI DSS 10.5.1 (12 months), HIPAA §164.316(b)(2)(i)
(six years). The signed trail is never purged; this bounds the counts of events with no
signed-in actor (``anonymous_audit_retention_days``), which are."""
PCI_MAX_TRAINING_DAYS = 365
"""PCI DSS 12.6.3: security awareness training at least once every 12 months."""
MAX_KEY_CHANGE_DAYS = 30
"""A rotation of the secrets key finished within this many days: a previous key retired, a
staged key made current (PCI DSS 3.7.4 key changes at the end of their cryptoperiod; a key
kept "for now" stays for years). docs/operations.md, "Rotating the secrets key"."""
MAX_IDLE_SECONDS: dict[Profile, float] = {"pci-dss": 900.0, "hipaa": 900.0, "gdpr": 1800.0}
MAX_SIGN_IN_SECONDS = 12 * 3600.0
SINGLE_FACTOR_AMR = frozenset({"pwd", "pin", "kba"})
"""RFC 8176 ``amr`` values that are one knowledge factor (a password, a PIN, questions):
accepted alone as the provider's second factor, they accept a single factor."""
MIN_PASSWORD_LENGTH: dict[Profile, int] = {"pci-dss": 12, "hipaa": 12, "gdpr": 12}
DETECTORS: dict[Profile, tuple[str, ...]] = {"pci-dss": (), "hipaa": ("ssn",), "gdpr": ("iban",)}
"""Detectors the profile needs on for every site (payment cards are always masked)."""


@dataclasses.dataclass(frozen=True, slots=True)
class AuditState:
    ok: bool
    problem: str | None
    records: int | None
    """How many records the trail holds, every organisation's (None: not told, as to an
    organisation's admin)."""
    unanchored_since: float | None
    """Time of the oldest record covered by neither an anchor nor a checkpoint (None: all)."""
    max_age_days: float = 1.0
    """How old such a record may be (``audit_anchor_max_age_days``)."""
    empty: bool = False
    """The trail holds no record at all (every organisation's)."""
    checkpoints: int = 0
    """External checkpoints the verdict checked (``--checkpoint``)."""
    for_organisation: bool = False
    """As an organisation's admin reads it (:class:`AuditChecks`): the item names no record
    (its number is the chain's, which every organisation shares) and no record's time (the
    oldest record not anchored may be another organisation's, and when the anchors move tells
    how many records the others write)."""
    backlog_refused: tuple[str, ...] = ()
    """``audit_backlog_refused`` records after the newest external checkpoint checked, each
    named (its number, time and the lines refused): lines of the audit backlog written without
    the audit key, altered or moved, never sealed into the trail. Not told to an organisation's
    admin (they are the server's; only the operator's check takes a checkpoint)."""
    backlog_replayed: tuple[str, ...] = ()
    """``audit_backlog_replayed`` records after the newest external checkpoint checked, each
    named: backlog lines already on the trail, refused by the database, never written twice."""
    key_rotated_at: float | None = None
    """Time of the newest ``secrets_key_rotated`` record (None: none)."""
    key_staged_at: float | None = None
    """Time of the newest ``secrets_key_staged`` record (None: none)."""
    numbered: bool = False
    """``problem`` names records by the chain's numbers (the chain does not verify): told to an
    organisation's admin in other words."""


@dataclasses.dataclass(frozen=True, slots=True)
class Installation:
    """What the checks look at; :func:`gather` reads it from a live installation."""

    org: OrgRecord
    users: tuple[UserRecord, ...]
    sites: tuple[SiteRecord, ...]
    tls: bool
    behind_proxy: bool
    console_origins: tuple[str, ...]
    sso_issuer: str | None
    server_policy: MaskingPolicy | None
    login_idle_seconds: float
    login_ttl_seconds: float
    audit: AuditState
    exposed_files: tuple[tuple[str, bool], ...]
    """Keys, database or data directory (path, is a directory) that accounts other than the
    server's may read or enter."""
    key_files_on_server: tuple[str, ...]
    """Recording key files (private halves) found in the data directory."""
    security: sbom.SecurityStatus
    min_password_length: int = auth.MIN_PASSWORD_LENGTH
    untrained: tuple[str, ...] = ()
    """Agents, supervisors and auditors not trained now: the current policy not acknowledged,
    or (agents, supervisors) no practice within the interval (tandem.training)."""
    training_interval_days: int = 365
    key_files_unread: int = 0
    """Files of the data directory not looked at for recording key files (past the number the
    search reads, :data:`KEY_SEARCH_FILES`): a key file may lie among them."""
    anonymous_audit_retention_days: float = 90.0
    """How long the counts of events with no signed-in actor are kept (Settings)."""
    public_origins: tuple[str, ...] = ()
    """The origins the server answers at (``--public-origin``); empty: any ``Host``."""
    unnamed_exposure: str | None = None
    """Why browsers may reach it by other names with none set (Settings.exposure: also a
    reverse proxy's headers seen in a request)."""
    proxy_noted: bool = False
    """Whether ``unnamed_exposure`` is the note of a reverse proxy's headers seen (the database's
    PROXY_NOTE, or an earlier version's file), not the settings: it goes with ``tandem
    compliance forget-proxy`` once no proxy forwards to the servers."""
    plain_http_seen: str | None = None
    """The note of a request that came over plain HTTP (Settings.transport_seen), if any."""
    forwarded_https_seen: bool = False
    """Whether a trusted proxy has forwarded a request as https."""
    trusted_proxies: tuple[str, ...] = ()
    """``--trusted-proxy`` as set (``*``: every client)."""
    purge_interval_seconds: float = 60.0
    """How often ended sessions past retention are deleted (Settings.purge_interval_seconds)."""
    recording_purge_seconds: float = 60.0
    """How often recordings past retention are erased (Settings.recording_purge_seconds)."""
    recordings_overdue: tuple[str, ...] = ()
    """The organisation's recordings still stored ``recording_overdue_seconds`` past their
    retention (no legal hold): the purge, every ``recording_purge_seconds``, skipped them (a
    reader held them at every run: a transaction left open) or failed."""
    recording_overdue_seconds: float = 600.0
    """How long past its retention a recording may still be stored before the retention item
    fails (Settings.max_recording_overdue_seconds)."""
    database_file: bool = True
    """The database is the data directory's SQLite file (False: PostgreSQL's, whose access the
    database server controls)."""
    dependency_drift: tuple[str, ...] = ()
    """Python packages installed at another version than the SBOM lists
    (:func:`tandem.sbom.installed_drift`)."""
    secrets_previous_keys: int = 0
    """Previous keys the secrets key ring keeps (``tandem secrets retire`` drops them)."""
    secrets_staged_key: bool = False
    """The secrets key ring holds a staged key (``tandem secrets rotate`` makes it current)."""
    secrets_key_beside_data: bool = False
    """``secrets.key`` lies in the data directory: a backup of that directory carries it with
    what it seals (the SQLite database)."""
    vacuum_problem: str | None = None
    """PostgreSQL: the vacuum task's last problem as it noted it in the database (tandem.
    storage.sql.VACUUM_NOTE), if its rounds since left something; None: none."""
    sso_accounts: tuple[str, ...] = ()
    """Accounts bound to the organisation's identity provider: they sign in through it, and
    Tandem asks them for no second factor of its own."""
    sso_single_factor: tuple[str, ...] = ()
    """``amr`` values the organisation accepts as its provider's second factor that are one
    knowledge factor alone (:data:`SINGLE_FACTOR_AMR`)."""
    sso_second_factor: str | None = None
    """What an ID token must assert to show the provider's second factor (its ``acr`` or
    ``amr``), as set for the organisation; None: nothing is required."""


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    requirement: str
    title: str
    reference: str
    status: Status
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class Report:
    profile: Profile
    org_id: str
    checked_at: float
    results: tuple[Result, ...]

    @property
    def failed(self) -> tuple[Result, ...]:
        return tuple(r for r in self.results if r.status == "fail")

    def to_json(self) -> dict[str, object]:
        return {
            "profile": self.profile,
            "org_id": self.org_id,
            "checked_at": datetime.fromtimestamp(self.checked_at, UTC).isoformat(),
            "passed": not self.failed,
            "results": [r.to_json() for r in self.results],
        }

    def to_text(self) -> str:
        lines = [f"Compliance check: {self.profile} profile, organisation {self.org_id!r}"]
        for r in self.results:
            mark = {"pass": "PASS", "fail": "FAIL", "not applicable": "N/A "}[r.status]
            lines.append(f"{mark}  {r.title}  [{r.reference}]")
            lines.append(f"      {r.detail}")
            if r.status == "fail" and r.fix:
                lines.append(f"      fix: {r.fix}")
        counts = {s: sum(r.status == s for r in self.results) for s in get_args(Status)}
        lines.append(
            f"{counts['pass']} passed, {counts['fail']} failed, "
            f"{counts['not applicable']} not applicable"
        )
        return "\n".join(lines)


def check_profile(profile: str) -> Profile:
    for known in PROFILES:
        if profile == known:
            return known
    raise ConfigError(f"profile must be one of {', '.join(PROFILES)}; not {profile!r}")


# Requirements: id, title, reference per profile (None: not part of it).
REFERENCES: dict[str, tuple[str, dict[Profile, str | None]]] = {
    "transport": (
        "Encrypted transport (TLS) with HSTS",
        {
            "pci-dss": "PCI DSS v4.0 4.2.1",
            "hipaa": "HIPAA §164.312(e)(1)",
            "gdpr": "GDPR Art. 32(1)(a)",
        },
    ),
    "mfa": (
        "A second factor for every account of every role",
        {"pci-dss": "PCI DSS v4.0 8.4.2", "hipaa": "HIPAA §164.312(d)", "gdpr": "GDPR Art. 32"},
    ),
    "sso": (
        "Single sign-on provider reached over HTTPS",
        {"pci-dss": "PCI DSS v4.0 8.2.1", "hipaa": "HIPAA §164.312(d)", "gdpr": "GDPR Art. 32"},
    ),
    "password_policy": (
        "Passwords of at least 12 characters, common ones refused",
        {
            "pci-dss": "PCI DSS v4.0 8.3.6",
            "hipaa": "HIPAA §164.308(a)(5)(ii)(D)",
            "gdpr": "GDPR Art. 32",
        },
    ),
    "sign_in_timeouts": (
        "Idle and absolute sign-in timeouts",
        {
            "pci-dss": "PCI DSS v4.0 8.2.8",
            "hipaa": "HIPAA §164.312(a)(2)(iii)",
            "gdpr": "GDPR Art. 32",
        },
    ),
    "allowed_origins": (
        "Only HTTPS sites and console origins",
        {
            "pci-dss": "PCI DSS v4.0 4.2.1",
            "hipaa": "HIPAA §164.312(e)(1)",
            "gdpr": "GDPR Art. 32(1)(a)",
        },
    ),
    "public_origin": (
        "Answers only at its public origin, whatever Host a request names",
        {
            "pci-dss": "PCI DSS v4.0 6.2.4",
            "hipaa": "HIPAA §164.312(a)(1)",
            "gdpr": "GDPR Art. 32",
        },
    ),
    "masking": (
        "Masking: payment cards always, the profile's detectors on for every site",
        {
            "pci-dss": "PCI DSS v4.0 3.4.1",
            "hipaa": "HIPAA §164.502(b), §164.312(a)(1)",
            "gdpr": "GDPR Art. 25",
        },
    ),
    "payment_pages": (
        "Payment pages neither shared nor recorded",
        {"pci-dss": "PCI DSS v4.0 3.3.1, 3.4.1", "hipaa": None, "gdpr": None},
    ),
    "recording_key": (
        "Recordings encrypted to a key held offline",
        {
            "pci-dss": "PCI DSS v4.0 3.5.1",
            "hipaa": "HIPAA §164.312(a)(2)(iv)",
            "gdpr": "GDPR Art. 32(1)(a)",
        },
    ),
    "retention": (
        "Retention of sessions and recordings within the profile's bounds",
        {"pci-dss": "PCI DSS v4.0 3.2.1", "hipaa": None, "gdpr": "GDPR Art. 5(1)(e)"},
    ),
    "secrets_key": (
        "Secrets key rotations finished: no previous or staged key kept for long",
        {
            "pci-dss": "PCI DSS v4.0 3.6.1, 3.7.4",
            "hipaa": "HIPAA §164.312(a)(2)(iv)",
            "gdpr": "GDPR Art. 32(1)(a)",
        },
    ),
    "erasure_residue": (
        "Erased and purged rows gone from the database's pages, not only hidden",
        {
            "pci-dss": "PCI DSS v4.0 3.2.1",
            "hipaa": "HIPAA §164.310(d)(2)(i)",
            "gdpr": "GDPR Art. 17, 5(1)(e)",
        },
    ),
    "audit_trail": (
        "Audit trail kept, intact and anchored recently",
        {
            "pci-dss": "PCI DSS v4.0 10.2.1, 10.3.2, 10.5.1",
            "hipaa": "HIPAA §164.312(b), §164.316(b)(2)(i)",
            "gdpr": "GDPR Art. 5(2), 30",
        },
    ),
    "file_permissions": (
        "Keys and database readable by the server's account only",
        {
            "pci-dss": "PCI DSS v4.0 3.6.1.2",
            "hipaa": "HIPAA §164.312(a)(1)",
            "gdpr": "GDPR Art. 32",
        },
    ),
    "subject_requests": (
        "Sessions tied to the customer, for access and erasure requests",
        {"pci-dss": None, "hipaa": "HIPAA §164.524", "gdpr": "GDPR Art. 15, 17"},
    ),
    "training": (
        "Agents trained before they see a customer",
        {
            "pci-dss": "PCI DSS v4.0 12.6.3",
            "hipaa": "HIPAA §164.308(a)(5)(i)",
            "gdpr": "GDPR Art. 39(1)(b)",
        },
    ),
    "dependencies": (
        "No known vulnerability in this version or its dependencies; advisories current",
        {
            "pci-dss": "PCI DSS v4.0 6.3.3",
            "hipaa": "HIPAA §164.308(a)(1)(ii)(B)",
            "gdpr": "GDPR Art. 32(1)(d)",
        },
    ),
}


def evaluate(profile: Profile, inst: Installation, now: float) -> Report:
    """Check ``inst`` against ``profile``: one result per requirement, in a fixed order."""
    results = []
    for requirement, (title, references) in REFERENCES.items():
        reference = references[profile]
        if reference is None:
            results.append(
                Result(requirement, title, "-", "not applicable", f"not part of {profile}")
            )
            continue
        status, detail, fix = CHECKS[requirement](profile, inst, now)
        results.append(Result(requirement, title, reference, status, detail, fix))
    return Report(profile, inst.org.org_id, now, tuple(results))


Outcome = tuple[Status, str, str]


def _transport(profile: Profile, inst: Installation, now: float) -> Outcome:
    if inst.plain_http_seen is not None:
        return (
            "fail",
            f"a request came over plain HTTP: {inst.plain_http_seen}: sign-in cookies and "
            "sessions crossed the network unprotected",
            "serve HTTPS only: have the proxy redirect http to https and send "
            "X-Forwarded-Proto: https with what it forwards (or tandem serve --tls-cert ... "
            "--tls-key ...), then remove the note with tandem compliance forget-plain-http "
            "and check again (docs/deployment.md)",
        )
    if "*" in inst.trusted_proxies:
        # Every client is believed when it says it came over https (X-Forwarded-Proto), and
        # where it came from (X-Forwarded-For): one forged header made "https seen".
        return (
            "fail",
            "every client is trusted as a reverse proxy (--trusted-proxy *): any client's "
            "X-Forwarded-Proto: https is believed, so nothing shows how browsers reach the server",
            "name the proxies' own addresses: tandem serve --trusted-proxy 10.0.0.2 (or "
            "TANDEM_TRUSTED_PROXIES) (docs/deployment.md)",
        )
    if inst.tls:
        return "pass", "served over HTTPS by Tandem itself, with HSTS (max-age one year)", ""
    if inst.behind_proxy and inst.forwarded_https_seen:
        return (
            "pass",
            "HTTPS ends at a trusted reverse proxy: a signed-in browser's requests came "
            "forwarded as https (X-Forwarded-Proto, with the sign-in cookie browsers send over "
            "HTTPS only), none over plain HTTP; Tandem sends HSTS on them",
            "",
        )
    if inst.behind_proxy:
        # Taken on the proxy's word, the item passed for a proxy that forwards plain HTTP.
        return (
            "fail",
            "cannot tell yet: no signed-in browser's request has come through the trusted "
            "proxy as https, so nothing shows that it forwards HTTPS only (it may serve plain "
            "HTTP, or send no X-Forwarded-Proto; a client's own X-Forwarded-Proto is not taken "
            "for it)",
            "sign in to the console at its https:// address through the proxy (the proxy "
            "setting X-Forwarded-Proto: https), then check again (docs/deployment.md)",
        )
    return (
        "fail",
        "served over plain HTTP: sign-in cookies and sessions cross the network unprotected",
        "tandem serve --tls-cert CHAIN.pem --tls-key KEY.pem (or TANDEM_TLS_CERT/TANDEM_TLS_KEY), "
        "or run behind an HTTPS proxy with --trusted-proxy ADDRESS (docs/deployment.md)",
    )


def _mfa(profile: Profile, inst: Installation, now: float) -> Outcome:
    problems, fixes = [], []
    exempt = [u.username for u in inst.users if u.mfa_exempt]
    if exempt:
        problems.append(
            f"{len(exempt)} account(s) sign in with a password alone (--no-mfa): "
            + ", ".join(sorted(exempt))
        )
        fixes.append(
            "recreate each without --no-mfa: tandem user add NAME --role ROLE --org "
            f"{inst.org.org_id} (or the console: Users, Delete, Add)"
        )
    if inst.sso_accounts and inst.sso_second_factor is None:
        # They sign in through the provider, and Tandem asks them for no second factor of its
        # own: the check passed them on the assumption that the provider asked for one.
        problems.append(
            f"{len(inst.sso_accounts)} account(s) sign in through the identity provider "
            f"{inst.sso_issuer}, whose ID token need not show a second factor (no acr or amr "
            "is required): " + ", ".join(sorted(inst.sso_accounts))
        )
        fixes.append(
            'PUT /api/org/sso with "mfa_amr": ["mfa"] (or "mfa_acr": [the acr your provider '
            "gives multi-factor sign-ins]), the provider set to ask for a second factor "
            "(docs/administration.md)"
        )
    if inst.sso_accounts and inst.sso_single_factor:
        # "amr": ["pwd"] set as the requirement made the item pass for a password alone.
        problems.append(
            f"{len(inst.sso_accounts)} account(s) sign in through the identity provider with "
            "an ID token that may show a single factor: the amr values accepted include "
            + ", ".join(inst.sso_single_factor)
        )
        fixes.append(
            'PUT /api/org/sso with "mfa_amr" naming only multi-factor methods (e.g. ["mfa"]) '
            "(docs/administration.md)"
        )
    if problems:
        return "fail", "; ".join(problems), "; ".join(fixes)
    pending = sum(1 for u in inst.users if not u.totp_secret)
    extra = (
        f"; {pending} must set one up at their next sign-in before anything else" if pending else ""
    )
    if inst.sso_accounts:
        extra += (
            f"; {len(inst.sso_accounts)} sign in through the identity provider, whose ID token "
            f"must show a second factor ({inst.sso_second_factor})"
        )
    return "pass", f"{len(inst.users)} account(s), none exempt from the second factor{extra}", ""


def _sso(profile: Profile, inst: Installation, now: float) -> Outcome:
    if inst.sso_issuer is None:
        return "not applicable", "no identity provider: passwords with a second factor", ""
    if inst.sso_issuer.startswith("https://"):
        return "pass", f"identity provider {inst.sso_issuer} over HTTPS", ""
    return (
        "fail",
        f"identity provider {inst.sso_issuer} is not reached over HTTPS (a local test set-up)",
        "PUT /api/org/sso with an https:// issuer (console: Organisation, Single sign-on)",
    )


def _password_policy(profile: Profile, inst: Installation, now: float) -> Outcome:
    needed = MIN_PASSWORD_LENGTH[profile]
    if inst.min_password_length >= needed:
        return (
            "pass",
            f"at least {inst.min_password_length} characters; common passwords, the username "
            "and repetitive ones refused; argon2id hashes; sign-in back-off",
            "",
        )
    return (
        "fail",
        f"passwords may have {inst.min_password_length} characters; {profile} needs {needed}",
        f"set tandem.auth.MIN_PASSWORD_LENGTH to {needed} or more (this build was changed)",
    )


def _sign_in_timeouts(profile: Profile, inst: Installation, now: float) -> Outcome:
    idle, ttl = inst.login_idle_seconds, inst.login_ttl_seconds
    most = MAX_IDLE_SECONDS[profile]
    problems = []
    if idle > most:
        problems.append(f"an unused sign-in lasts {idle / 60:.0f} min (at most {most / 60:.0f})")
    if ttl > MAX_SIGN_IN_SECONDS:
        problems.append(
            f"a sign-in lasts {ttl / 3600:.1f} h (at most {MAX_SIGN_IN_SECONDS / 3600:.0f})"
        )
    if problems:
        return (
            "fail",
            "; ".join(problems),
            f"TANDEM_LOGIN_IDLE_SECONDS={int(min(idle, most))} "
            f"TANDEM_LOGIN_TTL_SECONDS={int(min(ttl, MAX_SIGN_IN_SECONDS))} tandem serve ...",
        )
    return "pass", f"idle {idle / 60:.0f} min, absolute {ttl / 3600:.1f} h", ""


def _allowed_origins(profile: Profile, inst: Installation, now: float) -> Outcome:
    plain = [s.origin for s in inst.sites if s.origin != SELF_ORIGIN and _plain_http(s.origin)]
    plain += [o for o in (*inst.console_origins, *inst.public_origins) if _plain_http(o)]
    if plain:
        return (
            "fail",
            "served to pages over plain HTTP: " + ", ".join(plain),
            "register the sites' https:// origins (tandem site add ID --origin https://... "
            "--team TEAM) and delete the http:// ones (DELETE /api/sites/ID); start the server "
            "with https:// --console-origin and --public-origin only",
        )
    return "pass", f"{len(inst.sites)} site(s), every external origin HTTPS", ""


def _public_origin(profile: Profile, inst: Installation, now: float) -> Outcome:
    if inst.public_origins:
        return (
            "pass",
            f"answers at {', '.join(inst.public_origins)} only; requests addressed to another "
            "host are refused (421), the probes excepted",
            "",
        )
    if inst.unnamed_exposure is None:
        return (
            "pass",
            "no public origin set: only requests addressed to an IP address, localhost or its "
            "--host are answered (any other name is refused, 421, so a rebound name gets "
            "nothing); it listens on loopback only, behind no proxy",
            "",
        )
    fix = (
        "tandem serve --public-origin https://TANDEM.HOST (or TANDEM_PUBLIC_ORIGINS), the "
        "origin browsers use"
    )
    if inst.proxy_noted:
        fix += (
            "; or, once no reverse proxy forwards to the servers any more, remove the note "
            "with tandem compliance forget-proxy"
        )
    return (
        "fail",
        f"no public origin is set and {inst.unnamed_exposure}: it answers requests addressed "
        "to any IP address, localhost or its --host (other names are refused), and a proxy "
        "that sends an address as the Host passes on whatever name the browser used (DNS "
        "rebinding makes an attacker's name same-origin with the server)",
        f"{fix} (docs/deployment.md)",
    )


def _masking(profile: Profile, inst: Installation, now: float) -> Outcome:
    refused = _refused_site_policies(inst.sites)
    if refused:
        return (
            "fail",
            "customers' browsers refuse these sites' policies (they end each session before "
            "the customer is asked): " + "; ".join(refused),
            "name elements by tag, class, id, structure and markup attributes only, never by "
            "what the customer did on the page, and write page patterns as docs/privacy.md "
            "says (PATCH /api/sites/ID, console: Sites; docs/privacy.md)",
        )
    needed = DETECTORS[profile]
    if not needed:
        return (
            "pass",
            "payment card numbers are masked on every page, in every field and in page text, "
            "and no policy can unmask them",
            "",
        )
    missing = []
    for site in inst.sites:
        policy = _effective_policy(site, inst.server_policy)
        off = [d for d in needed if policy is None or not getattr(policy.detectors, d)]
        if off:
            missing.append(f"{site.site_id} ({', '.join(off)} off)")
    if missing:
        wanted = ", ".join(f'"{d}": true' for d in needed)
        return (
            "fail",
            "detectors the profile needs are off for: " + "; ".join(missing),
            f'add "detectors": {{{wanted}}} to each site\'s policy (PATCH /api/sites/ID, '
            "console: Sites) or to the server's (tandem serve --policy FILE)",
        )
    return (
        "pass",
        f"cards always masked; {', '.join(needed)} detector(s) on for every site "
        "(a team policy can only add masks)",
        "",
    )


def _payment_pages(profile: Profile, inst: Installation, now: float) -> Outcome:
    if inst.org.recording_key is None:
        return "pass", "no recording key: nothing can be recorded", ""
    open_sites = [
        s.site_id
        for s in inst.sites
        if not ((policy := _effective_policy(s, inst.server_policy)) and policy.pages.deny)
    ]
    if open_sites:
        return (
            "fail",
            "recordings are possible and these sites name no private pages: "
            + ", ".join(open_sites),
            'list the payment pages in each site\'s policy: "pages": {"deny": ["/checkout"]} '
            "(they are then never shared, so never recorded), or remove the recording key "
            "(DELETE /api/org/recording-key)",
        )
    return "pass", "every site names private pages (never shared, never recorded)", ""


def _recording_key(profile: Profile, inst: Installation, now: float) -> Outcome:
    if inst.org.recording_key is None:
        return "not applicable", "no recording key: sessions are not recorded", ""
    if inst.key_files_on_server:
        return (
            "fail",
            "a recording key file (the private half) lies on the server: "
            + ", ".join(inst.key_files_on_server),
            "move it to the auditors' offline storage and delete it from the server",
        )
    if inst.key_files_unread:
        return (
            "fail",
            f"the data directory holds {inst.key_files_unread} file(s) more than the "
            f"{KEY_SEARCH_FILES} the check reads: a recording key file may lie among them",
            "move what is not the server's own out of the data directory (a key file: to the "
            "auditors' offline storage)",
        )
    return (
        "pass",
        "recordings are encrypted in the customer's browser to the organisation's public key; "
        "no key file in the data directory (the rest of the machine, and archives, are not "
        "searched: keeping the key file offline stays the auditors' job)",
        "",
    )


def _retention(profile: Profile, inst: Installation, now: float) -> Outcome:
    most = GDPR_MAX_RETENTION_DAYS if profile == "gdpr" else PCI_MAX_RETENTION_DAYS
    days = inst.org.retention_days
    if days > most:
        return (
            "fail",
            f"ended sessions and recordings are kept {days} days; {profile} allows {most}",
            f'PATCH /api/org {{"retention_days": {most}}} (console: Organisation)',
        )
    lag = inst.purge_interval_seconds
    if lag > MAX_PURGE_LAG_SECONDS:
        # The item read retention_days alone: a purge that runs once a year kept the ended
        # sessions for up to a year past them, and the item passed.
        return (
            "fail",
            f"ended sessions past retention are deleted only every {lag / DAY:g} days "
            f"(purge_interval_seconds): they outlive the {days}-day retention by up to that long",
            "TANDEM_PURGE_INTERVAL_SECONDS=60 (the default) in the server's environment",
        )
    if inst.recording_purge_seconds > MAX_PURGE_LAG_SECONDS:
        # The overdue recordings' bound may be as long as the purge's interval: a yearly purge
        # with a yearly bound kept recordings a year past their retention, the item passing.
        return (
            "fail",
            f"recordings past retention are erased only every "
            f"{inst.recording_purge_seconds / DAY:g} days (recording_purge_seconds): they "
            f"outlive the {days}-day retention by up to that long",
            "TANDEM_RECORDING_PURGE_SECONDS=60 (the default) in the server's environment",
        )
    if inst.recordings_overdue:
        # The purge skips a recording a reader holds (SKIP LOCKED) and takes it at its next
        # run; one held at every run (a transaction left open) was kept past its retention,
        # the item passing.
        overdue = inst.recordings_overdue
        return (
            "fail",
            f"{len(overdue)} recording(s) are still stored over "
            f"{inst.recording_overdue_seconds / 60:g} minutes past the {days}-day retention "
            f"(the purge skipped them, held by a reader, or failed): {', '.join(overdue[:10])}",
            "look for a transaction left open on the recordings ('idle in transaction' in "
            "pg_stat_activity) and end it; the server's log names each recording the purge "
            "left",
        )
    return (
        "pass",
        f"ended sessions and recordings are erased after {days} days (looked for every {lag:g} s)",
        "",
    )


def _secrets_key(profile: Profile, inst: Installation, now: float) -> Outcome:
    state = inst.audit

    def age(at: float | None) -> str:
        if at is None:
            return "since a time the audit trail does not say (no record of it)"
        return f"for {(now - at) / DAY:.0f} days"

    def overdue(at: float | None) -> bool:
        return at is None or now - at > MAX_KEY_CHANGE_DAYS * DAY

    if inst.secrets_previous_keys and overdue(state.key_rotated_at):
        return (
            "fail",
            f"the secrets key ring has kept {inst.secrets_previous_keys} previous key(s) "
            f"{age(state.key_rotated_at)} after its rotation (at most {MAX_KEY_CHANGE_DAYS} "
            "days): whoever holds an old copy of secrets.key still opens what it sealed",
            "tandem secrets status (whose recovery codes still need the previous key; have "
            "them renew their codes), then tandem secrets retire, and copy secrets.key to "
            "every server (docs/operations.md)",
        )
    if inst.secrets_staged_key and overdue(state.key_staged_at):
        return (
            "fail",
            f"a staged secrets key has waited {age(state.key_staged_at)} and was never made "
            f"current (at most {MAX_KEY_CHANGE_DAYS} days)",
            "copy secrets.key to every server, then tandem secrets rotate (docs/operations.md)",
        )
    beside = (
        "; note: secrets.key lies in the data directory, so a backup of the data directory "
        "carries the key with the database it seals (keep such backups as secret as the key, "
        "or move it out with --audit-key, whose directory it follows)"
        if inst.secrets_key_beside_data and inst.database_file
        else ""
    )
    if inst.secrets_previous_keys or inst.secrets_staged_key:
        return (
            "pass",
            f"a rotation of the secrets key is under way (finish it within "
            f"{MAX_KEY_CHANGE_DAYS} days: tandem secrets status){beside}",
            "",
        )
    return "pass", f"the secrets key ring holds its current key alone{beside}", ""


def _erasure_residue(profile: Profile, inst: Installation, now: float) -> Outcome:
    if inst.database_file:
        return (
            "pass",
            "SQLite overwrites what it deletes (secure_delete) and its write-ahead log is "
            "emptied after deletions",
            "",
        )
    problem = inst.vacuum_problem
    if problem is None:
        return (
            "pass",
            "PostgreSQL: the vacuum task removes the rows erased, purged or cleared at its next "
            "round (database_vacuum_interval_seconds), and its last round left none behind",
            "",
        )
    if "older transaction" in problem:
        fix = (
            "end the long transaction that still sees them (a backup under way, a connection "
            "left idle in a transaction: SELECT pid, xact_start, state, query FROM "
            "pg_stat_activity ORDER BY xact_start; then end it, or SELECT "
            "pg_terminate_backend(pid)); the next round removes the rows"
        )
    elif "must own" in problem:
        fix = (
            "make the role Tandem connects as the owner of its tables (ALTER TABLE ... OWNER "
            "TO that role, or run the server as the role that created them); the next round "
            "vacuums them"
        )
    elif "did not finish" in problem:
        fix = (
            "find what holds the table (a lock, a long transaction: pg_stat_activity) or "
            "raise TANDEM_DATABASE_VACUUM_TIMEOUT_SECONDS; the next round vacuums it"
        )
    else:
        fix = 'read the server\'s log ("vacuum after deletions failed"); the next round tries again'
    return (
        "fail",
        f"PostgreSQL: erased rows may still be readable in the database's files: {problem}",
        fix,
    )


def _audit_trail(profile: Profile, inst: Installation, now: float) -> Outcome:
    state = inst.audit
    if not state.ok:
        problem = (
            "`tandem audit verify` on the server names the record and what is wrong"
            if state.for_organisation and state.numbered
            else state.problem
        )
        return (
            "fail",
            f"the audit trail does not verify: {problem}",
            "tandem audit verify (find out what changed; restore the database from a backup)",
        )
    if state.empty and inst.users:
        # An empty trail verifies: deleting every record and anchor passed as "intact".
        return (
            "fail",
            f"the audit trail holds no record, yet {len(inst.users)} account(s) exist, whose "
            "creation is recorded: the trail was deleted, or the database replaced",
            "tandem audit verify --checkpoint /offsite/tandem-checkpoints.log; restore the "
            "database from a backup and find out who had access to it",
        )
    if state.unanchored_since is not None and now - state.unanchored_since > (
        state.max_age_days * DAY
    ):
        since = datetime.fromtimestamp(state.unanchored_since, UTC).isoformat(timespec="minutes")
        older = (
            f"older than {state.max_age_days:g} day(s)"
            if state.for_organisation
            else f"since {since}"
        )
        return (
            "fail",
            f"records {older} are covered by neither an anchor nor a checkpoint",
            "tandem audit checkpoint >> /offsite/tandem-checkpoints.log (daily, e.g. cron), then "
            "tandem compliance check ... --checkpoint /offsite/tandem-checkpoints.log",
        )
    if state.backlog_refused:
        return (
            "fail",
            "lines of the audit backlog (audit-backlog.jsonl) were refused at a start, never "
            "written to the trail: written without the audit key, altered or moved: "
            + "; ".join(state.backlog_refused),
            "read audit-backlog.refused in the data directory and the server's log, and find out "
            "who could write to the data directory; then tandem audit checkpoint >> "
            "/offsite/tandem-checkpoints.log and tandem compliance check ... --checkpoint "
            "/offsite/tandem-checkpoints.log (records before the newest checkpoint are taken "
            "as reviewed)",
        )
    least = MIN_AUDIT_RETENTION_DAYS[profile]
    counts_kept = inst.anonymous_audit_retention_days
    if counts_kept < least:
        return (
            "fail",
            f"the counts of events with no signed-in actor are deleted after {counts_kept:g} "
            f"days; {profile} keeps audit records at least {least:g} days",
            f"TANDEM_ANONYMOUS_AUDIT_RETENTION_DAYS={least:g} (in the server's environment)",
        )
    return (
        "pass",
        f"{'' if state.records is None else f'{state.records} records, '}"
        "chain and anchors verified, anchored within "
        f"{state.max_age_days:g} day(s); "
        f"append-only, never purged; anonymous event counts kept {counts_kept:g} days"
        + (
            f"; checked against {state.checkpoints} external checkpoint(s)"
            if state.checkpoints
            else "; no external checkpoint checked, so a trail whose newest records were cut "
            "off (at any record, with the anchors among them), or the "
            "database replaced by an older copy, would not show "
            "(tandem compliance check --checkpoint FILE; docs/audit.md)"
        )
        + (
            "; backlog lines already on the trail were refused, not written twice (a backlog "
            "file put back or copied, or a count lost to a power cut): "
            + "; ".join(state.backlog_replayed)
            if state.backlog_replayed
            else ""
        ),
        "",
    )


def _file_permissions(profile: Profile, inst: Installation, now: float) -> Outcome:
    if inst.exposed_files:
        folders = [path for path, folder in inst.exposed_files if folder]
        files = [path for path, folder in inst.exposed_files if not folder]
        commands = ([f"chmod 700 {' '.join(folders)}"] if folders else []) + (
            [f"chmod 600 {' '.join(files)}"] if files else []
        )
        return (
            "fail",
            "other accounts on this machine may read: "
            + ", ".join(path for path, _ in inst.exposed_files),
            " && ".join(commands),
        )
    if not inst.database_file:
        return (
            "pass",
            "data directory and keys private to the server's account; the database is "
            "PostgreSQL's, whose accounts and access the database server controls (not checked "
            "here: docs/scale-out.md)",
            "",
        )
    return "pass", "data directory, database and keys private to the server's account", ""


def _subject_requests(profile: Profile, inst: Installation, now: float) -> Outcome:
    loose = [s.site_id for s in inst.sites if s.origin != SELF_ORIGIN and not s.require_token]
    if loose:
        return (
            "fail",
            "sessions of these sites carry no customer identity, so a person's request can be "
            "answered only by session id: " + ", ".join(loose),
            "issue a token key (POST /api/sites/ID/token-key) and require tokens "
            '(PATCH /api/sites/ID {"require_token": true}); docs/administration.md',
        )
    return (
        "pass",
        "every site's sessions name their customer: tandem subject export/erase find them",
        "",
    )


def _training(profile: Profile, inst: Installation, now: float) -> Outcome:
    org = inst.org.org_id
    if inst.untrained:
        return (
            "fail",
            f"{len(inst.untrained)} account(s) not trained (policy not acknowledged or practice "
            "due): " + ", ".join(sorted(inst.untrained)),
            "each signs in to the console and completes Training (the policy, then the practice "
            f"exercise); `tandem training status --org {org}` lists them (docs/training.md)",
        )
    if profile == "pci-dss" and inst.training_interval_days > PCI_MAX_TRAINING_DAYS:
        return (
            "fail",
            f"re-training every {inst.training_interval_days} days; PCI DSS asks at least once "
            "every 12 months",
            "console: Training, Re-training interval 365 (or PUT /api/training/interval "
            '{"days": 365})',
        )
    return (
        "pass",
        "every agent, supervisor and auditor is trained; re-training every "
        f"{inst.training_interval_days} days",
        "",
    )


def _dependencies(profile: Profile, inst: Installation, now: float) -> Outcome:
    state = inst.security
    if inst.dependency_drift:
        # Advisories are matched against the SBOM: a package changed by hand in the server's
        # environment (an older, vulnerable one) passed as the version the SBOM lists.
        return (
            "fail",
            "installed packages differ from the SBOM the advisories are matched against: "
            + "; ".join(inst.dependency_drift),
            "reinstall Tandem's pinned dependencies (pip install --require-hashes -r "
            "requirements/runtime.txt, or the release's wheel with its lock) "
            "(docs/security-updates.md)",
        )
    if state.findings:
        listed = "; ".join(
            f"{f.component.name} {f.component.version} ({f.advisory}"
            + (f", fixed in {', '.join(f.fixed)})" if f.fixed else ", no fix yet)")
            for f in state.findings
        )
        return "fail", listed, "upgrade Tandem to a release with the fixes (SECURITY.md)"
    if state.problem:
        return (
            "fail",
            state.problem,
            "fetch OSV advisories daily and point TANDEM_ADVISORY_FILE at them "
            "(docs/security-updates.md)",
        )
    if state.stale:
        return (
            "fail",
            f"the advisory file is {state.advisory_age_days} days old",
            f"fetch current OSV advisories into {state.advisory_file} (docs/security-updates.md)",
        )
    return (
        "pass",
        f"tandem {state.version} and {state.components} components: no advisory applies "
        f"(advisories {state.advisory_age_days} days old)",
        "",
    )


CHECKS = {
    "transport": _transport,
    "mfa": _mfa,
    "sso": _sso,
    "password_policy": _password_policy,
    "sign_in_timeouts": _sign_in_timeouts,
    "allowed_origins": _allowed_origins,
    "public_origin": _public_origin,
    "masking": _masking,
    "payment_pages": _payment_pages,
    "recording_key": _recording_key,
    "secrets_key": _secrets_key,
    "retention": _retention,
    "erasure_residue": _erasure_residue,
    "audit_trail": _audit_trail,
    "file_permissions": _file_permissions,
    "subject_requests": _subject_requests,
    "training": _training,
    "dependencies": _dependencies,
}


def _plain_http(origin: str) -> bool:
    return origin.startswith("http://")


def _refused_site_policies(sites: Sequence[SiteRecord]) -> list[str]:
    """Sites whose stored policy customers' browsers refuse (:func:`handed_out_problem`: a
    selector that tests the page's state, a malformed page pattern): kept from before these were
    refused, the customers' browsers end their sessions."""
    refused = []
    for site in sites:
        if not site.policy:
            continue
        try:
            policy = msgspec.json.decode(site.policy, type=MaskingPolicy)
        except msgspec.MsgspecError:
            refused.append(f"{site.site_id} (not a valid policy)")
            continue
        problem = handed_out_problem(policy)
        if problem:
            refused.append(f"{site.site_id} ({problem})")
    return refused


def _effective_policy(site: SiteRecord, server: MaskingPolicy | None) -> MaskingPolicy | None:
    if site.policy:
        return msgspec.json.decode(site.policy, type=MaskingPolicy)
    return server


# Reading a live installation


async def gather(
    settings: Settings,
    directory: Directory,
    actor: Principal,
    now: float,
    checkpoints: Sequence[Checkpoint] = (),
    audit: AuditState | None = None,
    *,
    operator_view: bool = True,
    server_policy: MaskingPolicy | Literal["from settings"] | None = "from settings",
) -> Installation:
    """Read what the checks need from the live configuration, storage and files (the audit
    trail's state too, unless ``audit`` gives it: :class:`AuditChecks`). Without
    ``operator_view`` (an organisation's admin, through the API), recording key files on the
    server are counted, not named: their names may be other organisations'. ``server_policy``:
    the policy the running server hands out (read at its start; the API passes it), else the
    policy file as it is now (the command, which refuses to run when the file changed since the
    server started: Settings.checked_settings)."""
    grant = authorize(actor, "org.manage", Resource(actor.org))
    org = await directory.get_org(actor)
    storage = directory.storage
    sso = await directory.get_sso(actor)
    users = tuple(await storage.list_users(grant))
    training = Training(
        storage, settings, lambda: now, directory.entropy, directory.box, directory.record
    )
    standings = await training.roster(grant, users)
    key_files, key_files_unread = await asyncio.to_thread(recording_key_files, settings.data_dir)
    exposure = await asyncio.to_thread(
        settings.exposure, await storage.installation_note(PROXY_NOTE)
    )
    transport = await asyncio.to_thread(
        settings.transport_seen,
        await storage.installation_note(PLAIN_HTTP_NOTE),
        await storage.installation_note(FORWARDED_HTTPS_NOTE),
    )
    return Installation(
        org=org,
        users=users,
        untrained=tuple(s.username for s in standings if not s.trained),
        training_interval_days=await training.interval(grant),
        sites=tuple(await storage.list_sites(grant)),
        tls=settings.tls,
        behind_proxy=bool(settings.trusted_proxies),
        trusted_proxies=settings.trusted_proxies,
        console_origins=settings.console_origins,
        public_origins=settings.public_origins,
        unnamed_exposure=exposure,
        proxy_noted=exposure is not None and settings.unnamed_exposure is None,
        plain_http_seen=transport[0],
        forwarded_https_seen=transport[1],
        sso_issuer=sso["issuer"] if sso else None,
        sso_accounts=_bound_to(org.org_id, sso["issuer"], users) if sso else (),
        sso_second_factor=_second_factor_required(sso) if sso else None,
        sso_single_factor=(
            tuple(v for v in sso.get("mfa_amr", []) if v in SINGLE_FACTOR_AMR) if sso else ()
        ),
        server_policy=(
            server_policy
            if server_policy != "from settings"
            else load_policy(settings.policy_file, settings.max_input_file_bytes)
            if settings.policy_file
            else None
        ),
        login_idle_seconds=settings.login_idle_seconds,
        login_ttl_seconds=settings.login_ttl_seconds,
        anonymous_audit_retention_days=settings.anonymous_audit_retention_days,
        purge_interval_seconds=settings.purge_interval_seconds,
        recording_purge_seconds=settings.recording_purge_seconds,
        recordings_overdue=tuple(
            r.recording_id
            for r in await storage.overdue_recordings(now - settings.max_recording_overdue_seconds)
            if r.org_id == org.org_id
        ),
        recording_overdue_seconds=settings.max_recording_overdue_seconds,
        database_file=not settings.database_url,
        secrets_previous_keys=len(directory.box.ring.previous),
        secrets_staged_key=directory.box.ring.staged is not None,
        secrets_key_beside_data=settings.secrets_key_path.resolve().is_relative_to(
            settings.data_dir.resolve()
        ),
        vacuum_problem=(
            await storage.installation_note(VACUUM_NOTE) if settings.database_url else None
        ),
        dependency_drift=await asyncio.to_thread(_drift),
        audit=audit or await audit_state(settings, directory, checkpoints),
        exposed_files=exposed_files(settings),
        key_files_on_server=_named_or_counted(key_files, operator_view),
        key_files_unread=key_files_unread,
        security=await asyncio.to_thread(
            sbom.status,
            settings.advisory_file,
            settings.advisory_max_age_days,
            now,
            max_bytes=settings.max_advisory_file_bytes,
        ),
    )


async def audit_state(
    settings: Settings, directory: Directory, checkpoints: Sequence[Checkpoint]
) -> AuditState:
    storage = directory.storage
    stored = await storage.inventory()  # before the trail (tandem.reconcile)
    records = await storage.audit_records(0.0)
    anchors = await storage.anchors()
    key = load_or_create_key(settings.audit_key_path)
    verdict = await asyncio.to_thread(  # CPU-bound over the whole trail: off the event loop
        verify,
        records,
        anchors,
        key,
        legacy_every=settings.audit_anchor_every,
        checkpoints=checkpoints,
    )
    if not verdict.ok:
        where = f" at record {verdict.first_bad_seq}" if verdict.first_bad_seq else ""
        return AuditState(False, f"{verdict.problem}{where}", len(records), None, numbered=True)
    if (await asyncio.to_thread(reconcile, records, stored)).missing:
        # Neither which nor how many: the check is the whole installation's, and an
        # organisation's admin reads it (`tandem audit verify` names them to the operator).
        problem = (
            "sessions or recordings it says exist are not stored, and no record says they were"
            " erased: deleted outside Tandem (`tandem audit verify` names them)"
        )
        return AuditState(False, problem, len(records), None)
    covered = max([a.seq for a in anchors] + [c.seq for c in checkpoints], default=0)
    tail = [r for r in records if r.seq > covered]
    reviewed = max((c.seq for c in checkpoints), default=0)
    since = [r for r in records if r.seq > reviewed]
    return AuditState(
        True,
        None,
        len(records),
        tail[0].at if tail else None,
        settings.audit_anchor_max_age_days,
        empty=not records,
        checkpoints=len(checkpoints),
        key_rotated_at=max(
            (r.at for r in records if r.action == "secrets_key_rotated"), default=None
        ),
        key_staged_at=max(
            (r.at for r in records if r.action == "secrets_key_staged"), default=None
        ),
        backlog_refused=tuple(
            _backlog_record(r, "lines refused") for r in since if r.action == BACKLOG_REFUSED
        ),
        backlog_replayed=tuple(
            _backlog_record(r, "lines on the trail already")
            for r in since
            if r.action == BACKLOG_REPLAYED
        ),
    )


BACKLOG_REFUSED = "audit_backlog_refused"
BACKLOG_REPLAYED = "audit_backlog_replayed"
_BACKLOG_LINES_NAMED = 10


def _backlog_record(record: AuditRecord, what: str) -> str:
    """``record`` (an audit backlog's) in a few words: its number, time and the lines it names
    (at most :data:`_BACKLOG_LINES_NAMED` of them)."""
    at = datetime.fromtimestamp(record.at, UTC).isoformat(timespec="minutes")
    lines = record.details.get("lines")
    named = [str(n) for n in lines[:_BACKLOG_LINES_NAMED]] if isinstance(lines, list) else []
    count = record.details.get("count")
    more = f" of {count}" if isinstance(count, int) and count > len(named) and named else ""
    return f"record {record.seq} at {at}: {what} {', '.join(named) or '?'}{more}"


def _drift() -> tuple[str, ...]:
    try:
        components = sbom.sbom_components(sbom.load_sbom())
    except ConfigError:
        return ()  # no SBOM: the dependencies item fails on it already (sbom.status)
    return sbom.installed_drift(components)


def _bound_to(org_id: str, issuer: str, users: Sequence[UserRecord]) -> tuple[str, ...]:
    """The accounts bound to an account at ``issuer`` (tandem.oidc.identity_key): those that
    sign in through it. A binding that does not read as one counts too (the check errs on the
    side of failing)."""
    bound = []
    for user in users:
        if user.oidc_identity is None:
            continue
        try:
            org, at, _subject = json.loads(user.oidc_identity)
        except (ValueError, TypeError):
            bound.append(user.username)
            continue
        if (org, at) == (org_id, issuer):
            bound.append(user.username)
    return tuple(bound)


def _second_factor_required(sso: dict[str, Any]) -> str | None:
    acr, amr = list(sso.get("mfa_acr", [])), list(sso.get("mfa_amr", []))
    if not acr and not amr:
        return None
    return " or ".join(
        ([f"acr {', '.join(acr)}"] if acr else []) + ([f"amr {', '.join(amr)}"] if amr else [])
    )


def _named_or_counted(paths: tuple[str, ...], named: bool) -> tuple[str, ...]:
    if named or not paths:
        return paths
    return (
        f"{len(paths)} file(s), which the server's operator finds with `tandem compliance check`",
    )


class AuditChecks:
    """The audit trail's state for the admin API's compliance reports: the whole trail (every
    organisation's) is read and verified at most once per ``max_age`` seconds, one check at a
    time, whatever the requests, and its size, record numbers and times are not told. Checked on
    each request, one admin
    of any organisation made the server read and verify every record of every organisation as
    often as it asked, all at once if it asked at once, and learnt how many there were.
    ``tandem compliance check`` checks anew each time."""

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self._lock = asyncio.Lock()
        self._last: tuple[float, AuditState] | None = None

    async def state(self, settings: Settings, directory: Directory, now: float) -> AuditState:
        async with self._lock:  # concurrent requests wait for the one check under way
            if self._last is None or now - self._last[0] >= self.max_age or now < self._last[0]:
                checked = await audit_state(settings, directory, ())
                told = dataclasses.replace(
                    checked,
                    records=None,
                    for_organisation=True,
                    backlog_refused=(),
                    backlog_replayed=(),
                )
                self._last = (now, told)
            return self._last[1]


def exposed_files(settings: Settings) -> tuple[tuple[str, bool], ...]:
    """The data directory, database, keys (audit, secrets, TLS) if group or others have any
    access to them."""
    paths = [settings.data_dir, settings.audit_key_path, settings.secrets_key_path]
    if not settings.database_url:
        paths.append(settings.database_path)
    if settings.tls_key is not None:
        # The item said "keys" and looked at the TLS private key nowhere: readable by every
        # account on the machine, it passed.
        paths.append(settings.tls_key)
    found = []
    for path in paths:
        try:
            mode = path.stat().st_mode
        except OSError:
            continue
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            found.append((str(path), stat.S_ISDIR(mode)))
    return tuple(found)


KEY_SEARCH_FILES = 2000
"""Files of the data directory the recording key search reads at most (a handful belong to
the server: its database, keys and notes); beyond them it counts the rest."""


def recording_key_files(
    data_dir: Path, limit: int = KEY_SEARCH_FILES
) -> tuple[tuple[str, ...], int]:
    """Recording key files (``"tandem_recording_key": 1``) in the data directory tree, looking
    at most at ``limit`` small files, and how many files it did not look at. The search stopped
    silently at the limit: a key file past it passed the check."""
    found: list[str] = []
    looked = 0
    for root, _dirs, files in os.walk(data_dir):
        for name in files:
            looked += 1
            if looked > limit:
                continue  # counted, not read
            path = Path(root) / name
            try:
                if path.stat().st_size > 64 * 1024:
                    continue
                value = json.loads(path.read_bytes())
            except (OSError, ValueError, RecursionError):
                continue
            if isinstance(value, dict) and value.get("tandem_recording_key") == 1:
                found.append(str(path))
    return tuple(found), max(0, looked - limit)
