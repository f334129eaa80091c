"""The training policy's versions in storage (tandem.training). PostgreSQL: two servers (or two
requests) writing at one instant."""

from __future__ import annotations

import asyncio

import pytest

from tandem.exceptions import ConflictError
from tandem.storage.sql import SQLStorage
from tests.grants import of_org
from tests.storage.conftest import PG_DSN, fresh_schema, pg_connect


async def test_two_admins_publishing_at_one_instant_are_told_in_its_own_words() -> None:
    """Each publication reads the newest version and writes the next: two at one instant both
    chose the same number, and the second was refused with the database's words ("duplicate key
    value violates unique constraint ..."). The other one's write is held open here while this
    one reads, so the two meet for certain."""
    async with fresh_schema(migrated=True) as schema:
        store = await SQLStorage.connect(PG_DSN, schema=schema)
        other = await pg_connect(schema)
        try:
            first = await store.add_policy(of_org("default"), "Version two.", "ada", 1.0, 2)
            transaction = other.transaction()
            await transaction.start()
            await other.execute(
                "INSERT INTO training_policies (org_id, version, text, created_at, created_by)"
                " VALUES ('default', $1, 'Theirs.', 2.0, 'max')",
                first.version + 1,
            )
            mine = asyncio.create_task(store.add_policy(of_org("default"), "Mine.", "ada", 3.0, 2))
            while not await other.fetchval(  # mine waits on the other's row: the race is met
                "SELECT count(*) FROM pg_locks WHERE NOT granted"
                " AND pid IN (SELECT pid FROM pg_stat_activity WHERE datname = current_database())"
            ):
                await asyncio.sleep(0.01)  # polling a condition, not waiting a time
            await transaction.commit()
            with pytest.raises(ConflictError) as refused:
                await mine
            said = str(refused.value)
            assert said.startswith("another admin published a new version of the policy")
            assert "duplicate" not in said and "constraint" not in said
            latest = await store.latest_policy(of_org("default"))
            assert latest is not None and latest.text == "Theirs."
        finally:
            await other.close()
            await store.close()
