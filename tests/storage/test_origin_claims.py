"""Origins are held by verified sites only, on both backends: several organisations may
register an origin none of them proved (a squat blocks no one), one organisation has at most
one site per origin, and at most one verified site holds an origin server-wide, enforced by the
database itself. Revision 0010 brings an existing database there without losing a site or its
teams."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa

from tandem.exceptions import ConflictError, NotFoundError
from tandem.storage import migrations
from tandem.storage.base import OrgRecord, SiteRecord, Storage
from tandem.storage.sql import SQLStorage, _sqlite_hooks
from tests.grants import of_org, owned
from tests.storage.conftest import PG_DSN, pg_connect

BANK = "https://bank.example"


@pytest.fixture
async def organisations(storage: Storage) -> None:
    """Acme and Globex beside the default organisation."""
    for org_id in ("acme", "globex"):
        await storage.add_org(OrgRecord(org_id, org_id.title(), 0.0))


@pytest.mark.usefixtures("organisations")
async def test_unverified_registrations_of_one_origin_by_two_organisations_both_stand(
    storage: Storage,
) -> None:
    squat = SiteRecord("squat", "acme", BANK, "Squat", verified=False)
    owner = SiteRecord("bank", "default", BANK, "Bank", ("support",), verified=False)
    await storage.add_site(*owned(squat))
    await storage.add_site(*owned(owner))  # refused before: origins were unique server-wide
    assert await storage.site_for_origin(BANK) is None  # no unproved claim is ever found
    assert await storage.org_site_for_origin(of_org("acme"), BANK) == squat
    assert await storage.org_site_for_origin(of_org("default"), BANK) == owner


@pytest.mark.usefixtures("organisations")
async def test_one_organisation_has_one_site_per_origin(storage: Storage) -> None:
    await storage.add_site(*owned(SiteRecord("a", "acme", BANK, "A", verified=False)))
    with pytest.raises(ConflictError):
        await storage.add_site(*owned(SiteRecord("b", "acme", BANK, "B", verified=False)))
    with pytest.raises(ConflictError):
        await storage.add_site(*owned(SiteRecord("c", "acme", BANK, "C")))


@pytest.mark.usefixtures("organisations")
async def test_only_one_verified_site_holds_an_origin(storage: Storage) -> None:
    squat = SiteRecord("squat", "acme", BANK, "Squat", verified=False)
    owner = SiteRecord("bank", "default", BANK, "Bank", ("support",), verified=False)
    await storage.add_site(*owned(squat))
    await storage.add_site(*owned(owner))
    proved = dataclasses.replace(owner, verified=True)
    await storage.update_site(*owned(proved))
    assert await storage.site_for_origin(BANK) == proved
    # The database refuses a second holder, whoever asks: proving, or adding a verified site.
    with pytest.raises(ConflictError):
        await storage.update_site(*owned(dataclasses.replace(squat, verified=True)))
    with pytest.raises(ConflictError):
        await storage.add_site(*owned(SiteRecord("other", "globex", BANK, "O")))
    squat_now = await storage.get_site("squat")
    assert squat_now is not None and not squat_now.verified
    assert await storage.site_for_origin(BANK) == proved
    # An unproved claim by a third organisation still stands beside the holder.
    late = SiteRecord("late", "globex", BANK, "Late", verified=False)
    await storage.add_site(*owned(late))
    assert await storage.site_for_origin(BANK) == proved


@pytest.mark.usefixtures("organisations")
async def test_marking_a_site_verified_writes_only_its_flag(storage: Storage) -> None:
    """A proof marks the site as it is now, not as it was read before the proof (whose fetch
    takes seconds); a second holder is refused, and a site whose origin changed (deleted and
    registered again) is not marked for the origin proved."""
    squat = SiteRecord("squat", "acme", BANK, "Squat", verified=False)
    owner = SiteRecord("bank", "default", BANK, "Bank", ("support",), verified=False)
    await storage.add_site(*owned(squat))
    await storage.add_site(*owned(owner))
    changed = dataclasses.replace(owner, teams=(), name="Bank 2")
    await storage.update_site(*owned(changed))  # while the proof was fetched
    marked = await storage.mark_site_verified(of_org("default"), "bank", BANK)
    assert marked == dataclasses.replace(changed, verified=True)
    assert await storage.site_for_origin(BANK) == marked
    with pytest.raises(ConflictError):
        await storage.mark_site_verified(of_org("acme"), "squat", BANK)
    with pytest.raises(NotFoundError):
        await storage.mark_site_verified(of_org("acme"), "bank", BANK)  # not its site
    with pytest.raises(NotFoundError):
        await storage.mark_site_verified(of_org("acme"), "squat", "https://other.example")
    squat_now = await storage.get_site("squat")
    assert squat_now is not None and not squat_now.verified


def _database_at_0009_rows() -> list[str]:
    return [
        "INSERT INTO orgs (org_id, name, created_at, retention_days) VALUES"
        " ('acme', 'Acme', 0, 30)",
        "INSERT INTO teams (org_id, team) VALUES ('acme', 'claims'), ('acme', 'web')",
        "INSERT INTO sites (site_id, org_id, origin, name, verified) VALUES"
        " ('shop', 'acme', 'https://shop.example', 'Shop', {true}),"
        " ('pending', 'acme', 'https://pending.example', 'Pending', {false})",
        "INSERT INTO site_teams (site_id, org_id, team) VALUES ('shop', 'acme', 'claims'),"
        " ('shop', 'acme', 'web'), ('pending', 'acme', 'claims')",
    ]


async def _fill_at_0009(engine: sa.ext.asyncio.AsyncEngine, postgres: bool) -> None:
    true, false = ("true", "false") if postgres else ("1", "0")
    async with engine.begin() as db:
        await db.run_sync(migrations.upgrade, "0009")
        assert await db.run_sync(migrations.current_revision) == "0009"
        for statement in _database_at_0009_rows():
            await db.exec_driver_sql(statement.format(true=true, false=false))
    await engine.dispose()


async def _check_upgraded(storage: SQLStorage) -> None:
    assert await storage.revision() == migrations.head_revision()
    shop, pending, demo = [await storage.get_site(i) for i in ("shop", "pending", "demo")]
    assert shop == SiteRecord("shop", "acme", "https://shop.example", "Shop", ("claims", "web"))
    assert pending == SiteRecord(
        "pending", "acme", "https://pending.example", "Pending", ("claims",), verified=False
    )
    assert demo is not None and demo.teams == ("support",) and demo.verified
    # The new rules hold on the upgraded data: another organisation may register the origin
    # Acme has not proved (refused before), never hold the one it proved.
    assert await storage.site_for_origin("https://pending.example") is None
    assert await storage.site_for_origin("https://shop.example") == shop
    other = SiteRecord("mine", "default", "https://pending.example", "Mine", verified=False)
    await storage.add_site(*owned(other))
    with pytest.raises(ConflictError):
        await storage.add_site(*owned(SiteRecord("x", "default", "https://shop.example", "X")))
    with pytest.raises(ConflictError):
        await storage.add_site(
            *owned(SiteRecord("y", "acme", "https://pending.example", "Y", verified=False))
        )
    # The rebuilt table is still the parent of its teams' links: they go with their site.
    assert await storage.delete_site(of_org("acme"), "shop")
    async with storage._engine.connect() as db:
        links = await db.execute(sa.text("SELECT site_id, team FROM site_teams ORDER BY 1, 2"))
        assert links.all() == [("demo", "support"), ("pending", "claims")]


async def test_revision_0010_keeps_every_site_and_its_teams_on_sqlite(tmp_path: Path) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    path = tmp_path / "tandem.sqlite3"
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}", poolclass=sa.NullPool)
    _sqlite_hooks(engine, 1000)  # foreign keys on, as when Tandem upgrades: cascades fire
    await _fill_at_0009(engine, postgres=False)
    storage = await SQLStorage.open_sqlite(path)
    try:
        await _check_upgraded(storage)
    finally:
        await storage.close()


async def test_revision_0010_keeps_every_site_and_its_teams_on_postgres(pg_schema: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    async def connection() -> asyncpg.Connection:
        return await pg_connect(pg_schema)

    engine = create_async_engine(
        "postgresql+asyncpg://", async_creator=connection, poolclass=sa.NullPool
    )
    await _fill_at_0009(engine, postgres=True)
    storage = await SQLStorage.connect(PG_DSN, schema=pg_schema)
    try:
        await _check_upgraded(storage)
    finally:
        await storage.close()
