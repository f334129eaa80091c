"""Attack review of the compliance self-check and the sign-in assurance it reports, on a real
server: each test sets the installation up so that a requirement is not met and shows the item
does not pass (or, where the server can enforce it, that the attack itself fails)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    RunningServer,
    ServerFactory,
    tandem_in_process,
    two_organisations,
)
from tests.oidc_provider import OidcProvider
from tests.server.faults import FailingCall
from tests.server.helpers import login_cookie
from tests.server.test_host_attacks import add_admin_to_cluster
from tests.server.test_organisations import api
from tests.server.test_scale_out import start_cluster
from tests.server.test_sso import orgs_server, provider, sign_in, sso_failures

__all__ = ["orgs_server", "provider"]  # fixtures

MFA_ACR = "urn:example:acr:mfa"


def require_second_factor(
    server: RunningServer, provider: OidcProvider, **required: list[str]
) -> dict[str, Any]:
    settings = {
        "issuer": provider.issuer,
        "client_id": provider.client_id,
        "client_secret": provider.client_secret,
        **required,
    }
    with api(server, "ada") as ada:
        answer = ada.put("/api/org/sso", json=settings)
    assert answer.status_code == 200, answer.text
    sso: dict[str, Any] = answer.json()["sso"]
    return sso


def mfa_item(server: RunningServer) -> dict[str, str]:
    with api(server, "ada") as ada:
        [report] = ada.get("/api/compliance", params={"profile": "pci-dss"}).json()
    item: dict[str, str] = next(r for r in report["results"] if r["requirement"] == "mfa")
    return item


@pytest.mark.parametrize(
    "claims",
    [
        {},  # the provider says nothing of how the user signed in
        {"amr": ["pwd"]},  # a password alone
        {"amr": "mfa"},  # not a list (RFC 8176): taken for nothing
        {"amr": [["mfa"]]},
        {"acr": "urn:example:acr:password"},
        {"acr": ["urn:example:acr:mfa"]},  # not a string
    ],
)
def test_an_sso_sign_in_that_shows_no_second_factor_is_refused_when_one_is_required(
    orgs_server: RunningServer, provider: OidcProvider, claims: dict[str, Any]
) -> None:
    """The attack: a provider account whose password alone was phished (or a provider that
    lets some users skip their second factor) signs in to Tandem, which asks no second factor
    of its own. With the organisation requiring one, the ID token must show it."""
    require_second_factor(orgs_server, provider, mfa_amr=["mfa", "hwk"], mfa_acr=[MFA_ACR])
    provider.misbehave.extra_claims = claims
    with httpx.Client() as browser:
        assert sign_in(orgs_server, browser).headers["location"] == "/console/?sso=failed"
        assert browser.get(f"{orgs_server.base}/api/me").status_code == 401
    [reason] = sso_failures(orgs_server)
    assert "asserts no second factor" in reason, reason


@pytest.mark.parametrize(
    "claims", [{"amr": ["pwd", "mfa"]}, {"amr": ["hwk"]}, {"acr": MFA_ACR, "amr": ["pwd"]}]
)
def test_an_sso_sign_in_that_shows_the_required_second_factor_signs_in(
    orgs_server: RunningServer, provider: OidcProvider, claims: dict[str, Any]
) -> None:
    require_second_factor(orgs_server, provider, mfa_amr=["mfa", "hwk"], mfa_acr=[MFA_ACR])
    provider.misbehave.extra_claims = claims
    with httpx.Client() as browser:
        start = browser.get(f"{orgs_server.base}/api/sso/start", params={"org": "default"})
        assert "acr_values=urn%3Aexample%3Aacr%3Amfa" in start.headers["location"]  # asked for
        at_provider = browser.get(start.headers["location"])
        back = browser.get(at_provider.headers["location"])
        assert back.headers["location"] == "/console/"
        assert browser.get(f"{orgs_server.base}/api/me").json()["username"] == "alice"


def test_the_mfa_item_fails_for_sso_accounts_until_the_provider_must_show_a_second_factor(
    orgs_server: RunningServer, provider: OidcProvider
) -> None:
    """The lie: "mfa" passed for accounts that sign in through the organisation's provider,
    assuming its second factor, with no acr or amr checked. alice is bound to the provider;
    until a second factor is required of its ID tokens, the item fails and names her."""
    item = mfa_item(orgs_server)
    assert item["status"] == "fail"
    assert "sign in through the identity provider" in item["detail"], item
    assert "alice" in item["detail"].partition("identity provider")[2]
    assert "mfa_amr" in item["fix"]
    require_second_factor(orgs_server, provider, mfa_amr=["mfa"])
    item = mfa_item(orgs_server)  # (still failing for the seed's accounts made --no-mfa)
    assert "identity provider" not in item["detail"], item


def test_saving_the_provider_again_without_the_requirement_keeps_it(
    orgs_server: RunningServer, provider: OidcProvider
) -> None:
    """The console saves the provider (a new client secret) without the requirement: that
    must not drop it silently. Dropping it takes an explicit empty list, and is audited."""
    require_second_factor(orgs_server, provider, mfa_amr=["mfa"])
    kept = require_second_factor(orgs_server, provider)
    assert (kept["mfa_acr"], kept["mfa_amr"]) == ([], ["mfa"])
    with httpx.Client() as browser:  # and it is still enforced
        assert sign_in(orgs_server, browser).headers["location"] == "/console/?sso=failed"
    cleared = require_second_factor(orgs_server, provider, mfa_amr=[])
    assert cleared["mfa_amr"] == []
    with api(orgs_server, "aud") as aud:
        configured = [
            r["details"] for r in aud.get("/api/audit").json() if r["action"] == "sso_configured"
        ]
    assert [c["mfa_amr"] for c in configured][-3:] == [["mfa"], ["mfa"], []]


@pytest.mark.parametrize(
    "required",
    [
        {"mfa_amr": ["m fa"]},  # a space: acr_values are space-separated
        {"mfa_amr": [""]},
        {"mfa_acr": ["x" * 201]},
        {"mfa_acr": "urn:example:acr:mfa"},  # not a list
        {"mfa_amr": [f"m{i}" for i in range(21)]},
        {"mfa_amr": ["mf\u00e4"]},
    ],
)
def test_a_malformed_second_factor_requirement_is_refused(
    orgs_server: RunningServer, provider: OidcProvider, required: dict[str, Any]
) -> None:
    settings = {
        "issuer": provider.issuer,
        "client_id": provider.client_id,
        "client_secret": provider.client_secret,
        **required,
    }
    with api(orgs_server, "ada") as ada:
        answer = ada.put("/api/org/sso", json=settings)
        assert answer.status_code == 400, answer.text
        assert ada.get("/api/org/sso").json()["sso"]["mfa_amr"] == []


def transport_item(server: RunningServer) -> dict[str, str]:
    with api(server, "ada") as ada:
        [report] = ada.get("/api/compliance", params={"profile": "pci-dss"}).json()
    item: dict[str, str] = next(r for r in report["results"] if r["requirement"] == "transport")
    return item


def test_behind_a_proxy_transport_passes_on_https_seen_and_fails_on_plain_http(
    server_factory: ServerFactory,
) -> None:
    """The lie: with --trusted-proxy, "transport" passed on the proxy's word, also for a proxy
    that forwards plain HTTP (a port 80 it serves, no X-Forwarded-Proto). It now goes by the
    requests: unknown until one came forwarded as https (a failure that says so), and failing
    once one came over plain HTTP, whatever came before."""
    server = server_factory(seed=two_organisations, trusted_proxies=("127.0.0.1",))
    from_browser = {"x-forwarded-for": "203.0.113.5"}
    item = transport_item(server)  # the test's own requests come from this machine, unproxied
    assert item["status"] == "fail" and "cannot tell yet" in item["detail"], item
    probe = httpx.get(f"{server.base}/healthz", headers=from_browser)  # a balancer's, plain
    assert probe.status_code == 200
    assert "cannot tell yet" in transport_item(server)["detail"]
    over_https = signed_in_over_https(server, from_browser)
    assert httpx.get(f"{server.base}/console/", headers=over_https).status_code == 200
    item = transport_item(server)
    assert item["status"] == "pass" and "forwarded as https" in item["detail"], item
    # The proxy also forwards plain HTTP (it sends no X-Forwarded-Proto for it).
    assert httpx.get(f"{server.base}/console/", headers=from_browser).status_code == 200
    item = transport_item(server)
    assert item["status"] == "fail" and "plain HTTP" in item["detail"], item
    assert "/console/ from 203.0.113.5" in item["detail"]
    assert "tandem compliance forget-plain-http" in item["fix"]
    assert httpx.get(f"{server.base}/console/", headers=over_https).status_code == 200
    assert transport_item(server)["status"] == "fail"  # https since does not clear it
    forget_plain_http(server)  # the operator fixed the proxy and removed the note
    assert transport_item(server)["status"] == "pass"


def signed_in_over_https(server: RunningServer, headers: dict[str, str]) -> dict[str, str]:
    """``headers`` of a signed-in browser's request that the proxy forwards as https: its
    X-Forwarded-Proto, and the browser's ``__Host-`` sign-in cookie (set from an https page
    only, sent over https only)."""
    token = login_cookie(server, "ada")  # signed in from this machine: not a proxied request
    return {**headers, "x-forwarded-proto": "https", "cookie": f"__Host-tandem_agent={token}"}


def test_a_clients_own_forwarded_proto_passed_through_does_not_pass_transport(
    server_factory: ServerFactory,
) -> None:
    """A proxy that passes the client's own X-Forwarded-Proto on (or sets it only when the
    client sent none) cannot be told from one that sets it: one request of any client over
    plain HTTP saying "https" made the item pass, before any browser had come. Now only a
    request carrying a live sign-in in the ``__Host-`` cookie, which browsers send over https
    only, is taken for a browser's https."""
    server = server_factory(seed=two_organisations, trusted_proxies=("127.0.0.1",))
    says_https = {"x-forwarded-for": "203.0.113.5", "x-forwarded-proto": "https"}
    made_up = {**says_https, "cookie": "__Host-tandem_agent=" + "A" * 43}
    for headers in (says_https, made_up):
        for path in ("/console/", "/api/me", "/healthz"):
            httpx.get(f"{server.base}{path}", headers=headers)
        item = transport_item(server)
        assert item["status"] == "fail" and "cannot tell yet" in item["detail"], item
    over_https = signed_in_over_https(server, {"x-forwarded-for": "203.0.113.5"})
    assert httpx.get(f"{server.base}/console/", headers=over_https).status_code == 200
    item = transport_item(server)
    assert item["status"] == "pass" and "signed-in browser" in item["detail"], item


