"""Added nodes a hostile page's SDK crafts, as the agent's console applies them.

A script on the customer's page rewrites the SDK's outgoing events (through ``JSON.stringify``,
which the SDK calls to encode them, as in ``test_mirror_size.py``): what it adds is encrypted
like anything else and reaches the console's replayer as the page wrote it.

- A node naming as next sibling an id the mirror does not hold: rrweb's add loop waited for it
  until its 500 ms limit, then dropped the node (each such mutation stalled the agent's tab that
  long). The console's replayer (``sdk/rrweb-patches.mjs``, "Next siblings waited for") puts it at
  its parent's end at once.
- A text added to a ``<style>`` without rrweb's ``isStyle`` flag: rrweb takes it as it is, so its
  ``url()`` reached the mirror (only the mirror's own policy kept it from fetching). The console
  neutralises it as CSS (``sdk/src/console/assets.ts``, ``StyleParents``).
- CSS split across two texts of a ``<style>`` (``background-image: u`` and ``rl(...)``: the
  browser reads them as one), and a text rrweb's legacy path sets aside (a sibling id -1) and
  then inserts into a ``<style>`` whatever parent it named: the mirror's Chromium tried to load
  both addresses (its policy blocked them). A comment now goes before each text added to a
  ``<style>`` (``CSS_TEXT_SEPARATOR``), and a set-aside text is neutralised as CSS.
"""

from __future__ import annotations

from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, caught_up, share, start_on

# The page's own script: the next events payload the SDK encodes carries what window.__inject
# makes (`made`) of the ids of the page's last full snapshot (by element id attribute), as the
# events `events_of` writes of it.
HOOK_OF = """
<script>
(() => {
  const stringify = JSON.stringify;
  window.__inject = null;
  window.__ids = null;
  JSON.stringify = function (value, ...rest) {
    if (value && value.k === 'events' && Array.isArray(value.events)) {
      for (const e of value.events) if (e.type === 2) {
        const ids = {};
        const stack = [e.data.node];
        while (stack.length) {
          const n = stack.pop();
          if (n.tagName === 'body') ids.body = n.id;
          if (n.attributes && n.attributes.id) ids[n.attributes.id] = n.id;
          for (const c of n.childNodes || []) stack.push(c);
        }
        window.__ids = ids;
      }
      const make = window.__inject;
      if (make && window.__ids) {
        window.__inject = null;
        const timestamp = value.events[value.events.length - 1].timestamp;
        const made = make(window.__ids);
        value = { ...value, events: value.events.concat(EVENTS_OF_MADE) };
      }
    }
    return stringify.call(this, value, ...rest);
  };
})();
</script>
"""


def hook(events_of: str) -> str:
    """The page's script, its injected events written by the JavaScript `events_of` of `made`."""
    return HOOK_OF.replace("EVENTS_OF_MADE", events_of)


# What window.__inject makes: the adds of one mutation.
HOOK = hook(
    "[{type: 3, timestamp, data: {source: 0, texts: [], attributes: [], removes: [], adds: made}}]"
)

UNKNOWN_NEXT = """() => {
  window.__inject = (ids) => [
    {parentId: ids.body, nextId: 99999999, node: {type: 2, id: 40000000, tagName: 'p',
      attributes: {id: 'placed'}, childNodes: []}},
    {parentId: 40000000, nextId: null, node: {type: 3, id: 40000001, textContent: 'Placed'}},
  ];
  document.body.append(document.createElement('i'));  // a change: the SDK sends an events payload
}"""


