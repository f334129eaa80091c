"""The tamper-evident audit trail: chain, anchors, `tandem audit verify` catching each attack."""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tandem.audit import (
    GENESIS,
    RECORD_MACS,
    AuditLog,
    AuditRecord,
    Checkpoint,
    make_checkpoint,
    record_hash,
    seal_anchor,
    verify,
)
from tandem.storage.sql import SQLStorage
from tests.conftest import AGENT_PASSWORD, ServerFactory, migrated_sqlite, tandem_in_process

KEY = bytes(range(32))
TRIGGERS = (
    "audit_no_update",
    "audit_no_delete",
    "audit_no_replace",
    "audit_anchors_no_update",
    "audit_anchors_no_delete",
    "audit_anchors_no_replace",
)


async def filled(
    tmp_path: Path, n: int = 12, anchor_every: int = 5, stopped_at: tuple[int, ...] = ()
) -> Path:
    """A data directory whose trail has ``n`` records (``server_stopped`` at ``stopped_at``)."""
    storage = await SQLStorage.open_sqlite(migrated_sqlite(tmp_path / "tandem.sqlite3"))
    log = AuditLog(storage, KEY, anchor_every=anchor_every)
    for i in range(1, n + 1):
        if i in stopped_at:
            await log.record(999.0 + i, "server_stopped", actor="server", org="default")
        else:
            await log.record(999.0 + i, "sign_in", actor=f"user{i}", ip="127.0.0.1", org="default")
    await storage.close()
    (tmp_path / "audit.key").write_text(KEY.hex())
    return tmp_path


async def trail(data_dir: Path) -> tuple[list[AuditRecord], list[int]]:
    """The records and the anchored record numbers."""
    storage = await SQLStorage.open_sqlite(data_dir / "tandem.sqlite3")
    try:
        return await storage.audit_records(), [a.seq for a in await storage.anchors()]
    finally:
        await storage.close()


def tamper(data_dir: Path, *statements: str) -> None:
    """What an attacker with the database file does: drop the guards, then rewrite rows."""
    with sqlite3.connect(data_dir / "tandem.sqlite3") as db:
        for trigger in TRIGGERS:
            db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        for statement in statements:
            db.execute(statement)


INSERT_AUDIT_ROW = (
    "INSERT INTO audit (seq, at, action, actor, org, subject, details, prev_hash, hash, mac,"
    " org_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def audit_row(
    r: AuditRecord, seq: int, prev: str, digest: str, org_seq: int | None = None
) -> tuple[Any, ...]:
    """``r`` as a row of the SQLite trail, numbered ``seq`` after ``prev``, hashed ``digest``,
    at position ``org_seq`` of its organisation (its own if None; its MAC kept as it was: an
    attacker cannot make one)."""
    return (
        seq,
        r.at,
        r.action,
        r.actor,
        r.org,
        r.subject,
        json.dumps(r.details),
        prev,
        digest,
        r.mac,
        r.org_seq if org_seq is None else org_seq,
    )


def rewrite_without_the_key(data_dir: Path, records: list[AuditRecord]) -> None:
    """The keyless rewrite: replace the trail with ``records``, numbered and hashed afresh (SHA-256
    needs no key), the guards dropped first, and each organisation's positions numbered afresh
    too. Each record keeps the MAC it had (the attacker cannot make one): it still fits where
    number, previous hash and hash came out unchanged."""
    tamper(data_dir, "DELETE FROM audit")
    positions: dict[str, int] = {}
    with sqlite3.connect(data_dir / "tandem.sqlite3") as db:
        prev = GENESIS
        for seq, r in enumerate(records, start=1):
            digest = record_hash(seq, r.at, r.action, r.actor, r.org, r.subject, r.details, prev)
            positions[r.org] = positions.get(r.org, 0) + 1
            db.execute(INSERT_AUDIT_ROW, audit_row(r, seq, prev, digest, positions[r.org]))
            prev = digest