def forget_plain_http(
    server: RunningServer, expected: str = "the plain HTTP request's note is removed"
) -> None:
    """``tandem compliance forget-plain-http`` on the server's data directory and database."""
    env = {"PATH": "/usr/bin:/bin", "TANDEM_DATA_DIR": str(server.settings.data_dir)}
    if server.settings.database_url:
        env["TANDEM_DATABASE_URL"] = server.settings.database_url
        env["TANDEM_AUDIT_KEY"] = str(server.settings.audit_key_file)
    forgot = tandem_in_process("compliance", "forget-plain-http", env=env)
    assert forgot.returncode == 0, forgot.stdout + forgot.stderr
    assert forgot.stdout.strip() == expected, forgot.stdout


def test_a_websocket_over_plain_http_through_the_proxy_fails_transport(
    server_factory: ServerFactory,
) -> None:
    """A socket (the customer's or the agent's) forwarded as ws, not wss, is plain too."""
    server = server_factory(seed=two_organisations, trusted_proxies=("127.0.0.1",))
    upgrade = {
        "x-forwarded-for": "203.0.113.5",
        "connection": "Upgrade",
        "upgrade": "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "origin": "https://elsewhere.example",
    }
    httpx.get(f"{server.base}/ws/agent", headers=upgrade)  # refused: its origin is another
    item = transport_item(server)
    assert item["status"] == "fail" and "websocket /ws/agent" in item["detail"], item


