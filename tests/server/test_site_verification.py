"""An organisation cannot claim another company's website: a site its admin registers starts
no sessions until the origin serves its verification token or the operator approves it."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tandem import site_verification
from tandem.access import Principal
from tandem.config import Settings
from tandem.crypto import SecretBox
from tandem.directory import Directory, offline, operator
from tandem.exceptions import ConfigError, ConflictError, ForbiddenError
from tandem.server import services as services_module
from tandem.server.services import register_allowed_origins
from tandem.storage.base import SiteRecord
from tests.conftest import (
    RunningServer,
    ServerFactory,
    tandem_in_process,
    two_organisations,
)
from tests.server.helpers import (
    INVALID_CODE,
    closed_with,
    login_cookie,
    open_agent,
    open_customer,
    recv_json,
    send,
    start_session,
)
from tests.server.test_organisations import api, approve
from tests.server.test_scale_out import run_in_thread
from tests.server.test_session_clearing import alice_of_support
from tests.storage.conftest import PG_DSN, fresh_schema


class Website:
    """A site's web server on loopback: serves ``body`` at every path, counts requests."""

    def __init__(self) -> None:
        self.body = b""
        self.requests: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.requests.append(self.path)
                self.send_response(200)
                self.send_header("content-length", str(len(site.body)))
                self.end_headers()
                self.wfile.write(site.body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def website() -> Iterator[Website]:
    running = Website()
    yield running
    running.close()


async def can_start_a_session(server: RunningServer, origin: str) -> bool:
    customer = await open_customer(server, origin=origin)
    try:
        await send(customer, type="create")
        return (await recv_json(customer))["type"] == "created"
    except ConnectionClosed:
        assert (await closed_with(customer)) == (4403, "origin not allowed")
        return False


async def test_a_registered_origin_starts_no_sessions_until_the_operator_approves(
    server_factory: ServerFactory,
) -> None:
    """The attack: Acme's admin registers another company's origin to take its customers'
    sessions (and their screens)."""
    server = server_factory(seed=two_organisations)
    victim = "https://bank.example"
    with api(server, "max") as max_:
        added = max_.post(
            "/api/sites", json={"site_id": "bank", "origin": victim, "teams": ["support"]}
        )
        assert added.status_code == 201 and added.json()["verified"] is False
    assert not await can_start_a_session(server, victim)
    async with offline(Settings.load(environ={}, data_dir=server.settings.data_dir)) as directory:
        admin = Principal(username="max", display_name="Max", role="admin", org="acme")
        with pytest.raises(ForbiddenError, match="operator"):  # an admin cannot vouch for it
            await directory.approve_site(admin, "bank")
        await directory.approve_site(operator("acme"), "bank")
    assert await can_start_a_session(server, victim)


async def test_a_site_that_serves_its_token_is_verified(
    server_factory: ServerFactory, website: Website
) -> None:
    server = server_factory(seed=two_organisations, test_private_network=True)
    site = {"site_id": "shop", "origin": website.origin, "teams": ["support"]}
    with api(server, "max") as max_:
        assert max_.post("/api/sites", json=site).status_code == 201
        proof = max_.get("/api/sites/shop/verification").json()
        assert proof["url"] == f"{website.origin}/.well-known/tandem-verification"
        website.body = b"something else"
        wrong = max_.post("/api/sites/shop/verify")
        assert wrong.status_code == 409
        assert not await can_start_a_session(server, website.origin)
        website.body = proof["token"].encode() + b"\n"
        verified = max_.post("/api/sites/shop/verify")
        assert verified.status_code == 200 and verified.json()["verified"] is True
    assert website.requests == ["/.well-known/tandem-verification"] * 2
    assert await can_start_a_session(server, website.origin)


async def test_verification_fetches_nothing_from_plain_http_or_private_hosts(
    server_factory: ServerFactory, website: Website
) -> None:
    """Without the test-only setting, the verification fetch is no way into the server's own
    network (server-side request forgery)."""
    server = server_factory(seed=two_organisations)
    site = {"site_id": "shop", "origin": website.origin, "teams": ["support"]}
    with api(server, "max") as max_:
        assert max_.post("/api/sites", json=site).status_code == 201
        refused = max_.post("/api/sites/shop/verify")
        assert refused.status_code == 400 and "https://" in refused.json()["detail"]
    assert website.requests == []


class Nameserver:
    """A DNS server on loopback (UDP): answers TXT questions from ``records``, NXDOMAIN for
    other names, or, ``silent``, nothing at all. Remembers the questions."""

    def __init__(self) -> None:
        self.records: dict[str, list[list[bytes]]] = {}
        self.silent = False
        self.questions: list[str] = []
        self.closed = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                wire, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(wire)
            question = query.question[0]
            name = question.name.to_text(omit_final_dot=True)
            self.questions.append(name)
            if self.silent:
                continue
            response = dns.message.make_response(query)
            if name not in self.records:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif question.rdtype == dns.rdatatype.TXT:
                for strings in self.records[name]:
                    rdata = dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings)
                    rrset = response.find_rrset(
                        response.answer,
                        question.name,
                        dns.rdataclass.IN,
                        dns.rdatatype.TXT,
                        create=True,
                    )
                    rrset.add(rdata, ttl=60)
            try:
                self.sock.sendto(response.to_wire(), peer)
            except OSError:
                if self.closed:  # closed by the test while answering (a late retry)
                    return
                raise

    def close(self) -> None:
        self.closed = True
        self.sock.close()


