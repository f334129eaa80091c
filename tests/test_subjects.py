"""Data subject requests and legal holds (tandem.subjects) on a real database: a customer's
sessions, encrypted recording, audit records and reports are found, exported (the recording opens
with the organisation's key file) and erased (nothing of the customer is found afterwards, the
audit trail still verifies); a legal hold stops purge and erasure until it is lifted."""

from __future__ import annotations

import dataclasses
import io
import json
import stat
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tandem.audit import AuditLog, verify
from tandem.directory import Directory, operator
from tandem.exceptions import ConfigError, ConflictError, ForbiddenError, NotFoundError
from tandem.recordings import Recordings, container, recording_events
from tandem.storage.base import OrgRecord
from tandem.storage.schema import metadata
from tandem.storage.sql import SQLStorage
from tandem.subjects import Subjects
from tests.conftest import seed_directory
from tests.conftest import tandem_in_process as run  # tests/test_cli.py runs the real command
from tests.forkserver import tandem_run
from tests.grants import of_org, owned
from tests.test_cli import TANDEM
from tests.test_recordings import PASSPHRASE, flat, key_file, made_for, recorded

KEY = b"k" * 32
T0 = 1_800_000_000.0
SUB = "customer-7f3a@shop.example"
OTHER = "customer-0000"
ADMIN = operator("default")


class World:
    """A database with two customers' sessions: ``s1`` (SUB, recorded as ``r1``) and ``s9``
    (OTHER), each with its audit records and a customer report."""

    def __init__(self, storage: SQLStorage, private: X25519PrivateKey) -> None:
        self.storage = storage
        self.private = private
        self.now = T0
        self.log = AuditLog(storage, KEY, anchor_every=5)
        self.subjects = Subjects(storage, self.record, self.clock)
        self.recordings = Recordings(storage, self.record)

    def clock(self) -> float:
        return self.now

    async def record(self, action: str, **fields: Any) -> None:
        await self.log.record(self.now, action, **fields)

    async def session(self, session_id: str, subject: str, pseudonym: str) -> None:
        await self.storage.record_session_start(of_org("default"), session_id, self.now, "demo")
        linked = await self.storage.link_subject(of_org("default"), subject, session_id, pseudonym)
        await self.record(
            "session_created", actor=f"customer:{linked}", org="default", subject=session_id
        )
        await self.record(
            "control_granted", actor="customer", org="default", subject=session_id, agent="alice"
        )
        await self.storage.record_session_end(session_id, self.now + 60, "customer_left", "Alice")

    async def build(self) -> None:
        await self.session("s1", SUB, "p-first")
        await self.storage.add_recording(
            *owned(made_for(self.private, ended_at=None, frames=0, size=0))
        )
        frames = flat(recorded(self.private))
        await self.storage.append_recording_frames("r1", 0, frames)
        await self.storage.end_recording("r1", self.now + 50, "stopped")
        await self.record(
            "recording_started", actor="alice", org="default", subject="r1", session="s1"
        )
        await self.session("s9", OTHER, "p-other")

    async def verified(self) -> bool:
        records = await self.storage.audit_records(0.0)
        return verify(records, await self.storage.anchors(), KEY, legacy_every=5).ok

    async def everything(self) -> str:
        """Every row of every table, as text."""
        rows = []
        async with self.storage._engine.connect() as db:
            for table in metadata.sorted_tables:
                result = await db.execute(sa.select(*table.c))
                rows += [repr(tuple(row)) for row in result]
        return "\n".join(rows)


@pytest.fixture
async def world(storage: SQLStorage) -> World:
    built = World(storage, X25519PrivateKey.generate())
    await built.build()
    return built


async def test_a_subject_is_found_by_sub_or_by_a_session_id(world: World) -> None:
    by_sub = await world.subjects.find(ADMIN, SUB)
    by_session = await world.subjects.find(ADMIN, "s1")
    for found in (by_sub, by_session):
        assert found.session_ids == ("s1",)
        assert [r.recording_id for r in found.recordings] == ["r1"]
        assert [r.action for r in found.audit] == ["session_created", "recording_started"]
        assert [r.action for r in found.reports] == ["control_granted"]
        assert found.pseudonym == "p-first"
    other_org = await world.subjects.find(operator("acme"), SUB)
    assert other_org.empty


