"""Masking policies in a real browser: the site's policy, tightened by the organisation's.

A hostile page hides secrets everywhere the recorder looks (shadow DOM, a same-origin iframe,
attributes, the URL, text split over nodes, a field added later, pasted text). Every frame on the
wire, everything the agent decrypted and the agent's DOM are searched for each secret.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import ServerFactory
from tests.e2e.conftest import OtherOrigin, Party, agent_plaintext, caught_up, share

SITE_POLICY = {
    "version": 1,
    "mask": [".balance"],
    "hide": ["#chat"],
    "unmask": ["#nickname"],
    "detectors": {"email": True},
}
ORG_POLICY = {
    "version": 1,
    "hide": ["#org-hidden"],
    "unmask": ["#other"],
    "detectors": {"ssn": True},
}

HOSTILE = f"""
<script type="application/json" id="tandem-policy">{json.dumps(SITE_POLICY)}</script>
<h1>Account overview</h1>
<p class="balance" title="Balance 9,999.01" data-amount="9999.01">Your balance: 9,999.01 GBP</p>
<div id="chat">Chat with Gertrude about the refund</div>
<div id="org-hidden">Org-hidden-lighthouse</div>
<p>Contact: hilda.secret@example.org, SSN 123-45-6789</p>
<p id="split">Card: <b>4111</b> <b>1111</b> <b>1111</b> <b>1111</b></p>
<label for="nickname">Nickname</label><input id="nickname">
<label for="other">Other</label><input id="other">
<input id="titled" title="jane.doe@example.org" placeholder="Card 4111 1111 1111 1111">
<a href="/next?session=qwerty-token#frag-secret">Next</a>
<div id="host"></div>
<iframe id="frame" srcdoc="<p>Inner card 5500 0000 0000 0004</p><input id='inner'>"></iframe>
<div id="lazy-slot"></div>
<script src="hostile.js"></script>
"""
HOSTILE_JS = """
const root = document.getElementById('host').attachShadow({mode: 'open'});
root.innerHTML = '<p>Shadow card 4111 1111 1111 1111</p><input id="shadow-input">';
setTimeout(() => {
  document.getElementById('lazy-slot').innerHTML =
    '<label for="lazy">Lazy</label><input id="lazy" value="lazy-secret-value">';
}, 600);
"""

SECRETS = [
    "9,999.01",
    "9999.01",
    "Your balance",
    "Gertrude",
    "Org-hidden-lighthouse",
    "hilda.secret",
    "123-45-6789",
    "jane.doe",
    "qwerty-token",
    "frag-secret",
    "zulu-token-123",
    "lazy-secret-value",
    "pasted-secret-ppp",
    "shadow-typed-sss",
    "inner-typed-iii",
    "4111 1111",
    "4111111111111111",
    "5500 0000",
    "<b>4111</b>",
]


@pytest.fixture
def org_policy(tmp_path: Path) -> Path:
    path = tmp_path / "org-policy.json"
    path.write_text(json.dumps(ORG_POLICY))
    return path


def test_site_and_organisation_policies_hold_on_a_hostile_page(
    server_factory: ServerFactory,
    other_origin: OtherOrigin,
    org_policy: Path,
    customer: Party,
    agent: Party,
) -> None:
    server = server_factory(allow_origins=(other_origin.origin,), policy_file=org_policy)
    (other_origin.root / "hostile.js").write_text(HOSTILE_JS)
    url = other_origin.page("hostile.html", HOSTILE, server, title="Overview")
    customer.page.goto(url + "?email=hilda.secret@example.org&t=zulu-token-123#frag-secret")
    code = customer.page.evaluate("() => window.Tandem.start()")
    view = share(customer, agent, server, code)

    page = customer.page
    page.locator("#nickname").press_sequentially("Pancake", delay=10)
    page.locator("#other").focus()
    page.keyboard.insert_text("pasted-secret-ppp")  # as a paste: one input event
    page.locator("#host #shadow-input").press_sequentially("shadow-typed-sss", delay=5)
    page.frame_locator("#frame").locator("#inner").press_sequentially("inner-typed-iii", delay=5)
    expect(view.locator("#lazy")).to_be_attached(timeout=10_000)
    expect(view.locator("#nickname")).to_have_value("Pancake")
    # The organisation unmasking #other must not work: it can only add restrictions.
    expect(view.locator("#other")).to_have_value("•" * 8)  # the fixed-width placeholder
    caught_up(customer, view)

    wire = (customer.frames.everything() + agent.frames.everything()).decode("utf-8", "replace")
    decrypted = agent_plaintext(agent)
    dom = agent.page.content() + view.locator("html").inner_html()
    assert "Pancake" in decrypted and "Overview" in decrypted, "positive control"
    for secret in SECRETS:
        for place, text in (("wire", wire), ("decrypted stream", decrypted), ("agent DOM", dom)):
            assert secret not in text, f"{secret!r} reached the agent ({place})"
    assert not re.search(r"4111\D{0,12}1111", decrypted), "split card number reached the agent"
    # The page address arrived without its query and fragment.
    assert "hostile.html" in decrypted and "hostile.html?" not in decrypted


def test_an_invalid_site_policy_is_refused_with_the_field_named(
    live_server_for_policy: tuple[str, Party],
) -> None:
    base, customer = live_server_for_policy
    customer.page.goto(f"{base}/demo/")
    message = customer.page.evaluate(
        """() => window.Tandem.start({policy: {version: 1, mask: ".x"}})
            .then(() => "started", (e) => e.message)"""
    )
    assert message == "Tandem: policy.mask: must be a list of CSS selectors"
    expect(customer.page.get_by_role("alert")).to_contain_text("policy.mask")
    assert not any(b'"type":"create"' in f for f in customer.frames.sent), "a session was opened"


@pytest.fixture
def live_server_for_policy(server_factory: ServerFactory, customer: Party) -> tuple[str, Party]:
    return server_factory().base, customer
