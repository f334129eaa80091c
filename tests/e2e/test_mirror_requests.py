"""The hostile mirror makes the agent's browser send no requests (issue 14, item 7).

The customer's page points its CSS backgrounds, fonts, images and resource hints at a listener on
another port. The customer's own browser fetches them (with the page as Referer); the agent's
console replays the page and must fetch none of them (its requests would carry no Referer: the
console sends none), nor load Tandem's API as a sub-resource with the agent's cookie.
"""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import RunningServer, add_user, free_port
from tests.e2e.conftest import OtherOrigin, Party, caught_up, share, start_on
from tests.e2e.recorded import play_recording, recording_key, shared_recording, stop_recording

# sdk/src/console/assets.ts's MIRROR_CSP.
MIRROR_CSP = (
    "default-src 'none'; img-src data: blob:; font-src data: blob:; media-src data: blob:; "
    "style-src 'unsafe-inline' data: blob:"
)


class Listener:
    """An HTTP server that answers everything with an empty 200 and remembers who asked."""

    def __init__(self) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.requests: list[tuple[str, str]] = []
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                listener.requests.append((self.path, self.headers.get("referer", "")))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        # close() waits for serve_forever to look at its stop flag: every 0.05 s, not 0.5 s.
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def hostile_page(listener: str, server: str) -> str:
    return f"""
<style>
  @font-face {{ font-family: Spy; src: url("{listener}/font.woff2") format("woff2"); }}
  @import url("{listener}/import.css");
  body {{ background: url({listener}/background.png); font-family: Spy, sans-serif; }}
  .set {{ background-image: image-set("{listener}/set.png" 1x); }}
  .me {{ background: url("{server}/api/me"); }}
</style>
<link rel="prefetch" href="{listener}/prefetch">
<link rel="preload" as="image" href="{listener}/preload.png">
<link rel="stylesheet" href="{listener}/sheet.css">
<h1 class="set me">Hostile assets</h1>
<img src="{listener}/image.png" srcset="{listener}/srcset.png 2x" alt="pixel">
<div style="background: url('{listener}/inline.png')">Inline style</div>
<video poster="{listener}/poster.png"></video>
<svg><image href="{listener}/svg.png" width="10" height="10"></image></svg>
"""


def test_the_agent_s_browser_fetches_nothing_the_customer_s_page_points_at(
    live: RunningServer,
    other_origin: OtherOrigin,
    listener: Listener,
    customer: Party,
    agent: Party,
) -> None:
    url = other_origin.page(
        "assets.html", hostile_page(listener.origin, live.base), live, title="Assets"
    )
    code = start_on(customer, url)
    # The customer's browser loads its own page's resources: the listener works.
    customer.page.wait_for_function("() => document.fonts.status === 'loaded'")
    assert any(path == "/image.png" for path, _ in listener.requests)
    api_requests: list[str] = []  # the kind of each request for /api/me the agent's browser made
    agent.page.on(
        "request",
        lambda request: (
            api_requests.append(request.resource_type) if "/api/me" in request.url else None
        ),
    )
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Hostile assets")).to_be_visible()
    expect(view.get_by_text("Inline style")).to_be_visible()
    # The customer changes the page: later mutations carry addresses too.
    customer.page.evaluate(
        f"""() => {{
            const img = document.createElement('img');
            img.src = '{listener.origin}/late.png';
            document.body.append(img);
            const h1 = document.querySelector('h1');
            h1.style.backgroundImage = 'url({listener.origin}/late-style.png)';
            const p = document.createElement('p');
            p.textContent = 'Late paragraph';
            document.body.append(p);
        }}"""
    )
    expect(view.get_by_text("Late paragraph")).to_be_visible()
    from_agent = [
        (path, referer) for path, referer in listener.requests if other_origin.origin not in referer
    ]
    assert not from_agent, f"the agent's browser fetched {from_agent}"
    # /api/me only as the console's own fetch, never as an image from the mirror (with the cookie).
    assert set(api_requests) <= {"fetch", "xhr"}, api_requests


