"""End-to-end encryption in real browsers: a server that attacks, a server that is blind.

The attacking server is the real Tandem server with a hostile fan-out plugged in: it sees every
frame it relays and swaps or alters them as a compromised relay would.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.sync_api import Browser, expect

from tandem.fanout.base import Frame
from tandem.fanout.memory import MemoryFanout
from tandem.recordings import _Payloads
from tests.conftest import RunningServer, ServerFactory
from tests.e2e.conftest import (
    RECORD_PLAINTEXT,
    OtherOrigin,
    Party,
    agent_plaintext,
    allow,
    get_help,
    join,
    mirror,
    share,
    sign_in,
    sign_in_through_form,
    start_on,
)

MISMATCH_CUSTOMER = "The code did not match"
MISMATCH_AGENT = "The code did not match — ask the customer for a new code."


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def attacker_point() -> bytes:
    """A valid P-256 point the attacker knows the discrete log of: its own SPAKE2 share."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


class ManInTheMiddle(MemoryFanout):
    """A relay that replaces every key-exchange message with its own, both directions."""

    def __init__(self) -> None:
        super().__init__()
        self.swapped = 0

    def publish(self, topic: str, frame: Frame) -> None:
        if isinstance(frame.data, str) and '"type":"handshake"' in frame.data:
            original = frame.data.split('"data":"')[1].split('"')[0]
            size = len(base64.urlsafe_b64decode(original + "=" * (-len(original) % 4)))
            # Customer's share (65 bytes), agent's share + MAC (97), customer's MAC (32):
            # each replaced by the relay's own share and a MAC it had to guess.
            forged = {65: attacker_point(), 97: attacker_point() + bytes(32)}.get(size, bytes(32))
            frame = Frame(frame.data.replace(original, b64url(forged)))
            self.swapped += 1
        super().publish(topic, frame)


class TamperingRelay(MemoryFanout):
    """A relay that flips one bit in the first content frame it passes to the agent once armed
    (the page is on show by then: the first frames also carry its images)."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.seen = 0

    def publish(self, topic: str, frame: Frame) -> None:
        if isinstance(frame.data, bytes) and frame.data[:1] == b"\x01" and topic.endswith("agents"):
            self.seen += self.armed
            if self.seen == 1:
                data = bytearray(frame.data)
                data[-1] ^= 0x01
                frame = Frame(bytes(data))
        super().publish(topic, frame)


def test_a_man_in_the_middle_is_caught_by_both_browsers(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    mitm = ManInTheMiddle()
    server = server_factory(fanout=mitm)
    customer.page.goto(f"{server.base}/demo/")
    code = get_help(customer)
    sign_in(agent, server)
    join(agent, code)
    expect(customer.page.get_by_role("alert")).to_contain_text(MISMATCH_CUSTOMER)
    expect(agent.page.get_by_role("status")).to_contain_text(MISMATCH_AGENT)
    assert mitm.swapped >= 2
    expect(customer.page.get_by_role("dialog")).to_have_count(0)
    expect(agent.page.locator("iframe")).to_have_count(0)
    assert not any(f[:1] in (b"\x01", b"\x02") for f in customer.frames.sent)


def test_a_wrong_secret_part_fails_and_burns_the_code(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    customer.page.goto(f"{live.base}/demo/")
    code = get_help(customer)
    sign_in(agent, live)
    wrong_secret = str((int(code[5:]) + 1) % 10_000_000).zfill(7)
    join(agent, code[:5] + wrong_secret)
    expect(customer.page.get_by_role("alert")).to_contain_text(MISMATCH_CUSTOMER)
    expect(agent.page.get_by_role("status")).to_contain_text(MISMATCH_AGENT)
    join(agent, code)  # the right code, too late: one online guess per code
    expect(agent.page.get_by_role("status")).to_contain_text("not valid or has expired")


def test_the_secret_part_never_reaches_the_server(
    live: RunningServer, customer: Party, agent: Party
) -> None:
    customer.page.goto(f"{live.base}/demo/")
    code = get_help(customer)
    share(customer, agent, live, code)
    wire = customer.frames.everything() + agent.frames.everything()
    assert code[:5].encode() in wire
    assert code[5:].encode() not in wire and code.encode() not in wire
    stored = customer.page.evaluate("() => JSON.stringify(sessionStorage)")
    assert code[5:] not in stored, "the secret outlived the key exchange"


def test_altered_ciphertext_ends_the_session(
    server_factory: ServerFactory, customer: Party, agent: Party
) -> None:
    relay = TamperingRelay()
    server = server_factory(fanout=relay)
    customer.page.goto(f"{server.base}/demo/")
    view = share(customer, agent, server, get_help(customer))
    expect(view.get_by_text("Northwind Outfitters").first).to_be_visible()
    relay.armed = True
    customer.page.get_by_label("Search products").press_sequentially("tents and packs", delay=40)
    expect(agent.page.get_by_role("status")).to_contain_text("failed its integrity check")
    expect(agent.page.locator("iframe")).to_have_count(0)
    expect(customer.page.get_by_role("button", name="Stop sharing")).to_have_count(0)


BLIND_PAGE = """
<h1>Quarterly statement for Ottoline Vance</h1>
<p>Balance carried forward: 48,213.77 in account ending 9931. Zephyr-marmalade-note.</p>
<label for="q">Search</label><input id="q" data-tandem-unmask>
"""


class LogCapture(logging.Handler):
    """Every record of the server's loggers, attached after uvicorn configured its logging."""

    NAMES = ("uvicorn", "uvicorn.access", "uvicorn.error", "tandem")

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.getMessage()} {record.args!r} {record.__dict__!r}")

    def attach(self) -> None:
        for name in self.NAMES:
            logger = logging.getLogger(name)
            logger.addHandler(self)
            logger.setLevel(logging.DEBUG)

    def detach(self) -> None:
        for name in self.NAMES:
            logging.getLogger(name).removeHandler(self)


