"""The built-in demo shop's pages, each with its recording key pinned.

DEMO ONLY: the Tandem server serves the demo shop itself, so here the relay *is* the site, and the
page gets its recording key pin from the server: the `#tandem-policy` tag of each page is filled
at serve time with the default organisation's current recording key id. On a real site the
site's own page pins the key (docs/recordings.md): a pin that came from the Tandem server would
protect against nothing, since the SDK refuses keys the *site* has not pinned precisely because
the server is not trusted.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from tandem import crypto
from tandem.access import Grant
from tandem.server.http import services_of
from tandem.storage.base import DEFAULT_ORG

DEMO = Path(__file__).parent / "static" / "demo"
PAGE_NAME = re.compile(r"^[a-z]{1,32}$")
PLACEHOLDER = '<script type="application/json" id="tandem-policy">{"version": 1}</script>'
"""In each demo page's head, before the SDK's script tag (the SDK reads it as it loads)."""


async def demo_page(request: Request) -> Response:
    """`/demo/` and `/demo/<page>.html`, with the default organisation's recording key pinned.
    Anything else under /demo/ is a static file."""
    name = request.path_params.get("page", "index")
    path = DEMO / f"{name}.html"
    if not PAGE_NAME.match(name) or not path.is_file():
        return HTMLResponse("Not found", status_code=404)
    services = services_of(request)
    org = await services.storage.get_org(Grant.server(DEFAULT_ORG, "demo page"))
    pins = [crypto.recording_key_id(org.recording_key)] if org and org.recording_key else []
    tag = json.dumps({"version": 1, "recording_keys": pins})
    page = path.read_text().replace(
        PLACEHOLDER, f'<script type="application/json" id="tandem-policy">{tag}</script>', 1
    )
    return HTMLResponse(page, headers={"cache-control": "no-store"})
