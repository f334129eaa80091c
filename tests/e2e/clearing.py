"""End-of-session clearing, looked for everywhere a browser keeps something (promise 8:
docs/privacy.md, "End of session"): what identifies a session, read while it runs (`Traces`), and
the search for it on both sides once it ended (`nothing_left`)."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from playwright.sync_api import Page, expect

from tests.e2e.conftest import Party, live_instances, settled_instances


def wait_until(page: Page, condition: Any, timeout: float = 10.0) -> None:
    """As test_workspace.wait_until (not imported: test_workspace imports test_recordings)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        page.wait_for_timeout(50)


# Blob URLs made and not revoked since the page loaded (an init script: before any of the page's).
TRACK_BLOBS = """(() => {
    const made = new Set();
    const create = URL.createObjectURL, revoke = URL.revokeObjectURL;
    URL.createObjectURL = function (object) {
        const url = create.call(URL, object);
        made.add(url);
        return url;
    };
    URL.revokeObjectURL = function (url) {
        made.delete(url);
        return revoke.call(URL, url);
    };
    window.__tandemBlobs = made;
})();"""

# Everything of a browser's storage and state a page of the origin can see.
STORAGE = """async () => {
    const locks = await navigator.locks.query();
    const texts = [];
    const visit = (node) => {
        if (node.nodeType === Node.TEXT_NODE && node.data.trim()) texts.push(node.data.trim());
        if (node.shadowRoot) visit(node.shadowRoot);
        for (const child of node.childNodes) visit(child);
    };
    for (const host of document.querySelectorAll("[data-tandem-ui]")) visit(host);
    return {
        session: Object.keys(sessionStorage),
        local: Object.keys(localStorage),
        databases: (await indexedDB.databases()).map((d) => d.name),
        caches: await caches.keys(),
        cookies: document.cookie,
        locks: [...locks.held, ...locks.pending].map((lock) => lock.name),
        workers: (await navigator.serviceWorker?.getRegistrations())?.length ?? 0,
        blobs: window.__tandemBlobs ? [...window.__tandemBlobs] : null,  // null: not tracked
        ui: texts.join(" "),
        hosts: document.querySelectorAll("[data-tandem-ui]").length,
        iframes: document.querySelectorAll("iframe").length,
        html: document.documentElement.outerHTML,
    };
}"""


def heap_snapshot(page: Page) -> str:
    """The page's whole JavaScript heap after a forced garbage collection (DevTools protocol:
    HeapProfiler.takeHeapSnapshot), as the snapshot's JSON text: every string still reachable."""
    cdp = page.context.new_cdp_session(page)
    chunks: list[str] = []
    try:
        cdp.on("HeapProfiler.addHeapSnapshotChunk", lambda event: chunks.append(event["chunk"]))
        cdp.send("HeapProfiler.enable")
        cdp.send("HeapProfiler.collectGarbage")
        cdp.send("HeapProfiler.takeHeapSnapshot", {"reportProgress": False})
    finally:
        cdp.detach()
    return "".join(chunks)


# The customer's page without Tandem's own UI (its host) and the test's marker: a session may
# leave nothing else in it (no attribute, class or element of the recorder, masking or pointer).
PAGE = """() => {
    const copy = document.documentElement.cloneNode(true);
    for (const el of copy.querySelectorAll("[data-tandem-ui], #tandem-test-residue")) el.remove();
    return copy.outerHTML;
}"""