@pytest.fixture
def nameserver() -> Iterator[Nameserver]:
    running = Nameserver()
    yield running
    running.close()


async def test_a_site_whose_dns_holds_its_token_is_verified(
    server_factory: ServerFactory, nameserver: Nameserver
) -> None:
    """The alternative proof: a TXT record of ``_tandem-verification.<host>``. Wrong, missing
    and foreign records prove nothing; the site starts sessions only once the record is right."""
    server = server_factory(
        seed=two_organisations,
        site_verification_nameservers=(nameserver.address,),
        site_verification_timeout_seconds=2.0,
    )
    origin = "https://shop.example"
    record = "_tandem-verification.shop.example"
    site = {"site_id": "shop", "origin": origin, "teams": ["support"]}
    with api(server, "max") as max_:
        assert max_.post("/api/sites", json=site).status_code == 201
        proof = max_.get("/api/sites/shop/verification").json()
        assert proof["dns_name"] == record
        missing = max_.post("/api/sites/shop/verify/dns")
        assert missing.status_code == 400 and "does not exist" in missing.json()["detail"]
        # Another organisation's token for the same origin (or any other text) proves nothing.
        nameserver.records[record] = [[b"tandem-verification=" + b"0" * 64], [b"v=spf1 -all"]]
        wrong = max_.post("/api/sites/shop/verify/dns")
        assert wrong.status_code == 409
        assert not await can_start_a_session(server, origin)
        # A long token may be split into several strings of one record.
        token = proof["token"].encode()
        nameserver.records[record] = [[b"v=spf1 -all"], [token[:30], token[30:]]]
        verified = max_.post("/api/sites/shop/verify/dns")
        assert verified.status_code == 200 and verified.json()["verified"] is True
    with api(server, "mo") as mo:  # Acme's auditor
        trail = mo.get("/api/audit").json()
    assert nameserver.questions.count(record) == 3
    assert await can_start_a_session(server, origin)
    assert any(r["action"] == "site_verified" and r["details"]["by"] == "dns" for r in trail)