async def test_export_then_erase_round_trip_with_an_encrypted_recording(
    world: World, tmp_path: Path
) -> None:
    _, archive = await world.subjects.export(ADMIN, SUB)
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        manifest = json.loads(opened.read("manifest.json"))
        assert manifest["subject"] == SUB and manifest["sessions"] == 1
        assert [r["recording_id"] for r in manifest["recordings"]] == ["r1"]
        assert manifest["audit_records"] == 2 and manifest["reports"] == 1
        assert "tandem recording open" in opened.read("README.txt").decode()
        sessions = json.loads(opened.read("sessions.json"))
        assert [s["session_id"] for s in sessions["stored"]] == ["s1"]
        reports = opened.read("reports.jsonl").decode().splitlines()
        assert [json.loads(line)["action"] for line in reports] == ["control_granted"]
        container = opened.read(manifest["recordings"][0]["file"])
        # Ciphertext stored as it is (it does not compress), the rest deflated; every entry's
        # CRC checks.
        kinds = {info.filename: info.compress_type for info in opened.infolist()}
        assert kinds.pop(manifest["recordings"][0]["file"]) == zipfile.ZIP_STORED
        assert set(kinds.values()) == {zipfile.ZIP_DEFLATED}
        assert opened.testzip() is None
    assert b"checkout" not in container  # still the customer's ciphertext
    # The archive's recording opens with the organisation's key file, offline.
    header, events = recording_events(container, key_file(world.private), PASSPHRASE)
    assert header["recording_id"] == "r1"
    assert [e["name"] for e in events] == ["shop", "cart", "checkout"]

    world.now += 10
    erased = await world.subjects.erase(ADMIN, SUB)
    assert erased["recordings"] == ["r1"] and erased["sessions"] == 1

    assert (await world.subjects.find(ADMIN, SUB)).empty
    assert (await world.subjects.find(ADMIN, "s1")).empty
    assert await world.storage.get_recording("r1") is None
    assert await world.storage.recording_frames("r1") == []
    assert SUB not in await world.everything()  # no table holds the customer's id any more
    assert (
        await world.storage.subject_sessions(of_org("default"), SUB) == []
    )  # nor the link to p-first
    assert SUB not in json.dumps([r.to_json() for r in await world.storage.audit_records()])
    # The other customer is untouched.
    assert (await world.subjects.find(ADMIN, OTHER)).session_ids == ("s9",)
    # The trail still verifies, and says what was erased, without the customer's id.
    assert await world.verified()
    records = await world.storage.audit_records()
    exported, last = records[-2], records[-1]
    assert exported.action == "subject_exported" and exported.subject == "customer:p-first"
    assert last.action == "subject_erased" and last.subject == "customer:p-first"
    assert last.details["recordings"] == ["r1"] and last.details["audit_records_kept"] == 3
    # Erasing again: nothing left to erase.
    with pytest.raises(NotFoundError):
        await world.subjects.erase(ADMIN, SUB)


async def test_an_export_numbers_records_in_the_organisations_own_trail(
    storage: SQLStorage,
) -> None:
    # The customer's copy of the records carried the chain's numbers and hashes: how many
    # records every other organisation wrote before and between them.
    world = World(storage, X25519PrivateKey.generate())
    for i in range(7):  # Acme's records come first in the chain, and between the customer's
        await world.log.record(T0, "sign_in", actor=f"acme{i}", org="acme")
    await world.build()
    _, archive = await world.subjects.export(ADMIN, SUB)
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        lines = [
            json.loads(line)
            for name in ("audit.jsonl", "reports.jsonl")
            for line in opened.read(name).decode().splitlines()
        ]
    # session_created, control_granted (the report), recording_started: 1 to 3 of the default
    # organisation's trail.
    assert sorted((line["seq"], line["action"]) for line in lines) == [
        (1, "session_created"),
        (2, "control_granted"),
        (3, "recording_started"),
    ]
    fields = {"seq", "at", "time", "action", "actor", "org", "subject", "details"}
    assert all(set(line) == fields for line in lines)


