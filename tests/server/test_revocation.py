"""Issue 14 (1): a revoked sign-in ends the agent sockets it opened, at once and in every process.

Each test opens an agent socket first and revokes afterwards (sign-out, "sign out everywhere", a
role change, the account removed, its second factor reset, its teams or the site's teams changed
so that none serves the session's site): before issue 14 the socket, checked only when it opened,
went on joining sessions, and before the teams were re-checked a socket in a session went on
receiving the customer's page. Servers here re-check open sockets only every hour
(``agent_reauth_seconds``) unless a test is about that timer, so a close within seconds is the
announcement's doing (tandem.revocation)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from tandem import auth
from tandem.directory import offline, operator
from tandem.storage.base import LoginRecord
from tandem.storage.sql import SQLStorage
from tests.conftest import AGENT_PASSWORD, RunningServer, ServerFactory, two_organisations
from tests.grants import of_org, owned
from tests.oidc_provider import OidcProvider, use_provider
from tests.server.helpers import (
    INVALID_CODE,
    closed_with,
    login_cookie,
    open_agent,
    own_password,
    recv_json,
    send,
    sharing_session,
    sharing_with_tokens,
    start_session,
)
from tests.server.test_organisations import api
from tests.server.test_scale_out import Cluster, run_in_thread, start_cluster
from tests.server.test_sso import sign_in as sso_sign_in
from tests.server.test_watch import asked
from tests.test_mfa import enrol

SIGNED_OUT = (4401, "signed out: sign in again")
ROLE_CHANGED = (4403, "your role no longer allows this")
TEAMS_CHANGED = (4403, "your teams no longer serve this site")
HOURLY = {"agent_reauth_seconds": 3600.0}


@pytest.fixture
def orgs(server_factory: ServerFactory) -> RunningServer:
    """Two organisations (tests/conftest.py); open sockets re-checked only hourly by the timer."""
    return server_factory(seed=two_organisations, **HOURLY)


def closes(server: RunningServer) -> list[dict[str, Any]]:
    """The audited forced closes (read by the default organisation's auditor)."""
    with api(server, "aud") as aud:
        return [r for r in aud.get("/api/audit").json() if r["action"] == "socket_closed"]


async def test_sign_out_closes_the_sockets_that_sign_in_opened(orgs: RunningServer) -> None:
    cookie = login_cookie(orgs, "alice")
    waiting = await open_agent(orgs, cookie)  # opened before, not in a session yet
    other = await open_agent(orgs, login_cookie(orgs, "alice"))  # another sign-in: stays
    signed_out = httpx.post(
        f"{orgs.base}/api/logout", cookies={"tandem_agent": cookie}, headers={"origin": orgs.origin}
    )
    assert signed_out.status_code == 204
    assert await closed_with(waiting) == SIGNED_OUT
    # The other sign-in's socket still joins.
    customer, created = await start_session(orgs)
    await send(other, type="join", code=created["code"])
    assert (await recv_json(other))["type"] == "joined"
    [close] = closes(orgs)
    assert (close["actor"], close["subject"]) == ("server", "alice")
    assert close["details"] == {"session": "", "code": 4401, "reason": SIGNED_OUT[1]}
    await customer.close()


async def relays(customer: Any, agent: Any, content: bytes) -> bool:
    """Whether page content the customer sends now reaches ``agent`` (within 5 s)."""
    await customer.send(content)
    return await asyncio.wait_for(agent.recv(), 5) == content


async def agent_is_lost(customer: Any, agent: Any, session_id: str, server: RunningServer) -> None:
    """``agent`` was closed because no team of hers serves the site any more: the customer's
    session ends as with any agent lost (its page stops sharing), and the close is audited."""
    assert await closed_with(agent) == TEAMS_CHANGED
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "agent_lost"}
    [close] = closes(server)
    assert (close["actor"], close["subject"]) == ("server", "alice")
    assert close["details"] == {"session": session_id, "code": 4403, "reason": TEAMS_CHANGED[1]}


