"""Enrolling a second factor (``POST /api/mfa/confirm``) under storage faults: it ends every
sign-in of the account, turns the factor on, shows recovery codes once and gives the enrolling
browser a new sign-in. The database failing at any step of it answers 503 and leaves the account
as it was (the browser still signed in, the factor still pending), so trying again enrols: never
a factor turned on whose recovery codes nobody saw, or sign-ins ended with no new cookie."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pyotp
import pytest

from tests.conftest import AGENT_PASSWORD, RunningServer
from tests.server.faults import FailingCall
from tests.server.helpers import own_password
from tests.server.test_organisations import api

CONFIRMING = "_confirm_mfa"
"""The route handler whose storage calls fail."""


@pytest.fixture
def faults(orgs_server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FailingCall]:
    yield FailingCall(orgs_server.server.config.app.state.services.storage, monkeypatch, CONFIRMING)


OWN_PASSWORD = "her-own-phrase-9163"


def new_account(server: RunningServer, username: str) -> httpx.Client:
    """An account an admin just made (no second factor yet), signed in with the password its
    owner chose at the first sign-in."""
    with api(server, "ada") as ada:
        made = ada.post(
            "/api/users", json={"username": username, "password": AGENT_PASSWORD, "role": "agent"}
        )
        assert made.status_code == 201, made.text
    own_password(server, username, AGENT_PASSWORD, OWN_PASSWORD)
    return api(server, username, OWN_PASSWORD)


def confirm(client: httpx.Client, secret: str, at: float) -> httpx.Response:
    return client.post("/api/mfa/confirm", json={"code": pyotp.TOTP(secret).at(at)})


def test_the_database_failing_at_any_step_of_enrolling_leaves_the_account_as_it_was(
    orgs_server: RunningServer, faults: FailingCall
) -> None:
    # How many storage calls a confirmation makes (a clean run).
    with new_account(orgs_server, "nina") as nina:
        secret = nina.post("/api/mfa/setup").json()["secret"]
        faults.arm(0)
        assert confirm(nina, secret, time.time()).status_code == 200
    steps = len(faults.calls)
    assert steps >= 1
    for fail_at in range(1, steps + 1):
        with new_account(orgs_server, f"nina{fail_at}") as user:
            old = user.cookies["tandem_agent"]
            secret = user.post("/api/mfa/setup").json()["secret"]
            faults.arm(fail_at)
            failed = confirm(user, secret, time.time())
            where = f"failing at call {fail_at} ({faults.calls[-1]})"
            assert failed.status_code == 503, (where, failed.text)
            assert "Traceback" not in failed.text
            # As it was: still signed in, the factor still pending.
            user.cookies.clear()
            user.cookies.set("tandem_agent", old)
            me = user.get("/api/me")
            assert me.status_code == 200, where
            assert me.json()["needs_second_factor"] is True, where
            # Once the database answers, trying again (the next code) enrols.
            faults.arm(0)
            again = confirm(user, secret, time.time() + 30)
            assert again.status_code == 200, (where, again.text)
            assert len(again.json()["recovery_codes"]) == 10, where
            renewed = again.cookies["tandem_agent"]
            user.cookies.clear()
            user.cookies.set("tandem_agent", renewed)
            assert user.get("/api/me").json()["needs_second_factor"] is False, where
