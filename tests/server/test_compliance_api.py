"""The admin API of issue 16 on a real server: a customer who came with a token is found by its
``sub``, exported and erased through the API (refused while live or held); the compliance report
and the security status (stale advisories: a banner and a warning in the log) for admins only."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import sqlite3
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tandem import sbom
from tests.conftest import RunningServer, ServerFactory, two_organisations
from tests.server.helpers import recv_json, send
from tests.server.test_admin_api import audit_actions
from tests.server.test_customer_tokens import create, issue_key, sign
from tests.server.test_organisations import api

FIXTURE = Path(__file__).parent.parent / "fixtures" / "osv-advisories.json"


def osv_time(epoch: float) -> str:
    """An OSV ``modified`` time (RFC 3339, UTC)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


async def test_a_customer_is_found_exported_and_erased_by_the_sub_of_its_token(
    orgs_server: RunningServer,
) -> None:
    key = issue_key(orgs_server)
    now = int(orgs_server.clock())
    customer, created = await create(
        orgs_server, sign(key, sub="c-42", aud="demo", iat=now, exp=now + 300)
    )
    assert created is not None
    session_id = created["session_id"]
    with api(orgs_server, "ada") as ada:
        found = ada.post("/api/subjects/find", json={"subject": "c-42"}).json()
        assert found["sessions"] == [session_id] and found["audit_records"] >= 1
        assert found["pseudonym"].startswith("p-")
        live = ada.post("/api/subjects/erase", json={"subject": "c-42"})
        assert live.status_code == 409 and "still live" in live.json()["detail"]
    await send(customer, type="stop")
    assert (await recv_json(customer))["type"] == "ended"
    with api(orgs_server, "ada") as ada:
        held = ada.post(
            "/api/holds", json={"kind": "subject", "target": "c-42", "reason": "case 7"}
        )
        assert held.status_code == 201, held.text
        assert (held.json()["sessions"], held.json()["recordings"]) == ([session_id], [])
        assert ada.get("/api/holds").json()["holds"][0]["reason"] == "case 7"
        ahead = ada.post(
            "/api/holds", json={"kind": "subject", "target": "c-43", "reason": "case 8"}
        )
        assert ahead.status_code == 201, ahead.text
        assert (ahead.json()["sessions"], ahead.json()["recordings"]) == ([], [])  # nothing yet
        refused = ada.post("/api/subjects/erase", json={"subject": session_id})
        assert refused.status_code == 409 and "legal hold" in refused.json()["detail"]
        exported = ada.post("/api/subjects/export", json={"subject": "c-42"})
        assert exported.status_code == 200
        assert exported.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
            manifest = json.loads(archive.read("manifest.json"))
            assert manifest["sessions"] == 1 and manifest["exported_by"] == "ada"
        lifted = ada.post(
            "/api/holds/lift", json={"kind": "subject", "target": "c-42", "reason": "closed"}
        )
        assert lifted.status_code == 200, lifted.text
        erased = ada.post("/api/subjects/erase", json={"subject": "c-42"})
        assert erased.status_code == 200 and erased.json()["sessions"] == 1
        assert ada.post("/api/subjects/find", json={"subject": "c-42"}).json()["sessions"] == []
    actions = audit_actions(orgs_server)
    for action in ("legal_hold_placed", "subject_exported", "legal_hold_lifted", "subject_erased"):
        assert action in actions
    with api(orgs_server, "aud") as aud:
        assert "c-42" not in aud.get("/api/audit").text


def test_another_organisations_admin_finds_nothing(orgs_server: RunningServer) -> None:
    with api(orgs_server, "max") as max_:
        found = max_.post("/api/subjects/find", json={"subject": "c-42"}).json()
        assert found["sessions"] == [] and found["org_id"] == "acme"
        missing = max_.post("/api/subjects/export", json={"subject": "c-42"})
        assert missing.status_code == 404


def test_the_compliance_report_and_security_status_are_for_admins(
    orgs_server: RunningServer,
) -> None:
    with api(orgs_server, "ada") as ada:
        reports = ada.get("/api/compliance").json()
        assert [r["profile"] for r in reports] == ["gdpr", "hipaa", "pci-dss"]
        [pci] = ada.get("/api/compliance", params={"profile": "pci-dss"}).json()
        transport = next(r for r in pci["results"] if r["requirement"] == "transport")
        assert transport["status"] == "fail" and transport["reference"] == "PCI DSS v4.0 4.2.1"
        assert ada.get("/api/compliance", params={"profile": "sox"}).status_code == 400
        sbom = ada.get("/api/security/sbom").json()
        assert sbom["bomFormat"] == "CycloneDX"
    for user in ("alice", "aud", "sam"):
        with api(orgs_server, user) as client:
            assert client.get("/api/compliance").status_code == 403
            assert client.get("/api/security/sbom").status_code == 403


