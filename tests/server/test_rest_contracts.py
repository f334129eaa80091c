"""The declared shape of every JSON answer (``Operation.returns``, the console's generated types)
is what the running server really sends: each answer decodes with it, unknown fields refused."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
import pyotp

from tandem.access import ROLES, allowed
from tandem.server import admin, app, http
from tests.conftest import AGENT_PASSWORD, RunningServer
from tests.server.helpers import closed_with, open_customer, own_password, send
from tests.server.test_customer_tokens import sign
from tests.server.test_organisations import api as signed_in
from tests.server.test_recordings import new_public_key, rec_server, recording

__all__ = ["rec_server"]  # the fixture, imported for this module's tests

USER_OF_ROLE = {"agent": "alice", "supervisor": "sam", "auditor": "aud", "admin": "ada"}
PARAMS = {"username": "alice", "team": "support", "site_id": "demo"}


def answers(response: Any, kind: Any) -> Any:
    assert response.status_code in (200, 201), (response.request.url, response.text)
    return msgspec.json.decode(response.content, type=kind, strict=True)


def test_every_json_answer_declares_its_type() -> None:
    for op in app.OPERATIONS:
        json_answer = op.status != 204 and op.media_type == "application/json"
        assert (op.returns is not None) == json_answer, (op.method, op.path)


async def test_every_read_answers_in_its_declared_type(rec_server: RunningServer) -> None:
    customer, _, _ = await recording(rec_server)  # a live session, and a recording to list
    # A customer token the site has no key for: refused and counted (GET /api/audit/counts).
    rejected = await open_customer(rec_server)
    now = int(rec_server.clock())
    await send(rejected, type="create", token=sign("x" * 43, sub="c", aud="demo", iat=now, exp=now))
    assert (await closed_with(rejected))[0] == 4401
    rec_server.clock.advance(rec_server.settings.anonymous_audit_interval_seconds)
    with signed_in(rec_server, "aud") as aud:
        deadline = time.monotonic() + 10
        while not aud.get("/api/audit/counts").json():
            assert time.monotonic() < deadline, "the refusal was never counted"
            await asyncio.sleep(0.05)
    with signed_in(rec_server, "aud") as aud:
        [listed] = answers(aud.get("/api/recordings"), list[admin.Recording])
    params = {**PARAMS, "recording_id": listed.recording_id}
    reads = [op for op in app.OPERATIONS if op.method == "GET" and op.returns is not None]
    for op in reads:
        role = next(role for role in ROLES if allowed(role, op.action))
        with signed_in(rec_server, USER_OF_ROLE[role]) as client:
            found = answers(client.get(op.path.format(**params)), op.returns)
            assert found or op.path == "/api/org/sso", op.path  # nothing vacuous
    with signed_in(rec_server, "alice") as alice:
        answers(alice.get("/api/me"), http.AgentInfo)
    await customer.close()


NINAS_OWN = "her-own-phrase-9163"


def test_every_change_answers_in_its_declared_type(rec_server: RunningServer) -> None:
    def call(client: Any, method: str, path: str, body: object | None = None) -> None:
        op = app.operation_for(method, path)
        assert op is not None
        url = path.format(**PARAMS)
        answers(client.request(method, url, json=body), op.returns)

    with signed_in(rec_server, "ada") as ada:
        call(ada, "PATCH", "/api/org", {"retention_days": 20})
        call(ada, "PUT", "/api/org/recording-key", {"public_key": new_public_key()})
        call(
            ada,
            "POST",
            "/api/users",
            {"username": "nina", "password": AGENT_PASSWORD, "role": "agent"},
        )
        call(ada, "PATCH", "/api/users/{username}", {"display_name": "Alice A."})
        call(ada, "POST", "/api/teams", {"team": "claims"})
        call(ada, "PATCH", "/api/teams/{team}", {"policy": {"version": 1, "mask": [".card"]}})
        call(
            ada,
            "POST",
            "/api/sites",
            {"site_id": "blog", "origin": "http://blog.test", "teams": []},
        )
        call(ada, "PATCH", "/api/sites/{site_id}", {"require_token": False})
        call(ada, "POST", "/api/sites/{site_id}/token-key")
    own_password(rec_server, "nina", AGENT_PASSWORD, NINAS_OWN)  # her first sign-in
    with signed_in(rec_server, "nina", NINAS_OWN) as nina:
        setup = answers(nina.post("/api/mfa/setup"), admin.SecondFactorSetup)
        code = pyotp.TOTP(setup.secret).now()
        answers(nina.post("/api/mfa/confirm", json={"code": code}), admin.RecoveryCodes)
