"""Main-thread cost of masking on a large page: this checkout's SDK against another git ref's.

The customer's page is the demo shop with a large, realistic document added as it loads (by an
init script, before the SDK starts): `--cards` product cards (about six elements each) in a
grid, a style sheet of `--rules` rules whose `::before` shows an image (a third used by shown
cards, a third only inside a masked region, a third by nothing: hover states, other pages),
web components with open shadow roots and their own sheets (some inside a blocked region), a
form of `--fields` fields shown with `data-tandem-unmask` (labels, `aria-labelledby`, a few
passwords and a "show password" toggle), and two same-origin frames.

Each round shares the page once per variant (alternating) and measures, on the customer's
page, Chromium's TaskDuration (CDP Performance.getMetrics: main-thread time in tasks) and the
longest task (a `longtask` PerformanceObserver) in four scenarios, each from its start until
the agent's mirror shows a marker it adds last:

- snapshot: from the customer's Allow to the first full snapshot in the mirror;
- mutations: bursts of new cards and web components (their sheets name CSS images, one of them
  never shown), text and attribute changes and removals, in 40 tasks;
- pointer: 3 s of mouse moves every 4 ms over shown, blocked and shadow content, and scrolls;
- typing: input in every unmasked field.

With `--typed`, the customer types a password into the form's first password field before
sharing: the SDK then remembers a hidden value from the start, and every event's texts are
searched for its copies (whole and split over text nodes), the snapshot's and the mutations'
too (without it, only the typing scenario has a hidden value to look for).

Ratios are medians of paired ratios (this/ref, same round). Each scenario's wall time until the
mirror shows its marker is printed too (for the snapshot: from Allow to the page in the mirror,
the agent's rebuild included, which the customer's task time leaves out).

    .venv/bin/python bench/masking_cost.py [--baseline 6762449] [--rounds 5] [--cards 2000]
        [--rules 300] [--widgets 150] [--fields 200] [--typed]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import PASSWORD, build_of, launch, median_ratio, tandem_server, use_build

SCENARIOS = ("snapshot", "mutations", "pointer", "typing")
# What `--typed` types into the first password field before sharing.
TYPED_PASSWORD = "Orbit-Kettle-4729"

BIG_PAGE = """(opts) => {
  if (window !== window.top) return; // init scripts run in frames too
  window.__longtasks = [];
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__longtasks.push([e.startTime, e.duration]);
    }).observe({ type: 'longtask', buffered: true });
  } catch (e) {}
  customElements.define('bench-widget', class extends HTMLElement {
    connectedCallback() {
      if (this.shadowRoot) return;
      const k = Number(this.getAttribute('k') || 0);
      const root = this.attachShadow({ mode: 'open' });
      // Sheets as a component library adopts them (the demo's CSP allows no <style>).
      window.__widgetSheets ??= [];
      const sheet = window.__widgetSheets[k % 20] ??= (() => {
        const s = new CSSStyleSheet();
        s.replaceSync(`
          .b { background-image: url(/demo/img/tent.svg?w=${k % 20}); padding: 2px }
          .b:hover { background-image: url(/demo/img/tent.svg?hover) }
          .n::after { content: ""; background-image: url(/demo/img/stove.svg?note=${k % 5}) }`);
        return s;
      })();
      root.adoptedStyleSheets = [sheet];
      root.innerHTML = `<div class="b"><slot></slot><span class="n">widget ${k}</span>
        <button>open ${k}</button></div>`;
    }
  });
  const build = () => {
    const css = [];
    for (let r = 0; r < opts.rules; r++) {
      css.push(`.ic-${r}::before { content: ""; display: inline-block; width: 4px; height: 4px;
        background-image: url(/demo/img/pack.svg?ic=${r}) }`);
    }
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(css.join('\\n'));
    document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    const third = Math.max(1, Math.floor(opts.rules / 3));
    const main = document.createElement('main');
    main.id = 'big';
    const grid = document.createElement('section');
    grid.id = 'grid';
    grid.style.height = '600px';
    grid.style.overflow = 'auto';
    // Each shown icon once (a page shows a few hundred icons, not one per element).
    for (let i = 0; i < opts.cards; i++) grid.append(window.__card(i, i < third ? i : null));
    main.append(grid);
    const masked = document.createElement('section');
    masked.className = 'rr-mask';
    for (let i = 0; i < third; i++) masked.append(window.__card(i, third + i));
    main.append(masked);
    const widgets = document.createElement('section');
    const blocked = document.createElement('div');
    blocked.className = 'rr-block';
    for (let i = 0; i < opts.widgets; i++) {
      const w = document.createElement('bench-widget');
      w.setAttribute('k', String(i));
      w.textContent = `slot ${i}`;
      (i % 5 === 0 ? blocked : widgets).append(w);
    }
    widgets.append(blocked);
    main.append(widgets);
    const form = document.createElement('form');
    form.setAttribute('data-tandem-unmask', '');
    // The fields go into the form in one insertion: Chromium makes each insertion into a form
    // cost in proportion to the controls already in it (5,000 fields appended one by one took
    // 10-50 s, the page's own time, before the SDK did anything).
    const fields = document.createDocumentFragment();
    for (let i = 0; i < opts.fields; i++) {
      const label = document.createElement('label');
      label.htmlFor = `f${i}`;
      label.textContent = i % 25 === 0 ? `Password ${i}` : `Field number ${i}, as labelled`;
      const hint = document.createElement('span');
      hint.id = `h${i}`;
      hint.textContent = `hint for field ${i}`;
      const input = document.createElement('input');
      input.id = `f${i}`;
      input.name = `field${i}`;
      input.setAttribute('aria-describedby', `h${i}`);
      input.setAttribute('aria-labelledby', `h${i}`);
      input.placeholder = `value ${i}`;
      if (i % 25 === 0) input.type = 'password';
      fields.append(label, input, hint);
    }
    form.append(fields);
    const toggle = document.createElement('button');
    toggle.type = 'button';
    toggle.setAttribute('aria-controls', 'f0');
    toggle.textContent = 'Show password';
    form.append(toggle);
    main.append(form);
    for (let i = 0; i < (opts.frames ?? 2); i++) {
      const frame = document.createElement('iframe');
      frame.srcdoc = `<p>frame ${i}</p>` + '<div><span>inside</span></div>'.repeat(50);
      main.append(frame);
    }
    const done = document.createElement('p');
    done.id = 'big-done';
    done.textContent = 'big page built';
    main.append(done);
    document.body.append(main);
  };
  window.__card = (i, icon) => {
    const card = document.createElement('article');
    card.className = 'card';
    card.setAttribute('data-i', String(i));
    const h = document.createElement('h3');
    h.textContent = `Trail pack ${i}`;
    const p = document.createElement('p');
    p.textContent = `Card ${i}: 28 litres, ${i % 7 + 1} pockets, rain cover included.`;
    const span = document.createElement('span');
    if (icon !== null) span.className = `ic-${icon}`;
    const a = document.createElement('a');
    a.href = `/demo/item/${i}?ref=grid`;
    a.textContent = 'details';
    const b = document.createElement('button');
    b.textContent = 'add';
    card.append(h, p, span, a, b);
    return card;
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', build);
  else build();
}"""

MUTATIONS = """async () => {
  const grid = document.getElementById('grid');
  const host = document.createElement('section');
  document.getElementById('big').append(host);
  for (let t = 0; t < 40; t++) {
    for (let i = 0; i < 50; i++) {
      host.append(window.__card(10000 + t * 50 + i, i === 0 ? t : null));
      if (i % 5 === 0) {
        const w = document.createElement('bench-widget');
        w.setAttribute('k', String(1000 + t * 10 + i));
        w.textContent = 'new';
        host.append(w);
      }
    }
    // A small grid (`--cards 200`) would be emptied by the removals: keep one card.
    for (let i = 0; i < 25; i++) {
      const card = grid.children[(t * 25 + i) % grid.children.length];
      card.children[1].textContent += ' (updated)';
      card.setAttribute('data-seen', String(t));
    }
    for (let i = 0; i < 25 && grid.children.length > 1; i++) grid.lastElementChild.remove();
    await new Promise((r) => setTimeout(r, 20));
  }
}"""

POINTER = """async (ms) => {
  const grid = document.getElementById('grid');
  const shown = Array.from(grid.querySelectorAll('h3, p, button')).slice(0, 500);
  const blocked = Array.from(document.querySelectorAll('.rr-block bench-widget'));
  const widgets = Array.from(document.querySelectorAll('bench-widget:not(.rr-block *)'));
  const end = performance.now() + ms;
  let n = 0;
  while (performance.now() < end) {
    let target;
    if (n % 4 === 0) target = blocked[n % blocked.length];
    else if (n % 4 === 1) target = widgets[n % widgets.length].shadowRoot.querySelector('button');
    else target = shown[n % shown.length];
    target.dispatchEvent(new MouseEvent('mousemove', {
      bubbles: true, composed: true, clientX: n % 1000, clientY: (n * 7) % 700,
    }));
    if (n % 4 === 0) grid.scrollTop = (n * 13) % 5000;
    n++;
    await new Promise((r) => setTimeout(r, 4));
  }
}"""

TYPING = """async () => {
  const fields = Array.from(document.querySelectorAll('form[data-tandem-unmask] input'));
  for (let round = 0; round < 3; round++) {
    for (const field of fields) {
      field.value += 'ab';
      field.dispatchEvent(new Event('input', { bubbles: true }));
    }
    await new Promise((r) => setTimeout(r, 30));
  }
}"""

MARK = """(name) => {
  const p = document.createElement('p');
  p.id = `done-${name}`;
  p.textContent = name;
  document.body.append(p);
}"""


def task_ms(cdp: Any) -> float:
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    return 1000 * next(m["value"] for m in metrics if m["name"] == "TaskDuration")


def longest_task(page: Page, since: float) -> float:
    got = page.evaluate(
        "(since) => Math.max(0, ...(window.__longtasks || []).filter(([s]) => s >= since)"
        ".map(([, d]) => d))",
        since,
    )
    return float(got)


def big_page(browser: Browser, opts: dict[str, int]) -> Page:
    """A customer page that builds the big document as it loads."""
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.add_init_script(f"({BIG_PAGE})({json.dumps(opts)})")
    return page


def measure(
    browser: Browser, base: str, build: Path | None, opts: dict[str, int], typed: bool = False
) -> dict[str, tuple[float, float, float]]:
    """One shared session; per scenario, (main-thread task ms, longest task ms, wall ms until
    the mirror shows it)."""
    customer = big_page(browser, opts)
    agent = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()
    out: dict[str, tuple[float, float, float]] = {}
    try:
        if build is not None:
            for page in (customer, agent):
                use_build(page, build)
        customer.goto(f"{base}/demo/", wait_until="domcontentloaded")
        customer.locator("#big-done").wait_for(state="attached")
        customer.wait_for_timeout(2000)  # its images load
        if typed:
            customer.locator("#f0").press_sequentially(TYPED_PASSWORD)
        code = customer.evaluate("() => window.Tandem.start()")
        agent.goto(f"{base}/console/")
        agent.get_by_label("Username").fill("alice")
        agent.get_by_label("Password").fill(PASSWORD)
        agent.get_by_role("button", name="Sign in").click()
        agent.get_by_label("Session code").fill(code)
        agent.get_by_role("button", name="Join").click()
        allow = customer.get_by_role("dialog").get_by_role("button", name="Allow")
        allow.wait_for()
        customer.wait_for_timeout(500)
        cdp = customer.context.new_cdp_session(customer)
        cdp.send("Performance.enable")
        view = agent.frame_locator('iframe[title="Customer view"]')

        def run(name: str, script: str | None, arg: Any = None) -> None:
            since = customer.evaluate("() => performance.now()")
            before = task_ms(cdp)
            started = time.monotonic()
            if script is None:
                allow.click()
                marker = "#big-done"
            else:
                customer.evaluate(script, arg)
                customer.evaluate(MARK, name)
                marker = f"#done-{name}"
            # (Playwright's timeout is not kept while the mirror's page is in one long task.)
            view.locator(marker).wait_for(state="attached", timeout=120_000)
            wall = 1000 * (time.monotonic() - started)
            customer.wait_for_timeout(200)  # the batch's assets, what the flush left
            out[name] = (task_ms(cdp) - before, longest_task(customer, since), wall)
            customer.wait_for_timeout(300)

        run("snapshot", None)
        run("mutations", MUTATIONS)
        run("pointer", POINTER, 3000)
        run("typing", TYPING)
    finally:
        customer.context.close()
        agent.context.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="6762449", help="the git ref to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cards", type=int, default=2000)
    parser.add_argument("--rules", type=int, default=300)
    parser.add_argument("--widgets", type=int, default=150)
    parser.add_argument("--fields", type=int, default=200)
    parser.add_argument(
        "--typed", action="store_true", help="type a password before sharing (see above)"
    )
    args = parser.parse_args()
    opts = {
        "cards": args.cards,
        "rules": args.rules,
        "widgets": args.widgets,
        "fields": args.fields,
    }
    this: list[dict[str, tuple[float, float, float]]] = []
    ref: list[dict[str, tuple[float, float, float]]] = []
    load_before = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        old = stack.enter_context(build_of(args.baseline))
        base = stack.enter_context(tandem_server())
        browser = launch(stack.enter_context(sync_playwright()))
        elements = measure_elements(browser, base, opts)
        for r in range(args.rounds):
            pair = [(this, None), (ref, old)]
            for target, build in pair if r % 2 == 0 else pair[::-1]:
                target.append(measure(browser, base, build, opts, args.typed))
        browser.close()
    print(
        f"customer main-thread task time, this checkout vs {args.baseline} "
        f"({args.rounds} rounds, alternating; page of {elements} elements, {args.rules} "
        f"CSS-image rules, {args.widgets} web components, {args.fields} fields"
        f"{', a password typed before sharing' if args.typed else ''}):"
    )
    for name in SCENARIOS:
        a = [run[name][0] for run in this]
        b = [run[name][0] for run in ref]
        la = max(run[name][1] for run in this)
        lb = max(run[name][1] for run in ref)
        wa = statistics.median(run[name][2] for run in this)
        wb = statistics.median(run[name][2] for run in ref)
        print(
            f"  {name:9s} this: median {statistics.median(a):7.1f} ms, "
            f"longest task {la:5.0f} ms | {args.baseline}: median "
            f"{statistics.median(b):7.1f} ms, longest task {lb:5.0f} ms | "
            f"ratio {median_ratio(a, b):.3f} | in the mirror after {wa / 1000:.1f} s | "
            f"{wb / 1000:.1f} s"
        )
    print(f"load average (1 min): {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end")


def measure_elements(browser: Browser, base: str, opts: dict[str, int]) -> int:
    """How many elements the big page has (page and open shadow roots)."""
    page = big_page(browser, opts)
    try:
        page.goto(f"{base}/demo/", wait_until="domcontentloaded")
        page.locator("#big-done").wait_for(state="attached")
        return int(
            page.evaluate("""() => {
            let n = 0;
            const walk = (root) => { for (const el of root.querySelectorAll('*')) {
                n++; if (el.shadowRoot) walk(el.shadowRoot); } };
            walk(document);
            return n;
        }""")
        )
    finally:
        page.context.close()


if __name__ == "__main__":
    main()
