"""The API's lists are bounded by settings, not code constants (docs/configuration.md, Limits):
an audit page (``max_audit_page``), an audit search's page (``max_audit_search``), the
recordings' list (``max_recording_list``) and an account's own activity
(``max_account_activity``) are as long as the server's settings say, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tandem.config import Settings
from tandem.directory import Directory, offline
from tandem.storage.base import RecordingRecord
from tests.conftest import RunningServer, ServerFactory, two_organisations
from tests.grants import of_org
from tests.server.test_organisations import api
from tests.server.test_scale_out import run_in_thread
from tests.storage.conftest import PG_DSN, fresh_schema

Seed = Callable[[Directory], Awaitable[None]]
Start = Callable[..., RunningServer]


@pytest.fixture(params=["sqlite", "postgres"])
async def start(
    request: pytest.FixtureRequest, server_factory: ServerFactory, tmp_path: Path
) -> AsyncIterator[Start]:
    """Starts a server seeded by ``seed`` with settings ``overrides``, on each backend."""
    if request.param == "sqlite":
        yield lambda seed, **overrides: server_factory(seed=seed, **overrides)
        return
    async with fresh_schema() as schema:
        url = f"{PG_DSN}?search_path={schema}"
        servers: list[RunningServer] = []

        def on_postgres(seed: Seed, **overrides: object) -> RunningServer:
            async def seeded() -> None:
                settings = Settings.load(environ={}, data_dir=tmp_path / "seed", database_url=url)
                async with offline(settings) as directory:
                    await seed(directory)

            run_in_thread(seeded)
            server = server_factory(
                database_url=url, audit_key_file=tmp_path / "seed" / "audit.key", **overrides
            )
            servers.append(server)
            return server

        try:
            yield on_postgres
        finally:
            for server in servers:
                server.stop()  # before its schema goes


async def test_audit_pages_are_as_long_as_the_settings_say(start: Start) -> None:
    server = start(two_organisations, max_audit_page=10, max_audit_search=50)
    with api(server, "aud") as aud:
        for _ in range(60):  # each read is itself audited (audit_read): 60 records at least
            assert aud.get("/api/audit", params={"limit": 1}).status_code == 200
        page = aud.get("/api/audit", params={"after": 0, "limit": 1000})
        assert page.status_code == 200, page.text
        assert len(page.json()) == 10  # cut to max_audit_page, not the former 1000
        after = page.json()[-1]["seq"]
        following = aud.get("/api/audit", params={"after": after, "limit": 1000}).json()
        assert len(following) == 10 and following[0]["seq"] == after + 1
        search = aud.get("/api/audit/search", params={"limit": 100})
        assert search.status_code == 200, search.text
        assert len(search.json()) == 50  # cut to max_audit_search, not the former 100


async def recordings_of_default(directory: Directory) -> None:
    """The two organisations, and 205 recordings of the default one made just now."""
    await two_organisations(directory)
    now = time.time()
    for n in range(205):
        await directory.storage.add_recording(
            of_org("default"),
            RecordingRecord(f"r{n:03}", "default", f"s{n:03}", "demo", "alice", "k1", now + n),
        )


async def test_the_recordings_list_is_as_long_as_the_setting_says(start: Start) -> None:
    server = start(recordings_of_default, max_recording_list=200)
    with api(server, "aud") as aud:
        listed = aud.get("/api/recordings", params={"limit": 100000})
        assert listed.status_code == 200, listed.text  # cut to the setting, not refused
        assert len(listed.json()) == 200
        assert listed.json()[0]["recording_id"] == "r204"  # newest first
        assert len(aud.get("/api/recordings", params={"limit": 7}).json()) == 7
        too_many = aud.get("/api/recordings", params={"limit": 100001})
        assert too_many.status_code == 400 and "from 1 to 100000" in too_many.json()["detail"]


async def test_an_accounts_own_activity_shows_as_many_of_each_action_as_the_setting_says(
    start: Start,
) -> None:
    server = start(two_organisations, max_account_activity=10)
    for _ in range(12):
        with api(server, "sam"):
            pass  # each client signs in once
    with api(server, "sam") as sam:
        shown = sam.get("/api/me/activity")
    assert shown.status_code == 200, shown.text
    assert [event["action"] for event in shown.json()].count("sign_in") == 10