async def test_an_agent_taken_off_the_sites_team_loses_the_session_at_once(
    orgs: RunningServer,
) -> None:
    customer, agent, created = await sharing_session(orgs)  # alice (support) on demo (support)
    assert await relays(customer, agent, b"\x01before")
    with api(orgs, "ada") as ada:
        changed = ada.patch("/api/users/alice", json={"teams": ["billing"]})
        assert changed.json()["teams"] == ["billing"]
    await agent_is_lost(customer, agent, created["session_id"], orgs)


async def test_a_site_given_to_another_team_loses_its_agent_at_once(orgs: RunningServer) -> None:
    customer, agent, created = await sharing_session(orgs)
    with api(orgs, "ada") as ada:
        changed = ada.patch("/api/sites/demo", json={"teams": ["billing"]})
        assert changed.json()["teams"] == ["billing"]
    await agent_is_lost(customer, agent, created["session_id"], orgs)


async def test_a_removed_site_loses_its_agent_at_once(orgs: RunningServer) -> None:
    customer, agent, created = await sharing_session(orgs)
    with api(orgs, "ada") as ada:
        assert ada.delete("/api/sites/demo").status_code == 204
    await agent_is_lost(customer, agent, created["session_id"], orgs)


async def test_a_removed_team_loses_its_agents_at_once(orgs: RunningServer) -> None:
    customer, agent, created = await sharing_session(orgs)
    with api(orgs, "ada") as ada:
        assert ada.delete("/api/teams/support").status_code == 204
    await agent_is_lost(customer, agent, created["session_id"], orgs)


async def test_a_supervisor_taken_off_the_sites_team_stops_watching_at_once(
    orgs: RunningServer,
) -> None:
    customer, alice, sam, session_id = await asked(orgs)
    await send(customer, type="watch_consent", granted=True)
    await recv_json(sam)
    await send(customer, type="watch_handshake", data="AAAA")
    await recv_json(sam)
    await send(sam, type="handshake", data="BBBB")
    await recv_json(customer)
    await send(customer, type="watch_handshake", data="CCCC")
    await recv_json(sam)
    assert await recv_json(alice) == {"v": 1, "type": "watcher_joined", "watcher": "Sam"}
    await customer.send(b"\x01paired")
    assert await alice.recv() == b"\x01paired"
    assert await sam.recv() == b"\x01paired"  # the supervisor watches the page
    with api(orgs, "ada") as ada:
        assert ada.patch("/api/users/sam", json={"teams": ["billing"]}).status_code == 200
    assert await closed_with(sam) == TEAMS_CHANGED
    # Both sides see the supervisor go, as when it leaves; the session itself goes on.
    assert await recv_json(customer) == {"v": 1, "type": "watcher_left"}
    assert await recv_json(alice) == {"v": 1, "type": "watcher_left"}
    assert await relays(customer, alice, b"\x01after")
    [close] = closes(orgs)
    assert close["subject"] == "sam"
    assert close["details"] == {"session": session_id, "code": 4403, "reason": TEAMS_CHANGED[1]}


async def test_team_changes_that_still_serve_the_site_leave_the_agent_in(
    orgs: RunningServer,
) -> None:
    customer, agent, _ = await sharing_session(orgs)
    bob = await open_agent(orgs, login_cookie(orgs, "bob"))  # the last announcement's witness
    with api(orgs, "ada") as ada:
        both = ["support", "billing"]
        assert ada.patch("/api/users/alice", json={"teams": both}).status_code == 200
        assert ada.patch("/api/sites/demo", json={"teams": both}).status_code == 200
        added = ada.post(
            "/api/sites",
            json={"site_id": "other", "origin": "https://other.example", "teams": ["support"]},
        )
        assert added.status_code == 201, added.text
        assert ada.patch("/api/sites/other", json={"teams": ["billing"]}).status_code == 200
        # Announcements are heard in order: once bob's socket closed, alice's were re-checked.
        assert ada.patch("/api/users/bob", json={"role": "admin"}).status_code == 200
    assert await closed_with(bob) == ROLE_CHANGED
    assert await relays(customer, agent, b"\x01still-helping")
    assert [c["subject"] for c in closes(orgs)] == ["bob"]