def _from_elsewhere(listener: Listener, site: OtherOrigin) -> list[tuple[str, str]]:
    """Requests the listener got from anyone but the customer's page (which sends its Referer)."""
    return [(path, referer) for path, referer in listener.requests if site.origin not in referer]


def test_an_auditor_s_playback_fetches_nothing_the_recorded_page_points_at(
    live: RunningServer,
    other_origin: OtherOrigin,
    listener: Listener,
    customer: Party,
    agent: Party,
    supervisor: Party,
    tmp_path: Path,
) -> None:
    office = supervisor  # a third browser: the admin, later the auditor
    key_file, key_id = recording_key(office, live, tmp_path)
    body = hostile_page(listener.origin, live.base)
    url = other_origin.page("recorded.html", body, live, title="Recorded")
    view = shared_recording(live, customer, agent, url, key_id, "Hostile assets")
    customer.page.evaluate(
        f"""() => {{
            const img = document.createElement('img');
            img.src = '{listener.origin}/recorded-late.png';
            document.body.append(img);
            const p = document.createElement('p');
            p.textContent = 'Recorded paragraph';
            document.body.append(p);
        }}"""
    )
    expect(view.get_by_text("Recorded paragraph")).to_be_visible()
    stop_recording(customer)

    add_user(live.settings.data_dir, "aud", role="auditor", display_name="Aud")
    page = play_recording(live, office, key_file, key_id)
    player = page.frame_locator('iframe[title^="Recording "]')
    expect(player.get_by_role("heading", name="Hostile assets")).to_be_visible(timeout=20_000)
    expect(player.get_by_text("Recorded paragraph")).to_be_visible(timeout=20_000)
    assert not _from_elsewhere(listener, other_origin), listener.requests
    # The player's document has the mirror's own policy too: nothing even from Tandem's server.
    page.evaluate(MISSED.replace("Customer view", "Recording "), live.base)
    page.wait_for_function("() => window.__mirrorViolations.length === 2")
    policies = {policy for _, policy in page.evaluate("() => window.__mirrorViolations")}
    assert policies == {MIRROR_CSP}, policies
    office.csp_violations.clear()


