"""The admin's console page beyond accounts: retention, team and site policies, customer tokens
and single sign-on, each through the HTTP API (checked here through the same API)."""

from __future__ import annotations

import json

from joserfc import jwt
from joserfc.jwk import OctKey
from playwright.sync_api import Page, expect

from tests.conftest import RunningServer, add_user
from tests.e2e.axe import assert_accessible
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


def open_page(page: Page, name: str) -> None:
    """Open an office page through the navigation, and wait for its heading."""
    page.get_by_role("navigation", name="Administration").get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", level=1, name=name)).to_be_visible()


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
    expect(page.get_by_role("heading", level=1, name="Users")).to_be_visible()
    open_page(page, "Organisation")

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

    # A team's policy, in the form: a bad line is marked and nothing is sent.
    open_page(page, "Policies")
    status = page.get_by_role("status", name="Policy status")
    page.get_by_label("Policy for").select_option("team:support")
    deny = page.get_by_label("Pages agents never see")
    deny.fill("team-secret*")
    page.get_by_role("button", name="Save policy").click()
    expect(status).to_contain_text("Fix the fields marked above. Nothing was changed.")
    expect(deny).to_have_attribute("aria-invalid", "true")
    expect(
        page.get_by_text(
            "Line 1 is not a page pattern customers' browsers take: must start with / (a path)"
        )
    ).to_be_visible()
    # A query value asked for by its first characters: browsers refuse it from the server.
    deny.fill("/team-secret*\n/*?token=a*")
    page.get_by_role("button", name="Save policy").click()
    expect(
        page.get_by_text("Line 2 is not a page pattern customers' browsers take: a policy from")
    ).to_be_visible()
    deny.fill("team-secret*")
    mask = page.get_by_label("Mask these elements")
    mask.fill(".ok\n..bad")
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_text("Line 2 is not a CSS selector")).to_be_visible()
    assert stored_team_policy(live, "support") is None
    # A selector that tests what the customer did: customers' browsers would refuse the policy.
    hide = page.get_by_label("Hide these elements")
    hide.fill("#chat\nbody:has(#yes:checked) .essay")
    mask.fill(".ok")
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_text("Line 2 tests what the customer did on the page")).to_be_visible()
    expect(hide).to_have_attribute("aria-invalid", "true")
    assert stored_team_policy(live, "support") is None
    hide.fill("")
    assert_accessible(page)  # with its validation messages shown

    deny.fill("/team-secret*")
    mask.fill("")
    page.get_by_role("button", name="Save policy").click()
    expect(status).to_contain_text("The policy of Team support is saved")
    stored = stored_team_policy(live, "support")
    assert isinstance(stored, dict) and stored["pages"] == TEAM_POLICY["pages"]
    open_page(page, "Teams")
    row = page.get_by_role("row").filter(has_text="support")
    expect(row).to_contain_text("1 page rules, 0 masked, 0 hidden")
    with api(live, "ada") as ada:
        assert ada.get("/api/teams").json() == ["support"]  # the team itself is untouched

    # The advanced view: JSON as typed, broken JSON never leaves the page, the server's refusal
    # is shown.
    open_page(page, "Policies")
    page.get_by_label("Policy for").select_option("team:support")
    expect(page.get_by_label("Pages agents never see")).to_have_value("/team-secret*")
    page.get_by_text("Advanced: the policy as JSON").click()
    page.get_by_label("Policy (JSON)").fill('{"version": 1, "pages": ')
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_text("not valid JSON")).to_be_visible()
    expect(status).to_contain_text("Nothing was changed")
    page.get_by_label("Policy (JSON)").fill('{"version": 2}')
    page.get_by_role("button", name="Save policy").click()
    expect(status).to_contain_text("version")
    page.get_by_label("Policy (JSON)").fill('{"version": 1, "mask": ["input:checked"]}')
    page.get_by_role("button", name="Save policy").click()
    expect(status).to_contain_text("never by what the customer did on the page")
    stored = stored_team_policy(live, "support")
    assert isinstance(stored, dict) and stored["pages"] == TEAM_POLICY["pages"]
    page.get_by_label("Policy (JSON)").fill(json.dumps(TEAM_POLICY))
    page.get_by_role("button", name="Save policy").click()
    expect(status).to_contain_text("is saved")
    assert stored_team_policy(live, "support") == TEAM_POLICY

    page.get_by_role("button", name="Remove policy").click()
    expect(status).to_contain_text("Team support has no policy of its own now")
    assert stored_team_policy(live, "support") is None
    expect(page.get_by_label("Pages agents never see")).to_have_value("")