async def test_the_operator_proves_an_origin_by_dns_with_tandem_site_verify(
    server_factory: ServerFactory, nameserver: Nameserver
) -> None:
    """`tandem site verify ORIGIN --org ORG`: the same DNS proof from the command line. It says
    what to publish when the record is missing or wrong, proves nothing for the wrong
    organisation, and verifies the site (audited, actor cli) once the record holds the token."""
    server = server_factory(seed=two_organisations)
    origin = "https://shop.example"
    record = "_tandem-verification.shop.example"
    with api(server, "max") as max_:
        site = {"site_id": "shop", "origin": origin, "teams": ["support"]}
        assert max_.post("/api/sites", json=site).status_code == 201
        token = max_.get("/api/sites/shop/verification").json()["token"]
    env = {
        **os.environ,
        "TANDEM_DATA_DIR": str(server.settings.data_dir),
        "TANDEM_SITE_VERIFICATION_NAMESERVERS": nameserver.address,
        "TANDEM_SITE_VERIFICATION_TIMEOUT_SECONDS": "2",
    }

    def verify(*args: str) -> subprocess.CompletedProcess[str]:
        return tandem_in_process("site", "verify", *args, env=env)

    missing = verify(origin, "--org", "acme")
    assert missing.returncode == 2
    assert f"tandem: {record} does not exist in DNS" in missing.stderr
    assert f'Publish a TXT record: {record}. TXT "{token}"' in missing.stderr
    nameserver.records[record] = [[b"tandem-verification=" + b"0" * 64]]
    wrong = verify("shop", "--org", "acme")
    assert wrong.returncode == 2 and "holds this site's verification token" in wrong.stderr
    assert not await can_start_a_session(server, origin)
    nameserver.records[record] = [[token.encode()]]
    other_org = verify(origin, "--org", "globex")
    assert other_org.returncode == 2 and "no site" in other_org.stderr
    assert nameserver.questions.count(record) == 2  # the wrong organisation asked nothing
    verified = verify(origin, "--org", "acme")
    assert verified.returncode == 0, verified.stderr
    assert "Verified site 'shop' (https://shop.example)" in verified.stdout
    assert await can_start_a_session(server, origin)
    assert "already verified" in verify("shop").stdout
    with api(server, "mo") as mo:  # Acme's auditor
        trail = mo.get("/api/audit").json()
    [proved] = [r for r in trail if r["action"] == "site_verified"]
    assert proved["actor"] == "cli" and proved["details"]["by"] == "dns"
    failed = [r for r in trail if r["action"] == "site_verification_failed"]
    assert [r["actor"] for r in failed] == ["cli", "cli"]


async def test_a_silent_nameserver_fails_the_proof_within_the_deadline(
    server_factory: ServerFactory, nameserver: Nameserver
) -> None:
    nameserver.silent = True
    server = server_factory(
        seed=two_organisations,
        site_verification_nameservers=(nameserver.address,),
        site_verification_timeout_seconds=0.5,
    )
    site = {"site_id": "shop", "origin": "https://shop.example", "teams": ["support"]}
    with api(server, "max") as max_:
        assert max_.post("/api/sites", json=site).status_code == 201
        started = time.monotonic()
        late = max_.post("/api/sites/shop/verify/dns")
        assert time.monotonic() - started < 3
        assert late.status_code == 400 and "within 0.5 s" in late.json()["detail"]
        # An IP-address origin has no DNS name to prove it with.
        ip_site = {"site_id": "ip", "origin": "https://192.0.2.7", "teams": ["support"]}
        assert max_.post("/api/sites", json=ip_site).status_code == 201
        assert max_.get("/api/sites/ip/verification").json()["dns_name"] is None
        no_name = max_.post("/api/sites/ip/verify/dns")
        assert no_name.status_code == 400 and "no DNS name" in no_name.json()["detail"]
    assert nameserver.questions == ["_tandem-verification.shop.example"] * len(nameserver.questions)
    assert not await can_start_a_session(server, "https://shop.example")


def test_nameservers_are_checked_when_the_settings_load() -> None:
    assert Settings.load(
        environ={"TANDEM_SITE_VERIFICATION_NAMESERVERS": "192.0.2.1, [2001:db8::1]:5353"}
    ).site_verification_nameservers == ("192.0.2.1", "[2001:db8::1]:5353")
    for bad in ("dns.example", "192.0.2.1:0", "[2001:db8::1]x", "192.0.2.1:port"):
        with pytest.raises(ConfigError, match="nameserver"):
            Settings.load(environ={"TANDEM_SITE_VERIFICATION_NAMESERVERS": bad})


# Squatting: an organisation registers another company's origin first, unproved. Only a
# verified site holds an origin (docs/administration.md, "Who holds an origin"): the squat
# blocks no one, is never told apart from a fresh registration, can never be proved while the
# owner holds the origin, and never receives a session, a token check, a policy or CORS of it.


