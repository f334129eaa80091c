"""Every organisation-scoped storage method takes a grant (issue 12), and a grant for one
organisation reaches nothing of another, through each of them (both backends).

Organisation ``default`` (B) holds a team with a policy, a site, a user in that team, identity
provider settings, a customer linked to a session with a recording, audit records about them and
a legal hold. Each test first shows B's own grant reaches the thing (so the check is not vacuous),
then that a grant for ``acme`` (A) neither reads nor changes it."""

from __future__ import annotations

import pytest

from tandem.access import Grant
from tandem.exceptions import NotFoundError
from tandem.storage.base import (
    HoldRecord,
    OrgRecord,
    RecordingRecord,
    SiteRecord,
    Storage,
    UserRecord,
)
from tests.grants import of_org

A = of_org("acme")
B = of_org("default")


@pytest.fixture
async def two(storage: Storage) -> Storage:
    await storage.add_org(OrgRecord("acme", "Acme", 0.0))
    await storage.add_team(B, "claims")
    assert await storage.set_team_policy(B, "claims", '{"mask": ["#card"]}')
    await storage.add_site(
        SiteRecord("shop", "default", "https://shop.example", "Shop", ("claims",))
    )
    await storage.add_user(UserRecord("bea", "Bea", "agent", "h", 0.0, org_id="default"))
    await storage.set_user_teams(B, "bea", ("claims",))
    await storage.set_oidc(B, "sealed-b")
    await storage.record_session_start("s-b", 10.0, "default", "shop")
    assert await storage.link_subject(B, "c-b", "s-b", "p-b") == "p-b"
    await storage.record_session_end("s-b", 20.0, "customer_left", "bea")
    await storage.add_recording(RecordingRecord("r-b", "default", "s-b", "shop", "bea", "k", 11.0))
    await storage.end_recording("r-b", 19.0, "stopped")
    await storage.append_audit(12.0, "agent_joined", "customer:p-b", "default", "s-b", {})
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
    with pytest.raises(NotFoundError, match="support"):  # B's team, not A's
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
    await two.record_session_start("s-a", 40.0, "acme", "demo")
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
