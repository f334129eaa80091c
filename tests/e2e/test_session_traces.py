"""What a session leaves in the customer's browser once sharing stops (issue 14, item 11), and in
the agent's (promise 8, end-of-session clearing: docs/privacy.md, "End of session")."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, Route, expect

from tests.conftest import RunningServer
from tests.e2e.clearing import PAGE, TRACK_BLOBS, Traces, nothing_left
from tests.e2e.conftest import (
    LIVE_STATUS,
    FrameLog,
    Party,
    allow,
    get_help,
    join,
    mirror,
    share,
)
from tests.e2e.test_control import grant
from tests.e2e.test_workspace import laser_on, pick, point_at, wait_until

DATABASES = "async () => (await indexedDB.databases()).map((d) => d.name)"


def test_a_tab_opened_while_another_shares_keeps_the_sharing_tabs_keys(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    """A page with no session of its own deletes the key store a closed tab left behind, but
    not while another tab of the site shares: that tab's next page needs its keys."""
    customer.page.goto(f"{live.base}/demo/")
    view = share(customer, agent, live, get_help(customer))
    expect(view.get_by_text("Northwind Outfitters").first).to_be_visible()
    wait_until(customer.page, lambda: "tandem" in customer.page.evaluate(DATABASES))
    other = customer.context.new_page()
    other.goto(f"{live.base}/demo/cart.html")
    # The new page has decided (its clearing ran, or found the store held).
    wait_until(other, lambda: other.evaluate("() => typeof window.Tandem") == "object")
    held = other.evaluate(
        "async () => (await navigator.locks.query())"
        ".held.filter((lock) => lock.name === 'tandem:in-use').length"
    )
    assert held == 1
    assert "tandem" in other.evaluate(DATABASES)
    # The sharing tab's next page finds its keys: the agent sees it.
    customer.page.goto(f"{live.base}/demo/checkout.html")
    expect(mirror(agent).locator("#card")).to_be_attached()
    expect(customer.page.get_by_role("alert")).to_have_count(0)


# How many entries the key store holds (the database is opened only if it exists: opening it
# would make it).
KEY_ENTRIES = """async () => {
    if (!(await indexedDB.databases()).some((d) => d.name === 'tandem')) return null;
    return await new Promise((resolve, reject) => {
        const request = indexedDB.open('tandem');
        request.onsuccess = () => {
            const db = request.result;
            const count = db.transaction('keys').objectStore('keys').count();
            count.onsuccess = () => { db.close(); resolve(count.result); };
            count.onerror = () => { db.close(); reject(count.error); };
        };
        request.onerror = () => reject(request.error);
    });
}"""


def test_a_tab_that_ends_its_session_leaves_another_sharing_tabs_keys(
    live: RunningServer, customer: Party, agent: Party, supervisor: Party
) -> None:
    """Ending a session deletes that tab's own keys, not the store another tab of the site still
    shares from: the sharing tab's next page resumes."""
    customer.page.goto(f"{live.base}/demo/")
    view = share(customer, agent, live, get_help(customer))
    expect(view.get_by_text("Northwind Outfitters").first).to_be_visible()
    wait_until(customer.page, lambda: customer.page.evaluate(KEY_ENTRIES) == 1)
    # A second tab of the site shares with a second console, then stops.
    second = Party(customer.context, customer.context.new_page(), FrameLog(), [])
    second.page.goto(f"{live.base}/demo/cart.html")
    share(second, supervisor, live, get_help(second))
    wait_until(customer.page, lambda: customer.page.evaluate(KEY_ENTRIES) == 2)
    second.page.get_by_role("button", name="Stop sharing").click()
    expect(supervisor.page.get_by_text("Session ended")).to_be_visible()
    # The stopping tab's keys go (its ending is done); the sharing tab's stay.
    wait_until(customer.page, lambda: customer.page.evaluate(KEY_ENTRIES) != 2)
    assert customer.page.evaluate(KEY_ENTRIES) == 1
    # The sharing tab reloads: it finds its keys, and the agent sees its new page.
    customer.page.reload()
    customer.page.evaluate(
        "() => document.body.append(Object.assign(document.createElement('p'),"
        " {id: 'tandem-test-after-reload'}))"
    )
    expect(mirror(agent).locator("#tandem-test-after-reload")).to_be_attached()
    expect(customer.page.get_by_role("alert")).to_have_count(0)