def _the_squat(origin: str) -> dict[str, object]:
    """Acme's registration of the bank's origin, with rules of its own that must never apply."""
    return {
        "site_id": "squat",
        "origin": origin,
        "teams": ["support"],
        "policy": {"version": 1, "mask": ["p"]},
    }


def _register_the_squat(server: RunningServer, origin: str) -> None:
    with api(server, "max") as max_:  # Acme's admin
        added = max_.post("/api/sites", json=_the_squat(origin))
        assert added.status_code == 201 and added.json()["verified"] is False
        assert max_.post("/api/sites/squat/token-key").status_code == 200
        assert max_.patch("/api/sites/squat", json={"require_token": True}).status_code == 200


def _sdk_cors(server: RunningServer, origin: str) -> str | None:
    answer = httpx.get(f"{server.base}/sdk/tandem.js", headers={"origin": origin})
    assert answer.status_code == 200
    return answer.headers.get("access-control-allow-origin")


async def _the_owner_registers_proves_and_serves_its_origin(
    server: RunningServer, website: Website
) -> None:
    origin = website.origin
    _register_the_squat(server, origin)
    assert not await can_start_a_session(server, origin)
    assert _sdk_cors(server, origin) is None
    with api(server, "ada") as ada:  # the bank's admin (the default organisation)
        bank = {"site_id": "bank", "origin": origin, "teams": ["support"]}
        added = ada.post(
            "/api/sites", json={**bank, "policy": {"version": 1, "mask": [".balance"]}}
        )
        assert added.status_code == 201, added.text  # the squat blocked it for good before
        assert not await can_start_a_session(server, origin)  # unproved: nobody's yet
        website.body = ada.get("/api/sites/bank/verification").json()["token"].encode()
        proved = ada.post("/api/sites/bank/verify")
        assert proved.status_code == 200 and proved.json()["verified"] is True
        bank_policy = ada.get("/api/sites/bank").json()["policy"]
    # The bank's customers start sessions without the squat's token, under the bank's policy,
    # for the bank's agents only; the SDK is served to the origin with CORS.
    _, created = await start_session(server, origin)
    assert created["policy"] == bank_policy != _the_squat(origin)["policy"]
    mallory = await open_agent(server, login_cookie(server, "mallory"))  # Acme's agent
    await send(mallory, type="join", code=created["code"])
    assert await recv_json(mallory) == INVALID_CODE
    alice = await open_agent(server, login_cookie(server, "alice"))  # the bank's agent
    await send(alice, type="join", code=created["code"])
    assert (await recv_json(alice))["type"] == "joined"
    assert _sdk_cors(server, origin) == origin


async def test_a_squat_does_not_keep_the_owner_from_registering_proving_and_serving_its_origin(
    server_factory: ServerFactory, website: Website
) -> None:
    server = server_factory(seed=two_organisations, test_private_network=True)
    await _the_owner_registers_proves_and_serves_its_origin(server, website)


async def test_a_squat_does_not_keep_the_owner_from_its_origin_on_postgresql(
    server_factory: ServerFactory, website: Website, tmp_path: Path
) -> None:
    async with fresh_schema() as schema:
        url = f"{PG_DSN}?search_path={schema}"

        async def seed() -> None:
            settings = Settings.load(environ={}, data_dir=tmp_path / "seed", database_url=url)
            async with offline(settings) as directory:
                await alice_of_support(directory)
                await two_organisations(directory)

        run_in_thread(seed)
        server = server_factory(
            database_url=url,
            audit_key_file=tmp_path / "seed" / "audit.key",
            test_private_network=True,
        )
        try:
            await _the_owner_registers_proves_and_serves_its_origin(server, website)
        finally:
            server.stop()  # before its schema goes


