"""The CPU of a browser test's page loads, fresh browser contexts against reused ones.

Each of PROBE_N rounds opens a customer page (a page of a second origin with the SDK, then
`Tandem.start()`) and an agent console signed in (the cookie of a real /api/login, then the
console page), as nearly every browser test does, and closes both pages. Variants, by environment:

- PROBE_MODE=fresh: two new browser contexts a round (what tests/e2e/conftest.py does);
  =reuse: the same two contexts every round, pages closed and cookies cleared between rounds;
  =keep: reused, and each context keeps one page open on a 127.0.0.1 page, so that with
  PROBE_ARGS=--renderer-process-limit=2 Chromium puts every later page of that context into the
  kept page's renderer process instead of starting one (per page, and per COOP swap).
- PROBE_SERVERS=new: a new server (a new port, so new URLs) every round, as each test has;
  =same: one server, so the bundles' URLs repeat (HTTP and V8 code caches can hit).
- PROBE_WHAT=both | console | sdk: which page loads a round makes.

Run under bench/treecpu.py, variants alternating, and compare the tree's CPU (PROBE_N=2 gives
the fixed cost: interpreter, collection, browser launch):

    for mode in fresh reuse keep; do PROBE_MODE=$mode PROBE_ARGS=--renderer-process-limit=2 \\
      .venv/bin/python bench/treecpu.py .venv/bin/python -m pytest -q -p no:randomly \\
      -p no:cacheprovider -p tests.conftest bench/e2e_page_load_probe.py; done

Not a test (it asserts only that the steps worked), and outside tests/ so no pass collects it.
Figures: bench/RESULTS.md, "Browser pass: reused contexts".
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, expect, sync_playwright
from tests.conftest import ServerFactory
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, OtherOrigin, open_console_as

N = int(os.environ.get("PROBE_N", "12"))
MODE = os.environ.get("PROBE_MODE", "fresh")
SERVERS = os.environ.get("PROBE_SERVERS", "new")
WHAT = os.environ.get("PROBE_WHAT", "both")
EXTRA_ARGS = os.environ.get("PROBE_ARGS", "").split()


@pytest.fixture
def probe_browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS + EXTRA_ARGS
        )
        yield browser
        browser.close()


class _Party:
    """What open_console_as needs of a tests/e2e Party: its page."""

    def __init__(self, page: Any) -> None:
        self.page = page


def test_page_loads(probe_browser: Browser, server_factory: ServerFactory, tmp_path: Path) -> None:
    assert MODE in ("fresh", "reuse", "keep") and SERVERS in ("new", "same"), (MODE, SERVERS)
    root = tmp_path / "site"
    root.mkdir()
    (root / "keep.html").write_text("<p>kept open</p>")
    contexts: list[BrowserContext] = []
    server = site = None
    for i in range(N):
        if server is None or SERVERS == "new":
            if site is not None:
                site.close()
            site = OtherOrigin(root)
            # one server for every round must not refuse the rounds' waiting sessions
            server = server_factory(
                allow_origins=(site.origin,),
                max_waiting_per_address=1000,
                max_waiting_per_site=1000,
            )
        if MODE == "fresh" or not contexts:
            for context in contexts:
                context.close()
            contexts = [
                probe_browser.new_context(viewport={"width": 1200, "height": 850}) for _ in range(2)
            ]
            if MODE == "keep":
                for context in contexts:
                    context.new_page().goto(f"{site.origin}/keep.html")
        else:
            for context in contexts:
                context.clear_cookies()
        customer, agent = (context.new_page() for context in contexts)
        if WHAT in ("both", "sdk"):
            customer.goto(site.page(f"p{i}.html", "<button>Buy</button>", server))
            assert len(customer.evaluate("() => window.Tandem.start()")) >= 12
        if WHAT in ("both", "console"):
            open_console_as(_Party(agent), server, "alice")  # type: ignore[arg-type]
            expect(agent.get_by_label("Session code")).to_be_visible()
        customer.close()
        agent.close()
    for context in contexts:
        context.close()
    assert site is not None
    site.close()
