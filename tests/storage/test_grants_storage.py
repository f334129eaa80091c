"""Every organisation-scoped storage method takes a grant (issue 12), and a grant for one
organisation reaches nothing of another, through each of them (both backends).

Organisation ``default`` (B) holds a team with a policy, a site, a user in that team, identity
provider settings, a customer linked to a session with a recording, audit records about them and
a legal hold. Each test first shows B's own grant reaches the thing (so the check is not vacuous),
then that a grant for ``acme`` (A) neither reads nor changes it."""

from __future__ import annotations

import dataclasses

import pytest

from tandem.access import Grant
from tandem.exceptions import ConflictError, NotFoundError
from tandem.storage.base import (
    HoldRecord,
    LoginRecord,
    OrgRecord,
    RecordingRecord,
    SiteRecord,
    Storage,
    TakenCode,
    TrainingRecord,
    UserRecord,
)
from tests.grants import of_org, owned

A = of_org("acme")
B = of_org("default")


@pytest.fixture
async def two(storage: Storage) -> Storage:
    await storage.add_org(OrgRecord("acme", "Acme", 0.0))
    await storage.add_team(B, "claims")
    assert await storage.set_team_policy(B, "claims", '{"mask": ["#card"]}')
    await storage.add_site(
        *owned(SiteRecord("shop", "default", "https://shop.example", "Shop", ("claims",)))
    )
    await storage.add_user(*owned(UserRecord("bea", "Bea", "agent", "h", 0.0, org_id="default")))
    await storage.set_user_teams(B, "bea", ("claims",))
    await storage.set_oidc(B, "sealed-b")
    await storage.record_session_start(of_org("default"), "s-b", 10.0, "shop")
    assert await storage.link_subject(B, "c-b", "s-b", "p-b") == "p-b"
    await storage.record_session_end("s-b", 20.0, "customer_left", "bea")
    await storage.add_recording(
        *owned(RecordingRecord("r-b", "default", "s-b", "shop", "bea", "k", 11.0))
    )
    await storage.end_recording("r-b", 19.0, "stopped")
    await storage.append_audit(of_org("default"), 12.0, "agent_joined", "customer:p-b", "s-b", {})
    assert await storage.put_hold(B, HoldRecord("default", "recording", "r-b", "case", "x", 30.0))
    return storage


async def test_a_grant_reads_no_other_organisations_org_teams_sites_or_sso(two: Storage) -> None:
    own = await two.get_org(B)
    assert own is not None and own.org_id == "default"
    other = await two.get_org(A)
    assert other is not None and other.org_id == "acme"  # its own, never B's
    assert "claims" in await two.list_teams(B)
    assert await two.list_teams(A) == []
    assert await two.team_policies(B, ("claims",)) == {"claims": '{"mask": ["#card"]}'}
    assert await two.team_policies(A, ("claims",)) == {}
    assert "shop" in [s.site_id for s in await two.list_sites(B)]
    assert await two.list_sites(A) == []
    assert await two.get_oidc(B) == "sealed-b"
    assert await two.get_oidc(A) is None


async def test_a_grant_changes_no_other_organisations_teams_or_sso(two: Storage) -> None:
    assert not await two.set_team_policy(A, "claims", None)
    assert not await two.delete_team(A, "claims")
    await two.add_team(A, "claims")  # A's own team of that name, beside B's
    await two.set_oidc(A, None)
    assert "claims" in await two.list_teams(B)
    assert await two.team_policies(B, ("claims",)) == {"claims": '{"mask": ["#card"]}'}
    assert await two.get_oidc(B) == "sealed-b"
    with pytest.raises(NotFoundError, match="bea"):  # B's user (and team), not A's
        await two.set_user_teams(A, "bea", ("support",))
    user = await two.get_user("bea")
    assert user is not None and user.teams == ("claims",)


