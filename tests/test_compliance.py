"""tandem.compliance: for each profile, an installation that passes every requirement it checks,
and for each such requirement a change that makes exactly that requirement fail (with a fix).
Then the real command on a real data directory, passing and failing (exit status 0 and 1)."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from tandem import sbom
from tandem.compliance import (
    KEY_SEARCH_FILES,
    PROFILES,
    REFERENCES,
    AuditState,
    Installation,
    Profile,
    evaluate,
    exposed_files,
    recording_key_files,
)
from tandem.config import Settings
from tandem.policy import Detectors, MaskingPolicy, Pages
from tandem.storage.base import SELF_ORIGIN, OrgRecord, SiteRecord, UserRecord
from tests.conftest import tandem_in_process as run  # tests/test_cli.py runs the real command
from tests.test_audit import TRIGGERS as AUDIT_TRIGGERS

NOW = 1_800_000_000.0
STRICT = MaskingPolicy(
    version=1, detectors=Detectors(iban=True, ssn=True), pages=Pages(deny=["/checkout"])
)


def _user(name: str, **fields: object) -> UserRecord:
    return dataclasses.replace(
        UserRecord(name, name, "agent", "hash", NOW, totp_secret="sealed", org_id="default"),
        **fields,  # type: ignore[arg-type]
    )


def _site(site_id: str, origin: str, **fields: object) -> SiteRecord:
    base = SiteRecord(
        site_id,
        "default",
        origin,
        site_id,
        ("support",),
        policy=msgspec.json.encode(STRICT).decode(),
        require_token=True,
    )
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


def compliant() -> Installation:
    return Installation(
        org=OrgRecord("default", "Default", NOW, retention_days=30, recording_key="pub"),
        users=(_user("ada", role="admin"), _user("alice")),
        sites=(_site("shop", "https://shop.example"), _site("demo", SELF_ORIGIN)),
        tls=True,
        behind_proxy=False,
        console_origins=("https://console.example",),
        public_origins=("https://tandem.example",),
        sso_issuer="https://idp.example",
        sso_accounts=("alice",),
        sso_second_factor="amr mfa",
        server_policy=None,
        login_idle_seconds=900,
        login_ttl_seconds=8 * 3600,
        anonymous_audit_retention_days=6 * 365,
        audit=AuditState(True, None, 120, None),
        exposed_files=(),
        key_files_on_server=(),
        security=sbom.SecurityStatus("0.2.0", 58, "/etc/tandem/osv.json", 0.5, False, ()),
    )


def _security(**fields: object) -> Callable[[Installation], Installation]:
    def change(inst: Installation) -> Installation:
        return dataclasses.replace(
            inst,
            security=dataclasses.replace(inst.security, **fields),  # type: ignore[arg-type]
        )

    return change


VULNERABLE = sbom.Finding(
    "GHSA-test", "a test advisory", sbom.Component("PyPI", "starlette", "1.10.0"), ("1.10.1",)
)

FAILING: dict[str, Callable[[Installation], Installation]] = {
    "transport": lambda i: dataclasses.replace(i, tls=False, behind_proxy=False),
    "mfa": lambda i: dataclasses.replace(i, users=(*i.users, _user("demo", mfa_exempt=True))),
    "sso": lambda i: dataclasses.replace(i, sso_issuer="http://127.0.0.1:9000"),
    "password_policy": lambda i: dataclasses.replace(i, min_password_length=8),
    "sign_in_timeouts": lambda i: dataclasses.replace(i, login_idle_seconds=3600),
    "allowed_origins": lambda i: dataclasses.replace(
        i, sites=(*i.sites, _site("old", "http://old.example"))
    ),
    "public_origin": lambda i: dataclasses.replace(
        i, public_origins=(), unnamed_exposure="it listens on 0.0.0.0, not loopback only"
    ),
    "masking": lambda i: dataclasses.replace(
        i, sites=(_site("shop", "https://shop.example", policy=None),)
    ),
    "payment_pages": lambda i: dataclasses.replace(
        i,
        sites=(
            _site(
                "shop",
                "https://shop.example",
                policy=msgspec.json.encode(
                    MaskingPolicy(version=1, detectors=Detectors(iban=True, ssn=True))
                ).decode(),
            ),
        ),
    ),
    "recording_key": lambda i: dataclasses.replace(
        i, key_files_on_server=("/var/lib/tandem/org.tandemkey",)
    ),
    "retention": lambda i: dataclasses.replace(
        i, org=dataclasses.replace(i.org, retention_days=400)
    ),
    "secrets_key": lambda i: dataclasses.replace(
        i, secrets_previous_keys=1, audit=dataclasses.replace(i.audit, key_rotated_at=NOW - 4e6)
    ),
    "erasure_residue": lambda i: dataclasses.replace(
        i,
        database_file=False,
        vacuum_problem=(
            'the database failed: VACUUM of sessions was skipped (skipping "sessions" --- '
            "only table or database owner can vacuum it): the role Tandem connects as must own "
            "its tables (or be the database's owner)"
        ),
    ),
    "audit_trail": lambda i: dataclasses.replace(
        i, audit=AuditState(False, "record 7 was changed", 120, None)
    ),
    "file_permissions": lambda i: dataclasses.replace(
        i, exposed_files=(("/var/lib/tandem", True), ("/var/lib/tandem/audit.key", False))
    ),
    "subject_requests": lambda i: dataclasses.replace(
        i, sites=(*i.sites, _site("blog", "https://blog.example", require_token=False))
    ),
    "dependencies": _security(findings=(VULNERABLE,)),
    "training": lambda i: dataclasses.replace(i, untrained=("alice",)),
}
ALSO_FAILING: list[tuple[str, Callable[[Installation], Installation]]] = [
    ("allowed_origins", lambda i: dataclasses.replace(i, public_origins=("http://t.example",))),
    (
        "public_origin",
        lambda i: dataclasses.replace(
            i,
            public_origins=(),
            unnamed_exposure="it answers a reverse proxy (--trusted-proxy)",
        ),
    ),
    ("sign_in_timeouts", lambda i: dataclasses.replace(i, login_ttl_seconds=48 * 3600)),
    # Every client trusted as a proxy: anyone's X-Forwarded-Proto: https is believed.
    (
        "transport",
        lambda i: dataclasses.replace(
            i, behind_proxy=True, trusted_proxies=("*",), forwarded_https_seen=True
        ),
    ),
    # Behind a trusted proxy, nothing seen yet: it may forward plain HTTP.
    ("transport", lambda i: dataclasses.replace(i, tls=False, behind_proxy=True)),
    # A request came over plain HTTP (a trusted proxy's X-Forwarded-Proto said so), whatever
    # else is set.
    ("transport", lambda i: dataclasses.replace(i, plain_http_seen="http GET /console/")),
    (
        "transport",
        lambda i: dataclasses.replace(
            i,
            tls=False,
            behind_proxy=True,
            forwarded_https_seen=True,
            plain_http_seen="http GET /console/",
        ),
    ),
    # An account signing in through the provider, which need not show a second factor.
    ("mfa", lambda i: dataclasses.replace(i, sso_second_factor=None)),
    # ... or whose required amr accepts a password alone ("pwd").
    (
        "mfa",
        lambda i: dataclasses.replace(i, sso_second_factor="amr pwd", sso_single_factor=("pwd",)),
    ),
    ("recording_key", lambda i: dataclasses.replace(i, key_files_unread=1)),
    ("audit_trail", lambda i: dataclasses.replace(i, audit=AuditState(True, None, 9, NOW - 2e5))),
    (
        "erasure_residue",
        lambda i: dataclasses.replace(
            i,
            database_file=False,
            vacuum_problem="deleted rows of sessions are still seen by an older transaction, "
            "so no vacuum can remove them",
        ),
    ),
    (
        "audit_trail",
        lambda i: dataclasses.replace(
            i,
            audit=AuditState(
                True, None, 9, None, backlog_refused=("record 7 at 2027-01-15T08:00: lines 2",)
            ),
        ),
    ),
    # A staged key never made current; a previous key no record of a rotation dates.
    (
        "secrets_key",
        lambda i: dataclasses.replace(
            i, secrets_staged_key=True, audit=dataclasses.replace(i.audit, key_staged_at=NOW - 4e6)
        ),
    ),
    ("secrets_key", lambda i: dataclasses.replace(i, secrets_previous_keys=1)),
    ("dependencies", _security(stale=True, advisory_age_days=30.0)),
    ("dependencies", _security(advisory_file=None, problem="no advisory file")),
]
PCI_ONLY_FAILING = [
    ("training", lambda i: dataclasses.replace(i, training_interval_days=400)),
]
CHECKED = [
    (profile, requirement)
    for profile in PROFILES
    for requirement, (_, references) in REFERENCES.items()
    if references[profile] is not None
    # Payment cards are masked by the SDK's code, which no policy can loosen: nothing to
    # misconfigure (tests/e2e/test_masking.py proves the masking itself).
    and (profile, requirement) != ("pci-dss", "masking")
]


def statuses(profile: Profile, inst: Installation) -> dict[str, str]:
    return {r.requirement: r.status for r in evaluate(profile, inst, NOW).results}


@pytest.mark.parametrize("profile", PROFILES)
def test_a_compliant_installation_passes_every_requirement_of_the_profile(
    profile: Profile,
) -> None:
    report = evaluate(profile, compliant(), NOW)
    assert report.failed == ()
    for result in report.results:
        expected = "not applicable" if REFERENCES[result.requirement][1][profile] is None else None
        assert result.status == (expected or "pass"), result
    assert report.to_json()["passed"] is True


@pytest.mark.parametrize(("profile", "requirement"), CHECKED)
def test_each_requirement_fails_alone_with_its_reference_and_a_fix(
    profile: Profile, requirement: str
) -> None:
    broken = FAILING[requirement](compliant())
    report = evaluate(profile, broken, NOW)
    assert [r.requirement for r in report.failed] == [requirement]
    [failure] = report.failed
    assert failure.reference == REFERENCES[requirement][1][profile]
    assert failure.fix and failure.detail
    assert f"FAIL  {failure.title}" in report.to_text()
    assert f"fix: {failure.fix}" in report.to_text()


@pytest.mark.parametrize(("requirement", "change"), ALSO_FAILING)
@pytest.mark.parametrize("profile", PROFILES)
def test_other_ways_to_fail_a_requirement(
    profile: Profile, requirement: str, change: Callable[[Installation], Installation]
) -> None:
    assert statuses(profile, change(compliant()))[requirement] == "fail"


@pytest.mark.parametrize(
    ("problem", "fix"),
    [
        (
            "VACUUM of sessions was skipped (...): the role Tandem connects as must own its tables",
            "owner of its tables",
        ),
        ("deleted rows of sessions are still seen by an older transaction", "end the long"),
        ("VACUUM of sessions did not finish within 600 s", "DATABASE_VACUUM_TIMEOUT_SECONDS"),
        ("the database failed: connection refused", "server's log"),
    ],
)
def test_erasure_residue_names_the_fix_for_the_vacuum_tasks_problem(problem: str, fix: str) -> None:
    inst = dataclasses.replace(compliant(), database_file=False, vacuum_problem=problem)
    [failure] = evaluate("gdpr", inst, NOW).failed
    assert failure.requirement == "erasure_residue" and problem in failure.detail
    assert fix in failure.fix
    postgres = dataclasses.replace(compliant(), database_file=False)
    assert statuses("hipaa", postgres)["erasure_residue"] == "pass"


@pytest.mark.parametrize(("requirement", "change"), PCI_ONLY_FAILING)
def test_pci_dss_asks_for_training_every_twelve_months(
    requirement: str, change: Callable[[Installation], Installation]
) -> None:
    changed = change(compliant())
    assert statuses("pci-dss", changed)[requirement] == "fail"
    assert statuses("hipaa", changed)[requirement] == "pass"
    assert statuses("gdpr", changed)[requirement] == "pass"


@pytest.mark.parametrize("profile", PROFILES)
def test_a_noted_reverse_proxy_is_fixed_by_a_public_origin_or_by_forgetting_the_note(
    profile: Profile,
) -> None:
    """Failing on a noted reverse proxy, the fix named --public-origin only: for a proxy that
    no longer forwards to the servers, the note stayed and nothing said how to remove it. A
    failure the settings make (a proxy trusted, a public address) names no forget-proxy: the
    note is not what fails it, so removing it would fix nothing."""
    noted = dataclasses.replace(
        compliant(),
        public_origins=(),
        unnamed_exposure="requests came through a reverse proxy (x-forwarded-for seen by a "
        "server on this database), which forwards any Host",
        proxy_noted=True,
    )
    [failure] = evaluate(profile, noted, NOW).failed
    assert failure.requirement == "public_origin"
    assert "--public-origin" in failure.fix
    assert "no reverse proxy forwards to the servers any more" in failure.fix
    assert "tandem compliance forget-proxy" in failure.fix
    [settings] = evaluate(profile, FAILING["public_origin"](compliant()), NOW).failed
    assert "--public-origin" in settings.fix and "forget-proxy" not in settings.fix


def test_audit_records_are_kept_as_long_as_the_profile_asks() -> None:
    """The profiles' minimums: PCI DSS 10.5.1 12 months, HIPAA six years; the GDPR none. The
    signed trail is never purged; the anonymous event counts are, after a setting."""
    year = dataclasses.replace(compliant(), anonymous_audit_retention_days=365)
    assert statuses("pci-dss", year)["audit_trail"] == "pass"
    assert statuses("gdpr", year)["audit_trail"] == "pass"
    [short] = evaluate("hipaa", year, NOW).failed
    assert short.requirement == "audit_trail" and "at least 2190 days" in short.detail
    assert short.fix.startswith("TANDEM_ANONYMOUS_AUDIT_RETENTION_DAYS=2190")
    default = dataclasses.replace(compliant(), anonymous_audit_retention_days=90)  # the default
    assert statuses("pci-dss", default)["audit_trail"] == "fail"
    assert statuses("gdpr", default)["audit_trail"] == "pass"


def test_the_command_counts_untrained_agents_until_they_are_trained(tmp_path: Path) -> None:
    data, env = _installation(tmp_path)
    added = run("user", "add", "bob", "--data-dir", str(data), stdin="green-violin-sofa-17\n")
    assert added.returncode == 0, added.stderr
    check = ["compliance", "check", "--profile", "gdpr", "--format", "json"]
    before = run(*check, env=env)
    assert before.returncode == 1
    failed = {r["requirement"]: r for r in json.loads(before.stdout)["results"]}
    assert failed["training"]["status"] == "fail"
    assert "1 account(s) not trained" in failed["training"]["detail"]
    assert "bob" in failed["training"]["detail"]
    assert "tandem training status" in failed["training"]["fix"]
    status = run("training", "status", "--format", "json", env=env)
    assert json.loads(status.stdout)["untrained"] == ["bob"]
    refused = run("training", "record", "bob", "--reason", " ", env=env)
    assert refused.returncode == 2 and "--reason" in refused.stderr
    trained = run("training", "record", "bob", "--reason", "classroom course", env=env)
    assert trained.returncode == 0, trained.stderr
    after = run(*check, env=env)
    assert after.returncode == 0, after.stdout
    assert (
        json.loads(run("training", "status", "--format", "json", env=env).stdout)["untrained"] == []
    )
    trail = run("audit", "export", env=env)
    assert '"training_recorded"' in trail.stdout and "classroom course" in trail.stdout


def test_card_masking_passes_pci_dss_whatever_the_policies() -> None:
    bare = FAILING["masking"](compliant())
    assert statuses("pci-dss", bare)["masking"] == "pass"
    assert statuses("gdpr", bare)["masking"] == "fail"


def test_the_profiles_differ_where_the_regulations_do() -> None:
    # PCI DSS 8.2.8: 15 minutes idle; the GDPR profile accepts 30.
    half_hour = dataclasses.replace(compliant(), login_idle_seconds=1800)
    assert statuses("pci-dss", half_hour)["sign_in_timeouts"] == "fail"
    assert statuses("hipaa", half_hour)["sign_in_timeouts"] == "fail"
    assert statuses("gdpr", half_hour)["sign_in_timeouts"] == "pass"
    # Storage limitation: 180 days is too long for the GDPR profile, fine for PCI DSS.
    half_year = dataclasses.replace(
        compliant(), org=dataclasses.replace(compliant().org, retention_days=180)
    )
    assert statuses("gdpr", half_year)["retention"] == "fail"
    assert statuses("pci-dss", half_year)["retention"] == "pass"
    # HIPAA needs the SSN detector; GDPR the IBAN one.
    no_ssn = dataclasses.replace(
        compliant(),
        sites=(
            _site(
                "shop",
                "https://shop.example",
                policy=msgspec.json.encode(
                    MaskingPolicy(version=1, detectors=Detectors(iban=True))
                ).decode(),
            ),
        ),
    )
    assert statuses("hipaa", no_ssn)["masking"] == "fail"
    assert statuses("gdpr", no_ssn)["masking"] == "pass"
    # Without a recording key nothing is recorded: payment pages pass, the key check is moot.
    unrecorded = FAILING["payment_pages"](compliant())
    unrecorded = dataclasses.replace(
        unrecorded, org=dataclasses.replace(unrecorded.org, recording_key=None)
    )
    assert statuses("pci-dss", unrecorded)["payment_pages"] == "pass"
    assert statuses("pci-dss", unrecorded)["recording_key"] == "not applicable"


# The real command on a real installation.


def _installation(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    data = tmp_path / "data"
    created = run(
        "user",
        "add",
        "ada",
        "--role",
        "admin",
        "--data-dir",
        str(data),
        "--init",
        stdin="blue-kettle-orbit-42\n",
    )
    assert created.returncode == 0, created.stderr
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"version": 1, "detectors": {"iban": True, "ssn": True}}))
    advisories = tmp_path / "osv.json"
    # Fetched now: the age is the date the data carries (tandem.sbom.read_advisories).
    now = datetime.now(UTC).isoformat()
    advisories.write_text(json.dumps({"vulns": [], "modified": now}))
    # What the server notes once its proxy forwarded a request as https (TransportWatch).
    (data / "forwarded-https-seen").write_text("http /console/ forwarded as https\n")
    for path in (data, *data.iterdir()):
        path.chmod(0o700 if path.is_dir() else 0o600)
    env = {
        **os.environ,
        "TANDEM_DATA_DIR": str(data),
        "TANDEM_TRUSTED_PROXIES": "127.0.0.1",
        "TANDEM_PUBLIC_ORIGINS": "https://tandem.example",
        "TANDEM_POLICY": str(policy),
        "TANDEM_ADVISORY_FILE": str(advisories),
        "TANDEM_LOGIN_IDLE_SECONDS": "900",
        "TANDEM_ANONYMOUS_AUDIT_RETENTION_DAYS": "2190",
    }
    return data, env


@pytest.mark.parametrize("profile", PROFILES)
def test_the_command_passes_a_well_configured_installation(
    tmp_path: Path, profile: Profile
) -> None:
    _, env = _installation(tmp_path)
    result = run("compliance", "check", "--profile", profile, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout


def test_the_command_fails_a_live_misconfiguration_and_says_how_to_fix_it(
    tmp_path: Path,
) -> None:
    data, env = _installation(tmp_path)
    (data / "tandem.sqlite3").chmod(0o644)
    stale = Path(env["TANDEM_ADVISORY_FILE"])
    month_ago = datetime.fromtimestamp(time.time() - 30 * 86400, UTC).isoformat()
    stale.write_text(json.dumps({"vulns": [], "modified": month_ago}))
    del env["TANDEM_LOGIN_IDLE_SECONDS"]  # the default, 30 minutes
    result = run("compliance", "check", "--profile", "pci-dss", "--format", "json", env=env)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    failed = {r["requirement"]: r for r in report["results"] if r["status"] == "fail"}
    # Opening the database tightens a loose file (tandem.private_files): nothing left to fail.
    assert set(failed) == {"dependencies", "sign_in_timeouts"}
    assert (data / "tandem.sqlite3").stat().st_mode & 0o077 == 0
    assert "TANDEM_LOGIN_IDLE_SECONDS=900" in failed["sign_in_timeouts"]["fix"]
    assert failed["dependencies"]["reference"] == "PCI DSS v4.0 6.3.3"


@pytest.mark.parametrize(
    ("host", "proxies", "reason"),
    [
        ("0.0.0.0", "10.0.0.2", "it listens on 0.0.0.0, not loopback only"),
        ("::", "10.0.0.2", "it listens on ::, not loopback only"),
        ("127.0.0.1", "127.0.0.1", "it answers a reverse proxy (--trusted-proxy)"),
    ],
)
def test_the_command_fails_a_server_reached_by_any_name_without_a_public_origin(
    tmp_path: Path, host: str, proxies: str, reason: str
) -> None:
    _, env = _installation(tmp_path)
    del env["TANDEM_PUBLIC_ORIGINS"]
    env.update(TANDEM_HOST=host, TANDEM_TRUSTED_PROXIES=proxies)
    check = ["compliance", "check", "--profile", "gdpr", "--format", "json"]
    result = run(*check, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    failed = {r["requirement"]: r for r in json.loads(result.stdout)["results"]}
    assert [r for r, v in failed.items() if v["status"] == "fail"] == ["public_origin"]
    assert reason in failed["public_origin"]["detail"]
    assert "--public-origin" in failed["public_origin"]["fix"]
    assert "forget-proxy" not in failed["public_origin"]["fix"]  # no note fails it
    assert failed["public_origin"]["reference"] == "GDPR Art. 32"
    env["TANDEM_PUBLIC_ORIGINS"] = "https://Tandem.example:443/"
    named = run(*check, env=env)
    assert named.returncode == 0, named.stdout
    [passed] = [
        r for r in json.loads(named.stdout)["results"] if r["requirement"] == "public_origin"
    ]
    assert "https://tandem.example only" in passed["detail"]


def test_a_secrets_key_in_the_data_directory_is_noted_and_not_once_moved_out(
    tmp_path: Path,
) -> None:
    """A backup of the data directory carried secrets.key with the SQLite database it seals,
    and the check said nothing: the secrets item now says so (it passes: the default place,
    a matter of how backups are kept), and not once the keys live elsewhere."""
    data, env = _installation(tmp_path)
    check = ["compliance", "check", "--profile", "pci-dss", "--format", "json"]
    [found] = [
        r
        for r in json.loads(run(*check, env=env).stdout)["results"]
        if r["requirement"] == "secrets_key"
    ]
    assert found["status"] == "pass" and "secrets.key lies in the data directory" in found["detail"]
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    for name in ("audit.key", "secrets.key"):
        (data / name).rename(keys / name)
    env["TANDEM_AUDIT_KEY"] = str(keys / "audit.key")
    result = run(*check, env=env)
    [found] = [r for r in json.loads(result.stdout)["results"] if r["requirement"] == "secrets_key"]
    assert found["status"] == "pass", result.stdout + result.stderr
    assert "data directory" not in found["detail"]


def test_loopback_behind_no_proxy_needs_no_public_origin(tmp_path: Path) -> None:
    _, env = _installation(tmp_path)
    del env["TANDEM_PUBLIC_ORIGINS"]
    env.update(TANDEM_TRUSTED_PROXIES="", TANDEM_TLS_CERT="")
    result = run("compliance", "check", "--profile", "gdpr", "--format", "json", env=env)
    [found] = [
        r for r in json.loads(result.stdout)["results"] if r["requirement"] == "public_origin"
    ]
    assert found["status"] == "pass" and "loopback only" in found["detail"]
    # What such a server answers: addresses, localhost and --host, no other name.
    assert "only requests addressed to an IP address, localhost or its --host" in found["detail"]


def test_the_command_fails_transport_once_a_request_came_over_plain_http(
    tmp_path: Path,
) -> None:
    data, env = _installation(tmp_path)
    (data / "plain-http-seen").write_text(
        "http /console/ from 203.0.113.5 over plain HTTP (forwarded: x-forwarded-for)\n"
    )
    check = ["compliance", "check", "--profile", "pci-dss", "--format", "json"]
    result = run(*check, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    [transport] = [
        r for r in json.loads(result.stdout)["results"] if r["requirement"] == "transport"
    ]
    assert transport["status"] == "fail" and "203.0.113.5" in transport["detail"]
    (data / "forwarded-https-seen").unlink()
    (data / "plain-http-seen").unlink()
    [transport] = [
        r
        for r in json.loads(run(*check, env=env).stdout)["results"]
        if r["requirement"] == "transport"
    ]
    assert transport["status"] == "fail" and "cannot tell yet" in transport["detail"]


def test_the_command_refuses_an_unknown_profile_or_organisation(tmp_path: Path) -> None:
    result = run("compliance", "check", "--profile", "sox", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "profile must be one of gdpr, hipaa, pci-dss" in result.stderr
    _, env = _installation(tmp_path)
    result = run("compliance", "check", "--profile", "gdpr", "--org", "nope", env=env)
    assert result.returncode == 2 and "no organisation 'nope'" in result.stderr


def audit_item(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    [audit] = [r for r in json.loads(result.stdout)["results"] if r["requirement"] == "audit_trail"]
    return dict(audit)


def test_a_trail_cut_at_its_tail_passes_saying_so_until_a_checkpoint_shows_it(
    tmp_path: Path,
) -> None:
    """The newest records cut off, at a record no anchor is on (not only back to an anchor, as
    the item said), with the guards dropped: the trail verifies, and without a checkpoint the
    item can only say it would not show; given the checkpoint taken before, it fails."""
    data, env = _installation(tmp_path)
    for name, words in (("bob", "green-violin-sofa-17"), ("cy", "amber-cloud-heron-5")):
        added = run("user", "add", name, "--data-dir", str(data), stdin=f"{words}\n")
        assert added.returncode == 0, added.stderr
    checkpoint = run("audit", "checkpoint", env=env)
    assert checkpoint.returncode == 0, checkpoint.stderr
    log = tmp_path / "checkpoints.log"
    log.write_text(checkpoint.stdout)
    head = json.loads(checkpoint.stdout)["seq"]
    assert json.loads(checkpoint.stdout)["anchor_seq"] < head - 1  # the cut leaves one unanchored
    with sqlite3.connect(data / "tandem.sqlite3") as db:  # an attacker with the file
        for trigger in AUDIT_TRIGGERS:
            db.execute(f"DROP TRIGGER {trigger}")
        db.execute("DELETE FROM audit WHERE seq = ?", (head,))  # the tail: no anchor on it
    db.close()
    assert run("audit", "verify", env=env).returncode == 0  # what is left is intact
    check = ["compliance", "check", "--profile", "hipaa", "--format", "json"]
    unchecked = audit_item(run(*check, env=env))
    assert unchecked["status"] == "pass", unchecked
    assert (
        "no external checkpoint checked, so a trail whose newest records were cut off"
        in (unchecked["detail"])
    )
    checked = audit_item(run(*check, "--checkpoint", str(log), env=env))
    assert checked["status"] == "fail", checked
    assert f"cut or rewritten before checkpoint at record {head}" in checked["detail"]


def test_records_left_unanchored_fail_until_an_external_checkpoint_covers_them(
    tmp_path: Path,
) -> None:
    data, env = _installation(tmp_path)
    second = run("user", "add", "bob", "--data-dir", str(data), stdin="green-violin-sofa-17\n")
    assert second.returncode == 0, second.stderr  # a record after the first (anchored) one
    trained = run("training", "record", "bob", "--reason", "classroom course", env=env)
    assert trained.returncode == 0, trained.stderr
    env["TANDEM_AUDIT_ANCHOR_MAX_AGE_DAYS"] = "1e-9"  # any unanchored record is too old
    check = ["compliance", "check", "--profile", "hipaa", "--format", "json"]
    before = run(*check, env=env)
    assert before.returncode == 1
    [audit] = [r for r in json.loads(before.stdout)["results"] if r["requirement"] == "audit_trail"]
    assert audit["status"] == "fail" and "tandem audit checkpoint" in audit["fix"]
    checkpoint = run("audit", "checkpoint", env=env)
    assert checkpoint.returncode == 0, checkpoint.stderr
    log = tmp_path / "checkpoints.log"
    log.write_text(checkpoint.stdout)
    after = run(*check, "--checkpoint", str(log), env=env)
    assert after.returncode == 0, after.stdout
    forged = tmp_path / "forged.log"
    forged.write_text(checkpoint.stdout.replace('"mac":"', '"mac":"00'))
    refused = run(*check, "--checkpoint", str(forged), env=env)
    assert refused.returncode == 1
    [audit] = [
        r for r in json.loads(refused.stdout)["results"] if r["requirement"] == "audit_trail"
    ]
    assert "does not verify" in audit["detail"]


@pytest.mark.parametrize("profile", PROFILES)
def test_a_stored_site_policy_the_customers_browsers_refuse_fails_masking(profile: Profile) -> None:
    """A site policy stored before selectors that test the page's state were refused (the
    customer's SDK ends such a session before the customer is asked) is named, with its field,
    whatever the profile: the site's help no longer works."""
    state = msgspec.structs.replace(STRICT, hide=[*STRICT.hide, "body:has(#yes:checked) #essay"])
    inst = compliant()
    inst = dataclasses.replace(
        inst,
        sites=(
            *inst.sites,
            _site("quiz", "https://quiz.example", policy=msgspec.json.encode(state).decode()),
        ),
    )
    # And one stored before page patterns could name query parameters: `/a?` was allowed then.
    pages = msgspec.structs.replace(
        STRICT, pages=msgspec.structs.replace(STRICT.pages, deny=["/index.php?"])
    )
    inst = dataclasses.replace(
        inst,
        sites=(
            *inst.sites,
            _site("forum", "https://forum.example", policy=msgspec.json.encode(pages).decode()),
        ),
    )
    report = {r.requirement: r for r in evaluate(profile, inst, NOW).results}
    assert report["masking"].status == "fail"
    assert "quiz ($.hide[" in report["masking"].detail
    assert "forum ($.pages.deny[0]: nothing after ?" in report["masking"].detail
    assert "shop" not in report["masking"].detail