def run_verify(data_dir: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return tandem_in_process("audit", "verify", "--data-dir", str(data_dir), *options)


async def test_an_intact_trail_verifies(tmp_path: Path) -> None:
    data = await filled(tmp_path)
    result = run_verify(data)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "audit trail intact: 12 records, 3 anchors, 0 checkpoints checked;"
        " every record from 1 on has its MAC\n"
        "stored rows agree: the 0 sessions and 0 recordings the trail says exist are stored\n"
    )


async def test_records_added_after_the_last_anchor_are_named_by_verify(tmp_path: Path) -> None:
    data = await filled(tmp_path)  # anchored at 1, 5, 10
    records, _ = await trail(data)
    # Someone who can write the database appends two records, chained correctly: INSERT is
    # all the append-only guards allow, and all it takes.
    with sqlite3.connect(data / "tandem.sqlite3") as db:
        prev = records[-1].hash
        for seq in (13, 14):
            digest = record_hash(seq, 1500.0, "sign_in", "mallory", "default", "", {}, prev)
            db.execute(
                "INSERT INTO audit (seq, at, action, actor, org, subject, details, prev_hash,"
                " hash, org_seq) VALUES (?, 1500.0, 'sign_in', 'mallory', 'default', '', '{}',"
                " ?, ?, ?)",
                (seq, prev, digest, seq),  # every record so far is the default organisation's
            )
            prev = digest
    db.close()
    await append(data, 7)  # the server goes on: anchors at 15 and 20 vouch for the chain
    assert (await trail(data))[1] == [1, 5, 10, 15, 20]
    result = run_verify(data)
    assert result.returncode == 1
    assert result.stderr == (
        "audit trail BROKEN at record 13: record 13 has no valid MAC: it was not written by a"
        " holder of the audit key\n"
    )


async def test_anchors_are_at_the_first_record_every_multiple_and_every_shutdown(
    tmp_path: Path,
) -> None:
    data = await filled(tmp_path, n=12, anchor_every=5, stopped_at=(7, 11))
    _, anchored = await trail(data)
    assert anchored == [1, 5, 7, 10, 11]


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM audit WHERE seq = 3",
        "UPDATE audit SET actor = 'mallory' WHERE seq = 3",
        "INSERT OR REPLACE INTO audit SELECT seq, at, action, 'mallory', org, subject, details,"
        " prev_hash, hash, mac, org_seq FROM audit WHERE seq = 3",
    ],
    ids=["delete", "update", "replace"],
)
async def test_the_database_refuses_updates_and_deletes(tmp_path: Path, statement: str) -> None:
    data = await filled(tmp_path)
    with (
        sqlite3.connect(data / "tandem.sqlite3") as db,
        pytest.raises(sqlite3.IntegrityError, match="append-only"),
    ):
        db.execute(statement)
    records, _ = await trail(data)
    assert records[2].actor == "user3"


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM audit_anchors",
        "DELETE FROM audit_anchors WHERE seq = 5",
        "UPDATE audit_anchors SET mac = 'ff' WHERE seq = 5",
        "INSERT OR REPLACE INTO audit_anchors (seq, hash, mac) VALUES (5, 'h', 'm')",
    ],
)
async def test_the_database_refuses_to_change_or_remove_anchors(
    tmp_path: Path, statement: str
) -> None:
    data = await filled(tmp_path)
    with (
        sqlite3.connect(data / "tandem.sqlite3") as db,
        pytest.raises(sqlite3.IntegrityError, match="append-only"),
    ):
        db.execute(statement)
    assert (await trail(data))[1] == [1, 5, 10]


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
        (["DELETE FROM audit_anchors"], 1, "no anchor at record 1: anchors were removed"),
        (["DELETE FROM audit_anchors WHERE seq = 5"], 5, "no anchor at record 5: anchors were"),
        (["DELETE FROM audit_anchors WHERE seq = 10"], 10, "no anchor at record 10: anchors were"),
        (["DELETE FROM audit_anchors WHERE seq > 1"], 5, "no anchor at record 5: anchors were"),
        (
            # Swap two anchors (every column but the record they stand at).
            [
                "UPDATE audit_anchors SET seq = -seq WHERE seq IN (5, 10)",
                "UPDATE audit_anchors SET seq = 10 WHERE seq = -5",
                "UPDATE audit_anchors SET seq = 5 WHERE seq = -10",
            ],
            5,
            "forged",
        ),
        (
            # A chained anchor passed off as one of the old format (which covered less).
            ["UPDATE audit_anchors SET version = 0 WHERE seq = 10"],
            10,
            "forged",
        ),
        (
            # Another interval, to stretch the time until the next anchor is due.
            ["UPDATE audit_anchors SET every = 100 WHERE seq = 5"],
            5,
            "forged",
        ),
        (["UPDATE audit_anchors SET every = 'x' WHERE seq = 5"], 5, "forged"),
        (["UPDATE audit_anchors SET mac = x'0707' WHERE seq = 5"], 5, "forged"),
    ],
    ids=[
        "edit-actor",
        "edit-details",
        "delete",
        "reorder",
        "truncate-anchored-tail",
        "forge-anchor",
        "delete-every-anchor",
        "drop-anchor-from-the-middle",
        "drop-latest-anchor",
        "drop-all-but-the-first-anchor",
        "swap-anchors",
        "downgrade-anchor",
        "stretch-interval",
        "text-for-a-number",
        "bytes-for-a-mac",
    ],
)
async def test_verify_names_the_first_broken_record(
    tmp_path: Path, statements: list[str], first_bad: int, why: str
) -> None:
    data = await filled(tmp_path)
    tamper(data, *statements)
    result = run_verify(data)
    assert result.returncode == 1, result.stderr
    assert f"BROKEN at record {first_bad}" in result.stderr and why in result.stderr


