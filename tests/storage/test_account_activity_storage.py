"""What an agent is shown of its own account at sign-in (tandem.auth.account_activity), read from
the audit trail on both backends: its own sign-ins and the changes others made to it, within the
window, newest first, never another account's or another organisation's."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tandem import auth
from tandem.access import Principal
from tandem.audit import AuditLog
from tandem.storage import migrations
from tandem.storage.base import OrgRecord, Storage, UserRecord
from tandem.storage.sql import SQLStorage
from tests.conftest import migrated_sqlite
from tests.grants import of_org, owned
from tests.storage.conftest import PG_DSN, fresh_schema, pg_connect

KEY = b"k" * 32
DAY = 86400.0


def agent(username: str, org: str = "default") -> Principal:
    return Principal(username, username.capitalize(), "agent", org, frozenset())


async def account(storage: Storage, username: str, made: float = 0.0) -> None:
    await storage.add_user(
        *owned(UserRecord(username, "A", "agent", "hash", made, org_id="default"))
    )


async def test_an_account_is_shown_its_sign_ins_and_the_changes_made_to_it(
    storage: Storage,
) -> None:
    await storage.add_org(OrgRecord("acme", "Acme", 0.0))
    log = AuditLog(storage, KEY)
    await account(storage, "alice")
    now = 100 * DAY
    # Older than the window: not shown.
    await log.record(now - 40 * DAY, "mfa_reset", actor="ada", org="default", subject="alice")
    # The takeover an admin can make: bind the agent to a provider account of its own, sign
    # in through it, unbind.
    await log.record(
        now - 3 * DAY, "sso_identity_bound", actor="ada", org="default", subject="alice"
    )
    await log.record(
        now - 3 * DAY + 60, "sign_in", actor="alice", org="default", method="oidc", ip="10.9.9.9"
    )
    await log.record(
        now - 3 * DAY + 120, "sso_identity_removed", actor="ada", org="default", subject="alice"
    )
    # Not alice's: another account's sign-in, a change to another account, a record naming
    # alice as a subject of an action that is not a change to her account, and another
    # organisation's account of the same name would be another's (names are unique: the
    # organisation is checked all the same).
    await log.record(now - DAY, "sign_in", actor="sam", org="default", ip="10.0.0.2")
    await log.record(now - DAY, "password_reset", actor="ada", org="default", subject="sam")
    await log.record(now - DAY, "session_created", actor="server", org="default", subject="alice")
    await log.record(now - DAY, "password_reset", actor="mia", org="acme", subject="alice")
    await log.record(now - 60, "sign_in", actor="alice", org="default", ip="10.0.0.1")

    shown = await auth.account_activity(storage, agent("alice"), now, 30)
    assert [(r.action, r.actor, r.details.get("ip")) for r in shown] == [
        ("sign_in", "alice", "10.0.0.1"),
        ("sso_identity_removed", "ada", None),
        ("sign_in", "alice", "10.9.9.9"),
        ("sso_identity_bound", "ada", None),
    ]
    assert [r.action for r in await auth.account_activity(storage, agent("alice"), now, 50)][
        -1
    ] == "mfa_reset"


async def test_an_account_is_shown_its_newest_records_up_to_the_most(storage: Storage) -> None:
    log = AuditLog(storage, KEY)
    await account(storage, "alice")
    for i in range(auth.MAX_ACCOUNT_ACTIVITY + 5):
        await log.record(float(i), "sign_in", actor="alice", org="default", ip=f"10.0.0.{i}")
    shown = await auth.account_activity(storage, agent("alice"), 1000.0, 30)
    assert len(shown) == auth.MAX_ACCOUNT_ACTIVITY
    assert shown[0].details["ip"] == f"10.0.0.{auth.MAX_ACCOUNT_ACTIVITY + 4}"


async def test_a_flood_of_sign_ins_does_not_push_a_change_out_of_the_list(storage: Storage) -> None:
    """Whoever took the account over (bound it to a provider account of its own, and kept the
    binding) signs in again and again from the owner's own network, to push the binding out of
    the newest records: each kind has its own limit."""
    log = AuditLog(storage, KEY)
    await account(storage, "alice")
    await log.record(1.0, "sso_identity_bound", actor="ada", org="default", subject="alice")
    for i in range(2 * auth.MAX_ACCOUNT_ACTIVITY):
        await log.record(2.0 + i, "sign_in", actor="alice", org="default", method="oidc")
    shown = await auth.account_activity(storage, agent("alice"), 1000.0, 30)
    assert len(shown) == auth.MAX_ACCOUNT_ACTIVITY + 1
    assert (shown[-1].action, shown[-1].actor) == ("sso_identity_bound", "ada")


async def test_a_takeover_made_while_the_owner_was_away_does_not_age_out_of_the_list(
    storage: Storage,
) -> None:
    """The admin binds the agent on holiday to a provider account of its own and signs in as the
    agent; the agent comes back after longer than the window: the sign-in before this one is
    shown however old, with the changes of the window before it."""
    log = AuditLog(storage, KEY)
    await account(storage, "alice")
    await log.record(0.0, "sign_in", actor="alice", org="default", ip="10.0.0.1")  # her last
    await log.record(DAY, "sso_identity_bound", actor="ada", org="default", subject="alice")
    await log.record(
        DAY + 60, "sign_in", actor="alice", org="default", method="oidc", ip="10.0.0.1"
    )
    now = 60 * DAY
    await log.record(now, "sign_in", actor="alice", org="default", ip="10.0.0.1")  # back
    shown = await auth.account_activity(storage, agent("alice"), now, 30)
    assert [(r.action, r.details.get("method")) for r in shown] == [
        ("sign_in", None),
        ("sign_in", "oidc"),
        ("sso_identity_bound", None),
    ]
    # An account with no sign-in before this one's: nothing before it.
    await account(storage, "bob")
    assert await auth.account_activity(storage, agent("bob"), now, 30) == []


async def test_a_name_given_again_is_not_shown_its_former_holders_activity(
    storage: Storage,
) -> None:
    log = AuditLog(storage, KEY)
    await account(storage, "alice")
    await log.record(DAY, "sign_in", actor="alice", org="default", ip="10.1.1.1")
    await log.record(2 * DAY, "mfa_reset", actor="ada", org="default", subject="alice")
    assert await storage.delete_user(of_org("default"), "alice")
    await account(storage, "alice", made=3 * DAY)  # a new hire, given the name
    await log.record(4 * DAY, "sign_in", actor="alice", org="default", ip="10.2.2.2")
    shown = await auth.account_activity(storage, agent("alice"), 4 * DAY, 30)
    assert [(r.action, r.details.get("ip")) for r in shown] == [("sign_in", "10.2.2.2")]
    # Back after longer than the window: still nothing of the former holder's.
    await log.record(50 * DAY, "sign_in", actor="alice", org="default", ip="10.2.2.2")
    shown = await auth.account_activity(storage, agent("alice"), 50 * DAY, 30)
    assert [r.details.get("ip") for r in shown] == ["10.2.2.2", "10.2.2.2"]


async def test_a_flood_of_sign_ins_does_not_push_the_accounts_own_changes_out(
    storage: Storage,
) -> None:
    """Whoever holds the account (its password phished with a code, or set by an admin's reset)
    enrols an authenticator of its own, makes new recovery codes and changes the password, then
    signs in again and again from the owner's own network: the sign-ins are what was done in the
    account's name as much as those changes, and pushed them out of the newest 50 of that kind.
    Each action has its own limit."""
    log = AuditLog(storage, KEY)
    await account(storage, "alice")
    await log.record(1.0, "second_factor_failed", actor="alice", org="default", ip="10.6.6.6")
    await log.record(2.0, "sign_in_other_client", actor="alice", org="default", ip="10.6.6.6")
    await log.record(3.0, "mfa_enrolled", actor="alice", org="default", ip="10.6.6.6")
    await log.record(4.0, "recovery_codes_renewed", actor="alice", org="default", ip="10.6.6.6")
    await log.record(5.0, "password_changed", actor="alice", org="default")
    for i in range(2 * auth.MAX_ACCOUNT_ACTIVITY):
        await log.record(10.0 + i, "sign_in", actor="alice", org="default", ip="10.0.0.1")
    shown = await auth.account_activity(storage, agent("alice"), 1000.0, 30)
    assert [r.action for r in shown] == ["sign_in"] * auth.MAX_ACCOUNT_ACTIVITY + [
        "password_changed",
        "recovery_codes_renewed",
        "mfa_enrolled",
        "sign_in_other_client",
        "second_factor_failed",
    ]


async def test_a_flood_of_password_changes_does_not_push_a_claim_out(storage: Storage) -> None:
    """The admin who chose the temporary password claims it (its record names the chooser), then
    changes the password again and again in the account's name: the claim stays among the
    newest, counted apart from the other changes; as does one whose chooser no version kept. A
    value that spells the detail's name is no claim."""
    log = AuditLog(storage, KEY)
    await account(storage, "alice")
    await log.record(
        1.0, "password_changed", actor="alice", org="default", temporary_chosen_by=None
    )
    await log.record(
        2.0, "password_changed", actor="alice", org="default", temporary_chosen_by="ada"
    )
    for i in range(2 * auth.MAX_ACCOUNT_ACTIVITY):
        ip = '"temporary_chosen_by"' if i % 2 else "10.0.0.1"
        await log.record(10.0 + i, "password_changed", actor="alice", org="default", ip=ip)
    shown = await auth.account_activity(storage, agent("alice"), 1000.0, 30)
    assert len(shown) == auth.MAX_ACCOUNT_ACTIVITY + 2
    assert [r.details for r in shown[-2:]] == [
        {"temporary_chosen_by": "ada"},
        {"temporary_chosen_by": None},
    ]


async def test_a_flood_of_one_change_does_not_push_another_change_out(storage: Storage) -> None:
    """An admin resets the agent's password and signs in as the agent, then changes the agent's
    role back and forth (or disables and enables it) until the reset is older than the newest 50
    changes: the owner was shown role changes, not the reset that let the admin in."""
    log = AuditLog(storage, KEY)
    await account(storage, "alice")
    await log.record(1.0, "password_reset", actor="ada", org="default", subject="alice")
    await log.record(2.0, "mfa_reset", actor="ada", org="default", subject="alice")
    for i in range(2 * auth.MAX_ACCOUNT_ACTIVITY):
        await log.record(10.0 + i, "role_changed", actor="ada", org="default", subject="alice")
    shown = await auth.account_activity(storage, agent("alice"), 1000.0, 30)
    assert [r.action for r in shown][-3:] == ["role_changed", "mfa_reset", "password_reset"]
    assert sum(r.action == "role_changed" for r in shown) == auth.MAX_ACCOUNT_ACTIVITY


AUDIT_COLUMNS = [
    *("seq", "at", "action", "actor", "org", "subject", "details", "prev_hash", "hash", "org_seq")
]
ROWS_BEFORE_0017 = [
    (1, 10.0, "sign_in", "alice", "default", "", '{"ip": "10.0.0.1"}', "", "h1", 1),
    (2, 20.0, "mfa_reset", "ada", "default", "alice", "{}", "h1", "h2", 2),
]


@pytest.mark.parametrize("built_beforehand", [False, True])
async def test_revision_0017_indexes_a_0016_trail_and_takes_indexes_built_beforehand_on_postgres(
    built_beforehand: bool,
) -> None:
    """Upgrading from 0016 with records: they are read by account. Building an index blocks
    every write to the audit table meanwhile (on PostgreSQL, a few seconds a million records:
    the other servers of a rolling upgrade wait with their sign-ins), so an operator with a
    large trail builds them beforehand, CONCURRENTLY, under their names (docs/operations.md):
    the revision then takes them as they are. It stopped with 'relation already exists'."""
    async with fresh_schema(migrated=True) as schema:
        admin = await pg_connect(schema)
        try:
            await admin.execute("DROP INDEX audit_org_actor; DROP INDEX audit_org_subject")
            await admin.execute("UPDATE alembic_version SET version_num = '0016'")
            await admin.copy_records_to_table(
                "audit",
                records=ROWS_BEFORE_0017,
                columns=AUDIT_COLUMNS,
                schema_name=schema,
            )
            if built_beforehand:
                for name, column in (
                    ("audit_org_actor", "actor"),
                    ("audit_org_subject", "subject"),
                ):
                    await admin.execute(
                        f"CREATE INDEX CONCURRENTLY {name} ON audit (org, {column}, at)"
                    )
        finally:
            await admin.close()
        store = await SQLStorage.connect(PG_DSN, schema=schema)
        try:
            assert await store.revision() == migrations.head_revision()
            await account(store, "alice")
            shown = await auth.account_activity(store, agent("alice"), 30.0, 30)
            assert [(r.action, r.actor) for r in shown] == [
                ("mfa_reset", "ada"),
                ("sign_in", "alice"),
            ]
        finally:
            await store.close()
        admin = await pg_connect(schema)
        try:
            indexes = await admin.fetch(
                "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'audit'",
                schema,
            )
        finally:
            await admin.close()
        assert {"audit_org_actor", "audit_org_subject"} <= {row[0] for row in indexes}


@pytest.mark.parametrize("built_beforehand", [False, True])
async def test_revision_0017_indexes_a_0016_trail_and_takes_indexes_built_beforehand_on_sqlite(
    tmp_path: Path, built_beforehand: bool
) -> None:
    path = migrated_sqlite(tmp_path / "db.sqlite3")
    db = sqlite3.connect(path)
    db.executescript(
        "DROP INDEX audit_org_actor; DROP INDEX audit_org_subject;"
        " UPDATE alembic_version SET version_num = '0016';"
    )
    db.executemany(
        "INSERT INTO audit (seq, at, action, actor, org, subject, details, prev_hash, hash,"
        " org_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ROWS_BEFORE_0017,
    )
    if built_beforehand:
        db.execute("CREATE INDEX audit_org_actor ON audit (org, actor, at)")
    db.commit()
    db.close()
    store = await SQLStorage.open_sqlite(path)
    try:
        assert await store.revision() == migrations.head_revision()
        await account(store, "alice")
        shown = await auth.account_activity(store, agent("alice"), 30.0, 30)
        assert [(r.action, r.actor) for r in shown] == [("mfa_reset", "ada"), ("sign_in", "alice")]
    finally:
        await store.close()
    db = sqlite3.connect(path)
    plan = db.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM audit WHERE org = 'default' AND actor = 'alice'"
        " AND at >= 0 ORDER BY org_seq DESC LIMIT 50"
    ).fetchall()
    db.close()
    assert "audit_org_actor" in str(plan)


