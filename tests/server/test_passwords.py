"""Passwords change: an agent's own change (the current password asked for, other sign-ins
ended) and an admin's reset (sign-ins end, the next sign-in must choose a new password)."""

from __future__ import annotations

import httpx

from tests.conftest import AGENT_PASSWORD, RunningServer
from tests.server.helpers import closed_with, login_cookie, open_agent
from tests.server.test_organisations import api

NEW_PASSWORD = "green-lantern-tide-77"


def client(server: RunningServer, cookie: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.base, cookies={"tandem_agent": cookie}, headers={"origin": server.origin}
    )


def change(http: httpx.Client, current: str, new: str) -> httpx.Response:
    return http.post("/api/me/password", json={"current_password": current, "new_password": new})


def test_an_agent_changes_its_own_password_and_its_other_sign_ins_end(
    orgs_server: RunningServer,
) -> None:
    elsewhere = client(orgs_server, login_cookie(orgs_server, "sam"))
    with elsewhere, client(orgs_server, login_cookie(orgs_server, "sam")) as here:
        wrong = change(here, "not-the-password", NEW_PASSWORD)
        assert wrong.status_code == 400 and "current password" in wrong.json()["detail"]
        assert change(here, AGENT_PASSWORD, "short").status_code == 400
        changed = change(here, AGENT_PASSWORD, NEW_PASSWORD)
        assert changed.status_code == 200, changed.text
        here.cookies.set("tandem_agent", changed.cookies["tandem_agent"])
        assert here.get("/api/me").status_code == 200  # this browser stays signed in
        assert elsewhere.get("/api/me").status_code == 401  # the other sign-in ended
    old = httpx.post(
        f"{orgs_server.base}/api/login", json={"username": "sam", "password": AGENT_PASSWORD}
    )
    assert old.status_code == 401
    assert login_cookie(orgs_server, "sam", NEW_PASSWORD)


async def test_an_admins_reset_ends_sign_ins_and_forces_a_new_password(
    orgs_server: RunningServer,
) -> None:
    temporary = "temporary-pass-4821"
    with (
        client(orgs_server, login_cookie(orgs_server, "alice")) as before,
        api(orgs_server, "ada") as ada,
    ):
        reset = ada.post("/api/users/alice/reset-password", json={"password": temporary})
        assert reset.status_code == 204, reset.text
        listed = {u["username"]: u for u in ada.get("/api/users").json()}
        assert listed["alice"]["password_change_required"] is True
        assert before.get("/api/me").status_code == 401
    cookie = login_cookie(orgs_server, "alice", temporary)
    with client(orgs_server, cookie) as alice:
        assert alice.get("/api/me").json()["must_change_password"] is True
        agent = await open_agent(orgs_server, cookie)  # nothing live until it is changed
        assert (await closed_with(agent))[0] == 4403
        changed = change(alice, temporary, NEW_PASSWORD)
        assert changed.status_code == 200 and changed.json()["must_change_password"] is False


def test_an_admin_cannot_reset_its_own_password_or_another_organisations(
    orgs_server: RunningServer,
) -> None:
    with api(orgs_server, "ada") as ada:
        assert (
            ada.post("/api/users/ada/reset-password", json={"password": NEW_PASSWORD}).status_code
            == 409
        )
        assert (
            ada.post("/api/users/mary/reset-password", json={"password": NEW_PASSWORD}).status_code
            == 404
        )
    assert login_cookie(orgs_server, "mary")  # unchanged