async def test_sign_out_ends_a_joined_agents_socket(server_factory: ServerFactory) -> None:
    server = server_factory(**HOURLY)
    customer, agent, _ = await sharing_session(server)
    with httpx.Client(base_url=server.base, headers={"origin": server.origin}) as client:
        # sharing_session signed alice in with its own cookie: end every sign-in of hers.
        client.cookies.set("tandem_agent", login_cookie(server, "alice"))
        assert client.post("/api/logout-everywhere").status_code == 204
    assert await closed_with(agent) == SIGNED_OUT
    told = await recv_json(customer)
    assert told["type"] in {"peer", "ended"}  # the customer learns its agent went


async def test_sign_out_everywhere_closes_every_sign_ins_sockets(orgs: RunningServer) -> None:
    first = await open_agent(orgs, login_cookie(orgs, "alice"))
    second = await open_agent(orgs, login_cookie(orgs, "alice"))
    sam = await open_agent(orgs, login_cookie(orgs, "sam"))  # someone else: untouched
    with api(orgs, "alice") as alice:
        assert alice.post("/api/logout-everywhere").status_code == 204
    assert await closed_with(first) == SIGNED_OUT
    assert await closed_with(second) == SIGNED_OUT
    await send(sam, type="watch", session_id="nobody")
    assert (await closed_with(sam))[0] == 4404  # sam's socket still reached the hub
    assert [c["subject"] for c in closes(orgs)] == ["alice", "alice"]


async def test_signing_in_again_in_a_browser_ends_the_sign_in_it_had(orgs: RunningServer) -> None:
    """A sign-in (password or provider) ends the one the browser carried before it, whoever's
    it was, and closes its sockets: it survived, with its sockets open, though the browser now
    holds another (a shared desk's next agent; a sign-in someone planted or copied before)."""
    earlier = login_cookie(orgs, "alice")
    socket = await open_agent(orgs, earlier)
    with httpx.Client(base_url=orgs.base) as browser:
        browser.cookies.set(auth.COOKIE_NAME, earlier)
        again = browser.post("/api/login", json={"username": "sam", "password": AGENT_PASSWORD})
        assert again.status_code == 200, again.text
        assert browser.get("/api/me").json()["username"] == "sam"
    assert await closed_with(socket) == SIGNED_OUT
    with httpx.Client(base_url=orgs.base) as other:
        other.cookies.set(auth.COOKIE_NAME, earlier)
        assert other.get("/api/me").status_code == 401
    refused = login_cookie(orgs, "bob")  # a failed sign-in ends nothing
    with httpx.Client(base_url=orgs.base) as browser:
        browser.cookies.set(auth.COOKIE_NAME, refused)
        wrong = browser.post("/api/login", json={"username": "bob", "password": "not-bobs-pw"})
        assert wrong.status_code == 401
        assert browser.get("/api/me").json()["username"] == "bob"


async def test_a_role_change_without_join_closes_the_socket(orgs: RunningServer) -> None:
    socket = await open_agent(orgs, login_cookie(orgs, "alice"))
    with api(orgs, "ada") as ada:
        assert ada.patch("/api/users/alice", json={"role": "admin"}).status_code == 200
    assert await closed_with(socket) == ROLE_CHANGED
    [close] = closes(orgs)
    assert close["details"]["code"] == 4403


async def test_a_removed_account_loses_its_sockets(orgs: RunningServer) -> None:
    socket = await open_agent(orgs, login_cookie(orgs, "bob"))
    with api(orgs, "ada") as ada:
        assert ada.delete("/api/users/bob").status_code == 204
    assert await closed_with(socket) == SIGNED_OUT


async def test_a_second_factor_reset_closes_the_sockets(orgs: RunningServer) -> None:
    socket = await open_agent(orgs, login_cookie(orgs, "alice"))
    with api(orgs, "ada") as ada:
        assert ada.post("/api/users/alice/reset-mfa").status_code == 204
    assert await closed_with(socket) == SIGNED_OUT


