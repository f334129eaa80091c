"""Browser fixtures: Debian's Chromium through Playwright, a real server, a second origin."""

from __future__ import annotations

import base64
import functools
import http.server
import os
import re
import secrets
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    WebSocket,
    expect,
    sync_playwright,
)

from tandem.config import Settings
from tandem.protocol import content
from tandem.server.app import SDK_FILE
from tests.conftest import (
    AGENT_PASSWORD,
    DataTemplates,
    FakeClock,
    RunningServer,
    ServerFactory,
    add_user,
    bound_socket,
    free_port,
)
from tests.server.test_organisations import api

# Debian's chromium-headless-shell: the same Chromium version as Debian's chromium (the same
# Blink, V8 and network stack), built as the lightweight "old" headless browser; chromium itself
# runs the whole desktop browser headless. It takes about half the CPU for the same tests
# (bench/RESULTS.md, "Browser pass"); `make chromium` installs it. TANDEM_CHROMIUM picks another
# Chromium binary (/usr/bin/chromium: the tests pass on both).
CHROMIUM = os.environ.get("TANDEM_CHROMIUM", "/usr/lib/chromium/chromium-headless-shell")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-dev-shm-usage",
    "--no-first-run",
]
CODE_PATTERN = re.compile(r"\b(\d{4}) (\d{4}) (\d{4})\b")  # shown 4-4-4 for reading aloud

pytestmark = pytest.mark.e2e

