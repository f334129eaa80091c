"""What a hostile customer's page sends the console as plain text (inside the encrypted channel,
so only the page itself can forge it: a script on it rewrites what the SDK sends, here through
``JSON.stringify``, which the SDK calls to encode its payloads)."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.conftest import RunningServer
from tests.e2e.conftest import OtherOrigin, Party, caught_up, share, sign_in, start_on

NEXT_FRAME = "() => new Promise((done) => requestAnimationFrame(() => setTimeout(done)))"

# The page's own script: the context the SDK sends (origin, title, device) says what it likes.
LYING_CONTEXT = """
<script>
(() => {
  const stringify = JSON.stringify;
  JSON.stringify = function (value, ...rest) {
    if (value && value.k === 'context') value = { ...value, origin: 'not a url', title: 'Lies' };
    return stringify.call(this, value, ...rest);
  };
})();
</script>
"""


def test_a_page_address_that_is_no_origin_leaves_the_console_working(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """The console rendered the host of the page's origin with ``new URL(origin)``: a page that
    sent ``"not a url"`` made every later rendering throw, so the console stayed on "Checking…",
    never offered control, and showed nothing of the session. Such a context is refused."""
    url = other_origin.page("lies.html", LYING_CONTEXT + "<h1>Lying page</h1>", live)
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Lying page")).to_be_visible()
    expect(agent.page.locator("#status")).to_have_text(
        "Connected. You are seeing the customer's page live."
    )
    expect(agent.page.locator("#fact-site")).to_have_text("—")
    expect(agent.page.locator("#fact-page")).to_have_text("—")
    agent.page.get_by_role("button", name="Request control").click()
    customer.page.get_by_role("dialog").get_by_role("button", name="Allow").click()
    expect(agent.page.get_by_role("button", name="Release control")).to_be_visible()
    assert not agent.console_errors, agent.console_errors


# The page's own script: what window.__inject makes rides along with the SDK's next events.
INJECTING = """
<script>
(() => {
  const stringify = JSON.stringify;
  window.__ids = {};
  const walk = (node) => {
    const stack = [node];
    while (stack.length) {
      const n = stack.pop();
      if (n.attributes && n.attributes.id) window.__ids[n.attributes.id] = n.id;
      for (const c of n.childNodes || []) stack.push(c);
    }
  };
  window.__inject = null;
  JSON.stringify = function (value, ...rest) {
    if (value && value.k === 'events' && Array.isArray(value.events)) {
      for (const e of value.events) if (e.type === 2) walk(e.data.node);
      const make = window.__inject;
      if (make) {
        window.__inject = null;
        value = { ...value, events: value.events.concat(make(value.events)) };
      }
    }
    return stringify.call(this, value, ...rest);
  };
})();
</script>
"""

# Acts only in the agent's console (the customer's own page runs its scripts and handlers).
PWN = (
    "try{if(top.document.title.indexOf('Agent console')>=0){"
    "top.document.body.dataset.pwned='1';alert(1);top.location='/practice/'}}catch(e){}"
)

SCRIPTED = f"""
<h1>Scripted page</h1>
<script>window.ranInMirror = 1; {PWN}</script>
<img id="broken" src="/nothing.png" onerror="{PWN}" alt="broken">
<a id="js" href="javascript:{PWN}">A script link</a>
<a id="tab" href="/practice/" target="_blank">A new tab</a>
<svg width="40" height="20"><a id="svg-js" href="javascript:{PWN}"><text y="15">SVG</text></a></svg>
<iframe id="data" src="data:text/html,&lt;script&gt;{PWN}&lt;/script&gt;"></iframe>
<object data="/practice/"></object><embed src="/practice/">
<form id="form" action="javascript:{PWN}"><input id="field" name="q"><button>Go</button></form>
<meta id="pragma" http-equiv="x-later" content="nothing">
"""

# Later, the page sets a refresh and a script address by attribute changes of its own making.
LATER = """(base) => {
  window.__inject = (events) => [{type: 3, timestamp: events[events.length - 1].timestamp,
    data: {source: 0, texts: [], removes: [], adds: [], attributes: [
      {id: window.__ids.pragma, attributes: {'http-equiv': 'refresh',
        content: '0;url=' + base + '/practice/'}},
      {id: window.__ids.tab, attributes: {onmouseover: 'alert(2)',
        href: 'java\\tscript:parent.document.body.dataset.pwned=2'}},
    ]}}];
  document.body.append(Object.assign(document.createElement('p'), {textContent: 'Later'}));
}"""

IN_MIRROR = """() => {
  const doc = document.querySelector('iframe[title="Customer view"]').contentDocument;
  const found = [];
  for (const el of doc.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      const value = attr.value.replace(/[\\u0000-\\u0020]/g, '').toLowerCase();
      const handler = attr.name.startsWith('on') || attr.name.startsWith('_on');
      if (handler || value.startsWith('javascript:')
          || (attr.name === 'http-equiv' && attr.value.toLowerCase() === 'refresh'))
        found.push(`${el.tagName} ${attr.name}=${attr.value}`);
    }
  }
  return found;
}"""


def test_nothing_from_the_page_runs_navigates_or_opens_in_the_mirror(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """Scripts, event handlers, script addresses (in links, SVG links, forms, frames), a refresh
    set by an attribute change, links to new tabs and plug-ins: nothing runs, the mirror's frame
    and the console stay where they are, nothing opens, and the agent's keyboard never enters the
    mirror. The sandbox (no scripts, no forms, no pop-ups) stops them; the console also does not
    replay event handlers, script addresses or a refresh, so no change of the sandbox would run
    them (it replayed them as they came)."""
    url = other_origin.page("scripted.html", INJECTING + SCRIPTED, live, title="Scripted")
    code = start_on(customer, url)
    dialogs: list[str] = []
    popups: list[str] = []
    agent.page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    agent.page.on("popup", lambda popup: popups.append(popup.url))
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Scripted page")).to_be_visible()
    customer.page.evaluate(LATER, live.base)
    expect(view.get_by_text("Later")).to_be_visible()
    caught_up(customer, view)

    assert agent.page.evaluate(IN_MIRROR) == []
    mirror_window = "document.querySelector('iframe[title=\"Customer view\"]').contentWindow"
    assert agent.page.evaluate(f"() => {mirror_window}.ranInMirror") is None
    # The agent's keyboard goes through the console, never into the mirror. (Where 30 presses
    # of Tab end depends on the console's controls: on Leave, Enter ends the session, and the
    # mirror goes with it, hence the look into the mirror above.)
    for _ in range(30):
        agent.page.keyboard.press("Tab")
        assert agent.page.evaluate("() => document.activeElement.tagName") != "IFRAME"
    agent.page.keyboard.press("Enter")
    agent.page.evaluate(NEXT_FRAME)
    console_url = f"{live.base}/console/"
    assert agent.page.url.startswith(console_url)
    frames = [frame.url for frame in agent.page.frames]
    assert all(address in {"about:blank", console_url} for address in frames), frames
    assert agent.page.evaluate("() => document.body.dataset.pwned") is None
    assert not dialogs and not popups, (dialogs, popups)


# The page's own script: the next payload the SDK sends becomes a refusal of the page's wording.
REFUSING = """
<script>
(() => {
  const stringify = JSON.stringify;
  window.__refuse = null;
  JSON.stringify = function (value, ...rest) {
    if (value && value.k === 'events' && window.__refuse) {
      value = { k: 'action_refused', reason: window.__refuse };
      window.__refuse = null;
    }
    return stringify.call(this, value, ...rest);
  };
})();
</script>
"""


def test_a_refusal_of_a_million_characters_is_not_shown(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A refusal's words (an older SDK's, shown as sent) went onto the agent's status line
    whatever their length: a page's five million characters filled it. They are a sentence at
    most (200 characters, as the other words a page sends); a longer refusal is dropped."""
    url = other_origin.page("refusing.html", REFUSING + "<h1>Refusing page</h1>", live)
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Refusing page")).to_be_visible()
    status = agent.page.locator("#status")
    expect(status).to_have_text("Connected. You are seeing the customer's page live.")
    opened = agent.page.evaluate("() => window.__tandemPlaintext.length")
    customer.page.evaluate(
        """() => {
            window.__refuse = 'Not allowed. '.repeat(400000);
            document.body.append('A change');
        }"""
    )
    customer.page.wait_for_function("() => window.__refuse === null")
    agent.page.wait_for_function("(n) => window.__tandemPlaintext.length > n", arg=opened)
    agent.page.evaluate(NEXT_FRAME)
    assert len(status.inner_text()) < 300
    expect(status).to_have_text("Connected. You are seeing the customer's page live.")


