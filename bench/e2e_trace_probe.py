"""A Chrome trace of one browser test's usual story, for what the product's pages cost per load.

Customer on the demo shop (the SDK), Get help; the agent's console signed in by cookie, Join,
the customer allows, the mirror shows the page and catches up; then both pages close. The whole
browser is traced (every renderer, the gpu-process, the browser process) with the V8 sampling
profiler; bench/e2e_trace_summary.py reads the trace (TRACE_OUT, default /tmp/e2e-trace.json):

    TRACE_OUT=/tmp/t.json .venv/bin/python -m pytest -q -p no:randomly -p no:cacheprovider \\
      -p tests.conftest bench/e2e_trace_probe.py
    .venv/bin/python bench/e2e_trace_summary.py /tmp/t.json

PROBE_N repeats the story (the first round warms nothing: each round has a new server and new
contexts, as each test has). Not a test; outside tests/ so no pass collects it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect, sync_playwright
from tests.conftest import ServerFactory
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, _party, caught_up, get_help, share

N = int(os.environ.get("PROBE_N", "1"))
OUT = os.environ.get("TRACE_OUT", "/tmp/e2e-trace.json")
TRACE = os.environ.get("PROBE_TRACE", "1") == "1"
EXTRA_ARGS = os.environ.get("PROBE_ARGS", "").split()
CATEGORIES = [
    "devtools.timeline",
    "disabled-by-default-devtools.timeline",
    "v8",
    "v8.execute",
    "disabled-by-default-v8.cpu_profiler",
    "blink",
    "cc",
    "gpu",
    "viz",
    "toplevel",
    "loading",
]


@pytest.fixture
def probe_browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS + EXTRA_ARGS
        )
        yield browser
        browser.close()


def test_story(probe_browser: Browser, server_factory: ServerFactory) -> None:
    if TRACE:
        probe_browser.start_tracing(path=OUT, categories=CATEGORIES)
    for _ in range(N):
        live = server_factory()
        customer, agent = _party(probe_browser), _party(probe_browser)
        customer.page.set_viewport_size({"width": 1000, "height": 760})
        agent.page.set_viewport_size({"width": 1480, "height": 960})
        customer.page.goto(f"{live.base}/demo/")
        view = share(customer, agent, live, get_help(customer))
        expect(view.locator("body")).to_be_attached()
        caught_up(customer, view)
        customer.context.close()
        agent.context.close()
    if TRACE:
        probe_browser.stop_tracing()
