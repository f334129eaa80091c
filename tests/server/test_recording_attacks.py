"""Attacks on recordings at the server (docs/recordings.md, "Who gets a recording"): who can
fetch a recording's metadata, content or export (nobody signed out, nobody of another
organisation, and those cannot even tell it exists; no role but the auditor's for its content);
every path that gives out its content audited before a byte goes, and nothing goes when that
record cannot be written; HEAD, ranges and conditional requests never give out part of one
unaudited; erased and expired recordings gone from the database, their fetches 404 and audited;
a legal hold keeping one from erasure and purge; consent not replayable.

The recordings here are seeded into storage with opaque frames: the server never looks inside
them (tests/server/test_recordings.py records them over sockets)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tandem import crypto
from tandem.config import Settings
from tandem.directory import Directory, offline, operator
from tandem.storage.base import Grant, RecordingRecord
from tests.conftest import (
    DataTemplates,
    FakeClock,
    RunningServer,
    ServerFactory,
    add_user,
    bound_socket,
    two_organisations,
)
from tests.server.faults import FailingCall
from tests.server.helpers import closed_with, recv_json, send, sharing_session
from tests.server.test_organisations import api
from tests.server.test_recordings import KEY, recording, recordings_of

REC = "Rk7mV2xq9TzA0bLc"  # the default organisation's, ended
ACME_REC = "Hc2gT6vJm4NzQ8kR"  # Acme's
OTHER = "Zz9yX8wV7uT6sR5q"  # nobody's
SESSION = "sess-default-recorded"
SECRET = b"\x01secret-default-frame"
FRAMES = [SECRET, b"\x01second-frame" * 50]
ACME_FRAMES = [b"\x01acme-frame", b"\x01acme-second-frame" * 50]
DAY = 86400.0
EXTRA_AUDITORS = ("aud2", "aud3", "aud4")
"""Auditors of the default organisation that the tests of the shared server change (one each)."""


async def seed(directory: Directory) -> None:
    await two_organisations(directory)
    await directory.set_recording_key(operator("default"), KEY)
    await directory.set_recording_key(operator("acme"), KEY)
    storage = directory.storage
    now = time.time()  # the servers' clocks start at the wall clock's time (FakeClock)
    await storage.record_session_start(Grant.server("default", "test"), SESSION, now - 60, "demo")
    await storage.record_session_end(SESSION, now - 10, "agent_left", "alice")
    key_id = crypto.recording_key_id(KEY)
    for recording_id, org, site in ((REC, "default", "demo"), (ACME_REC, "acme", "acme-shop")):
        session = SESSION if recording_id == REC else f"s-{recording_id}"
        record = RecordingRecord(recording_id, org, session, site, "alice", key_id, now - 50)
        await storage.add_recording(Grant.server(org, "test"), record)
        frames = FRAMES if recording_id == REC else ACME_FRAMES
        await storage.append_recording_frames(recording_id, 0, frames)
        await storage.end_recording(recording_id, now - 20, "stopped_by_customer")


def seeded_with_auditors(data_dir: Path) -> None:
    for username in EXTRA_AUDITORS:
        add_user(data_dir, username, role="auditor")


@pytest.fixture(scope="module")
def vault(
    tmp_path_factory: pytest.TempPathFactory, data_templates: DataTemplates
) -> Iterator[RunningServer]:
    """One server for the module's tests that erase nothing: each changes only what it alone
    looks at (its own account, its own audit records, counted before and after)."""
    data_dir = tmp_path_factory.mktemp("vault") / "data"
    data_templates.copy_to(data_dir, seed)
    seeded_with_auditors(data_dir)
    sock = bound_socket()
    settings = Settings.load(environ={}, data_dir=data_dir, port=sock.getsockname()[1])
    running = RunningServer(settings, FakeClock(), sock=sock)
    running.start()
    yield running
    running.stop()


def trail(server: RunningServer, username: str = "aud") -> list[dict[str, Any]]:
    with api(server, username) as client:
        response = client.get("/api/audit", params={"limit": 1000})
        assert response.status_code == 200, response.text
        records: list[dict[str, Any]] = response.json()
        return records


def count(server: RunningServer, action: str, subject: str, username: str = "aud") -> int:
    return sum(
        1 for r in trail(server, username) if r["action"] == action and r["subject"] == subject
    )


PATHS = ("", "/content", "/export")


def fetches(client: httpx.Client, recording_id: str) -> list[httpx.Response]:
    """Every way of asking for a recording: its metadata, its content and export, and its
    erasure. HEAD, whoever asks, is not a way (405, and nothing else said)."""
    base = f"/api/recordings/{recording_id}"
    for suffix in PATHS:
        head = client.head(base + suffix)
        assert (head.status_code, head.content) == (405, b""), head.request.url
        assert "HEAD" not in head.headers["allow"] and "GET" in head.headers["allow"]
    answers = [client.get(base + suffix) for suffix in PATHS]
    answers.append(client.delete(base))
    return answers


def shown(response: httpx.Response, recording_id: str) -> tuple[int, bytes, str | None]:
    """What an answer tells: its status, its body with the id asked for blanked, its type."""
    body = response.content.replace(recording_id.encode(), b"<id>")
    return response.status_code, body, response.headers.get("content-type")


def test_signed_out_nothing_of_a_recording_is_given(vault: RunningServer) -> None:
    forged = {"tandem_agent": "v1.forged-token-of-nobody"}
    for cookies in ({}, forged):
        with httpx.Client(base_url=vault.base, cookies=cookies) as client:
            assert client.get("/api/recordings").status_code == 401
            for answer in fetches(client, REC):
                assert answer.status_code == 401, answer.request.url
                assert SECRET not in answer.content
    assert count(vault, "recording_played", REC) == 0


def test_another_organisation_cannot_tell_that_a_recording_exists(vault: RunningServer) -> None:
    # Acme's every role, asking for the default organisation's recording and for an id that
    # was never made: the same answers, never a byte of content.
    for username in ("mo", "max", "mary", "mallory"):
        with api(vault, username) as client:
            nobody = [shown(a, OTHER) for a in fetches(client, OTHER)]
            answers = fetches(client, REC)
            assert [shown(a, REC) for a in answers] == nobody, username
            for answer in answers:
                assert answer.status_code in (403, 404, 405), (username, answer.request.url)
                assert SECRET not in answer.content
            listed = client.get("/api/recordings", params={"limit": 500})
            if listed.status_code == 200:  # the auditor and the admin: only Acme's
                assert [r["recording_id"] for r in listed.json()] == [ACME_REC]
                assert b"demo" not in listed.content and b"default" not in listed.content
    with api(vault, "aud") as aud:
        listed = aud.get("/api/recordings", params={"limit": 500}).json()
        assert [r["recording_id"] for r in listed] == [REC]
        assert aud.get(f"/api/recordings/{ACME_REC}/content").status_code == 404


def test_roles_of_its_own_organisation_but_the_auditors_get_none_of_its_content(
    vault: RunningServer,
) -> None:
    # alice made it; bob serves another team; sam supervises the team whose site it is.
    for username in ("alice", "bob", "sam"):
        with api(vault, username) as client:
            assert client.get("/api/recordings").status_code == 403
            for answer in fetches(client, REC):
                assert answer.status_code == 403, (username, answer.request.url)
                assert SECRET not in answer.content
    with api(vault, "ada") as ada:  # the admin: metadata, never content
        assert ada.get(f"/api/recordings/{REC}").status_code == 200
        for suffix in ("/content", "/export"):
            assert ada.get(f"/api/recordings/{REC}{suffix}").status_code == 403


def test_head_ranges_and_conditional_requests_give_out_nothing_unaudited(
    vault: RunningServer,
) -> None:
    path = f"/api/recordings/{REC}/content"
    with api(vault, "aud") as aud:
        before = count(vault, "recording_played", REC)
        head = aud.head(path)
        # HEAD gives out nothing of a recording and is not a playback: refused, not audited.
        assert head.status_code == 405 and head.content == b""
        assert count(vault, "recording_played", REC) == before

        whole = aud.get(path)
        assert whole.status_code == 200
        assert whole.headers["cache-control"] == "no-store"
        for validator in ("etag", "last-modified", "accept-ranges"):
            assert validator not in whole.headers, validator
        ranged = aud.get(path, headers={"range": "bytes=0-15"})
        conditional = aud.get(
            path,
            headers={
                "if-none-match": '"*"',
                "if-modified-since": "Mon, 01 Jan 2029 00:00:00 GMT",
                "if-range": '"x"',
            },
        )
        for answer in (ranged, conditional):  # the whole file, each time audited
            assert answer.status_code == 200
            assert answer.content == whole.content
        assert count(vault, "recording_played", REC) == before + 3

        exported = aud.get(f"/api/recordings/{REC}/export", headers={"range": "bytes=10-"})
        assert exported.status_code == 200 and exported.content == whole.content
        assert exported.headers["cache-control"] == "no-store"
        assert aud.head(f"/api/recordings/{REC}/export").status_code == 405
    for path in ("/api/recordings", f"/api/recordings/{REC}"):  # metadata: not kept either
        with api(vault, "aud") as aud:
            assert "no-store" in aud.get(path).headers["cache-control"], path


def test_another_pages_requests_with_the_auditors_cookie_play_nothing(
    vault: RunningServer,
) -> None:
    # A page (a replayed customer's page in the mirror, a sibling site) making the auditor's
    # browser load a recording as an image, or fetch it from another origin: refused before
    # any handler, so neither built nor audited as played.
    before = (count(vault, "recording_played", REC), count(vault, "recording_exported", REC))
    with api(vault, "aud") as aud:
        for headers in (
            {"sec-fetch-dest": "image", "sec-fetch-site": "same-origin"},
            {"sec-fetch-dest": "empty", "sec-fetch-site": "same-site", "origin": "http://x.test"},
            {"sec-fetch-dest": "empty", "sec-fetch-site": "cross-site", "origin": "http://x.test"},
        ):
            for suffix in ("/content", "/export"):
                answer = aud.get(f"/api/recordings/{REC}{suffix}", headers=headers)
                assert answer.status_code == 403, (headers, answer.text)
                assert SECRET not in answer.content
    after = (count(vault, "recording_played", REC), count(vault, "recording_exported", REC))
    assert after == before


def test_a_playback_or_export_whose_audit_record_fails_gives_out_nothing(
    vault: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The record is written in the transaction that reads the recording (read_recording): a
    # database that fails there, or refuses the record itself (a trigger, as a full disk
    # would), gives out nothing and records nothing.
    storage = vault.server.config.app.state.services.storage
    failing = FailingCall(storage, monkeypatch, "_recording_file")
    with api(vault, "aud") as aud:
        for suffix, action in (("/content", "recording_played"), ("/export", "recording_exported")):
            failing.arm(0)
            assert aud.get(f"/api/recordings/{REC}{suffix}").status_code == 200
            assert "read_recording" in failing.calls, failing.calls
            failing.arm(failing.calls.index("read_recording") + 1)
            before = count(vault, action, REC)
            refused = aud.get(f"/api/recordings/{REC}{suffix}")
            assert refused.status_code == 503, refused.text
            assert SECRET not in refused.content
            assert count(vault, action, REC) == before
            failing.arm(0)
            with sqlite3.connect(vault.settings.database_path) as db:
                db.execute(
                    "CREATE TRIGGER test_refused BEFORE INSERT ON audit "
                    f"WHEN NEW.action = '{action}' BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                )
            try:
                refused = aud.get(f"/api/recordings/{REC}{suffix}")
            finally:
                with sqlite3.connect(vault.settings.database_path) as db:
                    db.execute("DROP TRIGGER test_refused")
            assert refused.status_code in (409, 503), refused.text  # SQLite: its refusal
            assert SECRET not in refused.content
            assert count(vault, action, REC) == before


def test_a_subject_export_whose_audit_record_fails_gives_out_nothing(
    vault: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = vault.server.config.app.state.services.storage
    failing = FailingCall(storage, monkeypatch, "_export_subject")
    with api(vault, "ada") as ada:
        failing.arm(0)
        exported = ada.post("/api/subjects/export", json={"subject": SESSION})
        assert exported.status_code == 200, exported.text
        # Its record is written in the transaction that reads what it gives out.
        assert "read_for_export" in failing.calls, failing.calls
        failing.arm(failing.calls.index("read_for_export") + 1)
        refused = ada.post("/api/subjects/export", json={"subject": SESSION})
        assert refused.status_code == 503, refused.text
        assert SECRET not in refused.content and not refused.content.startswith(b"PK")
    # The export's record names the recordings it gave out: a recording's trail shows it.
    [record] = [r for r in trail(vault, "aud") if r["action"] == "subject_exported"]
    assert record["details"]["recording_ids"] == [REC]


async def demote(server: RunningServer, username: str) -> None:
    settings = Settings.load(environ={}, data_dir=server.settings.data_dir)
    async with offline(settings) as directory:
        await directory.update_user(operator("default"), username, role="agent")


async def disable(server: RunningServer, username: str) -> None:
    settings = Settings.load(environ={}, data_dir=server.settings.data_dir)
    async with offline(settings) as directory:
        await directory.set_disabled(operator("default"), username, True)


def test_an_account_whose_role_is_taken_or_sign_in_ended_gets_no_more(
    vault: RunningServer,
) -> None:
    path = f"/api/recordings/{REC}/content"
    demoted, signed_out, disabled = (api(vault, name) for name in EXTRA_AUDITORS)
    with demoted, signed_out, disabled:
        for client in (demoted, signed_out, disabled):
            got = client.get(path)
            assert got.status_code == 200, got.text
        asyncio.run(demote(vault, "aud2"))  # auditors are the operator's (tandem user ...)
        assert signed_out.post("/api/logout-everywhere").status_code in (200, 204)
        asyncio.run(disable(vault, "aud4"))
        assert demoted.get(path).status_code == 403
        assert signed_out.get(path).status_code == 401
        assert disabled.get(path).status_code == 401
        for client in (demoted, signed_out, disabled):
            assert SECRET not in client.get(f"/api/recordings/{REC}/export").content


def test_asking_for_a_recording_that_is_not_there_is_audited_in_the_askers_organisation(
    vault: RunningServer,
) -> None:
    # Guessing ids (another organisation's, an erased one's) left no trace: a 404 was answered
    # and forgotten. Now it is a recording_refused record in the asker's own trail.
    def refusals(username: str) -> Counter[tuple[str, str]]:
        return Counter(
            (r["details"]["needs"], r["details"]["reason"])
            for r in trail(vault, username)
            if r["action"] == "recording_refused" and r["subject"] == REC and r["actor"] == "mo"
        )

    before = refusals("mo")
    with api(vault, "mo") as mo:
        for suffix in PATHS:
            assert mo.get(f"/api/recordings/{REC}{suffix}").status_code == 404
    assert refusals("mo") - before == Counter(
        (needs, "recording not found")
        for needs in ("recording.list", "recording.play", "recording.export")
    )
    assert not refusals("aud")  # nothing in the other organisation's trail


# Tests that erase, purge or hold: a server each.


@pytest.fixture
def seeded(server_factory: ServerFactory) -> RunningServer:
    return server_factory(seed=seed)


def stored_frames(server: RunningServer, recording_id: str) -> int:
    with sqlite3.connect(server.settings.data_dir / "tandem.sqlite3") as db:
        (rows,) = db.execute(
            "SELECT count(*) FROM recording_frames WHERE recording_id = ?", (recording_id,)
        ).fetchone()
    return int(rows)


def database_bytes(server: RunningServer) -> bytes:
    return b"".join(
        path.read_bytes()
        for path in server.settings.data_dir.iterdir()
        if path.name.startswith("tandem.sqlite3")
    )


def gone_and_audited(server: RunningServer, recording_id: str, gone_as: str) -> None:
    assert stored_frames(server, recording_id) == 0
    assert SECRET not in database_bytes(server)  # not left in free pages or the WAL either
    with api(server, "aud") as aud:
        for suffix in PATHS:
            answer = aud.get(f"/api/recordings/{recording_id}{suffix}")
            assert answer.status_code == 404, answer.text
            assert "not found" in answer.json()["detail"]
    records = trail(server)
    assert any(r["action"] == gone_as and r["subject"] == recording_id for r in records)
    refused = [
        r["details"]["needs"]
        for r in records
        if r["action"] == "recording_refused" and r["subject"] == recording_id
    ]
    assert sorted(refused) == ["recording.export", "recording.list", "recording.play"]


def test_an_erased_recording_is_gone_from_the_database_and_its_fetches_audited(
    seeded: RunningServer,
) -> None:
    assert stored_frames(seeded, REC) == len(FRAMES)
    assert SECRET in database_bytes(seeded)
    with api(seeded, "ada") as ada:
        assert ada.delete(f"/api/recordings/{REC}").status_code == 204
    gone_and_audited(seeded, REC, "recording_erased")
    assert stored_frames(seeded, ACME_REC) == len(ACME_FRAMES)


def wait_until(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_a_recording_past_retention_is_gone_and_a_held_one_stays(seeded: RunningServer) -> None:
    with api(seeded, "ada") as ada:
        assert ada.patch("/api/org", json={"retention_days": 1}).status_code == 200
        held = ada.post(
            "/api/holds", json={"kind": "recording", "target": ACME_REC, "reason": "case 1"}
        )
        assert held.status_code == 404, held.text  # not of this organisation: nothing held
    with api(seeded, "max") as max_:
        assert max_.patch("/api/org", json={"retention_days": 1}).status_code == 200
        held = max_.post(
            "/api/holds", json={"kind": "recording", "target": ACME_REC, "reason": "case 1"}
        )
        assert held.status_code == 201, held.text
        assert max_.delete(f"/api/recordings/{ACME_REC}").status_code == 409
    seeded.clock.advance(3 * DAY)
    wait_until(lambda: stored_frames(seeded, REC) == 0)  # the list leaves it out at once
    # The purge empties the write-ahead log after its DELETE has committed: a read between the
    # two finds the rows gone and their old pages still in the -wal file, for a moment.
    wait_until(lambda: SECRET not in database_bytes(seeded))
    gone_and_audited(seeded, REC, "recording_expired")
    assert stored_frames(seeded, ACME_REC) == len(ACME_FRAMES)  # held
    assert [r["recording_id"] for r in recordings_of(seeded, "mo")] == [ACME_REC]


async def test_consent_once_stopped_cannot_be_replayed(seeded: RunningServer) -> None:
    customer, alice, _ = await recording(seeded)
    await customer.send(b"\x01allowed")
    assert await alice.recv() == b"\x01allowed"
    await send(customer, type="record_stop")
    assert (await recv_json(alice))["on"] is False
    assert (await recv_json(customer))["on"] is False
    # The customer's yes, sent again without a new question, does not start recording again:
    # it is out of turn, and the customer's socket is closed for it.
    await send(customer, type="record_consent", granted=True)
    assert (await closed_with(customer))[0] == 4400
    listed = [r for r in recordings_of(seeded) if r["recording_id"] != REC]
    assert [(r["frames"], r["end_reason"]) for r in listed] == [(1, "stopped_by_customer")]


async def test_frames_of_a_session_that_did_not_consent_are_never_kept(
    seeded: RunningServer,
) -> None:
    customer, alice, _ = await sharing_session(seeded)
    await send(alice, type="record")
    request = await recv_json(customer)
    # Its id is 96 random bits (base64url), none of the seeded ones: not guessed from others.
    assert re.fullmatch(r"[A-Za-z0-9_-]{16}", request["recording_id"])
    assert request["recording_id"] not in (REC, ACME_REC)
    await send(customer, type="record_consent", granted=False)
    assert (await recv_json(alice))["reason"] == "declined"
    await customer.send(b"\x01declined")
    assert await alice.recv() == b"\x01declined"
    await send(customer, type="record_consent", granted=True)  # changed its mind, unasked
    assert (await closed_with(customer))[0] == 4400
    assert request["recording_id"] not in {r["recording_id"] for r in recordings_of(seeded)}
    with api(seeded, "aud") as aud:
        assert aud.get(f"/api/recordings/{request['recording_id']}/content").status_code == 404