def test_an_admin_manages_a_sites_policy_and_customer_tokens_in_the_console(
    live: RunningServer, agent: Party, customer: Party
) -> None:
    add_user(live.settings.data_dir, "ada", role="admin")
    console_sign_in(live, agent, "ada")
    page = agent.page
    open_page(page, "Sites")
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
    assert_accessible(page)
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

    # The site's own policy, in the form; the JSON view shows what the fields make.
    open_page(page, "Policies")
    policy_status = page.get_by_role("status", name="Policy status")
    page.get_by_label("Policy for").select_option("site:demo")
    expect(page.get_by_label("Mask these elements")).to_have_value("")
    page.get_by_label("Mask these elements").fill(".balance")
    page.get_by_label("Pages agents never see").fill("/private*")
    page.get_by_role("button", name="Save policy").click()
    expect(policy_status).to_contain_text("The policy of Site demo is saved")
    with api(live, "ada") as ada:
        stored = ada.get("/api/sites/demo").json()["policy"]
    assert stored["mask"] == SITE_POLICY["mask"] and stored["pages"] == SITE_POLICY["pages"]
    page.get_by_text("Advanced: the policy as JSON").click()
    assert json.loads(page.get_by_label("Policy (JSON)").input_value()) == stored
    open_page(page, "Sites")
    demo = page.get_by_role("row").filter(has_text="this server (demo shop)")
    expect(demo).to_contain_text("Own policy")

    open_page(page, "Policies")
    page.get_by_label("Policy for").select_option("site:demo")
    page.get_by_role("button", name="Remove policy").click()
    expect(policy_status).to_contain_text("Site demo has no policy of its own now")
    with api(live, "ada") as ada:
        assert ada.get("/api/sites/demo").json()["policy"] is None
    expect(page.get_by_label("Mask these elements")).to_have_value("")
    open_page(page, "Sites")
    expect(page.get_by_role("row").filter(has_text="this server (demo shop)")).to_contain_text(
        "server's"
    )


def test_an_admin_sets_and_turns_off_single_sign_on_in_the_console(
    live: RunningServer, agent: Party
) -> None:
    add_user(live.settings.data_dir, "ada", role="admin")
    console_sign_in(live, agent, "ada")
    page = agent.page
    open_page(page, "Single sign-on")
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
    expect(page.get_by_text("sign in through https://idp.example")).to_contain_text(
        "Nothing requires their ID tokens to show a second factor"
    )
    with api(live, "ada") as ada:
        assert ada.get("/api/org/sso").json() == {
            "sso": {
                "issuer": "https://idp.example",
                "client_id": "tandem-console",
                "mfa_acr": [],
                "mfa_amr": [],
            }
        }
        required = {
            "issuer": "https://idp.example",
            "client_id": "tandem-console",
            "client_secret": SECRET,
            "mfa_amr": ["mfa"],
        }
        assert ada.put("/api/org/sso", json=required).status_code == 200
    assert SECRET not in everything_on(page)
    page.reload()  # what the page shows from the server, too (the address names the page)
    expect(page.get_by_role("heading", level=1, name="Single sign-on")).to_be_visible()
    expect(page.get_by_text("sign in through https://idp.example")).to_contain_text(
        "Their ID tokens must show a second factor (amr mfa)."
    )
    expect(page.get_by_label("Client id")).to_have_value("tandem-console")
    assert SECRET not in everything_on(page)
    # Saved again in the console (a new secret), which sends no requirement: it is kept.
    secret.fill(SECRET + "-2")
    page.get_by_role("button", name="Save single sign-on").click()
    expect(page.get_by_text("sign in through https://idp.example")).to_contain_text("(amr mfa)")
    with api(live, "ada") as ada:
        assert ada.get("/api/org/sso").json()["sso"]["mfa_amr"] == ["mfa"]

    page.get_by_role("button", name="Turn off single sign-on").click()
    expect(sso_status).to_contain_text("Single sign-on is off")
    expect(page.get_by_text("Off: accounts sign in with their password")).to_be_visible()
    expect(page.get_by_role("button", name="Turn off single sign-on")).to_be_hidden()
    with api(live, "ada") as ada:
        assert ada.get("/api/org/sso").json() == {"sso": None}
