"""The admin's compliance panels in the console: the check of a profile with its references and
fixes, the banner when known vulnerabilities affect what this server ships, and a data subject
request answered (found, exported, erased) with a legal hold that stops the erasure."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

from playwright.sync_api import expect

from tandem.directory import Directory
from tests.conftest import RunningServer, ServerFactory, add_user, seed_directory
from tests.e2e.conftest import Party
from tests.e2e.test_mfa_setup import console_sign_in
from tests.grants import of_org
from tests.server.test_organisations import api

FIXTURE = Path(__file__).parent.parent / "fixtures" / "osv-advisories.json"


def test_an_admin_checks_compliance_and_sees_the_vulnerability_banner(
    server_factory: ServerFactory, agent: Party
) -> None:
    live: RunningServer = server_factory(advisory_file=FIXTURE)
    add_user(live.settings.data_dir, "ada", role="admin")
    console_sign_in(live, agent, "ada")
    page = agent.page
    page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Organisation"
    ).click()
    panel = page.get_by_role("region", name="Compliance")
    expect(panel.get_by_role("alert")).to_contain_text(
        "Known vulnerabilities affect rrweb, starlette"
    )
    panel.get_by_label("Profile").select_option("pci-dss")
    panel.get_by_role("button", name="Check compliance").click()
    status = page.get_by_role("status", name="Compliance status")
    expect(status).to_contain_text("of PCI DSS v4.0 failed")
    row = panel.get_by_role("row").filter(has_text="Idle and absolute sign-in timeouts")
    expect(row).to_contain_text("PCI DSS v4.0 8.2.8")
    expect(row).to_contain_text("TANDEM_LOGIN_IDLE_SECONDS=900")
    dependencies = panel.get_by_role("row").filter(has_text="No known vulnerability")
    expect(dependencies).to_contain_text("starlette 1.10.0 (TANDEM-TEST-0001")


async def a_customer_session(directory: Directory) -> None:
    storage = directory.storage
    await storage.record_session_start(of_org("default"), "sess-77", time.time() - 60, "demo")
    await storage.link_subject(of_org("default"), "c-77", "sess-77", "p-seventy-seven")
    await storage.record_session_end("sess-77", time.time() - 30, "stopped", "Alice")


def test_an_admin_answers_a_subject_request_and_a_hold_stops_the_erasure(
    live: RunningServer, agent: Party
) -> None:
    add_user(live.settings.data_dir, "ada", role="admin")
    seed_directory(live.settings.data_dir, a_customer_session)
    console_sign_in(live, agent, "ada")
    page = agent.page
    page.get_by_role("navigation", name="Administration").get_by_role(
        "link", name="Organisation"
    ).click()
    panel = page.get_by_role("region", name="Data subject requests")
    status = page.get_by_role("status", name="Subject request status")
    panel.get_by_label("Customer (token sub or session id)").fill("c-77")
    panel.get_by_role("button", name="Find").click()
    expect(panel.get_by_role("cell", name="sess-77")).to_be_visible()

    with page.expect_download() as download:
        panel.get_by_role("button", name="Export").click()
    with zipfile.ZipFile(download.value.path()) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["subject"] == "c-77" and manifest["sessions"] == 1

    panel.get_by_label("Customer or recording id").fill("c-77")
    panel.get_by_label("Reason").fill("case 2026-9")
    panel.get_by_role("button", name="Place hold").click()
    expect(panel.get_by_role("cell", name="case 2026-9")).to_be_visible()
    hold_status = page.get_by_role("status", name="Legal hold status")
    expect(hold_status).to_contain_text("Hold placed: purge and erasure leave it alone")
    page.on("dialog", lambda dialog: dialog.accept())
    panel.get_by_role("button", name="Erase").click()
    expect(status).to_contain_text("under legal hold")
    with api(live, "ada") as ada:
        assert ada.post("/api/subjects/find", json={"subject": "c-77"}).json()["sessions"]

    panel.get_by_label("Reason").fill("case closed")
    panel.get_by_role("button", name="Lift hold").click()
    expect(panel.get_by_text("No legal holds.")).to_be_visible()
    panel.get_by_role("button", name="Erase").click()
    expect(status).to_contain_text("Erased 1 session(s)")
    with api(live, "ada") as ada:
        assert ada.post("/api/subjects/find", json={"subject": "c-77"}).json()["sessions"] == []

    # A hold that nothing stored matches (a sub still to come, or a typo) says so.
    panel.get_by_label("Customer or recording id").fill("c-78")
    panel.get_by_label("Reason").fill("case 2026-10")
    panel.get_by_role("button", name="Place hold").click()
    expect(panel.get_by_role("cell", name="case 2026-10")).to_be_visible()
    expect(hold_status).to_contain_text("nothing stored matches it yet")
