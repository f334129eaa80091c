"""Who may do what: the one authorisation function every HTTP route and socket message goes through.

A decision takes the signed-in principal, an action and, where there is one, the resource it acts
on (its organisation and the teams that serve it):

1. another organisation's resource is *not found* (its existence never leaks);
2. the role must grant the action (:data:`PERMISSIONS`, the whole table);
3. a team-scoped resource (a site, its sessions) needs a team in common with the principal;
4. an account that must have a second factor but has none may only set one up, and one whose
   password an admin reset may only choose a new one.

tests/test_access.py checks the table; tests/server/test_authorisation_matrix.py generates a
request for every role and every route and socket message from the same table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal, get_args

from tandem.exceptions import ForbiddenError, NotFoundError

Role = Literal["agent", "supervisor", "auditor", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)

Action = Literal[
    "self",
    "session.join",
    "session.list",
    "session.watch",
    "session.record",
    "session.practise",
    "audit.read",
    "recording.list",
    "recording.play",
    "recording.export",
    "recording.erase",
    "users.manage",
    "teams.manage",
    "sites.manage",
    "org.manage",
]
ACTIONS: tuple[Action, ...] = get_args(Action)

PERMISSIONS: Mapping[Role, frozenset[Action]] = {
    # Joins sessions of the sites its teams serve, with a code the customer reads out.
    # Asks to record a session it is in (the customer decides).
    # Practises with a simulated customer first (tandem.training).
    "agent": frozenset({"self", "session.join", "session.record", "session.practise"}),
    # Also sees its teams' live sessions and may watch one, if the customer allows it.
    "supervisor": frozenset(
        {
            "self",
            "session.join",
            "session.record",
            "session.list",
            "session.watch",
            "session.practise",
        }
    ),
    # Reads the audit trail, plays and exports recordings (every play audited); nothing live.
    "auditor": frozenset(
        {"self", "audit.read", "recording.list", "recording.play", "recording.export"}
    ),
    # Runs the organisation: users, teams, sites (with their policies), retention, the recording
    # key, erasure of recordings (GDPR). Nothing live, never plays a recording, and not the audit
    # trail (separation of duties: the auditor checks the admin).
    "admin": frozenset(
        {
            "self",
            "users.manage",
            "teams.manage",
            "sites.manage",
            "org.manage",
            "recording.list",
            "recording.erase",
        }
    ),
}

ALWAYS_ALLOWED: frozenset[Action] = frozenset({"self"})
"""What an account without its required second factor may still do (sign out, set one up)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    """A signed-in user as every decision sees it."""

    username: str
    display_name: str
    role: Role
    org: str
    teams: frozenset[str] = frozenset()
    needs_second_factor: bool = False
    """True until the account has set up a second factor (unless created with --no-mfa)."""
    must_change_password: bool = False
    """An admin reset the password: until the user chooses a new one, only "self" actions."""
    operator: bool = False
    """The server's operator (the CLI, with the database in hand), not a signed-in admin: the
    only one who manages auditor accounts (separation of duties, docs/security.md)."""


GrantKind = Literal["principal", "server", "operator"]


@dataclasses.dataclass(frozen=True, slots=True)
class Grant:
    """What :func:`authorize` returns: ``user`` (``role``) may do ``action`` in organisation
    ``org_id``. Every storage method that reads or writes an organisation's records takes a
    grant rather than a bare organisation id, so the organisation is always the one authorised,
    never a default or a forgotten argument.

    Code with no signed-in principal says so with another kind of grant: :meth:`server` (the
    server acting for itself: a customer's session, the demo page, SSO before sign-in, start-up)
    and :meth:`operator` (the CLI, with the database in hand). Each names the organisation
    explicitly; there is none by default.
    """

    org_id: str
    user: str
    role: Role | None
    """None for a server grant: no role was checked."""
    action: Action | None
    """None for server and operator grants: no action was checked."""
    kind: GrantKind = "principal"
    reason: str = ""
    """Why a server grant was made (for example ``customer session``, ``sso start``)."""

    def __post_init__(self) -> None:
        if not self.org_id:
            raise ValueError("a grant names its organisation")

    @classmethod
    def server(cls, org_id: str, reason: str) -> Grant:
        """The server acting on ``org_id`` with no signed-in principal, for ``reason``."""
        if not reason:
            raise ValueError("a server grant says why it is made")
        return cls(org_id, "server", None, None, "server", reason)

    @classmethod
    def operator(cls, org_id: str) -> Grant:
        """The operator (the CLI) acting on ``org_id``: an admin with the database in hand."""
        return cls(org_id, "cli", "admin", None, "operator", "operator")


@dataclasses.dataclass(frozen=True, slots=True)
class Resource:
    """What an action touches: its organisation and, for team-scoped things, the serving teams."""

    org: str
    teams: frozenset[str] | None = None
    """None: organisation-wide (users, teams, the audit trail); else who serves it."""


def allowed(role: Role, action: Action) -> bool:
    return action in PERMISSIONS[role]


def authorize(principal: Principal, action: Action, resource: Resource | None = None) -> Grant:
    """Return the grant if ``principal`` may do ``action`` on ``resource``; raise otherwise.

    Raises :class:`NotFoundError` for another organisation's resource and
    :class:`ForbiddenError` (saying why) for everything else refused.
    """
    if resource is not None and resource.org != principal.org:
        raise NotFoundError("not found")
    if not allowed(principal.role, action):
        raise ForbiddenError(f"the {principal.role} role does not allow {action}")
    if principal.must_change_password and action not in ALWAYS_ALLOWED:
        raise ForbiddenError("choose a new password first (console: Security)")
    if principal.needs_second_factor and action not in ALWAYS_ALLOWED:
        raise ForbiddenError("set up two-step sign-in first (console: Security)")
    if resource is not None and resource.teams is not None and not principal.teams & resource.teams:
        raise ForbiddenError("this site is served by another team")
    return Grant(principal.org, principal.username, principal.role, action)