TAB_RECORD = "() => JSON.parse(sessionStorage.getItem('tandem.session') ?? 'null')"
HELD = "async () => (await navigator.locks.query()).held.some((l) => l.name === 'tandem:in-use')"


@pytest.mark.parametrize(
    "stamp",
    [
        "Date.now() - 3600 * 1000",
        # What the SDK never writes (the page's own script, or a damaged record; JSON keeps a NaN
        # as null): taken for no stamp, the record was resumed as if just left.
        "null",
        "'yesterday'",
    ],
)
def test_a_tab_record_left_past_the_resume_window_is_not_resumed_and_its_keys_are_deleted(
    live: RunningServer, customer: Party, agent: Party, stamp: str
) -> None:
    """A tab closed without Stop sharing leaves its record in sessionStorage (which Reopen
    closed tab and session restore bring back) and its keys in the site's key store. The record
    says when its page was left: a page that finds it left longer ago than the session's resume
    window does not resume on the server's word (this server still holds the session: its
    grace is 30 s, the record's stamp is moved an hour back), and deletes the record and keys."""
    customer.page.goto(f"{live.base}/demo/")
    view = share(customer, agent, live, get_help(customer))
    expect(view.get_by_text("Northwind Outfitters").first).to_be_visible()
    wait_until(customer.page, lambda: customer.page.evaluate(KEY_ENTRIES) == 1)
    # The page is left (its pagehide): a page of the site without the SDK.
    customer.page.goto(f"{live.base}/healthz")
    wait_until(customer.page, lambda: not customer.page.evaluate(HELD))
    left = customer.page.evaluate(TAB_RECORD)
    assert customer.page.evaluate(KEY_ENTRIES) == 1  # still there, as a closed tab leaves it
    customer.page.evaluate(
        """() => {
            const record = JSON.parse(sessionStorage.getItem('tandem.session'));
            record.leftAt = STAMP;
            sessionStorage.setItem('tandem.session', JSON.stringify(record));
        }""".replace("STAMP", stamp)
    )
    # The tab comes back to the site: nothing resumed, nothing of the session left.
    customer.page.goto(f"{live.base}/demo/cart.html")
    wait_until(customer.page, lambda: "tandem" not in customer.page.evaluate(DATABASES))
    assert customer.page.evaluate(TAB_RECORD) is None
    assert customer.page.evaluate("() => window.Tandem.state") == "idle"
    expect(customer.page.get_by_role("button", name="Get help")).to_be_visible()
    expect(customer.page.get_by_role("button", name="Stop sharing")).to_have_count(0)
    assert isinstance(left.get("leftAt"), int | float), "the page left stamped its record"


CONSOLE_KEY_ENTRIES = KEY_ENTRIES.replace("'tandem'", "'tandem-console'")


CONSOLE_RECORD = "() => JSON.parse(sessionStorage.getItem('tandem.console.session') ?? 'null')"


