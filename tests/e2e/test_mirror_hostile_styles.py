"""Style work and pointer times a hostile customer page makes the agent's console do.

- A page that rewrites a large ``<style>`` text over and over: rrweb's replayer rewrote each for
  replay (PostCSS), without bound. Beyond ``STYLE_REWRITE_CHARS`` per ``STYLE_WINDOW_MS``
  (``sdk/src/console/budget.ts``) the rewrites are held and the status line says so; the
  latest text is given once a window takes it (it stayed behind until the page's next full
  snapshot).
- A page that inserts rules at the front of a large sheet again and again: each shifts every rule
  after it. Beyond ``RULE_SHIFTS`` per window they are held, said the same way.
- Pointer moves whose time is no number (the SDK's events rewritten, as in
  ``test_mirror_hostile_adds.py``): rrweb's timer queue held an action that never came due, and
  every later event behind it: the mirror froze.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, caught_up, share, start_on
from tests.e2e.test_mirror_hostile_adds import hook

HELD = "styles change faster than the mirror shows"
STYLE_WINDOW_MS = 10_000  # sdk/src/console/budget.ts

# Rewrites the page's <style> with a new text of about 200 KB, `times` times, one a task.
REWRITE = """async (times) => {
  const style = document.getElementById('page-style');
  const filler = 'p.x { color: rgb(9, 9, 9) } '.repeat(7000);
  for (let i = 0; i < times; i++) {
    style.textContent = `${filler} h1 { color: rgb(1, 2, ${i % 200}) }`;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}"""


def test_a_page_rewriting_a_large_style_over_and_over_is_held_and_said(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    url = other_origin.page(
        "restyle.html",
        '<style id="page-style">h1 { color: rgb(1, 2, 3) }</style><h1>Restyled</h1>',
        live,
        title="Restyle",
    )
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Restyled")).to_have_css("color", "rgb(1, 2, 3)")
    expect(agent.page.locator("#status")).not_to_contain_text(HELD)
    customer.page.evaluate(REWRITE, 25)
    expect(agent.page.locator("#status")).to_contain_text(HELD)
    # The rest of the page still shows (the mirror is live, only its styles are behind).
    caught_up(customer, view)


def test_a_style_held_for_the_budget_catches_up_without_a_new_page(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    url = other_origin.page(
        "restyle.html",
        '<style id="page-style">h1 { color: rgb(1, 2, 3) }</style><h1>Restyled</h1>',
        live,
        title="Restyle",
    )
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Restyled")).to_have_css("color", "rgb(1, 2, 3)")
    customer.page.evaluate(REWRITE, 25)
    expect(agent.page.locator("#status")).to_contain_text(HELD)
    # The page's last style text shows once a window takes it (STYLE_WINDOW_MS): no new page.
    expect(view.get_by_role("heading", name="Restyled")).to_have_css(
        "color", "rgb(1, 2, 24)", timeout=3 * STYLE_WINDOW_MS
    )
    expect(agent.page.locator("#status")).not_to_contain_text(HELD)


FRONT_RULES = """async (times) => {
  const sheet = document.getElementById('page-style').sheet;
  for (let i = 0; i < times; i++) {
    sheet.insertRule(`.front${i} { color: red }`, 0);
    if (i % 50 === 49) await new Promise((resolve) => setTimeout(resolve, 0));
  }
}"""


def test_rules_inserted_at_the_front_of_a_large_sheet_again_and_again_are_held_and_said(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    rules = "".join(f".r{i}{{color:red}}" for i in range(100_000))
    url = other_origin.page(
        "front-rules.html",
        f'<style id="page-style">{rules} h1 {{ color: rgb(1, 2, 3) }}</style><h1>Front rules</h1>',
        live,
        title="Front rules",
    )
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Front rules")).to_have_css("color", "rgb(1, 2, 3)")
    customer.page.evaluate(FRONT_RULES, 1500)
    expect(agent.page.locator("#status")).to_contain_text(HELD)
    caught_up(customer, view)


# What window.__inject makes: the data of incremental events.
EVENTS = hook("made.map((data) => ({type: 3, timestamp, data}))")

POINTER = {
    "no time": "[{source: 1, positions: [{x: 5, y: 5, id: ids.body}]}]",
    "a string": "[{source: 1, positions: [{x: 5, y: 5, id: ids.body, timeOffset: 'soon'}]}]",
    "no positions": "[{source: 6, positions: []}]",
}


@pytest.mark.parametrize("attack", sorted(POINTER))
def test_pointer_moves_without_a_valid_time_leave_the_mirror_live(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party, attack: str
) -> None:
    url = other_origin.page("pointer.html", EVENTS + "<h1>Pointer</h1>", live, title="Pointer")
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Pointer")).to_be_visible()
    caught_up(customer, view)
    customer.page.evaluate(
        "(made) => { window.__inject = (ids) => eval(made);"
        " document.body.append(document.createElement('i')); }",
        POINTER[attack],
    )
    customer.page.wait_for_function("() => window.__inject === null")
    # The page's later changes still show: nothing waits behind the move.
    caught_up(customer, view)
    customer.page.evaluate("() => { document.querySelector('h1').textContent = 'Moved on'; }")
    expect(view.get_by_role("heading", name="Moved on")).to_be_visible()