async def test_a_grant_reaches_no_other_organisations_subjects(two: Storage) -> None:
    assert await two.subject_sessions(B, "c-b") == [("s-b", "p-b")]
    assert await two.subject_sessions(A, "c-b") == []
    assert [r.recording_id for r in await two.recordings_of_sessions(B, ["s-b"])] == ["r-b"]
    assert await two.recordings_of_sessions(A, ["s-b"]) == []
    assert len(await two.audit_concerning(B, ["s-b"], ["customer:p-b"])) == 1
    assert await two.audit_concerning(A, ["s-b"], ["customer:p-b"]) == []
    # The same customer at A gets A's own pseudonym, never B's.
    await two.record_session_start(of_org("acme"), "s-a", 40.0, "demo")
    assert await two.link_subject(A, "c-b", "s-a", "p-a") == "p-a"
    erased = await two.erase_subject(A, "c-b", ["s-b"])
    assert (erased.sessions, erased.recordings) == ((), ())
    assert await two.get_session("s-b") is not None
    assert await two.get_recording("r-b") is not None
    assert await two.subject_sessions(B, "c-b") == [("s-b", "p-b")]


async def test_a_grant_reaches_no_other_organisations_legal_holds(two: Storage) -> None:
    assert [h.target for h in await two.list_holds(B)] == ["r-b"]
    assert await two.list_holds(A) == []
    assert await two.delete_hold(A, "recording", "r-b") is None
    with pytest.raises(NotFoundError):  # a hold of B's, placed with A's grant
        await two.put_hold(A, HoldRecord("default", "recording", "r-other", "x", "y", 31.0))
    assert [h.target for h in await two.list_holds(B)] == ["r-b"]


async def test_a_grant_writes_no_record_of_another_organisation(two: Storage) -> None:
    """The methods that write a whole record (which names its organisation) refuse one of
    another organisation than the grant's, and change nothing."""
    site = await two.get_site("shop")
    assert site is not None
    with pytest.raises(NotFoundError):
        await two.update_site(A, dataclasses.replace(site, name="Pwned"))
    with pytest.raises(NotFoundError):
        await two.add_site(A, SiteRecord("evil", "default", "https://evil.example", "Evil"))
    with pytest.raises(NotFoundError):
        await two.add_user(A, UserRecord("eve", "Eve", "admin", "h", 0.0, org_id="default"))
    with pytest.raises(NotFoundError):
        await two.add_recording(
            A, RecordingRecord("r-x", "default", "s-b", "shop", "bea", "k", 11.0)
        )
    own = await two.get_org(B)
    assert own is not None
    with pytest.raises(NotFoundError):
        await two.update_org(A, dataclasses.replace(own, name="Pwned", retention_days=1))
    after = await two.get_site("shop")
    assert after is not None and after.name == "Shop"
    assert await two.get_site("evil") is None
    assert await two.get_user("eve") is None
    assert await two.get_recording("r-x") is None
    assert await two.get_org(B) == own
    await two.update_site(B, dataclasses.replace(site, name="Shop 2"))  # its own grant may
    renamed = await two.get_site("shop")
    assert renamed is not None and renamed.name == "Shop 2"


async def test_what_a_grant_files_is_filed_under_its_organisation(two: Storage) -> None:
    """Sessions, join codes, audit records and pending SSO sign-ins take the organisation from
    the grant (there is no organisation argument to get wrong, and no default)."""
    await two.record_session_start(A, "s-a2", 50.0, "x")
    live = {s.session_id: s.org_id for s in await two.live_sessions(A)}
    assert live == {"s-a2": "acme"}
    await two.put_join_code(A, "code-a", "s-a2", 100.0)
    assert await two.take_join_code(B, "code-a", 60.0) is None  # B cannot take A's code
    assert await two.take_join_code(A, "code-a", 60.0) == TakenCode("s-a2", 100.0)
    record = await two.append_audit(A, 51.0, "session_created", "customer", "s-a2", {})
    assert record.org == "acme"
    assert [r.seq for r in await two.audit_page(A, 0, 10)] == [record.seq]
    await two.put_oidc_pending(A, "state-a", "sealed-a", 100.0)
    assert await two.take_oidc_pending("state-a", 60.0) == ("acme", "sealed-a")