def test_the_key_file_search_counts_the_files_past_its_limit_unread(tmp_path: Path) -> None:
    """The search for recording key files stopped silently at its limit: a key file in a data
    directory holding more files than that was neither found nor said to be missed. (The same
    for every profile: made once, not once per profile, 2,000 files each time.)"""
    data = tmp_path / "data"
    data.mkdir()
    for number in range(KEY_SEARCH_FILES):
        (data / f"note-{number}.txt").write_text("{}")
    (data / "later").mkdir()  # walked after the directory's own files
    (data / "later" / "tandem-recording-key.json").write_text('{"tandem_recording_key": 1}')
    assert recording_key_files(data) == ((), 1)
    (data / "note-0.txt").unlink()  # within the limit: found and named
    assert recording_key_files(data) == ((str(data / "later" / "tandem-recording-key.json"),), 0)


@pytest.mark.parametrize("profile", PROFILES)
def test_a_key_file_past_the_files_the_search_reads_fails_the_check(profile: Profile) -> None:
    """A key file the search may have missed (its count of files unread,
    test_the_key_file_search_counts_the_files_past_its_limit_unread) passed "Recordings
    encrypted to a key held offline"."""
    inst = dataclasses.replace(compliant(), key_files_on_server=(), key_files_unread=1)
    [result] = [r for r in evaluate(profile, inst, NOW).results if r.requirement == "recording_key"]
    assert result.status == "fail" and "may lie among them" in result.detail


