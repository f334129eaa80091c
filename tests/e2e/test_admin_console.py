"""The admin's console page beyond accounts: retention, team and site policies, customer tokens
and single sign-on, each through the HTTP API (checked here through the same API)."""

from __future__ import annotations

import json

from joserfc import jwt
from joserfc.jwk import OctKey
from playwright.sync_api import Page, expect

from tests.conftest import RunningServer, add_user
from tests.e2e.conftest import Party
from tests.e2e.test_mfa_setup import console_sign_in
from tests.server.test_organisations import api

TEAM_POLICY = {"version": 1, "pages": {"deny": ["/team-secret*"]}}
SITE_POLICY = {"version": 1, "mask": [".balance"], "pages": {"deny": ["/private*"]}}
SECRET = "client-secret-5f2c9a"


def stored_team_policy(live: RunningServer, team: str) -> object:
    """The team's policy as the server has it (GET /api/teams/{team})."""
    with api(live, "ada") as ada:
        return ada.get(f"/api/teams/{team}").json()["policy"]


def everything_on(page: Page) -> str:
    """The page's markup and the current values of its fields (which the markup does not hold)."""
    values = page.evaluate(
        "() => [...document.querySelectorAll('input, textarea')].map((i) => i.value).join('\\n')"
    )
    return f"{page.content()}\n{values}"


def token(key: str, now: float) -> str:
    claims = {"sub": "customer-9", "aud": "demo", "iat": int(now), "exp": int(now) + 300}
    return jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(key.encode()))


def start(customer: Party, live: RunningServer, token: str) -> str:
    customer.page.goto(f"{live.base}/demo/")
    result: str = customer.page.evaluate(
        "(token) => window.Tandem.start({token}).then((c) => c, (e) => 'refused: ' + e.message)",
        token,
    )
    return result


def test_an_admin_sets_retention_and_team_policies_in_the_console(
    live: RunningServer, agent: Party
) -> None:
    add_user(live.settings.data_dir, "ada", role="admin")
    console_sign_in(live, agent, "ada")
    page = agent.page
    expect(page.get_by_role("heading", name="Administration")).to_be_visible()
    expect(page.get_by_text("see docs/administration.md")).to_have_count(0)

    # Retention: the server's refusal is shown, and nothing changes.
    retention = page.get_by_role("status", name="Retention status")
    expect(page.get_by_label("Keep ended sessions (days)")).to_have_value("30")
    page.get_by_label("Keep ended sessions (days)").fill("0")
    page.get_by_role("button", name="Save retention").click()
    expect(retention).to_contain_text("retention_days must be between 1 and 3650")
    with api(live, "ada") as ada:
        assert ada.get("/api/org").json()["retention_days"] == 30
    page.get_by_label("Keep ended sessions (days)").fill("45")
    page.get_by_role("button", name="Save retention").click()
    expect(retention).to_contain_text("now kept for 45 days")
    expect(page.get_by_text("deleted after 45 days")).to_be_visible()
    with api(live, "ada") as ada:
        assert ada.get("/api/org").json()["retention_days"] == 45

    # A team's policy: broken JSON never leaves the page, the server's refusal is shown.
    team_status = page.get_by_role("status", name="Team policy status")
    page.get_by_label("Policy for team").select_option("support")
    page.get_by_label("Team policy (JSON)").fill('{"version": 1, "pages": ')
    page.get_by_role("button", name="Set team policy").click()
    expect(team_status).to_contain_text("not valid JSON")
    expect(team_status).to_contain_text("Nothing was changed")
    assert stored_team_policy(live, "support") is None
    page.get_by_label("Team policy (JSON)").fill('{"version": 2}')
    page.get_by_role("button", name="Set team policy").click()
    expect(team_status).to_contain_text("version")
    expect(team_status).not_to_contain_text("is set")
    assert stored_team_policy(live, "support") is None

    page.get_by_label("Team policy (JSON)").fill(json.dumps(TEAM_POLICY))
    page.get_by_role("button", name="Set team policy").click()
    expect(team_status).to_contain_text("Team support's policy is set")
    assert stored_team_policy(live, "support") == TEAM_POLICY
    row = page.get_by_role("row").filter(has_text="/team-secret*")
    expect(row.get_by_role("cell").first).to_have_text("support")
    with api(live, "ada") as ada:
        assert ada.get("/api/teams").json() == ["support"]  # the team itself is untouched

    page.get_by_role("button", name="Clear team policy").click()
    expect(team_status).to_contain_text("Team support has no policy of its own now")
    assert stored_team_policy(live, "support") is None
    expect(page.get_by_label("Team policy (JSON)")).to_have_value("")