async def test_a_binding_kept_longer_than_the_window_is_shown_with_the_sign_ins_it_lets_in(
    storage: Storage,
) -> None:
    """The admin binds the agent, who signs in with a password, to a provider account of its own
    and keeps the binding: its sign-ins through the provider go on after the binding is older
    than the window. The agent was shown sign-ins through the provider and not who made them
    possible (nor that changing the password does not stop them). An agent who signs in only
    through the provider is not shown its binding at each sign-in."""
    log = AuditLog(storage, KEY)
    await account(storage, "alice")
    await log.record(0.0, "sign_in", actor="alice", org="default", ip="10.0.0.1")
    await log.record(DAY, "sso_identity_bound", actor="ada", org="default", subject="alice")
    for day in (1, 33):
        await log.record(
            day * DAY + 60, "sign_in", actor="alice", org="default", method="oidc", ip="10.0.0.1"
        )
    now = 42 * DAY
    await log.record(now, "sign_in", actor="alice", org="default", ip="10.0.0.1")
    shown = await auth.account_activity(storage, agent("alice"), now, 30)
    assert [(r.action, r.actor, r.details.get("method")) for r in shown] == [
        ("sign_in", "alice", None),
        ("sign_in", "alice", "oidc"),
        ("sso_identity_bound", "ada", None),
    ]
    await account(storage, "sso")
    await log.record(0.0, "sso_identity_bound", actor="ada", org="default", subject="sso")
    for day in (35, 40):
        await log.record(day * DAY, "sign_in", actor="sso", org="default", method="oidc")
    assert [r.action for r in await auth.account_activity(storage, agent("sso"), 40 * DAY, 30)] == [
        "sign_in",
        "sign_in",
    ]
