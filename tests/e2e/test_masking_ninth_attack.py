"""Attack review of the ninth masking review (docs/security.md): a same-origin frame inside a
web component's shadow root, whose document the ninth review's watch never reached (a frame's
`load` is not composed: it never leaves the shadow root for the document's capture listener, and
the scan of a document's frames does not enter shadow roots)."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, caught_up, share
from tests.e2e.test_masking_ninth import FRAME
from tests.e2e.test_masking_secret_fields import MASK_PLACEHOLDER, _assert_never_reached

# A component that frames its login form (a payment or sign-in widget), in its shadow root.
SHADOW_FRAMED = """<h1>Sign in</h1>
<framed-login></framed-login>
<p>After the form</p>
<script>
  customElements.define("framed-login", class extends HTMLElement {
    connectedCallback() {
      this.attachShadow({ mode: "open" }).innerHTML =
        '<iframe src="login-frame.html" width="400" height="120"></iframe>';
    }
  });
</script>"""


def test_a_password_a_frame_in_a_shadow_root_shows_before_sharing_stays_hidden(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    (other_origin.root / "login-frame.html").write_text(FRAME)
    page = customer.page
    page.goto(other_origin.page("shadow-framed-login.html", SHADOW_FRAMED, live, title="Sign in"))
    inner = page.frame_locator("framed-login iframe")
    inner.locator("#suggest").click()
    inner.locator("#show").click()
    expect(inner.locator("#pw")).to_have_attribute("type", "text")
    view = share(customer, agent, live, page.evaluate("() => window.Tandem.start()"))
    expect(view.get_by_text("After the form")).to_be_attached()
    inner.locator("#user").press_sequentially("jane", delay=5)
    shown = view.frame_locator("framed-login iframe")
    expect(shown.locator("#user")).to_have_value("jane")
    caught_up(customer, view)
    _assert_never_reached(agent, view, "Narwhal", "5521")
    assert shown.locator("#pw").input_value() == MASK_PLACEHOLDER
