"""The PostgreSQL backend: several servers on one database, the guards of the schema, errors; and
a round trip of every Storage method on both backends (so they cannot drift apart)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from tandem.audit import RECORD_MACS, AuditLog, verify
from tandem.config import Settings
from tandem.exceptions import ConfigError, ConflictError, NotFoundError, UserExistsError
from tandem.storage import open_storage
from tandem.storage.base import LoginRecord, OrgRecord, SiteRecord, Storage, UserRecord
from tandem.storage.migrations import head_revision
from tandem.storage.migrations.legacy import NEWER_THAN_LEGACY
from tandem.storage.sql import SQLStorage, redact_dsn
from tests.conftest import tandem_in_process
from tests.grants import of_org, owned
from tests.storage.conftest import PG_DSN, pg_connect

KEY = bytes(range(32))

Servers = Callable[[], Awaitable[SQLStorage]]


@pytest.fixture
async def servers(migrated_schema: str) -> AsyncIterator[Servers]:
    """Start SQLStorages on one schema, each standing for one server of a cluster whose
    database is already migrated; all closed after. (Migrating is tested from an empty schema by
    the tests below that take ``pg_schema``, and from every earlier version by
    test_legacy_upgrade.)"""
    started: list[SQLStorage] = []

    async def start() -> SQLStorage:
        store = await SQLStorage.connect(PG_DSN, schema=migrated_schema)
        started.append(store)
        return store

    yield start
    for store in started:
        await store.close()


# Several servers on one database


async def test_concurrent_appends_from_two_servers_keep_one_valid_chain(servers: Servers) -> None:
    one, two = await servers(), await servers()
    logs = [AuditLog(one, KEY, anchor_every=7), AuditLog(two, KEY, anchor_every=7)]
    await asyncio.gather(
        *(
            logs[i % 2].record(
                1000.0 + i / 10, "sign_in", actor=f"user{i}", n=i, ip="::1", org="default"
            )
            for i in range(60)
        )
    )
    records, anchors = await two.audit_records(), await one.anchors()
    assert [r.seq for r in records] == list(range(1, 61))
    assert [a.seq for a in anchors] == [1, 7, 14, 21, 28, 35, 42, 49, 56]
    verdict = verify(records, anchors, KEY)
    assert verdict.ok, verdict.problem
    assert sorted(r.details["n"] for r in records) == list(range(60))  # type: ignore[type-var]


async def test_each_servers_shutdown_is_anchored_at_its_own_record(servers: Servers) -> None:
    # One server stops while the other keeps appending: its anchor is at its server_stopped
    # record, not at whatever record was the latest when it got round to anchoring.
    one, two = await servers(), await servers()
    stopping, busy = AuditLog(one, KEY, anchor_every=50), AuditLog(two, KEY, anchor_every=50)
    await asyncio.gather(
        stopping.record(1000.0, "server_stopped", actor="server", org="default"),
        *(busy.record(1000.0 + i, "sign_in", actor=f"user{i}", org="default") for i in range(20)),
        busy.record(1030.0, "server_stopped", actor="server", org="default"),
    )
    records, anchors = await one.audit_records(), await two.anchors()
    stops = [r.seq for r in records if r.action == "server_stopped"]
    assert len(stops) == 2 and set(stops) <= {a.seq for a in anchors}
    assert [a.seq for a in anchors] == sorted({1, *stops}), "nothing else is anchored"
    assert verify(records, anchors, KEY).ok


async def test_a_join_code_is_taken_exactly_once_across_servers(servers: Servers) -> None:
    one, two = await servers(), await servers()
    for round_ in range(5):
        await one.put_join_code(
            of_org("default"), f"digest{round_}", f"s{round_}", expires_at=100.0
        )
        takers = [one, two] * 10
        results = await asyncio.gather(
            *(s.take_join_code(of_org("default"), f"digest{round_}", 1.0) for s in takers)
        )
        won = [r for r in results if r is not None]
        assert [r.session_id for r in won] == [f"s{round_}"] and results.count(None) == 19


async def test_a_totp_step_and_a_recovery_code_work_once_across_servers(servers: Servers) -> None:
    one, two = await servers(), await servers()
    await one.add_user(
        *owned(UserRecord("u", "U", "agent", "h", 0.0, "sealed", 0, ("r1", "r2"), org_id="default"))
    )
    steps = await asyncio.gather(*(s.use_second_factor("u", 42, None) for s in [one, two] * 5))
    assert steps.count(True) == 1
    codes = await asyncio.gather(*(s.use_second_factor("u", None, "r1") for s in [two, one] * 5))
    assert codes.count(True) == 1
    user = await two.get_user("u")
    assert user is not None and (user.totp_last_step, user.recovery_codes) == (42, ("r2",))


async def test_servers_starting_together_migrate_once(pg_schema: str) -> None:
    started = await asyncio.gather(
        *(SQLStorage.connect(PG_DSN, schema=pg_schema) for _ in range(4)),
        return_exceptions=True,
    )
    stores = [s for s in started if isinstance(s, SQLStorage)]
    try:
        assert len(stores) == 4, started
        db = await pg_connect(pg_schema)
        try:
            versions = await db.fetch("SELECT version FROM tandem_schema_version")
            revisions = await db.fetch("SELECT version_num FROM alembic_version")
            orgs = await db.fetchval("SELECT count(*) FROM orgs")
        finally:
            await db.close()
        # The old counter is set past every old version: a Tandem from before refuses it.
        assert [row[0] for row in versions] == [NEWER_THAN_LEGACY]
        assert [row[0] for row in revisions] == [head_revision()]
        assert orgs == 1
        assert [s.site_id for s in await stores[3].all_sites()] == ["demo"]
    finally:
        for store in stores:
            await store.close()


async def test_a_migrated_schema_opens_on_the_pool_alone(
    migrated_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At every start but the first after an upgrade, the schema is found at the head on a pool
    # connection: the engine (Alembic's) never connects.
    engine_connections: list[object] = []
    real_connect = asyncpg.connect

    async def counted(*args: object, **kwargs: object) -> asyncpg.Connection:
        engine_connections.append(args)
        return await real_connect(*args, **kwargs)

    monkeypatch.setattr(asyncpg, "connect", counted)
    store = await SQLStorage.connect(PG_DSN, schema=migrated_schema)
    try:
        assert await store.list_teams(of_org("default")) == ["support"]
        assert engine_connections == []
        assert await store.revision() == head_revision()  # the engine still works when asked
        assert len(engine_connections) == 1
    finally:
        await store.close()


# The schema's guards


async def test_the_audit_log_refuses_update_delete_and_truncate(
    servers: Servers, migrated_schema: str
) -> None:
    store = await servers()
    await store.append_audit(of_org("default"), 1.0, "sign_in", "alice", "", {})
    db = await pg_connect(migrated_schema)
    try:
        for statement in (
            "UPDATE audit SET actor = 'mallory'",
            "DELETE FROM audit",
            "TRUNCATE audit",
        ):
            with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="append-only"):
                await db.execute(statement)
    finally:
        await db.close()
    assert [r.actor for r in await store.audit_records()] == ["alice"]


async def test_the_audit_anchors_refuse_truncate(servers: Servers, migrated_schema: str) -> None:
    store = await servers()
    log = AuditLog(store, KEY, anchor_every=5)
    for i in range(6):
        await log.record(1.0 + i, "sign_in", actor="alice", org="default")
    db = await pg_connect(migrated_schema)
    try:
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="append-only"):
            await db.execute("TRUNCATE audit_anchors")
    finally:
        await db.close()
    assert [a.seq for a in await store.anchors()] == [1, 5]


async def test_a_database_from_a_newer_version_is_refused(
    servers: Servers, migrated_schema: str
) -> None:
    await servers()
    db = await pg_connect(migrated_schema)
    try:
        await db.execute("UPDATE alembic_version SET version_num = 'from-the-future'")
    finally:
        await db.close()
    with pytest.raises(ConfigError, match="newer Tandem"):
        await SQLStorage.connect(PG_DSN, schema=migrated_schema)


async def test_a_database_from_before_alembic_but_newer_is_refused(pg_schema: str) -> None:
    db = await pg_connect(pg_schema)
    try:
        await db.execute("CREATE TABLE tandem_schema_version (version integer NOT NULL)")
        await db.execute("INSERT INTO tandem_schema_version VALUES (99)")
    finally:
        await db.close()
    with pytest.raises(ConfigError, match="newer Tandem"):
        await SQLStorage.connect(PG_DSN, schema=pg_schema)


async def test_a_schema_is_created_when_missing(pg_schema: str) -> None:
    inner = f"{pg_schema}_x"
    store = await SQLStorage.connect(PG_DSN, schema=inner)
    try:
        assert await store.list_teams(of_org("default")) == ["support"]
    finally:
        await store.close()
    db = await pg_connect()
    try:
        await db.execute(f'DROP SCHEMA "{inner}" CASCADE')
    finally:
        await db.close()


# Errors


async def test_an_unreachable_database_is_a_config_error_without_the_password() -> None:
    dsn = "postgresql://tandem:s3cret-pw@127.0.0.1:1/tandem?sslmode=disable&password=other-pw"
    with pytest.raises(ConfigError) as caught:
        await SQLStorage.connect(dsn)
    message = str(caught.value)
    assert "cannot connect" in message and "tandem@127.0.0.1:1/tandem" in message
    assert "s3cret-pw" not in message and "other-pw" not in message


async def test_a_missing_database_is_a_config_error(pg_schema: str) -> None:
    base = PG_DSN.rsplit("/", 1)[0]
    with pytest.raises(ConfigError, match="no_such_tandem_db"):
        await SQLStorage.connect(f"{base}/no_such_tandem_db")


def test_a_bad_schema_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="schema"):
        asyncio.run(SQLStorage.connect(PG_DSN, schema='x"; DROP TABLE users; --'))


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://u:pw@db:5432/t", "postgresql://u@db:5432/t"),
        ("postgres://u@db/t?sslmode=require", "postgres://u@db/t?sslmode=require"),
        ("postgresql://u:p%40ss@h1,h2/t?password=x&a=1", "postgresql://u@h1,h2/t?password=***&a=1"),
        ("postgresql://db", "postgresql://db"),
    ],
)
def test_dsns_are_shown_without_passwords(dsn: str, shown: str) -> None:
    assert redact_dsn(dsn) == shown


# Settings and open_storage


def test_the_database_url_comes_from_the_environment_and_must_be_postgres() -> None:
    settings = Settings.load(environ={"TANDEM_DATABASE_URL": "postgresql://u:pw@db/t"})
    assert settings.database_url == "postgresql://u:pw@db/t"
    assert "pw" not in repr(settings)
    assert Settings.load(environ={}).database_url is None
    explicit = Settings.load(environ={"TANDEM_DATABASE_URL": "postgres://a/b"}, database_url=None)
    assert explicit.database_url == "postgres://a/b"
    for bad in ("mysql://db/t", "db.example:5432", "sqlite:///x"):
        with pytest.raises(ConfigError, match="postgresql://"):
            Settings.load(environ={"TANDEM_DATABASE_URL": bad})


async def test_open_storage_picks_the_backend(tmp_path: Path, pg_schema: str) -> None:
    embedded = await open_storage(Settings.load(environ={}, data_dir=tmp_path))
    try:
        assert isinstance(embedded, SQLStorage)
    finally:
        await embedded.close()
    # asyncpg passes DSN parameters it does not know as server settings: search_path here.
    url = f"{PG_DSN}?search_path={pg_schema}"
    shared = await open_storage(Settings.load(environ={"TANDEM_DATABASE_URL": url}))
    try:
        assert isinstance(shared, SQLStorage)
        await shared.add_user(*owned(UserRecord("u", "U", "agent", "h", 0.0, org_id="default")))
    finally:
        await shared.close()
    db = await pg_connect()
    try:
        assert await db.fetchval(f'SELECT count(*) FROM "{pg_schema}".users') == 1
    finally:
        await db.close()


# `tandem audit verify` on a shared database (like tests/test_audit.py on SQLite)


def _verify(data_dir: Path, schema: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TANDEM_DATABASE_URL": f"{PG_DSN}?search_path={schema}"}
    return tandem_in_process("audit", "verify", "--data-dir", str(data_dir), env=env)


async def test_audit_verify_finds_a_rewritten_record(
    servers: Servers, migrated_schema: str, tmp_path: Path
) -> None:
    store = await servers()
    log = AuditLog(store, KEY, anchor_every=5)
    for i in range(12):
        await log.record(1000.0 + i, "sign_in", actor=f"user{i}", ip="127.0.0.1", org="default")
    (tmp_path / "audit.key").write_text(KEY.hex())
    result = await asyncio.to_thread(_verify, tmp_path, migrated_schema)
    assert result.returncode == 0, result.stderr
    assert "intact: 12 records, 3 anchors, 0 checkpoints checked" in result.stdout

    db = await pg_connect(migrated_schema)  # an attacker with database rights drops the guard first
    try:
        await db.execute("DROP TRIGGER audit_append_only ON audit")
        await db.execute("UPDATE audit SET actor = 'nobody' WHERE seq = 3")
    finally:
        await db.close()
    result = await asyncio.to_thread(_verify, tmp_path, migrated_schema)
    assert result.returncode == 1
    assert "BROKEN at record 3" in result.stderr


# Every Storage method, on both backends


async def test_users_round_trip(storage: Storage) -> None:
    user = UserRecord(
        "zoe",
        "Zoë",
        "agent",
        "hash",
        12.5,
        "sealed",
        7,
        ("a", "b"),
        mfa_exempt=True,
        org_id="default",
    )
    await storage.add_user(*owned(user))
    await storage.add_user(*owned(UserRecord("Adam", "A", "admin", "h", 1.0, org_id="default")))
    await storage.add_user(*owned(UserRecord("bea", "B", "agent", "h", 1.0, org_id="default")))
    with pytest.raises(UserExistsError):
        await storage.add_user(*owned(user))
    assert await storage.get_user("zoe") == user
    assert await storage.get_user("nobody") is None
    assert await storage.count_users() == 3
    assert [u.username for u in await storage.list_users(of_org("default"))] == [
        "Adam",
        "bea",
        "zoe",
    ]
    await storage.add_team(of_org("default"), "Billing")
    await storage.set_user_teams(of_org("default"), "zoe", ("support", "Billing", "support"))
    assert await storage.update_user(
        of_org("default"), "zoe", role="supervisor", display_name="Zoe"
    )
    await storage.set_pending_second_factor("zoe", "pending")
    got = await storage.get_user("zoe")
    assert got is not None
    assert (got.role, got.display_name, got.teams, got.pending_totp) == (
        "supervisor",
        "Zoe",
        ("Billing", "support"),
        "pending",
    )
    assert await storage.set_second_factor(of_org("default"), "zoe", "new-seed", ("c",))
    got = await storage.get_user("zoe")
    assert got is not None
    assert (got.totp_secret, got.totp_last_step, got.recovery_codes, got.pending_totp) == (
        "new-seed",
        0,
        ("c",),
        None,
    )
    assert not await storage.use_second_factor("zoe", 0, None)  # not newer than the last
    assert await storage.use_second_factor("zoe", 0, "c")  # falls back to the recovery code
    assert not await storage.use_second_factor("zoe", None, "c")
    assert await storage.use_second_factor("zoe", 5, None)
    assert not await storage.use_second_factor("nobody", 5, "c")
    assert await storage.delete_user(of_org("default"), "bea")
    assert not await storage.delete_user(of_org("default"), "bea")


async def test_sign_ins_round_trip(storage: Storage) -> None:
    await storage.add_user(*owned(UserRecord("u", "U", "agent", "h", 0.0, org_id="default")))
    await storage.add_login(LoginRecord("t1", "u", 100.0, 1.0, "oidc"))
    await storage.add_login(LoginRecord("t2", "u", 10.0))
    assert await storage.get_login("t1") == LoginRecord("t1", "u", 100.0, 1.0, "oidc")
    await storage.touch_login("t1", 50.0)
    login = await storage.get_login("t1")
    assert login is not None and login.last_seen == 50.0
    await storage.purge_expired(now=20.0)
    assert await storage.get_login("t2") is None
    await storage.delete_login("t1")
    assert await storage.get_login("t1") is None
    await storage.add_login(LoginRecord("t3", "u", 100.0))
    await storage.add_login(LoginRecord("t4", "u", 100.0))
    assert await storage.delete_logins_of(of_org("acme"), "u") == 0  # another organisation's
    assert await storage.delete_logins_of(of_org("default"), "u") == 2
    await storage.add_login(LoginRecord("t5", "u", 100.0))
    await storage.delete_user(of_org("default"), "u")
    assert await storage.get_login("t5") is None  # a deleted user's sign-ins go with it


async def test_enabling_a_second_factor_ends_the_sign_ins_and_opens_one_in_one_step(
    storage: Storage,
) -> None:
    for name in ("u", "v"):
        await storage.add_user(*owned(UserRecord(name, name, "agent", "h", 0.0, org_id="default")))
    for token, name in (("u1", "u"), ("u2", "u"), ("v1", "v")):
        await storage.add_login(LoginRecord(token, name, 100.0))
    await storage.set_pending_second_factor("u", "seed")
    new = LoginRecord("u3", "u", 100.0, 1.0, "password+totp")
    # Only the seed still pending: one replaced meanwhile writes nothing.
    assert not await storage.enable_second_factor("u", "other", ("c",), 7, new)
    assert await storage.get_login("u1") is not None and await storage.get_login("u3") is None
    assert await storage.enable_second_factor("u", "seed", ("c", "d"), 7, new)
    got = await storage.get_user("u")
    assert got is not None
    assert (got.totp_secret, got.totp_last_step, got.recovery_codes, got.pending_totp) == (
        "seed",
        7,
        ("c", "d"),
        None,
    )
    assert await storage.get_login("u1") is None and await storage.get_login("u2") is None
    assert await storage.get_login("u3") == new
    assert await storage.get_login("v1") is not None  # another account's sign-in stays
    assert not await storage.enable_second_factor("u", "seed", ("e",), 8, new)  # spent


async def test_enabling_a_second_factor_after_a_password_change_writes_nothing(
    storage: Storage,
) -> None:
    """An enrolment checked before the password changed (the attacker's, with the old
    password, whose sign-in the change ended) neither turns its seed on nor opens a sign-in."""
    await storage.add_user(*owned(UserRecord("u", "u", "agent", "old", 0.0, org_id="default")))
    await storage.set_pending_second_factor("u", "attackers-seed")
    await storage.set_password(of_org("default"), "u", "new", False, at=1.0, chosen_by=None)
    new = LoginRecord("u1", "u", 100.0, 1.0, "password+totp")
    assert not await storage.enable_second_factor("u", "attackers-seed", ("c",), 7, new, "old")
    got = await storage.get_user("u")
    assert got is not None and got.totp_secret is None
    assert await storage.get_login("u1") is None
    assert await storage.enable_second_factor("u", "attackers-seed", ("c",), 7, new, "new")


async def test_a_new_password_ends_every_sign_in_of_its_account_and_no_other(
    storage: Storage,
) -> None:
    for name in ("u", "v"):
        await storage.add_user(*owned(UserRecord(name, name, "agent", "h", 0.0, org_id="default")))
    for token, name in (("u1", "u"), ("u2", "u"), ("v1", "v")):
        await storage.add_login(LoginRecord(token, name, 100.0))
    assert (
        await storage.set_password(of_org("default"), "u", "h2", True, at=1.0, chosen_by=None) == 2
    )
    assert await storage.get_login("u1") is None and await storage.get_login("u2") is None
    assert await storage.get_login("v1") is not None
    changed = await storage.get_user("u")
    assert changed is not None and changed.password_hash == "h2"
    assert changed.password_change_required


async def test_single_sign_on_state_round_trips(storage: Storage) -> None:
    await storage.add_user(*owned(UserRecord("u", "U", "agent", "h", 0.0, org_id="default")))
    assert await storage.user_for_oidc_identity('["default","https://i","sub-1"]') is None
    assert await storage.set_oidc_identity(
        of_org("default"), "u", '["default","https://i","sub-1"]'
    )
    found = await storage.user_for_oidc_identity('["default","https://i","sub-1"]')
    assert found is not None and found.username == "u"
    assert found.oidc_identity == '["default","https://i","sub-1"]'
    assert await storage.set_oidc_identity(of_org("default"), "u", None)
    assert await storage.user_for_oidc_identity('["default","https://i","sub-1"]') is None
    await storage.set_password(of_org("default"), "u", "h2", True, at=1.0, chosen_by=None)
    changed = await storage.get_user("u")
    assert changed is not None and changed.password_hash == "h2"
    assert changed.password_change_required
    assert await storage.get_oidc(of_org("default")) is None
    await storage.set_oidc(of_org("default"), "sealed-config")
    assert await storage.get_oidc(of_org("default")) == "sealed-config"
    await storage.set_oidc(of_org("default"), None)
    assert await storage.get_oidc(of_org("default")) is None
    await storage.put_oidc_pending(of_org("default"), "state", "sealed", 100.0)
    await storage.put_oidc_pending(of_org("default"), "old", "sealed", 10.0)
    await storage.put_oidc_pending(of_org("default"), "late", "sealed", 10.0)
    assert await storage.take_oidc_pending("state", now=1.0) == ("default", "sealed")
    assert await storage.take_oidc_pending("state", now=1.0) is None
    assert await storage.take_oidc_pending("late", now=10.0) is None  # expired
    await storage.purge_expired(now=20.0)
    assert await storage.take_oidc_pending("old", now=1.0) is None


async def test_orgs_teams_and_sites_round_trip(storage: Storage) -> None:
    await storage.add_org(OrgRecord("acme", "Acme", 5.0, 7))
    with pytest.raises(ConflictError):
        await storage.add_org(OrgRecord("acme", "Again", 5.0))
    await storage.update_org(*owned(OrgRecord("acme", "Acme Bank", 5.0, 90)))
    assert await storage.get_org(of_org("acme")) == OrgRecord("acme", "Acme Bank", 5.0, 90)
    assert await storage.get_org(of_org("nobody")) is None
    await storage.add_team(of_org("acme"), "claims")
    await storage.add_team(of_org("acme"), "Alpha")
    with pytest.raises(ConflictError):
        await storage.add_team(of_org("acme"), "claims")
    assert await storage.list_teams(of_org("acme")) == ["Alpha", "claims"]
    assert await storage.set_team_policy(of_org("acme"), "claims", '{"mask": []}')
    assert not await storage.set_team_policy(of_org("acme"), "nobody", "{}")
    assert await storage.team_policies(of_org("acme"), ("Alpha", "claims", "nobody")) == {
        "claims": '{"mask": []}'
    }
    site = SiteRecord("a", "acme", "https://a.example", "A", ("claims",), '{"p": 1}', "key", True)
    await storage.add_site(*owned(site))
    assert await storage.get_site("a") == site
    assert await storage.site_for_origin("https://a.example") == site
    moved = SiteRecord("a", "acme", "https://b.example", "B", ("Alpha", "claims"))
    await storage.update_site(*owned(moved))
    assert await storage.get_site("a") == moved
    assert await storage.site_for_origin("https://a.example") is None
    with pytest.raises(ConflictError):
        await storage.update_site(
            *owned(SiteRecord("demo", "default", "https://b.example", "Demo"))
        )
    assert [s.site_id for s in await storage.all_sites()] == ["a", "demo"]
    assert [s.site_id for s in await storage.list_sites(of_org("acme"))] == ["a"]
    assert not await storage.delete_team(of_org("acme"), "nobody")
    assert await storage.delete_team(of_org("acme"), "claims")
    assert await storage.team_policies(of_org("acme"), ("claims",)) == {}
    acme = of_org("acme")
    assert await storage.delete_site(acme, "a") and not await storage.delete_site(acme, "a")
    await storage.delete_join_codes("none")  # harmless


async def test_sessions_and_join_codes_round_trip(storage: Storage) -> None:
    await storage.record_session_start(of_org("default"), "s1", 1.5, "demo")
    record = await storage.get_session("s1")
    assert record is not None
    assert (record.created_at, record.ended_at, record.org_id, record.site_id) == (
        1.5,
        None,
        "default",
        "demo",
    )
    await storage.put_join_code(of_org("default"), "d1", "s1", 100.0)
    await storage.put_join_code(of_org("default"), "d2", "s1", 100.0)
    await storage.delete_join_codes("s1")
    assert await storage.take_join_code(of_org("default"), "d1", 1.0) is None
    assert await storage.take_join_code(of_org("default"), "d2", 1.0) is None


async def test_the_audit_chain_and_anchors_round_trip(storage: Storage) -> None:
    log = AuditLog(storage, KEY, anchor_every=3)
    details: dict[str, object] = {"b": [1, 2.5, None], "a": {"x": "ü"}, "big": 2**53 + 1}
    for i in range(7):
        await log.record(1000.0 + i / 3, "site_added", actor="ada", org="acme", **details)
    records = await storage.audit_records()
    assert [r.details for r in records] == [details] * 7
    assert [r.at for r in records] == [1000.0 + i / 3 for i in range(7)]
    assert [r.seq for r in await storage.audit_records(since=1001.0)] == [4, 5, 6, 7]
    anchors = await storage.anchors()
    assert [(a.seq, a.hash, a.version, a.every, a.macs_from) for a in anchors] == [
        (1, records[0].hash, RECORD_MACS, 3, 1),
        (3, records[2].hash, RECORD_MACS, 3, 1),
        (6, records[5].hash, RECORD_MACS, 3, 1),
    ]
    assert all(r.mac is not None and len(r.mac) == 64 for r in records)
    assert [(a.prev_seq, a.prev_mac) for a in anchors] == [
        (0, ""),
        (1, anchors[0].mac),
        (3, anchors[1].mac),
    ]
    assert verify(records, anchors, KEY).ok


async def test_a_password_change_over_a_password_changed_since_writes_nothing(
    storage: Storage,
) -> None:
    """The owner's change names the hash it checked the current password against: once another
    change replaced it (checked against the same one at the same moment), it writes nothing and
    ends no sign-in."""
    await storage.add_user(*owned(UserRecord("u", "u", "agent", "h0", 0.0, org_id="default")))
    assert (
        await storage.set_password(
            of_org("default"), "u", "h1", False, at=1.0, chosen_by=None, replacing="h0"
        )
        == 0
    )
    await storage.add_login(LoginRecord("u1", "u", 100.0))
    with pytest.raises(ConflictError):
        await storage.set_password(
            of_org("default"), "u", "h2", False, at=1.0, chosen_by=None, replacing="h0"
        )
    got = await storage.get_user("u")
    assert got is not None and got.password_hash == "h1"
    assert await storage.get_login("u1") is not None
    with pytest.raises(NotFoundError):
        await storage.set_password(
            of_org("default"), "nobody", "h2", False, at=1.0, chosen_by=None, replacing="h0"
        )


async def test_the_pool_holds_database_pool_size_connections(
    migrated_schema: str, tmp_path: Path
) -> None:
    """The pool had ten connections whatever the settings: its size is ``database_pool_size``
    now (validated against the readers that may each hold one: tests/test_config.py)."""
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"{PG_DSN}?search_path={migrated_schema}",
        database_pool_size=3,
        max_recording_downloads=1,
        recheck_concurrency=2,
    )
    storage = await open_storage(settings)
    try:
        assert storage._pool.get_max_size() == 3
    finally:
        await storage.close()