@pytest.fixture
def server_logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    yield capture
    capture.detach()


def test_the_server_sees_no_page_content_url_title_or_typing(
    server_factory: ServerFactory,
    other_origin: OtherOrigin,
    customer: Party,
    agent: Party,
    server_logs: LogCapture,
) -> None:
    server = server_factory(allow_origins=(other_origin.origin,), log_level="debug")
    server_logs.attach()
    url = other_origin.page("statement-ottoline.html", BLIND_PAGE, server, title="Vance statement")
    code = start_on(customer, url)
    view = share(customer, agent, server, code)
    expect(view.get_by_text("Zephyr-marmalade-note")).to_be_visible()
    customer.page.locator("#q").press_sequentially("Quokka-lantern", delay=20)
    expect(view.locator("#q")).to_have_value("Quokka-lantern")
    customer.page.evaluate("() => window.Tandem.stop()")
    expect(agent.page.get_by_text("Session ended")).to_be_visible()
    live_server_stopped = server
    live_server_stopped.stop()

    server_saw = customer.frames.everything() + agent.frames.everything()
    stored = b"".join(p.read_bytes() for p in Path(server.settings.data_dir).iterdir())
    logged = "\n".join(server_logs.lines).encode()
    assert logged, "no server log was captured"
    assert b"Zephyr-marmalade-note" in agent_plaintext(agent).encode(), "positive control"
    for secret in (
        b"Zephyr-marmalade-note",
        b"Ottoline",
        b"Quokka-lantern",
        b"Vance statement",
        b"statement-ottoline",
        b"48,213.77",
    ):
        assert secret not in server_saw, f"{secret!r} crossed the server in the clear"
        assert secret not in stored, f"{secret!r} was stored by the server"
        assert secret not in logged, f"{secret!r} was logged by the server"