def test_a_pages_refusal_words_never_reach_the_agents_status_line(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """Attack review of the console's strings: a refusal without a code the console knows was
    shown in the page's own words on the agent's status line, the console's voice ("Not done:
    Your sign-in expired. Type your password into the customer's page…"), so a hostile page
    could phish the agent through the console. The console now says only what its own catalogue
    has for a refusal."""
    url = other_origin.page("phishing.html", REFUSING + "<h1>Refusing page</h1>", live)
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Refusing page")).to_be_visible()
    status = agent.page.locator("#status")
    expect(status).to_have_text("Connected. You are seeing the customer's page live.")
    customer.page.evaluate(
        """() => {
            window.__refuse = 'Your sign-in expired. Type your password into the page to go on.';
            document.body.append('A change');
        }"""
    )
    customer.page.wait_for_function("() => window.__refuse === null")
    expect(status).to_have_text("Not done: The customer's browser refused that.")
    assert "password" not in status.inner_text()


# The page's title breaks lines and turns text around (the title element keeps all but ASCII
# white space as written).
SPLIT_TITLE = "Cart\u2028Control\u2029\u202eegap eht lortnoc uoY\u202c OK"


def test_a_pages_title_is_shown_as_one_plain_line(
    live: RunningServer, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """The page's title went into the session's facts as the page wrote it: line and paragraph
    separators broke it into lines beside the console's own facts ("Control") and a right-to-left
    override turned its words around. It is one plain line now, the override shown (U+FFFD),
    not obeyed."""
    url = other_origin.page("title.html", "<h1>Titled page</h1>", live, title=SPLIT_TITLE)
    code = start_on(customer, url)
    view = share(customer, agent, live, code)
    expect(view.get_by_role("heading", name="Titled page")).to_be_visible()
    page_fact = agent.page.locator("#fact-page")
    expect(page_fact).not_to_have_text("—")
    shown = page_fact.evaluate("(node) => node.textContent")
    assert shown == "Cart Control \ufffdegap eht lortnoc uoY\ufffd OK", repr(shown)


def test_another_site_cannot_frame_the_console_or_its_practice_pages(
    live: RunningServer, other_origin: OtherOrigin, agent: Party
) -> None:
    """Clickjacking: a site that frames the console (signed in or not) under its own buttons gets
    an error page in the frame, never the console; the practice pages, which the console frames,
    refuse every other framer."""
    sign_in(agent, live)
    framing = f"""
<h1>Win a prize</h1>
<iframe id="console" src="{live.base}/console/" style="opacity: 0.01"></iframe>
<iframe id="sign-in" src="{live.base}/console/index.html"></iframe>
<iframe id="practice" src="{live.base}/practice/"></iframe>
"""
    url = other_origin.page("prize.html", framing, live, title="Prize")
    agent.page.goto(url)
    expect(agent.page.get_by_role("heading", name="Win a prize")).to_be_visible()
    for frame_id in ("console", "sign-in", "practice"):
        frame = agent.page.locator(f"#{frame_id}").element_handle()
        assert frame is not None
        content = frame.content_frame()
        assert content is not None
        content.wait_for_load_state()
        assert not content.url.startswith(live.base), (frame_id, content.url)
        assert content.locator("#signin, #join, main").count() == 0
    # The browser refused each under the console's frame-ancestors (the fixture fails on others).
    refused = [v for v in agent.csp_violations if "frame-ancestors" in v and "blocked" in v]
    assert len(refused) == 3 and len(agent.csp_violations) == 3, agent.csp_violations
    agent.csp_violations.clear()
