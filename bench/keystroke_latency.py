"""Keystroke-to-agent-view latency, end to end, in real Chromium.

Starts `tandem serve` on a free loopback port, signs an agent in, shares the demo shop, types
N characters into the shop's (unmasked) search box and records, for each keystroke, the time from
the customer's keydown to the moment the agent's mirror shows it. Both pages run in one browser on
one machine, so their clocks (performance.timeOrigin + now) are comparable.

    .venv/bin/python bench/keystroke_latency.py [--keys 50] [--delay-ms 80]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import httpx
from playwright.sync_api import sync_playwright

PASSWORD = "blue-kettle-orbit-42"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
AGENT_PROBE = """() => {
    window.__seen = [];
    const tick = () => {
        const frame = document.querySelector('iframe[title="Customer view"]');
        const input = frame && frame.contentDocument &&
            frame.contentDocument.querySelector('input[type=search]');
        const n = input ? input.value.length : 0;
        const now = performance.timeOrigin + performance.now();
        while (window.__seen.length < n) window.__seen.push(now);
        requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
}"""
CUSTOMER_PROBE = """() => {
    window.__typed = [];
    document.addEventListener('keydown',
        () => window.__typed.push(performance.timeOrigin + performance.now()), true);
}"""


@contextlib.contextmanager
def tandem_server() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as data:
        tandem = [sys.executable, "-m", "tandem"]
        subprocess.run(
            [*tandem, "user", "add", "alice", "--data-dir", data, "--display-name", "Alice"],
            input=PASSWORD + "\n",
            text=True,
            check=True,
            capture_output=True,
        )
        process = subprocess.Popen(
            [*tandem, "serve", "--port", str(port), "--data-dir", data],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(200):
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                time.sleep(0.05)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=20)


def measure(keys: int, delay_ms: int) -> list[float]:
    with tandem_server() as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=os.environ.get("TANDEM_CHROMIUM", "/usr/bin/chromium"),
            args=CHROMIUM_ARGS,
        )
        customer = browser.new_context().new_page()
        agent = browser.new_context().new_page()
        customer.goto(f"{base}/demo/")
        code = customer.evaluate("() => window.Tandem.start()")
        agent.goto(f"{base}/console/")
        agent.get_by_label("Username").fill("alice")
        agent.get_by_label("Password").fill(PASSWORD)
        agent.get_by_role("button", name="Sign in").click()
        agent.get_by_label("Session code").fill(code)
        agent.get_by_role("button", name="Join").click()
        customer.get_by_role("dialog").get_by_role("button", name="Allow").click()
        agent.wait_for_selector('iframe[title="Customer view"]', state="attached")
        agent.frame_locator('iframe[title="Customer view"]').locator("input[type=search]").wait_for(
            state="attached"
        )
        agent.evaluate(AGENT_PROBE)
        customer.evaluate(CUSTOMER_PROBE)
        text = ("abcdefghij" * ((keys // 10) + 1))[:keys]
        customer.get_by_label("Search products").press_sequentially(text, delay=delay_ms)
        agent.wait_for_function(f"() => window.__seen.length >= {keys}", timeout=30_000)
        typed = customer.evaluate("() => window.__typed")
        seen = agent.evaluate("() => window.__seen")
        browser.close()
    return [s - t for t, s in zip(typed, seen, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--delay-ms", type=int, default=80)
    args = parser.parse_args()
    latencies = sorted(measure(args.keys, args.delay_ms))
    p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
    print(f"keystrokes: {len(latencies)}")
    print(
        f"keystroke -> agent view: median {statistics.median(latencies):.1f} ms, "
        f"p95 {p95:.1f} ms, min {latencies[0]:.1f} ms, max {latencies[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