def test_a_frames_srcdoc_and_svgs_presentation_attributes_fetch_nothing_in_the_mirror(
    live: RunningServer,
    other_origin: OtherOrigin,
    listener: Listener,
    customer: Party,
    agent: Party,
) -> None:
    """Addresses the neutraliser did not know: a frame's ``srcdoc`` (a whole document, replayed as
    it was, its images and styles loading) and SVG's url-valued attributes (``fill``, ``mask``,
    ``filter``, ``clip-path``, markers, ``cursor``): the agent's browser fetched them, from the
    tracker (blocked by the console's CSP, which had to be hit) or from Tandem's own server (let
    through). A same-document reference (``url(#gradient)``) fetches nothing and stays."""
    spy, own = listener.origin, live.base
    srcdoc = (
        f"<p>In the frame</p><img src='{spy}/srcdoc.png'><img src='{own}/srcdoc-own.png'>"
        f"<style>p{{background:url({own}/srcdoc-style.png)}}</style>"
    )
    body = f"""
<h1>Hostile SVG</h1>
<iframe id="framed" srcdoc="{srcdoc}"></iframe>
<svg width="200" height="60" xmlns:xlink="http://www.w3.org/1999/xlink">
  <defs>
    <linearGradient id="shade"><stop offset="0" stop-color="#07c"/></linearGradient>
  </defs>
  <rect width="10" height="10" fill="url({spy}/fill.svg#p)" stroke="url({own}/stroke.svg#p)"
    filter="url({spy}/filter.svg#f)" mask="url({own}/mask.svg#m)" clip-path="url({spy}/clip.svg#c)"
    marker-start="url({own}/marker.svg#m)" cursor="url({spy}/cursor.png), auto"/>
  <path d="M0 0 L10 10" marker-end="url({spy}/marker-end.svg#m)"/>
  <image width="10" height="10"><set attributeName="href" to="{own}/set.png" begin="0s"/></image>
  <rect id="shaded" x="20" width="10" height="10" fill="url(#shade)"/>
</svg>
<div style="background-image: url(#shade); width: 4px; height: 4px"></div>
"""
    url = other_origin.page("svg.html", body, live, title="SVG")
    code = start_on(customer, url)
    assert any(path == "/fill.svg" for path, _ in listener.requests)  # the page's own browser
    requests: list[tuple[str, str]] = []
    agent.page.on("request", lambda request: requests.append((request.resource_type, request.url)))
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Hostile SVG")).to_be_visible()
    expect(view.locator("#shaded")).to_have_attribute("fill", "url(#shade)")
    # Later changes carry them too.
    customer.page.evaluate(
        f"""() => {{
            document.getElementById('framed').setAttribute('srcdoc', "<img src='{own}/late.png'>");
            document.getElementById('shaded').setAttribute('mask', 'url({own}/late-mask.svg#m)');
            const p = document.createElement('p');
            p.textContent = 'Late paragraph';
            document.body.append(p);
        }}"""
    )
    expect(view.get_by_text("Late paragraph")).to_be_visible()
    # The mirror's frame holds what rrweb carried of the frame's document, never its srcdoc.
    expect(view.locator("#framed")).not_to_have_attribute("srcdoc", re.compile(".*"))
    consoles = {"document", "stylesheet", "script", "fetch"}  # the console's own loads
    mirrored = [
        (kind, address)
        for kind, address in requests
        if address.startswith(spy) or (address.startswith(own) and kind not in consoles)
    ]
    assert not mirrored, f"the mirror fetched {mirrored}"
    assert not _from_elsewhere(listener, other_origin), listener.requests


MISSED = """(base) => {
    // What the neutraliser would let through, added where the replayer builds the page.
    const doc = document.querySelector('iframe[title^="Customer view"]').contentDocument;
    window.__mirrorViolations = [];
    doc.addEventListener('securitypolicyviolation', (event) =>
        window.__mirrorViolations.push([event.blockedURI, event.originalPolicy]));
    const img = Object.assign(doc.createElement('img'), {src: base + '/missed.png'});
    const div = doc.createElement('div');
    div.style.cssText = `width: 4px; height: 4px; background-image: url(${base}/missed-bg.png)`;
    doc.body.append(img, div);
}"""


def test_what_the_neutraliser_misses_is_not_fetched_from_the_console_s_own_server(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """The console's policy lets its own files load (``img-src 'self'``...), and the mirror is a
    same-origin frame: an address the neutraliser missed (a frame's ``srcdoc`` did, before) was
    fetched from Tandem's server, with the agent's cookie. The mirror's document has a policy of
    its own, given before any event and kept when rrweb rebuilds it for the next page: nothing
    from any server. The test adds such addresses where the replayer builds the page."""
    url = other_origin.page("plain.html", "<h1>Plain page</h1>", live, title="Plain")
    code = start_on(customer, url)
    answered: list[str] = []
    agent.page.on(
        "requestfinished",
        lambda request: answered.append(request.url) if "missed" in request.url else None,
    )
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Plain page")).to_be_visible()
    customer.page.goto(url)  # the next page: rrweb rebuilds the mirror's document
    caught_up(customer, view)
    agent.page.evaluate(MISSED, live.base)
    agent.page.wait_for_function("() => window.__mirrorViolations.length === 2")
    violations = agent.page.evaluate("() => window.__mirrorViolations")
    assert sorted(uri for uri, _ in violations) == [
        f"{live.base}/missed-bg.png",
        f"{live.base}/missed.png",
    ]
    assert all(policy == MIRROR_CSP for _, policy in violations), violations
    assert not answered, answered
    # What the browser said of them (the agent fixture fails a test on any other violation).
    assert len(agent.csp_violations) == 2, agent.csp_violations
    agent.csp_violations.clear()
