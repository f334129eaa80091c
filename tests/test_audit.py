"""The tamper-evident audit trail: chain, anchors, `tandem audit verify` catching each attack."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tandem.audit import AuditLog, verify
from tandem.storage.sqlite import SQLiteStorage
from tests.conftest import AGENT_PASSWORD, ServerFactory

KEY = bytes(range(32))


async def filled(tmp_path: Path, n: int = 12, anchor_every: int = 5) -> Path:
    storage = SQLiteStorage(tmp_path / "tandem.sqlite3")
    log = AuditLog(storage, KEY, anchor_every=anchor_every)
    for i in range(n):
        await log.record(1000.0 + i, "sign_in", actor=f"user{i}", ip="127.0.0.1")
    await storage.close()
    (tmp_path / "audit.key").write_text(KEY.hex())
    return tmp_path


def tamper(data_dir: Path, *statements: str) -> None:
    """What an attacker with the database file does: drop the guards, then rewrite rows."""
    with sqlite3.connect(data_dir / "tandem.sqlite3") as db:
        db.execute("DROP TRIGGER IF EXISTS audit_no_update")
        db.execute("DROP TRIGGER IF EXISTS audit_no_delete")
        for statement in statements:
            db.execute(statement)


def run_verify(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tandem", "audit", "verify", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_an_intact_trail_verifies(tmp_path: Path) -> None:
    data = await filled(tmp_path)
    result = run_verify(data)
    assert result.returncode == 0, result.stderr
    assert "intact: 12 records, 2 anchors" in result.stdout


async def test_the_database_refuses_updates_and_deletes(tmp_path: Path) -> None:
    data = await filled(tmp_path)
    with sqlite3.connect(data / "tandem.sqlite3") as db, pytest.raises(sqlite3.IntegrityError):
        db.execute("DELETE FROM audit WHERE seq = 3")


@pytest.mark.parametrize(
    ("statements", "first_bad", "why"),
    [
        (["UPDATE audit SET actor = 'mallory' WHERE seq = 7"], 7, "altered"),
        (['UPDATE audit SET details = \'{"ip": "10.0.0.1"}\' WHERE seq = 4'], 4, "altered"),
        (["DELETE FROM audit WHERE seq = 6"], 6, "missing or out of order"),
        (
            [
                "UPDATE audit SET seq = 100 WHERE seq = 3",
                "UPDATE audit SET seq = 3 WHERE seq = 4",
                "UPDATE audit SET seq = 4 WHERE seq = 100",
            ],
            3,
            "does not follow",
        ),
        (["DELETE FROM audit WHERE seq >= 9"], 10, "rewritten or removed"),
        (["UPDATE audit_anchors SET mac = 'ff' || substr(mac, 3) WHERE seq = 5"], 5, "forged"),
    ],
    ids=[
        "edit-actor",
        "edit-details",
        "delete",
        "reorder",
        "truncate-anchored-tail",
        "forge-anchor",
    ],
)
async def test_verify_names_the_first_broken_record(
    tmp_path: Path, statements: list[str], first_bad: int, why: str
) -> None:
    data = await filled(tmp_path)
    tamper(data, *statements)
    result = run_verify(data)
    assert result.returncode == 1
    assert f"BROKEN at record {first_bad}" in result.stderr and why in result.stderr


async def test_a_consistently_rewritten_chain_is_caught_by_the_anchors(tmp_path: Path) -> None:
    data = await filled(tmp_path)
    # The attacker recomputes every hash after editing record 2, but has no anchoring key.
    storage = SQLiteStorage(data / "tandem.sqlite3")
    records = await storage.audit_records()
    await storage.close()
    tamper(data, "DELETE FROM audit")
    rewritten = SQLiteStorage(data / "tandem.sqlite3")
    for r in records:
        actor = "mallory" if r.seq == 2 else r.actor
        await rewritten.append_audit(r.at, r.action, actor, r.org, r.subject, r.details)
    await rewritten.close()
    result = run_verify(data)
    assert result.returncode == 1 and "BROKEN at record 5" in result.stderr


def test_verify_without_the_key_is_a_clear_error(tmp_path: Path) -> None:
    result = run_verify(tmp_path)
    assert result.returncode == 2 and "no audit key" in result.stderr


async def test_the_server_records_security_events_without_secrets(
    server_factory: ServerFactory,
) -> None:
    from tests.server.helpers import (
        closed_with,
        login_cookie,
        open_agent,
        recv_json,
        send,
        sharing_session,
    )

    server = server_factory()
    httpx.post(f"{server.base}/api/login", json={"username": "alice", "password": "wrong-one-123"})
    customer, agent, created = await sharing_session(server)
    await send(customer, type="stop")
    await closed_with(agent)
    intruder = await open_agent(server, login_cookie(server))
    await send(intruder, type="join", code="00000" if created["code"] != "00000" else "00001")
    await recv_json(intruder)
    server.stop()

    storage = SQLiteStorage(server.settings.database_path)
    records = await storage.audit_records()
    anchors = await storage.anchors()
    await storage.close()
    actions = [r.action for r in records]
    for expected in (
        "server_started",
        "sign_in_failed",
        "sign_in",
        "session_created",
        "agent_joined",
        "consent_given",
        "session_ended",
        "join_code_rejected",
        "server_stopped",
    ):
        assert expected in actions, f"{expected} not audited"
    ended = next(r for r in records if r.action == "session_ended")
    assert ended.subject == created["session_id"] and ended.details == {"reason": "stopped"}
    assert ended.actor == "alice"
    key = bytes.fromhex((server.settings.data_dir / "audit.key").read_text())
    assert verify(records, anchors, key).ok and anchors, "the trail is anchored at shutdown"
    text = json.dumps([r.to_json() for r in records])
    for secret in (AGENT_PASSWORD, "wrong-one-123", created["code"], created["resume_token"]):
        assert secret not in text


async def test_export_writes_json_lines_since_a_time(tmp_path: Path) -> None:
    data = await filled(tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tandem",
            "audit",
            "export",
            "--since",
            "1970-01-01T00:16:45+00:00",
            "--data-dir",
            str(data),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["seq"] for line in lines] == [6, 7, 8, 9, 10, 11, 12]
    assert lines[0]["time"] == "1970-01-01T00:16:45+00:00" and lines[0]["action"] == "sign_in"


def test_export_refuses_a_bad_time(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tandem",
            "audit",
            "export",
            "--since",
            "yesterday",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "not an ISO 8601 time" in result.stderr