def test_an_allowed_plain_http_origin_fails_the_origin_and_subject_items(
    server_factory: ServerFactory,
) -> None:
    """Held: an origin given with --allow-origin (not added through the API) is stored as a
    site of the default organisation at start-up, so the check sees it: plain http fails
    "allowed origins", and its sessions, which carry no customer token, "subject requests"."""
    server = server_factory(seed=two_organisations, allow_origins=("http://shop.example",))
    with api(server, "ada") as ada:
        [report] = ada.get("/api/compliance", params={"profile": "gdpr"}).json()
    items = {r["requirement"]: r for r in report["results"]}
    assert items["allowed_origins"]["status"] == "fail"
    assert "http://shop.example" in items["allowed_origins"]["detail"]
    assert items["subject_requests"]["status"] == "fail"


def test_the_command_refuses_to_report_settings_the_server_does_not_run_with(
    server_factory: ServerFactory,
) -> None:
    """The lie: `tandem compliance check` reads the settings of its own environment. Run from
    a shell with TANDEM_LOGIN_IDLE_SECONDS=900 while the server runs with the default 1800, it
    passed the sign-in timeouts of a server that did not have them. The server notes its
    settings as it starts; the command refuses to report other ones."""
    server = server_factory(seed=two_organisations)
    data_dir = str(server.settings.data_dir)
    check = ["compliance", "check", "--profile", "pci-dss", "--format", "json"]
    shell = {"PATH": "/usr/bin:/bin", "TANDEM_DATA_DIR": data_dir}
    idle = tandem_in_process(*check, env={**shell, "TANDEM_LOGIN_IDLE_SECONDS": "900"})
    assert idle.returncode == 2, idle.stdout + idle.stderr
    assert "login_idle_seconds: here 900.0, the server 1800.0" in idle.stderr
    assert "GET /api/compliance" in idle.stderr
    proxied = tandem_in_process(*check, env={**shell, "TANDEM_TRUSTED_PROXIES": "10.0.0.2"})
    assert proxied.returncode == 2 and "trusted_proxies" in proxied.stderr
    same = tandem_in_process(*check, env=shell)  # the server's own settings: a report
    assert same.returncode in (0, 1), same.stderr
    [timeouts] = [
        r for r in json.loads(same.stdout)["results"] if r["requirement"] == "sign_in_timeouts"
    ]
    assert timeouts["status"] == "fail"  # 30 minutes idle: more than PCI DSS allows


