"""A copied sign-in cookie (``login_bind_client``): off by default, a sign-in's cookie works from
any browser until the sign-in ends; on, it works only from the browser (User-Agent) and/or
network it was made for, and a copy used elsewhere ends the sign-in everywhere, on record."""

from __future__ import annotations

import httpx
import pytest
from websockets.asyncio.client import connect

from tandem.config import Settings
from tandem.exceptions import ConfigError
from tandem.server.http import OTHER_CLIENT
from tandem.storage.sql import SQLStorage
from tests.conftest import AGENT_PASSWORD, RunningServer, ServerFactory, tandem_in_process
from tests.server.helpers import closed_with, open_agent, track_connection

OWNER = {"user-agent": "Mozilla/5.0 (the owner's browser)"}
THIEF = {"user-agent": "Mozilla/5.0 (another browser)"}


def sign_in(server: RunningServer, address: str = "127.0.0.1") -> str:
    with httpx.Client(transport=httpx.HTTPTransport(local_address=address)) as http:
        answer = http.post(
            f"{server.base}/api/login",
            json={"username": "alice", "password": AGENT_PASSWORD},
            headers=OWNER,
        )
    assert answer.status_code == 200, answer.text
    return answer.cookies["tandem_agent"]


def me(
    server: RunningServer, cookie: str, headers: dict[str, str], address: str = "127.0.0.1"
) -> int:
    with httpx.Client(
        transport=httpx.HTTPTransport(local_address=address),
        cookies={"tandem_agent": cookie},
        headers={"origin": server.origin, **headers},
    ) as http:
        return http.get(f"{server.base}/api/me").status_code


async def records_of(server: RunningServer, action: str) -> list[dict[str, object]]:
    storage = await SQLStorage.open_sqlite(server.settings.database_path)
    try:
        return [
            {"actor": r.actor, **r.details}
            for r in await storage.audit_records()
            if r.action == action
        ]
    finally:
        await storage.close()


def test_by_default_a_copied_sign_in_cookie_works_from_another_browser(
    server: RunningServer,
) -> None:
    """The documented limit (threat model): nothing binds a sign-in to its browser unless the
    operator turns ``login_bind_client`` on."""
    cookie = sign_in(server)
    assert me(server, cookie, THIEF) == 200


