"""A shared page adds thousands of fields to a form: how long until the agent's mirror shows
them, this checkout's console against another git ref's, measured in the same run.

The customer's page is the demo shop with an empty `<form data-tandem-unmask>` (fields shown,
passwords hidden, as masking_cost.py's large page), shared until the agent's mirror shows it. Then,
in one task, the page adds `--fields` fields to the form as an app renders a long form after a
click, all inserted at once (a fragment) followed by an end marker, in one of three shapes:
`bare`, inputs named by `aria-label` (one in 25 a password) straight in the form; `flat`, each
field a `<label>`, an `<input>` and a hint straight in the form; `rows`, the same each in a row
`<div>`. Measured: wall time from the page's change until the marker is in the mirror (the
customer's recording and masking, the relay and the agent's replay), and the customer's and the
agent's pages' main-thread time meanwhile (CDP TaskDuration; the agent's: the console decrypting
and rrweb applying the mutation, and whatever the console does while it waits), and the agent's
longest task (rrweb applies a mutation in one). The SDK bundle is the same in both builds when
only the replayer changed: the difference is the console's. Ratios are medians of paired ratios
of the wall times (this/ref, same round).

    PYTHONPATH=$PWD/src .venv/bin/python bench/live_fields.py [--baseline 2faa78e6]
        [--rounds 3] [--fields 4000] [--shape bare] [--shape rows] ...
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from playwright.sync_api import Browser

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import alternating_rounds, median_ratio, share
from masking_cost import longest_task, task_ms

FORM = """() => {
  if (window !== window.top) return;
  const build = () => {
    const form = document.createElement('form');
    form.id = 'grow';
    form.setAttribute('data-tandem-unmask', '');
    const intro = document.createElement('p');
    intro.id = 'grow-ready';
    intro.textContent = 'Your details';
    form.append(intro);
    document.body.append(form);
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', build);
  else build();
}"""

# One task: the fields are built detached and go into the form in one insertion, as a framework
# renders a list (the page's own cost stays small: appending them one by one into the form
# would be quadratic on the customer's side too).
ADD_FIELDS = """([n, shape, mark]) => {
  const form = document.getElementById('grow');
  const fields = document.createDocumentFragment();
  for (let i = 0; i < n; i++) {
    if (shape === 'bare') {
      const input = document.createElement('input');
      input.name = `field${i}`;
      input.setAttribute('aria-label', `Field number ${i}`);
      input.setAttribute('value', `value ${i}`);
      if (i % 25 === 0) input.type = 'password';
      fields.append(input);
      continue;
    }
    const label = document.createElement('label');
    label.htmlFor = `g${i}`;
    label.textContent = i % 25 === 0 ? `Password ${i}` : `Field number ${i}`;
    const input = document.createElement('input');
    input.id = `g${i}`;
    input.name = `field${i}`;
    input.setAttribute('value', `value ${i}`);
    if (i % 25 === 0) input.type = 'password';
    const hint = document.createElement('span');
    hint.textContent = `hint for field ${i}`;
    if (shape === 'rows') {
      const row = document.createElement('div');
      row.className = 'row';
      row.append(label, input, hint);
      fields.append(row);
    } else fields.append(label, input, hint);
  }
  const end = document.createElement('p');
  end.id = mark;
  end.textContent = 'end of the form';
  fields.append(end);
  form.append(fields);
}"""

SHAPES = ("bare", "flat", "rows")

# The agent's long tasks (the console's, and the mirror's: rrweb applies a mutation in one task).
LONG_TASKS = """() => {
  if (window !== window.top) return;
  window.__longtasks = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__longtasks.push([e.startTime, e.duration]);
  }).observe({ type: "longtask", buffered: true });
}"""

CLEAR = """() => {
  const form = document.getElementById('grow');
  for (const el of Array.from(form.children)) if (el.id !== 'grow-ready') el.remove();
}"""


# ms: wall until in the mirror, the customer's and the agent's main-thread time, the agent's
# longest task
Figures = tuple[float, float, float, float]


def measure(
    browser: Browser, base: str, build: Path | None, fields: int, shapes: list[str]
) -> dict[str, Figures]:
    """One shared session; per shape, (wall ms until the mirror shows the last field, the
    customer's and the agent's pages' main-thread ms meanwhile, the agent's longest task)."""
    shared = share(
        browser,
        base,
        "/demo/",
        build,
        customer_script=f"({FORM})()",
        agent_script=f"({LONG_TASKS})()",
        ready="#grow-ready",
    )
    out: dict[str, Figures] = {}
    try:
        view = shared.agent.frame_locator('iframe[title="Customer view"]')
        agent = shared.agent.context.new_cdp_session(shared.agent)
        customer = shared.customer.context.new_cdp_session(shared.customer)
        for cdp in (agent, customer):
            cdp.send("Performance.enable")
        for shape in shapes:
            mark = f"grow-end-{shape}"
            before = (task_ms(customer), task_ms(agent))
            since = shared.agent.evaluate("() => performance.now()")
            started = time.monotonic()
            shared.customer.evaluate(ADD_FIELDS, [fields, shape, mark])
            # (Playwright's timeout is not kept while the mirror's page is in one long task.)
            view.locator(f"#{mark}").wait_for(state="attached", timeout=600_000)
            wall = 1000 * (time.monotonic() - started)
            out[shape] = (
                wall,
                task_ms(customer) - before[0],
                task_ms(agent) - before[1],
                longest_task(shared.agent, since),
            )
            count = view.locator("#grow input").count()
            if count != fields:
                raise RuntimeError(f"the mirror shows {count} fields of {fields}")
            shared.customer.evaluate(CLEAR)
            view.locator(f"#{mark}").wait_for(state="detached", timeout=600_000)
    finally:
        shared.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="2faa78e6", help="the git ref to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fields", type=int, default=4000)
    parser.add_argument(
        "--shape", choices=SHAPES, action="append", help="repeatable; default: bare"
    )
    args = parser.parse_args()
    shapes = args.shape or ["bare"]
    load_before = os.getloadavg()[0]

    def describe(figures: dict[str, Figures]) -> str:
        return ", ".join(
            f"{s} {w / 1000:.2f} s (customer {c / 1000:.2f} s, agent {a / 1000:.2f} s, "
            f"agent's longest task {t / 1000:.2f} s)"
            for s, (w, c, a, t) in figures.items()
        )

    this, ref = alternating_rounds(
        lambda browser, base, build: measure(browser, base, build, args.fields, shapes),
        describe,
        baseline=args.baseline,
        rounds=args.rounds,
    )
    print(
        f"{args.fields} fields added to a shared form in one task, until the agent's mirror shows "
        f"them: this checkout vs {args.baseline} ({args.rounds} rounds, alternating):"
    )

    def medians(runs: list[dict[str, Figures]], shape: str) -> str:
        wall, customer, agent, longest = (
            statistics.median(run[shape][k] / 1000 for run in runs) for k in range(4)
        )
        return (
            f"median {wall:6.2f} s (customer {customer:6.2f} s, agent {agent:6.2f} s, "
            f"longest {longest:5.2f} s)"
        )

    for shape in shapes:
        a = [run[shape][0] for run in this]
        b = [run[shape][0] for run in ref]
        print(
            f"  {shape:5s} this: {medians(this, shape)} | {args.baseline}: "
            f"{medians(ref, shape)} | ratio {median_ratio(a, b):.3f}"
        )
    print(f"load average (1 min): {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