async def test_a_squat_can_never_be_proved_or_approved_while_the_owner_holds_the_origin(
    server_factory: ServerFactory, website: Website
) -> None:
    server = server_factory(seed=two_organisations, test_private_network=True)
    origin = website.origin
    _register_the_squat(server, origin)
    with api(server, "ada") as ada:
        assert (
            ada.post(
                "/api/sites", json={"site_id": "bank", "origin": origin, "teams": ["support"]}
            ).status_code
            == 201
        )
        website.body = ada.get("/api/sites/bank/verification").json()["token"].encode()
        assert ada.post("/api/sites/bank/verify").json()["verified"] is True
    fetched = len(website.requests)
    with api(server, "max") as max_:
        # Even an origin that served the squat's own token (a shared host, a hijacked page):
        # the owner holds it, so nothing is fetched or looked up, and the answer says why
        # without naming the holder.
        website.body = max_.get("/api/sites/squat/verification").json()["token"].encode()
        for route in ("/api/sites/squat/verify", "/api/sites/squat/verify/dns"):
            refused = max_.post(route)
            assert refused.status_code == 409, refused.text
            detail = refused.json()["detail"]
            assert "already verified by another organisation" in detail
            assert "default" not in detail and "bank" not in detail
        assert max_.get("/api/sites/squat").json()["verified"] is False
    assert len(website.requests) == fetched
    with pytest.raises(ConflictError, match="already verified by another organisation"):
        await approve(server, "acme", "squat")  # nor does the operator's approval
    with api(server, "mo") as mo:  # Acme's auditor sees its admin's attempts
        failed = [
            r for r in mo.get("/api/audit").json() if r["action"] == "site_verification_failed"
        ]
    assert [r["subject"] for r in failed] == ["squat", "squat"]
    # The owner's customers still reach the owner.
    _, created = await start_session(server, origin)
    assert created["type"] == "created"


async def test_a_squat_starts_no_session_after_the_owner_deletes_its_site(
    orgs_server: RunningServer,
) -> None:
    """Decided: other organisations' unproved registrations are kept (their admins see them
    unproved), not deleted; when the owner lets the origin go they are as unproved as ever and
    need the same proof as any new one: no customer of the origin reaches the squatter."""
    victim = "https://bank.example"
    _register_the_squat(orgs_server, victim)
    with api(orgs_server, "ada") as ada:
        assert (
            ada.post(
                "/api/sites", json={"site_id": "bank", "origin": victim, "teams": ["support"]}
            ).status_code
            == 201
        )
    await approve(orgs_server, "default", "bank")
    assert await can_start_a_session(orgs_server, victim)
    with api(orgs_server, "ada") as ada:
        assert ada.delete("/api/sites/bank").status_code == 204
    assert not await can_start_a_session(orgs_server, victim)
    assert _sdk_cors(orgs_server, victim) is None
    with api(orgs_server, "max") as max_:
        assert max_.get("/api/sites/squat").json()["verified"] is False


async def test_an_unproved_claim_of_an_allowed_origin_does_not_stop_the_server(
    server_factory: ServerFactory,
) -> None:
    """An organisation's admin registered an origin (even under the site id the server derives
    from it) before the operator allowed it with --allow-origin: the server still starts, the
    default organisation holds the origin, and the claim can never be proved."""
    origin = "https://shop.example"

    async def seed(directory: Directory) -> None:
        await two_organisations(directory)
        admin = Principal(username="max", display_name="Max", role="admin", org="acme")
        await directory.add_site(admin, "shop-example", origin, None, ("support",))

    server = server_factory(seed=seed, allow_origins=(origin,))
    assert await can_start_a_session(server, origin)
    _, created = await start_session(server, origin)
    alice = await open_agent(server, login_cookie(server, "alice"))  # the default organisation
    await send(alice, type="join", code=created["code"])
    assert (await recv_json(alice))["type"] == "joined"
    with pytest.raises(ConflictError, match="already verified by another organisation"):
        await approve(server, "acme", "shop-example")


