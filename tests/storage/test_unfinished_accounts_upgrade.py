"""Upgrading to the version where an account is its owner's (revision 0018): the accounts an
admin made before it and nobody set up yet kept the admin's password, with which the admin could
still set up the second factor first and own the account. The upgrade makes their password
temporary, as a new account's is; set-up accounts and ``--no-mfa`` ones are left alone. On
SQLite and PostgreSQL."""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tandem import auth
from tandem.storage import migrations
from tests.storage.test_audit_storage import Backend, backend  # noqa: F401 (the fixture)

ACCOUNTS = (
    # username, totp_secret, mfa_exempt, password_change_required (as the old code left them)
    ("made-by-an-admin", None, False, False),  # waiting for whoever signs in first
    ("set-up", "sealed-seed", False, False),
    ("demo", None, True, False),  # --no-mfa
    ("reset", None, False, True),  # an admin's reset, already temporary
)


async def fill_at_0017(engine: AsyncEngine) -> None:
    async with engine.begin() as db:
        await db.run_sync(migrations.upgrade, "0017")
        if not (await db.execute(sa.text("SELECT 1 FROM orgs WHERE org_id = 'default'"))).first():
            await db.execute(sa.text("INSERT INTO orgs (org_id, name) VALUES ('default', 'D')"))
        await db.execute(
            sa.text(
                "INSERT INTO users (username, display_name, role, password_hash, created_at,"
                " totp_secret, mfa_exempt, password_change_required, org_id) VALUES (:name,"
                " :name, 'agent', 'admins-hash', 1.0, :totp, :exempt, :temporary, 'default')"
            ).bindparams(
                sa.bindparam("exempt", type_=sa.Boolean()),
                sa.bindparam("temporary", type_=sa.Boolean()),
            ),
            [
                {"name": name, "totp": totp, "exempt": exempt, "temporary": temporary}
                for name, totp, exempt, temporary in ACCOUNTS
            ],
        )
    await engine.dispose()


async def test_an_account_an_admin_made_before_the_upgrade_gets_a_temporary_password(
    backend: Backend,  # noqa: F811
) -> None:
    await backend.fill_old(fill_at_0017)
    storage = await backend.open()  # migrates
    temporary = {}
    for name, *_ in ACCOUNTS:
        user = await storage.get_user(name)
        assert user is not None and user.password_hash == "admins-hash", name
        temporary[name] = user.password_change_required
    assert temporary == {"made-by-an-admin": True, "set-up": False, "demo": False, "reset": True}


async def test_a_temporary_password_from_before_revision_0019_counts_from_the_upgrade(
    backend: Backend,  # noqa: F811
) -> None:
    """Revision 0019 keeps when a password was set: those already there (set at a time nobody
    kept) count from the upgrade, the temporary ones with their full lifetime (the owners' own
    do not expire). Created at 1.0, long ago: not expired at once."""
    await backend.fill_old(fill_at_0017)
    before = time.time()
    storage = await backend.open()  # migrates through 0018 and 0019
    after = time.time()
    for name, *_ in ACCOUNTS:
        user = await storage.get_user(name)
        assert user is not None and user.password_set_by is None, name
        assert user.password_set_at is not None and before <= user.password_set_at <= after
        assert not auth.temporary_password_expired(user, after, 3600.0)


async def test_a_reset_by_a_server_not_yet_upgraded_is_not_expired_at_once(
    backend: Backend,  # noqa: F811
) -> None:
    """A rolling upgrade: revision 0019 is in, and a server still running the version before it
    resets the password of an account made long ago (created at 1.0) whose password was its
    owner's; that version writes the hash and the flag, no time. The upgraded servers counted it
    from the account's creation: expired at once, the agent's new password refused and each of
    the admin's resets too while they reached an old server. Every password there at the upgrade
    counts from it (revision 0020)."""
    await backend.fill_old(fill_at_0017)
    storage = await backend.open()  # migrates through 0018, 0019 and 0020
    await backend.execute(
        "UPDATE users SET password_hash = 'old-servers-reset', password_change_required = TRUE"
        " WHERE username = 'set-up'"
    )
    user = await storage.get_user("set-up")
    assert user is not None and user.password_change_required
    assert not auth.temporary_password_expired(user, time.time(), 3600.0)