def test_a_half_sign_in_ends_after_the_set_up_time_however_used(orgs: RunningServer) -> None:
    """A sign-in with the password alone, of an account that must still set up its second
    factor (a half sign-in: all it may do is that), lasted as long as a full one (8 hours) and
    was kept alive by use: a copied cookie of it, or a browser left on the set-up page, let
    whoever held it enrol an authenticator of its own at any time that day. Now it ends
    ``setup_sign_in_seconds`` after it was made, used or not; a full sign-in made with it
    lasts."""
    with api(orgs, "ada") as ada:
        made = ada.post(
            "/api/users", json={"username": "nina", "password": AGENT_PASSWORD, "role": "agent"}
        )
        assert made.status_code == 201, made.text
    half, full = login_cookie(orgs, "nina"), login_cookie(orgs, "sam")

    def me(cookie: str) -> int:
        return httpx.get(f"{orgs.base}/api/me", cookies={"tandem_agent": cookie}).status_code

    setup = orgs.settings.setup_sign_in_seconds
    assert setup < orgs.settings.login_idle_seconds < orgs.settings.login_ttl_seconds
    orgs.clock.advance(setup - 60)
    assert (me(half), me(full)) == (200, 200)  # used: not idle
    orgs.clock.advance(60)
    assert (me(half), me(full)) == (401, 200)


NINAS_OWN = "her-own-phrase-9163"


async def test_a_sign_in_made_with_the_password_alone_ends_when_the_owner_enrols(
    orgs: RunningServer,
) -> None:
    """An attacker who has the password of an account without a second factor yet (new, once
    its owner chose her password, or just reset) signs in first: restricted. The owner then
    enrols an authenticator in her own browser. The attacker's sign-in never showed the new
    factor, so it ends, not upgrades: no console, no socket, no password change; the owner's
    browser gets a new, full sign-in."""
    with api(orgs, "ada") as ada:
        made = ada.post(
            "/api/users", json={"username": "nina", "password": AGENT_PASSWORD, "role": "agent"}
        )
        assert made.status_code == 201, made.text
    own_password(orgs, "nina", AGENT_PASSWORD, NINAS_OWN)  # her first sign-in
    attacker = login_cookie(orgs, "nina", NINAS_OWN)
    with httpx.Client(base_url=orgs.base, headers={"origin": orgs.origin}) as mallory:
        mallory.cookies.set("tandem_agent", attacker)
        assert mallory.get("/api/me").json()["needs_second_factor"] is True
        owner_cookie = login_cookie(orgs, "nina", NINAS_OWN)
        with httpx.Client(base_url=orgs.base, headers={"origin": orgs.origin}) as nina:
            nina.cookies.set("tandem_agent", owner_cookie)
            secret = nina.post("/api/mfa/setup").json()["secret"]
            confirmed = nina.post(
                "/api/mfa/confirm", json={"code": pyotp.TOTP(secret).at(orgs.clock())}
            )
            assert confirmed.status_code == 200, confirmed.text
            assert len(confirmed.json()["recovery_codes"]) == 10
            renewed = confirmed.cookies["tandem_agent"]
            assert renewed != owner_cookie  # a new sign-in, not the restricted one upgraded
            nina.cookies.set("tandem_agent", renewed)
            me = nina.get("/api/me")
            assert me.status_code == 200 and me.json()["needs_second_factor"] is False
            customer, created = await start_session(orgs)
            owner_socket = await open_agent(orgs, renewed)
            await send(owner_socket, type="join", code=created["code"])
            answer = await recv_json(owner_socket)  # past the second factor: the next gate
            assert answer["code"] == "training_required", answer  # (a new account's first)
        assert mallory.get("/api/me").status_code == 401
        changed = mallory.post(
            "/api/me/password",
            json={"current_password": NINAS_OWN, "new_password": "taken-over-pass-5521"},
        )
        assert changed.status_code == 401, changed.text
        for old in (attacker, owner_cookie):  # both ended: a socket is refused at the door
            assert await closed_with(await open_agent(orgs, old)) == (4401, "sign in first")
    # A password sign-in now asks for the factor, as before.
    no_code = httpx.post(f"{orgs.base}/api/login", json={"username": "nina", "password": NINAS_OWN})
    assert no_code.status_code == 401
    await customer.close()


