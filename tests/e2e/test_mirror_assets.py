"""The agent's mirror shows the customer's page with its own images and stylesheet, and still
sends no request of its own to the site (issue 14, item 7): the customer's SDK fetches the
same-origin assets the recorded page uses and carries them inside the encrypted channel; the
console shows them from local URLs. The relay sees only ciphertext."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import Party, share, start_on

DEMO = Path(__file__).parents[2] / "src" / "tandem" / "server" / "static" / "demo"


def test_the_mirror_shows_the_shops_images_and_stylesheet_without_fetching_them(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    sent_frames: list[bytes] = []
    customer.page.on(
        "websocket",
        lambda ws: ws.on(
            "framesent",
            lambda payload: sent_frames.append(
                payload if isinstance(payload, bytes) else payload.encode()
            ),
        ),
    )
    sdk_fetches: list[str] = []  # what the customer's SDK fetched (not the page's own loads)
    customer.page.on(
        "request",
        lambda request: (
            sdk_fetches.append(request.url) if request.resource_type == "fetch" else None
        ),
    )
    agent_requests: list[str] = []
    agent.page.on("request", lambda request: agent_requests.append(request.url))

    code = start_on(customer, f"{live.base}/demo/")
    expect(customer.page.locator("img.art").first).to_be_visible()
    # Content the page hides (a policy's `hide`, rrweb's .rr-block): its image is never carried.
    customer.page.evaluate(
        """() => document.querySelector('main').insertAdjacentHTML('beforeend',
            '<div class="rr-block"><img src="/demo/img/blocked-secret.svg" alt=""></div>')"""
    )
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Ridgeline 2P Tent")).to_be_visible()

    # The product images show, from the bytes the customer's browser carried.
    art = view.locator("img.art").first
    expect(art).to_have_attribute("src", re.compile(r"^data:image/svg\+xml;base64,"))
    agent.page.wait_for_function(
        """() => {
            const doc = document.querySelector('iframe[title="Customer view"]').contentDocument;
            const imgs = [...doc.querySelectorAll('img.art')];
            return imgs.length === 6 && imgs.every((img) => img.complete && img.naturalWidth > 0);
        }"""
    )
    src = art.get_attribute("src") or ""
    carried = base64.b64decode(src.split(",", 1)[1])
    assert carried in {p.read_bytes() for p in (DEMO / "img").glob("*.svg")}

    # The stylesheet took effect in the mirror as on the customer's page.
    style = """(el) => { const s = getComputedStyle(el);
        return [s.display, s.backgroundColor, s.fontFamily, s.gridTemplateColumns !== 'none']; }"""
    theirs: Any = customer.page.locator("#products").evaluate(style)
    ours: Any = view.locator("#products").evaluate(style)
    assert ours == theirs and ours[0] == "grid", (ours, theirs)
    header: Any = customer.page.locator("header").first.evaluate(style)
    assert view.locator("header").first.evaluate(style) == header

    # No request from the agent's browser to the site (the console's own files and API only).
    site = [url for url in agent_requests if "/demo/" in url]
    assert not site, site
    # The SDK fetched the shop's own assets, not the blocked one (nor anything elsewhere).
    assert any(url.endswith("/demo/img/tent.svg") for url in sdk_fetches), sdk_fetches
    assert not [url for url in sdk_fetches if "blocked-secret" in url]
    assert all(url.startswith(live.base) for url in sdk_fetches), sdk_fetches

    # The relay saw the assets only encrypted: no SVG text or its base64 in any frame sent.
    tent = (DEMO / "img" / "tent.svg").read_bytes()
    assert sum(len(frame) for frame in sent_frames) > len(tent)
    for frame in sent_frames:
        assert b"<svg" not in frame and base64.b64encode(tent)[:40] not in frame
        assert b"Ridgeline" not in frame