async def test_a_code_live_in_one_organisation_collides_in_another_and_stays_its_owners(
    two: Storage,
) -> None:
    """Join codes are short: two organisations' sessions may draw the same one. The digest is
    held by one live session on the whole server, so the second draw is refused (the hub draws
    again) rather than stored twice, and neither the collision nor a take by the other
    organisation disturbs the owner's code (organisation isolation review)."""
    await two.put_join_code(B, "same-code", "s-b", 100.0)
    with pytest.raises(ConflictError):
        await two.put_join_code(A, "same-code", "s-a", 100.0)
    assert await two.take_join_code(A, "same-code", 60.0) is None
    assert await two.take_join_code(B, "same-code", 60.0) == TakenCode("s-b", 100.0)


async def test_a_username_freed_in_one_organisation_brings_nothing_to_the_next(
    two: Storage,
) -> None:
    """Usernames are unique on the server, and free again once an account is deleted. The
    default organisation's "bea" (team claims, the policy acknowledged, trained) goes; Acme
    creates a "bea" of its own, and has a team "claims" too. Its "bea" is in no team and has
    acknowledged and completed nothing: the rows of the first went with it (foreign keys),
    and would otherwise have been read by name (organisation isolation review)."""
    await two.acknowledge_policy(B, "bea", 1, 5.0)
    await two.add_training(B, TrainingRecord("t-b", "bea", "default", 6.0, 1, "operator"))
    assert (await two.get_user("bea")).teams == ("claims",)  # type: ignore[union-attr]
    assert await two.delete_user(B, "bea")
    await two.add_team(A, "claims")
    await two.add_user(*owned(UserRecord("bea", "Bea", "agent", "h", 7.0, org_id="acme")))
    again = await two.get_user("bea")
    assert again is not None and (again.org_id, again.teams) == ("acme", ())
    for grant in (A, B):
        assert "bea" not in await two.acknowledgements(grant)
        assert await two.latest_trainings(grant, "bea") == {}


async def test_a_grant_changes_or_deletes_no_other_organisations_user_or_site_by_name(
    two: Storage,
) -> None:
    """Usernames and site ids are unique on the server, so the writes that name one took no
    organisation: a name the directory checked as the admin's own could be another
    organisation's by the time it was written (deleted, and made there, while a password
    hashed). Each write now takes the grant and reaches only its organisation's account or
    site (organisation isolation review): nothing of B's changes through A's grant."""
    await two.add_team(A, "claims")  # a team of the same name, for A's grant to hand out
    assert not await two.update_user(A, "bea", role="admin", display_name="Pwned")
    with pytest.raises(NotFoundError, match="bea"):
        await two.set_user_teams(A, "bea", ("claims",))
    with pytest.raises(NotFoundError, match="bea"):
        await two.set_password(A, "bea", "attackers-hash", True, at=1.0, chosen_by=None)
    assert not await two.set_second_factor(A, "bea", "attackers-seed", ("c",))
    assert not await two.set_oidc_identity(A, "bea", '["acme","https://i","sub"]')
    assert not await two.delete_user(A, "bea")
    assert not await two.delete_site(A, "shop")
    bea = await two.get_user("bea")
    assert bea is not None
    assert (bea.role, bea.display_name, bea.password_hash, bea.password_change_required) == (
        "agent",
        "Bea",
        "h",
        False,
    )
    assert (bea.totp_secret, bea.oidc_identity, bea.org_id) == (None, None, "default")
    assert await two.delete_team(B, "claims")  # B's own team goes: A's grant added no other
    assert (await two.get_user("bea")).teams == ()  # type: ignore[union-attr]
    assert await two.get_site("shop") is not None
    # B's own grant still reaches them.
    assert await two.update_user(B, "bea", role="supervisor", display_name="Bea")
    assert await two.set_password(B, "bea", "h2", False, at=1.0, chosen_by=None) == 0
    assert await two.delete_site(B, "shop") and await two.delete_user(B, "bea")


