"""Main-thread cost of recording on the customer's page: encrypted vs plaintext builds.

After sharing starts, the customer page runs a scripted burst of DOM changes (rows added in
batches, text and attributes changed). Chromium's own accounting (CDP Performance.getMetrics,
TaskDuration: time the page's main thread spent in tasks) is read before the burst and after the
agent's mirror shows its last change, so the figure covers the burst, rrweb's recording, masking,
compression, encryption and sending. Builds alternate in one run; the ratio is the median of
paired ratios.

    .venv/bin/python bench/recording_overhead.py [--rows 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import launch, median_ratio, plaintext_build, share, tandem_server

BURST = """async (rows) => {
    const list = document.createElement('section');
    document.body.append(list);
    for (let i = 0; i < rows; i++) {
        const row = document.createElement('p');
        row.className = 'row';
        row.setAttribute('data-i', String(i));
        row.textContent = `Row ${i}: trail report, elevation ${i * 7} m, weather fair`;
        list.append(row);
        if (i % 3 === 0 && i > 0) list.children[i - 1].textContent += ' (updated)';
        if (i % 100 === 99) await new Promise((r) => setTimeout(r, 0));
    }
    const done = document.createElement('p');
    done.id = 'burst-done';
    done.textContent = 'burst done';
    list.append(done);
}"""


def task_seconds(cdp) -> float:  # type: ignore[no-untyped-def]
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    return next(m["value"] for m in metrics if m["name"] == "TaskDuration")


def measure(browser: Browser, base: str, plaintext: Path | None, rows: int) -> float:
    session = share(browser, base, "/demo/", plaintext)
    try:
        view = session.agent.frame_locator('iframe[title="Customer view"]')
        view.get_by_text("Northwind Outfitters").first.wait_for()
        session.customer.wait_for_timeout(300)
        cdp = session.customer.context.new_cdp_session(session.customer)
        cdp.send("Performance.enable")
        before = task_seconds(cdp)
        session.customer.evaluate(BURST, rows)
        view.locator("#burst-done").wait_for(state="attached", timeout=60_000)
        after = task_seconds(cdp)
    finally:
        session.close()
    return (after - before) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    encrypted: list[float] = []
    plain: list[float] = []
    with plaintext_build() as plain_dir, tandem_server() as base, sync_playwright() as pw:
        browser = launch(pw)
        measure(browser, base, None, args.rows)  # warm-up
        for _ in range(args.rounds):
            encrypted.append(measure(browser, base, None, args.rows))
            plain.append(measure(browser, base, plain_dir, args.rows))
        browser.close()
    print(f"customer main-thread task time for a {args.rows}-row burst ({args.rounds} rounds):")
    print(
        f"  encrypted: median {statistics.median(encrypted):.1f} ms "
        f"(min {min(encrypted):.1f}, max {max(encrypted):.1f})"
    )
    print(
        f"  plaintext: median {statistics.median(plain):.1f} ms "
        f"(min {min(plain):.1f}, max {max(plain):.1f})"
    )
    print(
        f"  ratio encrypted/plaintext (median of paired ratios): "
        f"{median_ratio(encrypted, plain):.3f}"
    )


if __name__ == "__main__":
    main()
