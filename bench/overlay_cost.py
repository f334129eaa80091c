"""The customer's main-thread time per second of sharing a large page, while nothing happens:
this checkout's SDK against another git ref's, measured in the same run.

While sharing, the customer's overlay outlines what the agent cannot see (sdk/src/share/
outlines.ts). The page is masking_cost.py's large page (by default a 5,000-field form shown with
`data-tandem-unmask`, one field in 25 a password, 200 product cards, web components, frames);
each round shares it once per variant (alternating), waits until the agent's mirror shows it,
lets it settle for `--settle` s, then measures over `--seconds` s of quiet sharing (no input, no
change): Chromium's TaskDuration (CDP Performance.getMetrics: main-thread time in tasks) per
second, and the longest task (a `longtask` PerformanceObserver). Ratios are medians of paired
ratios (this/ref, same round).

    .venv/bin/python bench/overlay_cost.py [--baseline 75f728ec] [--rounds 3] [--seconds 10]
        [--fields 5000] [--cards 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from playwright.sync_api import Browser

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import alternating_rounds, median_ratio, share
from masking_cost import BIG_PAGE, longest_task, task_ms


def measure(
    browser: Browser,
    base: str,
    build: Path | None,
    opts: dict[str, int],
    settle: float,
    seconds: float,
) -> tuple[float, float]:
    """One shared session: (main-thread ms per second of quiet sharing, longest task ms)."""
    shared = share(
        browser,
        base,
        "/demo/",
        build,
        customer_script=f"({BIG_PAGE})({json.dumps(opts)})",
        ready="#big-done",
    )
    customer = shared.customer
    try:
        customer.locator("[data-tandem-ui]").first.wait_for(state="attached")
        customer.wait_for_timeout(settle * 1000)
        cdp = customer.context.new_cdp_session(customer)
        cdp.send("Performance.enable")
        since = customer.evaluate("() => performance.now()")
        before = task_ms(cdp)
        customer.wait_for_timeout(seconds * 1000)
        spent = task_ms(cdp) - before
        elapsed = customer.evaluate("() => performance.now()") - since
        return 1000 * spent / elapsed, longest_task(customer, since)
    finally:
        shared.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="75f728ec", help="the git ref to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="quiet sharing measured")
    parser.add_argument("--settle", type=float, default=3.0, help="wait after the snapshot")
    parser.add_argument("--cards", type=int, default=200)
    parser.add_argument("--rules", type=int, default=300)
    parser.add_argument("--widgets", type=int, default=150)
    parser.add_argument("--fields", type=int, default=5000)
    args = parser.parse_args()
    opts = {
        "cards": args.cards,
        "rules": args.rules,
        "widgets": args.widgets,
        "fields": args.fields,
    }
    load_before = os.getloadavg()[0]
    this, ref = alternating_rounds(
        lambda browser, base, build: measure(browser, base, build, opts, args.settle, args.seconds),
        lambda got: f"{got[0]:.1f} ms/s, longest task {got[1]:.0f} ms",
        baseline=args.baseline,
        rounds=args.rounds,
    )
    a = [ms for ms, _ in this]
    b = [ms for ms, _ in ref]
    print(
        f"customer main-thread time per second of quiet sharing, this checkout vs {args.baseline} "
        f"({args.rounds} rounds, alternating, {args.seconds:.0f} s each; {args.fields} fields, "
        f"{args.cards} cards, {args.widgets} web components):"
    )
    print(
        f"  this: median {statistics.median(a):6.1f} ms/s, longest task "
        f"{max(t for _, t in this):4.0f} ms"
        f" | {args.baseline}: median {statistics.median(b):6.1f} ms/s, longest task "
        f"{max(t for _, t in ref):4.0f} ms | ratio {median_ratio(a, b):.3f}"
    )
    print(f"load average (1 min): {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