async def test_the_operator_names_the_organisation_to_verify_an_origin_several_registered(
    server_factory: ServerFactory, nameserver: Nameserver
) -> None:
    """`tandem site verify ORIGIN` with two unproved registrations of the origin asks which
    organisation's is meant; with --org it proves that one, and the other can then never be."""
    server = server_factory(seed=two_organisations)
    origin = "https://shop.example"
    record = "_tandem-verification.shop.example"
    site = {"site_id": "shop", "origin": origin, "teams": ["support"]}
    with api(server, "max") as max_:
        assert max_.post("/api/sites", json=site).status_code == 201
        nameserver.records[record] = [
            [max_.get("/api/sites/shop/verification").json()["token"].encode()]
        ]
    with api(server, "ada") as ada:
        assert ada.post("/api/sites", json={**site, "site_id": "shop2"}).status_code == 201
    env = {
        **os.environ,
        "TANDEM_DATA_DIR": str(server.settings.data_dir),
        "TANDEM_SITE_VERIFICATION_NAMESERVERS": nameserver.address,
        "TANDEM_SITE_VERIFICATION_TIMEOUT_SECONDS": "2",
    }
    which = tandem_in_process("site", "verify", origin, env=env)
    assert which.returncode == 2
    assert "registered by several organisations (acme, default): add --org" in which.stderr
    verified = tandem_in_process("site", "verify", origin, "--org", "acme", env=env)
    assert verified.returncode == 0, verified.stderr
    assert "Verified site 'shop'" in verified.stdout
    other = tandem_in_process("site", "verify", origin, "--org", "default", env=env)
    assert other.returncode == 2 and "already verified by another organisation" in other.stderr
    assert "already verified" in tandem_in_process("site", "verify", origin, env=env).stdout


async def test_another_organisation_can_never_take_the_servers_own_pages(
    orgs_server: RunningServer,
) -> None:
    """``self`` (the server's own pages: the demo shop, practice) is the operator's
    organisation's alone. Even once its site is deleted, another organisation's admin cannot
    register it (which made a verified site at once: that organisation's agents received the
    sessions of the server's own pages)."""
    own = orgs_server.origin
    assert await can_start_a_session(orgs_server, own)
    with api(orgs_server, "ada") as ada:
        assert ada.delete("/api/sites/demo").status_code == 204
    assert not await can_start_a_session(orgs_server, own)
    with api(orgs_server, "max") as max_:  # Acme's admin
        taken = max_.post(
            "/api/sites", json={"site_id": "ours", "origin": "self", "teams": ["support"]}
        )
        assert taken.status_code == 409, taken.text
        assert "not available" in taken.json()["detail"]
    assert not await can_start_a_session(orgs_server, own)
    with api(orgs_server, "ada") as ada:  # the operator's organisation may have it back
        back = ada.post(
            "/api/sites", json={"site_id": "demo2", "origin": "self", "teams": ["support"]}
        )
        assert back.status_code == 201 and back.json()["verified"] is True
    assert await can_start_a_session(orgs_server, own)


