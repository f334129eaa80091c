"""Routes for training before live sessions (issue 16, item 5; tandem.training): each account's
own standing, the policy to acknowledge, the practice exercise; the admin's policy editor,
re-training interval and the list of who is trained: :data:`OPERATIONS`, joined with the
others in :data:`tandem.server.app.OPERATIONS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import msgspec

from tandem import revocation
from tandem.config import Settings
from tandem.server.operations import Operation
from tandem.storage.base import PolicyRecord
from tandem.training import CONSOLE_STEPS, SERVER_STEPS, Standing

if TYPE_CHECKING:
    from tandem.server.operations import Call


class Acknowledgement(msgspec.Struct, forbid_unknown_fields=True):
    version: Annotated[int, msgspec.Meta(ge=1)]
    """The version the account read (it must still be the current one)."""


class PracticeDone(msgspec.Struct, forbid_unknown_fields=True):
    steps: Annotated[list[Annotated[str, msgspec.Meta(max_length=32)]], msgspec.Meta(max_length=16)]
    """The steps the console checked itself (``masked``, ``refused``)."""


class PolicyText(msgspec.Struct, forbid_unknown_fields=True):
    text: Annotated[str, msgspec.Meta(min_length=1)]


class IntervalChange(msgspec.Struct, forbid_unknown_fields=True):
    days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None
    """Days after a completion when practice is due again; null for the default."""


class Policy(msgspec.Struct, forbid_unknown_fields=True):
    version: int
    text: str
    created_at: float
    created_by: str


class TrainingStanding(msgspec.Struct, forbid_unknown_fields=True):
    username: str
    display_name: str
    role: str
    policy_version: int
    acknowledged_version: int | None
    needs_acknowledgement: bool
    needs_practice: bool
    trained: bool
    trained_at: float | None
    trained_on_version: int | None
    training_method: str | None
    due_at: float | None
    interval_days: int


class MyTraining(msgspec.Struct, forbid_unknown_fields=True):
    standing: TrainingStanding
    policy: Policy
    server_steps: list[str]
    console_steps: list[str]


class PracticeTicket(msgspec.Struct, forbid_unknown_fields=True):
    ticket: str
    page: str
    """The practice page to load in a frame, with the ticket after ``#``."""


class TrainingCompletion(msgspec.Struct, forbid_unknown_fields=True):
    completed_at: float
    policy_version: int
    session_id: str
    steps: list[str]


class Roster(msgspec.Struct, forbid_unknown_fields=True):
    policy_version: int
    interval_days: int
    users: list[TrainingStanding]


PRACTICE_PAGE = "/practice/"


def _policy_json(policy: PolicyRecord) -> dict[str, object]:
    return {
        "version": policy.version,
        "text": policy.text,
        "created_at": policy.created_at,
        "created_by": policy.created_by,
    }


async def _mine(call: Call) -> object:
    training = call.services.hub.training
    standing: Standing = await training.standing(call.principal)
    return {
        "standing": standing.to_json(),
        "policy": _policy_json(await training.policy(call.grant)),
        "server_steps": list(SERVER_STEPS),
        "console_steps": list(CONSOLE_STEPS),
    }


async def _acknowledge(call: Call) -> object:
    body: Acknowledgement = call.body
    standing = await call.services.hub.training.acknowledge(call.principal, body.version)
    return standing.to_json()


async def _practice(call: Call) -> object:
    ticket = await call.services.hub.training.practice_ticket(call.principal)
    return {"ticket": ticket, "page": f"{PRACTICE_PAGE}#{ticket}"}


async def _complete(call: Call) -> object:
    body: PracticeDone = call.body
    record = await call.services.hub.training.complete(call.principal, body.steps)
    return {
        "completed_at": record.completed_at,
        "policy_version": record.policy_version,
        "session_id": record.session_id,
        "steps": record.steps.split(","),
    }


async def _get_policy(call: Call) -> object:
    return _policy_json(await call.services.hub.training.policy(call.grant))


async def _set_policy(call: Call) -> object:
    body: PolicyText = call.body
    published = await call.services.hub.training.set_policy(call.principal, body.text)
    # Every process re-checks the organisation's sockets now: agents in a live session are told
    # that the new version waits for their acknowledgement (SessionHub._tell_of_a_new_policy).
    revocation.announce(call.services.fanout, org=call.grant.org_id)
    return _policy_json(published)


async def _roster(call: Call) -> object:
    training = call.services.hub.training
    users = await call.services.storage.list_users(call.grant)
    standings = await training.roster(call.grant, users)
    policy = await training.policy(call.grant)
    return {
        "policy_version": policy.version,
        "interval_days": await training.interval(call.grant),
        "users": [s.to_json() for s in standings],
    }


async def _set_interval(call: Call) -> object:
    body: IntervalChange = call.body
    await call.services.hub.training.set_interval(call.principal, body.days)
    return await _roster(call)


def policy_body_bytes(settings: Settings) -> int:
    """The policy editor's body limit: the longest text in UTF-8 JSON, and room around it."""
    return settings.max_policy_text_chars * 6 + 1024


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/api/training",
        "self",
        "Your training: the policy to acknowledge, whether practice is due, the steps.",
        _mine,
        returns=MyTraining,
    ),
    Operation(
        "POST",
        "/api/training/acknowledge",
        "self",
        "Acknowledge the current privacy and security policy (its version; audited).",
        _acknowledge,
        Acknowledgement,
        returns=TrainingStanding,
    ),
    Operation(
        "POST",
        "/api/training/practice",
        "session.practise",
        "A ticket for one practice session with the simulated customer (agents and "
        "supervisors who acknowledged the policy; audited).",
        _practice,
        returns=PracticeTicket,
    ),
    Operation(
        "POST",
        "/api/training/complete",
        "session.practise",
        "Record your training from your last practice session, if the server saw every step "
        "of it (audited).",
        _complete,
        PracticeDone,
        returns=TrainingCompletion,
    ),
    Operation(
        "GET",
        "/api/training/policy",
        "org.manage",
        "Your organisation's current privacy and security policy.",
        _get_policy,
        returns=Policy,
    ),
    Operation(
        "PUT",
        "/api/training/policy",
        "org.manage",
        "A new version of the policy: everyone acknowledges it again (audited).",
        _set_policy,
        PolicyText,
        returns=Policy,
        max_body=policy_body_bytes,
    ),
    Operation(
        "GET",
        "/api/training/users",
        "users.manage",
        "Who is trained, when, on which policy version; the re-training interval.",
        _roster,
        returns=Roster,
    ),
    Operation(
        "PUT",
        "/api/training/interval",
        "org.manage",
        "Set the re-training interval in days (null: the default, 365; audited).",
        _set_interval,
        IntervalChange,
        returns=Roster,
    ),
)
