"""Organisations, teams, sites and their rules in storage (both backends)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tandem import auth, crypto
from tandem.access import Principal
from tandem.directory import Directory, operator
from tandem.exceptions import ConflictError, ForbiddenError, NotFoundError
from tandem.storage.base import (
    LoginRecord,
    OrgRecord,
    PracticeRecord,
    SiteRecord,
    Storage,
    TakenCode,
    TrainingRecord,
    UserRecord,
)
from tandem.storage.sql import SQLStorage
from tests.grants import of_org, owned


async def test_a_new_database_has_the_default_organisation_team_and_demo_site(
    storage: Storage,
) -> None:
    org = await storage.get_org(of_org("default"))
    assert org is not None and org.retention_days == 30
    assert await storage.list_teams(of_org("default")) == ["support"]
    demo = await storage.site_for_origin("self")
    assert demo is not None and demo.site_id == "demo" and demo.teams == ("support",)


async def test_teams_must_exist_in_the_users_organisation(storage: Storage) -> None:
    await storage.add_org(OrgRecord("acme", "Acme", 0.0))
    await storage.add_team(of_org("acme"), "claims")
    await storage.add_user(*owned(UserRecord("u", "U", "agent", "hash", 0.0, org_id="default")))
    with pytest.raises(NotFoundError, match="claims"):
        await storage.set_user_teams(
            of_org("default"), "u", ("claims",)
        )  # acme's team, not default's
    await storage.set_user_teams(of_org("default"), "u", ("support",))
    user = await storage.get_user("u")
    assert user is not None and user.teams == ("support",)


async def test_site_ids_and_origins_are_unique(storage: Storage) -> None:
    site = SiteRecord("shop", "default", "https://shop.example", "Shop", ("support",))
    await storage.add_site(*owned(site))
    with pytest.raises(ConflictError):
        await storage.add_site(
            *owned(SiteRecord("shop2", "default", "https://shop.example", "Shop"))
        )
    with pytest.raises(ConflictError):
        await storage.add_site(
            *owned(SiteRecord("shop", "default", "https://other.example", "Shop"))
        )
    assert [s.site_id for s in await storage.list_sites(of_org("default"))] == ["demo", "shop"]


async def test_deleting_a_team_unlinks_its_members_and_sites(storage: Storage) -> None:
    await storage.add_team(of_org("default"), "claims")
    await storage.add_site(
        *owned(SiteRecord("c", "default", "https://c.example", "C", ("claims",)))
    )
    await storage.add_user(*owned(UserRecord("u", "U", "agent", "hash", 0.0, org_id="default")))
    await storage.set_user_teams(of_org("default"), "u", ("claims", "support"))
    assert await storage.delete_team(of_org("default"), "claims")
    user, site = await storage.get_user("u"), await storage.get_site("c")
    assert user is not None and user.teams == ("support",)
    assert site is not None and site.teams == ()


async def test_a_join_code_is_taken_only_by_its_organisation(storage: Storage) -> None:
    await storage.put_join_code(of_org("default"), "digest", "s1", expires_at=100.0)
    assert await storage.take_join_code(of_org("acme"), "digest", now=1.0) is None
    assert await storage.take_join_code(of_org("default"), "digest", now=1.0) == TakenCode(
        "s1", 100.0
    )


async def test_ended_sessions_go_when_their_organisations_retention_runs_out(
    storage: Storage,
) -> None:
    await storage.add_org(OrgRecord("acme", "Acme", 0.0, retention_days=1))
    for session_id, org in (("a", "acme"), ("d", "default")):
        await storage.record_session_start(of_org(org), session_id, 0.0, "x")
        await storage.record_session_end(session_id, 10.0, "stopped", None)
    await storage.record_session_start(of_org("acme"), "live", 0.0, "x")
    await storage.purge_expired(now=10.0 + 2 * 86400)
    assert await storage.get_session("a") is None  # 1 day retention
    assert await storage.get_session("d") is not None  # 30 days
    assert await storage.get_session("live") is not None  # never while live


async def test_an_accounts_waiting_practice_sessions_are_listed_whichever_node_holds_them(
    storage: Storage,
) -> None:
    """What ``max_waiting_practice_per_account`` counts across a cluster: the account's own
    practice sessions still waiting, on any node; not one joined, ended, another account's,
    another organisation's or a customer's."""
    await storage.add_org(OrgRecord("acme", "Acme", 0.0))
    for org in ("default", "acme"):
        await storage.add_user(*owned(UserRecord(f"al-{org}", "Al", "agent", "h", 0.0, org_id=org)))
    sessions = (
        ("waits-a", "default", "al-default", "node-a"),
        ("waits-b", "default", "al-default", "node-b"),
        ("joined", "default", "al-default", "node-b"),
        ("ended", "default", "al-default", "node-b"),
        ("acmes", "acme", "al-acme", "node-b"),
        ("customer", "default", None, "node-b"),
    )
    for at, (session_id, org, username, node) in enumerate(sessions):
        await storage.record_session_start(of_org(org), session_id, float(at), "practice", node)
        if username is not None:
            await storage.start_practice(
                of_org(org), PracticeRecord(session_id, username, org, started_at=float(at))
            )
    await storage.record_session_state("joined", "active", "Al")
    await storage.record_session_end("ended", 9.0, "left", None)
    waiting = await storage.waiting_practice(of_org("default"), "al-default")
    assert [(r.session_id, r.node) for r in waiting] == [
        ("waits-a", "node-a"),
        ("waits-b", "node-b"),
    ]
    assert await storage.waiting_practice(of_org("acme"), "al-default") == []


async def test_practice_evidence_goes_with_its_session_when_retention_runs_out(
    storage: Storage,
) -> None:
    """Practice sessions (tandem.training) are sessions: their evidence rows are purged with
    them, on the organisation's retention; the training completion they gave stays."""
    await storage.add_org(OrgRecord("acme", "Acme", 0.0, retention_days=1))
    await storage.add_user(*owned(UserRecord("al", "Al", "agent", "hash", 0.0, org_id="acme")))
    for session_id, ended_at in (("old", 10.0), ("recent", 86400.0 + 20.0)):
        await storage.record_session_start(of_org("acme"), session_id, 0.0, "practice")
        await storage.start_practice(
            of_org("acme"), PracticeRecord(session_id, "al", "acme", started_at=0.0)
        )
        await storage.end_practice(session_id, ["code", "ended"], ended_at)
        await storage.record_session_end(session_id, ended_at, "left", "al")
    assert await storage.use_practice("old")
    done = TrainingRecord("t1", "al", "acme", 20.0, 1, "practice", "old", "code,ended")
    await storage.add_training(of_org("acme"), done)
    await storage.purge_expired(now=10.0 + 1.5 * 86400)
    assert await storage.get_practice("old") is None
    assert await storage.get_session("old") is None
    recent = await storage.get_practice("recent")
    assert recent is not None and recent.steps == ("code", "ended")  # within its retention
    assert await storage.latest_trainings(of_org("acme")) == {"al": done}


