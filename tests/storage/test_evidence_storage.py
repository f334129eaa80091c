"""A deletion and its audit records in one transaction (tandem.audit.Evidence), on both backends:
a record that cannot be written takes the deletion back with it, and deletions racing other
writers of the trail (no lock: a number taken meanwhile runs the whole transaction again) leave
one intact chain holding every record."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

import pytest

from tandem.audit import AuditLog, AuditRecord, Entry, verify
from tandem.storage.base import Storage
from tandem.storage.sql import SQLStorage
from tests.grants import owned
from tests.storage.conftest import PG_DSN, fresh_schema
from tests.storage.test_recordings_storage import recording

KEY = bytes(range(32))


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