async def test_a_consistently_rewritten_chain_is_caught_at_the_edited_record(
    tmp_path: Path,
) -> None:
    data = await filled(tmp_path)
    # The attacker recomputes every hash after editing record 2, but has no audit key: the
    # record's MAC no longer fits it (the anchor at 5 would not either).
    records, _ = await trail(data)
    rewrite_without_the_key(
        data, [dataclasses.replace(r, actor="mallory") if r.seq == 2 else r for r in records]
    )
    result = run_verify(data)
    assert result.returncode == 1
    assert (
        "BROKEN at record 2: record 2 has no valid MAC: it was not written by a holder of the"
        " audit key" in result.stderr
    )


@pytest.mark.parametrize(
    ("anchors_deleted", "message"),
    [
        ("", "BROKEN at record 1: no anchor at record 1: anchors were removed"),
        # The renumbered records' MACs fit their old places only.
        ("WHERE seq > 1", "BROKEN at record 50: record 50 has no valid MAC"),
    ],
    ids=["every-anchor", "all-but-the-first"],
)
async def test_the_keyless_rewrite_of_issue_11_is_caught(
    tmp_path: Path, anchors_deleted: str, message: str
) -> None:
    # Delete a record, renumber and re-hash the rest, delete the anchors (the triggers dropped).
    data = await filled(tmp_path, n=129, anchor_every=100)
    records, anchored = await trail(data)
    assert anchored == [1, 100]
    rewrite_without_the_key(data, [r for r in records if r.seq != 50])
    tamper(data, f"DELETE FROM audit_anchors {anchors_deleted}")
    result = run_verify(data)
    assert result.returncode == 1, result.stdout
    assert message in result.stderr


async def test_deleting_a_record_and_the_anchors_after_it_is_caught(tmp_path: Path) -> None:
    # Combination: drop the guards, delete record 7, keep the anchors that still match (1, 5),
    # delete the others, and rewrite the chain consistently without the key.
    data = await filled(tmp_path)
    records, _ = await trail(data)
    rewrite_without_the_key(data, [r for r in records if r.seq != 7])
    tamper(data, "DELETE FROM audit_anchors WHERE seq > 5")
    result = run_verify(data)
    assert result.returncode == 1
    assert "BROKEN at record 7: record 7 has no valid MAC" in result.stderr