def test_an_admin_manages_a_sites_policy_and_customer_tokens_in_the_console(
    live: RunningServer, agent: Party, customer: Party
) -> None:
    add_user(live.settings.data_dir, "ada", role="admin")
    console_sign_in(live, agent, "ada")
    page = agent.page
    site_status = page.get_by_role("status", name="Site status")
    required = page.get_by_label("Customers of demo need a token")

    # No key yet: the server refuses to require tokens, and the box goes back.
    required.click()  # the page sends it; the server refuses
    expect(site_status).to_contain_text("issue a token key for this site first")
    expect(required).not_to_be_checked()
    with api(live, "ada") as ada:
        assert ada.get("/api/sites/demo").json()["require_token"] is False

    page.get_by_role("button", name="Issue customer-token key for demo").click()
    shown = page.get_by_role("region", name="New customer-token key")
    expect(shown).to_contain_text("shown only this once")
    expect(shown).to_contain_text("Any earlier key of demo stopped working")
    key = shown.locator("code").inner_text()
    assert len(key) >= 32
    with api(live, "ada") as ada:
        assert ada.get("/api/sites/demo").json()["has_token_key"] is True
    page.get_by_role("button", name="Hide the key").click()
    expect(shown).to_be_hidden()
    assert key not in everything_on(page)

    page.get_by_label("Customers of demo need a token").check()
    expect(site_status).to_contain_text("Customers of demo now need a token")
    with api(live, "ada") as ada:
        assert ada.get("/api/sites/demo").json()["require_token"] is True
    # The key the page showed is the one the server checks tokens with.
    assert start(customer, live, token("x" * len(key), live.clock())).startswith("refused")
    code = start(customer, live, token(key, live.clock()))
    assert len(code.replace(" ", "")) == 12, code

    # The site's own policy: shown as JSON, set, refused when malformed, cleared.
    policy_status = page.get_by_role("status", name="Site policy status")
    page.get_by_label("Policy for site").select_option("demo")
    expect(page.get_by_label("Site policy (JSON)")).to_have_value("")
    page.get_by_label("Site policy (JSON)").fill("{version: 1}")
    page.get_by_role("button", name="Set site policy").click()
    expect(policy_status).to_contain_text("not valid JSON")
    page.get_by_label("Site policy (JSON)").fill('{"version": 1, "mask": ".balance"}')
    page.get_by_role("button", name="Set site policy").click()
    expect(policy_status).to_contain_text("mask")
    expect(policy_status).not_to_contain_text("has its own policy")
    with api(live, "ada") as ada:
        assert ada.get("/api/sites/demo").json()["policy"] is None

    page.get_by_label("Site policy (JSON)").fill(json.dumps(SITE_POLICY))
    page.get_by_role("button", name="Set site policy").click()
    expect(policy_status).to_contain_text("Site demo has its own policy now")
    with api(live, "ada") as ada:
        assert ada.get("/api/sites/demo").json()["policy"] == SITE_POLICY
    demo = page.get_by_role("row").filter(has_text="this server (demo shop)")
    expect(demo).to_contain_text("own policy")
    shown_policy = json.loads(page.get_by_label("Site policy (JSON)").input_value())
    assert shown_policy == SITE_POLICY

    page.get_by_role("button", name="Clear site policy").click()
    expect(policy_status).to_contain_text("the server's policy applies")
    with api(live, "ada") as ada:
        assert ada.get("/api/sites/demo").json()["policy"] is None
    expect(demo).to_contain_text("server's")
    expect(page.get_by_label("Site policy (JSON)")).to_have_value("")


def test_an_admin_sets_and_turns_off_single_sign_on_in_the_console(
    live: RunningServer, agent: Party
) -> None:
    add_user(live.settings.data_dir, "ada", role="admin")
    console_sign_in(live, agent, "ada")
    page = agent.page
    sso_status = page.get_by_role("status", name="Single sign-on status")
    expect(page.get_by_text("Off: accounts sign in with their password")).to_be_visible()
    expect(page.get_by_role("button", name="Turn off single sign-on")).to_be_hidden()
    expect(page.get_by_text(f"{live.base}/api/sso/callback")).to_be_visible()
    secret = page.get_by_label("Client secret")
    expect(secret).to_have_attribute("type", "password")

    page.get_by_label("Issuer URL").fill("http://idp.example")
    page.get_by_label("Client id").fill("tandem-console")
    secret.fill(SECRET)
    page.get_by_role("button", name="Save single sign-on").click()
    expect(sso_status).to_contain_text("the issuer must be an https:// URL")
    expect(secret).to_have_value("")
    with api(live, "ada") as ada:
        assert ada.get("/api/org/sso").json() == {"sso": None}

    page.get_by_label("Issuer URL").fill("https://idp.example")
    secret.fill(SECRET)
    page.get_by_role("button", name="Save single sign-on").click()
    expect(sso_status).to_contain_text("Single sign-on is on")
    expect(secret).to_have_value("")
    expect(page.get_by_text("sign in through https://idp.example")).to_contain_text(
        "tandem-console"
    )
    with api(live, "ada") as ada:
        assert ada.get("/api/org/sso").json() == {
            "sso": {"issuer": "https://idp.example", "client_id": "tandem-console"}
        }
    assert SECRET not in everything_on(page)
    page.reload()  # what the page shows from the server, too
    expect(page.get_by_text("sign in through https://idp.example")).to_be_visible()
    expect(page.get_by_label("Client id")).to_have_value("tandem-console")
    assert SECRET not in everything_on(page)

    page.get_by_role("button", name="Turn off single sign-on").click()
    expect(sso_status).to_contain_text("Single sign-on is off")
    expect(page.get_by_text("Off: accounts sign in with their password")).to_be_visible()
    expect(page.get_by_role("button", name="Turn off single sign-on")).to_be_hidden()
    with api(live, "ada") as ada:
        assert ada.get("/api/org/sso").json() == {"sso": None}
