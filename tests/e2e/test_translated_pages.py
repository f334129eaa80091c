"""The console's account and compliance pages speak the agent's language (issue 15, "Brand and
language"): the console's own complaints, the reconnect words of both sides, refusals of the
agent's actions, two-step sign-in set-up (QR code, recovery codes), password change (own and after
an admin's reset) and the compliance, data subject and legal hold panels, rendered with ``?lang=``.

Each screen is rendered in English and in another language; every piece of text on it (text
nodes, labels, alt texts, placeholders) that reads the same in both is English left in the code,
unless it is data (names, codes, the server's own findings) listed as such. Arabic is checked for
right to left. axe-core runs on each translated screen.

The node test sdk/test/account-compliance-messages.test.ts checks that every catalogue has
every key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import httpx
import pyotp
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.conftest import AGENT_PASSWORD, RunningServer, add_user
from tests.e2e.axe import assert_accessible
from tests.e2e.conftest import Party, allow, get_help, mirror, open_console_as
from tests.e2e.netcut import NetCut
from tests.e2e.test_control import agent_click

# Every piece of text in `root`, hidden or not: text nodes and the attributes people hear or see.
TEXTS = """(root) => {
    const out = new Set();
    const walk = document.createTreeWalker(root, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
    for (let node = walk.currentNode; node; node = walk.nextNode()) {
        if (node.nodeType === Node.TEXT_NODE) {
            const text = node.textContent.trim();
            if (text && !node.parentElement.closest("td, code, option")) out.add(text);
            continue;
        }
        for (const name of ["aria-label", "alt", "placeholder", "title"]) {
            const value = (node.getAttribute(name) || "").trim();
            if (value) out.add(value);
        }
    }
    return [...out].sort();
}"""

# Words that read the same in German as in English on these pages.
SAME_IN_GERMAN = {"Compliance"}

Screens = dict[str, list[str]]


def texts(locator: Locator) -> list[str]:
    found: list[str] = locator.evaluate(TEXTS)
    return found


def untranslated(english: Screens, other: Screens, allowed: set[str]) -> dict[str, list[str]]:
    for screen, words in english.items():
        assert len(words) >= 3, f"the {screen} screen shows almost nothing: {words}"
    left = {
        screen: sorted(set(english[screen]) & set(other[screen]) - allowed) for screen in english
    }
    return {screen: words for screen, words in left.items() if words}


def mfa_screens(live: RunningServer, party: Party, lang: str) -> Screens:
    user = f"nina-{lang}"
    add_user(live.settings.data_dir, user, display_name="Nina", mfa_exempt=False)
    open_console_as(party, live, user)
    page = party.page
    page.goto(f"{live.base}/console/?lang={lang}")
    section = page.locator("#mfa")
    expect(page.locator("#mfa-start")).to_be_visible()
    screens = {"start": texts(section)}
    assert_accessible(page)
    page.locator("#mfa-start").click()
    expect(page.locator("#mfa-qr")).to_be_visible()
    screens["scan"] = texts(section)
    assert_accessible(page)
    secret = page.locator("#mfa-secret").inner_text().replace(" ", "")
    page.locator("#mfa-code").fill(pyotp.TOTP(secret).at(live.clock()))
    page.locator("#mfa-form button[type=submit]").click()
    expect(page.locator("#mfa-recovery li")).to_have_count(10)
    screens["done"] = texts(section)
    assert_accessible(page)
    return screens


def password_screens(live: RunningServer, party: Party, lang: str) -> Screens:
    own, reset = f"pia-{lang}", f"rex-{lang}"
    add_user(live.settings.data_dir, own, display_name="Pia")
    add_user(live.settings.data_dir, reset, display_name="Rex")
    add_user(live.settings.data_dir, f"ann-{lang}", display_name="Ann", role="admin")
    page = party.page
    open_console_as(party, live, own)
    page.goto(f"{live.base}/console/?lang={lang}")
    page.locator("#password-change").click()
    panel = page.locator("#password")
    expect(panel.locator("#password-new")).to_be_visible()
    page.locator("#password-new").fill("green-lantern-tide-77")
    page.locator("#password-again").fill("green-lantern-tide-78")
    panel.locator("button[type=submit]").click()
    expect(panel.get_by_role("alert")).to_be_visible()  # the two new passwords differ
    screens = {"own": [*texts(panel), page.locator("#password-change").inner_text()]}
    assert_accessible(page)
    with httpx.Client(base_url=live.base, headers={"origin": live.origin}) as ann:
        assert ann.post("/api/login", json={"username": f"ann-{lang}", "password": AGENT_PASSWORD})
        answer = ann.post(
            f"/api/users/{reset}/reset-password", json={"password": "temp-pass-4821x"}
        )
        assert answer.status_code == 204, answer.text
    page.context.clear_cookies()
    response = page.request.post(
        f"{live.base}/api/login",
        data={"username": reset, "password": "temp-pass-4821x"},
        headers={"origin": live.base},
    )
    assert response.ok, response.text()
    page.goto(f"{live.base}/console/?lang={lang}")
    expect(page.locator("#password #password-current")).to_be_visible()
    screens["forced"] = texts(page.locator("#password"))
    assert_accessible(page)
    return screens


def compliance_screens(live: RunningServer, party: Party, lang: str) -> Screens:
    admin = f"ada-{lang}"
    add_user(live.settings.data_dir, admin, role="admin", display_name="Ada")
    open_console_as(party, live, admin)
    page = party.page
    page.goto(f"{live.base}/console/?lang={lang}#organisation")
    compliance = page.locator("section[aria-label]:has(#compliance-profile)")
    expect(compliance).to_be_visible()
    compliance.locator("button[type=submit]").click()
    expect(compliance.locator("table")).to_be_visible()
    expect(compliance.get_by_role("status")).not_to_be_empty()
    # Data subject requests and legal holds.
    subjects = page.locator("section[aria-label]:has(> h3)")
    subjects.locator("form").first.locator("button[type=submit]").click()  # no customer given
    expect(subjects.get_by_role("status").first).not_to_be_empty()
    subjects.locator("input").first.fill("c-nobody")
    subjects.locator("form").first.locator("button[type=submit]").click()
    expect(subjects.locator("table").first).to_be_visible()
    subjects.locator("form").nth(1).locator("button[type=submit]").click()  # no reason given
    expect(subjects.get_by_role("status").nth(1)).not_to_be_empty()
    # The security banner is the server's words (docs/security-updates.md), as the findings are.
    banner = (compliance.locator("p[role=alert]").text_content() or "").strip()
    screens = {
        "compliance": [text for text in texts(compliance) if text != banner],
        "subjects": texts(subjects),
    }
    assert_accessible(page)
    return screens


def test_two_step_sign_in_set_up_is_translated(
    live: RunningServer, agent: Party, supervisor: Party
) -> None:
    english = mfa_screens(live, agent, "en")
    german = mfa_screens(live, supervisor, "de")
    assert untranslated(english, german, SAME_IN_GERMAN) == {}
    page = supervisor.page
    expect(page.get_by_role("button", name=re.compile("^Gespeichert"))).to_be_visible()
    expect(page.get_by_role("list", name="Wiederherstellungscodes")).to_be_visible()
    expect(page.locator("header .subtitle")).to_have_text("Agent-Konsole")


def test_password_change_is_translated(
    live: RunningServer, agent: Party, supervisor: Party
) -> None:
    english = password_screens(live, agent, "en")
    german = password_screens(live, supervisor, "de")
    assert untranslated(english, german, SAME_IN_GERMAN) == {}
    expect(supervisor.page.get_by_role("heading", name="Neues Passwort wählen")).to_be_visible()


def test_compliance_pages_are_translated(
    live: RunningServer, agent: Party, supervisor: Party
) -> None:
    english = compliance_screens(live, agent, "en")
    german = compliance_screens(live, supervisor, "de")
    # The profiles' names are names; the check's findings are the server's (in cells, not read).
    names = {"GDPR", "HIPAA", "PCI DSS v4.0"}
    assert untranslated(english, german, SAME_IN_GERMAN | names) == {}
    expect(supervisor.page.get_by_role("heading", name="Aufbewahrungspflichten")).to_be_visible()


@pytest.mark.parametrize(
    ("screens", "heading"),
    [(mfa_screens, "إعداد تسجيل الدخول بخطوتين"), (compliance_screens, "الحفظ القانوني")],
    ids=["mfa", "compliance"],
)
def test_arabic_pages_read_right_to_left(
    live: RunningServer,
    agent: Party,
    screens: Callable[[RunningServer, Party, str], Screens],
    heading: str,
) -> None:
    screens(live, agent, "ar")
    page: Page = agent.page
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.get_by_role("heading", name=heading)).to_be_visible()


def test_the_consoles_own_complaints_are_translated(live: RunningServer, agent: Party) -> None:
    page = agent.page
    page.goto(f"{live.base}/console/?lang=de&sso=busy")  # back from a refused provider
    expect(page.get_by_role("alert")).to_have_text(
        "Von hier wurden zu viele Anmeldungen begonnen. "
        "Warten Sie ein paar Minuten und versuchen Sie es dann erneut."
    )
    open_console_as(agent, live, "alice")
    page.goto(f"{live.base}/console/?lang=de")
    page.get_by_role("button", name="Beitreten").click()  # no code typed
    expect(page.locator("#status")).to_have_text(
        "Geben Sie den Code ein, den der Kunde Ihnen vorliest."
    )
    assert_accessible(page)


def test_the_customers_refusals_reach_the_agent_in_the_agents_language(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    customer.page.goto(f"{live.base}/demo/checkout.html")
    code = get_help(customer)
    open_console_as(agent, live, "alice")
    console = agent.page
    console.goto(f"{live.base}/console/?lang=de")
    console.locator("#code").fill(code)
    console.locator("#join-button").click()
    allow(customer)
    view = mirror(agent)
    expect(view.locator("#name")).to_be_attached()
    console.locator("#request-control").click()
    customer.page.get_by_role("dialog").get_by_role("button", name="Allow control").click()
    expect(console.locator("#release-control")).to_be_visible()
    agent_click(agent, view, "#name")  # a masked field: the customer's browser refuses
    expect(console.locator("#status")).to_have_text(
        "Nicht ausgeführt: Das ist für Sie verborgen oder geschützt."
    )
    assert_accessible(console)


@pytest.fixture
def net(live: RunningServer) -> Iterator[NetCut]:
    proxy = NetCut(live)
    yield proxy
    proxy.close()


def test_reconnecting_is_told_in_each_sides_language(
    live: RunningServer, net: NetCut, customer: Party, agent: Party
) -> None:
    # Both sides behind the proxy whose network drops; the customer's page asks for German.
    shop = customer.page
    shop.goto(f"{net.base}/demo/")
    code = shop.evaluate("() => window.Tandem.start({locale: 'de'})")
    open_console_as(agent, live, "alice")
    console = agent.page
    console.goto(f"{net.base}/console/?lang=de")
    console.locator("#code").fill(code)
    console.locator("#join-button").click()
    shop.get_by_role("dialog").get_by_role("button", name="Erlauben").click()
    stop = shop.get_by_role("button", name="Teilen beenden")
    expect(stop).to_be_visible()
    expect(console.locator("#status")).to_have_text(
        "Verbunden. Sie sehen die Seite des Kunden live."
    )
    net.down()
    reconnecting = re.compile("^Verbindung zum Hilfe-Server wird wiederhergestellt")
    expect(shop.get_by_role("region", name=reconnecting)).to_be_visible()
    expect(console.locator("#status")).to_contain_text("Verbindung wird wiederhergestellt")
    assert_accessible(shop)
    assert_accessible(console)
    net.up()
    expect(shop.get_by_role("region", name="Diese Seite wird mit Alice geteilt")).to_be_visible(
        timeout=15_000
    )
    # The console is back too (rejoined, then the page again) before the customer stops.
    expect(console.locator("#status")).to_have_text(
        "Verbunden. Sie sehen die Seite des Kunden live.", timeout=15_000
    )
    stop.click()
    expect(console.locator("#status")).to_have_text("Sitzung beendet", timeout=15_000)