async def test_a_removed_shutdown_anchor_is_caught(tmp_path: Path) -> None:
    data = await filled(tmp_path, stopped_at=(7,))
    tamper(data, "DELETE FROM audit_anchors WHERE seq = 7")
    result = run_verify(data)
    assert result.returncode == 1
    assert "BROKEN at record 7: no anchor at record 7: anchors were removed" in result.stderr


async def test_an_anchor_that_follows_another_predecessor_is_caught(tmp_path: Path) -> None:
    # A genuine anchor (made with the key) that skips its predecessor, as one replayed from
    # another state of the trail would.
    data = await filled(tmp_path, n=10)
    records, _ = await trail(data)
    storage = await SQLStorage.open_sqlite(data / "tandem.sqlite3")
    anchors = await storage.anchors()
    await storage.close()
    skipping = seal_anchor(KEY, records[9], 5, anchors[0])
    assert verify(records, anchors, KEY).ok
    verdict = verify(records, [*anchors[:2], skipping], KEY)
    assert (verdict.ok, verdict.first_bad_seq) == (False, 10)
    assert verdict.problem == "the anchors before record 10 were reordered"


async def test_changing_the_interval_keeps_the_trail_verifiable_and_guarded(
    tmp_path: Path,
) -> None:
    storage = await SQLStorage.open_sqlite(migrated_sqlite(tmp_path / "tandem.sqlite3"))
    at = iter(float(t) for t in range(1000, 2000))
    for every, count, stop in ((5, 12, True), (100, 8, False), (3, 10, True)):
        log = AuditLog(storage, KEY, anchor_every=every)
        for _ in range(count - 1):
            await log.record(next(at), "sign_in", actor="ada", org="default")
        await log.record(
            next(at), "server_stopped" if stop else "sign_in", actor="server", org="default"
        )
    records, anchors = await storage.audit_records(), await storage.anchors()
    await storage.close()
    # Every 5 up to the shutdown at 12; 15 because the anchor at 12 promised it although the
    # next run anchors every 100; every 3 from 21 on (due 100 was kept too), and at 30.
    assert [(a.seq, a.every) for a in anchors] == [
        (1, 5),
        (5, 5),
        (10, 5),
        (12, 5),
        (15, 100),
        (21, 3),
        (24, 3),
        (27, 3),
        (30, 3),
    ]
    assert all((a.version, a.macs_from) == (RECORD_MACS, 1) for a in anchors)
    for legacy_every in (1, 7, 100):  # whatever the verifier's own setting
        assert verify(records, anchors, KEY, legacy_every=legacy_every).ok
    without_15 = [a for a in anchors if a.seq != 15]
    verdict = verify(records, without_15, KEY)
    assert (verdict.first_bad_seq, verdict.problem) == (
        15,
        "no anchor at record 15: anchors were removed",
    )


# Checkpoints: a signed head kept outside the database