async def test_ending_a_providers_sign_ins_ends_only_its_organisations_and_only_those(
    two: Storage,
) -> None:
    """An organisation's provider turned off or changed ends the sign-ins made through it:
    those of its own accounts, not another organisation's provider sign-ins, nor its own
    accounts' password sign-ins."""
    await two.add_user(*owned(UserRecord("amy", "Amy", "agent", "h", 0.0, org_id="acme")))
    await two.add_login(LoginRecord("t-bea-sso", "bea", 100.0, method="oidc"))
    await two.add_login(LoginRecord("t-bea-pw", "bea", 100.0, method="password+totp"))
    await two.add_login(LoginRecord("t-amy-sso", "amy", 100.0, method="oidc"))
    assert await two.delete_logins_by_method(A, "oidc") == 1
    assert await two.get_login("t-amy-sso") is None
    assert await two.get_login("t-bea-sso") is not None
    assert await two.delete_logins_by_method(B, "oidc") == 1
    assert await two.get_login("t-bea-sso") is None
    assert await two.get_login("t-bea-pw") is not None


async def test_a_provider_subject_bound_to_two_accounts_signs_in_to_neither(
    two: Storage,
) -> None:
    """Binding is checked, then written: two admins binding one provider subject at the same
    moment (to an agent and to an admin, say) both got past the check of the other's binding,
    and the provider's sign-in then reached whichever account the database listed first. Now
    such a subject reaches no account until one binding is removed."""
    await two.add_user(*owned(UserRecord("ben", "Ben", "admin", "h", 0.0, org_id="default")))
    assert await two.set_oidc_identity(B, "bea", "default|https://idp|u-1")
    found = await two.user_for_oidc_identity("default|https://idp|u-1")
    assert found is not None and found.username == "bea"
    assert await two.set_oidc_identity(B, "ben", "default|https://idp|u-1")  # the race's end
    assert await two.user_for_oidc_identity("default|https://idp|u-1") is None
    assert await two.set_oidc_identity(B, "bea", None)
    found = await two.user_for_oidc_identity("default|https://idp|u-1")
    assert found is not None and found.username == "ben"


def test_grants_without_a_signed_in_principal_say_which_kind_they_are() -> None:
    server = Grant.server("acme", "demo page")
    assert (server.org_id, server.kind, server.reason, server.role) == (
        "acme",
        "server",
        "demo page",
        None,
    )
    operator = Grant.operator("acme")
    assert (operator.kind, operator.role) == ("operator", "admin")
    with pytest.raises(ValueError, match="why"):
        Grant.server("acme", "")
    with pytest.raises(ValueError, match="organisation"):
        Grant.server("", "demo page")


async def test_a_grant_signs_out_no_other_organisations_account_of_the_name(two: Storage) -> None:
    """Usernames are unique on the server, so ending an account's sign-ins took the name
    alone: a name the directory checked as the admin's own could be another organisation's
    by the time its sign-ins were deleted. It now takes the grant."""
    await two.add_login(LoginRecord("t-bea-1", "bea", 100.0))
    await two.add_login(LoginRecord("t-bea-2", "bea", 100.0))
    assert await two.delete_logins_of(A, "bea") == 0
    assert await two.get_login("t-bea-1") is not None
    assert await two.get_login("t-bea-2") is not None
    assert await two.delete_logins_of(A, "nobody") == 0
    assert await two.delete_logins_of(B, "bea") == 2  # B's own grant still reaches them
    assert await two.get_login("t-bea-1") is None