def test_a_page_too_large_for_one_frame_reaches_the_agent_in_parts_each_deflated_on_its_own(
    server_factory: ServerFactory, other_origin: OtherOrigin, customer: Party, agent: Party
) -> None:
    """A full snapshot of more than 512 KiB travels in parts, each deflated on its own by the
    customer's browser with its native CompressionStream (flag 1, issue 17) outside the epoch's
    stream: the console inflates them natively and shows the whole page, the page's later
    changes still come through the epoch's stream, and the server relays ciphertext only."""
    server = server_factory(allow_origins=(other_origin.origin,))
    rows = "".join(
        f"<article><h3>Row {i}</h3><p>Kestrel-{i:05d}: waterproof shell, taped seams, two-way zip"
        f" and a packable hood; sizes XS to XXL, colour {i % 7}.</p></article>"
        for i in range(3000)
    )
    url = other_origin.page("big.html", rows + '<p id="last">Pelican-finale</p>', server)
    code = start_on(customer, url)
    view = share(customer, agent, server, code)
    expect(view.locator("#last")).to_have_text("Pelican-finale")
    customer.page.evaluate("() => { document.querySelector('#last').textContent = 'Heron-after'; }")
    expect(view.locator("#last")).to_have_text("Heron-after")

    decrypted = [
        base64.b64decode(entry.split(":", 1)[1])
        for entry in agent.page.evaluate("() => window.__tandemPlaintext")
    ]
    alone = [data for data in decrypted if data[:1] == b"\x01" and len(data) > 1000]
    assert len(alone) >= 2, f"{len(alone)} frames deflated on their own"  # the snapshot's parts
    assert any(data[:1] == b"\x03" for data in decrypted)  # the epoch's stream goes on
    assert sum(map(len, alone)) * 5 < len(rows), "the parts are deflated"
    # `tandem recording open` reads the browser's parts: each one whole stream, joined in order.
    reader = _Payloads()
    opened = [reader.push(data, 1) for data in alone]
    assert opened[:-1] == [None] * (len(alone) - 1) and "Kestrel-02999" in json.dumps(opened[-1])
    plaintext = agent_plaintext(agent)
    assert "Kestrel-02999" in plaintext and "Heron-after" in plaintext, "positive control"
    server_saw = customer.frames.everything() + agent.frames.everything()
    for secret in (b"Kestrel-", b"Pelican-finale", b"Heron-after"):
        assert secret not in server_saw, f"{secret!r} crossed the server in the clear"


@pytest.fixture
def tls_server(server_factory: ServerFactory, tmp_path: Path) -> RunningServer:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(key_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    return server_factory(tls_cert=cert_path, tls_key=key_path)


def test_a_full_session_over_tls(tls_server: RunningServer, browser: Browser) -> None:
    # The test's own CA is not in Chromium's trust store; the certificate is still real TLS.
    contexts = [browser.new_context(ignore_https_errors=True) for _ in range(2)]
    try:
        customer_page, agent_page = (c.new_page() for c in contexts)
        agent_page.add_init_script(RECORD_PLAINTEXT)
        sockets: list[str] = []
        customer_page.on("websocket", lambda ws: sockets.append(ws.url))
        customer_page.goto(f"{tls_server.base}/demo/")
        customer = Party(contexts[0], customer_page, _frames(), [])
        agent_party = Party(contexts[1], agent_page, _frames(), [])
        code = get_help(customer)
        sign_in_through_form(agent_party, tls_server)
        join(agent_party, code)
        allow(customer)
        view = mirror(agent_party)
        customer_page.get_by_label("Search products").press_sequentially("stove", delay=20)
        expect(view.locator("input[type=search]")).to_have_value("stove")
        assert sockets and all(u.startswith("wss://") for u in sockets)
        cookie = contexts[1].cookies()[0]
        assert cookie["name"] == "__Host-tandem_agent" and cookie["secure"] and cookie["httpOnly"]
    finally:
        for context in contexts:
            context.close()


def _frames():  # type: ignore[no-untyped-def]
    from tests.e2e.conftest import FrameLog

    return FrameLog()
