"""A hostile page cannot make the agent's mirror hold more than the console allows.

The customer's page is hostile content in the agent's browser, and what it sends need not be what
it holds: a script on it that rewrites the SDK's outgoing events (here through ``JSON.stringify``,
which the SDK calls to encode them) adds a hundred thousand nodes to the mirror with each change,
change after change, while its own document stays small. The console's tab (the mirror is
same-origin with it: one renderer) grew without end (1.5 million elements after fifteen changes,
and on). The console drops the mirror at its bound (``sdk/src/console/budget.ts``), says why, stays
usable, and shows the customer's next page; an auditor's player does not play such a recording.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from playwright.sync_api import expect

from tests.conftest import RunningServer, add_user
from tests.e2e.conftest import OtherOrigin, Party, caught_up, share, start_on
from tests.e2e.recorded import play_recording, recording_key, shared_recording, stop_recording

# The page's own script: each events payload the SDK encodes carries what window.__inject makes.
HOOK = """
<script>
(() => {
  const stringify = JSON.stringify;
  const bodyOf = (node) => {
    const stack = [node];
    while (stack.length) {
      const n = stack.pop();
      if (n.tagName === 'body') return n.id;
      for (const c of n.childNodes || []) stack.push(c);
    }
    return null;
  };
  window.__inject = null;
  JSON.stringify = function (value, ...rest) {
    if (value && value.k === 'events' && Array.isArray(value.events)) {
      for (const e of value.events) if (e.type === 2) window.__bodyId = bodyOf(e.data.node);
      const make = window.__inject;
      if (make && window.__bodyId) {
        window.__inject = null;
        value = { ...value, events: value.events.concat(make(value.events)) };
      }
    }
    return stringify.call(this, value, ...rest);
  };
})();
</script>
"""

NEXT_FRAME = "() => new Promise((done) => requestAnimationFrame(() => setTimeout(done)))"

FLOOD = """([round, count]) => {
  window.__inject = (events) => {
    const adds = [];
    for (let i = 0; i < count; i++) {
      const node = {type: 2, id: 10000000 + round * count + i, tagName: 'b', attributes: {},
        childNodes: []};
      adds.push({parentId: window.__bodyId, nextId: null, node});
    }
    const timestamp = events[events.length - 1].timestamp;
    return [{type: 3, timestamp, data: {source: 0, texts: [], attributes: [], removes: [], adds}}];
  };
  document.body.append(document.createElement('i'));  // a change: the SDK sends an events payload
}"""


def test_a_page_that_floods_the_mirror_is_dropped_at_the_bound_and_the_next_page_shows(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    url = other_origin.page("big.html", HOOK + "<h1>Big page</h1>", live, title="Big")
    next_page = other_origin.page("next.html", "<h1>Next page</h1>", live, title="Next")
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Big page")).to_be_visible()
    caught_up(customer, view)
    status = agent.page.locator("#status")
    mirror_frame = agent.page.locator('iframe[title="Customer view"]')
    rounds = 0
    # 100 000 nodes a change; the customer's page holds none of them.
    while mirror_frame.count() and rounds < 6:
        customer.page.evaluate(FLOOD, [rounds, 100_000])
        customer.page.wait_for_function("() => window.__inject === null")
        caught_up_or_dropped(customer, agent)
        rounds += 1
    expect(status).to_contain_text("too large to show here")
    expect(mirror_frame).to_have_count(0)
    assert rounds == 3, f"dropped after {rounds} floods of 100 000 nodes (the bound is 250 000)"
    assert customer.page.locator("b").count() == 0
    # What the page sends while it is too large is not shown: a change the console opened (its
    # decrypted frames grow) leaves the mirror dropped.
    opened = agent.page.evaluate("() => window.__tandemPlaintext.length")
    customer.page.evaluate("() => document.body.append('More text')")
    agent.page.wait_for_function("(n) => window.__tandemPlaintext.length > n", arg=opened)
    agent.page.evaluate(NEXT_FRAME)
    assert mirror_frame.count() == 0
    expect(status).to_contain_text("too large to show here")
    # The console stays usable; the customer's next page (a full snapshot that fits) shows.
    customer.page.goto(next_page)
    view = agent.page.frame_locator('iframe[title="Customer view"]')
    expect(view.get_by_role("heading", name="Next page")).to_be_visible()
    expect(status).not_to_contain_text("too large")
    expect(agent.page.get_by_role("button", name="Leave")).to_be_enabled()


DEEP = """(depth) => {
  window.__inject = (events) => {
    const adds = [];
    let parentId = window.__bodyId;
    for (let i = 0; i < depth; i++) {
      const id = 30000000 + i;
      const node = {type: 2, id, tagName: 'b', attributes: {}, childNodes: []};
      adds.push({parentId, nextId: null, node});
      parentId = id;
    }
    const timestamp = events[events.length - 1].timestamp;
    return [{type: 3, timestamp, data: {source: 0, texts: [], attributes: [], removes: [], adds}}];
  };
  document.body.append(document.createElement('i'));
}"""


def test_a_page_nested_thousands_deep_is_dropped_and_the_agents_tab_lives_on(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """5 000 elements each inside the last, in one change (the console applies it at once): the
    agent's renderer crashed (console and mirror with it) before the mirror's depth was bounded."""
    url = other_origin.page("deep.html", HOOK + "<h1>Deep page</h1>", live, title="Deep")
    next_page = other_origin.page("next.html", "<h1>Next page</h1>", live, title="Next")
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Deep page")).to_be_visible()
    caught_up(customer, view)
    crashed: list[bool] = []
    agent.page.on("crash", lambda _page: crashed.append(True))
    customer.page.evaluate(DEEP, 5_000)
    customer.page.wait_for_function("() => window.__inject === null")
    caught_up_or_dropped(customer, agent)
    assert not crashed
    expect(agent.page.locator("#status")).to_contain_text("too large to show here")
    customer.page.goto(next_page)
    view = agent.page.frame_locator('iframe[title="Customer view"]')
    expect(view.get_by_role("heading", name="Next page")).to_be_visible()
    expect(agent.page.get_by_role("button", name="Leave")).to_be_enabled()


FLOOD_TEXT = """([round, count, chars]) => {
  window.__inject = (events) => {
    const adds = [];
    const title = 'x'.repeat(chars);
    for (let i = 0; i < count; i++) {
      const node = {type: 2, id: 20000000 + round * count + i, tagName: 'b', attributes: {title},
        childNodes: []};
      adds.push({parentId: window.__bodyId, nextId: null, node});
    }
    const timestamp = events[events.length - 1].timestamp;
    return [{type: 3, timestamp, data: {source: 0, texts: [], attributes: [], removes: [], adds}}];
  };
  document.body.append(document.createElement('i'));
}"""


def test_a_page_that_floods_the_mirror_with_text_is_dropped_at_the_bound(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """Few nodes, each with a million characters: ten a change (a payload's worth), without end."""
    url = other_origin.page("long.html", HOOK + "<h1>Long page</h1>", live, title="Long")
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Long page")).to_be_visible()
    caught_up(customer, view)
    mirror_frame = agent.page.locator('iframe[title="Customer view"]')
    rounds = 0
    while mirror_frame.count() and rounds < 8:
        customer.page.evaluate(FLOOD_TEXT, [rounds, 10, 1_000_000])
        customer.page.wait_for_function("() => window.__inject === null")
        caught_up_or_dropped(customer, agent)
        rounds += 1
    expect(agent.page.locator("#status")).to_contain_text("too large to show here")
    expect(mirror_frame).to_have_count(0)
    assert rounds == 4, f"dropped after {rounds} floods of 10 million characters (32 Mi allowed)"


def caught_up_or_dropped(customer: Party, agent: Party) -> None:
    """Wait until the mirror shows a marker the customer's page adds last, or is dropped."""
    marker = f"flood-caught-up-{secrets.token_hex(4)}"
    customer.page.evaluate(
        "(id) => document.body.append(Object.assign(document.createElement('p'), {id}))", marker
    )
    agent.page.wait_for_function(
        """(id) => {
            const frame = document.querySelector('iframe[title="Customer view"]');
            return !frame || !!frame.contentDocument.getElementById(id);
        }""",
        arg=marker,
        timeout=30_000,
    )


def flood(customer: Party, agent: Party, rounds: int) -> None:
    """``rounds`` changes of the page, each carrying 100 000 nodes its document does not hold."""
    for round in range(rounds):
        customer.page.evaluate(FLOOD, [round, 100_000])
        customer.page.wait_for_function("() => window.__inject === null")
        caught_up_or_dropped(customer, agent)


def test_a_recording_of_a_page_beyond_the_bound_is_not_played(
    live: RunningServer,
    other_origin: OtherOrigin,
    customer: Party,
    agent: Party,
    supervisor: Party,
    tmp_path: Path,
) -> None:
    office = supervisor  # a third browser: the admin, later the auditor
    key_file, key_id = recording_key(office, live, tmp_path)
    url = other_origin.page("recorded.html", HOOK + "<h1>Big page</h1>", live, title="Big")
    view = shared_recording(live, customer, agent, url, key_id, "Big page")
    caught_up(customer, view)
    flood(customer, agent, 3)
    expect(agent.page.locator("#status")).to_contain_text("too large to show here")
    stop_recording(customer)

    add_user(live.settings.data_dir, "aud", role="auditor", display_name="Aud")
    page = play_recording(live, office, key_file, key_id)
    expect(page.get_by_text("This recording shows a page too large to play here")).to_be_visible(
        timeout=30_000
    )
    expect(page.locator('iframe[title^="Recording "]')).to_have_count(0)