def test_a_console_record_left_past_the_agents_window_is_not_rejoined_and_its_keys_are_deleted(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    """The same for the agent's console: a console tab reopened later than the session's window
    for a lost agent (the record's stamp is moved an hour back; this server would still take the
    rejoin: its window is 30 s) does not rejoin, and deletes its record and keys."""
    customer.page.goto(f"{live.base}/demo/")
    view = share(customer, agent, live, get_help(customer))
    expect(view.get_by_text("Northwind Outfitters").first).to_be_visible()
    wait_until(agent.page, lambda: agent.page.evaluate(CONSOLE_KEY_ENTRIES) == 1)
    agent.page.goto(f"{live.base}/healthz")
    left = agent.page.evaluate(CONSOLE_RECORD)
    agent.page.evaluate(
        """() => {
            const record = JSON.parse(sessionStorage.getItem('tandem.console.session'));
            record.leftAt = Date.now() - 3600 * 1000;
            sessionStorage.setItem('tandem.console.session', JSON.stringify(record));
        }"""
    )
    agent.page.goto(f"{live.base}/console/")
    wait_until(agent.page, lambda: "tandem-console" not in agent.page.evaluate(DATABASES))
    assert agent.page.evaluate(CONSOLE_RECORD) is None
    expect(agent.page.get_by_label("Session code")).to_be_visible()
    expect(agent.page.locator('iframe[title="Customer view"]')).to_have_count(0)
    assert isinstance(left.get("leftAt"), int | float), "the console left stamped its record"


def test_a_console_tab_whose_session_ends_leaves_another_console_tabs_keys(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    """Two console tabs of one sign-in, each in a session of its own: the one whose session ends
    deletes its own keys, not the key database the other tab needs to rejoin after a reload
    (nor does a console tab that opens with no session)."""
    customer.page.goto(f"{live.base}/demo/")
    view = share(customer, agent, live, get_help(customer))
    expect(agent.page.get_by_role("status")).to_contain_text(LIVE_STATUS)
    expect(view.locator("#search")).to_be_attached()
    wait_until(agent.page, lambda: agent.page.evaluate(CONSOLE_KEY_ENTRIES) == 1)
    # A second customer tab, and a second console tab of the same sign-in that joins it.
    second = Party(customer.context, customer.context.new_page(), FrameLog(), [])
    second.page.goto(f"{live.base}/demo/cart.html")
    code = get_help(second)
    console = Party(agent.context, agent.context.new_page(), FrameLog(), [])
    console.page.goto(f"{live.base}/console/")
    join(console, code)
    allow(second)
    expect(console.page.get_by_role("status")).to_contain_text(LIVE_STATUS)
    wait_until(agent.page, lambda: agent.page.evaluate(CONSOLE_KEY_ENTRIES) == 2)
    # The second console tab's session ends: its keys go, the first tab's stay.
    console.page.get_by_role("button", name="Leave").click()
    expect(console.page.get_by_text("Session ended")).to_be_visible()
    wait_until(agent.page, lambda: agent.page.evaluate(CONSOLE_KEY_ENTRIES) != 2)
    assert agent.page.evaluate(CONSOLE_KEY_ENTRIES) == 1
    # The first console tab reloads: it finds its keys and rejoins its session.
    customer.page.locator("#search").fill("before the reload")
    agent.page.reload()
    expect(mirror(agent).locator("#search")).to_have_value("before the reload")
    customer.page.locator("#search").fill("after the reload")
    expect(mirror(agent).locator("#search")).to_have_value("after the reload")
    expect(agent.page.get_by_role("status")).to_contain_text(LIVE_STATUS)


def test_a_duplicated_tab_that_takes_the_session_over_keeps_its_keys(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    """A tab duplicated while it shares (its sessionStorage copied: the same record, the same key
    handle) resumes the session; the original page is closed 4409 and ends, without deleting
    the keys the duplicate now shares with: the duplicate's next page goes on sharing."""
    customer.page.goto(f"{live.base}/demo/")
    share(customer, agent, live, get_help(customer))
    expect(agent.page.get_by_role("status")).to_contain_text(LIVE_STATUS)
    wait_until(customer.page, lambda: customer.page.evaluate(KEY_ENTRIES) == 1)
    # window.open copies the opener's sessionStorage into the new tab, as "Duplicate tab" does.
    with customer.context.expect_page() as opened:
        customer.page.evaluate("() => { window.open(location.href); }")
    duplicate = Party(customer.context, opened.value, FrameLog(), [])
    expect(duplicate.page.get_by_role("button", name="Stop sharing")).to_be_visible()
    # The original page lost the session (4409) and ended it on its side.
    expect(customer.page.get_by_role("button", name="Stop sharing")).to_have_count(0)
    duplicate.page.evaluate(
        "() => document.body.append(Object.assign(document.createElement('p'),"
        " {id: 'tandem-test-duplicate'}))"
    )
    expect(mirror(agent).locator("#tandem-test-duplicate")).to_be_attached()
    # The duplicate's next page finds the keys and shares it.
    duplicate.page.goto(f"{live.base}/demo/checkout.html")
    expect(mirror(agent).locator("#card")).to_be_attached()
    expect(duplicate.page.get_by_role("alert")).to_have_count(0)
    expect(duplicate.page.get_by_role("button", name="Stop sharing")).to_be_visible()


# Quick challenges (every 300 ms; the console's default is 3 s): a duplicated console tab that
# reused the original's command counters would show it within the first second.
QUICK_CHALLENGES = "window.__tandemFreshness = { challengeMs: 300, staleMs: 1500 };"
COMMAND_KINDS = (0x03, 0x07)  # the agent's commands and a supervisor's challenges (channel.ts)


def sealed_commands(frames: FrameLog) -> dict[tuple[int, int], set[bytes]]:
    """Every command frame the server relayed to the customer's page: (kind, counter) → the
    distinct ciphertexts sealed under that nonce."""
    sealed: dict[tuple[int, int], set[bytes]] = {}
    for frame in list(frames.received):
        if len(frame) > 9 and frame[0] in COMMAND_KINDS:
            counter = int.from_bytes(frame[1:9], "big")
            sealed.setdefault((frame[0], counter), set()).add(frame[9:])
    return sealed


def sharing(customer: Party) -> bool:
    return bool(customer.page.evaluate("() => window.Tandem.state") == "sharing")


def reused_nonces(frames: FrameLog) -> list[tuple[int, int]]:
    """The (kind, counter) pairs sealed more than once, with different ciphertexts."""
    return sorted(nonce for nonce, sealed in sealed_commands(frames).items() if len(sealed) > 1)


def duplicate_after_more_commands(
    agent: Party, customer: Party, close_original: bool = False
) -> Page:
    """Duplicate the console tab (window.open copies its sessionStorage, as "Duplicate tab"
    does), and hold the duplicate's script until the original sealed more commands after the
    copy (and was closed, with `close_original`): counters the copied record does not know of."""
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    agent.context.route("**/console/console.js*", hold)
    with agent.context.expect_page() as opened:
        agent.page.evaluate("() => { window.open(location.href); }")
    wait_until(agent.page, lambda: bool(held))
    count = len(sealed_commands(customer.frames))
    wait_until(customer.page, lambda: len(sealed_commands(customer.frames)) >= count + 2)
    if close_original:
        agent.page.close()
    for route in held:
        route.continue_()
    agent.context.unroute("**/console/console.js*", hold)
    return opened.value


def test_a_duplicated_console_tab_never_seals_under_the_originals_counters(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    """A console tab duplicated mid-session (window.open copies its sessionStorage, as "Duplicate
    tab" does: the same record, the same keys' handle, the same last command counter) must not
    take the session up: two documents sealing commands under one pairwise key from one counter
    reuse AES-GCM nonces, which hands the relay the key to forge commands. The duplicate says why
    and forgets the copied record; the original stays live and in control; no (kind, counter) is
    ever sealed twice."""
    agent.page.add_init_script(QUICK_CHALLENGES)
    customer.page.goto(f"{live.base}/demo/")
    share(customer, agent, live, get_help(customer))
    expect(agent.page.get_by_role("status")).to_contain_text(LIVE_STATUS)
    wait_until(agent.page, lambda: agent.page.evaluate(CONSOLE_KEY_ENTRIES) == 1)
    wait_until(customer.page, lambda: len(sealed_commands(customer.frames)) >= 3)
    duplicate = duplicate_after_more_commands(agent, customer)
    # Once the duplicate settled (on main: it rejoined, and the original tab was closed 4409), the
    # customer moves to another page: a new epoch, challenged at once by whichever tab has it.
    expect(duplicate.get_by_role("status")).to_contain_text(
        re.compile("Reconnected|another tab"), timeout=20_000
    )
    count = len(sealed_commands(customer.frames))
    customer.page.goto(f"{live.base}/demo/cart.html")
    wait_until(customer.page, lambda: sharing(customer))  # the new page took the session up
    # Commands go on (a challenge every 300 ms): none reuses a nonce.
    wait_until(
        customer.page,
        lambda: (
            bool(reused_nonces(customer.frames))
            or len(sealed_commands(customer.frames)) >= count + 10
            or not sharing(customer)
        ),
    )
    assert not reused_nonces(customer.frames), (
        f"command counters sealed twice: {reused_nonces(customer.frames)}"
    )
    assert sharing(customer)
    # The duplicate says why it does not take the session, and forgets the record it copied.
    expect(
        duplicate.get_by_text("This session is open in another tab of this browser")
    ).to_be_visible(timeout=20_000)
    expect(duplicate.locator('iframe[title="Customer view"]')).to_have_count(0)
    assert duplicate.evaluate("() => sessionStorage.getItem('tandem.console.session')") is None
    # The original goes on: challenged and answered (live), and in control of the page.
    count = len(sealed_commands(customer.frames))
    wait_until(customer.page, lambda: len(sealed_commands(customer.frames)) >= count + 5)
    expect(agent.page.get_by_role("status")).to_contain_text(LIVE_STATUS)
    expect(mirror(agent).locator("#cart-table")).to_be_attached()
    grant(customer, agent)
    assert customer.page.evaluate("() => window.Tandem.state") == "sharing"
    assert not reused_nonces(customer.frames)
    # The duplicate's keys were the original's: still there, and the original's reload rejoins.
    assert agent.page.evaluate(CONSOLE_KEY_ENTRIES) == 1
    duplicate.close()
    agent.page.reload()
    expect(agent.page.get_by_role("status")).to_contain_text("You have control", timeout=15_000)
    expect(mirror(agent).locator("#cart-table")).to_be_attached()
    count = len(sealed_commands(customer.frames))
    wait_until(customer.page, lambda: len(sealed_commands(customer.frames)) >= count + 3)
    assert not reused_nonces(customer.frames)


def test_a_duplicated_console_tab_whose_original_closes_goes_on_after_the_originals_counters(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    """The original console tab is closed while its duplicate waits for the keys' lock: the
    duplicate takes the session up (a reload, as far as it can tell), with counters after every
    one the original reserved, not after the copied record's: still no nonce sealed twice."""
    agent.context.add_init_script(QUICK_CHALLENGES)  # the duplicate too
    customer.page.goto(f"{live.base}/demo/")
    share(customer, agent, live, get_help(customer))
    expect(agent.page.get_by_role("status")).to_contain_text(LIVE_STATUS)
    wait_until(customer.page, lambda: len(sealed_commands(customer.frames)) >= 3)
    duplicate = duplicate_after_more_commands(agent, customer, close_original=True)
    expect(duplicate.get_by_role("status")).to_contain_text(LIVE_STATUS, timeout=20_000)
    count = len(sealed_commands(customer.frames))
    wait_until(
        customer.page,
        lambda: (
            bool(reused_nonces(customer.frames))
            or len(sealed_commands(customer.frames)) >= count + 5
            or not sharing(customer)
        ),
    )
    assert not reused_nonces(customer.frames), (
        f"command counters sealed twice: {reused_nonces(customer.frames)}"
    )
    assert sharing(customer)


def sharing_traced(customer: Party, agent: Party, live: RunningServer, signed_in: bool) -> Traces:
    customer.page.goto(f"{live.base}/demo/")
    before = customer.page.evaluate(PAGE)
    code = get_help(customer)
    if signed_in:
        join(agent, code)
        allow(customer)
        view = mirror(agent)
    else:
        view = share(customer, agent, live, code)
    expect(agent.page.get_by_role("status")).to_contain_text(LIVE_STATUS)
    traces = Traces.of(customer, agent, view, code)
    traces.customer_page = before
    return traces


def test_nothing_of_a_session_the_customer_stops_is_left_in_either_browser(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    customer.page.add_init_script(TRACK_BLOBS)
    agent.page.add_init_script(TRACK_BLOBS)
    traces = sharing_traced(customer, agent, live, signed_in=False)
    # The customer turns the agent's pointer off (a choice kept in the tab for the next pages).
    view = mirror(agent)
    pick(agent, "Pointer")
    point_at(agent, view, "button:has-text('Add to cart')")
    expect(laser_on(customer)).to_have_count(1)
    customer.page.get_by_role("button", name="Turn off pointer").click()
    expect(agent.page.locator("#status")).to_contain_text("The customer turned your pointer off.")
    customer.page.get_by_role("button", name="Stop sharing").click()
    expect(agent.page.get_by_text("Session ended")).to_be_visible()
    expect(customer.page.get_by_text("You stopped sharing")).to_be_visible()
    nothing_left(customer, agent, traces)
    # Back in the console's history: no old mirror comes back (a reload finds no session; the
    # console is no-store, kept out of the back/forward cache: docs/privacy.md).
    agent.page.goto(f"{live.base}/console/office/")
    response = agent.page.go_back()
    assert response is not None and response.headers.get("cache-control") == "no-store"
    expect(agent.page.get_by_label("Session code")).to_be_visible()
    expect(agent.page.locator("iframe")).to_have_count(0)
    assert traces.page_text not in agent.page.content()


def test_nothing_of_a_session_the_agent_or_the_server_ends_is_left_in_either_browser(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    customer.page.add_init_script(TRACK_BLOBS)
    agent.page.add_init_script(TRACK_BLOBS)
    # The agent leaves.
    traces = sharing_traced(customer, agent, live, signed_in=False)
    agent.page.get_by_role("button", name="Leave").click()
    expect(customer.page.get_by_text("The agent ended the session")).to_be_visible()
    nothing_left(customer, agent, traces)
    # A second session in the same pages, ended by the server (idle for too long).
    traces = sharing_traced(customer, agent, live, signed_in=True)
    live.clock.advance(live.settings.idle_timeout_seconds + 1)
    expect(agent.page.get_by_text("Session ended")).to_be_visible()
    expect(customer.page.get_by_text("without activity")).to_be_visible()
    nothing_left(customer, agent, traces)