@pytest.mark.parametrize("profile", PROFILES)
def test_transport_through_a_proxy_passes_once_requests_came_forwarded_as_https(
    profile: Profile,
) -> None:
    seen = dataclasses.replace(compliant(), tls=False, behind_proxy=True, forwarded_https_seen=True)
    assert statuses(profile, seen)["transport"] == "pass"


# Attack review of the self-check (docs/security.md): each a way the item passed while the
# requirement was not met.


@pytest.mark.parametrize("profile", ["gdpr", "pci-dss"])
def test_a_purge_that_seldom_runs_fails_retention(profile: Profile) -> None:
    """The item read retention_days alone: TANDEM_PURGE_INTERVAL_SECONDS of a year kept ended
    sessions a year past their retention, and it passed."""
    seldom = dataclasses.replace(compliant(), purge_interval_seconds=365 * 86400.0)
    [retention] = [
        r for r in evaluate(profile, seldom, NOW).results if r.requirement == "retention"
    ]
    assert retention.status == "fail" and "every 365 days" in retention.detail
    assert "TANDEM_PURGE_INTERVAL_SECONDS" in retention.fix
    daily = dataclasses.replace(compliant(), purge_interval_seconds=86400.0)
    assert statuses(profile, daily)["retention"] == "pass"


@pytest.mark.parametrize("profile", ["gdpr", "pci-dss"])
def test_a_recordings_purge_that_seldom_runs_fails_retention(profile: Profile) -> None:
    """``recording_purge_seconds`` is a setting now, and the overdue recordings' bound may be
    as long: a yearly recordings' purge kept recordings up to a year past their retention with
    none found overdue. The item fails past a day, as for the ended sessions' purge."""
    seldom = dataclasses.replace(compliant(), recording_purge_seconds=365 * 86400.0)
    [retention] = [
        r for r in evaluate(profile, seldom, NOW).results if r.requirement == "retention"
    ]
    assert retention.status == "fail" and "every 365 days" in retention.detail
    assert "TANDEM_RECORDING_PURGE_SECONDS" in retention.fix
    daily = dataclasses.replace(compliant(), recording_purge_seconds=86400.0)
    assert statuses(profile, daily)["retention"] == "pass"


