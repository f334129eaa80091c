"""The admin's compliance panel in the console: the check of a profile with its references and
fixes, and the banner when known vulnerabilities affect what this server ships."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests.conftest import RunningServer, ServerFactory, add_user
from tests.e2e.conftest import Party
from tests.e2e.test_mfa_setup import console_sign_in

FIXTURE = Path(__file__).parent.parent / "fixtures" / "osv-advisories.json"


def test_an_admin_checks_compliance_and_sees_the_vulnerability_banner(
    server_factory: ServerFactory, agent: Party
) -> None:
    live: RunningServer = server_factory(advisory_file=FIXTURE)
    add_user(live.settings.data_dir, "ada", role="admin")
    console_sign_in(live, agent, "ada")
    page = agent.page
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
