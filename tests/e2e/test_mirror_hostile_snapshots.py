"""Full snapshots a hostile customer page makes the SDK send, again and again.

Each full snapshot rebuilds the agent's whole mirror, and rrweb's replayer rewrites every style
text in it with PostCSS. A page can make the SDK send its page afresh (a mask class added to an
element already sent, ``sdk/src/shared/masking.ts``, ``onMarkedLate``; a backlog) or, rewriting
the SDK's events, send a full snapshot of its own in every payload: a megabyte of CSS that changes
each time (rrweb's cache of rewritten texts does not help), several a second, froze the agent's
tab (the console answered no click for over ten seconds, then called the view not live). Beyond
``SNAPSHOT_STYLE_CHARS`` per ``STYLE_WINDOW_MS`` (``sdk/src/console/budget.ts``,
``SnapshotGate``) full snapshots are held (the latest one shows when the window allows, with what
followed it) and the status line says so. An honest page that opens several pages quickly is
shown at once, its latest page last.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, caught_up, share, start_on

BUDGET_TS = Path(__file__).parents[2] / "sdk" / "src" / "console" / "budget.ts"


def constant(name: str) -> int:
    """A bound of the console's mirror budget, as budget.ts defines it."""
    found = re.search(rf"export const {name} = ([\d_ *]+);", BUDGET_TS.read_text())
    assert found, name
    value = 1
    for factor in found.group(1).split("*"):
        value *= int(factor.strip().replace("_", ""))
    return value


STYLE_WINDOW_MS = constant("STYLE_WINDOW_MS")
HELD = "sent afresh faster than this view can show it"

# About a megabyte of CSS, each rule of its own (PostCSS parses them all).
CSS = "".join(f".r{i}:hover {{ color: rgb({i % 250}, 1, 2) }}\n" for i in range(30_000))

# The page's own script rewrites the SDK's outgoing events (through ``JSON.stringify``, as in
# ``test_mirror_hostile_adds.py``): while ``window.__afresh`` is set, each events payload carries
# the page's last full snapshot again, its style text changed (rrweb's cache of rewritten texts
# does not help), as many times over as a task of the page makes payloads.
AFRESH = """
<script>
(() => {
  const stringify = JSON.stringify;
  let last = null;
  window.__afresh = 0;
  window.__sentAfresh = 0;
  JSON.stringify = function (value, ...rest) {
    if (value && value.k === 'events' && Array.isArray(value.events)) {
      for (const e of value.events) if (e.type === 2) last = e;
      if (window.__afresh > 0 && last) {
        window.__afresh--;
        const n = ++window.__sentAfresh;
        const copy = structuredClone(last);
        const stack = [copy.data.node];
        while (stack.length) {
          const node = stack.pop();
          // rrweb sends a <style>'s rules as its `_cssText`.
          if (node.tagName === 'style') node.attributes._cssText += ` .round${n} { color: red }`;
          for (const child of node.childNodes || []) stack.push(child);
        }
        copy.timestamp = value.events[value.events.length - 1].timestamp;
        value = { ...value, events: value.events.concat([copy]) };
      }
    }
    return stringify.call(this, value, ...rest);
  };
})();
</script>
"""

# `times` payloads, a change of the page every 20 ms. Not awaited: it runs while the agent clicks.
STORM = """(times) => {
  window.__afresh = times;
  const timer = setInterval(() => {
    if (window.__afresh <= 0) return clearInterval(timer);
    const p = document.createElement('p');
    p.textContent = `Item ${window.__sentAfresh}`;
    document.body.append(p);
  }, 20);
}"""


def test_a_page_sending_itself_afresh_over_and_over_leaves_the_console_answering(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    url = other_origin.page(
        "afresh.html",
        f'{AFRESH}<style id="page-style">{CSS}</style><h1>Afresh</h1>',
        live,
        title="Afresh",
    )
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Afresh")).to_be_visible(timeout=30_000)
    caught_up(customer, view)
    customer.page.evaluate(STORM, 60)
    customer.page.wait_for_function("() => window.__sentAfresh >= 15", timeout=60_000)
    # The console's own UI answers a click within a window of the budget, while the page goes on.
    shortcuts = agent.page.locator("#shortcuts")
    started = time.monotonic()
    agent.page.locator("#shortcuts > summary").click(timeout=STYLE_WINDOW_MS)
    expect(shortcuts).to_have_attribute("open", "", timeout=STYLE_WINDOW_MS)
    answered = time.monotonic() - started
    assert answered * 1000 < STYLE_WINDOW_MS, answered
    expect(agent.page.locator("#status")).to_contain_text(HELD, timeout=STYLE_WINDOW_MS)
    customer.page.wait_for_function("() => window.__afresh === 0", timeout=120_000)
    # The page's latest state shows once the window allows (never an older one after it).
    caught_up(customer, view)
    expect(agent.page.locator("#status")).not_to_contain_text(HELD)


def test_a_page_opening_several_pages_quickly_shows_its_latest(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    urls = [
        other_origin.page(f"page{i}.html", f"<h1>Page {i}</h1><p>Text {i}</p>", live, title=f"P{i}")
        for i in range(6)
    ]
    code = start_on(customer, urls[0])
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Page 0")).to_be_visible()
    for url in urls[1:]:
        customer.page.goto(url)
    expect(view.get_by_role("heading", name="Page 5")).to_be_visible()
    caught_up(customer, view)
    expect(view.get_by_role("heading")).to_have_text(["Page 5"])
    expect(agent.page.locator("#status")).not_to_contain_text(HELD)
