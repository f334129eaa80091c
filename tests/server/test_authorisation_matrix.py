"""Every role against every HTTP route and every agent-socket message, generated from the running
app's routes and the wire protocol, and checked against tandem.access.PERMISSIONS."""

from __future__ import annotations

import json
from typing import Any, get_args

import httpx
import msgspec
import pytest
from starlette.routing import Route

from tandem import hub
from tandem.access import ROLES, Action, allowed
from tandem.config import Settings
from tandem.protocol.messages import AgentMessage
from tandem.server.app import create_app, operation_for
from tests.conftest import RunningServer
from tests.server.helpers import closed_with, login_cookie, open_agent, recv_json

PUBLIC = {
    ("/api/login", "POST"),
    ("/api/logout", "POST"),
    ("/api/openapi.json", "GET"),
    ("/api/sso/start", "GET"),
    ("/api/sso/callback", "GET"),
}
"""Routes anyone may call (signing in and out, the API description)."""

# Every test here shares one server (`shared_orgs_server`): requests name users, teams, sites and
# recordings that exist nowhere, so no test changes what another sees; the two wrong join codes
# (agent, supervisor) stay under the per-address back-off; and each test signs in afresh, so one
# role's /api/logout-everywhere ends only that test's own sign-ins.

USER_OF_ROLE = {"agent": "alice", "supervisor": "sam", "auditor": "aud", "admin": "ada"}


def api_routes() -> list[tuple[str, str, Action | None]]:
    app = create_app(Settings.load(environ={}))
    found = []
    for route in app.routes:
        if not isinstance(route, Route) or not route.path.startswith("/api"):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            operation = operation_for(method, route.path)
            action = (
                operation.action if operation else getattr(route.endpoint, "tandem_action", None)
            )
            found.append((route.path, method, action))
    # Signing out everywhere ends the test's sign-in: it goes last.
    return sorted(found, key=lambda r: r[0] == "/api/logout-everywhere")


ROUTES = api_routes()


def test_every_route_is_public_or_names_its_action() -> None:
    assert len(ROUTES) > 20
    for path, method, action in ROUTES:
        assert action is not None or (path, method) in PUBLIC, (path, method)


def _request(server: RunningServer, path: str, method: str, cookie: str | None) -> int:
    # Names that exist in no organisation: an allowed role gets past authorisation and then a
    # 404 or 400, never a change to real data.
    url = path.format(username="nobody", team="nobody", site_id="nobody", recording_id="nobody")
    operation = operation_for(method, path)
    response = httpx.request(
        method,
        f"{server.base}{url}",
        cookies={"tandem_agent": cookie} if cookie else None,
        headers={"origin": server.origin, "content-type": "application/json"},
        content=json.dumps({}) if operation and operation.body else None,
    )
    return response.status_code


@pytest.mark.parametrize("role", ROLES)
def test_each_role_reaches_exactly_the_routes_its_permissions_name(
    shared_orgs_server: RunningServer, role: Any
) -> None:
    cookie = login_cookie(shared_orgs_server, USER_OF_ROLE[role])
    checked = 0
    for path, method, action in ROUTES:
        if action is None:
            continue
        status = _request(shared_orgs_server, path, method, cookie)
        if allowed(role, action):
            assert status not in (401, 403), (role, method, path, status)
        else:
            assert status == 403, (role, method, path, status)
        checked += 1
    assert checked == len([r for r in ROUTES if r[2] is not None])


def test_signed_out_callers_get_401_on_every_signed_in_route(
    shared_orgs_server: RunningServer,
) -> None:
    for path, method, action in ROUTES:
        if action is not None:
            assert _request(shared_orgs_server, path, method, None) == 401, (method, path)


def _minimal(message_type: type[msgspec.Struct]) -> dict[str, Any]:
    """The smallest valid message of a type (values for required fields)."""
    samples = {"code": "000-00", "data": "AA", "reason": "key_mismatch", "session_id": "nobody"}
    fields = {f: samples[f] for f in message_type.__struct_fields__ if f in samples}
    return {"v": 1, "type": message_type.__struct_config__.tag, **fields}


AGENT_MESSAGES = get_args(AgentMessage)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("message_type", AGENT_MESSAGES, ids=lambda t: t.__name__)
async def test_each_role_and_agent_socket_message(
    shared_orgs_server: RunningServer, role: Any, message_type: type[msgspec.Struct]
) -> None:
    socket = await open_agent(
        shared_orgs_server, login_cookie(shared_orgs_server, USER_OF_ROLE[role])
    )
    if not allowed(role, hub.AGENT_SOCKET_ACTION):
        # Refused before any message is read.
        code, reason = await closed_with(socket)
        assert code == 4403 and role in reason
        return
    tag = message_type.__struct_config__.tag
    await socket.send(json.dumps(_minimal(message_type)))
    action, _ = hub.AGENT_EVENTS[message_type]
    if not allowed(role, action):
        code, reason = await closed_with(socket)
        assert code == 4403 and role in reason, (role, tag)
    elif tag == "join":
        assert (await recv_json(socket))["code"] == "invalid_code"
    elif tag == "watch":  # allowed, but no such session
        assert (await closed_with(socket))[0] == 4404
    else:  # authorised, but there is no session to act on yet
        assert (await closed_with(socket))[0] == 4400