def run_checkpoint(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return tandem_in_process("audit", "checkpoint", "--data-dir", str(data_dir))


def checkpoint_to(witness: Path, data_dir: Path) -> Checkpoint:
    """Make a checkpoint and append it to the witness file, as an operator's cron job would."""
    result = run_checkpoint(data_dir)
    assert result.returncode == 0, result.stderr
    with witness.open("a") as log:
        log.write(result.stdout)
    return Checkpoint.from_line(result.stdout)


async def append(data_dir: Path, n: int, anchor_every: int = 5) -> None:
    storage = await SQLStorage.open_sqlite(data_dir / "tandem.sqlite3")
    log = AuditLog(storage, KEY, anchor_every=anchor_every)
    for _ in range(n):
        await log.record(5000.0, "sign_out", actor="ada", org="default")
    await storage.close()


async def test_checkpoint_prints_the_signed_head_and_verify_checks_it(tmp_path: Path) -> None:
    data = await filled(tmp_path / "data")
    records, _ = await trail(data)
    result = run_checkpoint(data)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1
    line = json.loads(result.stdout)
    assert (line["tandem_audit_checkpoint"], line["seq"], line["hash"]) == (1, 12, records[-1].hash)
    assert line["anchor_seq"] == 10 and line["time"].endswith("Z") and len(line["mac"]) == 64
    witness = tmp_path / "witness.log"
    witness.write_text(result.stdout)
    verified = run_verify(data, "--checkpoint", str(witness))
    assert verified.returncode == 0, verified.stderr
    assert "intact: 12 records, 3 anchors, 1 checkpoints checked (newest: record 12" in (
        verified.stdout
    )


def test_a_checkpoint_line_round_trips_and_is_signed_over_every_field() -> None:
    records = [
        AuditRecord(1, 1.0, "sign_in", "ada", "default", "", {}, GENESIS, "a" * 64),
    ]
    checkpoint = make_checkpoint(records, [], KEY, at=86400.0)
    assert (checkpoint.seq, checkpoint.anchor_seq) == (1, 0)
    assert checkpoint.time == "1970-01-02T00:00:00Z"
    assert Checkpoint.from_line(checkpoint.to_line()) == checkpoint
    assert checkpoint.authentic(KEY) and not checkpoint.authentic(bytes(32))
    for field, value in (("seq", 2), ("hash", "b" * 64), ("anchor_seq", 1), ("time", "x")):
        assert not dataclasses.replace(checkpoint, **{field: value}).authentic(KEY), field


async def test_truncating_the_tail_with_its_shutdown_anchor_is_caught_by_a_checkpoint(
    tmp_path: Path,
) -> None:
    data = await filled(tmp_path / "data", stopped_at=(12,))
    witness = tmp_path / "witness.log"
    checkpoint_to(witness, data)
    # Without the key: the last run's records and its shutdown anchor go.
    tamper(data, "DELETE FROM audit WHERE seq >= 11", "DELETE FROM audit_anchors WHERE seq = 12")
    assert run_verify(data).returncode == 0, "without a checkpoint this is not detectable"
    result = run_verify(data, "--checkpoint", str(witness))
    assert result.returncode == 1
    assert (
        "BROKEN at record 12: the trail was cut or rewritten before checkpoint at record 12"
        in result.stderr
    )


async def test_a_tail_rewritten_after_the_last_anchor_is_caught_without_a_checkpoint(
    tmp_path: Path,
) -> None:
    # Records 11 and 12 come after the last anchor (10): before record MACs, only a checkpoint
    # saw them rewritten.
    data = await filled(tmp_path / "data")
    witness = tmp_path / "witness.log"
    checkpoint_to(witness, data)
    records, _ = await trail(data)
    rewrite_without_the_key(
        data, [dataclasses.replace(r, actor="mallory") if r.seq == 11 else r for r in records]
    )
    for result in (run_verify(data), run_verify(data, "--checkpoint", str(witness))):
        assert result.returncode == 1
        assert "BROKEN at record 11: record 11 has no valid MAC" in result.stderr


async def test_deleting_the_whole_trail_is_caught_by_a_checkpoint(tmp_path: Path) -> None:
    data = await filled(tmp_path / "data")
    witness = tmp_path / "witness.log"
    checkpoint_to(witness, data)
    tamper(data, "DELETE FROM audit", "DELETE FROM audit_anchors")
    assert "intact: 0 records" in run_verify(data).stdout
    result = run_verify(data, "--checkpoint", str(witness))
    assert result.returncode == 1
    assert "BROKEN at record 12: the trail was cut or rewritten before checkpoint" in result.stderr


async def test_every_checkpoint_in_the_file_is_checked(tmp_path: Path) -> None:
    data = await filled(tmp_path / "data", n=8)
    witness = tmp_path / "witness.log"
    checkpoint_to(witness, data)
    await append(data, 6)
    checkpoint_to(witness, data)
    result = run_verify(data, "--checkpoint", str(witness))
    assert result.returncode == 0, result.stderr
    assert "2 checkpoints checked (newest: record 14" in result.stdout
    # Cut back to 11 (and the anchors after it): the older checkpoint holds, the newer does not.
    tamper(data, "DELETE FROM audit WHERE seq > 11", "DELETE FROM audit_anchors WHERE seq > 11")
    assert run_verify(data).returncode == 0
    result = run_verify(data, "--checkpoint", str(witness))
    assert result.returncode == 1
    assert "BROKEN at record 14: the trail was cut or rewritten before checkpoint at" in (
        result.stderr
    )


@pytest.mark.parametrize(
    "forge",
    [
        {"seq": 11},
        {"hash": "0" * 64},
        {"anchor_seq": 5},
        {"time": "2099-01-01T00:00:00Z"},
        {"mac": "0" * 64},
    ],
    ids=["seq", "hash", "anchor", "time", "mac"],
)
async def test_a_checkpoint_with_a_wrong_mac_is_rejected(
    tmp_path: Path, forge: dict[str, object]
) -> None:
    data = await filled(tmp_path / "data")
    witness = tmp_path / "witness.log"
    genuine = checkpoint_to(witness, data)
    # An older line altered: every line is checked, not only the newest.
    forged = dataclasses.replace(genuine, **forge)  # type: ignore[arg-type]
    witness.write_text(f"{forged.to_line()}\n{genuine.to_line()}\n")
    result = run_verify(data, "--checkpoint", str(witness))
    assert result.returncode == 1
    assert "audit checkpoint REJECTED: the checkpoint at record" in result.stderr
    assert "has a wrong MAC" in result.stderr


async def test_a_checkpoint_made_with_another_key_is_rejected(tmp_path: Path) -> None:
    data = await filled(tmp_path / "data")
    records, _ = await trail(data)
    witness = tmp_path / "witness.log"
    witness.write_text(make_checkpoint(records, [], bytes(32), at=0.0).to_line() + "\n")
    result = run_verify(data, "--checkpoint", str(witness))
    assert result.returncode == 1 and "REJECTED" in result.stderr


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "no checkpoint in"),
        ("\n\n", "no checkpoint in"),
        ('{"seq": 1}\n', "line 1: not a Tandem audit checkpoint"),
        ("audit trail intact\n", "line 1: not a Tandem audit checkpoint"),
    ],
)
async def test_a_file_of_no_checkpoints_is_a_clear_error(
    tmp_path: Path, text: str, error: str
) -> None:
    data = await filled(tmp_path / "data")
    witness = tmp_path / "witness.log"
    witness.write_text(text)
    result = run_verify(data, "--checkpoint", str(witness))
    assert result.returncode == 2 and error in result.stderr
    assert "Traceback" not in result.stderr


