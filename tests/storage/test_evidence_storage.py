"""A deletion and its audit records in one transaction (tandem.audit.Evidence), on both backends:
a record that cannot be written takes the deletion back with it, and deletions racing other
writers of the trail (no lock: a number taken meanwhile runs the whole transaction again) leave
one intact chain holding every record."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from typing import TypeVar

import pytest

from tandem.audit import AuditLog, AuditRecord, Entry, Evidence, verify
from tandem.storage.base import OrgRecord, Storage
from tandem.storage.sql import SQLStorage
from tests.grants import of_org, owned
from tests.storage.conftest import PG_DSN, fresh_schema
from tests.storage.test_recordings_storage import recording

KEY = bytes(range(32))
DAY = 86400.0
T = TypeVar("T")


class DiskFull(Exception):
    pass


def erased(recording_id: str) -> Sequence[Entry]:
    return [Entry("recording_erased", "default", "ada", recording_id, {"session": "s"})]


async def test_a_deletion_whose_record_cannot_be_written_deletes_nothing(
    storage: Storage,
) -> None:
    await storage.add_recording(*owned(recording("r1")))
    log = AuditLog(storage, KEY, anchor_every=5)
    evidence = log.evidence(100.0, lambda deleted: erased("r1") if deleted else [])

    def failing_seal(record: AuditRecord) -> str:
        raise DiskFull  # the record fails after the DELETE ran in the same transaction

    with pytest.raises(DiskFull):
        await storage.delete_recording("r1", dataclasses.replace(evidence, seal=failing_seal))
    assert await storage.get_recording("r1") is not None
    assert await storage.audit_records() == []
    written: list[AuditRecord] = []
    evidence = log.evidence(101.0, lambda deleted: erased("r1"), written.extend)
    assert await storage.delete_recording("r1", evidence)
    assert await storage.get_recording("r1") is None
    [record] = await storage.audit_records()
    assert (record.action, record.subject, record.at) == ("recording_erased", "r1", 101.0)
    assert written == [record]  # told once committed


async def test_deletions_racing_another_writer_on_postgres_keep_one_intact_chain() -> None:
    async with fresh_schema(migrated=True) as schema:
        stores = [await SQLStorage.connect(PG_DSN, schema=schema) for _ in range(2)]
        try:
            logs = [AuditLog(store, KEY, anchor_every=5) for store in stores]
            ids = [f"r{i}" for i in range(8)]
            for recording_id in ids:
                await stores[0].add_recording(*owned(recording(recording_id)))

            async def signs_in() -> None:
                for i in range(24):
                    await logs[0].record(4000.0 + i, "sign_in", actor="a", org="default")

            async def erases() -> None:
                for i, recording_id in enumerate(ids):
                    evidence = logs[1].evidence(
                        5000.0 + i, lambda deleted, r=recording_id: erased(r) if deleted else []
                    )
                    assert await stores[1].delete_recording(recording_id, evidence)

            await asyncio.gather(signs_in(), erases())
            records = await stores[0].audit_records()
            anchors = await stores[0].anchors()
            assert len(records) == 24 + len(ids)
            assert sorted(r.subject for r in records if r.action == "recording_erased") == ids
            assert verify(records, anchors, KEY).ok
            for recording_id in ids:
                assert await stores[0].get_recording(recording_id) is None
        finally:
            for store in stores:
                await store.close()


async def test_every_deletion_whose_record_cannot_be_written_deletes_nothing(
    storage: Storage,
) -> None:
    """The purges (sessions' records, recordings) and a subject's erasure, as the recording's
    erasure above: the deletion ran in the transaction, its record failed, nothing is gone."""
    await storage.add_org(OrgRecord("acme", "Acme", 0.0, retention_days=1))
    acme = of_org("acme")
    for session_id in ("s-old", "s-sub"):
        await storage.record_session_start(acme, session_id, 10.0, "shop")
        await storage.record_session_end(session_id, 20.0, "stopped", "alice")
    await storage.link_subject(acme, "sub-1", "s-sub", "p-1")
    await storage.add_recording(*owned(recording("r-old", "acme", 10.0)))
    await storage.end_recording("r-old", 20.0, "stopped")
    now = 3 * DAY
    log = AuditLog(storage, KEY, anchor_every=5)

    def failing_seal(record: AuditRecord) -> str:
        raise DiskFull

    def failing(entries: Callable[[T], Sequence[Entry]]) -> Evidence[T]:
        return dataclasses.replace(log.evidence(now, entries), seal=failing_seal)

    def one(action: str) -> Callable[[object], Sequence[Entry]]:
        return lambda result: [Entry(action, "acme", "server", "", {"what": repr(result)})]

    with pytest.raises(DiskFull):
        await storage.purge_expired(now, failing(one("sessions_expired")))
    with pytest.raises(DiskFull):
        await storage.purge_recordings(now, failing(one("recording_expired")))
    with pytest.raises(DiskFull):
        await storage.erase_subject(acme, "sub-1", ["s-sub"], failing(one("subject_erased")))
    for session_id in ("s-old", "s-sub"):
        assert await storage.get_session(session_id) is not None
    assert await storage.subject_sessions(acme, "sub-1") == [("s-sub", "p-1")]
    assert await storage.get_recording("r-old") is not None
    assert await storage.audit_records() == []
    # With records that can be written, each goes with its record.
    expired = await storage.purge_expired(now, log.evidence(now, one("sessions_expired")))
    assert sorted(expired) == [("acme", "s-old"), ("acme", "s-sub")]
    purged = await storage.purge_recordings(now, log.evidence(now, one("recording_expired")))
    assert [r.recording_id for r in purged] == ["r-old"]
    actions = [r.action for r in await storage.audit_records()]
    assert actions == ["sessions_expired", "recording_expired"]
