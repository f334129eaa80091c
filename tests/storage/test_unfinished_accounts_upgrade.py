"""Upgrading to the version where an account is its owner's (revision 0018): the accounts an
admin made before it and nobody set up yet kept the admin's password, with which the admin could
still set up the second factor first and own the account. The upgrade makes their password
temporary, as a new account's is; set-up accounts and ``--no-mfa`` ones are left alone. On
SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

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
