"""Attack review of the ninth masking review (docs/security.md): a same-origin frame inside a
web component's shadow root, whose document the ninth review's watch never reached (a frame's
`load` is not composed: it never leaves the shadow root for the document's capture listener, and
the scan of a document's frames does not enter shadow roots)."""

from __future__ import annotations

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party
from tests.e2e.test_masking_ninth import framed_password_shown_before_sharing
from tests.e2e.test_masking_secret_fields import MASK_PLACEHOLDER

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
    shown = framed_password_shown_before_sharing(
        live,
        other_origin,
        customer,
        agent,
        ("shadow-framed-login.html", SHADOW_FRAMED),
        "framed-login iframe",
    )
    assert shown.locator("#pw").input_value() == MASK_PLACEHOLDER
