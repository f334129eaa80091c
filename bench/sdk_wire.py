"""What the customer's SDK puts on the wire, and how soon the agent sees the page (issue 17).

Real Chromium, the real SDK and console, `tandem serve` on loopback.

* bytes per session-minute: a scripted minute on the demo shop (search typed, scrolling, four
  page loads: shop, cart, checkout with its form typed, account), counting every binary frame
  the customer's page sent from consent to the end of the minute. The same script under the
  plaintext build (uncompressed JSON, bench/harness.py) gives the raw size: the ratio is what
  compression saves. The full snapshot's ratio is that of the first page's largest frame (the
  snapshot travels in one), the first second's (with its images and key frames) beside it.
* first frame: a 300 KB page (the shop with rows added); from the customer's click on Allow to
  the agent's mirror showing the page's last element, split into customer (click to the
  snapshot's last frame handed to the socket), wire (to its arrival in the console) and console
  (to the mirror). The snapshot's frames are the largest frame and the frames of at least 1 KB
  sent right after it (a snapshot over 512 KB travels in parts; what follows on a still page is
  small); their bytes on the wire are printed too. `--baseline REF` builds the SDK and console
  of a git ref and alternates its runs with this checkout's, for a ratio measured under the
  same load.

    .venv/bin/python bench/sdk_wire.py [--rounds 3] [--seconds 60] [--first-frames 5]
        [--baseline main]

`--rounds 0` skips the scripted minutes. Each run prints the load average: on a shared machine
the times are several-fold a quiet one's.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path
from typing import NamedTuple

from playwright.sync_api import Browser, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    Shared,
    build_of,
    launch,
    median_ratio,
    plaintext_build,
    share,
    tandem_server,
    use_build,
)

SENT_PROBE = """(() => {
    const send = WebSocket.prototype.send;
    window.__sent = [];
    WebSocket.prototype.send = function (data) {
        if (typeof data !== "string") {
            const size = data.byteLength ?? data.size ?? 0;
            window.__sent.push([performance.timeOrigin + performance.now(), size]);
        }
        return send.call(this, data);
    };
    window.__clicked = 0;
    document.addEventListener("click", () => {
        if (!window.__clicked) window.__clicked = performance.timeOrigin + performance.now();
    }, true);
})();"""
RECEIVED_PROBE = """(() => {
    const Original = window.WebSocket;
    window.__received = [];
    window.WebSocket = class extends Original {
        constructor(...args) {
            super(...args);
            this.addEventListener("message", (e) => {
                if (typeof e.data !== "string")
                    window.__received.push(performance.timeOrigin + performance.now());
            });
        }
    };
})();"""
BIG_PAGE = """() => {
    const list = document.createElement("section");
    for (let i = 0; i < 1500; i++) {
        const row = document.createElement("article");
        row.className = "bench-row";
        row.innerHTML = `<h3>Product ${i}</h3><p>Waterproof shell, taped seams, ` +
            `two-way zip and a packable hood; sizes XS to XXL, colour ${i % 7}.</p>` +
            `<button type="button">Add ${i}</button>`;
        list.append(row);
    }
    const marker = document.createElement("p");
    marker.id = "bench-marker";
    marker.textContent = "end";
    list.append(marker);
    document.querySelector("main").append(list);
    return document.documentElement.outerHTML.length;
}"""
MIRROR = 'iframe[title="Customer view"]'


def scripted_minute(session: Shared, base: str, seconds: float) -> tuple[int, int, int]:
    """Run the minute; (bytes sent after consent, bytes sent in its first second, the largest
    frame of that second: the first page's full snapshot, which travels in one frame). Each page
    load starts a new count (the probe is installed again): a page's count is taken just
    before leaving it. The waits pace a person's minute; they wait for nothing."""
    customer = session.customer

    def page_total() -> int:
        return int(sum(size for _, size in customer.evaluate("() => window.__sent")))

    started = time.monotonic()
    customer.wait_for_timeout(1000)
    first_second = page_total()
    snapshot = int(max(size for _, size in customer.evaluate("() => window.__sent")))
    customer.get_by_label("Search products").press_sequentially("tent", delay=120)
    for _ in range(3):
        customer.mouse.wheel(0, 600)
        customer.wait_for_timeout(300)
    sent = 0
    for page, fill in (
        ("/demo/cart.html", {}),
        ("/demo/checkout.html", {"#name": "Ada Lovelace", "#street": "1 Main Street"}),
        ("/demo/account.html", {}),
    ):
        sent += page_total()
        customer.goto(f"{base}{page}")
        customer.wait_for_function("() => window.__sent && window.__sent.length > 0")
        customer.wait_for_timeout(1500)
        for selector, text in fill.items():
            customer.locator(selector).press_sequentially(text, delay=90)
    remaining = seconds - (time.monotonic() - started)
    if remaining > 0:
        customer.wait_for_timeout(remaining * 1000)
    return sent + page_total(), first_second, snapshot


SNAPSHOT_PART_MIN_BYTES = 1000


class Split(NamedTuple):
    """One first frame (ms): click to the snapshot's last frame sent, to its arrival, to shown."""

    customer: float
    wire: float
    console: float

    @property
    def total(self) -> float:
        return self.customer + self.wire + self.console


def first_frame(browser: Browser, base: str, build: Path | None = None) -> tuple[Split, int]:
    """The split, and the snapshot's bytes on the wire (its frames, as sent)."""
    customer = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()
    agent = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()
    if build is not None:
        use_build(customer, build)
        use_build(agent, build)
    customer.add_init_script(SENT_PROBE)
    agent.add_init_script(RECEIVED_PROBE)
    try:
        customer.goto(f"{base}/demo/")
        size = customer.evaluate(BIG_PAGE)
        assert size > 250_000, size
        code = customer.evaluate("() => window.Tandem.start()")
        agent.goto(f"{base}/console/")
        agent.get_by_label("Username").fill("alice")
        agent.get_by_label("Password").fill("blue-kettle-orbit-42")
        agent.get_by_role("button", name="Sign in").click()
        agent.get_by_label("Session code").fill(code)
        agent.get_by_role("button", name="Join").click()
        allow = customer.get_by_role("dialog").get_by_role("button", name="Allow")
        allow.wait_for()
        customer.evaluate("() => { window.__sent = []; window.__clicked = 0; }")
        agent.evaluate("() => { window.__received = []; }")
        allow.click()
        agent.wait_for_function(
            f"""() => {{
                const f = document.querySelector('{MIRROR}');
                const d = f && f.contentDocument;
                if (d && d.getElementById('bench-marker') && !window.__shown)
                    window.__shown = performance.timeOrigin + performance.now();
                return !!window.__shown;
            }}""",
            polling="raf",
            timeout=30_000,
        )
        clicked = customer.evaluate("() => window.__clicked")
        sent = customer.evaluate("() => window.__sent")
        received = agent.evaluate("() => window.__received")
        shown = agent.evaluate("() => window.__shown")
        # The snapshot's (first) frame: the largest.
        first = last = sent.index(max(sent, key=lambda item: item[1]))
        while last + 1 < len(sent) and sent[last + 1][1] >= SNAPSHOT_PART_MIN_BYTES:
            last += 1
        arrived = received[min(last, len(received) - 1)]
        split = Split(sent[last][0] - clicked, arrived - sent[last][0], shown - arrived)
        return split, int(sum(size for _, size in sent[first : last + 1]))
    finally:
        customer.context.close()
        agent.context.close()


def record(measured: tuple[Split, int], sizes: list[int]) -> Split:
    """The split of a first frame, its snapshot's size noted in `sizes`."""
    sizes.append(measured[1])
    return measured[0]


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def report_first_frames(title: str, splits: list[Split], indent: str = "") -> None:
    totals = [split.total for split in splits]
    print(f"{indent}{title}: median {statistics.median(totals):.0f} ms, p95 {p95(totals):.0f} ms "
          f"(n={len(splits)}; target p95 ≤ 1000)")  # fmt: skip
    for i, name in enumerate(Split._fields):
        part = [split[i] for split in splits]
        print(f"{indent}  {name}: median {statistics.median(part):.0f} ms, p95 {p95(part):.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="scripted minutes (0: none)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--first-frames", type=int, default=5, help="first frames measured")
    parser.add_argument("--baseline", help="a git ref whose SDK and console alternate with these")
    args = parser.parse_args()
    wire: list[float] = []
    raw: list[float] = []
    snapshot_ratio: list[float] = []
    first_second_ratio: list[float] = []
    splits: list[Split] = []
    baseline: list[Split] = []
    snapshot_bytes: list[int] = []
    baseline_bytes: list[int] = []
    load_before = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        playwright = stack.enter_context(sync_playwright())
        base = stack.enter_context(tandem_server())
        plain = stack.enter_context(plaintext_build())
        old = stack.enter_context(build_of(args.baseline)) if args.baseline else None
        browser = launch(playwright)
        for _ in range(args.rounds):
            counts = {}
            for name, build in (("wire", None), ("raw", plain)):
                session = share(browser, base, "/demo/", build, customer_script=SENT_PROBE)
                try:
                    counts[name] = scripted_minute(session, base, args.seconds)
                finally:
                    session.close()
            minutes = args.seconds / 60
            wire.append(counts["wire"][0] / 1000 / minutes)
            raw.append(counts["raw"][0] / 1000 / minutes)
            first_second_ratio.append(counts["raw"][1] / max(1, counts["wire"][1]))
            snapshot_ratio.append(counts["raw"][2] / max(1, counts["wire"][2]))
        for i in range(args.first_frames):
            # Alternating which goes first, so neither always meets the other's leftovers.
            if old is not None and i % 2:
                baseline.append(record(first_frame(browser, base, old), baseline_bytes))
            splits.append(record(first_frame(browser, base), snapshot_bytes))
            if old is not None and not i % 2:
                baseline.append(record(first_frame(browser, base, old), baseline_bytes))
        browser.close()
    load = f"load average (1 min) {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    if args.rounds:
        print(f"bytes per session-minute (demo shop, scripted, {args.rounds} rounds):")
        print(f"  on the wire: p50 {statistics.median(wire):.1f} KB/min (target ≤ 40)")
        print(f"  raw rrweb JSON: p50 {statistics.median(raw):.1f} KB/min")
        ratios = sorted(r / w for r, w in zip(raw, wire, strict=True))
        print(f"  raw/wire: {statistics.median(ratios):.1f}x")
        print(f"  full snapshot (first page's largest frame) raw/wire: "
              f"{statistics.median(snapshot_ratio):.2f}x (target ≥ 5)")  # fmt: skip
        print(f"  first page's first second (snapshot, its images, key frames) raw/wire: "
              f"{statistics.median(first_second_ratio):.2f}x")  # fmt: skip
    if splits:
        report_first_frames("agent's first frame on a 300 KB page", splits)
        wire_kb = statistics.median(snapshot_bytes) / 1e3
        print(f"  its snapshot on the wire: median {wire_kb:.1f} KB")
    if baseline:
        report_first_frames(f"the same, SDK and console of {args.baseline}", baseline, "  ")
        wire_kb = statistics.median(baseline_bytes) / 1e3
        print(f"    its snapshot on the wire: median {wire_kb:.1f} KB")
        ratio = median_ratio([s.total for s in splits], [s.total for s in baseline])
        print(f"  ratio this/{args.baseline} (median of {len(baseline)} paired runs): {ratio:.2f}")
    print(load)


if __name__ == "__main__":
    main()