async def test_checkpoint_refuses_to_sign_a_broken_trail(tmp_path: Path) -> None:
    data = await filled(tmp_path)
    tamper(data, "DELETE FROM audit_anchors WHERE seq = 5")
    result = run_checkpoint(data)
    assert result.returncode == 1 and result.stdout == ""
    assert "BROKEN at record 5" in result.stderr


@pytest.mark.parametrize(
    "evidence",
    [
        "DROP TABLE audit_anchors",
        "UPDATE audit SET details = 'not json' WHERE seq = 3",
    ],
)
async def test_destroyed_audit_tables_are_reported_broken_not_a_crash(
    tmp_path: Path, evidence: str
) -> None:
    data = await filled(tmp_path)
    tamper(data, evidence)
    for result in (run_verify(data), run_checkpoint(data)):
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith("audit trail BROKEN: the audit tables cannot be read")
        assert "Traceback" not in result.stderr and result.stdout == ""


def test_verify_without_the_key_is_a_clear_error(tmp_path: Path) -> None:
    made = tandem_in_process(
        "org", "add", "acme", "--name", "Acme", "--data-dir", str(tmp_path), "--init"
    )
    assert made.returncode == 0, made.stderr
    (tmp_path / "audit.key").unlink()
    result = run_verify(tmp_path)
    assert result.returncode == 2 and "no audit key" in result.stderr


@pytest.mark.usefixtures("close_client_connections")
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

    storage = await SQLStorage.open_sqlite(server.settings.database_path)
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
    assert verify(records, anchors, key).ok
    assert records[-1].action == "server_stopped", "the server stops last"
    assert [a.seq for a in anchors] == [1, records[-1].seq], "anchored at start and at shutdown"
    text = json.dumps([r.to_json() for r in records])
    for secret in (AGENT_PASSWORD, "wrong-one-123", created["code"], created["resume_token"]):
        # As a value of its own: a five-digit code also turns up, by chance, inside the
        # records' hex MACs and digests and inside their times.
        assert not re.search(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])", text)


