"""An organisation cannot claim another company's website: a site its admin registers starts
no sessions until the origin serves its verification token or the operator approves it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from websockets.exceptions import ConnectionClosed

from tandem.access import Principal
from tandem.config import Settings
from tandem.directory import offline, operator
from tandem.exceptions import ForbiddenError
from tests.conftest import RunningServer, ServerFactory, two_organisations
from tests.server.helpers import closed_with, open_customer, recv_json, send
from tests.server.test_organisations import api


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