def test_the_command_refuses_a_recordings_purge_and_training_interval_the_server_lacks(
    server_factory: ServerFactory,
) -> None:
    """The lie: the server purges expired recordings every two days (the retention item fails
    past one) and re-trains every ten years (PCI DSS asks one), but the command, run from a
    shell without those variables, read its own defaults and passed both items: neither
    setting was among those the server notes. Now it refuses to report other ones."""
    days = str(2 * 86400)
    server = server_factory(
        seed=two_organisations,
        recording_purge_seconds=float(days),
        max_recording_overdue_seconds=float(days),
        training_interval_days=3650,
    )
    shell = {"PATH": "/usr/bin:/bin", "TANDEM_DATA_DIR": str(server.settings.data_dir)}
    check = ["compliance", "check", "--profile", "pci-dss", "--format", "json"]
    lied = tandem_in_process(*check, env=shell)
    assert lied.returncode == 2, lied.stdout + lied.stderr
    assert f"recording_purge_seconds: here 60.0, the server {days}.0" in lied.stderr
    assert "training_interval_days: here 365, the server 3650" in lied.stderr
    told = tandem_in_process(
        *check,
        env={
            **shell,
            "TANDEM_RECORDING_PURGE_SECONDS": days,
            "TANDEM_MAX_RECORDING_OVERDUE_SECONDS": days,
            "TANDEM_TRAINING_INTERVAL_DAYS": "3650",
        },
    )
    assert told.returncode in (0, 1), told.stderr
    items = {r["requirement"]: r for r in json.loads(told.stdout)["results"]}
    assert items["retention"]["status"] == "fail", items["retention"]
    assert items["training"]["status"] == "fail", items["training"]


