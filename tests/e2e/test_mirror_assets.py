"""The agent's mirror shows the customer's page with its own images and stylesheet, and still
sends no request of its own to the site (issue 14, item 7): the customer's SDK fetches the
same-origin assets the recorded page uses and carries them inside the encrypted channel; the
console shows them from local URLs. The relay sees only ciphertext."""

from __future__ import annotations

import base64
import re
import struct
import zlib
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.conftest import RunningServer, add_user
from tests.e2e.conftest import OtherOrigin, Party, share, start_on
from tests.e2e.recorded import play_recording, recording_key, shared_recording, stop_recording

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
    # Content the page hides or masks (a policy's `hide`/`mask`, rrweb's .rr-block/.rr-mask):
    # the images it uses are never carried (the masked one is still in the recorded page).
    customer.page.evaluate(
        """() => document.querySelector('main').insertAdjacentHTML('beforeend',
            '<div class="rr-block"><img src="/demo/img/blocked-secret.svg" alt=""></div>' +
            '<div class="rr-mask">Private <img id="masked" ' +
            'src="/demo/img/masked-secret.svg"></div>')"""
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
    assert not [url for url in sdk_fetches if "-secret" in url], sdk_fetches
    expect(view.locator("#masked")).to_be_attached()
    assert not (view.locator("#masked").get_attribute("src") or "")
    assert all(url.startswith(live.base) for url in sdk_fetches), sdk_fetches

    # The relay saw the assets only encrypted: no SVG text or its base64 in any frame sent.
    tent = (DEMO / "img" / "tent.svg").read_bytes()
    assert sum(len(frame) for frame in sent_frames) > len(tent)
    for frame in sent_frames:
        assert b"<svg" not in frame and base64.b64encode(tent)[:40] not in frame
        assert b"Ridgeline" not in frame


def _png(width: int, height: int) -> bytes:
    """A real PNG of one colour (the browser must decode it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = b"".join(b"\x00" + b"\x20\x60\xa0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_a_recording_carries_the_pages_assets_and_its_player_fetches_none(
    live: RunningServer,
    other_origin: OtherOrigin,
    customer: Party,
    agent: Party,
    supervisor: Party,
    tmp_path: Path,
) -> None:
    office = supervisor  # a third browser: the admin, later the auditor
    key_file, key_id = recording_key(office, live, tmp_path)
    (other_origin.root / "photo.png").write_bytes(_png(40, 20))
    (other_origin.root / "tile.png").write_bytes(_png(4, 4))
    url = other_origin.page(
        "carried.html",
        '<style>.tiled { background: url("tile.png"); height: 30px; }</style>'
        '<h1>Carried page</h1><img id="photo" src="photo.png" alt="photo">'
        '<div class="tiled">Tiled</div>',
        live,
        title="Carried",
    )
    view = shared_recording(live, customer, agent, url, key_id, "Carried page")
    expect(view.locator("#photo")).to_have_attribute("src", re.compile(r"^blob:"))
    stop_recording(customer)

    office_requests: list[str] = []
    office.page.on("request", lambda request: office_requests.append(request.url))
    add_user(live.settings.data_dir, "aud", role="auditor", display_name="Aud")
    page = play_recording(live, office, key_file, key_id)
    player = page.frame_locator('iframe[title^="Recording "]')
    expect(player.get_by_role("heading", name="Carried page")).to_be_visible(timeout=20_000)
    photo = player.locator("#photo")
    expect(photo).to_have_attribute("src", re.compile(r"^blob:"))
    page.wait_for_function(
        """() => {
            const doc = document.querySelector('iframe[title^="Recording "]').contentDocument;
            const img = doc.querySelector('#photo');
            return img && img.complete && img.naturalWidth === 40;
        }"""
    )
    tiled: Any = player.locator(".tiled").evaluate("(el) => getComputedStyle(el).backgroundImage")
    assert tiled.startswith('url("blob:'), tiled
    assert not [u for u in office_requests if u.startswith(other_origin.origin)], office_requests
