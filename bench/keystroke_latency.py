"""Keystroke-to-agent-view latency, end to end, in real Chromium: encrypted vs plaintext.

Types N characters into the demo shop's (unmasked) search box and records, per keystroke, the
time from the customer's keydown to the agent's mirror showing it. Both pages run in one browser
on one machine, so their clocks (performance.timeOrigin + now) are comparable. Encrypted and
plaintext builds alternate in the same run; the ratio is the median of paired medians.

    .venv/bin/python bench/keystroke_latency.py [--keys 50] [--rounds 3] [--delay-ms 80]
        [--baseline main]

`--baseline REF` adds a third variant in each round: the SDK and console as git REF builds them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import build_of, launch, median_ratio, plaintext_build, share, tandem_server

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


def measure(
    browser: Browser,
    base: str,
    plaintext: Path | None,  # or any other build of the bundles (harness.use_build)
    keys: int,
    delay: int,
    agent_base: str | None = None,
) -> list[float]:
    session = share(browser, base, "/demo/", plaintext, agent_base)
    try:
        session.agent.frame_locator('iframe[title="Customer view"]').locator(
            "input[type=search]"
        ).wait_for(state="attached")
        session.agent.evaluate(AGENT_PROBE)
        session.customer.evaluate(CUSTOMER_PROBE)
        text = ("abcdefghij" * ((keys // 10) + 1))[:keys]
        session.customer.get_by_label("Search products").press_sequentially(text, delay=delay)
        session.agent.wait_for_function(f"() => window.__seen.length >= {keys}", timeout=30_000)
        typed = session.customer.evaluate("() => window.__typed")
        seen = session.agent.evaluate("() => window.__seen")
    finally:
        session.close()
    return [s - t for t, s in zip(typed, seen, strict=True)]


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return f"median {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms (n={len(ordered)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delay-ms", type=int, default=80)
    parser.add_argument("--baseline", help="a git ref whose SDK and console run as a third variant")
    args = parser.parse_args()
    encrypted: list[list[float]] = []
    plain: list[list[float]] = []
    baseline: list[list[float]] = []
    load_before = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        plain_dir = stack.enter_context(plaintext_build())
        old = stack.enter_context(build_of(args.baseline)) if args.baseline else None
        base = stack.enter_context(tandem_server())
        browser = launch(stack.enter_context(sync_playwright()))
        for _ in range(args.rounds):
            encrypted.append(measure(browser, base, None, args.keys, args.delay_ms))
            plain.append(measure(browser, base, plain_dir, args.keys, args.delay_ms))
            if old is not None:  # a build of the ref, served as the plaintext build is
                baseline.append(measure(browser, base, old, args.keys, args.delay_ms))
        browser.close()
    flat_e = [x for r in encrypted for x in r]
    flat_p = [x for r in plain for x in r]
    ratio = median_ratio(
        [statistics.median(r) for r in encrypted], [statistics.median(r) for r in plain]
    )
    print(f"keystroke -> agent view, encrypted: {summary(flat_e)} (target p95 ≤ 60 ms)")
    print(f"keystroke -> agent view, plaintext: {summary(flat_p)}")
    print(f"ratio encrypted/plaintext (median of {args.rounds} paired rounds): {ratio:.3f}")
    if baseline:
        print(f"keystroke -> agent view, SDK of {args.baseline}: "
              f"{summary([x for r in baseline for x in r])}")  # fmt: skip
        old_ratio = median_ratio(
            [statistics.median(r) for r in encrypted], [statistics.median(r) for r in baseline]
        )
        pairs = f"median of {args.rounds} paired rounds"
        print(f"ratio this/{args.baseline} ({pairs}): {old_ratio:.3f}")
    print(f"load average (1 min): {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
