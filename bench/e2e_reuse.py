"""A pytest plugin that runs browser tests in reused browser contexts, to measure what that saves.

    PYTHONPATH=bench .venv/bin/python bench/treecpu.py .venv/bin/python -m pytest -q -m e2e \\
      -p no:randomly -p e2e_reuse tests/e2e/test_control.py …

A measurement, NOT an isolation-safe mode for the suite: it patches tests/e2e/conftest.py so that
each party's context comes from a per-process pool (one page kept open in each, on a 127.0.0.1
page, so Chromium launched with --renderer-process-limit=2 places the test's pages in that kept
page's renderer process instead of starting new ones), and a test's `context.close()` closes its
pages and clears cookies and permissions instead. It does not clear storage, clock or context
init scripts (a test that installs `page.clock` would leak it into the next test): use it only on
tests that set none. Set E2E_REUSE_LIMIT=0 to reuse contexts without the process limit.
Figures: bench/RESULTS.md, "Browser pass: reused contexts".
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext

KEEPER_URL = "http://127.0.0.1:9/kept-open"  # fulfilled by a route: no server behind it


def pytest_configure(config: pytest.Config) -> None:
    from tests.e2e import conftest

    if os.environ.get("E2E_REUSE_LIMIT", "1") != "0":
        conftest.CHROMIUM_ARGS.append("--renderer-process-limit=2")
    fresh_party = conftest._party
    free: list[BrowserContext] = []
    keepers: dict[int, Any] = {}

    def pooled(browser: Browser) -> Any:
        if free:
            context = free.pop()
        else:
            context = browser.new_context(viewport={"width": 1200, "height": 850})
            keeper = context.new_page()
            keeper.route(KEEPER_URL, lambda route: route.fulfill(body="<p>kept open</p>"))
            keeper.goto(KEEPER_URL)
            keepers[id(context)] = keeper

            def reset(*_: Any, context: BrowserContext = context, **__: Any) -> None:
                for page in context.pages:
                    if page is not keepers[id(context)]:
                        page.close()
                context.clear_cookies()
                context.clear_permissions()
                free.append(context)

            context.close = reset  # type: ignore[method-assign]
        original = browser.new_context
        browser.new_context = lambda **_: context  # type: ignore[method-assign]
        try:
            return fresh_party(browser)
        finally:
            browser.new_context = original  # type: ignore[method-assign]

    conftest._party = pooled