@dataclass
class Traces:
    """What identifies one session, read while it ran: found after its end, it was left."""

    code: str  # the join code the customer read out
    session_id: str
    customer_token: str  # the customer's resume token
    agent_token: str  # the console's resume token
    key_handle: str  # where the console kept its keys
    page_text: str  # a text only the customer's page (and so the mirror) had
    customer_page: str | None = None  # the customer's page before the session (PAGE)

    @classmethod
    def of(cls, customer: Party, agent: Party, view: object, code: str) -> Traces:
        text = f"tandem-residue-{secrets.token_hex(8)}"
        customer.page.evaluate(
            "(text) => document.body.append(Object.assign(document.createElement('p'),"
            " {id: 'tandem-test-residue', textContent: text}))",
            text,
        )
        expect(view.locator("#tandem-test-residue")).to_be_attached()  # type: ignore[attr-defined]
        stored = json.loads(customer.page.evaluate("() => sessionStorage['tandem.session']"))
        held = json.loads(agent.page.evaluate("() => sessionStorage['tandem.console.session']"))
        assert held["sessionId"] == stored["sessionId"]
        return cls(
            code, stored["sessionId"], stored["resumeToken"], held["resumeToken"],
            held["keyHandle"], text,
        )  # fmt: skip

    def customer_side(self) -> list[str]:
        return [self.code, f"{self.code[:4]} {self.code[4:8]} {self.code[8:]}", self.session_id,
                self.customer_token]  # fmt: skip

    def agent_side(self) -> list[str]:
        return [self.code, self.session_id, self.agent_token, self.key_handle, self.page_text]


def storage_cleared(party: Party, prefix: str) -> None:
    """Wait until ``party``'s page keeps no `sessionStorage` entry, IndexedDB database or Web
    Lock of Tandem's (``prefix``: "tandem" on the customer's side, "tandem-console" on the
    agent's): the key store is deleted as the session ends, and its locks go once it is."""

    def kept() -> list[str]:
        left = party.page.evaluate(STORAGE)
        return [
            *(key for key in left["session"] if key.startswith("tandem")),
            *(name for name in left["databases"] if name == prefix),
            *(name for name in left["locks"] if name.startswith(prefix)),
        ]

    try:
        wait_until(party.page, lambda: not kept())
    except AssertionError:
        raise AssertionError(f"still kept: {kept()}") from None


def nothing_left(customer: Party, agent: Party, traces: Traces) -> None:
    """Once a session ended: neither browser keeps anything of it (storage, key databases, locks,
    sockets, keys, the mirror, blob URLs, strings in the heap), beyond the customer's notice that
    it ended (the agent's name: docs/privacy.md)."""
    for party, prefix in ((customer, "tandem"), (agent, "tandem-console")):
        storage_cleared(party, prefix)
        assert settled_instances(party.page, "WebSocket", 0) == 0
        assert settled_instances(party.page, "CryptoKey", 0) == 0, "a key is still in memory"
        left = party.page.evaluate(STORAGE)
        assert left["local"] == [] and left["caches"] == [] and left["cookies"] == ""
        assert left["workers"] == 0 and left["blobs"] == []
    # Cookies: the agent's sign-in only (not the session's: it ends with sign-out), none on the
    # customer's side.
    assert {cookie["name"] for cookie in agent.context.cookies()} <= {"tandem_agent"}
    assert customer.context.cookies() == []
    # The customer's page: as it was, but for the notice that it ended, without the code.
    if traces.customer_page is not None:
        assert customer.page.evaluate(PAGE) == traces.customer_page, "the page was left changed"
    shown = customer.page.evaluate(STORAGE)
    assert shown["hosts"] <= 1, "more of Tandem's UI than the notice left in the page"
    for trace in traces.customer_side():
        assert trace not in shown["ui"] and trace not in shown["html"]
    # The console: no mirror (not even hidden), none of the customer's page, no facts of it.
    shown = agent.page.evaluate(STORAGE)
    assert shown["iframes"] == 0
    assert live_instances(agent.page, "HTMLIFrameElement") == 0
    for trace in (*traces.agent_side(), "Northwind"):
        assert trace not in shown["html"], f"{trace!r} still in the console's page"
    # Nor anywhere in either page's memory (what the page holds, not what it shows). The
    # agent's copy of decrypted payloads is this test's instrumentation (RECORD_PLAINTEXT).
    agent.page.evaluate("() => { window.__tandemPlaintext = []; }")
    for party, traced in ((customer, traces.customer_side()), (agent, traces.agent_side())):
        heap = heap_snapshot(party.page)
        assert not [t for t in traced if t in heap], "still in the page's memory"