def test_the_report_checks_the_policy_the_server_hands_out_not_the_file_edited_since(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """The lie: the server reads its policy file (--policy) once, at start, and hands that out;
    the report read the file as it is now. Detectors added to the file, the server not
    restarted: "masking" passed while customers' pages were handed the policy without them.
    Both reports now go by the policy that runs (the command refuses while the file differs)."""
    policy = tmp_path / "policy.json"
    policy.write_text('{"version": 1}')
    server = server_factory(seed=two_organisations, policy_file=policy)
    policy.write_text('{"version": 1, "detectors": {"ssn": true, "iban": true}}')

    def masking() -> dict[str, str]:
        with api(server, "ada") as ada:
            answer = ada.get("/api/compliance", params={"profile": "hipaa"})
        assert answer.status_code == 200, answer.text
        [report] = answer.json()
        item: dict[str, str] = next(r for r in report["results"] if r["requirement"] == "masking")
        return item

    item = masking()
    assert item["status"] == "fail" and "demo (ssn off)" in item["detail"], item
    shell = {
        "PATH": "/usr/bin:/bin",
        "TANDEM_DATA_DIR": str(server.settings.data_dir),
        "TANDEM_POLICY": str(policy),
    }
    check = ["compliance", "check", "--profile", "hipaa", "--format", "json"]
    ran = tandem_in_process(*check, env=shell)
    assert ran.returncode == 2 and "policy_sha256" in ran.stderr, ran.stdout + ran.stderr
    policy.write_text("{ not json")  # an edit that broke the file: the report still answers
    assert masking()["status"] == "fail"


def test_a_requirement_that_accepts_a_password_alone_fails_the_mfa_item(
    orgs_server: RunningServer, provider: OidcProvider
) -> None:
    """The lie, one step on: the admin sets "mfa_amr": ["pwd"], which every password sign-in
    shows. A requirement is set, so the item passed."""
    require_second_factor(orgs_server, provider, mfa_amr=["mfa", "pwd"])
    item = mfa_item(orgs_server)
    assert item["status"] == "fail"
    assert "may show a single factor: the amr values accepted include pwd" in item["detail"]
    require_second_factor(orgs_server, provider, mfa_amr=["mfa"])
    assert "single factor" not in mfa_item(orgs_server)["detail"]


def test_trusting_every_client_as_a_proxy_fails_transport(server_factory: ServerFactory) -> None:
    """With --trusted-proxy *, any client's own X-Forwarded-Proto: https is believed: one
    forged header made the item's "forwarded as https" evidence."""
    server = server_factory(seed=two_organisations, trusted_proxies=("*",))
    forged = {"x-forwarded-for": "203.0.113.5", "x-forwarded-proto": "https"}
    assert httpx.get(f"{server.base}/console/", headers=forged).status_code == 200
    item = transport_item(server)
    assert item["status"] == "fail" and "--trusted-proxy *" in item["detail"], item


def test_a_deleted_plain_http_note_comes_back_while_plain_requests_still_come(
    server_factory: ServerFactory,
) -> None:
    """The operator deletes the note before the proxy is fixed (or an insider wants a clean
    report): noted once per process, it stayed deleted and the item passed until a restart.
    The next plain request notes it again (looked for every transport_note_recheck_seconds)."""
    server = server_factory(
        seed=two_organisations, trusted_proxies=("127.0.0.1",), transport_note_recheck_seconds=0
    )
    plain = {"x-forwarded-for": "203.0.113.5"}
    over_https = signed_in_over_https(server, plain)
    assert httpx.get(f"{server.base}/console/", headers=over_https).status_code == 200
    assert httpx.get(f"{server.base}/console/", headers=plain).status_code == 200
    assert transport_item(server)["status"] == "fail"
    forget_plain_http(server)
    assert transport_item(server)["status"] == "pass"  # nothing plain since the removal
    assert httpx.get(f"{server.base}/api/me", headers=plain).status_code == 401
    item = transport_item(server)
    assert item["status"] == "fail" and "/api/me from 203.0.113.5" in item["detail"], item


def test_a_plain_http_request_seen_by_one_server_of_a_cluster_fails_every_servers_transport(
    requires_redis: None, server_factory: ServerFactory, tmp_path: Path
) -> None:
    """Each server noted the transport in its own data directory: on a cluster behind a proxy
    that forwarded plain HTTP to one server, the others' "transport" still passed (and one that
    had seen no https request said it could not tell). The notes are the database's: what one
    server saw, every server's check reports; the operator's removal is for all of them."""
    with start_cluster(server_factory, tmp_path) as start:
        a, b = start(trusted_proxies=("127.0.0.1",)), start(trusted_proxies=("127.0.0.1",))
        add_admin_to_cluster(a, tmp_path)
        plain = {"x-forwarded-for": "203.0.113.5"}
        over_https = signed_in_over_https(a, plain)
        assert httpx.get(f"{a.base}/console/", headers=over_https).status_code == 200
        for server in (b, a):
            item = transport_item(server)
            assert item["status"] == "pass" and "forwarded as https" in item["detail"], item
        assert httpx.get(f"{a.base}/console/", headers=plain).status_code == 200
        for server in (b, a):
            item = transport_item(server)
            assert item["status"] == "fail", item
            assert "/console/ from 203.0.113.5 over plain HTTP" in item["detail"], item
            assert "noted by a server on this database" in item["detail"], item
        forget_plain_http(b)
        for server in (b, a):
            assert transport_item(server)["status"] == "pass"


def test_a_transport_note_the_database_refused_is_made_at_the_next_such_request(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = server_factory(seed=two_organisations, trusted_proxies=("127.0.0.1",))
    storage = server.server.config.app.state.services.storage
    failing = FailingCall(storage, monkeypatch, "note_transport")
    plain = {"x-forwarded-for": "203.0.113.5"}
    over_https = signed_in_over_https(server, plain)
    for headers in (over_https, plain):
        failing.arm(1)
        assert httpx.get(f"{server.base}/console/", headers=headers).status_code == 200
        assert failing.calls == ["note_installation"]  # refused: nothing noted
        item = transport_item(server)
        assert item["status"] == "fail" and "cannot tell yet" in item["detail"], item
    failing.arm(0)
    assert httpx.get(f"{server.base}/console/", headers=over_https).status_code == 200
    assert failing.calls == ["note_installation"]
    assert transport_item(server)["status"] == "pass"
    assert httpx.get(f"{server.base}/console/", headers=plain).status_code == 200
    assert failing.calls == ["note_installation", "note_installation"]
    item = transport_item(server)
    assert item["status"] == "fail" and "over plain HTTP" in item["detail"], item


def test_an_earlier_versions_plain_http_note_still_fails_transport_until_forgotten(
    server_factory: ServerFactory,
) -> None:
    """An upgraded single server: the note its earlier version left in the data directory
    still fails the item (no plain request since), and the command removes it too."""
    server = server_factory(seed=two_organisations, trusted_proxies=("127.0.0.1",))
    (server.settings.data_dir / "forwarded-https-seen").write_text("http /console/ forwarded\n")
    assert transport_item(server)["status"] == "pass"
    note = server.settings.data_dir / "plain-http-seen"
    note.write_text("http /console/ from 203.0.113.5 over plain HTTP (direct)\n")
    item = transport_item(server)
    assert item["status"] == "fail" and str(note) in item["detail"], item
    forget_plain_http(server)
    assert not note.exists()
    assert transport_item(server)["status"] == "pass"
    forget_plain_http(server, "no request over plain HTTP was noted")