async def test_export_writes_json_lines_since_a_time(tmp_path: Path) -> None:
    data = await filled(tmp_path)
    result = tandem_in_process(
        "audit", "export", "--since", "1970-01-01T00:16:45+00:00", "--data-dir", str(data)
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["seq"] for line in lines] == [6, 7, 8, 9, 10, 11, 12]
    assert lines[0]["time"] == "1970-01-01T00:16:45+00:00" and lines[0]["action"] == "sign_in"


async def test_an_exported_record_is_one_line_whatever_an_anonymous_client_named(
    tmp_path: Path,
) -> None:
    """Attack review of the strings exported: a name an anonymous client tries at the sign-in
    is a failed sign-in's actor as typed. A newline and a forged record in it, a terminal's
    escape sequence or a right-to-left override stay inside its own JSON line (escaped), so
    a SIEM or a terminal reading the export sees one record for it."""
    storage = await SQLStorage.open_sqlite(migrated_sqlite(tmp_path / "tandem.sqlite3"))
    log = AuditLog(storage, KEY, anchor_every=5)
    forged = 'x"}\n{"action": "sign_in", "actor": "alice"}\x1b]0;owned\x07\u202e'
    await log.record(1000.0, "sign_in_failed", actor=forged, ip="203.0.113.9", org="default")
    await log.record(1001.0, "sign_in", actor="bob", ip="127.0.0.1", org="default")
    await storage.close()
    (tmp_path / "audit.key").write_text(KEY.hex())
    result = tandem_in_process("audit", "export", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["sign_in_failed", "sign_in"]
    assert json.loads(lines[0])["actor"] == forged
    assert all(line.isascii() and line.isprintable() for line in lines)


async def test_export_after_a_record_gets_the_records_written_late(tmp_path: Path) -> None:
    """A SIEM that exports with ``--since`` its last read's time missed a record the database
    took late (an administrator's change while it was away, written at the next start with the
    time of the change); ``--after`` the last ``seq`` it read gets it."""
    storage = await SQLStorage.open_sqlite(migrated_sqlite(tmp_path / "tandem.sqlite3"))
    log = AuditLog(storage, KEY, anchor_every=5)
    await log.record(1000.0, "sign_in", actor="ada", org="default")
    await log.record(2000.0, "sign_in", actor="bob", org="default")
    read = tandem_in_process("audit", "export", "--data-dir", str(tmp_path))
    last = json.loads(read.stdout.splitlines()[-1])
    await log.record(1500.0, "user_disabled", actor="ada", subject="eve", org="default")
    await storage.close()
    (tmp_path / "audit.key").write_text(KEY.hex())
    since = datetime.fromtimestamp(last["at"], UTC).isoformat()
    by_time = tandem_in_process("audit", "export", "--since", since, "--data-dir", str(tmp_path))
    assert [json.loads(line)["seq"] for line in by_time.stdout.splitlines()] == [2]
    after = tandem_in_process(
        "audit", "export", "--after", str(last["seq"]), "--data-dir", str(tmp_path)
    )
    assert after.returncode == 0, after.stderr
    [late] = [json.loads(line) for line in after.stdout.splitlines()]
    assert (late["seq"], late["action"], late["at"]) == (3, "user_disabled", 1500.0)


def test_export_refuses_a_cursor_that_is_no_record(tmp_path: Path) -> None:
    for cursor in ("-1", "x", str(2**63)):
        result = tandem_in_process(
            "audit", "export", "--after", cursor, "--data-dir", str(tmp_path)
        )
        assert result.returncode == 2 and "--after" in result.stderr


def test_export_refuses_a_bad_time(tmp_path: Path) -> None:
    result = tandem_in_process(
        "audit", "export", "--since", "yesterday", "--data-dir", str(tmp_path)
    )
    assert result.returncode == 2 and "not an ISO 8601 time" in result.stderr