def test_an_older_database_is_upgraded_with_its_users_in_the_default_team(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    from tandem.storage.migrations import legacy

    db = sqlite3.connect(path, isolation_level=None)
    for index, migration in enumerate(legacy.SQLITE_MIGRATIONS[:4]):
        db.executescript(f"BEGIN; {migration} PRAGMA user_version={index + 1}; COMMIT;")
    db.execute(
        "INSERT INTO users (username, display_name, role, password_hash, created_at)"
        " VALUES ('old', 'Old', 'agent', 'h', 0)"
    )
    db.close()

    async def check() -> None:
        storage = await SQLStorage.open_sqlite(path)
        try:
            user = await storage.get_user("old")
            assert user is not None
            assert (user.org_id, user.teams, user.mfa_exempt) == ("default", ("support",), True)
        finally:
            await storage.close()

    import asyncio

    asyncio.run(check())


async def test_an_organisations_audit_page_holds_only_its_records_in_order(
    storage: Storage,
) -> None:
    for i in range(5):
        await storage.append_audit(
            of_org("acme" if i % 2 else "default"), float(i), "a", "x", "s", {}
        )
    acme = await storage.audit_page(of_org("acme"), 0, 10)
    assert [r.seq for r in acme] == [2, 4] and {r.org for r in acme} == {"acme"}
    assert [r.org_seq for r in acme] == [1, 2]
    # Paged by the organisation's own positions (the chain's numbers tell the others' volume).
    first, second = (
        await storage.audit_page(of_org("default"), 0, 2),
        await storage.audit_page(of_org("default"), 2, 2),
    )
    assert [(r.seq, r.org_seq) for r in first] == [(1, 1), (3, 2)]
    assert [(r.seq, r.org_seq) for r in second] == [(5, 3)]
    assert await storage.audit_page(of_org("nobody"), 0, 10) == []


class HeldHashing(crypto.PasswordHashing):
    """The server's bounded hashing behind a long queue: each hash waits for ``release``."""

    def __init__(self) -> None:
        super().__init__(parallel=1, waiting=4, per_client=4)
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def hash(self, client: str, password: str) -> str:
        self.started.set()
        await self.release.wait()
        return await super().hash(client, password)


async def test_a_reset_whose_account_went_to_another_organisation_meanwhile_writes_nothing(
    storage: Storage, tmp_path: Path
) -> None:
    """Usernames are unique on the server and free again once deleted. Acme's admin resets
    the password of Acme's "x" (the hash waits in the queue: as long as the attacker keeps the
    server's hashing busy), deletes "x" meanwhile, and the default organisation makes its own
    new "x". The reset used to write its password by name alone, into the other organisation's
    new account: its admin knew the password (change required at sign-in, which the attacker
    then does). Now the write names Acme: NotFoundError, nothing written, nothing audited
    (organisation isolation review)."""
    await storage.add_org(OrgRecord("acme", "Acme", 0.0))
    records: list[str] = []

    async def record(action: str, **fields: object) -> None:
        records.append(action)

    box = crypto.SecretBox(tmp_path / "secrets.key")
    held = HeldHashing()
    attackers = Directory(storage, record, lambda: 100.0, box, hashing=held)
    directory = Directory(storage, record, lambda: 100.0, box)
    max_ = Principal("max", "Max", "admin", "acme")
    ada = Principal("ada", "Ada", "admin", "default")
    await directory.add_user(max_, "x", "acme-pass-phrase-7", "agent", None, ())
    reset = asyncio.create_task(attackers.reset_password(max_, "x", "attackers-phrase-9"))
    await held.started.wait()
    await directory.delete_user(max_, "x")
    made, _ = await directory.add_user(ada, "x", "victims-own-phrase-3", "agent", None, ())
    held.release.set()
    with pytest.raises(NotFoundError, match="'x'"):
        await reset
    victim = await storage.get_user("x")
    assert victim is not None and victim.org_id == "default"
    assert victim.password_hash == made.password_hash  # as its own admin made it
    assert crypto.verify_password(victim.password_hash, "victims-own-phrase-3")
    assert not crypto.verify_password(victim.password_hash, "attackers-phrase-9")
    assert "password_reset" not in records


async def test_a_sign_out_whose_account_went_to_another_organisation_meanwhile_ends_nothing(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Acme's admin disables Acme's "x" (its sign-ins are to end); between the account's change
    and the end of its sign-ins, another of Acme's admins deletes "x" and the default
    organisation makes its own new "x", which signs in. The sign-ins were deleted by name alone:
    the other organisation's user was signed out by Acme. Now the deletion names Acme's account:
    the other organisation's sign-in stays (organisation isolation review)."""
    await storage.add_org(OrgRecord("acme", "Acme", 0.0))
    box = crypto.SecretBox(tmp_path / "secrets.key")

    async def record(action: str, **fields: object) -> None:
        pass

    directory = Directory(storage, record, lambda: 100.0, box)
    max_ = Principal("max", "Max", "admin", "acme")
    mia = Principal("mia", "Mia", "admin", "acme")
    ada = Principal("ada", "Ada", "admin", "default")
    await directory.add_user(max_, "x", "acme-pass-phrase-7", "agent", None, ())
    await storage.add_login(LoginRecord("acme-x", "x", 1000.0))
    disable = storage.set_user_disabled

    async def and_meanwhile(*args: Any, **kwargs: Any) -> bool:
        changed = await disable(*args, **kwargs)
        await directory.delete_user(mia, "x")  # its sign-ins go with it
        await directory.add_user(ada, "x", "victims-own-phrase-3", "agent", None, ())
        await storage.add_login(LoginRecord("default-x", "x", 1000.0))
        return changed

    monkeypatch.setattr(storage, "set_user_disabled", and_meanwhile)
    await directory.set_disabled(max_, "x", True)
    victim = await storage.get_user("x")
    assert victim is not None and victim.org_id == "default" and not victim.disabled
    assert await storage.get_login("default-x") is not None
    assert await storage.get_login("acme-x") is None


async def test_a_throttled_attempt_reads_two_organisations_at_most(storage: Storage) -> None:
    """A throttled sign-in or single sign-on start names no account's organisation: it is
    counted under the only organisation while there is one. That was found by reading every
    organisation for each attempt, so a flood the throttle answers cheaply cost the database a
    read of the whole table each."""
    assert await storage.only_org() == "default"  # a new installation's own
    assert await auth.organisation_of(storage, "nobody") == "default"
    for n in range(3):
        await storage.add_org(OrgRecord(f"org-{n}", f"Org {n}", 0.0))

    async def every_organisation() -> list[OrgRecord]:
        raise AssertionError("every organisation read for one attempt")

    storage.all_orgs = every_organisation  # type: ignore[method-assign]
    assert await storage.only_org() is None
    assert await auth.organisation_of(storage, "nobody") is None
    await storage.add_user(*owned(UserRecord("u", "U", "agent", "hash", 0.0, org_id="org-1")))
    assert await auth.organisation_of(storage, "u") == "org-1"


async def test_only_the_operator_makes_an_account_whose_password_or_authenticator_it_keeps(
    storage: Storage, tmp_path: Path
) -> None:
    """An admin's new account is always temporary and enrols its own second factor: asking
    for the operator's bootstrap (``--own-account``) as an admin is refused, nothing made."""
    records: list[dict[str, Any]] = []

    async def record(action: str, **fields: Any) -> None:
        records.append({"action": action, **fields})

    box = crypto.SecretBox(tmp_path / "secrets.key")
    directory = Directory(storage, record, lambda: 100.0, box)
    ada = Principal("ada", "Ada", "admin", "default")
    for kept in ({"change_required": False}, {"enrol_now": True}):
        with pytest.raises(ForbiddenError, match="temporary password"):
            await directory.add_user(ada, "x", "a-long-pass-phrase-7", "agent", None, (), **kept)
    assert await storage.get_user("x") is None and records == []
    made, enrolment = await directory.add_user(ada, "x", "a-long-pass-phrase-7", "agent", None, ())
    assert made.password_change_required and made.totp_secret is None and enrolment is None
    own, shown = await directory.add_user(
        operator("default"),
        "me",
        "a-long-pass-phrase-7",
        "admin",
        None,
        (),
        enrol_now=True,
        change_required=False,
    )
    assert not own.password_change_required and own.totp_secret and shown is not None
    created = {r["subject"]: r for r in records if r["action"] == "user_created"}
    assert (created["x"]["password"], created["x"]["second_factor"]) == (
        "temporary",
        "owner_at_first_sign_in",
    )
    assert (created["me"]["password"], created["me"]["second_factor"]) == (
        "kept_by_creator",
        "shown_to_creator",
    )
    assert shown.secret not in str(records)