async def test_a_password_only_sign_in_of_an_account_with_a_second_factor_is_refused(
    orgs: RunningServer,
) -> None:
    """A sign-in stored as made with the password alone while the account has a second factor
    (one that raced the enrolment, or any from before sign-ins recorded what they proved) is
    ended on its next use, whatever its cookie would otherwise allow."""
    enrolment = enrol(orgs, "bea")
    cookie = "x" * 43
    lasting = orgs.clock() + 3600

    async def plant() -> None:
        storage = await SQLStorage.open_sqlite(orgs.settings.database_path)
        try:
            login = LoginRecord(auth.login_digest(cookie), "bea", lasting, orgs.clock(), "password")
            await storage.add_login(login)
        finally:
            await storage.close()

    await asyncio.to_thread(asyncio.run, plant())
    with httpx.Client(base_url=orgs.base, headers={"origin": orgs.origin}) as bea:
        bea.cookies.set("tandem_agent", cookie)
        assert bea.get("/api/me").status_code == 401
        assert bea.get("/api/me").status_code == 401  # ended, not just refused once
    code = pyotp.TOTP(enrolment.secret).at(orgs.clock())
    two_step = httpx.post(
        f"{orgs.base}/api/login",
        json={"username": "bea", "password": AGENT_PASSWORD, "code": code},
    )
    assert two_step.status_code == 200
    with httpx.Client(base_url=orgs.base, headers={"origin": orgs.origin}) as bea:
        bea.cookies.set("tandem_agent", two_step.cookies["tandem_agent"])
        assert bea.get("/api/me").json()["needs_second_factor"] is False


async def test_a_password_reset_or_change_closes_the_other_sockets(orgs: RunningServer) -> None:
    by_admin = await open_agent(orgs, login_cookie(orgs, "alice"))
    with api(orgs, "ada") as ada:
        temporary = {"password": "temporary-pass-4821"}
        reset = ada.post("/api/users/alice/reset-password", json=temporary)
        assert reset.status_code == 204, reset.text
    assert await closed_with(by_admin) == SIGNED_OUT
    by_self = await open_agent(orgs, login_cookie(orgs, "sam"))
    with api(orgs, "sam") as sam:
        changed = sam.post(
            "/api/me/password",
            json={"current_password": AGENT_PASSWORD, "new_password": "another-pass-9137"},
        )
        assert changed.status_code == 200, changed.text
    assert await closed_with(by_self) == SIGNED_OUT


async def test_a_sign_in_that_idled_out_cannot_join_on_an_open_socket(orgs: RunningServer) -> None:
    """No announcement here (the sign-in simply idled out): the join itself re-checks it."""
    socket = await open_agent(orgs, login_cookie(orgs, "alice"))
    orgs.clock.advance(orgs.settings.login_idle_seconds + 1)
    customer, created = await start_session(orgs)  # a fresh code, valid at the new time
    await send(socket, type="join", code=created["code"])
    assert await closed_with(socket) == SIGNED_OUT
    await customer.close()


def _delete_logins_behind_the_servers_back(server: RunningServer, username: str) -> None:
    """Another tool ends the sign-ins in the database: no announcement reaches the server."""

    async def run() -> None:
        storage = await SQLStorage.open_sqlite(server.settings.data_dir / "tandem.sqlite3")
        try:
            await storage.delete_logins_of(of_org("default"), username)
        finally:
            await storage.close()

    worker = threading.Thread(target=asyncio.run, args=(run(),))
    worker.start()
    worker.join()


async def test_open_sockets_are_rechecked_periodically(server_factory: ServerFactory) -> None:
    server = server_factory(agent_reauth_seconds=0.2)
    customer, agent, _ = await sharing_session(server)
    _delete_logins_behind_the_servers_back(server, "alice")
    assert await closed_with(agent) == SIGNED_OUT
    await customer.close()


async def test_a_sites_teams_are_rechecked_periodically(server_factory: ServerFactory) -> None:
    """Another tool moves the site to another team in the database: no announcement."""
    server = server_factory(seed=two_organisations, agent_reauth_seconds=0.2)
    customer, agent, _ = await sharing_session(server)

    async def run() -> None:
        storage = await SQLStorage.open_sqlite(server.settings.data_dir / "tandem.sqlite3")
        try:
            site = await storage.get_site("demo")
            assert site is not None
            await storage.update_site(*owned(dataclasses.replace(site, teams=("billing",))))
        finally:
            await storage.close()

    worker = threading.Thread(target=asyncio.run, args=(run(),))
    worker.start()
    worker.join()
    assert await closed_with(agent) == TEAMS_CHANGED
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "agent_lost"}