@pytest.mark.parametrize("profile", PROFILES)
def test_an_empty_trail_with_accounts_fails_the_audit_item(profile: Profile) -> None:
    """An empty trail verifies: every record and anchor deleted passed as "intact"."""
    wiped = dataclasses.replace(compliant(), audit=AuditState(True, None, 0, None, empty=True))
    [audit] = [r for r in evaluate(profile, wiped, NOW).results if r.requirement == "audit_trail"]
    assert audit.status == "fail" and "holds no record" in audit.detail


@pytest.mark.parametrize("profile", PROFILES)
def test_the_audit_item_says_what_it_cannot_see_without_a_checkpoint(profile: Profile) -> None:
    [audit] = [
        r for r in evaluate(profile, compliant(), NOW).results if r.requirement == "audit_trail"
    ]
    assert "no external checkpoint checked" in audit.detail
    checked = dataclasses.replace(
        compliant(), audit=AuditState(True, None, 120, None, checkpoints=3)
    )
    [audit] = [r for r in evaluate(profile, checked, NOW).results if r.requirement == "audit_trail"]
    assert "checked against 3 external checkpoint(s)" in audit.detail


@pytest.mark.parametrize("profile", PROFILES)
def test_packages_installed_at_other_versions_than_the_sbom_fail_dependencies(
    profile: Profile,
) -> None:
    """Advisories are matched against the SBOM (the lock files): a dependency downgraded by
    hand in the server's environment to a vulnerable version passed as the locked one."""
    drifted = dataclasses.replace(
        compliant(), dependency_drift=("starlette listed 1.10.1, installed 0.27.0",)
    )
    [deps] = [r for r in evaluate(profile, drifted, NOW).results if r.requirement == "dependencies"]
    assert deps.status == "fail" and "starlette listed 1.10.1, installed 0.27.0" in deps.detail


