"""Shared set-up for the browser benchmarks: a real `tandem serve`, Chromium, a shared session.

`plaintext=True` swaps in a build of the SDK and console that sends page content unencrypted
(`node sdk/build.mjs --bench-plaintext DIR`), served to the browsers by request interception:
production bundles cannot send plaintext, so the comparison needs its own build.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
from playwright.sync_api import Browser, Page, Playwright, Route, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "blue-kettle-orbit-42"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


TANDEM = [sys.executable, "-m", "tandem"]


def add_alice(data: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(
        [
            *TANDEM,
            "user",
            "add",
            "alice",
            "--data-dir",
            data,
            "--display-name",
            "Alice",
            "--no-mfa",
            "--own-account",  # the benchmark signs in as alice: its password, not temporary
            "--init",  # the first account makes the database (a second call finds it)
        ],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
        env=env,
    )
    # Agents join live sessions once trained (tandem.training): the benchmark's agent counts as
    # trained, as an operator records it for a test installation.
    subprocess.run(
        [
            *TANDEM,
            "training",
            "record",
            "alice",
            "--reason",
            "benchmark set-up",
            "--data-dir",
            data,
        ],
        text=True,
        check=True,
        capture_output=True,
        env=env,
    )


@contextlib.contextmanager
def serve(data: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """`tandem serve` on a free loopback port; yields the base URL once it answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [*TANDEM, "serve", "--port", str(port), "--data-dir", data],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"tandem serve did not start on {base}")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


@contextlib.contextmanager
def tandem_server() -> Iterator[str]:
    """`tandem serve` on a free loopback port with one agent, alice; yields the base URL."""
    with tempfile.TemporaryDirectory() as data:
        add_alice(data)
        with serve(data) as base:
            yield base


@contextlib.contextmanager
def build_of(ref: str) -> Iterator[Path]:
    """The SDK and console as git `ref` builds them (its own build.mjs, this checkout's
    node_modules), for a same-run comparison; yields the folder holding sdk/ and console/."""
    with tempfile.TemporaryDirectory() as out:
        archive = subprocess.run(
            ["git", "archive", ref, "sdk", "src/tandem/__init__.py"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", out], input=archive, check=True)
        (Path(out) / "sdk" / "node_modules").symlink_to(ROOT / "sdk" / "node_modules")
        subprocess.run(
            ["node", "build.mjs"], cwd=Path(out) / "sdk", check=True, capture_output=True
        )
        yield Path(out) / "src" / "tandem" / "server" / "static"


@contextlib.contextmanager
def plaintext_build() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            ["node", "build.mjs", "--bench-plaintext", out],
            cwd=ROOT / "sdk",
            check=True,
            capture_output=True,
        )
        yield Path(out)


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(
        executable_path=os.environ.get("TANDEM_CHROMIUM", "/usr/bin/chromium"), args=CHROMIUM_ARGS
    )


def use_build(page: Page, build: Path) -> None:
    """Serve `page` the SDK and console bundles of another build (a folder with sdk/tandem.js and
    console/console.js) instead of the server's."""

    def serve(path: Path) -> Callable[[Route], None]:
        return lambda route: route.fulfill(path=path, content_type="text/javascript")

    for bundle in ("sdk/tandem.js", "console/console.js"):
        page.route(f"**/{bundle}", serve(build / bundle))


@dataclass
class Shared:
    customer: Page
    agent: Page

    def close(self) -> None:
        self.customer.context.close()
        self.agent.context.close()


def share(
    browser: Browser,
    base: str,
    path: str,
    plaintext_dir: Path | None,
    agent_base: str | None = None,
    customer_script: str | None = None,
    agent_script: str | None = None,
    ready: str | None = None,
    ready_timeout_ms: float = 300_000,
) -> Shared:
    """Open `path` as the customer, sign in and join as the agent (on `agent_base`, default the
    same server), allow; return both pages. With `ready` (a CSS selector), the customer's page
    must have a match before the session starts, and the agent's mirror one (within
    `ready_timeout_ms`) before this returns: a page built by a script is shared once built."""
    customer = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()
    agent = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()
    if plaintext_dir is not None:
        for page in (customer, agent):
            use_build(page, plaintext_dir)
    if customer_script:
        customer.add_init_script(customer_script)
    if agent_script:
        agent.add_init_script(agent_script)
    customer.goto(f"{base}{path}")
    if ready is not None:
        customer.locator(ready).wait_for(state="attached")
    code = customer.evaluate("() => window.Tandem.start()")
    agent.goto(f"{agent_base or base}/console/")
    agent.get_by_label("Username").fill("alice")
    agent.get_by_label("Password").fill(PASSWORD)
    agent.get_by_role("button", name="Sign in").click()
    agent.get_by_label("Session code").fill(code)
    agent.get_by_role("button", name="Join").click()
    customer.get_by_role("dialog").get_by_role("button", name="Allow").click()
    agent.wait_for_selector('iframe[title="Customer view"]', state="attached")
    view = agent.frame_locator('iframe[title="Customer view"]')
    view.locator(ready or "body").wait_for(state="attached", timeout=ready_timeout_ms)
    return Shared(customer, agent)


def median_ratio(a: list[float], b: list[float]) -> float:
    """Median of the pairwise ratios a[i] / b[i] (pairs measured back to back)."""
    ratios = sorted(x / y for x, y in zip(a, b, strict=True))
    mid = len(ratios) // 2
    return ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2


Result = TypeVar("Result")


def alternating_rounds(
    measure: Callable[[Browser, str, Path | None], Result],
    describe: Callable[[Result], str],
    *,
    baseline: str,
    rounds: int,
) -> tuple[list[Result], list[Result]]:
    """Measure this checkout and `baseline`'s build (built once, served by one server of this
    checkout, in one browser) in `rounds` rounds, alternating which goes first so neither always
    runs on the warmer machine. `measure(browser, base_url, build)` gets build None for this
    checkout's SDK; each result is printed as it comes, in `describe`'s words. Returns this
    checkout's results and the baseline's, in round order (pairs measured back to back, as
    median_ratio takes them)."""
    this: list[Result] = []
    ref: list[Result] = []
    with contextlib.ExitStack() as stack:
        old = stack.enter_context(build_of(baseline))
        base = stack.enter_context(tandem_server())
        browser = launch(stack.enter_context(sync_playwright()))
        for r in range(rounds):
            pair: list[tuple[list[Result], Path | None]] = [(this, None), (ref, old)]
            for target, build in pair if r % 2 == 0 else pair[::-1]:
                target.append(measure(browser, base, build))
                name = "this" if build is None else baseline
                print(f"  round {r + 1}: {name}: {describe(target[-1])}", flush=True)
        browser.close()
    return this, ref