async def test_a_legal_hold_stops_purge_and_erasure_until_lifted(world: World) -> None:
    much_later = T0 + 3650 * 86400.0
    with pytest.raises(ConfigError, match="needs a reason"):
        await world.subjects.place_hold(ADMIN, "subject", SUB, "  ")
    await world.subjects.place_hold(ADMIN, "subject", SUB, "case 2026-114")
    with pytest.raises(ConflictError, match="under legal hold already"):
        await world.subjects.place_hold(ADMIN, "subject", SUB, "again")

    with pytest.raises(ConflictError, match=r"legal hold since .* by cli \(case 2026-114\)"):
        await world.subjects.erase(ADMIN, SUB)
    with pytest.raises(ConflictError, match="recording r1 is under legal hold"):
        await world.recordings.erase(ADMIN, "r1")
    assert await world.recordings.purge(much_later) == 0  # s9 has no recording
    await world.storage.purge_expired(much_later)
    assert await world.storage.get_recording("r1") is not None
    assert await world.storage.get_session("s1") is not None
    assert await world.storage.get_session("s9") is None  # not held: retention applies

    with pytest.raises(ConfigError, match="needs a reason"):
        await world.subjects.lift_hold(ADMIN, "subject", SUB, "")
    await world.subjects.lift_hold(ADMIN, "subject", "s1", "case closed")  # by session id too
    assert await world.recordings.purge(much_later) == 1
    assert await world.storage.get_recording("r1") is None

    actions = [(r.action, r.details.get("reason")) for r in await world.storage.audit_records()]
    assert ("legal_hold_placed", "case 2026-114") in actions
    assert ("legal_hold_lifted", "case closed") in actions
    assert SUB not in json.dumps([r.to_json() for r in await world.storage.audit_records()])
    assert await world.verified()


async def test_a_hold_on_one_recording_stops_its_erasure_and_the_subjects(world: World) -> None:
    await world.subjects.place_hold(ADMIN, "recording", "r1", "litigation")
    with pytest.raises(ConflictError, match="legal hold"):
        await world.recordings.erase(ADMIN, "r1")
    with pytest.raises(ConflictError, match="legal hold"):
        await world.subjects.erase(ADMIN, SUB)
    assert await world.recordings.purge(T0 + 3650 * 86400.0) == 0
    with pytest.raises(NotFoundError):
        await world.subjects.place_hold(ADMIN, "recording", "no-such-recording", "x")
    [hold] = await world.subjects.list_holds(ADMIN)
    assert (hold.kind, hold.target, hold.reason) == ("recording", "r1", "litigation")
    await world.subjects.lift_hold(ADMIN, "recording", "r1", "settled")
    await world.recordings.erase(ADMIN, "r1")
    assert await world.storage.get_recording("r1") is None


async def _tokenless_recorded_session(world: World) -> None:
    """Session ``s2`` of a customer who came without a token (no ``sub``), recorded as ``r2``."""
    await world.storage.record_session_start(of_org("default"), "s2", world.now, "demo")
    await world.record("session_created", actor="customer", org="default", subject="s2")
    await world.storage.add_recording(
        *owned(
            made_for(
                world.private, recording_id="r2", session_id="s2", ended_at=None, frames=0, size=0
            )
        )
    )
    await world.storage.append_recording_frames("r2", 0, flat(recorded(world.private)))
    await world.storage.end_recording("r2", world.now + 50, "stopped")
    await world.storage.record_session_end("s2", world.now + 60, "customer_left", "Alice")


async def test_a_hold_by_the_id_of_a_tokenless_session_stops_purge_until_lifted(
    world: World,
) -> None:
    await _tokenless_recorded_session(world)
    await world.subjects.place_hold(ADMIN, "subject", "s2", "case 2026-200")
    much_later = T0 + 3650 * 86400.0
    assert await world.recordings.purge(much_later) == 1  # r1: its customer is not held
    await world.storage.purge_expired(much_later)
    assert await world.storage.get_recording("r2") is not None, "held recording was purged"
    assert await world.storage.recording_frames("r2") != []
    assert await world.storage.get_session("s2") is not None, "held session was purged"
    assert await world.storage.get_session("s1") is None  # not held: retention applies

    await world.subjects.lift_hold(ADMIN, "subject", "s2", "case closed")
    assert await world.recordings.purge(much_later) == 1
    await world.storage.purge_expired(much_later)
    assert await world.storage.get_recording("r2") is None
    assert await world.storage.get_session("s2") is None