# How long an `expect` waits for its condition, unless it says otherwise. Playwright's 5 s is too
# short for a chain of round trips (a join: console, server, the customer's PAKE, the consent
# question) on a 2-core machine running the whole suite beside other work: it failed there once
# under `stress`-like load (bench/RESULTS.md, "Browser pass"). A condition returns as soon as it
# holds, so a longer bound costs a passing test nothing; tests that assert a deadline pass their
# own `timeout`.
EXPECT_TIMEOUT_MS = 15_000
expect.set_options(timeout=EXPECT_TIMEOUT_MS)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs it (Debian's packages)")
    if not SDK_FILE.exists():
        pytest.fail("the SDK is not built: `make test` builds it (sdk/build.mjs)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class FrameLog:
    """Every WebSocket frame a page sent and received, as bytes."""

    sent: list[bytes] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        def on_socket(ws: WebSocket) -> None:
            ws.on("framesent", lambda payload: self.sent.append(_as_bytes(payload)))
            ws.on("framereceived", lambda payload: self.received.append(_as_bytes(payload)))

        page.on("websocket", on_socket)

    def everything(self) -> bytes:
        return b"\n".join(self.sent + self.received)


def _as_bytes(payload: Any) -> bytes:
    return payload if isinstance(payload, bytes) else str(payload).encode()


@dataclass
class Party:
    context: BrowserContext
    page: Page
    frames: FrameLog
    console_errors: list[str]
    csp_violations: list[str] = field(default_factory=list)


def _party(browser: Browser) -> Party:
    context = browser.new_context(viewport={"width": 1200, "height": 850})
    page = context.new_page()
    frames = FrameLog()
    frames.attach(page)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    party = Party(context, page, frames, errors)
    page.on(
        "console",
        lambda message: (
            party.csp_violations.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )
    return party


def _assert_no_csp_violation(party: Party) -> None:
    assert not party.csp_violations, f"CSP violations: {party.csp_violations}"


@pytest.fixture
def customer(browser: Browser) -> Iterator[Party]:
    party = _party(browser)
    yield party
    party.context.close()
    _assert_no_csp_violation(party)


# Test instrumentation of the browsers' WebCrypto: keep a copy of every payload a page decrypts
# (the agent's console: what it received after decryption and before rendering) or encrypts (the
# customer's browser: what it sealed, with the ciphertext it made, to find that frame on the wire).
def _record_crypto(method: str, store: str) -> str:
    return f"""
(() => {{
    const original = SubtleCrypto.prototype.{method};
    const keys = new WeakMap();  // a WeakMap has no size: the keys are numbered by a counter
    let numbered = 0;
    const encode = (buffer) => {{
        let binary = "";
        for (const b of new Uint8Array(buffer)) binary += String.fromCharCode(b);
        return btoa(binary);
    }};
    window.{store} = [];
    SubtleCrypto.prototype.{method} = async function (...args) {{
        // Which key: each epoch has its own content key, and its compression stream.
        if (!keys.has(args[1])) keys.set(args[1], ++numbered);
        const key = keys.get(args[1]);
        const sealing = "{method}" === "encrypt" ? encode(args[2]) : null;  // before it is wiped
        const result = await original.apply(this, args);
        const opened = key + ":" + encode(result);
        window.{store}.push(sealing === null ? opened : key + ":" + sealing + ":" + encode(result));
        return result;
    }};
}})();
"""


RECORD_PLAINTEXT = _record_crypto("decrypt", "__tandemPlaintext")
RECORD_SEALED = _record_crypto("encrypt", "__tandemSealed")


@pytest.fixture
def agent(browser: Browser) -> Iterator[Party]:
    party = _party(browser)
    party.page.add_init_script(RECORD_PLAINTEXT)
    yield party
    party.context.close()
    _assert_no_csp_violation(party)


@pytest.fixture
def supervisor(browser: Browser) -> Iterator[Party]:
    """A third browser: a supervisor's console."""
    party = _party(browser)
    party.page.add_init_script(RECORD_PLAINTEXT)
    yield party
    party.context.close()
    _assert_no_csp_violation(party)


def agent_plaintext(agent: Party) -> str:
    """Everything the agent's console decrypted so far, inflated, as text."""
    entries = [
        entry.split(":", 1) for entry in agent.page.evaluate("() => window.__tandemPlaintext")
    ]
    return "\n".join(_inflated([(key, base64.b64decode(plain)) for key, plain in entries]))


def sealed_payloads(customer: Party) -> list[tuple[str, bytes]]:
    """Every payload the customer's browser encrypted so far, inflated, as text, each with the
    ciphertext it made (the tail of the frame that carried it). Needs ``RECORD_SEALED``."""
    entries = [entry.split(":") for entry in customer.page.evaluate("() => window.__tandemSealed")]
    decoded = [
        (key, base64.b64decode(plain), base64.b64decode(sealed)) for key, plain, sealed in entries
    ]
    texts = _inflated([(key, plain) for key, plain, _ in decoded])
    payloads = [sealed for key, plain, sealed in decoded if key not in _unwrapping(decoded)]
    return list(zip(texts, payloads, strict=True))


def _unwrapping(entries: list[Any]) -> set[str]:
    """The pairwise key only ever seals content keys (32 bytes each); a content key seals
    payloads, which may be 32 bytes long too now that they are compressed as a stream."""
    return {entry[0] for entry in entries} - {entry[0] for entry in entries if len(entry[1]) != 32}


def _inflated(entries: list[tuple[str, bytes]]) -> list[str]:
    """Payloads as text: each epoch's through that epoch's deflate stream (flag 3, or 2 without
    the preset dictionary), older encodings (0, 1) as they are. Content keys are skipped: they
    are keys, not payloads."""
    text = []
    unwrapping = _unwrapping(entries)
    streams: dict[str, Any] = {}  # one raw deflate stream per epoch (content key), as the SDK's
    for key, data in entries:
        if key in unwrapping:
            continue
        if data[:1] in (b"\x02", b"\x03"):  # flag 3: primed with the preset dictionary
            zdict = {"zdict": content.CONTENT_DICTIONARY} if data[:1] == b"\x03" else {}
            try:
                inflater = streams.setdefault(key, zlib.decompressobj(-15, **zdict))
                data = inflater.decompress(data[1:])
            except zlib.error:
                raise AssertionError("a payload does not inflate") from None
        elif data[:1] == b"\x01":
            try:
                data = zlib.decompressobj(-15).decompress(data[1:])
            except zlib.error:
                raise AssertionError("a payload does not inflate") from None
        elif data[:1] == b"\x00":
            data = data[1:]
        text.append(data.decode("utf-8", "replace"))
    return text


@pytest.fixture
def live(server_factory: ServerFactory, other_origin: OtherOrigin) -> RunningServer:
    return server_factory(allow_origins=(other_origin.origin,))


class OtherOrigin:
    """A second web server (another origin) serving test pages that embed the SDK."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        # serve_forever looks at its stop flag every poll_interval: close() waits that long (0.5 s
        # by default, at the end of nearly every browser test).
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def page(self, name: str, body: str, server: RunningServer, title: str = "Test page") -> str:
        (self.root / name).write_text(
            f"<!doctype html><html><head><meta charset=utf-8><title>{title}</title>"
            f'<script src="{server.base}/sdk/tandem.js"></script></head>'
            f"<body>{body}</body></html>"
        )
        return f"{self.origin}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def other_origin(tmp_path: Path) -> Iterator[OtherOrigin]:
    root = tmp_path / "site"
    root.mkdir()
    site = OtherOrigin(root)
    yield site
    site.close()


# Steps of the story, shared by the tests.


def get_help(customer: Party) -> str:
    """Click the page's Get help button and read the code from the SDK's widget."""
    customer.page.get_by_role("button", name="Get help").click()
    widget = customer.page.get_by_text(CODE_PATTERN)
    expect(widget).to_be_visible()
    match = CODE_PATTERN.search(widget.inner_text())
    assert match
    return "".join(match.groups())


def start_on(customer: Party, url: str) -> str:
    """Open ``url`` (a page with the SDK) and start a session through the public API."""
    customer.page.goto(url)
    code: str = customer.page.evaluate("() => window.Tandem.start()")
    return code


def sign_in(agent: Party, server: RunningServer) -> None:
    """alice's console, signed in (see :func:`open_console_as`), ready to join."""
    open_console_as(agent, server, "alice")
    expect(agent.page.get_by_label("Session code")).to_be_visible()


def open_console_as(party: Party, server: RunningServer, username: str) -> None:
    """Open the console signed in as ``username``, with the cookie of a real /api/login posted
    through the browser context's own request client (which keeps the cookie as the server set
    it, flags and all) rather than typed into the form: the tests of signing in itself use the
    form (:func:`sign_in_through_form`, tests/e2e/test_story.py, test_mfa_setup.py)."""
    response = party.page.request.post(
        f"{server.base}/api/login",
        data={"username": username, "password": AGENT_PASSWORD},
        headers={"origin": server.base},  # the console's own origin
    )
    assert response.ok, response.text()
    party.page.goto(f"{server.base}/console/")


def console_at(party: Party, server: RunningServer, base: str, username: str = "alice") -> None:
    """``username``'s console opened at ``base`` (the server, or a proxy in front of it,
    tests/e2e/netcut.py), ready to join."""
    open_console_as(party, server, username)  # the cookie is the host's, whatever the port
    if base != server.base:
        party.page.goto(f"{base}/console/")
    expect(party.page.get_by_label("Session code")).to_be_visible()


def sign_in_through_form(agent: Party, server: RunningServer) -> None:
    """Sign in as alice by typing into the console's form, as an agent does."""
    agent.page.goto(f"{server.base}/console/")
    agent.page.get_by_label("Username").fill("alice")
    agent.page.get_by_label("Password").fill(AGENT_PASSWORD)
    agent.page.get_by_role("button", name="Sign in").click()
    expect(agent.page.get_by_label("Session code")).to_be_visible()


def join(agent: Party, code: str) -> None:
    agent.page.get_by_label("Session code").fill(code)
    agent.page.get_by_role("button", name="Join").click()


def allow(customer: Party) -> None:
    dialog = customer.page.get_by_role("dialog")
    expect(dialog).to_contain_text("Alice")
    dialog.get_by_role("button", name="Allow").click()


def mirror(agent: Party) -> Any:
    """The agent's view of the customer's page (the replay iframe's frame)."""
    expect(agent.page.locator('iframe[title="Customer view"]')).to_be_attached()
    return agent.page.frame_locator('iframe[title="Customer view"]')


def caught_up(customer: Party, view: Any) -> None:
    """Wait until the agent's mirror (``view``) has all the customer's page sent so far: a last
    change to the page, a marker element, leaves after whatever the SDK already queued, on the one
    ordered channel, so once the mirror shows it nothing sent before it is still on its way.
    Then a test may search what the agent received for what must never arrive."""
    marker = f"tandem-test-caught-up-{secrets.token_hex(4)}"
    customer.page.evaluate(
        "(id) => document.body.append(Object.assign(document.createElement('p'), {id}))", marker
    )
    expect(view.locator(f"#{marker}")).to_be_attached()


def share(customer: Party, agent: Party, server: RunningServer, code: str) -> Any:
    sign_in(agent, server)
    join(agent, code)
    allow(customer)
    return mirror(agent)


_AUDITOR = "e2e-auditor"
_with_auditor: set[Path] = set()


def audit_records(server: RunningServer) -> list[dict[str, Any]]:
    """The audit trail so far, read through the API as an auditor (made on first use)."""
    if server.settings.data_dir not in _with_auditor:
        add_user(server.settings.data_dir, _AUDITOR, role="auditor")
        _with_auditor.add(server.settings.data_dir)
    with api(server, _AUDITOR) as client:
        records: list[dict[str, Any]] = client.get("/api/audit").json()
    return records


def audit_actions(server: RunningServer) -> list[str]:
    return [r["action"] for r in audit_records(server)]


def settled_instances(page: Page, constructor: str, at_most: int, seconds: float = 3.0) -> int:
    """`live_instances`, retried until it is at most `at_most` or `seconds` pass (objects held
    by a last timer or callback become collectable a moment after a session ends)."""
    deadline = time.monotonic() + seconds
    while True:
        count = live_instances(page, constructor)
        if count <= at_most or time.monotonic() > deadline:
            return count
        page.wait_for_timeout(100)


def live_instances(page: Page, constructor: str) -> int:
    """How many objects of `constructor` the page's heap holds after a forced garbage collection
    (DevTools protocol: HeapProfiler.collectGarbage, Runtime.queryObjects)."""
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("HeapProfiler.enable")
        cdp.send("HeapProfiler.collectGarbage")
        proto = cdp.send("Runtime.evaluate", {"expression": f"{constructor}.prototype"})
        found = cdp.send("Runtime.queryObjects", {"prototypeObjectId": proto["result"]["objectId"]})
        length = cdp.send(
            "Runtime.callFunctionOn",
            {
                "objectId": found["objects"]["objectId"],
                "functionDeclaration": "function () { return this.length; }",
                "returnByValue": True,
            },
        )
        count: int = length["result"]["value"]
        return count
    finally:
        cdp.detach()


# Shared joined sessions: tests that only look at a running session, or leave it as they found
# it, take one already joined instead of each loading both pages and pairing again (a join is
# most of a browser test's CPU: bench/RESULTS.md, "Browser pass: shared sessions"). The session
# stays a worker's: each worker that runs such tests joins once for them (`--dist load` hands the
# tests out, so the home page's tests join at most once a worker, not once a test).
# A test that fails has it closed; the next test that takes it resets it first (none is owed
# after a worker's last one), and one left in a state a reset cannot verify is closed: that test
# joins afresh, so no failure carries over into another test. With $E2E_SHARED_LOG set, each
# worker appends to that file how many joins, resets and moves its shared sessions took, and why
# a reset gave one up (for measuring: bench/RESULTS.md).

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def _passed(item: pytest.Item) -> bool:
    reports = item.stash.get(_REPORTS, {})
    return all(r.passed for r in reports.values()) and "call" in reports


LIVE_STATUS = "You are seeing the customer's page live"
SHOP_FORGETS = """() => {
    localStorage.clear();
    for (const key of Object.keys(sessionStorage)) {
        if (key.startsWith("northwind.")) sessionStorage.removeItem(key);
    }
}"""


# What a person sees of a running session, for comparing a reset session with the freshly
# joined one: the customer's Tandem UI (its text and controls, through its shadow roots) and
# Tandem.state; the console's status line, facts (not the running clock, nor the session's id,
# which differs from join to join: a reset checks it apart) and visible controls.
CUSTOMER_SEES = """() => {
    const out = [String(window.Tandem && window.Tandem.state)];
    const visit = (node) => {
        if (node.nodeType === Node.TEXT_NODE && node.data.trim()) out.push(node.data.trim());
        if (node.nodeType === Node.ELEMENT_NODE) {
            if (["STYLE", "SCRIPT"].includes(node.tagName)) return;
            if (node.shadowRoot) visit(node.shadowRoot);
            const style = getComputedStyle(node);
            if (style.display === "none" || style.visibility === "hidden") return;
            for (const name of ["role", "aria-label", "aria-pressed", "aria-expanded"]) {
                if (node.hasAttribute(name)) out.push(`${name}=${node.getAttribute(name)}`);
            }
        }
        for (const child of node.childNodes) visit(child);
    };
    for (const host of document.querySelectorAll("[data-tandem-ui]")) visit(host);
    return out;
}"""
AGENT_SEES = """() => {
    const shown = (el) =>
        el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
    return [
        `status=${document.querySelector("#status")?.textContent.trim()}`,
        ...[...document.querySelectorAll("[id^=fact-]")]
            .filter((el) => !["fact-duration", "fact-session"].includes(el.id))
            .map((el) => `${el.id}=${el.textContent.trim()}`),
        ...[...document.querySelectorAll("button, [role=dialog], iframe, details")]
            .filter(shown)
            .map((el) => [el.tagName, el.id, el.textContent.trim().slice(0, 60),
                el.disabled ? "disabled" : "", el.getAttribute("aria-pressed") ?? "",
                el.open ? "open" : ""].join(":")),
    ];
}"""


def seen(customer: Party, agent: Party, with_session: bool = False) -> tuple[list[str], list[str]]:
    """What the customer and the agent see of the session (CUSTOMER_SEES, AGENT_SEES), and the
    session's id as the console shows it if asked."""
    agent_sees: list[str] = agent.page.evaluate(AGENT_SEES)
    if with_session:
        agent_sees.append(agent.page.locator("#fact-session").inner_text())
    return customer.page.evaluate(CUSTOMER_SEES), agent_sees


@dataclass
class Joined:
    """A customer sharing ``path`` with alice's console: what a test of a running session needs."""

    live: RunningServer
    customer: Party
    agent: Party
    view: Any
    path: str
    customer_viewport: ViewportSize
    agent_viewport: ViewportSize
    session_id: str = ""  # the console's fact-session: the same session from test to test


class SharedSessions:
    """One joined session at a time, handed from test to test of a worker (:func:`joined`)."""

    def __init__(self, browser: Browser, live: RunningServer) -> None:
        self.browser = browser
        self.live = live
        self.current: Joined | None = None
        self.joins = 0
        self.takes = 0
        self.moves = 0
        self.resets = 0
        # A test had the current session since it was reset or joined: the next take resets it.
        self.used = False
        # What a fresh join on each page showed (`seen`): a reset must show the same.
        self.fresh: dict[str, tuple[list[str], list[str]]] = {}

    def take(
        self, path: str, customer_viewport: ViewportSize, agent_viewport: ViewportSize
    ) -> Joined:
        current = self.current
        if current is not None and not (
            current.customer_viewport == customer_viewport
            and current.agent_viewport == agent_viewport
            and self._still_sharing(current)
        ):
            self.discard()
        elif current is not None and (self.used or current.path != path):
            # The reset of the test before, here rather than at its end (none after a worker's
            # last test; one navigation, not two, to another page), and to the page this test
            # asks for: the same session moved there (a navigation, as a customer would), where
            # a fresh join on this worker showed what the page must show; else a fresh join.
            if path not in self.fresh:
                self.discard()
            else:
                moved, current.path = current.path != path, path
                try:
                    self._reset(current)
                    self.resets += 1
                    self.moves += moved
                except Exception as error:
                    self._log(f"reset failed: {error!r}")
                    self.discard()
        if self.current is None:
            self.current = self._join(path, customer_viewport, agent_viewport)
        joined = self.current
        self.takes += 1
        self.used = True
        for party in (joined.customer, joined.agent):
            party.frames.sent.clear()
            party.frames.received.clear()
            party.console_errors.clear()
            party.csp_violations.clear()
        return joined

    def _join(
        self, path: str, customer_viewport: ViewportSize, agent_viewport: ViewportSize
    ) -> Joined:
        customer, agent = _party(self.browser), _party(self.browser)
        agent.page.add_init_script(RECORD_PLAINTEXT)
        joined = Joined(self.live, customer, agent, None, path, customer_viewport, agent_viewport)
        self.current = joined  # closed by discard() if the join fails
        customer.page.set_viewport_size(customer_viewport)
        agent.page.set_viewport_size(agent_viewport)
        customer.page.goto(f"{self.live.base}{path}")
        joined.view = share(customer, agent, self.live, get_help(customer))
        expect(joined.view.locator("body")).to_be_attached()
        expect(agent.page.locator("#status")).to_contain_text(LIVE_STATUS)
        caught_up(customer, joined.view)
        joined.session_id = agent.page.locator("#fact-session").inner_text()
        self.fresh[path] = seen(customer, agent)
        self.joins += 1
        self.used = False
        return joined

    def _still_sharing(self, joined: Joined) -> bool:
        customer, agent = joined.customer.page, joined.agent.page
        return (
            customer.get_by_role("button", name="Stop sharing").count() == 1
            and agent.get_by_role("button", name="Leave").count() == 1
            and agent.locator('iframe[title="Customer view"]').count() == 1
        )

    def give_back(self, joined: Joined, passed: bool) -> None:
        """After a test: the session kept for the next test, which takes it reset (:meth:`take`:
        the customer in control of the page that test asks for, no tool picked, both sides
        showing what a fresh join showed; any doubt, and it joins afresh), or closed if the test
        failed. CSP violations fail the test, as with the per-test parties."""
        violations = joined.customer.csp_violations + joined.agent.csp_violations
        if not passed or violations:
            self.discard()
        assert not violations, f"CSP violations: {violations}"

    def _reset(self, joined: Joined) -> None:
        customer, agent = joined.customer.page, joined.agent.page
        if not self._still_sharing(joined):
            raise RuntimeError("the session ended")
        if customer.get_by_role("dialog").count():
            raise RuntimeError("a question is still open on the customer's page")
        take_back = customer.get_by_role("button", name="Take back control")
        if take_back.count():
            take_back.click()
            expect(agent.locator("#fact-control")).to_have_text("The customer")
        allow_pointer = customer.get_by_role("button", name="Allow pointer")
        if allow_pointer.count():
            allow_pointer.click()
            expect(agent.get_by_role("button", name="Pointer", exact=True)).to_be_enabled()
        if agent.locator("[id^=tool-][aria-pressed=true]").count():
            agent.keyboard.press("Escape")
            expect(agent.locator("[id^=tool-][aria-pressed=true]")).to_have_count(0)
        agent.evaluate("() => document.querySelector('#shortcuts')?.removeAttribute('open')")
        if customer.viewport_size != joined.customer_viewport:
            customer.set_viewport_size(joined.customer_viewport)
        if agent.viewport_size != joined.agent_viewport:
            agent.set_viewport_size(joined.agent_viewport)
        # Whatever the test did to the customer's page (typed, added to the cart, signed in,
        # scrolled, went elsewhere): the shop's own storage emptied (the SDK keeps nothing in
        # localStorage), the page loaded again, in the same session, and the mirror has it.
        customer.evaluate(SHOP_FORGETS)
        customer.goto(f"{joined.live.base}{joined.path}")
        customer.evaluate("() => window.scrollTo(0, 0)")
        expect(customer.get_by_role("button", name="Stop sharing")).to_be_visible()
        caught_up(joined.customer, joined.view)
        expect(agent.locator("#status")).to_contain_text(LIVE_STATUS)
        # Verified: both sides show what a fresh join showed (a question, a supervisor, a
        # recording, a notice or a control left over fails the reset: the next test joins afresh).
        fresh = ([*self.fresh[joined.path][0]], [*self.fresh[joined.path][1], joined.session_id])
        deadline = time.monotonic() + 5
        while (now := seen(joined.customer, joined.agent, with_session=True)) != fresh:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not as a fresh join left it: {now} != {fresh}")
            customer.wait_for_timeout(100)

    def _log(self, line: str) -> None:
        if os.environ.get("E2E_SHARED_LOG"):
            with open(os.environ["E2E_SHARED_LOG"], "a") as log:
                log.write(line + "\n")

    def discard(self) -> None:
        """Close the session: ended by the customer where the page still can (so no test
        after it finds it among the server's live sessions), then both browsers."""
        joined, self.current = self.current, None
        if joined is None:
            return
        try:
            stop = joined.customer.page.get_by_role("button", name="Stop sharing")
            if stop.count() == 1:
                stop.click(timeout=2000)
                expect(stop).to_have_count(0, timeout=2000)
        except Exception:  # a page that cannot: closing its browser ends it too
            pass
        for party in (joined.customer, joined.agent):
            party.context.close()


@pytest.fixture(scope="session")
def shared_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OtherOrigin]:
    root = tmp_path_factory.mktemp("site")
    site = OtherOrigin(root)
    yield site
    site.close()


@pytest.fixture(scope="session")
def shared_live(
    tmp_path_factory: pytest.TempPathFactory,
    data_templates: DataTemplates,
    shared_origin: OtherOrigin,
) -> Iterator[RunningServer]:
    """One server for the tests that share sessions, one per worker (each test adds only its own
    accounts; what it reads of the server, it reads as its own: one session at a time)."""
    data_dir = tmp_path_factory.mktemp("shared") / "data"
    sock = bound_socket()
    try:
        settings = Settings.load(
            environ={},
            data_dir=data_dir,
            port=sock.getsockname()[1],
            allow_origins=(shared_origin.origin,),
        )
        data_templates.copy_to(data_dir)
        running = RunningServer(settings, FakeClock(), sock=sock)
    except BaseException:
        sock.close()
        raise
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def shared_sessions(browser: Browser, shared_live: RunningServer) -> Iterator[SharedSessions]:
    sessions = SharedSessions(browser, shared_live)
    yield sessions
    sessions.discard()
    sessions._log(
        f"worker joins={sessions.joins} resets={sessions.resets} moves={sessions.moves} "
        f"takes={sessions.takes}"
    )


# What the shared sessions are: the shop's home page (customer 1000x760) with alice's console
# (1480x960), where the agent's mirror fits at scale 1 so the agent's mouse lands where a test
# aims; and the same on the checkout page.
CUSTOMER_VIEWPORT: ViewportSize = {"width": 1000, "height": 760}
AGENT_VIEWPORT: ViewportSize = {"width": 1480, "height": 960}
HOME, CHECKOUT = "/demo/", "/demo/checkout.html"


@pytest.fixture
def joined(request: pytest.FixtureRequest, shared_sessions: SharedSessions) -> Iterator[Joined]:
    """The customer sharing the shop's home page with alice, both as :func:`SharedSessions.take`
    leaves them."""
    yield from joined_session(request, shared_sessions, HOME)


@pytest.fixture
def joined_checkout(
    request: pytest.FixtureRequest, shared_sessions: SharedSessions
) -> Iterator[Joined]:
    """The same on the checkout page."""
    yield from joined_session(request, shared_sessions, CHECKOUT)


def joined_session(
    request: pytest.FixtureRequest, sessions: SharedSessions, path: str
) -> Iterator[Joined]:
    """The shared session on ``path``, given back after the test (kept, reset when the next test
    takes it; closed if the test failed)."""
    joined = sessions.take(path, CUSTOMER_VIEWPORT, AGENT_VIEWPORT)
    yield joined
    sessions.give_back(joined, _passed(request.node))