def test_a_node_whose_next_sibling_the_mirror_does_not_hold_is_placed_at_once(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    url = other_origin.page("next.html", HOOK + "<h1>Next page</h1>", live, title="Next")
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Next page")).to_be_visible()
    caught_up(customer, view)
    customer.page.evaluate(UNKNOWN_NEXT)
    customer.page.wait_for_function("() => window.__inject === null")
    # rrweb's own loop dropped it after 500 ms of waiting; the console's places it at the end.
    expect(view.locator("#placed")).to_have_text("Placed")
    caught_up(customer, view)
    assert view.locator("body > *").evaluate_all(
        "(nodes) => nodes.map((n) => n.id).filter((id) => id === 'placed')"
    ) == ["placed"]


STYLE_TEXT = """(spy) => {
  window.__inject = (ids) => [
    {parentId: ids['page-style'], nextId: null, node: {type: 3, id: 41000000,
      textContent: `h1 { background-image: url(${spy}/leak.png); color: rgb(4, 5, 6) }`}},
  ];
  document.body.append(document.createElement('i'));
}"""


def test_a_style_text_without_rrwebs_flag_reaches_the_mirror_neutralised(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    spy = "http://spy.invalid"
    url = other_origin.page(
        "style.html",
        HOOK + '<style id="page-style">h1 { color: rgb(1, 2, 3) }</style><h1>Styled page</h1>',
        live,
        title="Styled",
    )
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    heading = view.get_by_role("heading", name="Styled page")
    expect(heading).to_have_css("color", "rgb(1, 2, 3)")
    caught_up(customer, view)
    customer.page.evaluate(STYLE_TEXT, spy)
    customer.page.wait_for_function("() => window.__inject === null")
    # The text went into the page's <style> as CSS (its colour applies) without its address.
    expect(heading).to_have_css("color", "rgb(4, 5, 6)")
    styles = view.locator("style").evaluate_all("(nodes) => nodes.map((n) => n.textContent)")
    assert any("rgb(4, 5, 6)" in text for text in styles), styles
    assert not any("spy.invalid" in text for text in styles), styles
    assert heading.evaluate("(h) => getComputedStyle(h).backgroundImage") == "none"


SPLIT_AND_SET_ASIDE = """(spy) => {
  window.__inject = (ids) => [
    // Two texts that each name nothing, read by the browser as one: "u" + "rl(...)".
    {parentId: ids['page-style'], nextId: null, node: {type: 3, id: 41000001,
      textContent: 'h1 { color: rgb(7, 8, 9); background-image: u'}},
    {parentId: ids['page-style'], nextId: null, node: {type: 3, id: 41000002,
      textContent: `rl(${spy}/split.png) }`}},
    // rrweb's legacy "sibling not known yet" (-1): set aside under the body, then inserted into
    // the <style> beside a text there that names it as its previous sibling.
    {parentId: ids.body, previousId: -1, nextId: null, node: {type: 3, id: 41000003,
      textContent: `h2 { color: rgb(9, 8, 7); background-image: url(${spy}/aside.png) }`}},
    {parentId: ids['page-style'], previousId: 41000003, nextId: null, node: {type: 3, id: 41000004,
      textContent: 'h6 { }'}},
  ];
  document.body.append(document.createElement('i'));
}"""


def test_css_split_across_a_styles_texts_or_set_aside_by_rrweb_reaches_the_mirror_neutralised(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    spy = "http://spy.invalid"
    url = other_origin.page(
        "split.html",
        HOOK
        + '<style id="page-style">h1, h2 { color: rgb(1, 2, 3) }</style>'
        + "<h1>Split</h1><h2>Aside</h2>",
        live,
        title="Split",
    )
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    h1 = view.get_by_role("heading", name="Split")
    h2 = view.get_by_role("heading", name="Aside")
    expect(h1).to_have_css("color", "rgb(1, 2, 3)")
    caught_up(customer, view)
    customer.page.evaluate(SPLIT_AND_SET_ASIDE, spy)
    customer.page.wait_for_function("() => window.__inject === null")
    # The texts went into the <style> as CSS (their colours apply), without an address.
    expect(h1).to_have_css("color", "rgb(7, 8, 9)")
    expect(h2).to_have_css("color", "rgb(9, 8, 7)")
    for heading in (h1, h2):
        assert heading.evaluate("(h) => getComputedStyle(h).backgroundImage") == "none"
    css = view.locator("#page-style").evaluate(
        "(s) => [...s.childNodes].filter((n) => n.nodeType === 3).map((n) => n.data).join('')"
    )
    assert "url(" not in css.replace("blocked-url(", ""), css


NOT_STRINGS = """(spy) => {
  window.__inject = (ids) => [
    // rrweb's replayer writes any value with toString(): an array's one item is the address.
    {parentId: ids.body, nextId: null, node: {type: 2, id: 42000000, tagName: 'img',
      attributes: {id: 'arrayed', src: [`${spy}/src.png`],
        style: [`background: url(${spy}/style.png)`], rr_dataURL: [`${spy}/data-url.png`]},
      childNodes: []}},
    {parentId: ids['page-style'], nextId: null, node: {type: 3, id: 42000001,
      textContent: [`h1 { color: rgb(4, 5, 6); background-image: url(${spy}/text.png) }`]}},
  ];
  document.body.append(document.createElement('i'));
}"""

WATCH_VIOLATIONS = """(body) => {
  const doc = body.ownerDocument;
  doc.__blocked = [];
  doc.addEventListener('securitypolicyviolation', (e) => doc.__blocked.push(e.blockedURI));
}"""


def test_values_that_are_no_string_reach_the_mirror_without_their_addresses(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    spy = "http://spy.invalid"
    url = other_origin.page(
        "arrays.html",
        HOOK + '<style id="page-style">h1 { color: rgb(1, 2, 3) }</style><h1>Arrays</h1>',
        live,
        title="Arrays",
    )
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    heading = view.get_by_role("heading", name="Arrays")
    expect(heading).to_have_css("color", "rgb(1, 2, 3)")
    caught_up(customer, view)
    view.locator("body").evaluate(WATCH_VIOLATIONS)
    customer.page.evaluate(NOT_STRINGS, spy)
    customer.page.wait_for_function("() => window.__inject === null")
    expect(view.locator("#arrayed")).to_be_attached()
    caught_up(customer, view)
    markup = view.locator("html").evaluate("(h) => h.outerHTML")
    assert "spy.invalid" not in markup, markup
    # Nothing was even tried (the mirror's policy would have blocked and reported it).
    assert view.locator("body").evaluate("(b) => b.ownerDocument.__blocked") == []


# A mutation does not say whose attributes change: `HREF` (which the browser lowercases on an
# HTML element) and a data: stylesheet reached a <link> as its address; a frame's data: page.
LINK_ADDRESSES = """(spy) => {
  window.__inject = (ids) => [{type: 3, timestamp: 0, data: {source: 0, texts: [], removes: [],
    adds: [
      {parentId: ids.body, nextId: null, node: {type: 2, id: 43000000, tagName: 'link',
        attributes: {id: 'upper', rel: 'stylesheet'}, childNodes: []}},
      {parentId: ids.body, nextId: null, node: {type: 2, id: 43000001, tagName: 'link',
        attributes: {id: 'sheet', rel: 'stylesheet'}, childNodes: []}},
      {parentId: ids.body, nextId: null, node: {type: 2, id: 43000002, tagName: 'iframe',
        attributes: {id: 'framed'}, childNodes: []}},
    ],
    attributes: [
      {id: 43000000, attributes: {HREF: `${spy}/upper.css`}},
      {id: 43000001, attributes: {href: `data:text/css,h1{background:url(${spy}/sheet.png)}`}},
      {id: 43000002, attributes: {src: `data:text/html,<img src=${spy}/framed.png>`}},
    ]}}];
  document.body.append(document.createElement('i'));
}"""


def test_addresses_a_mutation_gives_a_link_or_a_frame_are_neutralised(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    spy = "http://spy.invalid"
    url = other_origin.page(
        "links.html", HOOK_OF.replace("EVENTS_OF_MADE", "made") + "<h1>Links</h1>", live
    )
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Links")).to_be_visible()
    caught_up(customer, view)
    view.locator("body").evaluate(WATCH_VIOLATIONS)
    customer.page.evaluate(LINK_ADDRESSES, spy)
    customer.page.wait_for_function("() => window.__inject === null")
    expect(view.locator("#framed")).to_be_attached()
    caught_up(customer, view)
    for element in ("#upper", "#sheet", "#framed"):
        assert view.locator(element).evaluate("(e) => e.outerHTML").find("spy.invalid") < 0
    assert view.locator("body").evaluate("(b) => b.ownerDocument.__blocked") == []