async def test_a_hold_by_the_id_of_a_tokenless_session_stops_its_erasure_until_lifted(
    world: World,
) -> None:
    await _tokenless_recorded_session(world)
    await world.subjects.place_hold(ADMIN, "subject", "s2", "case 2026-201")
    [hold] = await world.subjects.list_holds(ADMIN)
    assert (hold.kind, hold.target) == ("subject", "s2")
    with pytest.raises(ConflictError, match=r"legal hold since .* by cli \(case 2026-201\)"):
        await world.subjects.erase(ADMIN, "s2")
    with pytest.raises(ConflictError, match="recording r2 is under legal hold"):
        await world.recordings.erase(ADMIN, "r2")
    assert await world.storage.get_session("s2") is not None
    assert await world.storage.get_recording("r2") is not None
    records = await world.storage.audit_records()
    placed = [r for r in records if r.action == "legal_hold_placed"]
    assert [r.subject for r in placed] == ["session:s2"]  # how the trail names that customer

    await world.subjects.lift_hold(ADMIN, "subject", "s2", "case closed")
    await world.recordings.erase(ADMIN, "r2")
    erased = await world.subjects.erase(ADMIN, "s2")
    assert erased["sessions"] == 1
    assert await world.storage.get_session("s2") is None


async def test_another_organisations_hold_on_the_same_id_does_not_keep_a_tokenless_session(
    world: World,
) -> None:
    await _tokenless_recorded_session(world)
    await world.storage.add_org(OrgRecord("acme", "Acme", 0.0))
    # acme cannot see default's session s2, so for acme "s2" is a sub it holds in advance.
    await world.subjects.place_hold(operator("acme"), "subject", "s2", "their case")
    much_later = T0 + 3650 * 86400.0
    assert await world.recordings.purge(much_later) == 2
    await world.storage.purge_expired(much_later)
    assert await world.storage.get_session("s2") is None
    assert [h.target for h in await world.subjects.list_holds(operator("acme"))] == ["s2"]


async def test_a_hold_on_an_unknown_customer_holds_their_sessions_to_come(
    world: World,
) -> None:
    answer = await world.subjects.place_hold(ADMIN, "subject", "c-later", "case 2026-202")
    placed = answer.hold
    assert (placed.kind, placed.target) == ("subject", "c-later")
    assert (answer.sessions, answer.recordings) == ((), ())  # nothing stored yet
    assert await world.subjects.held_now(ADMIN, placed) == ((), ())
    records = await world.storage.audit_records()
    assert records[-1].subject == "customer:(no sessions yet)"
    await world.storage.record_session_start(of_org("default"), "s3", world.now, "demo")
    await world.storage.link_subject(of_org("default"), "c-later", "s3", "p-later")
    await world.storage.record_session_end("s3", world.now + 60, "customer_left", "Alice")
    assert await world.subjects.held_now(ADMIN, placed) == (("s3",), ())
    await world.storage.purge_expired(T0 + 3650 * 86400.0)
    assert await world.storage.get_session("s3") is not None
    with pytest.raises(ConflictError, match="legal hold"):
        await world.subjects.erase(ADMIN, "c-later")


async def test_a_live_session_is_not_erased(storage: SQLStorage) -> None:
    built = World(storage, X25519PrivateKey.generate())
    await storage.record_session_start(of_org("default"), "s5", T0, "demo")
    await storage.link_subject(of_org("default"), SUB, "s5", "p-live")
    with pytest.raises(ConflictError, match="still live"):
        await built.subjects.erase(ADMIN, SUB)
    assert await storage.get_session("s5") is not None


