"""Text with the NUL character (U+0000) is refused at the API on both backends: SQLite would
store it, PostgreSQL refuses it, and that refusal read as a database failure (503, a storage
error logged and counted) instead of the client's bad input (400)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tandem.config import Settings
from tandem.directory import offline, operator
from tests.conftest import AGENT_PASSWORD, RunningServer, ServerFactory
from tests.server.helpers import login_cookie
from tests.server.test_scale_out import run_in_thread
from tests.storage.conftest import PG_DSN, fresh_schema


def refusals(server: RunningServer, admin: str) -> list[httpx.Response]:
    with httpx.Client(
        base_url=server.base,
        cookies={"tandem_agent": login_cookie(server, admin)},
        headers={"origin": server.origin},
    ) as client:
        return [
            client.post(
                "/api/holds", json={"kind": "subject", "target": "c\u00001", "reason": "r"}
            ),
            client.post(
                "/api/holds", json={"kind": "subject", "target": "c1", "reason": "r\u00001"}
            ),
            client.patch("/api/org", json={"name": "Default\u0000"}),
            client.patch("/api/users/al%00ice", json={"display_name": "Alice"}),
        ]


def sign_ins(server: RunningServer) -> list[httpx.Response]:
    """Sign-ins with a NUL, from anyone: the name went to the back-off and the audit trail."""
    return [
        httpx.post(f"{server.base}/api/login", json=body)
        for body in (
            {"username": "al\u0000ice", "password": AGENT_PASSWORD},
            {"username": "alice", "password": AGENT_PASSWORD, "code": "12\u00003456"},
        )
    ]


def assert_refused_as_bad_input(server: RunningServer, admin: str) -> None:
    for answer in [*sign_ins(server), *refusals(server, admin)]:
        assert answer.status_code == 400, (answer.request.url, answer.text)
        assert "NUL" in answer.json()["detail"]
    with httpx.Client(
        base_url=server.base,
        cookies={"tandem_agent": login_cookie(server, admin)},
        headers={"origin": server.origin},
    ) as client:
        assert client.get("/api/holds").json()["holds"] == []  # nothing of it was stored
        assert "\x00" not in client.get("/api/org").json()["name"]
        fine = client.patch("/api/users/alice", json={"display_name": "Alice Smith"})
        assert fine.status_code == 200, fine.text  # ordinary text still passes


def test_nul_in_text_is_bad_input_on_sqlite(orgs_server: RunningServer) -> None:
    assert_refused_as_bad_input(orgs_server, "ada")


async def test_nul_in_text_is_bad_input_on_postgresql(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    async with fresh_schema() as schema:
        url = f"{PG_DSN}?search_path={schema}"

        async def seed() -> None:
            settings = Settings.load(environ={}, data_dir=tmp_path / "seed", database_url=url)
            async with offline(settings) as directory:
                default = operator("default")
                for name, role, teams in (("ada", "admin", ()), ("alice", "agent", ("support",))):
                    await directory.add_user(
                        default,
                        name,
                        AGENT_PASSWORD,
                        role,
                        name.title(),
                        teams,
                        mfa_exempt=True,
                        change_required=False,
                    )

        run_in_thread(seed)
        server = server_factory(database_url=url, audit_key_file=tmp_path / "seed" / "audit.key")
        try:
            assert_refused_as_bad_input(server, "ada")
        finally:
            server.stop()  # before its schema goes
