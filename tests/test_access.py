"""The authorisation function on its own: organisation, role, team and second-factor rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tandem.access import ACTIONS, PERMISSIONS, ROLES, Principal, Resource, authorize
from tandem.exceptions import ForbiddenError, NotFoundError


def who(
    role: str = "agent", org: str = "a", teams: frozenset[str] = frozenset({"t"}), **kw: bool
) -> Principal:
    return Principal("u", "U", role, org, teams, **kw)  # type: ignore[arg-type]


def test_the_table_names_every_role_and_only_known_actions() -> None:
    assert set(PERMISSIONS) == set(ROLES)
    for actions in PERMISSIONS.values():
        assert actions <= set(ACTIONS) and "self" in actions


def test_separation_of_duties() -> None:
    assert "session.join" not in PERMISSIONS["auditor"] | PERMISSIONS["admin"]
    assert "audit.read" not in PERMISSIONS["admin"] | PERMISSIONS["agent"]
    assert not {a for a in PERMISSIONS["auditor"] if a.startswith("session")}
    assert "users.manage" not in PERMISSIONS["supervisor"]


@given(
    role=st.sampled_from(ROLES),
    action=st.sampled_from(ACTIONS),
    mine=st.sampled_from(["a", "b"]),
    theirs=st.sampled_from(["a", "b"]),
)
def test_another_organisation_is_not_found_whatever_the_role(
    role: str, action: str, mine: str, theirs: str
) -> None:
    principal = who(role, org=mine)
    if mine != theirs:
        with pytest.raises(NotFoundError):
            authorize(principal, action, Resource(theirs))  # type: ignore[arg-type]


def test_team_scoped_resources_need_a_shared_team() -> None:
    authorize(who(teams=frozenset({"t", "x"})), "session.join", Resource("a", frozenset({"x"})))
    with pytest.raises(ForbiddenError, match="another team"):
        authorize(who(), "session.join", Resource("a", frozenset({"other"})))
    with pytest.raises(ForbiddenError):
        authorize(who(), "session.join", Resource("a", frozenset()))


def test_role_is_checked() -> None:
    with pytest.raises(ForbiddenError, match="auditor role"):
        authorize(who("auditor"), "session.join")
    authorize(who("auditor"), "audit.read", Resource("a"))


def test_without_the_required_second_factor_only_self_service_is_allowed() -> None:
    pending = who("admin", needs_second_factor=True)
    authorize(pending, "self")
    with pytest.raises(ForbiddenError, match="two-step"):
        authorize(pending, "users.manage", Resource("a"))