def test_installed_drift_names_python_packages_at_other_versions_only() -> None:
    components = [
        sbom.Component("PyPI", "starlette", "1.10.1"),
        sbom.Component("PyPI", "colorama", "0.4.6"),  # another platform's: not installed
        sbom.Component("PyPI", "msgspec", "0.19.0"),
        sbom.Component("npm", "rrweb", "2.0.0"),  # bundled at build time
        sbom.Component("PyPI", "tandem", "0.0.1"),  # the running code itself
    ]
    installed = {"starlette": "0.27.0", "msgspec": "0.19.0", "tandem": "0.2.0", "rrweb": "1"}
    assert sbom.installed_drift(components, installed.get) == (
        "starlette listed 1.10.1, installed 0.27.0",
    )
    # This test environment runs what the SBOM lists.
    assert sbom.installed_drift(sbom.sbom_components(sbom.load_sbom())) == ()


def test_a_tls_key_other_accounts_may_read_fails_file_permissions(tmp_path: Path) -> None:
    """The item said "keys" and never looked at the TLS private key."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    cert, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    cert.write_text("certificate\n")
    key.write_text("private key\n")
    key.chmod(0o644)
    settings = Settings.load(environ={}, data_dir=data, tls_cert=cert, tls_key=key)
    assert exposed_files(settings) == ((str(key), False),)
    key.chmod(0o600)
    assert exposed_files(settings) == ()


def test_file_permissions_on_postgresql_do_not_claim_the_database(
    profile: Profile = "gdpr",
) -> None:
    on_postgres = dataclasses.replace(compliant(), database_file=False)
    [files] = [
        r
        for r in evaluate(profile, on_postgres, NOW).results
        if r.requirement == "file_permissions"
    ]
    assert files.status == "pass" and "not checked" in files.detail


def test_the_recording_key_item_claims_only_the_data_directory() -> None:
    [key] = [
        r for r in evaluate("pci-dss", compliant(), NOW).results if r.requirement == "recording_key"
    ]
    assert key.status == "pass" and "on the server" not in key.detail
    assert "in the data directory" in key.detail


def test_the_command_fails_an_audit_trail_deleted_whole(tmp_path: Path) -> None:
    """The attacker with the database file drops the append-only guards and deletes every
    record and anchor: what is left verifies, and the item passed it."""
    data, env = _installation(tmp_path)
    with sqlite3.connect(data / "tandem.sqlite3") as db:
        for trigger in AUDIT_TRIGGERS:
            db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        db.execute("DELETE FROM audit")
        db.execute("DELETE FROM audit_anchors")
    result = run("compliance", "check", "--profile", "gdpr", "--format", "json", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    [audit] = [r for r in json.loads(result.stdout)["results"] if r["requirement"] == "audit_trail"]
    assert audit["status"] == "fail" and "holds no record" in audit["detail"], audit


def test_replayed_backlog_lines_are_named_in_the_audit_items_pass() -> None:
    """Backlog lines already on the trail (a backlog file put back or copied, a count lost to a
    power cut) were refused by the database and written once: nothing is missing or doubled,
    so the item passes, and names the records for the auditor to read."""
    replayed = "record 9 at 2027-01-15T08:00: lines on the trail already 1, 2"
    inst = dataclasses.replace(
        compliant(), audit=AuditState(True, None, 9, None, backlog_replayed=(replayed,))
    )
    [item] = [r for r in evaluate("hipaa", inst, NOW).results if r.requirement == "audit_trail"]
    assert item.status == "pass" and replayed in item.detail


@pytest.mark.parametrize("profile", ["gdpr", "pci-dss"])
def test_a_recording_the_purge_keeps_skipping_fails_retention(profile: Profile) -> None:
    """Found by the third recordings review: the purge skips a recording a reader holds
    (SKIP LOCKED); one held at every run (a transaction left open) was kept past its retention
    for as long, and the item passed. It fails while one is overdue, and names it."""
    kept = dataclasses.replace(compliant(), recordings_overdue=("r-held",))
    [retention] = [r for r in evaluate(profile, kept, NOW).results if r.requirement == "retention"]
    assert retention.status == "fail" and "r-held" in retention.detail
    assert "idle in transaction" in retention.fix
    assert statuses(profile, compliant())["retention"] == "pass"
