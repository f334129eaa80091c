"""Replayed events other than mutations that a hostile page's SDK crafts, as the console applies.

A script on the customer's page rewrites the SDK's outgoing events (through ``JSON.stringify``,
as in ``test_mirror_hostile_adds.py``): the events it appends are encrypted like anything else
and reach the console's replayer as the page wrote them.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, caught_up, share, start_on
from tests.e2e.test_mirror_hostile_adds import hook

# What window.__inject makes: the data of incremental events (the hook of test_mirror_hostile_adds).
HOOK = hook("made.map((data) => ({type: 3, timestamp, data}))")

FONT = """(origin) => {
  window.__inject = (ids) => [
    {source: 10, family: 'Spyface', buffer: false, descriptors: {},
      fontSource: `url(${origin}/api/me?font), url(http://spy.invalid/font.woff)`},
  ];
  document.body.append(document.createElement('i'));
}"""


def test_a_font_event_loads_nothing_into_the_mirror(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    url = other_origin.page(
        "font.html",
        HOOK + "<style>h1 { font-family: Spyface, serif }</style><h1>Font page</h1>",
        live,
        title="Font",
    )
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    heading = view.get_by_role("heading", name="Font page")
    expect(heading).to_be_visible()
    caught_up(customer, view)
    customer.page.evaluate(FONT, live.base)
    customer.page.wait_for_function("() => window.__inject === null")
    caught_up(customer, view)
    # The face rrweb would add from the event: none, or one that never loaded.
    statuses = view.locator("body").evaluate(
        "(b) => [...b.ownerDocument.fonts]"
        ".filter((f) => f.family.includes('Spyface')).map((f) => f.status)"
    )
    assert all(status != "loaded" for status in statuses), statuses
    fetched = agent.page.evaluate(
        "() => performance.getEntriesByType('resource')"
        ".map((e) => e.name).filter((n) => n.includes('font'))"
    )
    assert fetched == [], fetched


# The same font event, its addresses spelt with escapes the neutraliser decoded twice: `\5c 75 rl(`
# (an escaped backslash, then `75 rl(`: no function to the browser) came out as `\75 rl(`, and
# `u\r\\l(` as `ur\l(`, which the browser reads as `url(`: the FontFace loaded `/api/me` from
# Tandem's server, with the agent's cookie, under the console's policy.
ESCAPED_FONT = r"""(origin) => {
  window.__inject = (ids) => [
    {source: 10, family: 'Escaped', buffer: false, descriptors: {},
      fontSource: `\\5c 75 rl(${origin}/api/me?escfont1), u\\r\\\\l(${origin}/api/me?escfont2)`},
  ];
  document.body.append(document.createElement('i'));
}"""


def test_a_font_event_whose_address_is_escaped_twice_loads_nothing(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    url = other_origin.page(
        "escaped-font.html",
        HOOK + "<style>h1 { font-family: Escaped, serif }</style><h1>Escaped font</h1>",
        live,
        title="Escaped font",
    )
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Escaped font")).to_be_visible()
    caught_up(customer, view)
    customer.page.evaluate(ESCAPED_FONT, live.base)
    customer.page.wait_for_function("() => window.__inject === null")
    caught_up(customer, view)
    # The face's load is settled (loaded or failed: any fetch it made is over).
    view.locator("body").evaluate(
        "(b) => Promise.all([...b.ownerDocument.fonts]"
        ".filter((f) => f.family.includes('Escaped')).map((f) => f.loaded.catch(() => null)))"
    )
    fetched = agent.page.evaluate(
        "() => performance.getEntriesByType('resource')"
        ".map((e) => e.name).filter((n) => n.includes('escfont'))"
    )
    assert fetched == [], fetched


# Events a few kilobytes long that kept the agent's tab busy for minutes: the neutraliser's pattern
# for `url(…)` tried every split of a run of spaces (4,000: 155 s in node), in a style rule as
# anywhere; rrweb made a font's bytes of any array-like (`{"length": 200000000}`: over a minute).
BUSY = {
    "spaces in a url": """(spaces) => {
      window.__inject = (ids) => [
        {source: 8, id: ids['page-style'],
          adds: [{rule: `h1 { background: url(${spaces}x }`, index: 0}]},
      ];
      document.body.append(document.createElement('i'));
    }""",
    "a font's length": """() => {
      window.__inject = (ids) => [
        {source: 10, family: 'Zeros', buffer: true, descriptors: {},
          fontSource: '{"length": 200000000}'},
      ];
      document.body.append(document.createElement('i'));
    }""",
}


@pytest.mark.parametrize("attack", sorted(BUSY))
def test_events_built_to_keep_the_console_busy_leave_it_live(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party, attack: str
) -> None:
    url = other_origin.page(
        "busy.html",
        HOOK + '<style id="page-style">h1 { color: rgb(1, 2, 3) }</style><h1>Busy</h1>',
        live,
        title="Busy",
    )
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Busy")).to_have_css("color", "rgb(1, 2, 3)")
    caught_up(customer, view)
    agent.page.evaluate(WATCH_LONG_TASKS)
    customer.page.evaluate(BUSY[attack], " " * 4000)
    customer.page.wait_for_function("() => window.__inject === null")
    # The page's next change shows within the usual wait, and no task of the agent's tab came
    # near a hang (a hang detector, not a measure of speed: each took a minute or more).
    caught_up(customer, view)
    expect(view.get_by_role("heading", name="Busy")).to_have_css("color", "rgb(1, 2, 3)")
    longest = agent.page.evaluate("() => Math.max(0, ...window.__longTasks)")
    assert longest < 10_000, f"the agent's tab was busy {longest:.0f} ms on end"


WATCH_LONG_TASKS = """() => {
  window.__longTasks = [];
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) window.__longTasks.push(entry.duration);
  }).observe({type: 'longtask'});
}"""


# An honest page's escaped quote and line break in CSS strings: decoded bare by the neutraliser,
# `content: "\""` became `"""`, a string left open to the end of the line, which took the rules
# after it on that line (the heading's colour) with it.
QUOTES = (
    r'<style>h1::before { content: "\"" } h1 { color: rgb(4, 5, 6) }'
    r' h2::after { content: "one\A two" } h2 { color: rgb(7, 8, 9) }</style>'
    "<h1>Quoted</h1><h2>Broken</h2>"
)


def test_an_honest_escaped_quote_or_line_break_in_css_reaches_the_mirror_as_written(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    url = other_origin.page("quotes.html", QUOTES, live, title="Quotes")
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    expect(view.locator("h2")).to_have_css("color", "rgb(7, 8, 9)")
    expect(view.locator("h1")).to_have_css("color", "rgb(4, 5, 6)")
    before = view.locator("h1").evaluate("(h) => getComputedStyle(h, '::before').content")
    after = view.locator("h2").evaluate("(h) => getComputedStyle(h, '::after').content")
    assert (before, after) == ('"\\""', '"one\\a two"'), (before, after)