def audit_trail_check(server: RunningServer, admin: str) -> dict[str, str]:
    with api(server, admin) as client:
        [report] = client.get("/api/compliance", params={"profile": "gdpr"}).json()
    found: dict[str, str] = next(r for r in report["results"] if r["requirement"] == "audit_trail")
    return found


def forge_a_record_at_the_end(server: RunningServer) -> None:
    """A row written into the trail outside Tandem: the chain no longer verifies."""
    with sqlite3.connect(server.settings.database_path) as db:
        (last,) = db.execute("SELECT max(seq) FROM audit").fetchone()
        db.execute(
            "INSERT INTO audit (seq, at, action, actor, org, subject, details, prev_hash, hash)"
            " VALUES (?, 0, 'forged', 'x', 'default', '', '{}', 'bad', 'bad')",
            (last + 1,),
        )


def test_an_admins_compliance_reports_do_not_reread_every_organisations_trail(
    server_factory: ServerFactory,
) -> None:
    """Each report read and verified the whole audit trail, every organisation's, as often
    (and as many times at once) as any organisation's admin asked, and told its size. Now one
    check serves the reports of compliance_audit_check_seconds, and tells no size."""
    server = server_factory(seed=two_organisations, compliance_audit_check_seconds=300.0)
    first = audit_trail_check(server, "max")  # Acme's admin
    assert first["status"] == "pass", first
    assert not re.search(r"\d+ records", first["detail"])  # nothing of the others' activity
    forge_a_record_at_the_end(server)
    for admin in ("max", "ada"):  # within the interval: the same check, the trail not read
        assert audit_trail_check(server, admin)["status"] == "pass"
    server.clock.advance(300)
    broken = audit_trail_check(server, "ada")
    assert broken["status"] == "fail" and "does not verify" in broken["detail"], broken


def test_an_organisations_report_names_no_record_number_or_time_of_the_shared_trail(
    server_factory: ServerFactory,
) -> None:
    """The audit item of an organisation's report named the chain's record numbers (where it
    broke) and the time of the oldest record no anchor covered: the chain is every
    organisation's, so the numbers told their volume, and the time when the others' records
    moved the anchors. Acme's admin now reads neither; the operator's check names both."""
    server = server_factory(seed=two_organisations, compliance_audit_check_seconds=60.0)
    server.clock.advance(3 * 86400)  # the seeds' records, after the first anchor, are old
    unanchored = audit_trail_check(server, "max")
    assert unanchored["status"] == "fail", unanchored
    assert "records older than 1 day(s) are covered by neither" in unanchored["detail"]
    assert not re.search(r"\d{4}-\d{2}-\d{2}", unanchored["detail"]), unanchored
    forge_a_record_at_the_end(server)
    server.clock.advance(60)
    broken = audit_trail_check(server, "max")
    assert broken["status"] == "fail" and "does not verify" in broken["detail"], broken
    assert not re.search(r"record \d", broken["detail"]), broken


def test_stale_advisories_show_admins_a_banner_and_warn_in_the_log(
    server_factory: ServerFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "tandem.security")
    advisories = tmp_path / "osv.json"
    # Fetched ten days ago (the server's clock starts at this machine's): the file itself new.
    advisories.write_text(json.dumps({"vulns": [], "modified": osv_time(time.time() - 10 * 86400)}))
    server = server_factory(
        seed=two_organisations, advisory_file=advisories, advisory_max_age_days=7.0
    )
    with api(server, "ada") as ada:
        status = ada.get("/api/security").json()
    assert status["stale"] is True and status["affected"] == []
    assert "advisory file is 10 days old" in status["banner"]
    deadline = time.monotonic() + 5
    while "advisory file is 10 days old" not in caplog.text:
        assert time.monotonic() < deadline, caplog.text
        time.sleep(0.02)