async def test_a_sign_in_bound_to_its_browser_ends_when_its_cookie_comes_from_another(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(login_bind_client="browser")
    cookie = sign_in(server)
    assert me(server, cookie, OWNER) == 200
    assert me(server, cookie, THIEF) == 401
    assert me(server, cookie, OWNER) == 401  # ended everywhere: the owner signs in again
    assert me(server, sign_in(server), OWNER) == 200
    [record] = await records_of(server, "sign_in_other_client")
    assert record["actor"] == "alice" and record["bound"] == "browser" and record["ip"]


async def test_a_cookie_without_its_binding_is_refused_once_binding_is_on(
    server_factory: ServerFactory,
) -> None:
    """The binding is a MAC under the secrets key over the token and the client: a thief
    cannot make one for its own browser, nor strip it off."""
    server = server_factory(login_bind_client="both")
    token, _, mac = sign_in(server).partition(".")
    assert mac
    assert me(server, f"{token}.{'0' * len(mac)}", OWNER) == 401
    assert me(server, token, OWNER) == 401


def test_a_sign_in_bound_to_its_network_works_within_it_and_ends_from_another(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(login_bind_client="network")
    cookie = sign_in(server, "127.0.0.1")
    assert me(server, cookie, THIEF, "127.0.0.9") == 200  # the same /24; any browser
    assert me(server, cookie, OWNER, "127.0.1.1") == 401


async def test_a_bound_sign_in_opens_no_agent_socket_from_another_browser(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(login_bind_client="browser")
    cookie = sign_in(server)  # the owner's User-Agent; the socket sends websockets' own
    code, _ = await closed_with(await open_agent(server, cookie))
    assert code == 4401
    assert me(server, cookie, OWNER) == 401


@pytest.mark.parametrize("value", ["sometimes", "", "BOTH"])
def test_an_unknown_binding_is_refused_at_start(value: str) -> None:
    with pytest.raises(ConfigError, match="login_bind_client"):
        Settings.load(environ={}, login_bind_client=value)


@pytest.mark.parametrize("proxy", [None, "127.0.0.5"])
def test_a_forged_x_forwarded_for_does_not_bring_a_copy_into_the_owners_network(
    server_factory: ServerFactory, proxy: str | None
) -> None:
    """The thief, on another network, names the owner's address in X-Forwarded-For: with no
    proxy trusted, or from an address that is not the trusted proxy, the header is not the
    client's address, and the copy ends the sign-in."""
    server = server_factory(login_bind_client="network", trusted_proxies=(proxy,) if proxy else ())
    cookie = sign_in(server, "127.0.0.1")
    forged = {**OWNER, "x-forwarded-for": "127.0.0.1", "forwarded": "for=127.0.0.1"}
    assert me(server, cookie, forged, "127.0.1.1") == 401
    assert me(server, cookie, OWNER, "127.0.0.1") == 401  # ended for the owner too


def test_behind_the_trusted_proxy_the_network_is_the_forwarded_clients(
    server_factory: ServerFactory,
) -> None:
    """Through the trusted proxy, the forwarded address is the client's: a copy forwarded for
    another network ends the sign-in (the proxy's own address, one for all, binds nothing)."""
    server = server_factory(login_bind_client="network", trusted_proxies=("127.0.0.5",))
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.5")) as http:
        answer = http.post(
            f"{server.base}/api/login",
            json={"username": "alice", "password": AGENT_PASSWORD},
            headers={**OWNER, "x-forwarded-for": "198.51.100.7"},
        )
    assert answer.status_code == 200, answer.text
    cookie = answer.cookies["tandem_agent"]
    owner = {**OWNER, "x-forwarded-for": "198.51.100.20"}
    assert me(server, cookie, owner, "127.0.0.5") == 200
    # The thief names the owner's address; the proxy appends the thief's own: the last one
    # the trusted proxy added is the client's.
    forged = {**OWNER, "x-forwarded-for": "198.51.100.20, 203.0.113.7"}
    assert me(server, cookie, forged, "127.0.0.5") == 401
    assert me(server, cookie, owner, "127.0.0.5") == 401


async def test_a_forged_x_forwarded_for_opens_no_agent_socket_from_another_network(
    server_factory: ServerFactory,
) -> None:
    """The socket's upgrade request from another network, naming the owner's address."""
    server = server_factory(login_bind_client="network")
    cookie = sign_in(server, "127.0.0.1")
    socket = await connect(
        f"{server.ws_base}/ws/agent",
        origin=server.origin,  # type: ignore[arg-type]
        additional_headers={"cookie": f"tandem_agent={cookie}", "x-forwarded-for": "127.0.0.1"},
        compression=None,
        local_addr=("127.0.1.1", 0),
    )
    track_connection(socket)
    code, _ = await closed_with(socket)
    assert code == 4401
    assert me(server, cookie, OWNER, "127.0.0.1") == 401


def _bound_then_rotated(server_factory: ServerFactory) -> tuple[RunningServer, str]:
    """A server binding sign-ins to their browser, and a sign-in's cookie bound under the key
    that ``tandem secrets rotate`` has just replaced."""
    server = server_factory(login_bind_client="browser")
    cookie = sign_in(server)
    data = str(server.settings.data_dir)
    assert tandem_in_process("secrets", "rotate", "--data-dir", data).returncode == 0
    return server, cookie


async def test_a_sign_in_bound_before_a_rotation_is_bound_again_and_outlives_the_retirement(
    server_factory: ServerFactory,
) -> None:
    """A cookie bound under the key a rotation replaced is set again, bound under the new key,
    at its next use: the retirement of the old key then ends no sign-in in use. Before, each
    was ended by ``tandem secrets retire`` and recorded as a copied cookie
    (``sign_in_other_client``: an alarm for every agent signed in). A copy from another browser
    is not bound again: it still ends the sign-in."""
    server, cookie = _bound_then_rotated(server_factory)
    with httpx.Client(
        cookies={"tandem_agent": cookie}, headers={"origin": server.origin, **OWNER}
    ) as http:
        answer = http.get(f"{server.base}/api/me")
        assert answer.status_code == 200
        again = answer.cookies["tandem_agent"]
        assert again.partition(".")[0] == cookie.partition(".")[0] and again != cookie
        assert "HttpOnly" in answer.headers["set-cookie"]
        assert "samesite=strict" in answer.headers["set-cookie"].lower()
        assert "set-cookie" not in http.get(f"{server.base}/api/me").headers  # bound now
    retired = tandem_in_process("secrets", "retire", "--data-dir", str(server.settings.data_dir))
    assert retired.returncode == 0, retired.stderr
    assert me(server, again, OWNER) == 200
    assert await records_of(server, "sign_in_other_client") == []
    assert me(server, again, THIEF) == 401
    assert len(await records_of(server, "sign_in_other_client")) == 1


async def test_a_copy_of_a_cookie_bound_before_a_rotation_is_not_bound_again(
    server_factory: ServerFactory,
) -> None:
    server, cookie = _bound_then_rotated(server_factory)
    with httpx.Client(
        cookies={"tandem_agent": cookie}, headers={"origin": server.origin, **THIEF}
    ) as http:
        answer = http.get(f"{server.base}/api/me")
    assert answer.status_code == 401 and "tandem_agent=" + cookie[:8] not in str(answer.headers)
    assert me(server, cookie, OWNER) == 401


async def test_an_agent_whose_network_changed_is_told_why_and_signs_in_again(
    server_factory: ServerFactory,
) -> None:
    """The owner's address moved to another network (a laptop taken home): its socket is closed
    saying why (the console shows the server's words), its requests are answered saying why,
    and a new sign-in from the new network works: no loop of sign-ins ended; a record each."""
    server = server_factory(login_bind_client="network")
    cookie = sign_in(server, "127.0.0.1")
    socket = await connect(
        f"{server.ws_base}/ws/agent",
        origin=server.origin,  # type: ignore[arg-type]
        additional_headers={"cookie": f"tandem_agent={cookie}"},
        compression=None,
        local_addr=("127.0.1.1", 0),
    )
    track_connection(socket)
    code, reason = await closed_with(socket)
    assert (code, reason) == (4401, OTHER_CLIENT)
    # Another sign-in (another tab's, say) whose first request comes from the new network.
    with httpx.Client(
        transport=httpx.HTTPTransport(local_address="127.0.1.1"),
        cookies={"tandem_agent": sign_in(server, "127.0.0.1")},
        headers={"origin": server.origin, **OWNER},
    ) as http:
        answer = http.get(f"{server.base}/api/me")
    assert answer.status_code == 401
    assert "another browser or network" in answer.json()["detail"]
    again = sign_in(server, "127.0.1.1")
    assert me(server, again, OWNER, "127.0.1.1") == 200
    assert me(server, again, OWNER, "127.0.1.200") == 200
    assert len(await records_of(server, "sign_in_other_client")) == 2


def test_signing_out_with_a_cookie_bound_before_a_rotation_leaves_no_cookie(
    server_factory: ServerFactory,
) -> None:
    """The sign-out clears the cookie; the binding again under the new key is not added after
    the clearing (the browser would have kept a cookie of the sign-in it left)."""
    server, cookie = _bound_then_rotated(server_factory)
    with httpx.Client(
        cookies={"tandem_agent": cookie}, headers={"origin": server.origin, **OWNER}
    ) as http:
        answer = http.post(f"{server.base}/api/logout")
    assert answer.status_code == 204
    set_cookies = answer.headers.get_list("set-cookie")
    assert len(set_cookies) == 1 and "max-age=0" in set_cookies[0].lower(), set_cookies
