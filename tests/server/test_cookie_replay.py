"""Attack review of authentication, item 1: a sign-in cookie captured (a log, a shared machine,
a proxy) and replayed from another client after whatever should have ended it: sign-out, the
owner's password change, an admin's password or second-factor reset, the account disabled (and
enabled again), removed and a new account made under its name. Each replay is tried on the API
and on a new agent socket (the transport), which authenticates with the same cookie."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.conftest import AGENT_PASSWORD, RunningServer, ServerFactory, two_organisations
from tests.server.helpers import closed_with, login_cookie, open_agent
from tests.server.test_organisations import api

SIGN_IN_FIRST = (4401, "sign in first")


@pytest.fixture
def orgs(server_factory: ServerFactory) -> RunningServer:
    return server_factory(seed=two_organisations)


def _sign_out(server: RunningServer, cookie: str) -> None:
    with httpx.Client(base_url=server.base, headers={"origin": server.origin}) as owner:
        owner.cookies.set("tandem_agent", cookie)
        assert owner.post("/api/logout").status_code == 204


def _change_password(server: RunningServer, _: str) -> None:
    with api(server, "alice") as owner:
        changed = owner.post(
            "/api/me/password",
            json={"current_password": AGENT_PASSWORD, "new_password": "another long passphrase 7"},
        )
        assert changed.status_code == 200, changed.text


def _admin(path: str, body: dict[str, str] | None = None) -> Callable[[RunningServer, str], None]:
    def act(server: RunningServer, _: str) -> None:
        with api(server, "ada") as ada:
            done = ada.post(path, json=body) if body is not None else ada.post(path)
            assert done.is_success, done.text

    return act


def _disable_and_enable(server: RunningServer, cookie: str) -> None:
    _admin("/api/users/alice/disable")(server, cookie)
    _admin("/api/users/alice/enable")(server, cookie)


def _remove_and_make_anew(server: RunningServer, _: str) -> None:
    with api(server, "ada") as ada:
        assert ada.delete("/api/users/alice").status_code == 204
        made = ada.post(
            "/api/users",
            json={"username": "alice", "password": "the new hires passphrase 9", "role": "agent"},
        )
        assert made.status_code == 201, made.text


ENDINGS = {
    "sign-out": _sign_out,
    "own password change": _change_password,
    "admin's password reset": _admin(
        "/api/users/alice/reset-password", {"password": "temporary passphrase 12"}
    ),
    "admin's second-factor reset": _admin("/api/users/alice/reset-mfa"),
    "disabled, then enabled again": _disable_and_enable,
    "removed, and the name given to a new account": _remove_and_make_anew,
}


@pytest.mark.parametrize("ending", list(ENDINGS), ids=list(ENDINGS))
async def test_a_captured_cookie_replayed_after_its_sign_in_ended_is_refused(
    orgs: RunningServer, ending: str
) -> None:
    captured = login_cookie(orgs, "alice")
    ENDINGS[ending](orgs, captured)
    # From another client (no cookie jar of the owner's, another User-Agent).
    replay = httpx.get(
        f"{orgs.base}/api/me",
        cookies={"tandem_agent": captured},
        headers={"user-agent": "replayer/1.0"},
    )
    assert replay.status_code == 401
    socket = await open_agent(orgs, captured)
    assert await closed_with(socket) == SIGN_IN_FIRST
