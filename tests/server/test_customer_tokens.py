"""Sites that only let their signed-in customers start sessions: a short-lived JWT from the
site's backend, checked for signature, algorithm, audience, expiry and lifetime."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sqlite3
import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey

from tests.conftest import RunningServer, ServerFactory, two_organisations
from tests.server.helpers import closed_with, open_customer, recv_json, send
from tests.server.test_admin_api import audit_actions
from tests.server.test_organisations import api


def sign(key: str, **claims: Any) -> str:
    return jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(key.encode()))


def issue_key(server: RunningServer, require: bool = True) -> str:
    with api(server, "ada") as ada:
        key = ada.post("/api/sites/demo/token-key").json()["key"]
        if require:
            assert ada.patch("/api/sites/demo", json={"require_token": True}).status_code == 200
    return str(key)


async def create(server: RunningServer, token: str | None) -> tuple[Any, dict[str, Any] | None]:
    customer = await open_customer(server)
    if token is None:
        await send(customer, type="create")
    else:
        await send(customer, type="create", token=token)
    try:
        return customer, await recv_json(customer)
    except Exception:
        return customer, None


async def test_a_valid_token_starts_a_session_in_the_customers_name(
    orgs_server: RunningServer,
) -> None:
    key = issue_key(orgs_server)
    now = int(orgs_server.clock())
    _, created = await create(
        orgs_server, sign(key, sub="c-42", aud="demo", iat=now, exp=now + 300)
    )
    assert created is not None and created["type"] == "created"
    with api(orgs_server, "aud") as aud:
        starts = [r for r in aud.get("/api/audit").json() if r["action"] == "session_created"]
    # The trail names a pseudonym of the customer, never its sub (erasable: tandem.subjects).
    assert starts[-1]["actor"].startswith("customer:p-")
    assert "c-42" not in json.dumps(starts)


def forged_none(now: int) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    claims = {"sub": "c-42", "aud": "demo", "iat": now, "exp": now + 60}
    return f"{part({'alg': 'none'})}.{part(claims)}."


ATTACKS = {
    "missing": lambda key, now: None,
    "expired": lambda key, now: sign(key, sub="c", aud="demo", iat=now - 600, exp=now - 60),
    "other audience": lambda key, now: sign(key, sub="c", aud="acme-shop", iat=now, exp=now + 60),
    "other key": lambda key, now: sign("x" * 43, sub="c", aud="demo", iat=now, exp=now + 60),
    "alg none": lambda key, now: forged_none(now),
    "long-lived": lambda key, now: sign(key, sub="c", aud="demo", iat=now, exp=now + 86400),
    "no subject": lambda key, now: sign(key, aud="demo", iat=now, exp=now + 60),
    # A subject request names the customer by a trimmed, printable sub (tandem.subjects): this
    # one would be found, exported and erased as "c-42", another customer.
    "sub with spaces around": lambda key, now: sign(
        key, sub=" c-42", aud="demo", iat=now, exp=now + 60
    ),
    "sub with a control character": lambda key, now: sign(
        key, sub="c\t42", aud="demo", iat=now, exp=now + 60
    ),
}


@pytest.mark.parametrize("attack", ATTACKS)
async def test_a_bad_or_missing_token_is_refused_and_audited(
    orgs_server: RunningServer, attack: str
) -> None:
    key = issue_key(orgs_server)
    customer, answer = await create(orgs_server, ATTACKS[attack](key, int(orgs_server.clock())))
    assert answer is None  # no session, no code
    code, reason = await closed_with(customer)
    assert code == 4401
    assert "customer token" in reason
    # Counted per interval (issue 14), not a chained record per anonymous socket.
    assert "customer_token_rejected" not in audit_actions(orgs_server)
    orgs_server.clock.advance(orgs_server.settings.anonymous_audit_interval_seconds)
    deadline = time.monotonic() + 10
    with api(orgs_server, "aud") as aud:
        while not any(
            row["action"] == "customer_token_rejected" and row["count"] == 1
            for row in aud.get("/api/audit/counts").json()
        ):
            assert time.monotonic() < deadline, "the rejection was never counted"
            await asyncio.sleep(0.05)


async def test_a_new_key_retires_the_old_one(orgs_server: RunningServer) -> None:
    old = issue_key(orgs_server)
    issue_key(orgs_server)
    now = int(orgs_server.clock())
    customer, answer = await create(
        orgs_server, sign(old, sub="c", aud="demo", iat=now, exp=now + 60)
    )
    assert answer is None and (await closed_with(customer))[0] == 4401


async def test_tokens_are_optional_until_the_site_requires_them(orgs_server: RunningServer) -> None:
    with api(orgs_server, "ada") as ada:
        refused = ada.patch("/api/sites/demo", json={"require_token": True})
        assert refused.status_code == 409 and "token key" in refused.json()["detail"]
    _, created = await create(orgs_server, None)
    assert created is not None and created["type"] == "created"
    key = issue_key(orgs_server, require=False)
    now = int(orgs_server.clock())
    # A token that is offered is still checked.
    customer, answer = await create(orgs_server, sign(key, sub="c", aud="x", iat=now, exp=now + 60))
    assert answer is None and (await closed_with(customer))[0] == 4401


async def test_a_token_with_an_id_starts_one_session_only(orgs_server: RunningServer) -> None:
    key = issue_key(orgs_server)
    now = int(orgs_server.clock())
    token = sign(key, sub="c-7", aud="demo", iat=now, exp=now + 300, jti="3f9c1e")
    _, created = await create(orgs_server, token)
    assert created is not None and created["type"] == "created"
    replay, answer = await create(orgs_server, token)  # the same token again: a replay
    assert answer is None
    code, reason = await closed_with(replay)
    assert code == 4401 and "used already" in reason
    fresh = sign(key, sub="c-7", aud="demo", iat=now, exp=now + 300, jti="a71b02")
    _, again = await create(orgs_server, fresh)  # a new token for the same customer works
    assert again is not None and again["type"] == "created"
    without_id = sign(key, sub="c-7", aud="demo", iat=now, exp=now + 300)
    for _ in range(2):  # without an id, a token may start sessions until it expires
        _, created = await create(orgs_server, without_id)
        assert created is not None and created["type"] == "created"


@pytest.mark.parametrize(("leeway", "accepted"), [(None, False), (60, True), (0, False)])
async def test_a_token_expired_within_customer_token_leeway_seconds_is_accepted(
    server_factory: ServerFactory, leeway: int | None, accepted: bool
) -> None:
    """``customer_token_leeway_seconds`` (a code constant of 30 s before) is the clock skew
    tolerated on a customer token: one that expired 45 s ago by the server's clock is refused
    by default (30 s) and with 0, accepted with 60."""
    server = server_factory(seed=two_organisations, customer_token_leeway_seconds=leeway)
    key = issue_key(server)
    now = int(server.clock())
    customer, created = await create(
        server, sign(key, sub="c-9", aud="demo", iat=now - 300, exp=now - 45)
    )
    if accepted:
        assert created is not None and created["type"] == "created", created
    else:
        assert created is None
        code, reason = await closed_with(customer)
        assert code == 4401 and "customer token" in reason


def recordings_purged_at(server: RunningServer) -> float | None:
    with contextlib.closing(sqlite3.connect(server.settings.database_path)) as db:
        row = db.execute(
            "SELECT noted_at FROM installation_notes WHERE name = 'recordings_purged_at'"
        ).fetchone()
    return None if row is None else float(row[0])


async def test_a_single_use_token_cannot_be_replayed_within_a_long_leeway(
    server_factory: ServerFactory,
) -> None:
    """The attack: a single-use token (``jti``) accepted in the leeway, after its ``exp``, is
    replayed once the purge of expired single-use marks has run. Its mark must outlive the
    leeway: kept only a fixed minute past ``exp``, the purge took it while a two-minute leeway
    still accepted the token, and the replay started a second session in the customer's name."""
    server = server_factory(
        seed=two_organisations,
        customer_token_leeway_seconds=120,
        purge_interval_seconds=1.0,
        recording_purge_seconds=1.0,
    )
    key = issue_key(server)
    now = int(server.clock())
    token = sign(key, sub="c-7", aud="demo", iat=now - 300, exp=now - 100, jti="replayed")
    _, created = await create(server, token)
    assert created is not None and created["type"] == "created", created
    # 10 s on (the token still within its leeway), wait for a purge run at that clock: the
    # recordings' purge, which runs after the expired rows' in the same turn, notes its clock.
    server.clock.advance(10)
    deadline = time.monotonic() + 10
    while (recordings_purged_at(server) or 0.0) < now + 10:
        assert time.monotonic() < deadline, "no purge ran with the clock moved on"
        await asyncio.sleep(0.05)
    customer, replayed = await create(server, token)
    assert replayed is None, "the token was accepted twice"
    code, reason = await closed_with(customer)
    assert code == 4401 and "used already" in reason