class SlowWebsite(Website):
    """A site's web server that answers only once ``release`` is set (a slow origin)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.asked = threading.Event()
        handler = self.server.RequestHandlerClass
        slow = self

        class Slow(handler):  # type: ignore[misc, valid-type]
            def do_GET(self) -> None:
                slow.asked.set()
                slow.release.wait(10)
                super().do_GET()

        self.server.RequestHandlerClass = Slow


async def test_a_proof_does_not_undo_what_the_admin_changed_while_it_was_fetched(
    server_factory: ServerFactory,
) -> None:
    """The site's teams and token key changed while its origin was fetched (a slow origin takes
    up to ``site_verification_timeout_seconds``) stay changed once the proof comes: the proof
    wrote the whole site as it was read before the fetch, so a team the admin had taken off the
    site (its agents closed out) served it again, and a token key the admin had replaced (a
    leaked one) worked again."""
    website = SlowWebsite()
    try:
        server = server_factory(seed=two_organisations, test_private_network=True)
        site = {"site_id": "shop", "origin": website.origin, "teams": ["support"]}
        with api(server, "max") as max_:
            assert max_.post("/api/sites", json=site).status_code == 201
            leaked = max_.post("/api/sites/shop/token-key").json()["key"]
            website.body = max_.get("/api/sites/shop/verification").json()["token"].encode()

            def prove() -> httpx.Response:
                with api(server, "max") as other:
                    return other.post("/api/sites/shop/verify", timeout=20)

            proving = asyncio.create_task(asyncio.to_thread(prove))
            assert await asyncio.to_thread(website.asked.wait, 10)
            assert max_.patch("/api/sites/shop", json={"teams": []}).status_code == 200
            fresh = max_.post("/api/sites/shop/token-key").json()["key"]
            assert fresh != leaked
            website.release.set()
            proved = await proving
            assert proved.status_code == 200, proved.text
            assert proved.json()["verified"] is True
            assert proved.json()["teams"] == []
            now = max_.get("/api/sites/shop").json()
            assert now["verified"] is True and now["teams"] == []
        async with offline(Settings.load(environ={}, data_dir=server.settings.data_dir)) as d:
            stored = await d.get_site(operator("acme"), "shop")
            assert stored.token_key is not None
            assert d.box.open(stored.token_key) == fresh
    finally:
        website.release.set()
        website.close()


async def test_two_servers_starting_at_once_with_one_allowed_origin_both_start(
    tmp_path: Path,
) -> None:
    """Servers of one deployment start side by side with the same --allow-origin: both find no
    site for it and add one; the second's add is refused by the database (the id, or the
    origin's one verified site). It must start all the same: the default organisation holds the
    origin, which is all it wanted (it failed to start with that ConflictError)."""
    origin = "https://shop.example"
    settings = Settings.load(environ={}, data_dir=tmp_path, allow_origins=(origin,))
    async with offline(settings) as first, offline(settings) as second:
        await asyncio.gather(
            register_allowed_origins(first, settings), register_allowed_origins(second, settings)
        )
        held = await first.storage.site_for_origin(origin)
        assert held is not None and held.org_id == "default"
        assert [s.origin for s in await first.storage.all_sites()].count(origin) == 1


@pytest.mark.parametrize(("attempts", "starts"), [(3, False), (4, True), (None, False)])
async def test_the_start_tries_an_allowed_origin_allow_origin_attempts_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, attempts: int | None, starts: bool
) -> None:
    """``allow_origin_attempts`` (a code constant of 3 before) bounds the start-up's tries at an
    --allow-origin origin while other writers keep getting in the way (here: the first three
    tries each refused by the database, as when servers starting beside it add the origin's
    site first and then lose it): 3 tries give up with the conflict, 4 hold the origin; the
    default is 3."""
    origin = "https://shop.example"
    settings = Settings.load(
        environ={}, data_dir=tmp_path, allow_origins=(origin,), allow_origin_attempts=attempts
    )
    real_hold = services_module._hold_allowed_origin
    tries: list[str] = []

    async def crowded(directory: Directory, held: str) -> None:
        tries.append(held)
        if len(tries) <= 3:
            raise ConflictError("another server got in the way")
        await real_hold(directory, held)

    monkeypatch.setattr(services_module, "_hold_allowed_origin", crowded)
    async with offline(settings) as directory:
        if starts:
            await register_allowed_origins(directory, settings)
            held = await directory.storage.site_for_origin(origin)
            assert held is not None and held.org_id == "default"
        else:
            with pytest.raises(ConflictError):
                await register_allowed_origins(directory, settings)
            assert await directory.storage.site_for_origin(origin) is None
    assert len(tries) == (4 if starts else 3)


async def test_a_site_name_that_rebinds_to_loopback_after_the_check_is_not_connected_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the site's name answers a global address to the check and loopback (a
    service of the server's own host, a listener that counts connections) when the fetch
    connects. The fetch goes to the address that was checked."""
    service = socket.socket()
    service.bind(("127.0.0.1", 0))
    service.listen(8)
    service.setblocking(False)
    port = service.getsockname()[1]
    real = socket.getaddrinfo
    answers: list[str] = []

    def rebinding(host: object, *args: object, **kwargs: object) -> object:
        if (host.decode() if isinstance(host, bytes) else host) != "shop.rebinding.test":
            return real(host, *args, **kwargs)  # type: ignore[arg-type]
        answers.append("192.0.0.9" if not answers else "127.0.0.1")  # global, then loopback
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[-1], port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    site = SiteRecord("shop", "default", f"https://shop.rebinding.test:{port}", "Shop")
    try:
        with pytest.raises(ConfigError):
            await site_verification.check(SecretBox(tmp_path / "secrets.key"), site, 0.5)
        assert answers and answers[0] == "192.0.0.9"  # the check ran, and passed
        try:
            connected: socket.socket | None = service.accept()[0]
        except BlockingIOError:
            connected = None
        if connected is not None:
            connected.close()
        assert connected is None, "the fetch connected to the loopback service"
    finally:
        service.close()