def test_affected_dependencies_show_in_the_banner(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(seed=two_organisations, advisory_file=FIXTURE)
    with api(server, "ada") as ada:
        status = ada.get("/api/security").json()
    assert {a["package"] for a in status["affected"]} == {"rrweb", "starlette"}
    assert status["banner"].startswith("Known vulnerabilities affect rrweb, starlette")


def test_a_malformed_advisory_file_is_reported_and_never_stops_the_server(
    server_factory: ServerFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An advisory file (fetched by the operator from an OSV feed) with a ``ranges`` that is no
    list, or a version of thousands of digits: the server's advisory watch raised, its task
    group cancelled the application's start-up context, and every request but /healthz answered
    500 from then on. Now the first is reported to admins as unusable, the second compared, and
    the watch, supervised, would survive what it cannot read."""
    caplog.set_level(logging.WARNING, logger="tandem.sbom")
    starlette = {"ecosystem": "PyPI", "name": "starlette"}
    huge = {"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "9" * 5000}]}
    for name, affected in (
        ("ranges", {"package": starlette, "ranges": 1}),
        ("digits", {"package": starlette, "ranges": [huge]}),
    ):
        advisories = tmp_path / f"osv-{name}.json"
        advisories.write_text(json.dumps([{"id": f"X-{name}", "affected": [affected]}]))
        caplog.clear()
        server = server_factory(seed=two_organisations, advisory_file=advisories)
        deadline = time.monotonic() + 10
        while "security:" not in caplog.text:  # the watch's first look at the file
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.02)
        with api(server, "ada") as ada:
            status = ada.get("/api/security")
        assert status.status_code == 200, status.text
        if name == "ranges":
            assert "is not a list" in status.json()["problem"]
        else:
            assert [a["package"] for a in status.json()["affected"]] == ["starlette"]
        assert httpx.get(f"{server.base}/readyz").status_code == 200
        assert "advisories" not in server.server.config.app.state.background.failing


def test_the_advisory_file_is_read_once_per_change_not_at_every_request(
    server_factory: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator's advisory file (OSV JSON, up to 64 MiB) was read and parsed at each
    admin's request for the security status (the console asks on every page): one long call
    that holds the interpreter, whatever thread runs it, and every live session's frames
    meanwhile (0.35 s for 15 MB). It is read again only when it changed. Counted, not timed:
    the reads themselves are what held the sessions."""

    def write(count: int) -> None:
        vulns = [
            {
                "id": f"TANDEM-BULK-{n}",
                "summary": "an advisory of another package",
                "affected": [{"package": {"ecosystem": "PyPI", "name": f"pkg-{n}"}}],
            }
            for n in range(count)
        ]
        advisories.write_text(json.dumps({"vulns": vulns}))

    advisories = tmp_path / "osv.json"
    write(2_000)
    reads: list[Path] = []
    load = sbom.read_advisories

    def counted(path: Path, max_bytes: int) -> tuple[list[dict[str, Any]], float | None]:
        reads.append(path)
        return load(path, max_bytes)

    monkeypatch.setattr(sbom, "read_advisories", counted)
    server = server_factory(seed=two_organisations, advisory_file=advisories)

    def ask(times: int) -> None:
        with api(server, "ada") as ada:
            for _ in range(times):
                answer = ada.get("/api/security")
                assert answer.status_code == 200, answer.text
                assert answer.json()["advisory_file"] == str(advisories)

    ask(1)
    assert reads == [advisories]  # once: at the server's start or at the first ask
    ask(5)
    assert reads == [advisories]  # five more admins' pages: not read again
    write(2_001)  # the operator updates it
    ask(3)
    assert reads == [advisories, advisories]  # read once more, for the change


def test_an_admins_report_does_not_name_the_servers_key_files(orgs_server: RunningServer) -> None:
    """Recording key files lying on the server (the operator's mistake, of any organisation)
    were named, path and all, in every organisation's admin's report."""
    stray = orgs_server.settings.data_dir / "other-company-recordings.tandemkey"
    stray.write_text(json.dumps({"tandem_recording_key": 1}))
    key = base64.urlsafe_b64encode(bytes(range(1, 33))).rstrip(b"=").decode()
    with api(orgs_server, "max") as max_:
        assert max_.put("/api/org/recording-key", json={"public_key": key}).status_code == 200
        [report] = max_.get("/api/compliance", params={"profile": "gdpr"}).json()
    check = next(r for r in report["results"] if r["requirement"] == "recording_key")
    assert check["status"] == "fail", check  # the file is still found
    assert "other-company" not in check["detail"] and "1 file(s)" in check["detail"], check