async def test_subject_requests_need_an_admin(world: World) -> None:
    auditor = dataclasses.replace(ADMIN, role="auditor")
    with pytest.raises(ForbiddenError, match=r"does not allow org\.manage"):
        await world.subjects.find(auditor, SUB)


async def _one_customer(directory: Directory) -> None:
    storage = directory.storage
    await storage.record_session_start(of_org("default"), "s-cli", T0, "demo")
    await storage.link_subject(of_org("default"), "c-cli", "s-cli", "p-cli")
    await storage.record_session_end("s-cli", T0 + 60, "stopped", "Alice")


def test_the_commands_export_hold_and_erase(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seed_directory(data, _one_customer)
    at = ["--org", "default", "--data-dir", str(data)]
    exported = tandem_run([*TANDEM, "subject", "export", "c-cli", *at], timeout=60)
    assert exported.returncode == 0, exported.stderr
    with zipfile.ZipFile(io.BytesIO(exported.stdout)) as archive:
        assert json.loads(archive.read("manifest.json"))["sessions"] == 1
    assert run("hold", "place", "subject", "c-cli", "--reason", "case 1", *at).returncode == 0
    assert "case 1" in run("hold", "list", *at).stdout
    refused = run("subject", "erase", "c-cli", "--yes", *at)
    assert refused.returncode == 2 and "under legal hold" in refused.stderr
    assert run("subject", "erase", "c-cli", *at).returncode == 2  # without --yes: nothing done
    assert run("hold", "lift", "subject", "c-cli", "--reason", "closed", *at).returncode == 0
    erased = run("subject", "erase", "c-cli", "--yes", *at)
    assert erased.returncode == 0, erased.stderr
    assert "Erased 1 session(s) and 0 recording(s)" in erased.stdout
    found = json.loads(run("subject", "find", "c-cli", *at).stdout)
    assert found["sessions"] == [] and found["recordings"] == []
    assert run("audit", "verify", "--data-dir", str(data)).returncode == 0


async def _a_tokenless_session(directory: Directory) -> None:
    storage = directory.storage
    await storage.record_session_start(of_org("default"), "s-anon", T0, "demo")
    await storage.record_session_end("s-anon", T0 + 60, "stopped", "Alice")


def test_hold_place_says_what_the_hold_keeps_now(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seed_directory(data, _a_tokenless_session)
    at = ["--org", "default", "--data-dir", str(data)]
    placed = run("hold", "place", "subject", "s-anon", "--reason", "case 3", *at)
    assert placed.returncode == 0, placed.stderr
    assert "It keeps 1 session(s) and 0 recording(s) from purge and erasure." in placed.stdout
    assert "subject\ts-anon\t" in run("hold", "list", *at).stdout
    refused = run("subject", "erase", "s-anon", "--yes", *at)
    assert refused.returncode == 2 and "under legal hold" in refused.stderr

    ahead = run("hold", "place", "subject", "c-not-yet", "--reason", "case 4", *at)
    assert ahead.returncode == 0, ahead.stderr
    assert "It holds nothing stored yet" in ahead.stdout

    assert run("hold", "lift", "subject", "s-anon", "--reason", "closed", *at).returncode == 0
    erased = run("subject", "erase", "s-anon", "--yes", *at)
    assert erased.returncode == 0, erased.stderr


async def test_an_export_holds_recordings_up_to_its_limit_and_lists_the_rest(
    world: World,
) -> None:
    """Every recording of the customer was read into memory and copied into one archive: a
    customer with many long recordings took the process's memory. Past
    ``max_subject_export_bytes`` a recording is not read, but listed, to be exported alone."""
    r1 = await world.storage.get_recording("r1")
    assert r1 is not None and r1.size > 0
    read: list[str] = []
    frames_of = world.storage.read_for_export

    async def counted(
        session_ids: Sequence[str],
        recording_ids: Sequence[str],
        evidence: Any = None,
        linked_ids: Sequence[str] = (),
        **held: Any,
    ) -> list[list[bytes]] | None:
        read.extend(recording_ids)
        return await frames_of(session_ids, recording_ids, evidence, linked_ids, **held)

    world.storage.read_for_export = counted  # type: ignore[method-assign]
    small = Subjects(world.storage, world.record, world.clock, max_export_bytes=r1.size - 1)
    _, archive = await small.export(ADMIN, SUB)
    assert read == []  # never read
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        manifest = json.loads(opened.read("manifest.json"))
        assert manifest["recordings"] == []
        [left] = manifest["recordings_left_out"]
        assert left["recording_id"] == "r1" and left["export"].endswith("/r1/export")
        assert "1 more recording(s)" in opened.read("README.txt").decode()
        assert not [n for n in opened.namelist() if n.startswith("recordings/")]
    [record] = [r for r in await world.storage.audit_records() if r.action == "subject_exported"]
    assert record.details["recording_ids"] == [] and record.details["recordings_left_out"] == ["r1"]
    enough = Subjects(world.storage, world.record, world.clock, max_export_bytes=r1.size)
    _, archive = await enough.export(ADMIN, SUB)
    assert read == ["r1"]
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        manifest = json.loads(opened.read("manifest.json"))
        assert [r["recording_id"] for r in manifest["recordings"]] == ["r1"]
        assert manifest["recordings_left_out"] == []
        assert "more recording" not in opened.read("README.txt").decode()


def test_what_the_commands_write_about_people_only_their_owner_may_read(
    tmp_path: Path,
) -> None:
    """`tandem subject export --out` and `tandem recording open --out` (a customer's data; a
    recording's decrypted page) wrote their files with the umask's mode: 0644 as a rule,
    readable by every account on the machine, and an existing file kept its mode."""
    data = tmp_path / "data"
    seed_directory(data, _one_customer)
    at = ["--org", "default", "--data-dir", str(data)]
    fresh, existing = tmp_path / "fresh.zip", tmp_path / "existing.zip"
    existing.write_bytes(b"old")
    existing.chmod(0o644)
    for archive in (fresh, existing):
        done = run("subject", "export", "c-cli", *at, "--out", str(archive))
        assert done.returncode == 0, done.stderr
        assert stat.S_IMODE(archive.stat().st_mode) == 0o600, archive
        with zipfile.ZipFile(archive) as opened:
            assert json.loads(opened.read("manifest.json"))["sessions"] == 1
    private = X25519PrivateKey.generate()
    key = tmp_path / "key.json"
    key.write_text(key_file(private))
    whole = tmp_path / "whole.tandemrec"
    whole.write_bytes(container(made_for(private), flat(recorded(private))))
    events = tmp_path / "events.json"
    events.write_text("{}")
    events.chmod(0o644)
    opened = run(
        "recording", "open", str(whole), "--key", str(key), "--out", str(events), stdin=PASSPHRASE
    )
    assert opened.returncode == 0, opened.stderr
    assert stat.S_IMODE(events.stat().st_mode) == 0o600
    assert [e["name"] for e in json.loads(events.read_text())["events"]] == [
        "shop",
        "cart",
        "checkout",
    ]


async def test_an_erasure_inside_an_exports_look_up_leaves_it_nothing_to_give(
    world: World,
) -> None:
    """The customer is erased after the export's look-up read their links, before it read
    their session (SQLite here; PostgreSQL in tests/server/test_recording_lock_races.py). The
    export found no session and no recording to hold and went out, recorded after the
    erasure, with the pseudonym the erasure had unlinked from the customer. The links are
    held in the export's transaction too: it finds them gone, and gives and records nothing."""
    sessions_of = world.storage.sessions_of
    erased: list[dict[str, object]] = []

    async def erased_first(grant: Any, session_ids: Any) -> Any:
        if not erased:  # the look-up's first read of the sessions: the erasure lands before it
            erased.append({})
            erased[0] = await world.subjects.erase(ADMIN, SUB)
        return await sessions_of(grant, session_ids)

    world.storage.sessions_of = erased_first  # type: ignore[method-assign]
    with pytest.raises(ConflictError, match="erased meanwhile"):
        await world.subjects.export(ADMIN, SUB, by="sub")
    assert erased[0]["session_records"] == 1
    actions = [r.action for r in await world.storage.audit_records()]
    assert "subject_exported" not in actions
    assert actions[-1] == "subject_erased"