@pytest.fixture
def cluster(
    requires_redis: None, server_factory: ServerFactory, tmp_path: Path
) -> Iterator[Cluster]:
    """Servers sharing PostgreSQL and Redis (tests/server/test_scale_out.py)."""
    with start_cluster(server_factory, tmp_path) as start:
        yield start


async def test_a_revocation_on_one_server_closes_a_socket_on_another(cluster: Cluster) -> None:
    a, b = cluster(**HOURLY), cluster(**HOURLY)
    cookie = login_cookie(a, "alice")
    on_b = await open_agent(b, cookie)
    still = await open_agent(b, login_cookie(b, "sam"))
    signed_out = httpx.post(
        f"{a.base}/api/logout", cookies={"tandem_agent": cookie}, headers={"origin": a.origin}
    )
    assert signed_out.status_code == 204
    assert await closed_with(on_b) == SIGNED_OUT
    await send(still, type="watch", session_id="nobody")
    assert (await closed_with(still))[0] == 4404


async def test_a_silent_agent_socket_is_closed_after_the_first_message_timeout(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(first_message_timeout_seconds=0.3)
    socket = await open_agent(server, login_cookie(server))
    assert await closed_with(socket) == (4408, "timed out waiting for the first message")


async def test_an_idle_agent_socket_outside_a_session_is_closed(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(agent_idle_seconds=0.3)
    socket = await open_agent(server, login_cookie(server))
    await send(socket, type="join", code="00000")
    assert await recv_json(socket) == INVALID_CODE
    assert await closed_with(socket) == (4408, "timed out waiting for a message (idle)")


async def test_a_site_change_on_one_server_closes_a_tunnelled_agent_on_another(
    cluster: Cluster,
) -> None:
    a, b = cluster(**HOURLY), cluster(**HOURLY)

    async def add_admin() -> None:
        async with offline(a.settings) as directory:
            default = operator("default")
            await directory.add_team(default, "billing")
            await directory.add_user(
                default,
                "ada",
                AGENT_PASSWORD,
                "admin",
                None,
                (),
                mfa_exempt=True,
                change_required=False,
            )

    run_in_thread(add_admin)
    # The session is held by a; the agent's socket is on b, tunnelled to a.
    customer, agent, _, _ = await sharing_with_tokens(a, login_cookie(b, "alice"), b)
    with api(b, "ada") as ada:
        assert ada.patch("/api/sites/demo", json={"teams": ["billing"]}).status_code == 200
    assert await closed_with(agent) == TEAMS_CHANGED
    assert await recv_json(customer) == {"v": 1, "type": "ended", "reason": "agent_lost"}


async def test_turning_the_provider_off_on_one_server_closes_its_sign_ins_sockets_on_another(
    cluster: Cluster,
) -> None:
    """Two servers on one PostgreSQL database and one Redis. Alice signed in through the
    organisation's provider on the first, her console's socket is on the second; her admin
    turns the provider off on the first (it was taken over): her sign-in ends in the shared
    database and her socket on the second closes at once, whatever its re-check period."""
    a = cluster(**HOURLY, test_private_network=True)
    b = cluster(**HOURLY, test_private_network=True)

    async def add_admin() -> None:
        async with offline(a.settings) as directory:
            await directory.add_user(
                operator("default"),
                "ada",
                AGENT_PASSWORD,
                "admin",
                None,
                (),
                mfa_exempt=True,
                change_required=False,
            )

    run_in_thread(add_admin)
    provider = OidcProvider().start()
    try:
        provider.redirect_uris.add(f"{a.base}/api/sso/callback")
        with api(a, "ada") as ada:
            use_provider(ada, provider, {"alice": "u-1"})
            with httpx.Client() as browser:
                assert sso_sign_in(a, browser).headers["location"] == "/console/"
                cookie = browser.cookies["tandem_agent"]
            on_b = await open_agent(b, cookie)
            still = await open_agent(b, login_cookie(b, "sam"))
            assert ada.delete("/api/org/sso").status_code == 204
        assert await closed_with(on_b) == SIGNED_OUT
        await send(still, type="watch", session_id="nobody")
        assert (await closed_with(still))[0] == 4404  # a password sign-in is still there
    finally:
        provider.stop()
